//! The write-ahead note of the test being recorded. Its log entry is synced
//! to `<log-dir>/forward/pending/` before it is appended to its log, and the
//! note is removed once the test is in every receiver's queue. A note found
//! at start-up means the program stopped in between: if the loaded history
//! holds the test (its log write happened), it is queued then; if not, the
//! test was never recorded and the note is dropped. A note holds an iperf3
//! port's entry or an ndt7 subtest's document; each is summarised as its
//! own log's loading does.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Value};

use super::disk::{remove_durably, write_durably};
use crate::analysis::ndt7::result_of;
use crate::analysis::probe::summary_of;
use crate::analysis::test_result::TestResult;
use crate::ndt7::record::Record;

/// The pending notes' directory and the note of the record in progress.
#[derive(Debug)]
pub struct Pending {
    dir: PathBuf,
    current: Option<PathBuf>,
    next: u64,
}

/// A note left by a record that did not finish.
#[derive(Debug)]
pub struct Leftover {
    /// Its file.
    pub path: PathBuf,
    /// The port whose log the entry was meant for.
    pub port: u16,
    /// The entry.
    pub entry: Value,
}

impl Pending {
    /// Opens (creating) the directory.
    pub fn open(dir: &Path) -> io::Result<Pending> {
        fs::create_dir_all(dir)?;
        Ok(Pending {
            dir: dir.to_path_buf(),
            current: None,
            next: 0,
        })
    }

    /// Notes `entry` of `port`, durably, as the record in progress.
    pub fn write(&mut self, port: u16, entry: &Value) -> io::Result<()> {
        let path = self
            .dir
            .join(format!("{}-{}.json", std::process::id(), self.next));
        self.next += 1;
        let body = serde_json::to_vec(&json!({"port": port, "entry": entry}))?;
        write_durably(&path, &body)?;
        self.current = Some(path);
        Ok(())
    }

    /// The record in progress is done (queued, or nothing to queue).
    pub fn clear(&mut self) -> io::Result<()> {
        match self.current.take() {
            Some(path) => remove_durably(&path),
            None => Ok(()),
        }
    }

    /// Notes left by records that did not finish (unreadable ones are
    /// removed); temporary files are removed.
    pub fn leftovers(&self) -> io::Result<Vec<Leftover>> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if Some(&path) == self.current.as_ref() {
                continue;
            }
            let note = read_regular(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
            let port = note
                .as_ref()
                .and_then(|n| n.get("port")?.as_u64())
                .and_then(|p| u16::try_from(p).ok());
            match (note, port) {
                (Some(mut note), Some(port)) if path.extension().is_some_and(|e| e == "json") => {
                    let entry = note.get_mut("entry").map(Value::take).unwrap_or_default();
                    found.push(Leftover { path, port, entry });
                }
                _ => {
                    let _ = fs::remove_file(&path);
                }
            }
        }
        Ok(found)
    }
}

/// The bytes of the file at `path`, if it is a regular file (a FIFO in
/// its place would block start-up).
fn read_regular(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut crate::sys::open_regular(path)?, &mut bytes)?;
    Ok(bytes)
}

/// The result `entry` of `port` stands for: an ndt7 subtest's document
/// as the ndt7 log reads it, a probe's entry as the probes' log does,
/// anything else as an iperf3 port's log does.
fn result_of_entry(port: u16, entry: &Value) -> Option<TestResult> {
    match Record::deserialize(entry) {
        Ok(record) => result_of(&record, String::new()),
        Err(_) => summary_of(port, entry),
    }
}

/// The recorded test that `entry` of `port` became, if its log holds it:
/// the latest result of `history` with the same port, start, protocol,
/// duration and byte counts.
pub fn find_recorded<'a>(
    history: &'a [TestResult],
    port: u16,
    entry: &Value,
) -> Option<&'a TestResult> {
    let wanted = result_of_entry(port, entry)?;
    history.iter().rev().find(|r| {
        r.port == wanted.port
            && r.timestamp == wanted.timestamp
            && r.protocol == wanted.protocol
            && r.bytes_sent == wanted.bytes_sent
            && r.bytes_received == wanted.bytes_received
            // The history keeps figures as f32.
            && (r.duration as f32).to_bits() == (wanted.duration as f32).to_bits()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_outlives_a_stop_until_cleared() {
        let tmp = tempfile::tempdir().unwrap();
        let mut p = Pending::open(tmp.path()).unwrap();
        p.write(5201, &json!({"a": 1})).unwrap();
        p.clear().unwrap();
        assert!(p.leftovers().unwrap().is_empty());
        p.write(5202, &json!({"b": 2})).unwrap();
        fs::write(tmp.path().join("junk.json"), b"{").unwrap();
        // A stop here: the next run finds the note.
        let again = Pending::open(tmp.path()).unwrap();
        let left = again.leftovers().unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!((left[0].port, &left[0].entry), (5202, &json!({"b": 2})));
        remove_durably(&left[0].path).unwrap();
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_fifo_among_the_notes_does_not_hold_up_a_start() {
        let tmp = tempfile::tempdir().unwrap();
        let mut p = Pending::open(tmp.path()).unwrap();
        p.write(5201, &json!({"a": 1})).unwrap();
        let fifo = tmp.path().join("1-0.json");
        crate::testing::mkfifo(&fifo);
        let dir = tmp.path().to_path_buf();
        let left = crate::testing::within(std::time::Duration::from_secs(30), move || {
            Pending::open(&dir).unwrap().leftovers().unwrap()
        });
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].port, 5201);
        // The FIFO is not a note: it is removed like any unreadable one.
        assert!(!fifo.exists());
    }

    #[test]
    fn an_ndt7_note_finds_its_recorded_subtest() {
        use crate::files::log_dir::LogDir;
        use crate::ndt7::record::tests::sample;
        use crate::ndt7::Kind;

        let tmp = tempfile::tempdir().unwrap();
        let logs = LogDir::open(tmp.path()).unwrap();
        let record = sample(Kind::Upload, 1_700_000_000, "attic");
        logs.record_ndt7(&record).written.unwrap();
        // What a restart loads, and the note as the hub wrote it.
        let history: Vec<TestResult> = logs.load(&[]).store.iter().collect();
        let note = serde_json::to_value(&record).unwrap();
        let found = find_recorded(&history, record.server_port, &note);
        assert_eq!(found.map(|r| r.id.as_str()), Some("ndt7-1700000000-0"));
        // A subtest the log does not hold is not found.
        let other = serde_json::to_value(sample(Kind::Upload, 1_700_000_100, "attic")).unwrap();
        assert!(find_recorded(&history, record.server_port, &other).is_none());
    }
}
