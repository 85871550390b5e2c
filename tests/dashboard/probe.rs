//! `GET /probe` on the binary: the box tests a stock `iperf3 -s` and
//! answers Prometheus text; a busy target is tried again within the
//! scrape's timeout; and every refusal (probes off, a target outside
//! `--probe-allow`, a client outside `--allow`, an over-long probe, a
//! second probe at once) says why.

use std::net::TcpListener;
use std::time::Duration;

use webperf3::protocol::probe_policy::ProbeLimits;
use webperf3::protocol::probe_schedule::Schedule;

use crate::support::daemon::{Daemon, Launch};
use crate::support::http::{http_get, http_get_with};
use crate::support::iperf3::{Running, StockServer};
use crate::support::wait::wait_until;

fn daemon(dir: &tempfile::TempDir, extra: &[&str]) -> Daemon {
    Launch::new(dir.path()).args(extra.iter().copied()).start()
}

/// The value of the sample `name` (with its labels, as written) in `body`.
fn sample(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in:\n{body}"))
}

#[test]
fn probes_a_stock_server_and_answers_prometheus_text() {
    let stock = StockServer::start();
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(&dir, &["--probe-allow", "127.0.0.1"]);
    let target = format!("127.0.0.1:{}", stock.port);
    let reply = http_get(
        d.http,
        &format!("/probe?target={target}&duration=1&bitrate=100M"),
    )
    .unwrap();
    let body = String::from_utf8_lossy(&reply.body).into_owned();
    assert_eq!(reply.status, 200, "{body}");
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(sample(&body, "webperf3_probe_success"), 1.0, "{body}");
    // The exposition ends each help text with its one full stop.
    for help in body.lines().filter(|l| l.starts_with("# HELP")) {
        assert!(!help.ends_with(".."), "{help}");
    }
    let sent = sample(&body, "webperf3_probe_sent_bytes");
    let rate = sample(
        &body,
        "webperf3_probe_throughput_bytes_per_second{direction=\"send\"}",
    );
    assert!(
        sent > 0.0 && (rate - 12.5e6).abs() < 0.05 * 12.5e6,
        "{body}"
    );
    assert!(sample(&body, "webperf3_probe_rtt_seconds") > 0.0);
    assert!(body.contains("webperf3_probe_retransmits "));
    assert!(sample(&body, "webperf3_probe_duration_seconds") >= 1.0);

    crate::support::logs::wait_entries(&stock.log, 1);
    let path = format!("/probe?target={target}&duration=1&udp=1&reverse=1&bitrate=10M");
    let reply = http_get(d.http, &path).unwrap();
    let body = String::from_utf8_lossy(&reply.body).into_owned();
    assert_eq!(sample(&body, "webperf3_probe_success"), 1.0, "{body}");
    assert!(sample(&body, "webperf3_probe_received_bytes") > 0.0);
    let lost = sample(&body, "webperf3_probe_lost_ratio{direction=\"receive\"}");
    assert!((0.0..0.05).contains(&lost), "{body}");
    assert!(
        sample(
            &body,
            "webperf3_probe_jitter_seconds{direction=\"receive\"}"
        ) >= 0.0
    );
}

