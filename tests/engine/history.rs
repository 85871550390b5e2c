//! A long history at start-up, with the binary itself: a log much bigger
//! than the memory loading it may take is read in bounded chunks, every
//! test of it loaded.

use std::io::Write;
use std::time::Duration;

use crate::support::daemon::Launch;
use crate::support::logs::entry_texts;

const FIXTURE: &str = include_str!("../fixtures/stock-3.12.json");

/// The fixture's test entries repeated with fresh timestamps into `path`
/// until it holds at least `size` bytes; returns the number of tests.
fn write_big_log(path: &std::path::Path, size: usize) -> usize {
    let entries: Vec<String> = entry_texts(FIXTURE)
        .into_iter()
        .filter(|e| e.contains("\"test_start\""))
        .collect();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let (mut written, mut n) = (0, 0);
    while written < size {
        let entry = &entries[n % entries.len()];
        let (before, after) = entry.split_once("\"timesecs\":").unwrap();
        let line_end = after.find('\n').unwrap();
        let comma = if after[..line_end].ends_with(',') {
            ","
        } else {
            ""
        };
        let rest = &after[line_end..];
        let text = format!("{before}\"timesecs\":\t{}{comma}{rest}", 1_700_000_000 + n);
        out.write_all(text.as_bytes()).unwrap();
        written += text.len();
        n += 1;
    }
    out.flush().unwrap();
    n
}

#[test]
fn a_big_log_loads_in_bounded_memory() {
    const SIZE: usize = 40 << 20;
    let empty = tempfile::tempdir().unwrap();
    let baseline = Launch::new(empty.path()).start();
    let base_hwm = baseline.status_kb("VmHWM");
    baseline.stop();

    let dir = tempfile::tempdir().unwrap();
    let n = write_big_log(&dir.path().join("port-5201.json"), SIZE);
    // A debug build on a busy machine parses slowly: time enough.
    let daemon = Launch::new(dir.path())
        .start_deadline(Duration::from_secs(180))
        .start();
    assert!(
        daemon.banner().contains(&format!("{n} tests loaded")),
        "{}",
        daemon.banner()
    );
    let hwm = daemon.status_kb("VmHWM");
    // The records (about 100 bytes a test) and a chunk or two of 8 MB,
    // not the file's 40 MB.
    let grown_mb = hwm.saturating_sub(base_hwm) / 1024;
    assert!(
        grown_mb < 28,
        "loading {n} tests ({} MB) took {grown_mb} MB at its peak",
        SIZE >> 20
    );
    let (status, body) = daemon.get("/api/results?limit=1");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&format!("\"timestamp\":{}", 1_700_000_000 + n - 1)));
    daemon.stop();
}
