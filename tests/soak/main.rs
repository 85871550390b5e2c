//! The soak: the binary under a sustained mix of stock clients on every
//! port, with dashboard clients watching and polling throughout, then
//! checked for what it left behind.
//!
//! At least 500 short tests (`WEBPERF3_SOAK_TESTS` for more, e.g. 2000 by
//! hand) run from one stock client per port in parallel: TCP, `-R`, UDP,
//! `--bidir` and `-P 16 -R -b 1 -l 1M`, each named `--extra-data
//! soak-<n>`. Meanwhile 50 websocket clients read every event and two
//! pollers fetch `/api/results` and `/csv` in a loop. Afterwards:
//!
//! - every test is in the logs exactly once (matched by name), and every log
//!   file (rotated ones included) parses strictly;
//! - the server's threads and open files are back to their starting count
//!   within seconds, and its RSS within 30 MB of where it started.

#[path = "../support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use support::daemon::{Daemon, Launch};
use support::http::http_get;
use support::iperf3;
use support::logs::read_entries;
use support::ports::retry_in_use;
use support::wait::{poll_until, wait_until};

/// iperf3 ports served, one stock client each.
const PORTS: u16 = 4;
/// Tests when `WEBPERF3_SOAK_TESTS` is not set.
const DEFAULT_TESTS: usize = 500;
/// Websocket clients watching throughout.
const WEBSOCKETS: usize = 50;

/// The server's flags besides ports and addresses.
const FLAGS: &[&str] = &[
    // Rotation keeps each log small; the soak then also reads the rotated
    // files, all of them kept so that every test can be found.
    "--max-log-size",
    "256K",
    "--keep-rotated",
    "10000",
    // Every client is on loopback: lift the per-source rate of tests.
    "--max-tests-per-minute",
    "100000",
];

/// The client flags of the `n`-th test: a fifth each of TCP, `-R`, UDP,
/// `--bidir` and the paced sixteen-stream reverse test.
fn mix(n: usize) -> Vec<&'static str> {
    match n % 5 {
        0 => vec!["-n", "4M"],
        1 => vec!["-R", "-n", "4M"],
        2 => vec!["-u", "-b", "100M", "-l", "1400", "-k", "300"],
        3 => vec!["--bidir", "-n", "4M"],
        _ => vec!["-P", "16", "-R", "-b", "1", "-l", "1M", "-t", "1"],
    }
}

fn tests_wanted() -> usize {
    std::env::var("WEBPERF3_SOAK_TESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_TESTS)
}

/// A value of /proc/PID/status (`Threads`, `VmRSS` in kB).
fn proc_status(d: &Daemon, key: &str) -> u64 {
    d.status_kb(key)
}

/// What the server holds: threads, open files, RSS in MB.
fn held(d: &Daemon) -> (u64, usize, f64) {
    (
        proc_status(d, "Threads"),
        d.fds(),
        proc_status(d, "VmRSS") as f64 / 1024.0,
    )
}

/// Runs the stock client test `name` on `port`. Each port has one client,
/// running its tests back to back, so the port is free whenever the next
/// one starts: a refusal as busy fails the soak.
fn run_one(port: u16, name: &str, flags: &[&str]) {
    let port = port.to_string();
    let mut args = vec!["-c", "127.0.0.1", "-p", &port, "-J", "--extra-data", name];
    args.extend_from_slice(flags);
    let out = iperf3::client(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("busy"),
        "soak: {name} on {port} was told the server is busy: {text}"
    );
    if !out.status.success() || text.contains("\"error\"") {
        eprintln!("soak: {name} on {port} {flags:?} failed: {text}");
    }
}

/// Every entry of every log in `dir` (rotated files included), strictly
/// parsed, counted by `extra_data`.
fn logged_names(dir: &Path) -> HashMap<String, usize> {
    let mut names = HashMap::new();
    for file in std::fs::read_dir(dir).unwrap() {
        let path = file.unwrap().path();
        let is_log = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("port-") && n.contains(".json"));
        if !is_log {
            continue;
        }
        for entry in read_entries(&path) {
            if let Some(name) = entry["extra_data"].as_str() {
                *names.entry(name.to_string()).or_default() += 1;
            }
        }
    }
    names
}