#[test]
fn a_busy_target_is_tried_again_within_the_scrape_timeout() {
    let stock = StockServer::start();
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(&dir, &["--probe-allow", "127.0.0.1"]);
    let busy = Running::start(stock.port, &["-t", "2", "-b", "10M"]);
    let path = format!("/probe?target=127.0.0.1:{}&duration=1", stock.port);
    let timeout = [("X-Prometheus-Scrape-Timeout-Seconds", "12")];
    let reply = http_get_with(d.http, &path, &timeout).unwrap();
    let body = String::from_utf8_lossy(&reply.body).into_owned();
    assert_eq!(sample(&body, "webperf3_probe_success"), 1.0, "{body}");
    assert!(
        sample(&body, "webperf3_probe_duration_seconds") > 1.5,
        "{body}"
    );
    drop(busy.draining().wait());

    // Without time to wait, a busy target is a failure that says so.
    let busy = Running::start(stock.port, &["-t", "5", "-b", "10M"]);
    let timeout = [("X-Prometheus-Scrape-Timeout-Seconds", "3.5")];
    let reply = http_get_with(d.http, &path, &timeout).unwrap();
    let body = String::from_utf8_lossy(&reply.body).into_owned();
    assert_eq!(reply.status, 200);
    assert_eq!(sample(&body, "webperf3_probe_success"), 0.0, "{body}");
    let why = reply.header("x-webperf3-probe-error").unwrap_or_default();
    assert!(why.contains("busy"), "{why}");
    drop(busy.draining().kill());
}

#[test]
fn refusals_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let reason = |d: &Daemon, path: &str| {
        let r = http_get(d.http, path).unwrap();
        (r.status, String::from_utf8_lossy(&r.body).into_owned())
    };
    let off = daemon(&dir, &[]);
    let (status, body) = reason(&off, "/probe?target=127.0.0.1");
    assert_eq!(status, 404);
    assert!(body.contains("--probe-allow"), "{body}");
    drop(off);

    let dir = tempfile::tempdir().unwrap();
    let d = daemon(
        &dir,
        &[
            "--probe-allow",
            "192.0.2.0/24,localhost:5201",
            "--probe-max-duration",
            "3",
        ],
    );
    let (status, body) = reason(&d, "/probe?target=127.0.0.1:5201");
    assert_eq!(status, 403);
    assert!(body.contains("is not in --probe-allow"), "{body}");
    // Listed as a pair: only on its port.
    let (status, _) = reason(&d, "/probe?target=localhost:5202");
    assert_eq!(status, 403);
    let (status, body) = reason(&d, "/probe?target=192.0.2.1&duration=4");
    assert_eq!(status, 400);
    assert!(body.contains("from 1 to 3"), "{body}");
    let (status, body) = reason(&d, "/probe?duration=1");
    assert_eq!(status, 400);
    assert!(body.contains("target"), "{body}");
    // A page of another site (an <img> pointing here) starts no probe.
    let from = |site| {
        http_get_with(
            d.http,
            "/probe?target=192.0.2.1",
            &[("Sec-Fetch-Site", site)],
        )
    };
    let r = from("cross-site").unwrap();
    assert_eq!(r.status, 403);
    assert!(String::from_utf8_lossy(&r.body).contains("another site"));
    // Typed into the address bar: asked as any scraper asks (here refused
    // only for its duration).
    let r = http_get_with(
        d.http,
        "/probe?target=192.0.2.1&duration=4",
        &[("Sec-Fetch-Site", "none")],
    )
    .unwrap();
    assert_eq!(r.status, 400);
    drop(d);

    let dir = tempfile::tempdir().unwrap();
    let fenced = daemon(
        &dir,
        &["--probe-allow", "127.0.0.1", "--allow", "192.0.2.0/24"],
    );
    let (status, body) = reason(&fenced, "/probe?target=127.0.0.1");
    assert_eq!(status, 403);
    assert!(body.contains("not in the allowed networks"), "{body}");
}

