//! `<log-dir>/ndt7.json`: every finished ndt7 subtest, one pretty-printed
//! result document ([`crate::ndt7::record::Record`]) per subtest, each
//! appended with one write (the same write path as the iperf3 logs, under
//! the same retention: rotated to `ndt7.json.<N>`), and the result object
//! of a document (`"protocol": "ndt7"`), which loading at start-up
//! ([`super::load`]) reads back the same way as the iperf3 logs.
//!
//! A result's id is `ndt7-<filekey>-<offset>`: the start (unix seconds) of
//! the file's first subtest and the byte offset of the entry's `{`, so it
//! stays the same after a restart or a rotation.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::ids::LogKey;
use super::log::{LogDir, Recorded, Rotation};
use super::result::{Latency, TestResult};
use crate::ndt7::record::Record;
use crate::ndt7::Kind;

/// The file name of the ndt7 log in the log directory.
pub const NDT7_LOG: &str = "ndt7.json";

/// The `protocol` of ndt7 results.
pub const PROTOCOL: &str = "ndt7";

/// The result object of a subtest's document, named `id`; `None` if the
/// document holds no subtest or no readable start time. The port is the
/// server port the document names (the dashboard's).
pub fn result_of(record: &Record, id: String) -> Option<TestResult> {
    let f = record.figures()?;
    let measured = record.latency();
    let (send_bps, receive_bps, bytes_sent, bytes_received) = match f.kind {
        Kind::Download => (f.bps, None, f.bytes, 0),
        Kind::Upload => (None, f.bps, 0, f.bytes),
    };
    Some(
        TestResult {
            id,
            port: record.server_port,
            timestamp: f.timestamp,
            name: f.name,
            title: None,
            client: Some(f.client),
            protocol: PROTOCOL.into(),
            duration: f.seconds,
            streams: 1,
            reverse: false,
            bidir: false,
            send_bps,
            receive_bps,
            bytes_sent,
            bytes_received,
            retransmits: None,
            jitter_ms: measured.jitter_ms,
            lost_percent: None,
            min_rtt_ms: f.min_rtt_ms,
            error: f.error,
            overlapped: Some(f.overlapped),
            server_cpu_percent: None,
            cpu_temp_c: None,
            throttled: None,
            kind: None,
            target: None,
            target_bps: None,
            link_bps: None,
            limited_by: None,
            headline: String::new(),
            latency: Latency {
                latency_idle_ms: measured.idle.map(|s| s.median_ms),
                latency_down_ms: measured.download.map(|s| s.median_ms),
                latency_up_ms: measured.upload.map(|s| s.median_ms),
                run: record.run(),
                ..Latency::default()
            },
        }
        .graded(),
    )
}

/// Entries after a run's download looked at for its upload.
const UPLOAD_LOOK_AHEAD: usize = 16;

/// The text of the upload entry that [`super::runs`] joins into the run
/// whose download's entry is `down`, at `offset` of `file`: the first of
/// the next [`UPLOAD_LOOK_AHEAD`] entries of that file that is an upload
/// of the same run, client and time window. `None` if there is none (or
/// it went to the next file at a rotation).
pub fn upload_entry(file: &std::fs::File, offset: u64, down: &str) -> Option<String> {
    let down_record: Record = serde_json::from_str(down).ok()?;
    let run = down_record.run();
    let start = down_record.figures()?.timestamp;
    // Entries are written one after another, each ending in a line break.
    let mut at = offset + down.len() as u64 + 1;
    for _ in 0..UPLOAD_LOOK_AHEAD {
        let text = super::entry::read_entry_text(file, at).ok()?;
        if text.is_empty() {
            return None;
        }
        if let Ok(r) = serde_json::from_str::<Record>(&text) {
            let after = r.figures().map(|f| f.timestamp - start);
            if r.upload.is_some()
                && r.client_ip == down_record.client_ip
                && r.run() == run
                && after.is_some_and(|a| (0..=super::runs::WINDOW).contains(&a))
            {
                return Some(text);
            }
        }
        at += text.len() as u64 + 1;
    }
    None
}

impl LogDir {
    /// The ndt7 log.
    pub fn ndt7_path(&self) -> PathBuf {
        self.log_path(LogKey::Ndt7, 0)
    }

    /// Appends one finished subtest's document to the ndt7 log with a
    /// single write, rotating the log first if it would grow too big, and
    /// returns its result (shown even if the write failed).
    pub fn record_ndt7(&self, record: &Record) -> Recorded {
        let timestamp = Some(record.timestamp().unwrap_or_default());
        let rotation = Rotation::Allowed {
            starts: timestamp,
            first_key: &ndt7_filekey,
        };
        let appended = self.append(LogKey::Ndt7, &record.to_text(), rotation);
        let result = result_of(record, String::new());
        self.recorded(LogKey::Ndt7, appended, result, timestamp, &ndt7_filekey)
    }
}

