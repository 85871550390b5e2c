//! Big answers under many clients that read slowly or never: the detail of
//! the largest entries a client can cause (a long `-P 128` iperf3 test, a
//! hostile ndt7 upload), the whole history as JSON, and the whole box under
//! one bound while a stock client runs tests. Memory and threads are read
//! from the real binary's `/proc/PID/status`. `WEBPERF3_BIN` runs another
//! build of the binary (to compare figures).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::history_gen::write_history;
use crate::support::daemon::{Daemon, Launch};
use crate::support::http::{http_get, status_code};
use crate::support::iperf3;
use crate::support::logs::wait_entries;
use crate::support::ports::retry_in_use;
use crate::support::wait::{poll_until, wait_until};

/// A port no test serves whose log holds the big entries.
const BIG_PORT: u16 = 7;
/// A port no test serves whose log holds the long history.
const HISTORY_PORT: u16 = 9;
/// About the largest iperf3 entry a client can cause: `-P 128`, long.
const BIG_IPERF3: usize = 24 << 20;
/// A large ndt7 entry (a hostile upload's measurements).
const BIG_NDT7: usize = 4 << 20;

/// A `-P 128` TCP entry of about `size` bytes (one interval a second, each
/// with every stream), started at `ts` and named `name`, as the server
/// logs it.
fn wide_entry(ts: u64, size: usize, name: &str) -> String {
    let stream = |socket: usize| {
        format!(
            "{{\"socket\":\t{socket},\"start\":\t0,\"end\":\t1.000041,\"seconds\":\t1.000041,\
             \"bytes\":\t1310720,\"bits_per_second\":\t10485329.6,\"omitted\":\tfalse,\
             \"sender\":\tfalse}}"
        )
    };
    let streams: Vec<String> = (0..128).map(|s| stream(s + 5)).collect();
    let interval = format!(
        "{{\"streams\":\t[{}],\"sum\":\t{{\"start\":\t0,\"end\":\t1,\"seconds\":\t1,\
         \"bytes\":\t167772160,\"bits_per_second\":\t1342177280,\"omitted\":\tfalse,\
         \"sender\":\tfalse}}}}",
        streams.join(",")
    );
    let count = size / interval.len() + 1;
    let intervals = vec![interval; count].join(",\n\t\t");
    let bytes = 167_772_160u64 * count as u64;
    format!(
        "{{\n\t\"start\":\t{{\n\t\t\"connected\":\t[],\n\t\t\"version\":\t\"iperf 3.12\",\n\
         \t\t\"timestamp\":\t{{\"timesecs\":\t{ts}}},\n\
         \t\t\"accepted_connection\":\t{{\"host\":\t\"192.0.2.8\",\"port\":\t40000}},\n\
         \t\t\"test_start\":\t{{\"protocol\":\t\"TCP\",\"num_streams\":\t128,\"blksize\":\t131072,\
         \"omit\":\t0,\"duration\":\t{count},\"bytes\":\t0,\"blocks\":\t0,\"reverse\":\t0,\"tos\":\t0,\
         \"target_bitrate\":\t0,\"bidir\":\t0,\"fqrate\":\t0,\"interval\":\t1}}\n\t}},\n\
         \t\"intervals\":\t[{intervals}],\n\
         \t\"end\":\t{{\"streams\":\t[],\"sum_received\":\t{{\"start\":\t0,\"end\":\t{count},\
         \"seconds\":\t{count},\"bytes\":\t{bytes},\"bits_per_second\":\t1342177280,\
         \"sender\":\tfalse}}}},\n\
         \t\"extra_data\":\t\"{name}\"\n}}\n"
    )
}

