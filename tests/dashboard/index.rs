//! The log index (`<log-dir>/.index/`) with the real binary and stock
//! iperf3 clients: a restart shows the same results, ids and latest table
//! whether the index is in place, deleted or corrupted.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::daemon::{Daemon, Launch};
use crate::support::http::http_post;
use crate::support::iperf3::client_json;
use crate::support::logs::wait_entries;
use crate::support::wait::wait_until;

/// What a start shows: every result (with its id) and the latest table.
fn shown(daemon: &Daemon) -> (Value, Value) {
    let get = |path: &str| {
        let (status, body) = daemon.get(path);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str::<Value>(&body).expect("JSON")
    };
    (get("/api/results"), get("/api/latest"))
}

/// The index files, each with its inode (a rewrite replaces the file).
fn index_files(dir: &Path) -> Vec<(String, u64)> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join(".index"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| {
                    let ino = e.metadata().unwrap().ino();
                    (e.file_name().to_string_lossy().into_owned(), ino)
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn a_restart_shows_the_same_with_the_index_without_it_and_with_it_corrupted() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Launch::new(dir.path()).start();
    let port = daemon.port;
    client_json(port, &["-t", "1", "--extra-data", "first"]);
    wait_entries(&daemon.log_path(0), 1);
    wait_until(Duration::from_secs(10), "the first result", || {
        shown(&daemon).0.as_array().is_some_and(|a| a.len() == 1)
    });
    let cleared = http_post(daemon.http, "/api/clear", b"").unwrap();
    assert_eq!(cleared.status, 200);
    client_json(port, &["-t", "1", "-R", "--extra-data", "reverse"]);
    client_json(port, &["-t", "1", "-u", "-b", "1M", "--extra-data", "udp"]);
    // Three tests and the `{}` marker.
    wait_entries(&daemon.log_path(0), 4);
    wait_until(Duration::from_secs(10), "three results", || {
        shown(&daemon).0.as_array().is_some_and(|a| a.len() == 3)
    });
    let running = shown(&daemon);
    daemon.stop();

    // The same port again, so the latest table has the port's row.
    let restart = || Launch::new(dir.path()).ports(port, 1).start();
    let daemon = restart();
    let parsed = shown(&daemon);
    daemon.stop();
    assert_eq!(parsed, running);
    assert_eq!(parsed.1[0]["name"], "udp");
    let written = index_files(dir.path());
    assert_eq!(written.len(), 1, "one index for the one log");

    // With the index in place: the same, and the index was good as it is
    // (not written again).
    let daemon = restart();
    assert_eq!(shown(&daemon), parsed);
    daemon.stop();
    assert_eq!(index_files(dir.path()), written);

    // Without it: the same, and it is written again.
    std::fs::remove_dir_all(dir.path().join(".index")).unwrap();
    let daemon = restart();
    assert_eq!(shown(&daemon), parsed);
    daemon.stop();
    assert_eq!(index_files(dir.path()).len(), 1);

    // Corrupted: the same.
    let (name, _) = &index_files(dir.path())[0];
    let path = dir.path().join(".index").join(name);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let daemon = restart();
    assert_eq!(shown(&daemon), parsed);
    daemon.stop();
}