#[test]
fn one_probe_runs_at_a_time() {
    // A target that takes the connection and never answers holds the one
    // probe slot for as long as the test below needs.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(&dir, &["--probe-allow", "127.0.0.1"]);
    let http = d.http;
    let first = std::thread::spawn(move || {
        http_get(http, &format!("/probe?target=127.0.0.1:{port}&duration=1")).unwrap()
    });
    let (held, _) = silent.accept().unwrap();
    let second = http_get(
        d.http,
        &format!("/probe?target=127.0.0.1:{port}&duration=1"),
    )
    .unwrap();
    assert_eq!(second.status, 503);
    assert!(String::from_utf8_lossy(&second.body).contains("another probe is running"));
    // The slot is taken before a name is resolved: askers cannot keep the
    // box resolving names side by side.
    let third = http_get(d.http, "/probe?target=nowhere.invalid&duration=1").unwrap();
    assert_eq!(
        third.status,
        503,
        "{}",
        String::from_utf8_lossy(&third.body)
    );
    // A scrape waits for its turn while its probe still fits its timeout;
    // one whose turn cannot come in time is refused at once.
    let stock = StockServer::start();
    let scrape = |timeout: &'static str| {
        let path = format!("/probe?target=127.0.0.1:{}&duration=1", stock.port);
        move || {
            http_get_with(
                http,
                &path,
                &[("X-Prometheus-Scrape-Timeout-Seconds", timeout)],
            )
            .unwrap()
        }
    };
    let hurried = scrape("3")();
    assert_eq!(hurried.status, 503);
    let patient = std::thread::spawn(scrape("20"));
    // The first ends when its target hangs up: a failed probe, with why.
    drop(held);
    let patient = patient.join().unwrap();
    assert_eq!(patient.status, 200);
    let body = String::from_utf8_lossy(&patient.body).into_owned();
    assert_eq!(sample(&body, "webperf3_probe_success"), 1.0, "{body}");
    let first = first.join().unwrap();
    assert_eq!(first.status, 200);
    let body = String::from_utf8_lossy(&first.body).into_owned();
    assert_eq!(sample(&body, "webperf3_probe_success"), 0.0);
    assert!(first
        .header("x-webperf3-probe-error")
        .unwrap()
        .contains("closed"));
}

/// The probes among the results the daemon shows.
fn probe_results(d: &Daemon) -> Vec<serde_json::Value> {
    let (status, body) = d.get("/api/results");
    assert_eq!(status, 200, "{body}");
    let all: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    all.into_iter().filter(|r| r["kind"] == "probe").collect()
}

