//! The TCP send method against the stock client and the binary: a forced
//! `--send-method` is used whatever the client asks, and the start-up
//! calibration is measured once, kept in the log directory, read back on
//! the next start and measured again when its key no longer matches.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::daemon::Daemon;
use crate::support::iperf3::{self, client_json};
use crate::support::logs::wait_entries;

/// One `-R` test against `server`; its log entry's `data_path`.
fn reverse_path(server: &Daemon, dir: &Path, n: usize, extra: &[&str]) -> Value {
    let mut args = vec!["-R", "-n", "4M"];
    args.extend_from_slice(extra);
    client_json(server.port, &args);
    let log = dir.join(format!("port-{}.json", server.port));
    let e = wait_entries(&log, n).remove(n - 1);
    assert!(e.get("error").is_none(), "error in log: {}", e["error"]);
    e["webperf3"]["data_path"].clone()
}

#[test]
fn a_forced_send_method_is_used_whatever_the_client_asks() {
    iperf3::require();
    for (flag, method) in [("copy", "write"), ("sendfile", "sendfile")] {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Daemon::start(dir.path(), &["--send-method", flag]);
        let path = reverse_path(&server, dir.path(), 1, &[]);
        assert_eq!(path["send"], method, "{path}");
        assert_eq!(path["send_reason"], "forced", "{path}");
        let path = reverse_path(&server, dir.path(), 2, &["-Z"]);
        assert_eq!(path["send"], method, "client -Z: {path}");
        assert_eq!(path["send_reason"], "forced", "{path}");
        assert!(
            !dir.path().join("send-method.json").exists(),
            "nothing to calibrate"
        );
        assert_eq!(server.terminate().code(), Some(0));
    }
}

/// The method a calibration file holds, as the log names it.
fn kept_method(dir: &Path) -> (Value, &'static str) {
    let text = std::fs::read_to_string(dir.join("send-method.json")).unwrap();
    let record: Value = serde_json::from_str(&text).unwrap();
    let logged = match record["method"].as_str() {
        Some("copy") => "write",
        Some("sendfile") => "sendfile",
        other => panic!("method {other:?} in {text}"),
    };
    (record, logged)
}

#[test]
fn the_calibration_is_kept_reused_and_measured_again_for_another_kernel() {
    iperf3::require();
    let dir = tempfile::tempdir().unwrap();
    let mut server = Daemon::start(dir.path(), &[]);
    let measured = server.wait_stderr("send method: calibrated");
    assert!(measured.contains("took_ms"), "{measured}");
    let (record, logged) = kept_method(dir.path());
    assert_eq!(record["figures"].as_array().unwrap().len(), 2, "{record}");
    let path = reverse_path(&server, dir.path(), 1, &[]);
    assert_eq!(path["send"], logged, "{path}");
    assert_eq!(path["send_reason"], "calibrated", "{path}");
    // A client's -Z asks for sendfile, as it does of stock.
    let path = reverse_path(&server, dir.path(), 2, &["-Z"]);
    assert_eq!(path["send"], "sendfile", "{path}");
    assert_eq!(path["send_reason"], "client -Z", "{path}");
    assert_eq!(server.terminate().code(), Some(0));

    // The next start reads the file instead of measuring.
    let mut server = Daemon::start(dir.path(), &[]);
    server.wait_stderr("send method: from the calibration file");
    // Another port (port 0), so a log of its own.
    let path = reverse_path(&server, dir.path(), 1, &[]);
    assert_eq!(path["send_reason"], "calibrated", "{path}");
    assert_eq!(path["send"], logged, "{path}");
    assert!(!server.stderr_text().contains("send method: calibrated"));
    assert_eq!(server.terminate().code(), Some(0));
    assert_eq!(kept_method(dir.path()).0, record, "file untouched");

    // Kept for another kernel: measured again, and the file rewritten.
    let mut other = record.clone();
    other["key"]["kernel"] = "0.0.1-elsewhere".into();
    let file = dir.path().join("send-method.json");
    std::fs::write(&file, other.to_string()).unwrap();
    let mut server = Daemon::start(dir.path(), &[]);
    server.wait_stderr("send method: calibrated");
    crate::support::wait::wait_until(Duration::from_secs(10), "file rewritten", || {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        serde_json::from_str::<Value>(&text)
            .is_ok_and(|v| v["key"]["kernel"] == record["key"]["kernel"])
    });
    assert_eq!(server.terminate().code(), Some(0));
}
