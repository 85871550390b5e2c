//! Loading with persisted indexes gives exactly what parsing every log
//! gives: the same results, ids, latest-per-port and warnings, whatever
//! happened to the indexes or the logs under them.

use std::fs;
use std::io::Write;
use std::path::Path;

use super::index::{hash, HEADER_LEN};
use super::index_dir::INDEX_DIR;
use super::log::{tests::entry, LogDir};
use super::result::TestResult;
use crate::ndt7::record::tests::sample;
use crate::ndt7::Kind;

const PORTS: [u16; 2] = [5201, 5202];

/// What a start-up shows: every result with its id, the latest table,
/// the warnings.
#[derive(Debug, PartialEq)]
struct Shown {
    results: Vec<TestResult>,
    latest: Vec<Option<TestResult>>,
    warnings: Vec<String>,
}

/// Loads `dir` as a start-up does: what it shows and how many tests came
/// from indexes.
fn start(dir: &Path) -> (Shown, usize) {
    let loaded = LogDir::open(dir).unwrap().load(&PORTS);
    let shown = Shown {
        results: loaded.store.iter().collect(),
        latest: loaded.store.latest(),
        warnings: loaded.warnings,
    };
    (shown, loaded.indexed)
}

/// What parsing every log shows (the indexes deleted first, and written
/// again by this start).
fn parsed(dir: &Path) -> Shown {
    let _ = fs::remove_dir_all(dir.join(INDEX_DIR));
    let (shown, indexed) = start(dir);
    assert_eq!(indexed, 0);
    shown
}

fn append(path: &Path, bytes: &[u8]) {
    fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

/// Two ports' logs and an ndt7 log, with a rotated copy, `{}` markers and
/// damage in the middle and at the end.
fn logs(dir: &Path) -> LogDir {
    let logs = LogDir::open(dir).unwrap();
    for i in 0..4 {
        logs.record(5201, &entry(100 + i, &format!("a{i}")))
            .written
            .unwrap();
    }
    fs::rename(logs.path(5201), logs.generation_path(5201, 1)).unwrap();
    logs.record(5201, &entry(200, "b0")).written.unwrap();
    append(&logs.path(5201), b"garbage here\n");
    logs.record(5201, &entry(201, "b1")).written.unwrap();
    logs.append_cleared(5201).unwrap();
    logs.record(5201, &entry(202, "b2")).written.unwrap();
    logs.record(5202, &entry(300, "c0")).written.unwrap();
    logs.append_cleared(5202).unwrap();
    logs.record(5202, &entry(301, "c1")).written.unwrap();
    logs.append_cleared(5202).unwrap();
    append(&logs.path(5202), b"{\n\t\"torn\":");
    logs.record_ndt7(&sample(Kind::Download, 400, "n0"))
        .written
        .unwrap();
    logs.record_ndt7(&sample(Kind::Upload, 460, "n1"))
        .written
        .unwrap();
    logs
}

#[test]
fn a_start_with_indexes_shows_what_parsing_shows() {
    let tmp = tempfile::tempdir().unwrap();
    logs(tmp.path());
    let (first, indexed) = start(tmp.path());
    assert_eq!(indexed, 0);
    assert_eq!(first.results.len(), 11);
    assert_eq!(first.warnings.len(), 2, "{:?}", first.warnings);
    assert_eq!(
        first.latest[0].as_ref().unwrap().name.as_deref(),
        Some("b2")
    );
    assert_eq!(first.latest[1], None);
    // One index per file with more than one entry.
    assert_eq!(fs::read_dir(tmp.path().join(INDEX_DIR)).unwrap().count(), 4);
    let (second, indexed) = start(tmp.path());
    // All but what follows each file's last `{` line.
    assert_eq!(indexed, 8);
    assert_eq!(second, first);
    assert_eq!(parsed(tmp.path()), first);
}

#[test]
fn a_grown_log_reads_its_index_and_parses_only_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = logs(tmp.path());
    start(tmp.path());
    for i in 0..3 {
        logs.record(5202, &entry(310 + i, &format!("d{i}")))
            .written
            .unwrap();
    }
    append(&logs.path(5202), b"more garbage\n");
    logs.record_ndt7(&sample(Kind::Download, 402, "n2"))
        .written
        .unwrap();
    let (grown, indexed) = start(tmp.path());
    assert_eq!(indexed, 8);
    assert_eq!(grown.warnings.len(), 3, "{:?}", grown.warnings);
    assert_eq!(grown.results.len(), 15);
    assert_eq!(
        grown.latest[1].as_ref().unwrap().name.as_deref(),
        Some("d2")
    );
    // The index was brought up to the new last entry.
    let (again, indexed) = start(tmp.path());
    assert_eq!(indexed, 15 - 4);
    assert_eq!(again, grown);
    assert_eq!(parsed(tmp.path()), grown);
}

