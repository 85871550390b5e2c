//! Each test in detail, with the real binary and stock iperf3 clients: ids
//! that survive a restart and a rotation, `/api/results/{id}` answering the
//! logged entry byte for byte, and rotated files leaving the history when
//! they are deleted.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::daemon::{Daemon, Launch};
use crate::support::iperf3::{client_json, Running};
use crate::support::logs::{logged_entry, wait_entries};
use crate::support::wait::wait_until;

/// Every result the daemon shows, oldest first.
fn results(daemon: &Daemon) -> Vec<Value> {
    let (status, body) = daemon.get("/api/results");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn ids(results: &[Value]) -> Vec<String> {
    results
        .iter()
        .map(|r| r["id"].as_str().expect("an id").to_string())
        .collect()
}

/// Checks `/api/results/{id}` of every result: the result is the one
/// listed, and the entry is the text of the log file at the id's offset,
/// byte for byte, spliced in as it is.
fn check_details(daemon: &Daemon, dir: &Path, all: &[Value]) {
    for result in all {
        let id = result["id"].as_str().unwrap();
        let (status, body) = daemon.get(&format!("/api/results/{id}"));
        assert_eq!(status, 200, "{id}: {body}");
        let detail: Value = serde_json::from_str(&body).expect("detail parses");
        assert_eq!(&detail["result"], result, "{id}");
        let limited_by = detail["verdict"]["limited_by"].as_str().unwrap_or_default();
        assert!(
            crate::common::VERDICT_LIMITS.contains(&limited_by),
            "{limited_by:?}"
        );
        assert!(detail["verdict"]["evidence"].is_array());
        // Find the entry in whichever file (live or rotated) holds it.
        let (port, rest) = id.split_once('-').unwrap();
        let offset: usize = rest.rsplit_once('-').unwrap().1.parse().unwrap();
        let live = format!("port-{port}.json");
        let (_, text) = logged_entry(dir, &live, offset, &detail["entry"])
            .unwrap_or_else(|| panic!("no log of port {port} has the entry at {offset}"));
        assert!(
            body.contains(&format!("\"entry\":{text}")),
            "{id}: the entry is not the logged text"
        );
        assert_eq!(
            detail["entry"]["start"]["timestamp"]["timesecs"],
            result["timestamp"]
        );
    }
}

/// Appends copies of a finished entry of `log` until it is past `size`
/// bytes (more history without running more tests).
fn grow_past(log: &Path, size: u64) {
    let text = std::fs::read_to_string(log).unwrap();
    let first = crate::support::logs::entry_texts(&text).remove(0);
    let mut grown = text;
    while (grown.len() as u64) <= size {
        grown.push_str(&first);
    }
    std::fs::write(log, grown).unwrap();
}

/// The daemon with the retention the rotation part uses (64K, one copy).
fn start_rotating(dir: &Path) -> Daemon {
    Launch::new(dir)
        .args(["--max-log-size", "64K", "--keep-rotated", "1"])
        .start()
}

#[test]
fn details_are_the_logged_entries_and_ids_survive_restarts_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Launch::new(dir.path()).start();
    let port = daemon.port;
    let log = daemon.log_path(0);
    client_json(port, &["-t", "1", "--extra-data", "tcp"]);
    client_json(port, &["-t", "1", "-R", "--extra-data", "reverse"]);
    client_json(
        port,
        &["-t", "1", "--bidir", "-P", "2", "--extra-data", "bidir"],
    );
    client_json(port, &["-t", "1", "-u", "-b", "1M", "--extra-data", "udp"]);
    // A test cut short: the client killed while it runs.
    let mut killed = Running::start(port, &["-t", "30", "--extra-data", "killed"]).draining();
    killed.kill().unwrap();
    killed.wait().unwrap();
    wait_entries(&log, 5);
    wait_until(Duration::from_secs(10), "five results", || {
        results(&daemon).len() == 5
    });
    let before = results(&daemon);
    assert!(before[4]["error"].is_string(), "{}", before[4]);
    let names: Vec<_> = before.iter().map(|r| r["name"].clone()).collect();
    assert_eq!(names, ["tcp", "reverse", "bidir", "udp", "killed"]);
    let first = before[0]["timestamp"].as_i64().unwrap();
    assert_eq!(ids(&before)[0], format!("{port}-{first}-0"));
    check_details(&daemon, dir.path(), &before);

    // Unknown and malformed ids: 404 with a JSON error.
    for id in [
        format!("{port}-{first}-1"),
        "nonsense".into(),
        "1-2-3".into(),
    ] {
        let (status, body) = daemon.get(&format!("/api/results/{id}"));
        assert_eq!(status, 404, "{id}: {body}");
        let error: Value = serde_json::from_str(&body).unwrap();
        assert!(error["error"].is_string(), "{body}");
    }
    daemon.stop();

    // A restart (on another port) finds the same ids.
    let daemon = start_rotating(dir.path());
    assert_eq!(ids(&results(&daemon)), ids(&before));
    let port = daemon.port;
    let log = daemon.log_path(0);
    client_json(port, &["-t", "1", "--extra-data", "q1"]);
    wait_until(Duration::from_secs(10), "q1", || {
        results(&daemon).len() == 6
    });
    let q1 = results(&daemon)[5].clone();

    // Past the size limit, the next test rotates the log: q1 keeps its id
    // (now in port-Q.json.1) and the new test starts a new file.
    grow_past(&log, 64 * 1024);
    client_json(port, &["-t", "1", "--extra-data", "after"]);
    wait_until(Duration::from_secs(10), "the test after", || {
        results(&daemon).len() == 7
    });
    let rotated = dir.path().join(format!("port-{port}.json.1"));
    assert!(rotated.is_file(), "rotated to .1");
    let after = results(&daemon);
    let new = &after[6];
    assert_eq!(new["name"], "after");
    assert_eq!(new["id"], format!("{port}-{}-0", new["timestamp"]).as_str());
    assert_eq!(after[5], q1);
    check_details(&daemon, dir.path(), &after);

    // One more rotation deletes the oldest copy (one is kept): q1 leaves
    // the history and its id is unknown; "after" moves to .1.
    grow_past(&log, 64 * 1024);
    client_json(port, &["-t", "1", "--extra-data", "last"]);
    wait_until(Duration::from_secs(10), "q1 dropped", || {
        results(&daemon).last().is_some_and(|r| r["name"] == "last")
    });
    let last = results(&daemon);
    let names: Vec<_> = last[5..].iter().map(|r| r["name"].clone()).collect();
    assert_eq!(names, ["after", "last"]);
    assert!(!dir.path().join(format!("port-{port}.json.2")).exists());
    let (status, _) = daemon.get(&format!("/api/results/{}", q1["id"].as_str().unwrap()));
    assert_eq!(status, 404, "a deleted file's test is gone");
    check_details(&daemon, dir.path(), &last);
    daemon.stop();

    // Rotated files are read at start-up, ids unchanged (the copies
    // grow_past added are tests too, with ids of their own).
    let daemon = Launch::new(dir.path()).start();
    let again = ids(&results(&daemon));
    let mut found = again.iter();
    for id in ids(&last) {
        assert!(found.any(|a| *a == id), "{id} after a restart");
    }
    daemon.stop();
}
