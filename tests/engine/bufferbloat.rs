//! Bufferbloat you can see: the binary and stock `iperf3` (and M-Lab's
//! `ndt7-client`) in a network namespace whose loopback is a 10 Mbit/s
//! link, once with a deep queue (600 ms) and once with a shallow one
//! (5 ms), `reno` filling whatever queue there is. A `-R` test shows the
//! queue's delay as latency under load and a bad grade through the deep
//! queue, low latency and a good grade through the shallow one; rates
//! are within 10 % of the link's. Needs root.

use std::time::Duration;

use serde_json::Value;

use crate::support::daemon::Daemon;
use crate::support::iperf3;
use crate::support::ndt7;
use crate::support::netns::{Netns, DEEP, SHALLOW};
use crate::support::wait::wait_until;

const LIMIT: Duration = Duration::from_secs(60);

/// The shaped rate, bits/s.
const RATE: f64 = 10e6;

/// What one shaped link showed.
#[derive(Debug)]
struct Seen {
    upload_bps: f64,
    upload_grade: Value,
    reverse: Value,
    run: Value,
}

/// Runs an upload, a `-R` test and an ndt7 run through `lo` shaped with
/// `params`, and returns their results.
fn through(params: &[&str]) -> Seen {
    let ns = Netns::new();
    ns.shape(params);
    ns.run(|| {
        let dir = tempfile::tempdir().unwrap();
        let daemon = Daemon::start(dir.path(), &[]);
        let port = daemon.port;
        // Two seconds of slow start left out of the rates.
        iperf3::client_json(port, &["-t", "8", "-O", "2"]);
        iperf3::client_json(port, &["-t", "8", "-O", "2", "-R"]);
        ndt7::run_client(daemon.http, &[]);
        let results = || -> Vec<Value> {
            let (_, body) = daemon.get("/api/results");
            serde_json::from_str(&body).unwrap()
        };
        wait_until(LIMIT, "three results", || {
            let all = results();
            all.len() == 3 && all[2]["receive_bps"].is_number()
        });
        let all = results();
        eprintln!(
            "{params:?}: {}",
            serde_json::to_string_pretty(&all).unwrap()
        );
        Seen {
            upload_bps: all[0]["receive_bps"].as_f64().unwrap(),
            upload_grade: all[0]["grade"].clone(),
            reverse: all[1].clone(),
            run: all[2].clone(),
        }
    })
}

fn near_rate(bps: f64) -> bool {
    (bps - RATE).abs() <= 0.1 * RATE
}

#[test]
fn a_deep_queue_shows_as_latency_under_load_and_a_shallow_one_does_not() {
    let deep = through(DEEP);
    let shallow = through(SHALLOW);
    for seen in [&deep, &shallow] {
        assert!(near_rate(seen.upload_bps), "{seen:?}");
        assert!(
            near_rate(seen.reverse["send_bps"].as_f64().unwrap()),
            "{seen:?}"
        );
        // The server cannot see an upload's latency: it only receives.
        assert!(seen.upload_grade.is_null(), "{seen:?}");
        // M-Lab's client: one run, both directions.
        assert!(
            near_rate(seen.run["send_bps"].as_f64().unwrap()),
            "{seen:?}"
        );
        assert!(
            near_rate(seen.run["receive_bps"].as_f64().unwrap()),
            "{seen:?}"
        );
    }
    let loaded = |r: &Value| r["latency_down_ms"].as_f64().unwrap();
    // Through the deep queue: about the queue's delay, a bad grade.
    for r in [&deep.reverse, &deep.run] {
        assert!(loaded(r) > 100.0, "{r}");
        assert!(
            ["C", "D", "F"].contains(&r["grade"].as_str().unwrap()),
            "{r}"
        );
    }
    // Through the shallow one: tens of ms at most, a good grade.
    for r in [&shallow.reverse, &shallow.run] {
        assert!(loaded(r) < 60.0, "{r}");
        assert!(
            ["A+", "A", "B"].contains(&r["grade"].as_str().unwrap()),
            "{r}"
        );
    }
}
