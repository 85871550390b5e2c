//! Logs survive: with the binary as a user runs it, a log that cannot be
//! written (a file size limit, a directory in its place) is reported on
//! stderr and in `/api/status` while tests go on, no half entry is left
//! behind, and damaged logs at start-up are named, skipped and appended to
//! cleanly.

use std::time::Duration;

use serde_json::Value;

use crate::support::daemon::{start_prepared, Daemon, Rlimits};
use crate::support::iperf3::{self, client_json};
use crate::support::logs::{read_entries, wait_entries};
use crate::support::wait::wait_until;

const STOCK: &str = include_str!("../fixtures/stock-3.12.json");

/// The entries `webperf3`'s own tolerant reader finds in `path`.
fn tolerant(path: &std::path::Path) -> Vec<Value> {
    let text = String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned();
    webperf3::files::reader::read_log(&text)
        .items
        .into_iter()
        .filter_map(|item| match item {
            webperf3::files::reader::LogItem::Entry(v) => Some(v),
            webperf3::files::reader::LogItem::Cleared => None,
        })
        .collect()
}

#[test]
fn a_file_size_limit_is_reported_and_leaves_no_half_entry() {
    iperf3::require();
    // Room for a few hundred more bytes: less than any entry.
    let limit = STOCK.len() as u64 + 300;
    let limits = Rlimits {
        fsize: Some(limit),
        ..Rlimits::default()
    };
    let (_dir, server) = start_prepared(
        |launch| launch.limits(limits),
        |dir, port| std::fs::write(dir.join(format!("port-{port}.json")), STOCK).unwrap(),
    );
    let port = server.port;
    let log = server.log_path(0);
    let c = client_json(port, &["-t", "1", "--extra-data", "over the limit"]);
    assert!(c["end"]["sum_received"]["bytes"].as_u64().unwrap() > 0);
    let line = server.wait_stderr("cannot write");
    assert!(line.contains(&log.display().to_string()), "{line}");
    assert!(line.contains("File too large"), "{line}");
    assert!(line.contains("partial entry was removed"), "{line}");
    // The file is as it was: whole stock entries, nothing torn.
    assert_eq!(std::fs::read_to_string(&log).unwrap(), STOCK);
    read_entries(&log);
    // The dashboard says so, and still shows the test.
    let (code, body) = server.get("/api/status");
    assert_eq!(code, 200);
    let status: Value = serde_json::from_str(&body).unwrap();
    let err = status["log_error"].as_str().expect("log_error set");
    assert!(err.contains("File too large"), "{err}");
    let (_, latest) = server.get("/api/latest");
    let latest: Value = serde_json::from_str(&latest).unwrap();
    assert_eq!(latest[0]["name"], "over the limit");
    // Tests still run (and the error is printed once, not per test).
    client_json(port, &["-t", "1"]);
    let (_, body) = server.get("/api/status");
    assert!(body.contains("File too large"));
    server.stop();
    assert_eq!(std::fs::read_to_string(&log).unwrap(), STOCK);
}

#[test]
fn a_directory_in_place_of_the_log_is_reported() {
    iperf3::require();
    let (_dir, server) = start_prepared(
        |launch| launch,
        |dir, port| std::fs::create_dir(dir.join(format!("port-{port}.json"))).unwrap(),
    );
    let port = server.port;
    let log = server.log_path(0);
    let skipped = server.wait_stderr("skipped: not a regular file");
    assert!(skipped.contains(&log.display().to_string()), "{skipped}");
    client_json(port, &["-t", "1", "--extra-data", "nowhere to go"]);
    let line = server.wait_stderr("cannot write");
    assert!(line.contains("Is a directory"), "{line}");
    let (_, body) = server.get("/api/status");
    let status: Value = serde_json::from_str(&body).unwrap();
    assert!(status["log_error"]
        .as_str()
        .is_some_and(|e| e.contains("Is a directory")));
    // Fixed while running: the next test is written and the error clears.
    std::fs::remove_dir(&log).unwrap();
    client_json(port, &["-t", "1", "--extra-data", "written"]);
    wait_entries(&log, 1);
    let (_, body) = server.get("/api/status");
    let status: Value = serde_json::from_str(&body).unwrap();
    assert!(status["log_error"].is_null(), "{status}");
    server.stop();
}

#[test]
fn damaged_logs_at_start_are_named_skipped_and_appended_to_cleanly() {
    iperf3::require();
    let entries: Vec<&str> = STOCK.split_inclusive("\n}\n").collect();
    let mut text = String::from("\u{feff}binary \u{0} junk\n");
    text.push_str(entries[0]);
    text.push_str("{\n\t\"start\": nonsense\n}\n");
    text.push_str(entries[1]);
    text.push_str("{}\n");
    text.push_str(entries[2]);
    // A tail torn off mid-line, as a crash leaves it.
    text.push_str(&entries[3][..entries[3].len() / 2]);
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(b"\xff\xfe");

    let (dir, server) = start_prepared(
        |launch| launch,
        |dir, port| {
            std::fs::write(dir.join(format!("port-{port}.json")), &bytes).unwrap();
            // Logs of ports this run does not serve are history; these are
            // damaged.
            std::fs::write(dir.join("port-1.json"), b"\x00\x01\x02 not json").unwrap();
            std::fs::write(dir.join("port-2.json"), b"").unwrap();
            std::fs::create_dir(dir.join("port-3.json")).unwrap();
        },
    );
    let port = server.port;
    let log = server.log_path(0);
    let said = server.stderr().join("\n");
    let shown = log.display().to_string();
    for want in [
        format!("{shown}: line 1: skipped text that is not a log entry"),
        format!("{shown}: line "),
        "skipped an entry that is not valid JSON".to_string(),
        "skipped a truncated entry (no closing `}` line)".to_string(),
        "port-1.json: line 1: skipped text that is not a log entry".to_string(),
        "port-3.json: skipped: not a regular file".to_string(),
    ] {
        assert!(said.contains(&want), "stderr lacks {want:?}:\n{said}");
    }
    // Three whole entries in the damaged file survive; the clear marker
    // after the second makes the port's latest the third.
    assert!(said.contains("3 tests loaded"), "{said}");
    let (_, latest) = server.get("/api/latest");
    let latest: Value = serde_json::from_str(&latest).unwrap();
    let third: Value = serde_json::from_str(entries[2]).unwrap();
    assert_eq!(
        latest[0]["timestamp"],
        third["start"]["timestamp"]["timesecs"]
    );

    // A new test is appended on a line of its own after the torn tail.
    client_json(port, &["-t", "1", "--extra-data", "after damage"]);
    wait_until(Duration::from_secs(20), "the entry to be written", || {
        tolerant(&log).len() >= 4
    });
    let after = std::fs::read(&log).unwrap();
    assert_eq!(&after[..bytes.len()], &bytes[..], "old content untouched");
    let added = String::from_utf8(after[bytes.len()..].to_vec()).unwrap();
    assert!(added.starts_with("\n{\n"), "{added:.40}");
    assert_eq!(
        serde_json::from_str::<Value>(&added).unwrap()["extra_data"],
        "after damage"
    );
    server.stop();

    // A restart loads the same, plus the new test (all of the dir's logs
    // load, whichever ports are served: the kernel picks this one).
    let server = Daemon::start(dir.path(), &[]);
    assert!(
        server.stderr().join("\n").contains("4 tests loaded"),
        "{:?}",
        server.stderr()
    );
    server.stop();
}