#[test]
fn a_rotated_log_keeps_its_index() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = logs(tmp.path());
    start(tmp.path());
    fs::rename(logs.generation_path(5201, 1), logs.generation_path(5201, 2)).unwrap();
    fs::rename(logs.path(5201), logs.generation_path(5201, 1)).unwrap();
    logs.record(5201, &entry(500, "e0")).written.unwrap();
    let (rotated, indexed) = start(tmp.path());
    assert_eq!(indexed, 8);
    assert_eq!(rotated.results.len(), 12);
    assert_eq!(parsed(tmp.path()), rotated);
}

#[test]
fn a_log_rotated_while_running_is_indexed_in_the_background() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = logs(tmp.path());
    fs::rename(logs.path(5202), logs.generation_path(5202, 1)).unwrap();
    logs.index_rotated(super::ids::LogKey::Port(5202));
    let id = super::index_dir::identity(&fs::metadata(logs.generation_path(5202, 1)).unwrap());
    let path = super::index_dir::IndexDir::new(tmp.path()).path(id);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !path.exists() {
        assert!(std::time::Instant::now() < deadline, "no index written");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let (shown, indexed) = start(tmp.path());
    // The copy's two tests came from the index written in the background.
    assert_eq!(indexed, 2);
    assert_eq!(parsed(tmp.path()), shown);
}

/// Each way an index can stop matching its log (or be damaged): the next
/// start shows what parsing the logs as they now are shows.
#[test]
fn an_index_that_does_not_hold_is_never_trusted() {
    type Change = fn(&LogDir, &Path);
    let index_of = |logs: &LogDir| {
        let id = super::index_dir::identity(&fs::metadata(logs.path(5201)).unwrap());
        super::index_dir::IndexDir::new(logs.dir()).path(id)
    };
    let cases: [(&str, Change); 8] = [
        ("a byte edited in the covered part", |logs, _| {
            let text = fs::read_to_string(logs.path(5201)).unwrap();
            fs::write(logs.path(5201), text.replacen("\"b0\"", "\"x0\"", 1)).unwrap();
        }),
        ("the log truncated", |logs, _| {
            let len = fs::metadata(logs.path(5201)).unwrap().len();
            let file = fs::OpenOptions::new()
                .write(true)
                .open(logs.path(5201))
                .unwrap();
            file.set_len(len / 3).unwrap();
        }),
        (
            "the log replaced by another of the same length",
            |logs, _| {
                let text = fs::read_to_string(logs.path(5201)).unwrap();
                let other = text.replace("b1", "zz").replace("201", "999");
                assert_eq!(other.len(), text.len());
                let tmp = logs.dir().join("other");
                fs::write(&tmp, other).unwrap();
                fs::rename(tmp, logs.path(5201)).unwrap();
            },
        ),
        ("the index cut short", |logs, index| {
            let bytes = fs::read(index).unwrap();
            fs::write(index, &bytes[..bytes.len() - 20]).unwrap();
            let _ = logs;
        }),
        ("a byte of the index flipped", |_, index| {
            let mut bytes = fs::read(index).unwrap();
            let at = bytes.len() / 2;
            bytes[at] ^= 0x40;
            fs::write(index, bytes).unwrap();
        }),
        ("another version, checksum right", |_, index| {
            let mut bytes = fs::read(index).unwrap();
            bytes[8] = bytes[8].wrapping_add(1);
            let body = bytes.len() - 8;
            let sum = hash(&bytes[..body], 0);
            bytes[body..].copy_from_slice(&sum.to_le_bytes());
            fs::write(index, bytes).unwrap();
        }),
        ("another port's log renamed over it", |logs, _| {
            fs::rename(logs.path(5202), logs.path(5201)).unwrap();
        }),
        ("the index emptied", |_, index| {
            fs::write(index, &[0u8; HEADER_LEN][..10]).unwrap();
        }),
    ];
    for (what, change) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let logs = logs(tmp.path());
        start(tmp.path());
        let index = index_of(&logs);
        assert!(index.exists(), "{what}");
        change(&logs, &index);
        let (shown, _) = start(tmp.path());
        assert_eq!(shown, parsed(tmp.path()), "{what}");
    }
}

