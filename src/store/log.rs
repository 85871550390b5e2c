//! `port-<PORT>.json` log files in one directory, and the one write path
//! into them: a finished test is printed, appended with a single write and
//! summarised ([`LogDir::record`]); a clear appends a `{}` marker
//! ([`LogDir::append_cleared`]). Nothing else writes a log.
//!
//! A log (a port's, or `ndt7.json`) that would grow past its size limit is
//! rotated first, in the same write path ([`super::rotate`]). Each written test gets its id here: the
//! offset it was written at and the file's key ([`super::ids`]). No two
//! files of a log share a key: a rotation that would start a file with
//! the key of one still on disk (a test that started in the same second
//! as that file's first) is put off, and the entry goes to the live file.
//!
//! Loading the logs at start-up is the `load` module's; text handling lives in
//! [`super::reader`], summaries in [`super::summary`].

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::chunks::{each_chunk, CHUNK};
use super::ids::{LogKey, TestId};
use super::reader::{read_log_at, Detail, LogItem};
use super::result::TestResult;
use super::rotate::{file_name, generation_path, rotate, Retention};
use super::summary::summarize;
use crate::locks::lock;
use crate::report::json::{to_pretty, to_value, Json};

/// The directory holding one `port-<PORT>.json` per iperf3 port and
/// `ndt7.json`, with their rotated copies.
#[derive(Debug, Clone)]
pub struct LogDir {
    dir: PathBuf,
    retention: Retention,
    /// Per log and generation, the key of the file (the start time of
    /// its first test, `None` while it has none), once known.
    keys: Arc<Mutex<Keys>>,
}

/// The known keys of files, by log and generation.
type Keys = HashMap<(LogKey, u32), Option<i64>>;

/// How to read the key of one of a log's files from the file (`None`: it
/// has no test, or cannot be read).
pub(crate) type FirstKey<'a> = &'a dyn Fn(&Path) -> Option<i64>;

/// Whether an append may rotate the log first.
pub(crate) enum Rotation<'a> {
    /// Never (a marker).
    Never,
    /// When the log would grow too big, unless the entry's test (started
    /// at `starts`) would then share its file's key with a file on disk.
    Allowed {
        /// The start of the entry's test, if it holds one.
        starts: Option<i64>,
        /// How the keys of files not known yet are read.
        first_key: FirstKey<'a>,
    },
}

/// What [`LogDir::append_cleared`] writes: an empty object on a line of its
/// own, the `{}` marker the README's "Logs" names (the reader takes
/// `{`/`}` on two lines as a marker too).
pub const CLEARED_MARKER: &str = "{}\n";

/// What [`LogDir::record`] did with one finished test.
#[derive(Debug)]
pub struct Recorded {
    /// The test's result; `None` for an entry that never started a test
    /// (a connection that sent no parameters).
    pub result: Option<TestResult>,
    /// Whether the entry reached the log. A failed write loses the entry
    /// from the file, never the result.
    pub written: io::Result<()>,
    /// The log was rotated before the entry was written.
    pub rotated: Option<Rotated>,
}

/// A log's files were renamed one generation up (the live one became
/// `.1`), and those past `keep` deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotated {
    /// Whose log.
    pub log: LogKey,
    /// The rotated copies kept.
    pub keep: u32,
}

/// Where an append put its text: the offset of its first byte, and whether
/// the log was rotated first.
pub(crate) struct Appended {
    at: u64,
    rotated: bool,
}

/// `error` with its kind kept and `what` in front of its message.
fn context(error: io::Error, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(error.kind(), format!("{what}: {error}"))
}