#[test]
fn a_probe_is_recorded_like_a_served_test() {
    let stock = StockServer::start();
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(&dir, &["--probe-allow", "127.0.0.1"]);
    let target = format!("127.0.0.1:{}", stock.port);
    let path = format!("/probe?target={target}&duration=1&bitrate=50M");
    let reply = http_get(d.http, &path).unwrap();
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );

    let probes = probe_results(&d);
    assert_eq!(probes.len(), 1, "{probes:?}");
    let r = &probes[0];
    assert_eq!(r["target"], target.as_str());
    assert_eq!(r["port"], 0);
    assert!(r["client"].is_null(), "{r}");
    assert_eq!(
        (r["reverse"].as_bool(), r["protocol"].as_str()),
        (Some(false), Some("TCP"))
    );
    // Client to server, as the target received it.
    let rate = r["receive_bps"].as_f64().unwrap();
    assert!((rate - 50e6).abs() < 0.05 * 50e6, "{r}");
    assert!(r["send_bps"].is_null(), "{r}");
    let id = r["id"].as_str().unwrap();
    assert!(id.starts_with("probe-"), "{id}");

    // The detail: the logged entry, in the stock client's layout, with
    // the server's results, and a verdict.
    let (status, body) = d.get(&format!("/api/results/{id}"));
    assert_eq!(status, 200, "{body}");
    let detail: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(&detail["result"], r);
    assert!(detail["verdict"]["limited_by"].is_string(), "{body}");
    // In the words of its roles: the box was the client, the target the
    // server.
    let evidence: Vec<&str> = detail["verdict"]["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    assert!(
        evidence
            .iter()
            .any(|l| l.starts_with("the box (the client) used")),
        "{evidence:?}"
    );
    assert!(
        evidence
            .iter()
            .any(|l| l.starts_with("the target received")),
        "{evidence:?}"
    );
    assert!(
        !evidence.iter().any(|l| l.contains("server")),
        "{evidence:?}"
    );
    let entry = &detail["entry"];
    let start: Vec<&str> = entry["start"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "connected",
        "version",
        "system_info",
        "timestamp",
        "connecting_to",
        "cookie",
        "test_start",
    ] {
        assert!(start.contains(&key), "{key} missing from {start:?}");
    }
    assert_eq!(entry["start"]["connecting_to"]["port"], stock.port);
    assert!(entry["intervals"].as_array().is_some_and(|i| !i.is_empty()));
    // The target's side of the end, from the results it sent.
    assert_eq!(entry["end"]["sum_received"]["bytes"], r["bytes_received"]);
    let sent = entry["end"]["sum_sent"]["bytes"].as_u64().unwrap();
    let received = r["bytes_received"].as_u64().unwrap();
    assert!(received > 0 && received <= sent, "{entry}");
    assert!(
        entry["webperf3"]["server_results"]["streams"].is_array(),
        "{entry}"
    );
    let offset: usize = id.rsplit_once('-').unwrap().1.parse().unwrap();
    let (_, text) = crate::support::logs::logged_entry(dir.path(), "probes.json", offset, entry)
        .expect("probes.json has the entry at its id's offset");
    assert!(body.contains(&format!("\"entry\":{text}")));

    // Counted in /metrics as a probe, on no port; again after a restart,
    // from the history read back.
    let counted = "webperf3_tests_total{kind=\"probe\",protocol=\"tcp\",direction=\"receive\",outcome=\"ok\"} 1";
    let metrics = d.get("/metrics").1;
    assert!(metrics.lines().any(|l| l == counted), "{metrics}");
    assert!(!metrics.contains("port=\"0\""), "{metrics}");

    // A restart reads it back the same.
    drop(d);
    let d = daemon(&dir, &["--probe-allow", "127.0.0.1"]);
    assert_eq!(probe_results(&d), probes);
    let metrics = d.get("/metrics").1;
    assert!(metrics.lines().any(|l| l == counted), "{metrics}");
}

/// A `--probe-every` spec for `target` whose first run on the box named
/// `box_name` comes within `within` of its start: the schedule's offset
/// in its interval is fixed by the name and the spec, so the interval is
/// picked to make it small.
fn spec_due_soon(target: &str, box_name: &str, within: Duration) -> String {
    (60..3600)
        .map(|s| format!("{target},every={s}s,duration=1,bitrate=20M"))
        .find(|spec| {
            let schedule = Schedule::parse(spec, ProbeLimits::default()).unwrap();
            schedule.offset(box_name) < within
        })
        .expect("an interval with a small offset")
}

#[test]
fn scheduled_probes_are_recorded_and_a_busy_target_tried_again() {
    let stock = StockServer::start();
    let dir = tempfile::tempdir().unwrap();
    let target = format!("127.0.0.1:{}", stock.port);
    let spec = spec_due_soon(&target, "mesh-box", Duration::from_secs(2));
    // The target runs another test when the first turn is due.
    let _busy = Running::start(stock.port, &["-t", "8", "-b", "10M"]);
    let args = [
        "--probe-allow",
        "127.0.0.1",
        "--forward-host",
        "mesh-box",
        "--probe-every",
        &spec,
    ];
    let d = daemon(&dir, &args);
    d.wait_stderr("probe target busy, trying again");
    wait_until(
        Duration::from_secs(40),
        "the scheduled probe in /api/results",
        || !probe_results(&d).is_empty(),
    );
    let probes = probe_results(&d);
    assert_eq!(probes.len(), 1, "{probes:?}");
    assert_eq!(probes[0]["target"], target.as_str());
    assert!(probes[0]["error"].is_null(), "{}", probes[0]);
    let rate = probes[0]["receive_bps"].as_f64().unwrap();
    assert!((rate - 20e6).abs() < 0.05 * 20e6, "{}", probes[0]);
}
