//! The box as an iperf3 client (`webperf3::probe`) against Debian's stock
//! `iperf3 -s` and against our own server in-process, in every mode: each
//! test ends cleanly, the server's results it keeps are the bytes the
//! server logged, and what it measured agrees with the server's log.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use webperf3::probe::{self, Outcome};
use webperf3::protocol::client::{Failure, Limits};
use webperf3::protocol::params::{Protocol, TestParams};

use crate::harness::Server;
use crate::support::iperf3::{Running, StockServer};
use crate::support::logs::wait_entries;
use crate::support::ports::listening;
use crate::support::wait::wait_until;

fn tcp(time: u32, bandwidth: u64) -> TestParams {
    TestParams {
        time,
        bandwidth,
        ..TestParams::client_default(Protocol::Tcp)
    }
}

fn udp(time: u32, bandwidth: u64) -> TestParams {
    TestParams {
        time,
        bandwidth,
        ..TestParams::client_default(Protocol::Udp)
    }
}

/// The modes every server is probed in; all paced, so the figures do not
/// depend on how busy the machine is.
fn modes() -> Vec<TestParams> {
    vec![
        tcp(2, 200_000_000),
        TestParams {
            reverse: true,
            parallel: 2,
            ..tcp(2, 100_000_000)
        },
        TestParams {
            bidirectional: true,
            ..tcp(2, 100_000_000)
        },
        TestParams {
            num: 30 << 20,
            time: 0,
            ..tcp(0, 200_000_000)
        },
        TestParams {
            omit: 1,
            window: 1 << 20,
            len: 65536,
            extra_data: Some("probe east".into()),
            title: Some("mesh".into()),
            ..tcp(2, 100_000_000)
        },
        TestParams {
            len: 1200,
            ..udp(2, 8_000_000)
        },
        TestParams {
            reverse: true,
            parallel: 2,
            ..udp(2, 10_000_000)
        },
        TestParams {
            bidirectional: true,
            udp_counters_64bit: true,
            ..udp(2, 10_000_000)
        },
    ]
}

/// The bytes a server's log entry says it (received, sent), and over how
/// many seconds. UDP receiving counts what was sent to it, lost or not:
/// the datagrams expected (the highest sequence numbers) of `len` bytes.
fn logged(entry: &Value, len: u32) -> (u64, u64, f64) {
    let (mut received, mut sent, mut seconds) = (0, 0, 0.0);
    let streams = entry
        .pointer("/end/streams")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no end streams in {entry}"));
    if streams.iter().any(|s| s.get("udp").is_some()) {
        // A UDP receiving stream logs no bytes of its own; the sums do.
        let end = entry["end"].as_object().expect("end");
        let sums = end
            .iter()
            .filter(|(k, _)| k.starts_with("sum_sent") || k.starts_with("sum_received"));
        for (key, sum) in sums {
            let bytes = sum["bytes"].as_u64().expect("bytes");
            seconds = sum["seconds"].as_f64().expect("seconds");
            if key.starts_with("sum_sent") {
                sent += bytes;
            } else {
                received += sum["packets"].as_u64().expect("packets") * u64::from(len);
            }
        }
        return (received, sent, seconds);
    }
    for s in streams {
        let side = if s.pointer("/sender/sender") == Some(&Value::Bool(true)) {
            &s["sender"]
        } else {
            &s["receiver"]
        };
        let bytes = side["bytes"].as_u64().expect("bytes");
        seconds = side["seconds"].as_f64().expect("seconds");
        if side["sender"] == Value::Bool(true) {
            sent += bytes;
        } else {
            received += bytes;
        }
    }
    (received, sent, seconds)
}

/// Bytes in the server's results the probe kept.
fn kept_bytes(out: &Outcome) -> u64 {
    let doc = &out.server.as_ref().expect("the server's results").document;
    doc["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .map(|s| s["bytes"].as_u64().expect("bytes"))
        .sum()
}

fn within(what: &str, ours: f64, theirs: f64, share: f64) {
    assert!(
        (ours - theirs).abs() <= share * ours.abs().max(theirs.abs()),
        "{what}: ours {ours} vs the server's {theirs}, more than {}% apart",
        share * 100.0
    );
}

/// Probes `addr` in every mode, checking each against the entry the
/// server appended to `log`; `ready` waits until the server takes the
/// next test.
async fn probe_every_mode(addr: SocketAddr, log: &Path, ready: impl Fn()) {
    for (i, p) in modes().into_iter().enumerate() {
        ready();
        let out = probe::run(addr, p.clone(), Limits::default()).await;
        assert_eq!(out.failure, None, "{p:?}");
        let entries = wait_entries(log, i + 1);
        let entry = entries.last().unwrap();
        let (received, sent, seconds) = logged(entry, p.len);
        if p.protocol == Protocol::Tcp {
            assert_eq!(kept_bytes(&out), received + sent, "{p:?}: {entry}");
        }
        let what = format!(
            "{:?} reverse {} bidir {}",
            p.protocol, p.reverse, p.bidirectional
        );
        if p.server_receives() {
            within(&what, out.sent.bytes as f64, received as f64, 0.05);
            let ours = out.sent.bytes as f64 / out.sent.seconds;
            within(&what, ours, received as f64 / seconds, 0.05);
        }
        if p.server_sends() {
            within(&what, out.received.bytes as f64, sent as f64, 0.05);
            let ours = out.received.bytes as f64 / out.received.seconds;
            within(&what, ours, sent as f64 / seconds, 0.05);
        }
        if p.num > 0 {
            assert!(out.sent.bytes >= p.num, "{} of {}", out.sent.bytes, p.num);
        }
        if p.protocol == Protocol::Tcp && !p.reverse {
            assert!(out.retransmits.is_some() && out.rtt.is_some(), "{out:?}");
        }
        if p.protocol == Protocol::Udp {
            let (to_server, from_server) = out.udp;
            assert_eq!(to_server.is_some(), p.server_receives(), "{out:?}");
            assert_eq!(from_server.is_some(), p.server_sends(), "{out:?}");
            for u in [to_server, from_server].into_iter().flatten() {
                assert!(u.packets > 0 && u.lost_ratio() < 0.05, "{u:?}");
            }
        }
        if let Some(extra) = &p.extra_data {
            assert_eq!(entry["extra_data"], Value::String(extra.clone()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_a_stock_server_in_every_mode() {
    let stock = StockServer::start();
    let addr = SocketAddr::from(([127, 0, 0, 1], stock.port));
    // Stock re-creates its listener after a test that set a window.
    let ready = || {
        let what = "the stock server listening";
        wait_until(Duration::from_secs(10), what, || {
            listening(stock.pid(), stock.port)
        });
    };
    probe_every_mode(addr, &stock.log, ready).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_our_server_in_every_mode() {
    let server = Server::start(1);
    let addr = SocketAddr::from(([127, 0, 0, 1], server.ports[0]));
    probe_every_mode(addr, &server.log_path(0), || {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_server_is_reported_busy() {
    let stock = StockServer::start();
    let running = Running::start(stock.port, &["-t", "10", "-b", "10M"]);
    let addr = SocketAddr::from(([127, 0, 0, 1], stock.port));
    let out = probe::run(addr, tcp(1, 0), Limits::default()).await;
    assert_eq!(out.failure, Some(Failure::Busy));
    drop(running.draining().kill());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_listening_is_a_failure_with_the_reason() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let out = probe::run(addr, tcp(1, 0), Limits::default()).await;
    match out.failure {
        Some(Failure::Local(text)) => assert!(text.contains("refused"), "{text}"),
        other => panic!("{other:?}"),
    }
}
