//! `port-<PORT>.json` log files in one directory: one-write appends, and
//! loading every log (stock-written or ours) at start-up.
//!
//! Text handling lives in [`super::reader`], summaries in [`super::summary`];
//! this module owns the files.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::reader::{read_log_each, Damage, Detail, LogItem};
use super::results::ResultsStore;
use super::summary::{summarize, TestResult};

/// The directory holding one `port-<PORT>.json` per iperf3 port.
#[derive(Debug, Clone)]
pub struct LogDir {
    dir: PathBuf,
}

/// What [`LogDir::append_cleared`] writes: an empty object as cJSON's pretty
/// printer renders it, so readers that split at `{`/`}` lines see it too.
pub const CLEARED_MARKER: &str = "{\n}\n";

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
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log file of `port`.
    pub fn path(&self, port: u16) -> PathBuf {
        self.dir.join(format!("port-{port}.json"))
    }

    /// Appends `text` (one whole pretty-printed entry ending in `\n`) to the
    /// port's log with a single write on a file opened in append mode.
    ///
    /// `O_APPEND` makes each `write` land at the end of the file atomically
    /// with respect to other appends, so concurrent appends never
    /// interleave; only a short write (disk full, file size limit, signal)
    /// makes a second one. If the entry cannot be written whole, what was
    /// written of it is cut off again, so the file never keeps half an
    /// entry. A file whose last line is unfinished (a torn tail left by a
    /// crash or another program) gets a line break first, so the new entry
    /// starts on a line of its own.
    pub fn append(&self, port: u16, text: &str) -> io::Result<()> {
        let path = self.path(port);
        let shown = path.display();
        let file = fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
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
        match write_whole(&file, bytes) {
            Ok(()) => Ok(()),
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

    /// Appends the `{}` clear marker ([`CLEARED_MARKER`]) to the port's log.
    pub fn append_cleared(&self, port: u16) -> io::Result<()> {
        self.append(port, CLEARED_MARKER)
    }
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

/// What loading the log directory at start-up found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every result, oldest first, with the latest-per-port table as the
    /// files left it (after their last `{}` marker).
    pub store: super::results::ResultsStore,
    /// One line per damaged stretch skipped or file that could not be read.
    pub warnings: Vec<String>,
}

/// The port of a canonical log file name, `port-<N>.json` (no sign, no
/// leading zeros, 1..=65535).
fn port_of(name: &str) -> Option<u16> {
    let digits = name.strip_prefix("port-")?.strip_suffix(".json")?;
    let port: u16 = digits.parse().ok()?;
    (port != 0 && port.to_string() == digits).then_some(port)
}

/// The results of one log file, in file order, and which of them is the
/// port's latest (the last one after the last `{}` marker).
struct FileResults {
    results: Vec<TestResult>,
    latest: Option<usize>,
}

impl LogDir {
    /// Loads every `port-*.json` in the directory (stock-written or ours).
    /// `ports` are the ports this run serves (the latest-per-port table).
    pub fn load(&self, ports: &[u16]) -> Loaded {
        let mut warnings = Vec::new();
        let mut files: Vec<(u16, PathBuf)> = match fs::read_dir(&self.dir) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .filter_map(|e| Some((port_of(e.file_name().to_str()?)?, e.path())))
                .collect(),
            Err(e) => {
                warnings.push(format!(
                    "{}: cannot list the log directory: {e}",
                    self.dir.display()
                ));
                Vec::new()
            }
        };
        files.sort();

        // Every result with the order it was found in, and whether it is its
        // port's latest.
        let mut found: Vec<(TestResult, bool)> = Vec::new();
        // One file at a time, each parsed in pieces in parallel (one per
        // core) while the next one is read: years of history load in a
        // fraction of the time on a Pi's four cores, however the tests are
        // spread over the ports, and at most two files' text is in memory.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::thread::scope(|scope| {
            let read = |i: usize| {
                let (port, path) = files.get(i)?;
                Some((*port, path, scope.spawn(move || read_text(path))))
            };
            let mut next = read(0);
            for i in 1..=files.len() {
                let Some((port, path, reading)) = std::mem::replace(&mut next, read(i)) else {
                    break;
                };
                let text = match reading.join() {
                    Ok(Ok(text)) => text,
                    Ok(Err(warning)) => {
                        warnings.push(warning);
                        continue;
                    }
                    Err(_) => {
                        warnings.push(format!("{}: cannot read", path.display()));
                        continue;
                    }
                };
                let Some(file) = read_file(port, path, &text, cores, &mut warnings) else {
                    continue;
                };
                for (i, result) in file.results.into_iter().enumerate() {
                    found.push((result, file.latest == Some(i)));
                }
            }
        });
        // Oldest first; the sort is stable, so equal timestamps keep port and
        // file order.
        found.sort_by_key(|(result, _)| result.timestamp);

        let mut store = ResultsStore::new(ports);
        for (result, latest) in found {
            if latest {
                store.push(result);
            } else {
                store.push_history(result);
            }
        }
        Loaded { store, warnings }
    }
}

