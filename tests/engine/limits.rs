//! Beyond stock: several tests per port, server-side limits and policies,
//! each checked with the stock client and the log entry it leaves.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use webperf3::protocol::policy::{BitrateLimit, Policy};
use webperf3::protocol::session::Limits;
use webperf3::server::overlap::Overlaps;
use webperf3::server::port::PortSettings;

use crate::harness::{num, Server};
use crate::support::iperf3::{client, client_json};
use crate::support::logs::read_entries;

fn settings(policy: Policy) -> PortSettings {
    PortSettings {
        policy,
        ..PortSettings::default()
    }
}

/// Runs a client expected to be refused; returns everything it printed.
fn refused(server: &Server, args: &[&str]) -> String {
    let port = server.ports[0].to_string();
    let mut all = vec!["-c", "127.0.0.1", "-p", &port];
    all.extend_from_slice(args);
    let out = client(&all);
    assert!(!out.status.success(), "{args:?} was not refused");
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

fn two_at_once(
    server: &Server,
    a: &'static [&'static str],
    b: &'static [&'static str],
) -> (Value, Value) {
    let port = server.ports[0];
    let first = std::thread::spawn(move || client_json(port, a));
    let second = client_json(port, b);
    (first.join().unwrap(), second)
}

#[test]
fn two_tests_on_one_port_when_allowed() {
    let server = Server::with_settings(
        1,
        PortSettings {
            max_tests: 2,
            ..PortSettings::default()
        },
    );
    let (a, b) = two_at_once(
        &server,
        &["-t", "3", "-P", "4", "--extra-data", "a"],
        &["-t", "3", "-P", "4", "-R", "--extra-data", "b"],
    );
    let entries = server.wait_entries(0, 2);
    for e in &entries {
        assert!(e.get("error").is_none(), "{}", e["error"]);
        assert_eq!(
            e["end"]["streams"].as_array().unwrap().len(),
            4,
            "each test got its own 4 streams"
        );
        assert_eq!(
            e["webperf3"]["overlapped"], true,
            "both ran at the same time"
        );
    }
    let cookies: Vec<&Value> = entries.iter().map(|e| &e["start"]["cookie"]).collect();
    assert!(cookies.contains(&&a["start"]["cookie"]) && cookies.contains(&&b["start"]["cookie"]));
    // Each stream belongs to the test whose client opened it.
    for (e, c) in [(&entries[0], &a), (&entries[1], &b)] {
        let theirs = if e["start"]["cookie"] == c["start"]["cookie"] {
            c
        } else {
            if c == &a {
                &b
            } else {
                &a
            }
        };
        let mut ours: Vec<u64> = e["start"]["connected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["remote_port"].as_u64().unwrap())
            .collect();
        let mut client_ports: Vec<u64> = theirs["start"]["connected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["local_port"].as_u64().unwrap())
            .collect();
        ours.sort_unstable();
        client_ports.sort_unstable();
        assert_eq!(ours, client_ports);
    }
}

#[test]
fn two_udp_tests_on_one_port_when_allowed() {
    let server = Server::with_settings(
        1,
        PortSettings {
            max_tests: 2,
            ..PortSettings::default()
        },
    );
    two_at_once(
        &server,
        &["-u", "-b", "10M", "-t", "3", "-P", "2", "--extra-data", "a"],
        &["-u", "-b", "10M", "-t", "3", "-R", "--extra-data", "b"],
    );
    let entries = server.wait_entries(0, 2);
    assert!(entries.iter().all(|e| e.get("error").is_none()));
}

#[test]
fn second_test_refused_by_default_and_not_overlapped_alone() {
    let server = Server::start(1);
    client_json(server.ports[0], &["-t", "1"]);
    let e = server.wait_entries(0, 1).remove(0);
    assert_eq!(e["webperf3"]["overlapped"], false);
}

#[test]
fn overlap_is_box_wide() {
    let overlaps = Arc::new(Overlaps::default());
    let server = Server::with_settings(
        2,
        PortSettings {
            overlaps,
            ..PortSettings::default()
        },
    );
    let (a, b) = (server.ports[0], server.ports[1]);
    let t = std::thread::spawn(move || client_json(a, &["-t", "3"]));
    client_json(b, &["-t", "3"]);
    t.join().unwrap();
    assert_eq!(server.wait_entries(0, 1)[0]["webperf3"]["overlapped"], true);
    assert_eq!(server.wait_entries(1, 1)[0]["webperf3"]["overlapped"], true);
}

#[test]
fn max_duration_refuses_long_tests() {
    let server = Server::with_settings(
        1,
        settings(Policy {
            max_duration: Some(5),
            ..Policy::default()
        }),
    );
    let text = refused(&server, &["-t", "10"]);
    assert!(
        text.contains("int_errno=37") || text.contains("exceeds the server's maximum"),
        "{text}"
    );
    let e = &server.wait_entries(0, 1)[0];
    assert_eq!(
        e["error"],
        "error - client's requested duration exceeds the server's maximum permitted limit"
    );
    client_json(server.ports[0], &["-t", "1"]);
}

#[test]
fn bitrate_limit_refuses_at_start() {
    let limit = BitrateLimit {
        bps: 150_000_000,
        window_secs: 5,
    };
    let server = Server::with_settings(
        1,
        settings(Policy {
            bitrate_limit: Some(limit),
            ..Policy::default()
        }),
    );
    let text = refused(&server, &["-t", "1", "-b", "100M", "-P", "2"]);
    assert!(
        text.contains("total required bandwidth is larger than server limit"),
        "{text}"
    );
    client_json(server.ports[0], &["-t", "1", "-b", "100M"]);
}

#[test]
fn bitrate_limit_cuts_a_running_test() {
    let limit = BitrateLimit {
        bps: 100_000_000,
        window_secs: 2,
    };
    let server = Server::with_settings(
        1,
        settings(Policy {
            bitrate_limit: Some(limit),
            ..Policy::default()
        }),
    );
    let text = refused(&server, &["-t", "10"]);
    assert!(
        text.contains("total required bandwidth is larger than server limit"),
        "{text}"
    );
    let e = &server.wait_entries(0, 1)[0];
    assert_eq!(
        e["error"],
        "error - total required bandwidth is larger than server limit"
    );
    let secs = e["intervals"].as_array().unwrap().len();
    assert!(
        (2..=4).contains(&secs),
        "cut after the 2 s window, not at the end ({secs} intervals)"
    );
}

#[test]
fn no_udp() {
    let server = Server::with_settings(
        1,
        settings(Policy {
            no_udp: true,
            ..Policy::default()
        }),
    );
    let text = refused(&server, &["-u", "-t", "1"]);
    assert!(text.contains("protocol does not exist"), "{text}");
    client_json(server.ports[0], &["-t", "1"]);
}

#[test]
fn allow_list_refuses_other_networks() {
    let allow = "10.0.0.0/8".parse().unwrap();
    let server = Server::with_settings(
        1,
        settings(Policy {
            allow,
            ..Policy::default()
        }),
    );
    let text = refused(&server, &["-t", "1"]);
    assert!(text.contains("test authorization failed"), "{text}");
    // Refused at the door: counted on stderr, never logged (a flood of
    // refused connections must not fill the disk).
    assert!(read_entries(&server.log_path(0)).is_empty());
}

#[test]
fn allow_list_admits_its_networks() {
    let allow = "127.0.0.0/8,::1".parse().unwrap();
    let server = Server::with_settings(
        1,
        settings(Policy {
            allow,
            ..Policy::default()
        }),
    );
    client_json(server.ports[0], &["-t", "1"]);
}

#[test]
fn receive_timeout_cuts_a_silent_test() {
    let limits = Limits {
        rcv_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let server = Server::with_settings(
        1,
        PortSettings {
            limits,
            ..PortSettings::default()
        },
    );
    // One datagram now, the next one in hours: the server hears nothing more.
    let text = refused(&server, &["-u", "-b", "1", "-l", "64", "-t", "30"]);
    assert!(text.contains("idle timeout for receiving data"), "{text}");
    let e = &server.wait_entries(0, 1)[0];
    assert_eq!(e["error"], "error - idle timeout for receiving data");
    assert!(num(e, "/end/sum_received/packets") >= 1.0);
}

fn fake_sysfs(temp: &str, throttled: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("sys/class/thermal/thermal_zone0/temp");
    std::fs::create_dir_all(t.parent().unwrap()).unwrap();
    std::fs::write(t, temp).unwrap();
    let f = dir
        .path()
        .join("sys/devices/platform/soc/soc:firmware/get_throttled");
    std::fs::create_dir_all(f.parent().unwrap()).unwrap();
    std::fs::write(f, throttled).unwrap();
    dir
}

#[test]
fn pi_health_is_recorded_where_sysfs_has_it() {
    let sysfs = fake_sysfs("48312\n", "0x50005\n");
    let health = webperf3::health::HealthProbe::new(sysfs.path());
    let server = Server::with_settings(
        1,
        PortSettings {
            health,
            ..PortSettings::default()
        },
    );
    client_json(server.ports[0], &["-t", "1"]);
    let e = server.wait_entries(0, 1).remove(0);
    let h = &e["webperf3"]["health"];
    assert_eq!(h["cpu_temp_c"], 48.3);
    assert_eq!(h["cpu_temp_max_c"], 48.3);
    assert_eq!(h["throttled"], "0x50005");
    assert_eq!(
        h["throttled_during"],
        serde_json::json!(["under-voltage", "throttled"])
    );
    assert!(h["server_cpu_percent"].as_f64().unwrap() > 0.0);
    let r = webperf3::analysis::summary::summarize(server.ports[0], &e).unwrap();
    assert_eq!(r.cpu_temp_c, Some(48.3));
    assert_eq!(
        r.throttled,
        Some(vec!["under-voltage".to_string(), "throttled".to_string()])
    );
    assert_eq!(r.overlapped, Some(false));
}

#[test]
fn pi_health_is_absent_elsewhere() {
    let empty = tempfile::tempdir().unwrap();
    let health = webperf3::health::HealthProbe::new(empty.path());
    let server = Server::with_settings(
        1,
        PortSettings {
            health,
            ..PortSettings::default()
        },
    );
    client_json(server.ports[0], &["-t", "1"]);
    let e = server.wait_entries(0, 1).remove(0);
    let h = e["webperf3"]["health"].as_object().unwrap();
    assert_eq!(h.keys().collect::<Vec<_>>(), ["server_cpu_percent"]);
    let r = webperf3::analysis::summary::summarize(server.ports[0], &e).unwrap();
    assert_eq!((r.cpu_temp_c, r.throttled), (None, None));
}
