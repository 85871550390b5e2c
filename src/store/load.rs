//! Loading every log (`port-<PORT>.json` and its rotated copies,
//! stock-written or ours, and `ndt7.json` and its rotated copies) at
//! start-up into a [`ResultsStore`]: files read one after the other in
//! bounded chunks ([`super::chunks`]), each chunk parsed in pieces on every
//! core, each test kept compact with its id as soon as it is summarised;
//! damage turned into warnings that name the file and line.
//!
//! A file's persisted index ([`super::index_dir`]) stands in for parsing
//! the part of it that the index covers; only what was appended since is
//! parsed. A file whose index is missing or does not hold is parsed whole
//! and its index written, up to the start of its last entry (so what is
//! appended later starts where the index ends); a rotated copy is indexed
//! in the background when the rotation happens.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::chunks::{each_chunk, last_entry_start_in, next_entry_start, open_log, CHUNK};
use super::compact::NO_FILE;
use super::ids::LogKey;
use super::index::{About, Covered, Identity, Latest as Effect};
use super::index_dir::{fingerprint_of, identity, IndexDir};
use super::log::LogDir;
use super::ndt7_log::result_of;
use super::reader::{read_log_at, Damage, Detail, LogItem};
use super::result::TestResult;
use super::results::ResultsStore;
use super::rotate::log_name;
use super::summary::summarize;
use super::verdict::with_limit;

/// What loading the log directory at start-up found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every result, oldest first, with the latest-per-port table as the
    /// files left it (after their last `{}` marker).
    pub store: ResultsStore,
    /// One line per damaged stretch skipped or file that could not be read.
    pub warnings: Vec<String>,
    /// How many of the tests were read from indexes rather than parsed.
    pub indexed: usize,
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
    /// copies, `<name>.json.<N>`) in the directory. `ports` are the ports
    /// this run serves (the latest-per-port table). Indexes are used and
    /// written as the module says; those of logs now gone are removed.
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
        let mut indexes = IndexDir::new(self.dir());
        let mut live = HashSet::new();
        let mut indexed = 0;
        // Each chunk is parsed in pieces in parallel (one per core): years
        // of history load in a fraction of the time on a Pi's four cores.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        for file in &files {
            let mut none = None;
            let carried = match file.log {
                LogKey::Port(port) => latest.entry(port).or_default(),
                LogKey::Ndt7 | LogKey::Probe => &mut none,
            };
            let mut loader = Loader {
                file,
                cores,
                chunk: CHUNK,
                store: &mut store,
                warnings: &mut warnings,
                indexed: 0,
            };
            let key = loader.load(carried, &mut indexes, &mut live);
            indexed += loader.indexed;
            self.remember_key(file.log, file.generation, key);
        }
        indexes.remove_stale(&live);
        let latest = latest
            .into_iter()
            .filter_map(|(port, at)| Some((port, at?)))
            .collect();
        store.sort(&latest);
        // The parsing threads freed tens of MB after a long history.
        crate::sys::release_free_memory();
        Loaded {
            store,
            warnings,
            indexed,
        }
    }

    /// Indexes `log`'s newest rotated copy (just renamed from the live
    /// file, no longer written) on a thread of its own, one core, so the
    /// next start need not parse it. Nothing waits for it: a start before
    /// it is done parses the copy itself.
    pub fn index_rotated(&self, log: LogKey) {
        let file = LogFile {
            log,
            generation: 1,
            path: self.log_path(log, 1),
        };
        let dir = self.dir().to_path_buf();
        let spawned = std::thread::Builder::new()
            .name("log-index".into())
            .spawn(move || {
                let (mut store, mut warnings) = (ResultsStore::new(&[]), Vec::new());
                let mut loader = Loader {
                    file: &file,
                    cores: 1,
                    chunk: CHUNK,
                    store: &mut store,
                    warnings: &mut warnings,
                    indexed: 0,
                };
                loader.load(&mut None, &mut IndexDir::new(&dir), &mut HashSet::new());
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot index a rotated log");
        }
    }
}