/// An ndt7 upload of about `size` bytes, its bulk the client's
/// measurements, started at `ts` and named `name`, as `ndt7.json` holds it.
fn hostile_ndt7_entry(ts: u64, size: usize, name: &str) -> String {
    let time = chrono::DateTime::from_timestamp(ts as i64, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let pad = "x".repeat(4000);
    let measurements: Vec<Value> = (0..size / 4100 + 1)
        .map(|i| json!({"AppInfo": {"NumBytes": i, "ElapsedTime": i}, "pad": [[{"x": pad}]]}))
        .collect();
    let record = json!({
        "ClientIP": "192.0.2.9", "ClientPort": 40000, "ServerIP": "192.0.2.1", "ServerPort": 80,
        "StartTime": time, "EndTime": time,
        "Upload": {
            "StartTime": time, "EndTime": time, "UUID": "big",
            "ClientMetadata": [{"Name": "name", "Value": name}],
            "ServerMetadata": [], "ServerMeasurements": [],
            "ClientMeasurements": measurements
        }
    });
    format!("{}\n", serde_json::to_string_pretty(&record).unwrap())
}

/// Writes the big entries (`big-iperf3`, `big-ndt7`) into `dir`.
fn write_big_entries(dir: &Path) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let iperf3 = wide_entry(now - 7200, BIG_IPERF3, "big-iperf3");
    std::fs::write(dir.join(format!("port-{BIG_PORT}.json")), iperf3).unwrap();
    let ndt7 = hostile_ndt7_entry(now - 3600, BIG_NDT7, "big-ndt7");
    std::fs::write(dir.join("ndt7.json"), ndt7).unwrap();
}

/// The binary to run: `WEBPERF3_BIN` if set, else the one cargo built.
fn launch(dir: &Path) -> Launch {
    let launch = Launch::new(dir).start_deadline(Duration::from_secs(300));
    match std::env::var_os("WEBPERF3_BIN") {
        Some(bin) => launch.binary(&PathBuf::from(bin)),
        None => launch,
    }
}

/// The id of the test named `name`.
fn id_named(http: SocketAddr, name: &str) -> String {
    let reply = http_get(http, &format!("/api/results?name={name}&limit=1")).unwrap();
    let page: Value = serde_json::from_slice(&reply.body).unwrap();
    page[0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no test named {name}: {page}"))
        .to_string()
}

/// `GET path` on a connection whose receive buffer is as small as the
/// kernel allows (so a client that reads nothing holds the server's writes
/// back at once); the reply's status and the connection.
pub fn unread(addr: SocketAddr, path: &str) -> (u16, TcpStream) {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&addr.into()).unwrap();
    let mut conn: TcpStream = sock.into();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(conn, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    let status = status_code(&String::from_utf8_lossy(&head)).unwrap_or(0);
    (status, conn)
}

/// `VmRSS` in MB.
fn rss_mb(d: &Daemon) -> f64 {
    d.status_kb("VmRSS") as f64 / 1024.0
}

/// The most a process used while a [`Peak`] watched it.
#[derive(Debug, Default, Clone, Copy)]
struct Peak {
    rss_mb: f64,
    threads: u64,
}

/// Samples `pid`'s RSS and threads every 20 ms until `stop`.
fn watch(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Peak> {
    std::thread::spawn(move || {
        let mut peak = Peak::default();
        let field = |text: &str, key: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        poll_until(Duration::from_secs(600), || {
            if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                peak.rss_mb = peak.rss_mb.max(field(&text, "VmRSS") as f64 / 1024.0);
                peak.threads = peak.threads.max(field(&text, "Threads"));
            }
            stop.load(Ordering::Relaxed)
        });
        peak
    })
}

/// Opens `n` connections that each ask for `path` and read nothing;
/// returns them with their statuses, giving up early (and saying so) when
/// the server's RSS passes `abort_mb`, so a build without the bound does
/// not take the machine down.
fn open_unread(
    d: &Daemon,
    path: &str,
    n: usize,
    abort_mb: f64,
) -> Result<Vec<(u16, TcpStream)>, String> {
    let mut conns = Vec::new();
    for _ in 0..n {
        conns.push(unread(d.http, path));
        let rss = rss_mb(d);
        if rss > abort_mb {
            return Err(format!(
                "{} unread GET {path}: server RSS {rss:.0} MB",
                conns.len()
            ));
        }
    }
    Ok(conns)
}

#[test]
fn details_of_the_largest_entries_cost_a_bounded_memory_whatever_the_clients() {
    let dir = tempfile::tempdir().unwrap();
    write_big_entries(dir.path());
    let d = launch(dir.path()).start();
    let ids = [id_named(d.http, "big-iperf3"), id_named(d.http, "big-ndt7")];
    let before = rss_mb(&d);
    let max = webperf3::http::MAX_DETAILS;
    // Sixteen clients ask for the biggest entry's detail and read nothing.
    let path = format!("/api/results/{}", ids[0]);
    let conns = open_unread(&d, &path, 16, before + 600.0).unwrap_or_else(|e| panic!("{e}"));
    let mut peak = 0.0f64;
    poll_until(Duration::from_secs(3), || {
        peak = peak.max(rss_mb(&d) - before);
        false
    });
    let statuses: Vec<u16> = conns.iter().map(|(s, _)| *s).collect();
    eprintln!("16 unread details of a 24 MiB entry: RSS {before:.0} MB + at most {peak:.0} MB");
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        max,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 503).count(), 16 - max);
    assert!(
        peak < 40.0 * max as f64,
        "{max} details of a 24 MiB entry grew the server by {peak:.0} MB"
    );
    // Their slots come back when the clients go; each detail then answers
    // whole, with the entry as logged.
    drop(conns);
    for (id, log) in ids
        .iter()
        .zip([format!("port-{BIG_PORT}.json"), "ndt7.json".into()])
    {
        let mut reply = None;
        // A busy machine may take the reader's 10 s to read and parse it.
        wait_until(Duration::from_secs(90), "a free detail slot", || {
            match http_get(d.http, &format!("/api/results/{id}")) {
                Ok(r) if r.status == 200 => reply = Some(r),
                Ok(r) => assert_eq!(r.status, 503),
                Err(e) => eprintln!("GET the detail of {id}: {e}"),
            }
            reply.is_some()
        });
        let body: Value = serde_json::from_slice(&reply.unwrap().body).unwrap();
        let logged = std::fs::read_to_string(dir.path().join(log)).unwrap();
        let entry: Value = serde_json::from_str(&logged).unwrap();
        assert_eq!(body["entry"], entry, "{id}");
        assert!(body["verdict"]["limited_by"].is_string(), "{id}");
    }
}

