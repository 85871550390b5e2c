//! The write-ahead note of the test being recorded. Its log entry is synced
//! to `<log-dir>/forward/pending/` before it is appended to its log, and the
//! note is removed once the test is in every receiver's queue. A note found
//! at start-up means the program stopped in between: if the loaded history
//! holds the test (its log write happened), it is queued then; if not, the
//! test was never recorded and the note is dropped.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::store::result::TestResult;
use crate::store::summary::summarize;

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
        let tmp = path.with_extension("tmp");
        let body = serde_json::to_vec(&json!({"port": port, "entry": entry}))?;
        let write = || -> io::Result<()> {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(&body)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            fs::File::open(&self.dir)?.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.current = Some(path);
        Ok(())
    }

    /// The record in progress is done (queued, or nothing to queue).
    pub fn clear(&mut self) -> io::Result<()> {
        match self.current.take() {
            Some(path) => remove(&path),
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
            let note = fs::read(&path)
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

/// Removes a note, durably.
pub fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    match path.parent() {
        Some(dir) => fs::File::open(dir)?.sync_all(),
        None => Ok(()),
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
    let wanted = summarize(port, entry)?;
    history.iter().rev().find(|r| {
        r.port == wanted.port
            && r.timestamp == wanted.timestamp
            && r.protocol == wanted.protocol
            && r.bytes_sent == wanted.bytes_sent
            && r.bytes_received == wanted.bytes_received
            && r.duration.to_bits() == wanted.duration.to_bits()
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
        remove(&left[0].path).unwrap();
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
    }
}
