//! The headline of results from stock iperf3 clients against the real
//! binary: a TCP test, a `-R -P 4` test whose small client window held the
//! box back, a UDP test at its `-b` target; the same sentence after a
//! restart (read back from the index); the devices those tests make.

use std::time::Duration;

use serde_json::Value;

use crate::support::daemon::Daemon;
use crate::support::iperf3::{client_json, require};
use crate::support::wait::wait_until;

/// Every result the daemon shows, oldest first.
fn results(daemon: &Daemon) -> Vec<Value> {
    let (status, body) = daemon.get("/api/results");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Vec<Value>>(&body).expect("an array of results")
}

/// Runs a stock client with `args` and returns its result once shown.
fn run(daemon: &Daemon, args: &[&str]) -> Value {
    let before = results(daemon).len();
    client_json(daemon.port, args);
    let mut all = Vec::new();
    wait_until(Duration::from_secs(10), "the result", || {
        all = results(daemon);
        all.len() > before
    });
    all.pop().unwrap()
}

#[test]
fn headlines_say_what_a_test_reached_and_what_held_it_back() {
    require();
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);

    let tcp = run(&daemon, &["-t", "1", "--extra-data", "alice"]);
    let headline = tcp["headline"].as_str().expect("a headline");
    assert!(headline.starts_with("alice sent "), "{headline}");
    assert!(headline.contains(" to the box"), "{headline}");
    assert!(tcp["limited_by"].is_string(), "{tcp}");
    // Loopback has no link speed.
    assert!(tcp.get("link_bps").is_none(), "{tcp}");

    let window = run(
        &daemon,
        &[
            "-R",
            "-P",
            "4",
            "-w",
            "32K",
            "-t",
            "2",
            "--extra-data",
            "bob",
        ],
    );
    assert_eq!(window["limited_by"], "receive-window", "{window}");
    let headline = window["headline"].as_str().unwrap();
    assert!(headline.starts_with("bob received "), "{headline}");
    assert!(
        headline.contains(": bob could not take data faster (its receive window was often full), so the network was not the limit."),
        "{headline}"
    );

    let udp = run(
        &daemon,
        &["-u", "-b", "50M", "-t", "2", "--extra-data", "carol"],
    );
    assert_eq!(udp["limited_by"], "bitrate-target", "{udp}");
    assert_eq!(udp["target_bps"], 50e6, "{udp}");
    let headline = udp["headline"].as_str().unwrap();
    assert!(headline.starts_with("carol sent "), "{headline}");
    assert!(
        headline.ends_with(
            ": it reached the 50 Mbit/s it asked for, so this is the rate it was paced to, \
             not what the network can carry."
        ),
        "{headline}"
    );

    // The detail's verdict is the one kept with the result.
    let id = window["id"].as_str().unwrap();
    let (_, body) = daemon.get(&format!("/api/results/{id}"));
    let detail: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(detail["verdict"]["limited_by"], window["limited_by"]);
    assert_eq!(detail["result"], window);

    // Devices: each name side by side, medians of capacity tests only.
    let (status, body) = daemon.get("/api/devices");
    assert_eq!(status, 200, "{body}");
    let devices: Vec<Value> = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = devices
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    assert_eq!(devices[1]["tests"], 1);
    assert_eq!(devices[1]["last"], window);
    assert_eq!(devices[1]["days_7"]["download_bps"], window["send_bps"]);
    assert_eq!(devices[0]["days_30"]["upload_bps"], tcp["receive_bps"]);
    // A UDP test is paced: counted, but no upload capacity.
    assert_eq!(devices[2]["days_7"]["tests"], 1);
    assert!(devices[2]["days_7"]["upload_bps"].is_null(), "{body}");
    let (status, body) = daemon.get("/api/devices?name=carol&days=3");
    assert_eq!(status, 200, "{body}");
    let carol: Value = serde_json::from_str(&body).unwrap();
    let series = carol["series"].as_array().unwrap();
    assert_eq!(series.len(), 3);
    let today = &series[2]["kinds"]["udp"];
    assert_eq!(today["tests"], 1, "{body}");
    assert_eq!(today["upload_bps"]["median"], udp["receive_bps"], "{body}");
    assert_eq!(daemon.get("/api/devices?name=nobody").0, 404);
    assert_eq!(daemon.get("/api/devices?days=3").0, 400);

    // After a restart (the history read back from its index) every
    // result reads the same.
    let shown = results(&daemon);
    daemon.stop();
    let again = Daemon::start(dir.path(), &[]);
    assert_eq!(results(&again), shown);
    again.stop();
    let again = Daemon::start(dir.path(), &[]);
    assert_eq!(results(&again), shown, "read from the index");
}

#[test]
fn devices_show_latency_under_load_of_stock_tests() {
    require();
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    // The box sends: its smoothed RTT while it did is the latency down.
    let down = run(&daemon, &["-R", "-t", "1", "--extra-data", "dave"]);
    let loaded = down["latency_down_ms"].as_f64().expect("latency down");
    assert!(down["latency_idle_ms"].is_null(), "{down}");
    let (status, body) = daemon.get("/api/devices?name=dave&days=2");
    assert_eq!(status, 200, "{body}");
    let dave: Value = serde_json::from_str(&body).unwrap();
    for period in ["days_7", "days_30"] {
        assert_eq!(dave[period]["loaded_latency_ms"], loaded, "{body}");
        // No idle figure: the latency is the smallest RTT.
        assert_eq!(dave[period]["latency_ms"], down["min_rtt_ms"], "{body}");
    }
    // Today's (yesterday's, had midnight just passed).
    let days = dave["series"].as_array().unwrap();
    let tcp = &days
        .iter()
        .rev()
        .find(|d| d["kinds"]["tcp"].is_object())
        .unwrap()["kinds"]["tcp"];
    assert_eq!(tcp["loaded_latency_ms"]["median"], loaded, "{body}");
    daemon.stop();
}