/// Loads one log file into a store.
struct Loader<'a> {
    file: &'a LogFile,
    cores: usize,
    chunk: usize,
    store: &'a mut ResultsStore,
    warnings: &'a mut Vec<String>,
    /// Tests read from the file's index.
    indexed: usize,
}

/// What loading a file has found so far.
#[derive(Debug)]
struct Progress {
    /// The file's key and its number in the store, once a test is found.
    key: Option<(i64, u32)>,
    /// What the file did to the port's latest test.
    latest: Effect,
    /// Damage so far, as warnings without the file's name.
    damage: Vec<String>,
    /// Whether everything so far was read (an index may be written).
    whole: bool,
}

impl Loader<'_> {
    /// Loads the file, carrying its port's latest test through it, with its
    /// index where one holds, writing one where it did not; returns the
    /// file's key (its first test's start time), if it has a test. Damage
    /// becomes warnings naming the file. The file's identity goes in `live`.
    fn load(
        &mut self,
        carried: &mut Latest,
        indexes: &mut IndexDir,
        live: &mut HashSet<Identity>,
    ) -> Option<i64> {
        let path = &self.file.path;
        let opened = open_log(path).map_err(|w| self.warnings.push(w)).ok()?;
        let meta = match opened.metadata() {
            Ok(meta) => meta,
            Err(e) => {
                self.warnings
                    .push(format!("{}: cannot read: {e}", path.display()));
                return None;
            }
        };
        let (len, id) = (meta.len(), identity(&meta));
        live.insert(id);
        // Where the index ends (or is to end): what follows is read anew.
        let cut = last_entry_start_in(&opened, len).unwrap_or(0);
        let mut progress = Progress {
            key: None,
            latest: Effect::Untouched,
            damage: Vec::new(),
            whole: true,
        };
        let first = self.store.len();
        let mut from = 0;
        if let Some(covered) = indexes.read(self.file.log, &opened, id, len) {
            if covered.about.len <= cut && self.apply(&covered, &mut progress) {
                from = covered.about.len;
            }
        }
        if cut > from {
            self.read_range(&opened, from, cut, &mut progress);
            if progress.whole && indexes.writes() {
                if let Ok(fingerprint) = fingerprint_of(&opened, cut) {
                    let about = About {
                        log: self.file.log,
                        identity: id,
                        len: cut,
                        fingerprint,
                        key: progress.key.map(|(key, _)| key),
                        latest: progress.latest,
                        damage: progress.damage.clone(),
                    };
                    let store = &*self.store;
                    indexes.write(&about, &store.records()[first..], store.texts());
                }
            }
        }
        self.read_range(&opened, cut.max(from), len, &mut progress);
        let shown = path.display();
        self.warnings
            .extend(progress.damage.iter().map(|d| format!("{shown}: {d}")));
        match (progress.latest, progress.key) {
            (Effect::Cleared, _) => *carried = None,
            (Effect::At(at), Some((_, file))) => *carried = Some((file, at)),
            _ => {}
        }
        progress.key.map(|(key, _)| key)
    }

    /// Puts what `covered` holds in the store as if its part of the file
    /// had been read; false (and nothing put) if it does not add up.
    fn apply(&mut self, covered: &Covered, progress: &mut Progress) -> bool {
        let about = &covered.about;
        let file = match about.key {
            Some(key) => self.store.file(self.file.log, key, self.file.generation),
            None if covered.records.is_empty() => NO_FILE,
            None => return false,
        };
        if !self
            .store
            .push_indexed(&covered.records, &covered.texts, file)
        {
            return false;
        }
        self.indexed += covered.records.len();
        progress.key = about.key.map(|key| (key, file));
        progress.latest = about.latest;
        progress.damage.clone_from(&about.damage);
        true
    }

    /// Reads bytes `from..to` of the file (`from` is 0 or the start of a
    /// line that is exactly `{`) into the store.
    fn read_range(&mut self, opened: &fs::File, from: u64, to: u64, progress: &mut Progress) {
        if from >= to {
            return;
        }
        let shown = self.file.path.display();
        let (log, generation, cores) = (self.file.log, self.file.generation, self.cores);
        let store = &mut *self.store;
        let warnings = &mut *self.warnings;
        // Damage with where its piece starts in the file; its line numbers
        // are made absolute only at the end (damage is rare, counting lines
        // is not free).
        let mut damaged: Vec<(u64, Damage)> = Vec::new();
        let mut reader = opened;
        // No bigger a buffer than the range needs (a tail is often one entry).
        let chunk = usize::try_from(to - from).map_or(self.chunk, |n| self.chunk.min(n + 1));
        let read = reader.seek(SeekFrom::Start(from)).and_then(|_| {
            each_chunk(reader.take(to - from), chunk, |base, text| {
                let base = from + base;
                let Some(pieces) = read_chunk(log, text, cores) else {
                    warnings.push(format!("{shown}: cannot read: the reader failed"));
                    progress.whole = false;
                    return false;
                };
                for (offset, piece) in pieces {
                    for (at, found) in piece.items {
                        let at = base + (offset + at) as u64;
                        let Found::Test(key, result) = found else {
                            progress.latest = Effect::Cleared;
                            continue;
                        };
                        let (_, file) = *progress
                            .key
                            .get_or_insert_with(|| (key, store.file(log, key, generation)));
                        if let Some(result) = result {
                            store.push_at(&result, file, at);
                            progress.latest = Effect::At(at);
                        }
                    }
                    let start = base + offset as u64;
                    damaged.extend(piece.damage.into_iter().map(|d| (start, d)));
                }
                true
            })
        });
        if let Err(e) = read {
            warnings.push(format!("{shown}: cannot read: {e}"));
            progress.whole = false;
        }
        if !damaged.is_empty() {
            let starts: Vec<u64> = damaged.iter().map(|(start, _)| *start).collect();
            let lines = lines_before(&self.file.path, &starts);
            progress.damage.extend(damaged.into_iter().zip(lines).map(
                |((_, mut damage), before)| {
                    damage.line += before;
                    damage.to_string()
                },
            ));
        }
    }
}

