//! Whether what a log holds at a test's offset is still the entry that
//! test left there: the start time the entry's head writes must be the
//! test's. A log cut short by hand and written again puts another test's
//! entry at an old offset; the history's offset alone would show it under
//! the old test's id. No memory per test: the history keeps each test's
//! start anyway.

use std::fs::File;

use crate::analysis::summary::integer;
use crate::files::entry::{read_at, EntryError};
use crate::files::ndt7_log::start_in_head;
use crate::history::ids::LogKey;

/// How much of an entry is read at a time while looking for its start.
const STEP: usize = 64 * 1024;

/// The most of an entry read to find its start: an iperf3 entry writes it
/// after the `connected` list, a few hundred bytes per stream.
const MAX_HEAD: usize = 1024 * 1024;

/// `file` if the entry at `offset` of `log`'s file is the one of a test
/// that started at `timestamp` (unix seconds, as loading derived it);
/// [`EntryError::Gone`] if another entry (or none) is there.
pub fn recorded_at(
    file: File,
    log: LogKey,
    offset: u64,
    timestamp: i64,
) -> Result<File, EntryError> {
    let mut head = Vec::new();
    while head.len() < MAX_HEAD {
        let start = head.len();
        head.resize(start + STEP, 0);
        let n = read_at(&file, &mut head[start..], offset + start as u64)?;
        head.truncate(start + n);
        if head.first().is_some_and(|&b| b != b'{') {
            break;
        }
        if let Some(found) = start_of(log, &head) {
            return if found == timestamp {
                Ok(file)
            } else {
                Err(EntryError::Gone)
            };
        }
        if n == 0 {
            break;
        }
    }
    // No start written: loading gave the test 0 (an iperf3 entry without
    // a timestamp), and nothing else may be there.
    if head.first() == Some(&b'{') && timestamp == 0 && log != LogKey::Ndt7 {
        Ok(file)
    } else {
        Err(EntryError::Gone)
    }
}

/// The start the head of an entry of `log` writes, if it has one whole.
fn start_of(log: LogKey, head: &[u8]) -> Option<i64> {
    match log {
        LogKey::Ndt7 => start_in_head(head),
        LogKey::Port(_) | LogKey::Probe => timesecs_in_head(head),
    }
}

/// The value of the first `"timesecs"` member in `head` (the start's
/// `timestamp`, which stock writes before anything else that has one),
/// read as loading reads it.
fn timesecs_in_head(head: &[u8]) -> Option<i64> {
    const KEY: &[u8] = b"\"timesecs\"";
    for at in memchr::memmem::find_iter(head, KEY) {
        // A key, not a string value: a colon follows.
        let Some(rest) = head[at + KEY.len()..].trim_ascii_start().strip_prefix(b":") else {
            continue;
        };
        let mut values = serde_json::Deserializer::from_slice(rest).into_iter();
        let value: serde_json::Value = values.next()?.ok()?;
        // A number cut off by the end of what was read is read again.
        if values.byte_offset() >= rest.len() {
            return None;
        }
        return Some(integer(Some(&value)).unwrap_or(0));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::entry;
    use crate::files::log_dir::{tests::entry as test_entry, LogDir};
    use crate::history::ids::TestId;
    use crate::history::results_store::ResultsStore;
    use crate::ndt7::record::tests::sample;
    use crate::ndt7::Kind;

    /// Opens the entry of `id` and checks it as a detail read does.
    fn check(store: &ResultsStore, logs: &LogDir, id: &str) -> Result<String, EntryError> {
        let id = TestId::parse(id).unwrap();
        let (result, file, offset) = entry::open(store, logs, &id).unwrap();
        let file = recorded_at(file?, id.log, offset, result.timestamp)?;
        entry::read_entry(&file, offset)
    }

    #[test]
    fn a_log_cut_short_and_written_again_shows_no_other_test() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = LogDir::open(tmp.path()).unwrap();
        let mut store = ResultsStore::new(&[5201]);
        let mut ids = Vec::new();
        for (secs, name) in [(10, "a"), (11, "b")] {
            let result = logs.record(5201, &test_entry(secs, name)).result.unwrap();
            ids.push(store.push(result).id);
        }
        let ndt7 = logs.record_ndt7(&sample(Kind::Download, 100, "n"));
        ids.push(store.push(ndt7.result.unwrap()).id);
        for id in &ids {
            check(&store, &logs, id).unwrap();
        }
        // Both logs are cut to nothing by hand; new tests take the offsets.
        File::options()
            .write(true)
            .open(logs.path(5201))
            .and_then(|f| f.set_len(0))
            .unwrap();
        File::options()
            .write(true)
            .open(logs.ndt7_path())
            .and_then(|f| f.set_len(0))
            .unwrap();
        for (secs, name) in [(20, "c"), (21, "d")] {
            store.push(logs.record(5201, &test_entry(secs, name)).result.unwrap());
        }
        store.push(
            logs.record_ndt7(&sample(Kind::Download, 200, "m"))
                .result
                .unwrap(),
        );
        for id in &ids {
            let found = check(&store, &logs, id);
            assert!(matches!(found, Err(EntryError::Gone)), "{id}: {found:?}");
        }
        // The new tests read as theirs.
        for id in ["5201-20-0", "ndt7-200-0"] {
            check(&store, &logs, id).unwrap();
        }
    }

    #[test]
    fn the_start_is_read_as_loading_reads_it() {
        let head = br#"{"extra_data": "timesecs", "start": {"timestamp": {"timesecs" : 1.7e9}}}"#;
        assert_eq!(timesecs_in_head(head), Some(1_700_000_000));
        assert_eq!(timesecs_in_head(br#"{"start": {"timesecs":"#), None);
        assert_eq!(timesecs_in_head(br#"{"start": {"timesecs": 17"#), None);
        assert_eq!(timesecs_in_head(br#"{"timesecs": "x"}"#), Some(0));
    }
}
