//! Loading every `port-<PORT>.json` log (stock-written or ours), and
//! `ndt7.json`, at start-up into a [`ResultsStore`]: files read one after the other, each
//! parsed in pieces on every core, damage turned into warnings that name
//! the file and line.

use std::fs;
use std::path::{Path, PathBuf};

use super::log::LogDir;
use super::reader::{read_log_each, Damage, Detail, LogItem};
use super::result::TestResult;
use super::results::ResultsStore;
use super::summary::summarize;

/// What loading the log directory at start-up found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every result, oldest first, with the latest-per-port table as the
    /// files left it (after their last `{}` marker).
    pub store: ResultsStore,
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
        let mut files: Vec<(u16, PathBuf)> = match fs::read_dir(self.dir()) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .filter_map(|e| Some((port_of(e.file_name().to_str()?)?, e.path())))
                .collect(),
            Err(e) => {
                warnings.push(format!(
                    "{}: cannot list the log directory: {e}",
                    self.dir().display()
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
        found.extend(
            self.load_ndt7(&mut warnings)
                .into_iter()
                .map(|r| (r, false)),
        );
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
    use crate::report::json::to_pretty;
    use crate::store::log::tests::entry;

    const STOCK_LOG: &str = include_str!("../../tests/fixtures/stock-3.12.json");

    fn names(results: &[TestResult]) -> Vec<&str> {
        results
            .iter()
            .map(|r| r.name.as_deref().unwrap_or("-"))
            .collect()
    }

    #[test]
    fn load_sorts_by_time_and_honours_clear_markers() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = LogDir::open(tmp.path()).unwrap();
        let record = |port, timesecs, name| logs.record(port, &entry(timesecs, name)).written;
        record(5201, 30, "p1-a").unwrap();
        record(5201, 10, "p1-b").unwrap();
        record(5202, 20, "p2-a").unwrap();
        logs.append_cleared(5202).unwrap();
        record(5203, 20, "p3-a").unwrap();
        logs.append_cleared(5203).unwrap();
        record(5203, 5, "p3-b").unwrap();
        // A port this run does not serve: history only.
        record(6000, 1, "other").unwrap();

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
            to_pretty(&entry(5, "after-marker")),
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