/// The number of line ends before each of `offsets` (ascending) in the
/// file at `path` (0 for what cannot be read).
fn lines_before(path: &Path, offsets: &[u64]) -> Vec<usize> {
    use std::io::Read;
    let mut counts = Vec::with_capacity(offsets.len());
    let Ok(file) = crate::sys::open_regular(path) else {
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

/// One item a piece of a log holds.
// Markers are rare: boxing every test to shrink them would cost more.
#[allow(clippy::large_enum_variant)]
enum Found {
    /// A test entry with the file key it gives (its start time) and its
    /// result, if it has one.
    Test(i64, Option<TestResult>),
    /// A `{}` marker (port logs only).
    Cleared,
}

/// What one piece of a log file held: items in order with the offset of
/// their `{` in the piece, and damage with line numbers counted from the
/// piece's start.
struct Piece {
    items: Vec<(usize, Found)>,
    damage: Vec<Damage>,
}

/// Reads one chunk of `log` in up to `cores` pieces at once: each piece
/// with where it starts in the chunk; `None` if a reader failed.
fn read_chunk(log: LogKey, text: &str, cores: usize) -> Option<Vec<(usize, Piece)>> {
    let pieces = pieces(text, if text.len() < SMALL { 1 } else { cores });
    if pieces.len() == 1 {
        return Some(vec![(0, read_piece(log, text))]);
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = pieces
            .iter()
            .map(|&(offset, piece)| (offset, scope.spawn(move || read_piece(log, piece))))
            .collect();
        handles
            .into_iter()
            .map(|(offset, h)| Some((offset, h.join().ok()?)))
            .collect()
    })
}

/// Reads one piece of `log`; each entry is summarised as soon as it is
/// parsed and then dropped. An ndt7 document gives the file its key even
/// without a subtest result; markers mean nothing there.
fn read_piece(log: LogKey, text: &str) -> Piece {
    let mut items = Vec::new();
    let detail = match log {
        LogKey::Port(_) => Detail::Summary,
        LogKey::Ndt7 | LogKey::Probe => Detail::Full,
    };
    let damage = read_log_at(text, detail, |at, item| match (log, item) {
        (LogKey::Port(port), LogItem::Entry(entry)) => {
            let result = summarize(port, &entry).map(|r| with_limit(r, &entry));
            items.extend(result.map(|r| (at, Found::Test(r.timestamp, Some(r)))))
        }
        (LogKey::Port(_), LogItem::Cleared) => items.push((at, Found::Cleared)),
        (LogKey::Ndt7, LogItem::Entry(value)) => {
            if let Ok(record) = serde_json::from_value::<crate::ndt7::record::Record>(value) {
                let key = record.timestamp().unwrap_or_default();
                items.push((at, Found::Test(key, result_of(&record, String::new()))));
            }
        }
        (LogKey::Probe, LogItem::Entry(entry)) => items.extend(
            super::probe_log::judged(&entry).map(|r| (at, Found::Test(r.timestamp, Some(r)))),
        ),
        (LogKey::Ndt7 | LogKey::Probe, LogItem::Cleared) => {}
    });
    Piece { items, damage }
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
pub(crate) mod tests {
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

    /// Loads the file at `path` as generation 0 of `log`, without an
    /// index, `chunk` bytes and `cores` pieces at a time: the results with
    /// their ids, the latest, the warnings.
    pub(crate) fn load_path(
        log: LogKey,
        path: &Path,
        cores: usize,
        chunk: usize,
    ) -> (Vec<TestResult>, Latest, Vec<String>) {
        let file = LogFile {
            log,
            generation: 0,
            path: path.to_path_buf(),
        };
        let (mut store, mut latest, mut warnings) = (ResultsStore::new(&[]), None, Vec::new());
        let mut loader = Loader {
            file: &file,
            cores,
            chunk,
            store: &mut store,
            warnings: &mut warnings,
            indexed: 0,
        };
        loader.load(&mut latest, &mut IndexDir::off(), &mut HashSet::new());
        (store.iter().collect(), latest, warnings)
    }

    /// Loads `text` as port 5201's log, `chunk` bytes and `cores` pieces
    /// at a time: the results with their ids, the latest, the warnings
    /// (what follows the line number).
    fn load_text(text: &str, cores: usize, chunk: usize) -> (Vec<TestResult>, Latest, Vec<String>) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("port-5201.json");
        fs::write(&path, text).unwrap();
        let (results, latest, warnings) = load_path(LogKey::Port(5201), &path, cores, chunk);
        let warnings = warnings
            .into_iter()
            .map(|w| {
                w.rsplit_once(": line")
                    .map_or(w.clone(), |(_, l)| l.to_string())
            })
            .collect();
        (results, latest, warnings)
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
    fn copies_whose_first_tests_share_a_second_keep_their_own_tests() {
        // Logs written before keys were kept apart: two files with key 10.
        let tmp = tempfile::tempdir().unwrap();
        let logs = LogDir::open(tmp.path()).unwrap();
        logs.record(5201, &entry(10, "a")).written.unwrap();
        fs::rename(logs.path(5201), logs.generation_path(5201, 1)).unwrap();
        for name in ["b", "c"] {
            logs.record(5201, &entry(10, name)).written.unwrap();
        }
        let loaded = LogDir::open(tmp.path()).unwrap().load(&[5201]);
        for (i, r) in loaded.store.iter().enumerate() {
            let location = loaded.store.location(i).unwrap();
            let generation = location.file.generation;
            let want = if r.name.as_deref() == Some("a") { 1 } else { 0 };
            assert_eq!(generation, want, "{:?}", r.name);
        }
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