/// Polls `path` until `stop`, failing on any answer but 200 and any error
/// but a 10 s wait with no byte (a stall); returns the answers and stalls.
fn poller(
    addr: SocketAddr,
    path: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, usize)> {
    std::thread::spawn(move || {
        let (mut n, mut stalls) = (0, 0);
        while !stop.load(Ordering::Relaxed) {
            match http_get(addr, path) {
                Ok(reply) => {
                    assert_eq!(reply.status, 200, "GET {path}");
                    n += 1;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    eprintln!("soak: GET {path} stalled: {e}");
                    stalls += 1;
                }
                Err(e) => panic!("GET {path}: {e}"),
            }
        }
        (n, stalls)
    })
}

#[test]
fn soak() {
    iperf3::require();
    let wanted = tests_wanted();
    let dir = tempfile::tempdir().unwrap();
    let d = retry_in_use(PORTS, |first| {
        Launch::new(dir.path())
            .ports(first, PORTS)
            .args(FLAGS)
            .try_start()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let start = held(&d);
    let started = Instant::now();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let results_seen = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let url = format!("ws://{}/ws", d.http);
    let watchers: Vec<_> = (0..WEBSOCKETS)
        .map(|_| {
            let (url, seen, stop) = (url.clone(), results_seen.clone(), stop.clone());
            runtime.spawn(async move {
                let (mut ws, _) = tokio_tungstenite::connect_async(url)
                    .await
                    .expect("websocket");
                while !stop.load(Ordering::Relaxed) {
                    let next = tokio::time::timeout(Duration::from_millis(500), ws.next()).await;
                    match next {
                        Ok(Some(Ok(msg))) => {
                            if msg
                                .to_text()
                                .is_ok_and(|t| t.contains("\"type\":\"result\""))
                            {
                                seen.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Ok(_) => panic!("a watching websocket was closed"),
                        Err(_) => {}
                    }
                }
            })
        })
        .collect();
    let pollers = [
        poller(d.http, "/api/results", stop.clone()),
        poller(d.http, "/csv", stop.clone()),
    ];

    // One client per port, tests numbered across them.
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..PORTS)
        .map(|i| {
            let (next, port) = (next.clone(), d.port + i);
            std::thread::spawn(move || {
                let mut ran = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= wanted {
                        return ran;
                    }
                    let name = format!("soak-{n}");
                    run_one(port, &name, &mix(n));
                    ran.push(name);
                }
            })
        })
        .collect();
    let mut ran = Vec::<String>::new();
    for w in workers {
        ran.extend(w.join().expect("a client worker failed"));
    }
    let took = started.elapsed();

    stop.store(true, Ordering::Relaxed);
    let (polled, stalls): (Vec<usize>, Vec<usize>) =
        pollers.into_iter().map(|p| p.join().unwrap()).unzip();
    // A rare stall under this load is reported, not hidden; more than one
    // in a hundred polls fails.
    for (n, stalled) in polled.iter().zip(&stalls) {
        assert!(*stalled * 100 <= *n, "{stalled} stalls in {n} polls");
    }
    runtime.block_on(async {
        for w in watchers {
            w.await.expect("a websocket watcher failed");
        }
    });
    drop(runtime);
    eprintln!(
        "soak: {} tests in {took:?}; polled {polled:?}; {} results pushed to {WEBSOCKETS} websockets",
        ran.len(),
        results_seen.load(Ordering::Relaxed)
    );

    // Every test logged exactly once, in logs that parse strictly.
    assert_eq!(ran.len(), wanted);
    let mut names = HashMap::new();
    wait_until(Duration::from_secs(20), "every test logged", || {
        names = logged_names(dir.path());
        ran.iter().all(|n| names.contains_key(n))
    });
    let twice: Vec<_> = ran.iter().filter(|n| names[*n] != 1).collect();
    assert!(twice.is_empty(), "logged more than once: {twice:?}");
    assert_eq!(names.len(), wanted, "entries with other names");
    assert!(polled.iter().all(|n| *n > 0), "{polled:?}");

    // What it held goes back to where it started.
    let mut now = held(&d);
    let settled = poll_until(Duration::from_secs(30), || {
        now = held(&d);
        now.0 <= start.0 && now.1 <= start.1
    });
    eprintln!("soak: threads, open files, RSS MB: {start:?} before, {now:?} after");
    assert!(
        settled,
        "threads/open files {:?} after the soak, {:?} before",
        (now.0, now.1),
        (start.0, start.1)
    );
    assert!(
        now.2 <= start.2 + 30.0,
        "RSS {:.0} MB after the soak, {:.0} MB before",
        now.2,
        start.2
    );
    d.stop();
}
