//! One speed-test run, one record: the ndt7 download and upload of a run
//! joined into the download's record (its id is the run's), the upload's
//! record dropped from the history. Pure: records in, records out.
//!
//! Two subtests belong to one run when the upload started after the
//! download, within [`WINDOW`] seconds, from the same client address, and
//! either both name the same run (the page's `run` metadata) or neither
//! names one (M-Lab's `ndt7-client` and `@m-lab/ndt7`, which run a
//! download then an upload).

use super::compact::{Interner, Record, NONE};

/// Seconds from a download's start within which an upload of the same run
/// starts: a download lasts at most 15 s, the page and M-Lab's clients
/// start the upload at once after it.
pub const WINDOW: i64 = 40;

/// Records looked back at for a run's download.
const LOOK_BACK: usize = 64;

/// Which half of a run a record is, if it is one.
fn half(record: &Record, ndt7: u16) -> Option<bool> {
    if record.protocol != ndt7 {
        return None;
    }
    match (record.send_bps.is_nan(), record.receive_bps.is_nan()) {
        (false, true) => Some(true),
        (true, false) => Some(false),
        _ => None,
    }
}

/// The tag number of ndt7 in `texts`, if any record has it.
fn ndt7_tag(texts: &Interner) -> Option<u16> {
    texts
        .tags()
        .find(|(_, t)| *t == crate::store::ndt7_log::PROTOCOL)
        .map(|(n, _)| n)
}

/// Whether `up` (an upload) continues the run of `down` (a download).
fn same_run(down: &Record, up: &Record) -> bool {
    let after = up.timestamp - down.timestamp;
    (0..=WINDOW).contains(&after) && down.client == up.client && down.title == up.title
}

/// Where in `records` (the history, oldest first) the download that the
/// upload `up` continues is: among the last [`LOOK_BACK`] before `before`.
pub fn download_of(
    records: &[Record],
    before: usize,
    up: &Record,
    texts: &Interner,
) -> Option<usize> {
    let ndt7 = ndt7_tag(texts)?;
    if half(up, ndt7) != Some(false) {
        return None;
    }
    let from = before.saturating_sub(LOOK_BACK);
    (from..before)
        .rev()
        .find(|&i| half(&records[i], ndt7) == Some(true) && same_run(&records[i], up))
}

/// `up`'s figures joined into `down`, the run's record: the upload's rate
/// and bytes, the duration from the download's start to the upload's
/// end, the smaller minimum RTT; what the download lacks (a name, an
/// error, idle latency) taken from the upload.
pub fn join(down: &mut Record, up: &Record) {
    down.receive_bps = up.receive_bps;
    down.bytes_received = up.bytes_received;
    down.join_figures(up);
    for (mine, theirs) in [(&mut down.name, up.name), (&mut down.error, up.error)] {
        if *mine == NONE {
            *mine = theirs;
        }
    }
}

/// Joins the runs of `records` (sorted oldest first) in place: each
/// upload that continues a download is folded into it and removed.
pub fn join_all(records: &mut Vec<Record>, texts: &Interner) {
    let mut dropped = vec![false; records.len()];
    for i in 0..records.len() {
        let up = records[i];
        if let Some(d) = download_of(records, i, &up, texts) {
            if !dropped[d] {
                join(&mut records[d], &up);
                dropped[i] = true;
            }
        }
    }
    let mut i = 0;
    records.retain(|_| {
        i += 1;
        !dropped[i - 1]
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::compact::NO_FILE;
    use crate::store::result::{Latency, TestResult};
    use crate::store::results::tests::result;

    fn subtest(ts: i64, down: bool, client: &str, run: Option<&str>) -> TestResult {
        let mut r = result(8080, ts);
        r.protocol = "ndt7".into();
        r.client = Some(client.into());
        r.latency = Latency {
            run: run.map(str::to_string),
            latency_idle_ms: down.then_some(10.0),
            latency_down_ms: down.then_some(80.0),
            latency_up_ms: (!down).then_some(250.0),
            ..Latency::default()
        };
        if down {
            r.send_bps = Some(9e6);
            r.receive_bps = None;
            r.duration = 10.0;
        } else {
            r.receive_bps = Some(8e6);
            r.bytes_received = 10_000_000;
            r.duration = 10.5;
        }
        r
    }

    fn records(results: &[TestResult], texts: &mut Interner) -> Vec<Record> {
        let mut out: Vec<Record> = (0u64..)
            .zip(results)
            .map(|(i, r)| Record::new(r, NO_FILE, i * 100, texts))
            .collect();
        out.sort_by_key(|r| r.timestamp);
        out
    }

    #[test]
    fn a_run_is_one_record_with_both_directions() {
        let mut texts = Interner::default();
        let mut rs = records(
            &[
                subtest(100, true, "10.0.0.1", Some("run-a")),
                // Another client's subtests in between.
                subtest(105, true, "10.0.0.2", None),
                subtest(111, false, "10.0.0.1", Some("run-a")),
                subtest(116, false, "10.0.0.2", None),
            ],
            &mut texts,
        );
        join_all(&mut rs, &texts);
        assert_eq!(rs.len(), 2);
        let run = rs[0].result(String::new(), &texts);
        assert_eq!((run.send_bps, run.receive_bps), (Some(9e6), Some(8e6)));
        assert_eq!(run.bytes_received, 10_000_000);
        assert_eq!(run.duration, 21.5);
        assert_eq!(run.latency.latency_idle_ms, Some(10.0));
        assert_eq!(run.latency.latency_down_ms, Some(80.0));
        assert_eq!(run.latency.latency_up_ms, Some(250.0));
        // +240 ms under load.
        assert_eq!(run.latency.grade, Some("D"));
        let cli = rs[1].result(String::new(), &texts);
        assert_eq!(cli.client.as_deref(), Some("10.0.0.2"));
        assert_eq!((cli.send_bps, cli.receive_bps), (Some(9e6), Some(8e6)));
    }

    #[test]
    fn subtests_of_other_runs_stay_apart() {
        let mut texts = Interner::default();
        let mut rs = records(
            &[
                // Other run ids, one without, another client, too late,
                // upload before download, two uploads for one download.
                subtest(100, true, "10.0.0.1", Some("a")),
                subtest(101, false, "10.0.0.1", Some("b")),
                subtest(102, false, "10.0.0.1", None),
                subtest(103, false, "10.0.0.9", Some("a")),
                subtest(200, true, "10.0.0.3", None),
                subtest(200 + WINDOW + 1, false, "10.0.0.3", None),
                subtest(300, false, "10.0.0.4", None),
                subtest(301, true, "10.0.0.4", None),
                subtest(400, true, "10.0.0.5", None),
                subtest(410, false, "10.0.0.5", None),
                subtest(420, false, "10.0.0.5", None),
            ],
            &mut texts,
        );
        join_all(&mut rs, &texts);
        assert_eq!(rs.len(), 10);
        assert_eq!(rs[8].result(String::new(), &texts).receive_bps, Some(8e6));
        assert_eq!(rs[9].timestamp, 420);
        assert!(rs[9].send_bps.is_nan());
    }
}
