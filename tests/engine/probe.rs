//! The box as an iperf3 client (`webperf3::probe`) against Debian's stock
//! `iperf3 -s` and against our own server in-process, in every mode: each
//! test ends cleanly, the server's results it keeps are the bytes the
//! server logged, and what it measured agrees with the server's log.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use webperf3::json::to_value;
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
fn logged(entry: &Value, p: &TestParams) -> (u64, u64, f64) {
    let (mut received, mut sent, mut seconds) = (0, 0, 0.0);
    let streams = entry
        .pointer("/end/streams")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no end streams in {entry}"));
    // Whether a side or sum is the server's sending one: its `sender`
    // flag, or in servers before 3.7 (which write none) the test's
    // direction.
    let sends = |v: &Value| v["sender"].as_bool().unwrap_or(p.reverse);
    if streams.iter().any(|s| s.get("udp").is_some()) {
        // A UDP receiving stream logs no bytes of its own, only the
        // datagrams: from 3.11 the sums `sum_sent`/`sum_received` say it
        // all; before, each stream says it with its flag (3.7's `--bidir`
        // has one `sum` for both directions).
        let end = entry["end"].as_object().expect("end");
        let split = end.keys().any(|k| k.starts_with("sum_sent"));
        let mut add = |sum: &Value, sent_sum: bool| {
            seconds = sum["seconds"].as_f64().expect("seconds");
            if sent_sum {
                sent += sum["bytes"].as_u64().expect("bytes");
            } else {
                received += sum["packets"].as_u64().expect("packets") * u64::from(p.len);
            }
        };
        if split {
            let sums = end
                .iter()
                .filter(|(k, _)| k.starts_with("sum_sent") || k.starts_with("sum_received"));
            for (key, sum) in sums {
                add(sum, key.starts_with("sum_sent"));
            }
        } else {
            for stream in streams.iter().map(|s| &s["udp"]) {
                add(stream, sends(stream));
            }
        }
        return (received, sent, seconds);
    }
    for s in streams {
        let side = if sends(&s["sender"]) {
            &s["sender"]
        } else {
            &s["receiver"]
        };
        let bytes = side["bytes"].as_u64().expect("bytes");
        seconds = side["seconds"].as_f64().expect("seconds");
        if sends(side) {
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
        agrees_with_the_log(&p, &out, entries.last().unwrap());
    }
}

/// Checks a probe's outcome against the entry its server logged: bytes
/// exact (TCP), figures within 5 %, what each mode must have.
fn agrees_with_the_log(p: &TestParams, out: &Outcome, entry: &Value) {
    let (received, sent, seconds) = logged(entry, p);
    if p.protocol == Protocol::Tcp {
        assert_eq!(kept_bytes(out), received + sent, "{p:?}: {entry}");
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
    // The server's results as recorded: a stream without
    // retransmissions says -1 (3.12 sends the unsigned image of -1).
    let recorded = to_value(&out.entry);
    let kept = recorded.pointer("/webperf3/server_results/streams");
    let kept = kept.and_then(Value::as_array).expect("server_results");
    for s in kept {
        let r = s["retransmits"].as_i64();
        assert!(r.is_some_and(|r| r >= -1), "{p:?}: the server's {s}");
    }
    if let Some(extra) = &p.extra_data {
        assert_eq!(entry["extra_data"], Value::String(extra.clone()));
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

/// The minor version of a stock binary (`iperf 3.N…` from `--version`).
fn stock_minor(exe: &Path) -> Option<u32> {
    let out = std::process::Command::new(exe)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rest = text.split_whitespace().nth(1)?.strip_prefix("3.")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Every stock server built under `WEBPERF3_STOCK_DIR` (each
/// `<dir>/<name>/iperf3`, e.g. 3.1.3, 3.7, 3.16 and master) probed in
/// TCP, `-R`, UDP and (3.7 and later) `--bidir`, each checked against the
/// server's log; the table of what passed is printed, and any failure
/// fails the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs stock builds: WEBPERF3_STOCK_DIR=<dir of <version>/iperf3>"]
async fn probes_stock_servers_of_every_version() {
    let dir = std::env::var_os("WEBPERF3_STOCK_DIR")
        .expect("WEBPERF3_STOCK_DIR: a directory of <version>/iperf3 builds");
    let mut builds: Vec<_> = std::fs::read_dir(&dir)
        .expect("WEBPERF3_STOCK_DIR readable")
        .filter_map(|e| Some(e.ok()?.path().join("iperf3")))
        .filter(|p| p.is_file())
        .collect();
    builds.sort();
    assert!(!builds.is_empty(), "no <version>/iperf3 under {dir:?}");
    let mut table = Vec::new();
    for exe in builds {
        let minor = stock_minor(&exe).unwrap_or_else(|| panic!("{}: no version", exe.display()));
        let logs = tempfile::tempdir().unwrap();
        let stock = StockServer::try_start(&exe, logs.path()).unwrap_or_else(|e| panic!("{e}"));
        let addr = SocketAddr::from(([127, 0, 0, 1], stock.port));
        let mut modes = vec![
            ("tcp", tcp(2, 100_000_000)),
            (
                "tcp -R",
                TestParams {
                    reverse: true,
                    ..tcp(2, 100_000_000)
                },
            ),
            (
                "udp",
                TestParams {
                    len: 1200,
                    ..udp(2, 10_000_000)
                },
            ),
            (
                "udp -R",
                TestParams {
                    reverse: true,
                    ..udp(2, 10_000_000)
                },
            ),
        ];
        if minor >= 7 {
            modes.push((
                "tcp --bidir",
                TestParams {
                    bidirectional: true,
                    ..tcp(2, 100_000_000)
                },
            ));
            modes.push((
                "udp --bidir",
                TestParams {
                    bidirectional: true,
                    ..udp(2, 10_000_000)
                },
            ));
        }
        for (i, (name, p)) in modes.into_iter().enumerate() {
            wait_until(
                Duration::from_secs(10),
                "the stock server listening",
                || listening(stock.pid(), stock.port),
            );
            let out = probe::run(addr, p.clone(), Limits::default()).await;
            let verdict = match &out.failure {
                Some(f) => Err(f.to_string()),
                None => {
                    let entries = wait_entries(&stock.log, i + 1);
                    let entry = entries.last().unwrap().clone();
                    std::panic::catch_unwind(|| agrees_with_the_log(&p, &out, &entry)).map_err(
                        |e| {
                            e.downcast_ref::<String>()
                                .cloned()
                                .unwrap_or_else(|| "check failed".into())
                        },
                    )
                }
            };
            table.push((exe.display().to_string(), name, verdict));
        }
    }
    let mut failed = 0;
    for (exe, name, verdict) in &table {
        match verdict {
            Ok(()) => eprintln!("pass  {exe:<40} {name}"),
            Err(e) => {
                failed += 1;
                eprintln!("FAIL  {exe:<40} {name}: {e}");
            }
        }
    }
    assert_eq!(failed, 0, "{failed} of {} failed", table.len());
}