/// The start of the first subtest of the ndt7 log at `path`: read from the
/// head of the file, where our documents write `StartTime` (after the
/// addresses).
fn ndt7_filekey(path: &Path) -> Option<i64> {
    let mut head = Vec::new();
    crate::sys::open_regular(path)
        .ok()?
        .take(4096)
        .read_to_end(&mut head)
        .ok()?;
    start_in_head(&head)
}

/// The start (unix seconds) the head of one of our documents writes: its
/// first `StartTime`, which follows the addresses.
pub(crate) fn start_in_head(head: &[u8]) -> Option<i64> {
    const KEY: &[u8] = b"\"StartTime\": \"";
    let start = memchr::memmem::find(head, KEY)? + KEY.len();
    let len = memchr::memchr(b'"', &head[start..])?;
    let text = std::str::from_utf8(&head[start..start + len]).ok()?;
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ndt7::record::tests::sample as record;
    use crate::store::entry;
    use crate::store::ids::TestId;
    use crate::store::results::ResultsStore;
    use crate::store::rotate::Retention;
    use std::{fs, io};

    #[test]
    fn recorded_subtests_load_back_with_the_same_ids() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = LogDir::open(tmp.path()).unwrap();
        let a = logs.record_ndt7(&record(Kind::Download, 1_000, "a"));
        a.written.unwrap();
        let a = a.result.unwrap();
        assert_eq!(a.id, "ndt7-1000-0");
        assert_eq!(a.protocol, "ndt7");
        assert_eq!(a.port, 8080);
        assert_eq!(a.send_bps, Some(1e9));
        assert_eq!(a.receive_bps, None);
        assert_eq!(a.min_rtt_ms, Some(1.5));
        assert_eq!(a.name.as_deref(), Some("a"));
        assert_eq!(a.overlapped, Some(false));
        // Damage between entries is skipped and named.
        fs::OpenOptions::new()
            .append(true)
            .open(logs.ndt7_path())
            .and_then(|mut f| io::Write::write_all(&mut f, b"{\n\"torn"))
            .unwrap();
        let b = logs
            .record_ndt7(&record(Kind::Upload, 2_000, "b"))
            .result
            .unwrap();
        let text = fs::read_to_string(logs.ndt7_path()).unwrap();
        let size_before_b = text.rfind("\n{\n").unwrap() + 1;
        assert_eq!(b.id, format!("ndt7-1000-{size_before_b}"));
        assert_eq!(b.receive_bps, Some(8e8));
        assert_eq!(b.send_bps, None);

        // Read whole, or a few bytes at a time: the same results, the
        // same damage on the same line.
        let whole = load(&logs.ndt7_path(), 1 << 20);
        assert_eq!(whole.0, vec![a, b]);
        assert_eq!(whole.1.len(), 1, "{:?}", whole.1);
        assert!(whole.1[0].contains("ndt7.json: line"), "{:?}", whole.1);
        for chunk in [1, 100, 1000] {
            assert_eq!(load(&logs.ndt7_path(), chunk), whole, "chunks of {chunk}");
        }
    }

    /// Loads the ndt7 log at `path` as generation 0, `chunk` bytes at a
    /// time: its results and warnings.
    fn load(path: &Path, chunk: usize) -> (Vec<TestResult>, Vec<String>) {
        let (results, _, warnings) =
            crate::store::load::tests::load_path(LogKey::Ndt7, path, 1, chunk);
        (results, warnings)
    }

    #[test]
    fn no_file_is_no_results() {
        let tmp = tempfile::tempdir().unwrap();
        let loaded = LogDir::open(tmp.path()).unwrap().load(&[]);
        assert!(loaded.store.is_empty());
        assert!(loaded.warnings.is_empty());
    }

    /// A directory whose logs rotate once a second document is added.
    fn rotating(dir: &Path, keep: u32) -> LogDir {
        let size = record(Kind::Download, 0, "x").to_text().len() as u64;
        LogDir::open(dir).unwrap().with_retention(Retention {
            max_size: Some(size + size / 2),
            keep,
        })
    }

    #[test]
    fn ndt7_log_rotates_and_its_copies_load_with_the_same_ids() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = rotating(tmp.path(), 2);
        let mut store = ResultsStore::new(&[]);
        let mut shown = Vec::new();
        for (secs, name) in [(1_000, "a"), (2_000, "b"), (3_000, "c")] {
            let recorded = logs.record_ndt7(&record(Kind::Download, secs, name));
            recorded.written.unwrap();
            // Every document after the first starts a new file.
            assert_eq!(recorded.rotated.is_some(), secs > 1_000);
            if let Some(rotated) = recorded.rotated {
                assert_eq!(rotated.log, LogKey::Ndt7);
                store.rotated(rotated.log, rotated.keep);
            }
            shown.push(store.push(recorded.result.unwrap()));
        }
        let ids: Vec<_> = shown.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["ndt7-1000-0", "ndt7-2000-0", "ndt7-3000-0"]);
        for (generation, uuid) in [(0, "u3000"), (1, "u2000"), (2, "u1000")] {
            let text = fs::read_to_string(logs.log_path(LogKey::Ndt7, generation)).unwrap();
            assert!(text.contains(uuid), "generation {generation}");
        }
        // The history knows which file each test now sits in.
        let at = store.find(&TestId::parse("ndt7-1000-0").unwrap()).unwrap();
        assert_eq!(store.location(at).unwrap().file.generation, 2);

        // A restart loads the copies with the same ids.
        let loaded = rotating(tmp.path(), 2).load(&[]);
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(loaded.store.iter().collect::<Vec<_>>(), shown);
        let at = loaded.store.find(&TestId::parse("ndt7-1000-0").unwrap());
        let location = loaded.store.location(at.unwrap()).unwrap();
        assert_eq!(location.file.generation, 2);

        // One more: the oldest copy is deleted and its test leaves the
        // history; the others keep their ids.
        let logs = rotating(tmp.path(), 2);
        let mut store = loaded.store;
        let d = logs.record_ndt7(&record(Kind::Upload, 4_000, "d"));
        let rotated = d.rotated.unwrap();
        store.rotated(rotated.log, rotated.keep);
        store.push(d.result.unwrap());
        assert!(!logs.log_path(LogKey::Ndt7, 3).exists());
        let ids: Vec<_> = store.iter().map(|r| r.id).collect();
        assert_eq!(ids, ["ndt7-2000-0", "ndt7-3000-0", "ndt7-4000-0"]);
        let reloaded = rotating(tmp.path(), 2).load(&[]);
        assert_eq!(
            reloaded.store.iter().collect::<Vec<_>>(),
            store.iter().collect::<Vec<_>>()
        );
    }

    #[test]
    fn subtests_started_in_the_same_second_get_ids_of_their_own() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = rotating(tmp.path(), 2);
        let mut store = ResultsStore::new(&[]);
        let mut shown = Vec::new();
        // Each would start a file of its own; all started in second 1000.
        for name in ["a", "b", "c"] {
            let recorded = logs.record_ndt7(&record(Kind::Download, 1_000, name));
            if let Some(rotated) = recorded.rotated {
                store.rotated(rotated.log, rotated.keep);
            }
            shown.push(store.push(recorded.result.unwrap()));
        }
        assert_ne!(shown[0].id, shown[1].id);
        assert_ne!(shown[1].id, shown[2].id);
        let later = logs.record_ndt7(&record(Kind::Download, 1_001, "d"));
        assert!(later.rotated.is_some());
        store.rotated(LogKey::Ndt7, 2);
        shown.push(store.push(later.result.unwrap()));
        // Another run that did not load the logs reads the keys from them.
        let again = rotating(tmp.path(), 2).record_ndt7(&record(Kind::Download, 1_001, "e"));
        assert!(again.rotated.is_none());
        shown.push(store.push(again.result.unwrap()));

        let ids: std::collections::HashSet<_> = shown.iter().map(|r| r.id.clone()).collect();
        assert_eq!(ids.len(), shown.len(), "{ids:?}");
        // Each id reads its own entry, before and after a restart.
        let reads_its_own = |store: &ResultsStore| {
            for r in &shown {
                let id = TestId::parse(&r.id).unwrap();
                let (result, file, offset) = entry::open(store, &logs, &id).unwrap();
                assert_eq!(&result, r);
                let text = entry::read_entry(&file.unwrap(), offset).unwrap();
                let name = r.name.as_deref().unwrap();
                assert!(text.contains(&format!("\"Value\": \"{name}\"")), "{}", r.id);
            }
        };
        reads_its_own(&store);
        let loaded = rotating(tmp.path(), 2).load(&[]);
        assert_eq!(loaded.store.iter().collect::<Vec<_>>(), shown);
        reads_its_own(&loaded.store);
    }

    #[test]
    fn a_rotated_ndt7_entry_reads_back_from_its_copy() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = rotating(tmp.path(), 1);
        let first = record(Kind::Download, 1_000, "a");
        let mut store = ResultsStore::new(&[]);
        store.push(logs.record_ndt7(&first).result.unwrap());
        let second = logs.record_ndt7(&record(Kind::Upload, 2_000, "b"));
        store.rotated(LogKey::Ndt7, second.rotated.unwrap().keep);
        store.push(second.result.unwrap());
        let id = TestId::parse("ndt7-1000-0").unwrap();
        let (result, file, offset) = entry::open(&store, &logs, &id).unwrap();
        assert_eq!(result.name.as_deref(), Some("a"));
        let text = entry::read_entry(&file.unwrap(), offset).unwrap();
        assert_eq!(format!("{text}\n"), first.to_text());
    }

    #[test]
    fn a_known_key_is_kept_across_appends_and_restarts() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = LogDir::open(tmp.path()).unwrap();
        logs.record_ndt7(&record(Kind::Download, 1_000, "a"));
        // A new process appending to the file reads its key from the head.
        let logs = LogDir::open(tmp.path()).unwrap();
        let b = logs.record_ndt7(&record(Kind::Download, 2_000, "b"));
        assert!(b.result.unwrap().id.starts_with("ndt7-1000-"));
        // After loading, the key is known.
        let logs = LogDir::open(tmp.path()).unwrap();
        assert_eq!(logs.load(&[]).store.len(), 2);
        let c = logs.record_ndt7(&record(Kind::Download, 3_000, "c"));
        assert!(c.result.unwrap().id.starts_with("ndt7-1000-"));
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use crate::ndt7::record::tests::sample;
    use crate::ndt7::subtest::Subtest;
    use crate::store::entry;
    use crate::store::ids::TestId;
    use crate::testing::{config, json_value};
    use proptest::prelude::*;

    /// JSON text a serialiser of ours would not write: odd strings and
    /// escapes, numbers beyond every integer type, negative zero.
    fn odd() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(r#""\n}\n{\n""#.to_string()),
            Just(r#""\u0000\u001f\"\\\/\b\f\r\t""#.into()),
            Just(r#""\ud83d\ude00\u2028\ufeff""#.into()),
            Just(r#""\ud800""#.into()),
            Just("1e308".into()),
            Just("-0".into()),
            Just("-0.0".into()),
            Just("123456789012345678901234567890".into()),
            Just("-9223372036854775809".into()),
            ".{0,40}".prop_map(|s| serde_json::Value::String(s).to_string()),
        ]
    }

    /// A client text message: an object holding any value with an odd one
    /// beside it, under up to 130 levels of objects and arrays.
    fn client_text() -> impl Strategy<Value = String> {
        let keys = &["AppInfo", "ElapsedTime", "NumBytes", "Origin", "\n}\n{"];
        (
            json_value(keys),
            odd(),
            proptest::collection::vec(any::<bool>(), 0..130),
            1usize..200,
        )
            .prop_map(|(value, odd, levels, copies)| {
                let inner = format!(
                    "{{\"v\":{value},\"odd\":[{}]}}",
                    vec![odd; copies].join(",")
                );
                let nested = levels.iter().fold(inner, |text, &object| {
                    if object {
                        format!("{{\"k\":{text}}}")
                    } else {
                        format!("[{text}]")
                    }
                });
                format!("{{\"AppInfo\":{nested},\"Origin\":\"client\"}}")
            })
    }

    proptest! {
        #![proptest_config(config(48))]

        /// Whatever measurements a client sends, the document logged for its
        /// subtest reads back: by its id as the detail view reads it, as
        /// the same document, and after a restart with the same result.
        #[test]
        fn every_logged_document_reads_back(
            texts in proptest::collection::vec(client_text(), 1..8),
        ) {
            let mut subtest = Subtest::new(Kind::Upload);
            texts.iter().for_each(|t| subtest.text_received(t));
            let mut record = sample(Kind::Upload, 1_700_000_000, "prop");
            if let Some(upload) = record.upload.as_mut() {
                upload.client_measurements = subtest.into_measurements().1;
            }
            let tmp = tempfile::tempdir().unwrap();
            let logs = LogDir::open(tmp.path()).unwrap();
            logs.record_ndt7(&sample(Kind::Download, 1_600_000_000, "before"));
            let recorded = logs.record_ndt7(&record);
            prop_assert!(recorded.written.is_ok());
            let result = recorded.result.unwrap();

            let mut store = crate::store::results::ResultsStore::new(&[]);
            store.push(result.clone());
            let id = TestId::parse(&result.id).unwrap();
            let (_, file, offset) = entry::open(&store, &logs, &id).unwrap();
            let text = entry::read_entry(&file.unwrap(), offset);
            prop_assert!(text.is_ok(), "{:?}", text.err());
            let text = text.unwrap();
            prop_assert_eq!(format!("{text}\n"), record.to_text());
            let back: Result<Record, _> = serde_json::from_str(&text);
            prop_assert_eq!(back.ok(), Some(record));

            let loaded = LogDir::open(tmp.path()).unwrap().load(&[]);
            prop_assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
            let results: Vec<TestResult> = loaded.store.iter().collect();
            prop_assert_eq!(results.len(), 2);
            prop_assert_eq!(&results[1], &result);
        }
    }
}
