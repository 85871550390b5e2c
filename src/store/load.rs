//! Loading every log (`port-<PORT>.json` and its rotated copies,
//! stock-written or ours, and `ndt7.json` and its rotated copies) at
//! start-up into a [`ResultsStore`]: files read
//! one after the other in bounded chunks ([`super::chunks`]), each chunk
//! parsed in pieces on every core, each test kept compact with its id as
//! soon as it is summarised; damage turned into warnings that name the
//! file and line.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use super::chunks::{each_chunk, next_entry_start, open_log, CHUNK};
use super::ids::LogKey;
use super::log::LogDir;
use super::ndt7_log::load_ndt7;
use super::reader::{read_log_at, Damage, Detail, LogItem};
use super::result::TestResult;
use super::results::ResultsStore;
use super::rotate::log_name;
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

/// A port's latest test as loading found it so far: file and offset.
type Latest = Option<(u32, u64)>;

/// One log file to load.
struct LogFile {
    log: LogKey,
    generation: u32,
    path: PathBuf,
}

impl LogDir {
    /// Loads every `port-*.json` and `ndt7.json` (and their rotated
    /// copies, `<name>.json.<N>`) in the directory. `ports` are the ports this run serves (the latest-per-port
    /// table).
    pub fn load(&self, ports: &[u16]) -> Loaded {
        let mut warnings = Vec::new();
        let mut files: Vec<LogFile> = match fs::read_dir(self.dir()) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let (log, generation) = log_name(e.file_name().to_str()?)?;
                    Some(LogFile {
                        log,
                        generation,
                        path: e.path(),
                    })
                })
                .collect(),
            Err(e) => {
                warnings.push(format!(
                    "{}: cannot list the log directory: {e}",
                    self.dir().display()
                ));
                Vec::new()
            }
        };
        // Per log, oldest copy first: the files are one log in that order.
        files.sort_by_key(|f| (f.log, std::cmp::Reverse(f.generation)));

        let mut store = ResultsStore::new(ports);
        let mut latest: BTreeMap<u16, Latest> = BTreeMap::new();
        // Each chunk is parsed in pieces in parallel (one per core): years
        // of history load in a fraction of the time on a Pi's four cores.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        for file in &files {
            let key = match file.log {
                LogKey::Port(port) => {
                    let carried = latest.entry(port).or_default();
                    load_file(port, file, cores, CHUNK, &mut store, carried, &mut warnings)
                }
                LogKey::Ndt7 => load_ndt7(
                    &file.path,
                    file.generation,
                    CHUNK,
                    &mut store,
                    &mut warnings,
                ),
            };
            if file.generation == 0 {
                self.remember_key(file.log, key);
            }
        }
        let latest = latest
            .into_iter()
            .filter_map(|(port, at)| Some((port, at?)))
            .collect();
        store.sort(&latest);
        // The parsing threads freed tens of MB after a long history.
        crate::sys::release_free_memory();
        Loaded { store, warnings }
    }
}

/// Loads one file of `port`'s log into `store`, carrying the port's latest
/// test through it; returns the file's key (its first test's start time), if it has a
/// test. Damage becomes warnings naming the file.
fn load_file(
    port: u16,
    file: &LogFile,
    cores: usize,
    chunk: usize,
    store: &mut ResultsStore,
    latest: &mut Latest,
    warnings: &mut Vec<String>,
) -> Option<i64> {
    let shown = file.path.display();
    let opened = open_log(&file.path).map_err(|w| warnings.push(w)).ok()?;
    let mut key: Option<(i64, u32)> = None;
    // Damage with where its piece starts in the file; its line numbers are
    // made absolute only at the end (damage is rare, counting lines is not
    // free).
    let mut damaged: Vec<(u64, Damage)> = Vec::new();
    let read = each_chunk(opened, chunk, |base, text| {
        let Some(pieces) = read_chunk(port, text, cores) else {
            warnings.push(format!("{shown}: cannot read: the reader failed"));
            return false;
        };
        for (offset, piece) in pieces {
            for (at, result) in piece.results {
                let Some(result) = result else {
                    *latest = None;
                    continue;
                };
                let (_, index) = *key.get_or_insert_with(|| {
                    let filekey = result.timestamp;
                    let log = LogKey::Port(port);
                    (filekey, store.file(log, filekey, file.generation))
                });
                let at = base + (offset + at) as u64;
                store.push_at(&result, index, at);
                *latest = Some((index, at));
            }
            let start = base + offset as u64;
            damaged.extend(piece.damage.into_iter().map(|d| (start, d)));
        }
        true
    });
    if let Err(e) = read {
        warnings.push(format!("{shown}: cannot read: {e}"));
    }
    if !damaged.is_empty() {
        let starts: Vec<u64> = damaged.iter().map(|(start, _)| *start).collect();
        let lines = lines_before(&file.path, &starts);
        warnings.extend(
            damaged
                .into_iter()
                .zip(lines)
                .map(|((_, mut damage), before)| {
                    damage.line += before;
                    format!("{shown}: {damage}")
                }),
        );
    }
    key.map(|(filekey, _)| filekey)
}