impl LogDir {
    /// Creates the directory if missing and checks that it is writable.
    pub fn open(dir: &Path) -> io::Result<LogDir> {
        let shown = dir.display();
        fs::create_dir_all(dir)
            .map_err(|e| context(e, format_args!("cannot create log directory {shown}")))?;
        let meta =
            fs::metadata(dir).map_err(|e| context(e, format_args!("log directory {shown}")))?;
        if !meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("log directory {shown} is not a directory"),
            ));
        }
        // Permission bits do not tell (root, read-only mounts, ACLs): try it.
        let probe = dir.join(format!(".webperf3-write-test-{}", std::process::id()));
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&probe)
            .map_err(|e| context(e, format_args!("log directory {shown} is not writable")))?;
        // The probe is ours and empty; failing to remove it is harmless.
        let _ = fs::remove_file(&probe);
        Ok(LogDir {
            dir: dir.to_path_buf(),
            retention: Retention::default(),
            keys: Arc::default(),
        })
    }

    /// The same directory, keeping logs as `retention` says.
    pub fn with_retention(mut self, retention: Retention) -> LogDir {
        self.retention = retention;
        self
    }

    /// What is kept of each log.
    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// The file of generation `generation` of `port`'s log (0: the live one).
    pub fn generation_path(&self, port: u16, generation: u32) -> PathBuf {
        self.log_path(LogKey::Port(port), generation)
    }

    /// The file of generation `generation` of `log` (0: the live one).
    pub fn log_path(&self, log: LogKey, generation: u32) -> PathBuf {
        generation_path(&self.dir.join(file_name(log)), generation)
    }

    /// Notes the key of `log`'s file of `generation`, as loading found it.
    pub(crate) fn remember_key(&self, log: LogKey, generation: u32, key: Option<i64>) {
        lock(&self.keys).insert((log, generation), key);
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log file of `port`.
    pub fn path(&self, port: u16) -> PathBuf {
        self.log_path(LogKey::Port(port), 0)
    }

    /// Records one finished test of `port`: prints `entry` as stock does,
    /// appends it to the port's log with a single write, and summarises it
    /// from the tree in memory (as a reader of the printed text would: see
    /// [`to_value`]), so what is shown is what a restart loads.
    ///
    /// A log that would grow past the retention's size is rotated first.
    /// The result's id is where the entry now sits.
    pub fn record(&self, port: u16, entry: &Json) -> Recorded {
        self.record_in(LogKey::Port(port), entry, |value| {
            summarize(port, value).map(|r| super::verdict::with_limit(r, value))
        })
    }

    /// Records one entry in the stock layout in `log` as [`LogDir::record`]
    /// does, summarised by `summary`; its file is keyed by the first
    /// entry's start, as a port's log is.
    pub(crate) fn record_in(
        &self,
        log: LogKey,
        entry: &Json,
        summary: impl FnOnce(&serde_json::Value) -> Option<TestResult>,
    ) -> Recorded {
        let port = match log {
            LogKey::Port(port) => port,
            LogKey::Ndt7 | LogKey::Probe => 0,
        };
        let result = summary(&to_value(entry));
        let timestamp = result.as_ref().map(|r| r.timestamp);
        let first_key = |path: &Path| first_test_key(port, path);
        let rotation = Rotation::Allowed {
            starts: timestamp,
            first_key: &first_key,
        };
        let appended = self.append(log, &to_pretty(entry), rotation);
        self.recorded(log, appended, result, timestamp, &first_key)
    }

    /// What appending an entry to `log` did (`appended`), with the entry's
    /// `result` named by where it now sits: the file's key is `timestamp`
    /// for a new file, the one known, or else what `first_key` reads from
    /// the live file.
    pub(crate) fn recorded(
        &self,
        log: LogKey,
        appended: io::Result<Appended>,
        mut result: Option<TestResult>,
        timestamp: Option<i64>,
        first_key: FirstKey,
    ) -> Recorded {
        let rotated = appended
            .as_ref()
            .ok()
            .filter(|a| a.rotated)
            .map(|_| Rotated {
                log,
                keep: self.retention.keep,
            });
        if let Some(result) = &mut result {
            result.headline = super::headline::headline(result);
        }
        if let Ok(appended) = &appended {
            let filekey = self.key_for(log, appended, timestamp, first_key);
            if let (Some(result), Some(filekey)) = (&mut result, filekey) {
                result.id = TestId {
                    log,
                    filekey,
                    offset: appended.at,
                }
                .to_string();
            }
        }
        Recorded {
            result,
            written: appended.map(|_| ()),
            rotated,
        }
    }

    /// The key of `log`'s live file, to which an entry was just appended
    /// as `appended` says (a test starting at `timestamp`, or no test).
    fn key_for(
        &self,
        log: LogKey,
        appended: &Appended,
        timestamp: Option<i64>,
        first_key: FirstKey,
    ) -> Option<i64> {
        let mut keys = lock(&self.keys);
        let known = if appended.at == 0 || appended.rotated {
            // A new file: this entry is its first.
            Some(None)
        } else {
            keys.get(&(log, 0)).copied()
        };
        let key = match known {
            Some(key) => key.or(timestamp),
            // Not known yet (no loading before): the file tells.
            None => first_key(&self.log_path(log, 0)).or(timestamp),
        };
        keys.insert((log, 0), key);
        key
    }

    /// Whether a file of `log` on disk (the live one or a rotated copy,
    /// the oldest included: a new file must not take the ids of tests just
    /// deleted either) has `key`.
    fn key_taken(&self, log: LogKey, key: i64, first_key: FirstKey) -> bool {
        let mut keys = lock(&self.keys);
        (0..=self.retention.keep).any(|generation| {
            let known = keys
                .entry((log, generation))
                .or_insert_with(|| first_key(&self.log_path(log, generation)));
            *known == Some(key)
        })
    }

    /// `log`'s files were renamed one generation up, those past the kept
    /// ones deleted: so are their known keys.
    fn keys_rotated(&self, log: LogKey) {
        let mut keys = lock(&self.keys);
        let moved: Vec<(u32, Option<i64>)> = keys
            .iter()
            .filter(|((l, _), _)| *l == log)
            .map(|(&(_, generation), &key)| (generation, key))
            .collect();
        keys.retain(|(l, _), _| *l != log);
        for (generation, key) in moved {
            if generation < self.retention.keep {
                keys.insert((log, generation + 1), key);
            }
        }
    }

    /// Appends the `{}` clear marker ([`CLEARED_MARKER`]) to the port's log.
    /// A marker never rotates a log (it adds three bytes).
    pub fn append_cleared(&self, port: u16) -> io::Result<()> {
        self.append(LogKey::Port(port), CLEARED_MARKER, Rotation::Never)
            .map(|_| ())
    }

    /// Appends `text` (one whole pretty-printed entry ending in `\n`) to
    /// `log` with a single write on a file opened in append mode.
    ///
    /// `O_APPEND` makes each `write` land at the end of the file atomically
    /// with respect to other appends, so concurrent appends never
    /// interleave; only a short write (disk full, file size limit, signal)
    /// makes a second one. If the entry cannot be written whole, what was
    /// written of it is cut off again, so the file never keeps half an
    /// entry. A file whose last line is unfinished (a torn tail left by a
    /// crash or another program) gets a line break first, so the new entry
    /// starts on a line of its own.
    ///
    /// As `rotation` allows, a log that `text` would grow past the size
    /// limit is rotated first; a rotation that fails is logged and the
    /// entry still goes to the live file (better too big than lost). So
    /// does an entry whose test would give its new file the key of a file
    /// on disk (and so its own id to two tests).
    pub(crate) fn append(
        &self,
        log: LogKey,
        text: &str,
        rotation: Rotation,
    ) -> io::Result<Appended> {
        let path = self.log_path(log, 0);
        let mut rotated = false;
        if let Rotation::Allowed { starts, first_key } = rotation {
            let before = fs::metadata(&path).map_or(0, |m| m.len());
            if !self.retention.must_rotate(before, text.len() as u64) {
                // Room left.
            } else if starts.is_some_and(|t| self.key_taken(log, t, first_key)) {
                tracing::debug!(file = %path.display(), "rotation put off: its key is taken");
            } else {
                match rotate(&self.dir, log, self.retention.keep) {
                    Ok(()) => {
                        rotated = true;
                        self.keys_rotated(log);
                        let keep = self.retention.keep;
                        tracing::info!(file = %path.display(), keep, "log rotated");
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot rotate {}", path.display()),
                }
            }
        }
        let at = append_to(&path, text)?;
        Ok(Appended { at, rotated })
    }
}

/// Appends `text` to the file at `path` as [`LogDir::record`] does (one
/// write in append mode, a torn tail first ended, a failed write cut off
/// again) and returns the byte offset where `text` begins in the file.
pub(crate) fn append_to(path: &Path, text: &str) -> io::Result<u64> {
    let shown = path.display();
    let file = fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| context(e, format_args!("cannot open {shown}")))?;
    let before = file
        .metadata()
        .map_err(|e| context(e, format_args!("cannot open {shown}")))?
        .len();
    let mut owned = String::new();
    let mut bytes = text.as_bytes();
    if before > 0 && last_byte(&file, before) != Some(b'\n') {
        owned.reserve(text.len() + 1);
        owned.push('\n');
        owned.push_str(text);
        bytes = owned.as_bytes();
    }
    let offset = before + u64::from(text.len() < bytes.len());
    match write_whole(&file, bytes) {
        Ok(()) => Ok(offset),
        Err(e) => {
            // Only what this call added is cut, back to where it began.
            let cut =
                file.metadata().is_ok_and(|m| m.len() > before) && file.set_len(before).is_ok();
            let note = if cut {
                " (the partial entry was removed)"
            } else {
                ""
            };
            Err(context(e, format_args!("cannot write {shown}{note}")))
        }
    }
}