#[test]
fn whole_history_answers_nobody_reads_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    write_history(
        &dir.path().join(format!("port-{HISTORY_PORT}.json")),
        30_000,
    );
    let d = launch(dir.path()).start();
    let before = rss_mb(&d);
    let threads_before = d.status_kb("Threads");
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch(d.pid(), stop.clone());
    let conns = open_unread(&d, "/api/results", 64, before + 600.0);
    poll_until(Duration::from_secs(3), || false);
    stop.store(true, Ordering::Relaxed);
    let peak = watcher.join().unwrap();
    let conns = conns.unwrap_or_else(|e| panic!("{e}"));
    let statuses: Vec<u16> = conns.iter().map(|(s, _)| *s).collect();
    eprintln!(
        "64 unread GET /api/results of 30,000 tests: RSS {before:.0} -> at most {:.0} MB, \
         threads {threads_before} -> at most {}",
        peak.rss_mb, peak.threads
    );
    let max = webperf3::http::MAX_EXPORTS;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        max,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 503).count(), 64 - max);
    assert!(
        peak.rss_mb - before < 32.0,
        "grew by {:.0} MB",
        peak.rss_mb - before
    );
    // Once they go, the whole history is there for a reader.
    drop(conns);
    let mut all = Vec::new();
    wait_until(Duration::from_secs(30), "a free export slot", || {
        let reply = http_get(d.http, "/api/results").unwrap();
        if reply.status == 200 {
            all = serde_json::from_slice::<Vec<Value>>(&reply.body).unwrap();
        }
        reply.status == 200
    });
    assert_eq!(all.len(), 30_000);
}

/// The bits per second the server received in a stock client's test of
/// `seconds` at a 200 Mbit/s target on `port`.
fn paced_rate(port: u16, seconds: u32, name: &str) -> f64 {
    let out = iperf3::client_json(
        port,
        &[
            "-t",
            &seconds.to_string(),
            "-b",
            "200M",
            "--extra-data",
            name,
        ],
    );
    out["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("no rate: {}", out["end"]))
}

/// Reads a little of every connection now and then until `stop`.
fn read_slowly(mut conns: Vec<TcpStream>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for c in &conns {
            let _ = c.set_nonblocking(true);
        }
        let mut buf = [0u8; 1024];
        poll_until(Duration::from_secs(600), || {
            for c in &mut conns {
                // Nothing to read yet, or a connection the server closed.
                let _ = c.read(&mut buf);
            }
            stop.load(Ordering::Relaxed)
        });
    })
}