/// The number of line ends before each of `offsets` (ascending) in the
/// file at `path` (0 for what cannot be read).
fn lines_before(path: &std::path::Path, offsets: &[u64]) -> Vec<usize> {
    use std::io::Read;
    let mut counts = Vec::with_capacity(offsets.len());
    let Ok(file) = fs::File::open(path) else {
        return vec![0; offsets.len()];
    };
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let (mut at, mut lines) = (0u64, 0usize);
    let mut block = vec![0u8; 1 << 20];
    for &offset in offsets {
        while at < offset {
            let want = usize::try_from(offset - at)
                .unwrap_or(usize::MAX)
                .min(block.len());
            let n = match reader.read(&mut block[..want]) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            lines += memchr::memchr_iter(b'\n', &block[..n]).count();
            at += n as u64;
        }
        counts.push(lines);
    }
    counts
}

/// What one piece of a log file held: results in order with the offset of
/// their `{` in the piece (`None` for a `{}` marker), and damage with line
/// numbers counted from the piece's start.
struct Piece {
    results: Vec<(usize, Option<TestResult>)>,
    damage: Vec<Damage>,
}

/// Reads one chunk in up to `cores` pieces at once: each piece with where
/// it starts in the chunk; `None` if a reader failed.
fn read_chunk(port: u16, text: &str, cores: usize) -> Option<Vec<(usize, Piece)>> {
    let pieces = pieces(text, if text.len() < SMALL { 1 } else { cores });
    if pieces.len() == 1 {
        return Some(vec![(0, read_piece(port, text))]);
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = pieces
            .iter()
            .map(|&(offset, piece)| (offset, scope.spawn(move || read_piece(port, piece))))
            .collect();
        handles
            .into_iter()
            .map(|(offset, h)| Some((offset, h.join().ok()?)))
            .collect()
    })
}

/// Reads one piece of a log file of `port`; each entry is summarised as
/// soon as it is parsed and then dropped.
fn read_piece(port: u16, text: &str) -> Piece {
    let mut results = Vec::new();
    let damage = read_log_at(text, Detail::Summary, |at, item| match item {
        LogItem::Entry(entry) => results.extend(summarize(port, &entry).map(|r| (at, Some(r)))),
        LogItem::Cleared => results.push((at, None)),
    });
    Piece { results, damage }
}