/// The start time of the first test in `port`'s log at `path`, read in
/// chunks up to that test (`None`: no test, or unreadable).
fn first_test_key(port: u16, path: &Path) -> Option<i64> {
    let file = crate::sys::open_regular(path).ok()?;
    let mut key = None;
    let _ = each_chunk(file, CHUNK, |_, text| {
        read_log_at(text, Detail::Summary, |_, item| {
            if let (None, LogItem::Entry(entry)) = (key, item) {
                key = summarize(port, &entry).map(|r| r.timestamp);
            }
        });
        key.is_none()
    });
    key
}

/// The byte before offset `len` of `file`, if it can be read.
fn last_byte(file: &fs::File, len: u64) -> Option<u8> {
    use std::os::unix::fs::FileExt;
    let mut byte = [0u8];
    match file.read_at(&mut byte, len - 1) {
        Ok(1) => Some(byte[0]),
        _ => None,
    }
}

/// Writes all of `bytes`, retrying short writes and interruptions.
fn write_whole(mut file: &fs::File, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match file.write(bytes) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "no space written")),
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::reader::{read_log, DamageKind, LogItem};
    use crate::store::rotate::Retention;

    const STOCK_LOG: &str = include_str!("../../tests/fixtures/stock-3.12.json");

    /// A small entry of a test at `timesecs`, named `name`.
    pub(crate) fn entry(timesecs: i64, name: &str) -> Json {
        let start = Json::obj()
            .with("timestamp", Json::obj().with("timesecs", timesecs))
            .with(
                "test_start",
                Json::obj().with("protocol", "TCP").with("num_streams", 1),
            );
        let end = Json::obj().with(
            "sum_received",
            Json::obj()
                .with("seconds", 1.0)
                .with("bytes", 1000)
                .with("bits_per_second", 8000.0),
        );
        Json::obj()
            .with("start", start)
            .with("intervals", Json::Arr(vec![]))
            .with("end", end)
            .with("extra_data", name)
    }

    /// `entry(timesecs, name)` as the log holds it.
    fn text(timesecs: i64, name: &str) -> String {
        to_pretty(&entry(timesecs, name))
    }

    #[test]
    fn open_creates_missing_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        let logs = LogDir::open(&dir).expect("created");
        assert!(dir.is_dir());
        assert_eq!(logs.path(5201), dir.join("port-5201.json"));
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            0,
            "no probe left behind"
        );
    }

    #[test]
    fn open_refuses_a_file_and_an_unwritable_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        fs::write(&file, "x").unwrap();
        let err = LogDir::open(&file).unwrap_err();
        assert!(
            err.to_string().contains(&file.display().to_string()),
            "{err}"
        );

        // A directory below a regular file cannot be created.
        let err = LogDir::open(&file.join("sub")).unwrap_err();
        assert!(
            err.to_string().contains("cannot create log directory"),
            "{err}"
        );

        // /proc/self is a directory nobody can create files in, root included.
        let err = LogDir::open(Path::new("/proc/self")).unwrap_err();
        assert!(err.to_string().contains("not writable"), "{err}");
    }

    #[test]
    fn record_appends_whole_entries_and_markers() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = LogDir::open(tmp.path()).unwrap();
        let a = logs.record(5201, &entry(10, "a"));
        logs.append_cleared(5201).unwrap();
        let b = logs.record(5201, &entry(11, "b"));
        assert!(a.written.is_ok() && b.written.is_ok());
        let names = [a, b].map(|r| r.result.and_then(|r| r.name));
        assert_eq!(names, [Some("a".to_string()), Some("b".to_string())]);
        let log = fs::read_to_string(logs.path(5201)).unwrap();
        assert_eq!(log, format!("{}{{}}\n{}", text(10, "a"), text(11, "b")));
        let items = read_log(&log).items;
        assert!(matches!(
            items.as_slice(),
            [LogItem::Entry(_), LogItem::Cleared, LogItem::Entry(_)]
        ));
    }

    #[test]
    fn record_summarises_as_the_written_text_reads() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = LogDir::open(tmp.path()).unwrap();
        let entries: Vec<Json> = serde_json::Deserializer::from_str(STOCK_LOG)
            .into_iter::<Json>()
            .collect::<Result<_, _>>()
            .expect("fixture parses");
        assert_eq!(entries.len(), 8);
        let recorded: Vec<_> = entries
            .iter()
            .map(|e| logs.record(5201, e).result)
            .collect();
        let log = fs::read_to_string(logs.path(5201)).unwrap();
        // Written as stock wrote them, byte for byte.
        assert_eq!(log, STOCK_LOG);
        // And each id is where its entry starts, with the first test's key.
        let mut read = Vec::new();
        read_log_at(&log, Detail::Full, |at, item| match item {
            LogItem::Entry(v) => read
                .push(summarize(5201, &v).map(|r| (at, crate::store::verdict::with_limit(r, &v)))),
            LogItem::Cleared => panic!("no markers in the fixture"),
        });
        let first = recorded[0].as_ref().unwrap().timestamp;
        let read: Vec<_> = read
            .into_iter()
            .map(|r| {
                r.map(|(at, r)| TestResult {
                    id: format!("5201-{first}-{at}"),
                    headline: crate::store::headline::headline(&r),
                    ..r
                })
            })
            .collect();
        assert_eq!(recorded, read);
        // The last entry (a server stopped before any test) has no result.
        assert_eq!(recorded.iter().flatten().count(), 7);
    }

    #[test]
    fn concurrent_appends_never_interleave() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = LogDir::open(tmp.path()).unwrap();
        // Entries far larger than a pipe buffer or a page.
        let big = "x".repeat(256 * 1024);
        std::thread::scope(|scope| {
            for t in 0..8 {
                let logs = &logs;
                let big = &big;
                scope.spawn(move || {
                    for i in 0..10 {
                        let entry = Json::obj()
                            .with("t", t)
                            .with("i", i)
                            .with("pad", big.as_str());
                        logs.record(5201, &entry).written.unwrap();
                    }
                });
            }
        });
        let log = fs::read_to_string(logs.path(5201)).unwrap();
        let read = read_log(&log);
        assert_eq!(read.skipped, 0);
        assert_eq!(read.items.len(), 80);
        for item in &read.items {
            let LogItem::Entry(v) = item else {
                panic!("an entry")
            };
            assert_eq!(v["pad"].as_str().map(str::len), Some(big.len()));
        }
    }

    #[test]
    fn an_entry_after_a_torn_tail_starts_on_its_own_line() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = LogDir::open(tmp.path()).unwrap();
        let whole = text(10, "a");
        fs::write(logs.path(5201), &whole[..whole.len() / 2]).unwrap();
        logs.record(5201, &entry(11, "b")).written.unwrap();
        let log = fs::read_to_string(logs.path(5201)).unwrap();
        assert!(log.ends_with(&format!("\n{}", text(11, "b"))));
        let read = read_log(&log);
        assert_eq!(read.items.len(), 1);
        assert_eq!(read.damage.len(), 1);
        assert_eq!(read.damage[0].kind, DamageKind::Truncated);
        // A clean file gets nothing extra.
        logs.record(5202, &entry(12, "c")).written.unwrap();
        logs.record(5202, &entry(13, "d")).written.unwrap();
        let log = fs::read_to_string(logs.path(5202)).unwrap();
        assert_eq!(log, text(12, "c") + &text(13, "d"));
    }

    #[test]
    fn ids_name_the_file_and_offset_even_without_loading() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = LogDir::open(tmp.path()).unwrap();
        let a = logs.record(5201, &entry(10, "a")).result.unwrap();
        let b = logs.record(5201, &entry(11, "b")).result.unwrap();
        assert_eq!(a.id, "5201-10-0");
        assert_eq!(b.id, format!("5201-10-{}", text(10, "a").len()));
        // Another run that did not load the logs reads the key from the file.
        let again = LogDir::open(tmp.path()).unwrap();
        let c = again.record(5201, &entry(12, "c")).result.unwrap();
        let offset = text(10, "a").len() + text(11, "b").len();
        assert_eq!(c.id, format!("5201-10-{offset}"));
    }

    #[test]
    fn a_log_rotates_before_it_grows_too_big() {
        let tmp = tempfile::tempdir().unwrap();
        let size = text(10, "a").len() as u64;
        let logs = LogDir::open(tmp.path()).unwrap().with_retention(Retention {
            max_size: Some(size * 2),
            keep: 1,
        });
        let first = logs.record(5201, &entry(10, "a"));
        let second = logs.record(5201, &entry(11, "b"));
        assert!(first.rotated.is_none() && second.rotated.is_none());
        let third = logs.record(5201, &entry(12, "c"));
        assert_eq!(
            third.rotated,
            Some(Rotated {
                log: LogKey::Port(5201),
                keep: 1
            })
        );
        assert_eq!(third.result.unwrap().id, "5201-12-0");
        let rotated = fs::read_to_string(logs.generation_path(5201, 1)).unwrap();
        assert_eq!(rotated, text(10, "a") + &text(11, "b"));
        assert_eq!(fs::read_to_string(logs.path(5201)).unwrap(), text(12, "c"));
        // A marker never rotates; the entry after it does.
        logs.append_cleared(5201).unwrap();
        logs.append_cleared(5201).unwrap();
        let fourth = logs.record(5201, &entry(13, "d"));
        assert!(fourth.rotated.is_some());
        // Only one copy is kept: the first file is gone.
        let rotated = fs::read_to_string(logs.generation_path(5201, 1)).unwrap();
        assert_eq!(rotated, text(12, "c") + "{}\n{}\n");
        assert!(!logs.generation_path(5201, 2).exists());
        assert_eq!(fourth.result.unwrap().id, "5201-13-0");
    }

    #[test]
    fn a_full_device_is_an_error_naming_the_file_and_keeps_the_result() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = LogDir::open(tmp.path()).unwrap();
        // Writes to /dev/full fail with ENOSPC, as on a full disk.
        std::os::unix::fs::symlink("/dev/full", logs.path(5201)).unwrap();
        let recorded = logs.record(5201, &entry(10, "a"));
        let err = recorded.written.unwrap_err();
        assert!(err.to_string().contains("port-5201.json"), "{err}");
        assert!(err.to_string().contains("No space left"), "{err}");
        assert_eq!(recorded.result.and_then(|r| r.name).as_deref(), Some("a"));
        // A directory where the log should be.
        fs::create_dir(logs.path(5202)).unwrap();
        let err = logs.append_cleared(5202).unwrap_err();
        assert!(err.to_string().contains("port-5202.json"), "{err}");
    }
}