#[test]
fn the_whole_box_holds_one_bound_under_256_slow_clients() {
    iperf3::require();
    let dir = tempfile::tempdir().unwrap();
    write_history(
        &dir.path().join(format!("port-{HISTORY_PORT}.json")),
        100_000,
    );
    write_big_entries(dir.path());
    let d = retry_in_use(4, |first| launch(dir.path()).ports(first, 4).try_start())
        .unwrap_or_else(|e| panic!("{e}"));
    let ids = [id_named(d.http, "big-iperf3"), id_named(d.http, "big-ndt7")];
    let quiet = paced_rate(d.port, 2, "quiet");

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch(d.pid(), stop.clone());
    // 256 connections (all the dashboard takes): details of the biggest
    // entries, the whole history as JSON and as CSV, metrics. Half of
    // each kind never read, half read a little now and then.
    let paths = [
        format!("/api/results/{}", ids[0]),
        format!("/api/results/{}", ids[1]),
        "/api/results".to_string(),
        "/csv".to_string(),
        "/metrics".to_string(),
    ];
    let (mut never, mut slow) = (Vec::new(), Vec::new());
    let mut opened = Ok(());
    for i in 0..webperf3::http::MAX_CONNECTIONS {
        match open_unread(&d, &paths[i % paths.len()], 1, 1024.0) {
            Ok(mut c) if i % 2 == 0 => never.append(&mut c),
            Ok(c) => slow.extend(c.into_iter().map(|(_, c)| c)),
            Err(e) => {
                opened = Err(e);
                break;
            }
        }
    }
    let reader = read_slowly(slow, stop.clone());
    // A stock client runs a test on each port meanwhile.
    let loaded: Vec<f64> = match opened {
        Ok(()) => (0..4)
            .map(|i| paced_rate(d.port + i, 2, "loaded"))
            .collect(),
        Err(_) => Vec::new(),
    };
    stop.store(true, Ordering::Relaxed);
    let peak = watcher.join().unwrap();
    reader.join().unwrap();
    drop(never);
    eprintln!(
        "256 slow clients over 100,000 tests and the biggest entries: peak RSS {:.0} MB, \
         threads {}; rate quiet {:.0} Mbit/s, loaded {:?} Mbit/s",
        peak.rss_mb,
        peak.threads,
        quiet / 1e6,
        loaded.iter().map(|r| (r / 1e6).round()).collect::<Vec<_>>()
    );
    opened.unwrap_or_else(|e| panic!("{e}"));
    assert!(peak.rss_mb < 256.0, "peak RSS {:.0} MB", peak.rss_mb);
    assert!(peak.threads < 64, "peak threads {}", peak.threads);
    for rate in &loaded {
        assert!(
            *rate >= quiet * 0.9,
            "a test under load ran at {:.0} Mbit/s, quiet {:.0}",
            rate / 1e6,
            quiet / 1e6
        );
    }
    // Every test is logged: the quiet one and one per port.
    for i in 0..4u16 {
        wait_entries(&d.log_path(i), if i == 0 { 2 } else { 1 });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_asks_again_for_a_detail_the_box_was_too_busy_to_read() {
    let dir = tempfile::tempdir().unwrap();
    write_big_entries(dir.path());
    let stock = include_str!("../fixtures/stock-3.12.json");
    std::fs::write(dir.path().join("port-11.json"), stock).unwrap();
    let d = launch(dir.path()).start();
    let big = id_named(d.http, "big-iperf3");
    let reply = http_get(d.http, "/api/results?port=11&limit=1").unwrap();
    let small = serde_json::from_slice::<Value>(&reply.body).unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Clients that read nothing hold every detail slot.
    let path = format!("/api/results/{big}");
    let held = tokio::task::block_in_place(|| {
        open_unread(&d, &path, webperf3::http::MAX_DETAILS, f64::MAX).unwrap()
    });
    assert!(held.iter().all(|(s, _)| *s == 200));
    let mut page =
        crate::chromium::Browser::open(&format!("http://{}/#/test/{small}", d.http)).await;
    // The page was refused once and still waits, rather than saying the
    // test could not be loaded.
    let asked = "performance.getEntriesByType('resource')
        .some(e => e.name.includes('/api/results/') && e.responseStatus === 503)";
    page.eventually(asked, json!(true)).await;
    assert_eq!(
        page.eval("document.getElementById('detail').dataset.state")
            .await,
        json!("loading")
    );
    // Once the slots are free, its next try shows the test.
    drop(held);
    page.eventually(
        "document.getElementById('detail').dataset.state",
        json!("shown"),
    )
    .await;
}