/// The text of a log file, or a warning naming it.
fn read_text(path: &Path) -> Result<String, String> {
    let shown = path.display();
    // Only regular files: reading a FIFO would block start-up.
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Err(format!("{shown}: skipped: not a regular file")),
        Err(e) => return Err(format!("{shown}: cannot read: {e}")),
    }
    let bytes = fs::read(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
    // Checked as UTF-8 first (fast, and the text is not copied); only a
    // file with invalid bytes pays for their replacement.
    Ok(String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// The results of `text`, port `port`'s log at `path`, read in up to
/// `cores` pieces at once; damage becomes warnings naming the file.
fn read_file(
    port: u16,
    path: &Path,
    text: &str,
    cores: usize,
    warnings: &mut Vec<String>,
) -> Option<FileResults> {
    let shown = path.display();
    let pieces = pieces(text, cores);
    let read: Vec<Option<Piece>> = std::thread::scope(|scope| {
        let handles: Vec<_> = pieces
            .iter()
            .map(|&(_, piece)| scope.spawn(move || read_piece(port, piece)))
            .collect();
        handles.into_iter().map(|h| h.join().ok()).collect()
    });
    let mut file = FileResults {
        results: Vec::new(),
        latest: None,
    };
    for (piece, &(offset, _)) in read.into_iter().zip(&pieces) {
        let Some(piece) = piece else {
            warnings.push(format!("{shown}: cannot read: the reader failed"));
            return None;
        };
        for result in piece.results {
            match result {
                Some(result) => {
                    file.results.push(result);
                    file.latest = Some(file.results.len() - 1);
                }
                None => file.latest = None,
            }
        }
        if !piece.damage.is_empty() {
            // Damage is rare: only then are the lines before the piece counted.
            let before = memchr::memchr_iter(b'\n', &text.as_bytes()[..offset]).count();
            warnings.extend(piece.damage.into_iter().map(|mut damage| {
                damage.line += before;
                format!("{shown}: {damage}")
            }));
        }
    }
    Some(file)
}

/// What one piece of a log file held: results in order (`None` for a `{}`
/// marker), and damage with line numbers counted from the piece's start.
struct Piece {
    results: Vec<Option<TestResult>>,
    damage: Vec<Damage>,
}

/// Reads one piece of a log file of `port`; each entry is summarised as
/// soon as it is parsed and then dropped.
fn read_piece(port: u16, text: &str) -> Piece {
    let mut results = Vec::new();
    let damage = read_log_each(text, Detail::Summary, |item| match item {
        LogItem::Entry(entry) => results.extend(summarize(port, &entry).map(Some)),
        LogItem::Cleared => results.push(None),
    });
    Piece { results, damage }
}

/// `text` cut into up to `n` pieces of about the same size, with where each
/// starts. Each cut is just before a line that is exactly `{`: such a line
/// starts an entry whatever came before it (an unfinished entry before it
/// is reported truncated at the end of its piece, as it would be there), so
/// the pieces read apart find what the whole text read at once does.
fn pieces(text: &str, n: usize) -> Vec<(usize, &str)> {
    let bytes = text.as_bytes();
    let mut cuts = vec![0];
    for k in 1..n {
        let from = (text.len() / n * k).max(cuts[cuts.len() - 1]);
        let next = memchr::memmem::find_iter(&bytes[from..], b"\n{")
            .map(|i| from + i + 1)
            .find(|&at| matches!(&bytes[at + 1..], [b'\n', ..] | [b'\r', b'\n', ..]));
        match next {
            Some(cut) => cuts.push(cut),
            None => break,
        }
    }
    cuts.push(text.len());
    cuts.windows(2).map(|w| (w[0], &text[w[0]..w[1]])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::json::{to_pretty, Json};
    use crate::store::reader::read_log;

    const STOCK_LOG: &str = include_str!("../../tests/fixtures/stock-3.12.json");

    /// A small pretty entry of `port`'s test at `timesecs`, named `name`.
    fn entry(timesecs: i64, name: &str) -> String {
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
        to_pretty(
            &Json::obj()
                .with("start", start)
                .with("intervals", Json::Arr(vec![]))
                .with("end", end)
                .with("extra_data", name),
        )
    }

    fn names(results: &[TestResult]) -> Vec<&str> {
        results
            .iter()
            .map(|r| r.name.as_deref().unwrap_or("-"))
            .collect()
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
    fn append_adds_whole_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = LogDir::open(tmp.path()).unwrap();
        logs.append(5201, &entry(10, "a")).unwrap();
        logs.append_cleared(5201).unwrap();
        logs.append(5201, &entry(11, "b")).unwrap();
        let text = fs::read_to_string(logs.path(5201)).unwrap();
        assert_eq!(
            text,
            format!("{}{{\n}}\n{}", entry(10, "a"), entry(11, "b"))
        );
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
                        let text = to_pretty(
                            &Json::obj()
                                .with("t", t)
                                .with("i", i)
                                .with("pad", big.as_str()),
                        );
                        logs.append(5201, &text).unwrap();
                    }
                });
            }
        });
        let text = fs::read_to_string(logs.path(5201)).unwrap();
        let read = read_log(&text);
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
        let whole = entry(10, "a");
        fs::write(logs.path(5201), &whole[..whole.len() / 2]).unwrap();
        logs.append(5201, &entry(11, "b")).unwrap();
        let text = fs::read_to_string(logs.path(5201)).unwrap();
        assert!(text.ends_with(&format!("\n{}", entry(11, "b"))));
        let read = read_log(&text);
        assert_eq!(read.items.len(), 1);
        assert_eq!(read.damage.len(), 1);
        assert_eq!(
            read.damage[0].kind,
            super::super::reader::DamageKind::Truncated
        );
        // A clean file gets nothing extra.
        logs.append(5202, &entry(12, "c")).unwrap();
        logs.append(5202, &entry(13, "d")).unwrap();
        let text = fs::read_to_string(logs.path(5202)).unwrap();
        assert_eq!(text, entry(12, "c") + &entry(13, "d"));
    }

    #[test]
    fn a_full_device_is_an_error_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = LogDir::open(tmp.path()).unwrap();
        // Writes to /dev/full fail with ENOSPC, as on a full disk.
        std::os::unix::fs::symlink("/dev/full", logs.path(5201)).unwrap();
        let err = logs.append(5201, &entry(10, "a")).unwrap_err();
        assert!(err.to_string().contains("port-5201.json"), "{err}");
        assert!(err.to_string().contains("No space left"), "{err}");
        // A directory where the log should be.
        fs::create_dir(logs.path(5202)).unwrap();
        let err = logs.append(5202, &entry(10, "a")).unwrap_err();
        assert!(err.to_string().contains("port-5202.json"), "{err}");
    }

    #[test]
    fn load_sorts_by_time_and_honours_clear_markers() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = LogDir::open(tmp.path()).unwrap();
        logs.append(5201, &entry(30, "p1-a")).unwrap();
        logs.append(5201, &entry(10, "p1-b")).unwrap();
        logs.append(5202, &entry(20, "p2-a")).unwrap();
        logs.append_cleared(5202).unwrap();
        logs.append(5203, &entry(20, "p3-a")).unwrap();
        logs.append_cleared(5203).unwrap();
        logs.append(5203, &entry(5, "p3-b")).unwrap();
        // A port this run does not serve: history only.
        logs.append(6000, &entry(1, "other")).unwrap();

        let loaded = LogDir::open(tmp.path())
            .unwrap()
            .load(&[5201, 5202, 5203, 5204]);
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        // Stable: equal timestamps keep port order.
        assert_eq!(
            names(loaded.store.all()),
            vec!["other", "p3-b", "p1-b", "p2-a", "p3-a", "p1-a"]
        );
        let latest: Vec<_> = loaded
            .store
            .latest()
            .iter()
            .map(|r| r.and_then(|r| r.name.as_deref()))
            .collect();
        // Latest is the file's last entry, not the newest timestamp.
        assert_eq!(latest, vec![Some("p1-b"), None, Some("p3-b"), None]);
    }

    #[test]
    fn load_reads_stock_logs_and_names_damage() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = LogDir::open(tmp.path()).unwrap();
        let mut damaged = b"\xff\xfejunk\n".to_vec();
        damaged.extend_from_slice(STOCK_LOG.as_bytes());
        damaged.extend_from_slice(&STOCK_LOG.as_bytes()[..300]);
        fs::write(logs.path(5201), &damaged).unwrap();
        // Ignored: not a canonical log name.
        fs::write(tmp.path().join("port-05201.json"), STOCK_LOG).unwrap();
        fs::write(tmp.path().join("notes.txt"), "hello").unwrap();
        // Unreadable: a directory with a log's name.
        fs::create_dir(logs.path(5202)).unwrap();

        let loaded = logs.load(&[5201]);
        assert_eq!(loaded.store.all().len(), 7);
        assert!(loaded.store.all().iter().all(|r| r.port == 5201));
        assert_eq!(loaded.store.latest()[0].map(|r| r.streams), Some(2));
        let shown = logs.path(5201).display().to_string();
        assert_eq!(loaded.warnings.len(), 3, "{:?}", loaded.warnings);
        assert!(loaded.warnings[0].starts_with(&shown) && loaded.warnings[0].contains("line 1"));
        assert!(loaded.warnings[1].starts_with(&shown) && loaded.warnings[1].contains("truncated"));
        assert!(loaded.warnings[2].contains("port-5202.json"));
    }

    #[test]
    fn pieces_read_apart_find_what_the_whole_file_does() {
        let path = Path::new("port-5201.json");
        // Garbage, an entry cut mid-line with the next appended to it, a
        // marker, and a truncated tail, between whole entries.
        let second = STOCK_LOG.find("\n{\n").expect("two entries") + 1;
        let text = format!(
            "junk\n{STOCK_LOG}{}{}{{\n}}\n{}\n{STOCK_LOG}{}",
            &STOCK_LOG[..second / 2],
            &STOCK_LOG[second..],
            entry(5, "after-marker"),
            &STOCK_LOG[..300]
        );
        let mut whole_warnings = Vec::new();
        let whole = read_file(5201, path, &text, 1, &mut whole_warnings).expect("read");
        assert_eq!(whole.results.len(), 21);
        assert_eq!(whole_warnings.len(), 3, "{whole_warnings:?}");
        for cores in 2..=12 {
            let cut = pieces(&text, cores);
            assert_eq!(cut.iter().map(|(_, p)| *p).collect::<String>(), text);
            assert!(cut.len() > 1 || cores == 1);
            for (offset, piece) in &cut[1..] {
                assert!(piece.starts_with("{\n") && text[..*offset].ends_with('\n'));
            }
            let mut warnings = Vec::new();
            let file = read_file(5201, path, &text, cores, &mut warnings).expect("read");
            assert_eq!(file.results, whole.results, "{cores} pieces");
            assert_eq!(file.latest, whole.latest, "{cores} pieces");
            assert_eq!(warnings, whole_warnings, "{cores} pieces");
        }
    }

    #[test]
    fn load_of_an_empty_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let loaded = LogDir::open(tmp.path()).unwrap().load(&[5201, 5202]);
        assert!(loaded.store.all().is_empty());
        assert_eq!(loaded.store.latest(), vec![None, None]);
        assert!(loaded.warnings.is_empty());
    }

    #[test]
    fn canonical_names_only() {
        assert_eq!(port_of("port-5201.json"), Some(5201));
        assert_eq!(port_of("port-65535.json"), Some(65535));
        for name in [
            "port-0.json",
            "port-05201.json",
            "port-+1.json",
            "port-65536.json",
            "port-1.json~",
            "x-1.json",
        ] {
            assert_eq!(port_of(name), None, "{name}");
        }
    }
}