/// Below this a chunk is read in one piece (threads cost more than they save).
const SMALL: usize = 256 * 1024;

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
        match next_entry_start(bytes, from) {
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

    fn names(store: &ResultsStore) -> Vec<String> {
        store
            .iter()
            .map(|r| r.name.unwrap_or_else(|| "-".into()))
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
            names(&loaded.store),
            vec!["other", "p3-b", "p1-b", "p2-a", "p3-a", "p1-a"]
        );
        let latest: Vec<_> = loaded
            .store
            .latest()
            .into_iter()
            .map(|r| r.and_then(|r| r.name))
            .collect();
        // Latest is the file's last entry, not the newest timestamp.
        let want = [Some("p1-b"), None, Some("p3-b"), None].map(|n| n.map(str::to_string));
        assert_eq!(latest, want);
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
        assert_eq!(loaded.store.len(), 7);
        assert!(loaded.store.iter().all(|r| r.port == 5201));
        assert_eq!(
            loaded.store.latest()[0].as_ref().map(|r| r.streams),
            Some(2)
        );
        let shown = logs.path(5201).display().to_string();
        assert_eq!(loaded.warnings.len(), 3, "{:?}", loaded.warnings);
        assert!(loaded.warnings[0].starts_with(&shown) && loaded.warnings[0].contains("line 1"));
        assert!(loaded.warnings[1].starts_with(&shown) && loaded.warnings[1].contains("truncated"));
        assert!(loaded.warnings[2].contains("port-5202.json"));
    }

    /// Loads `text` as port 5201's log, `chunk` bytes and `cores` pieces
    /// at a time: the results with their ids, the latest, the warnings.
    fn load_text(text: &str, cores: usize, chunk: usize) -> (Vec<TestResult>, Latest, Vec<String>) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("port-5201.json");
        fs::write(&path, text).unwrap();
        let file = LogFile {
            log: LogKey::Port(5201),
            generation: 0,
            path,
        };
        let (mut store, mut latest, mut warnings) = (ResultsStore::new(&[5201]), None, Vec::new());
        load_file(
            5201,
            &file,
            cores,
            chunk,
            &mut store,
            &mut latest,
            &mut warnings,
        );
        let warnings = warnings
            .into_iter()
            .map(|w| {
                w.rsplit_once(": line")
                    .map_or(w.clone(), |(_, l)| l.to_string())
            })
            .collect();
        (store.iter().collect(), latest, warnings)
    }

    #[test]
    fn chunks_and_pieces_read_apart_find_what_the_whole_file_does() {
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
        let (whole, latest, whole_warnings) = load_text(&text, 1, text.len() + 1);
        assert_eq!(whole.len(), 21);
        assert_eq!(whole_warnings.len(), 3, "{whole_warnings:?}");
        assert!(latest.is_some());
        // Every id points at its entry's `{`, and names the first test.
        let first = whole[0].timestamp;
        for r in &whole {
            let id = crate::store::ids::TestId::parse(&r.id).expect("id");
            assert_eq!(id.filekey, first);
            let at = usize::try_from(id.offset).unwrap();
            assert!(text[at..].starts_with("{\n"), "{}", r.id);
        }
        for cores in 2..=12 {
            let cut = pieces(&text, cores);
            assert_eq!(cut.iter().map(|(_, p)| *p).collect::<String>(), text);
            assert!(cut.len() > 1);
            for (offset, piece) in &cut[1..] {
                assert!(piece.starts_with("{\n") && text[..*offset].ends_with('\n'));
            }
        }
        for chunk in [64, 1000, 5000, text.len() / 3] {
            let (results, at, warnings) = load_text(&text, 1, chunk);
            assert_eq!(results, whole, "chunks of {chunk}");
            assert_eq!(at, latest, "chunks of {chunk}");
            assert_eq!(warnings, whole_warnings, "chunks of {chunk}");
        }
    }

    #[test]
    fn rotated_copies_load_as_one_log_with_their_ids() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = LogDir::open(tmp.path()).unwrap();
        let a = logs.record(5201, &entry(10, "a")).result.unwrap();
        logs.append_cleared(5201).unwrap();
        fs::rename(logs.path(5201), tmp.path().join("port-5201.json.2")).unwrap();
        let b = logs.record(5201, &entry(20, "b")).result.unwrap();
        fs::rename(logs.path(5201), tmp.path().join("port-5201.json.1")).unwrap();
        // The live file holds only a marker: the latest is the copy's.
        logs.append_cleared(5202).unwrap();
        let loaded = LogDir::open(tmp.path()).unwrap().load(&[5201, 5202]);
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let ids: Vec<_> = loaded.store.iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![a.id.clone(), b.id.clone()]);
        assert_eq!(ids, vec!["5201-10-0", "5201-20-0"]);
        assert_eq!(
            loaded.store.latest()[0].as_ref().map(|r| r.timestamp),
            Some(20)
        );
    }

    #[test]
    fn load_of_an_empty_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let loaded = LogDir::open(tmp.path()).unwrap().load(&[5201, 5202]);
        assert!(loaded.store.is_empty());
        assert_eq!(loaded.store.latest(), vec![None, None]);
        assert!(loaded.warnings.is_empty());
    }
}