#[test]
fn stale_indexes_go_and_an_unwritable_index_dir_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = logs(tmp.path());
    start(tmp.path());
    let dir = tmp.path().join(INDEX_DIR);
    fs::write(dir.join("1-2.idx"), b"stale").unwrap();
    fs::write(dir.join("1-2.idx.9-9.tmp"), b"left over").unwrap();
    fs::remove_file(logs.generation_path(5201, 1)).unwrap();
    let (shown, _) = start(tmp.path());
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 3);
    assert_eq!(shown.results.len(), 7);

    // A file where the directory should be: logs parse as without one.
    fs::remove_dir_all(&dir).unwrap();
    fs::write(&dir, b"not a directory").unwrap();
    let want = {
        let other = tempfile::tempdir().unwrap();
        for e in fs::read_dir(tmp.path()).unwrap() {
            let e = e.unwrap();
            if e.file_name() != INDEX_DIR {
                fs::copy(e.path(), other.path().join(e.file_name())).unwrap();
            }
        }
        let (shown, _) = start(other.path());
        shown.results
    };
    let (shown, indexed) = start(tmp.path());
    assert_eq!(indexed, 0);
    assert_eq!(shown.results, want);
    // The damage; the unwritable directory is a diagnostic, not a warning
    // about a log.
    assert_eq!(shown.warnings.len(), 2, "{:?}", shown.warnings);
    assert_eq!(fs::read(&dir).unwrap(), b"not a directory");
}

#[test]
fn an_index_too_big_for_its_log_is_not_read() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = logs(tmp.path());
    start(tmp.path());
    let id = super::index_dir::identity(&fs::metadata(logs.path(5201)).unwrap());
    let index = super::index_dir::IndexDir::new(tmp.path()).path(id);
    // A header claiming a file far bigger than any index of this log.
    let mut bytes = fs::read(&index).unwrap();
    let huge = 1u64 << 40;
    bytes[HEADER_LEN - 8..HEADER_LEN].copy_from_slice(&huge.to_le_bytes());
    fs::write(&index, &bytes).unwrap();
    let (shown, indexed) = start(tmp.path());
    assert_eq!(indexed, 8 - 2);
    assert_eq!(shown, parsed(tmp.path()));
}

#[test]
fn a_fifo_in_place_of_an_index_does_not_hold_up_a_start() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = logs(tmp.path());
    let (want, _) = start(tmp.path());
    let id = super::index_dir::identity(&fs::metadata(logs.path(5201)).unwrap());
    let index = super::index_dir::IndexDir::new(tmp.path()).path(id);
    fs::remove_file(&index).unwrap();
    crate::testing::mkfifo(&index);
    let dir = tmp.path().to_path_buf();
    let (shown, indexed) =
        crate::testing::within(std::time::Duration::from_secs(30), move || start(&dir));
    // That log is parsed; the others come from their indexes.
    assert_eq!(indexed, 8 - 2);
    assert_eq!(shown, want);
}
