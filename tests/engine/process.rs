//! The binary as a user runs it: flags, exit codes, start-up, signals.

use std::time::Duration;

use crate::support::daemon::{run, start_prepared, Daemon};
use crate::support::iperf3::{self, Running};
use crate::support::logs::{read_entries, wait_entries};
use crate::support::process::wait_output;

#[test]
fn help_and_version() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ["--servers", "--port", "--bind", "--http", "--log-dir"] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    let out = run(&["--version"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["--bogus"][..],
        &["--servers", "x"],
        &["--port", "65535", "--servers", "2"],
        &["--port", "0"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.to_lowercase().contains("error"), "{args:?}: {err}");
    }
}

#[cfg(not(feature = "auth"))]
#[test]
fn auth_flags_without_the_auth_feature_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&[
        "--port",
        "0",
        "--servers",
        "1",
        "--http",
        "127.0.0.1:0",
        "-d",
        dir.path().to_str().unwrap(),
        "--rsa-private-key-path",
        "key.pem",
        "--authorized-users-path",
        "users.csv",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cargo feature `auth`"), "{err}");
}

#[test]
fn port_in_use_exits_1_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let log = dir.path().join(format!("port-{port}.json"));
    std::fs::write(&log, "{\n}\n").unwrap();
    let out = run(&[
        "--port",
        &port,
        "--servers",
        "1",
        "--bind",
        "127.0.0.1",
        "--http",
        "127.0.0.1:0",
        "-d",
    ]
    .iter()
    .copied()
    .chain(std::iter::once(dir.path().to_str().unwrap()))
    .collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&port), "error names the port: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "{\n}\n");
}

#[test]
fn unusable_log_dir_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let out = run(&[
        "--port",
        "0",
        "--servers",
        "1",
        "--http",
        "127.0.0.1:0",
        "-d",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not-a-dir"));
}

#[test]
fn sigterm_when_idle_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Daemon::start(dir.path(), &[]);
    assert_eq!(server.terminate().code(), Some(0));
}

#[test]
fn sigterm_during_a_test_ends_it_cleanly() {
    iperf3::require();
    let dir = tempfile::tempdir().unwrap();
    let mut server = Daemon::start(dir.path(), &[]);
    let port = server.port;
    let client = Running::start(port, &["-t", "20", "--extra-data", "cut short"]);
    assert_eq!(server.terminate().code(), Some(0));
    let rest: Vec<String> = client.rest.map_while(Result::ok).collect();
    let c = wait_output(client.child, Duration::from_secs(15));
    let text = rest.join("\n") + &String::from_utf8_lossy(&c.stderr);
    assert!(
        text.contains("the server has terminated"),
        "client saw: {text}"
    );
    let e = wait_entries(&dir.path().join(format!("port-{port}.json")), 1).remove(0);
    assert_eq!(
        e["error"],
        "interrupt - the server has terminated by signal Terminated(15)"
    );
    assert_eq!(e["extra_data"], "cut short");
    assert!(
        e["end"]["sum_received"]["bytes"].as_u64().unwrap() > 0,
        "end was built"
    );
}

#[test]
fn loads_existing_logs_at_start() {
    let fixture = include_str!("../fixtures/stock-3.12.json");
    let (_dir, mut server) = start_prepared(
        |launch| launch,
        |dir, port| std::fs::write(dir.join(format!("port-{port}.json")), fixture).unwrap(),
    );
    let expected = read_entries(&server.log_path(0))
        .iter()
        .filter(|e| e["start"].get("test_start").is_some())
        .count();
    let banner = server.banner();
    server.terminate();
    assert!(
        banner.contains(&format!("{expected} tests loaded")),
        "{banner}"
    );
}

/// The iperf3 port a start-up line names (`... iperf3 on port P, ...`).
fn banner_port(banner: &str) -> u16 {
    banner
        .split_once("iperf3 on port ")
        .and_then(|(_, rest)| rest.split_once(','))
        .and_then(|(port, _)| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in the start-up line: {banner}"))
}

#[test]
fn port_0_binds_a_free_port_and_names_it() {
    iperf3::require();
    let dir = tempfile::tempdir().unwrap();
    let mut server = Daemon::start(dir.path(), &[]);
    let banner = server.banner();
    let port = banner_port(&banner);
    assert_ne!(port, 0, "{banner}");
    assert!(
        banner.contains("dashboard on http://127.0.0.1:"),
        "{banner}"
    );
    assert!(!banner.contains("http://127.0.0.1:0,"), "{banner}");
    iperf3::client_json(port, &["-t", "1", "--extra-data", "any port"]);
    let e = wait_entries(&dir.path().join(format!("port-{port}.json")), 1).remove(0);
    assert_eq!(e["extra_data"], "any port");
    assert!(!dir.path().join("port-0.json").exists());
    assert_eq!(server.terminate().code(), Some(0));
}

#[test]
fn port_0_with_several_servers_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&[
        "--port",
        "0",
        "--servers",
        "2",
        "--http",
        "127.0.0.1:0",
        "-d",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
    assert!(
        err.contains("--port 0") && err.contains("--servers"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
