//! The dashboard under hostile clients, as an attacker on the LAN (or a web
//! page in a visitor's browser) tries it: huge unfinished websocket frames,
//! hundreds of idle websockets, CSV downloads that are never read, DNS
//! rebinding and cross-site websockets, formulas hidden behind blanks.
//! Memory is read from the real binary's `/proc/PID/status`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use warp::test::request;

use crate::common::{entry_named, Env, P1, STOCK};
use crate::heavy::unread;
use crate::support::daemon::{Daemon, Launch};
use crate::support::http::status_code;
use crate::support::iperf3;
use crate::support::wait::{poll_until, wait_until};

/// A port no test serves: its log is loaded as history all the same.
const HISTORY_PORT: u16 = 5299;

/// A log of `rows` small TCP tests (one pretty-printed object each, as the
/// server writes them), named `row-<i>`.
fn history(rows: usize) -> String {
    let mut out = String::with_capacity(rows * 900);
    for i in 0..rows {
        let sum = |bytes: u64| {
            json!({"start": 0, "end": 1.0, "seconds": 1.0, "bytes": bytes,
                   "bits_per_second": bytes as f64 * 8.0, "sender": false})
        };
        let entry = json!({
            "start": {
                "connected": [{"socket": 6, "local_host": "127.0.0.1", "local_port": HISTORY_PORT,
                               "remote_host": "127.0.0.1", "remote_port": 40000}],
                "version": "iperf 3.12",
                "timestamp": {"time": "Sat, 21 Nov 2026 23:40:11 GMT", "timesecs": 1_795_304_411 + i},
                "accepted_connection": {"host": "127.0.0.1", "port": 39999},
                "test_start": {"protocol": "TCP", "num_streams": 1, "blksize": 131072, "omit": 0,
                               "duration": 1, "bytes": 0, "blocks": 0, "reverse": 0, "tos": 0,
                               "target_bitrate": 0}
            },
            "intervals": [],
            "end": {"streams": [], "sum_sent": sum(0), "sum_received": sum(1_000_000 + i as u64)},
            "extra_data": format!("row-{i}")
        });
        out.push_str(&serde_json::to_string_pretty(&entry).unwrap());
        out.push('\n');
    }
    out
}

/// A dir whose history holds `rows` tests.
fn dir_with_history(rows: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("port-{HISTORY_PORT}.json"));
    std::fs::write(path, history(rows)).unwrap();
    dir
}

fn start(dir: &Path, extra: &[&str]) -> Daemon {
    Daemon::start(dir, extra)
}

/// The binary over a dir with a big history, which takes a while to load.
fn start_loaded(dir: &Path) -> Daemon {
    Launch::new(dir)
        .start_deadline(Duration::from_secs(180))
        .start()
}

/// Sends a raw request head (`lines` after the request line, each without
/// its CRLF) and reads the reply's head; the connection stays open.
fn raw_head(addr: SocketAddr, request_line: &str, lines: &[String]) -> (u16, TcpStream) {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = format!("{request_line}\r\n");
    for l in lines {
        head.push_str(l);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => got.push(byte[0]),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = status_code(&text).unwrap_or_else(|| panic!("no reply head: {text:?}"));
    (status, conn)
}

/// A websocket handshake on a raw socket with extra header `lines`.
fn ws_handshake(addr: SocketAddr, lines: &[String]) -> (u16, TcpStream) {
    let mut all = vec![
        "Upgrade: websocket".to_string(),
        "Connection: Upgrade".to_string(),
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==".to_string(),
        "Sec-WebSocket-Version: 13".to_string(),
    ];
    all.extend_from_slice(lines);
    raw_head(addr, "GET /ws HTTP/1.1", &all)
}

fn host(addr: SocketAddr) -> String {
    format!("Host: {addr}")
}

/// Whether the server closed `conn` (EOF or reset) within `limit`.
fn closed_within(conn: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        conn.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        match conn.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => continue,
        }
    }
    false
}

fn rss_mb(d: &Daemon) -> f64 {
    d.status_kb("VmRSS") as f64 / 1024.0
}

#[test]
fn huge_unfinished_websocket_frames_are_refused_before_they_are_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), &[]);
    let before = rss_mb(&d);
    const FRAME: u64 = 16 << 20;
    let mut conns = Vec::new();
    for _ in 0..16 {
        let (status, mut conn) = ws_handshake(d.http, &[host(d.http)]);
        assert_eq!(status, 101);
        // A masked binary frame announcing 16 MiB, then all but its last byte.
        let mut header = vec![0x82, 0x80 | 127];
        header.extend_from_slice(&FRAME.to_be_bytes());
        header.extend_from_slice(&[1, 2, 3, 4]);
        conn.write_all(&header).unwrap();
        conn.set_write_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let chunk = vec![0u8; 256 << 10];
        let mut sent = 0u64;
        while sent + (chunk.len() as u64) < FRAME {
            if conn.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len() as u64;
        }
        conns.push(conn);
    }
    let grown = rss_mb(&d) - before;
    eprintln!("16 unfinished 16 MiB frames: server RSS {before:.0} MB + {grown:.1} MB");
    assert!(
        grown < 32.0,
        "16 unfinished 16 MiB frames grew the server by {grown:.0} MB"
    );
    for conn in &mut conns {
        assert!(
            closed_within(conn, Duration::from_secs(5)),
            "frame not refused"
        );
    }
    // The dashboard still answers.
    assert_eq!(d.get("/api/status").0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_websockets_do_not_lock_out_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), &[]);
    let addr = d.http;
    // 256 sessions that never read or say anything.
    let idle = tokio::task::spawn_blocking(move || {
        (0..256)
            .map(|_| {
                let (status, conn) = ws_handshake(addr, &[host(addr)]);
                assert_eq!(status, 101);
                conn
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let (mut fresh, reply) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws")),
    )
    .await
    .expect("handshake in time")
    .unwrap_or_else(|e| panic!("a new websocket was refused: {e}"));
    assert_eq!(reply.status(), 101);
    let first = tokio::time::timeout(Duration::from_secs(10), fresh.next())
        .await
        .expect("a message in time")
        .expect("a message")
        .expect("not an error");
    let hello: Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
    assert_eq!(hello["type"], "status");
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_websocket_clients_are_dropped() {
    let env = Env::stock();
    let settings = webperf3::http::HttpSettings {
        ws_ping: Duration::from_millis(200),
        ..Default::default()
    };
    let listener = webperf3::http::bind(Some(SocketAddr::from(([127, 0, 0, 1], 0)))).unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let ctx = env.ctx.clone().with_settings(&settings);
    let live = ctx.websockets.clone();
    tokio::spawn(webperf3::http::serve_with(listener, ctx));
    // A client that answers pings (tungstenite does) stays...
    let (mut talker, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    let reader = tokio::spawn(async move { while let Some(Ok(_)) = talker.next().await {} });
    // ...one that reads nothing and answers nothing is closed.
    let silent = tokio::task::spawn_blocking(move || {
        let (status, mut conn) = ws_handshake(addr, &[host(addr)]);
        assert_eq!(status, 101);
        let start = Instant::now();
        assert!(closed_within(&mut conn, Duration::from_secs(5)));
        start.elapsed()
    })
    .await
    .unwrap();
    assert!(silent >= Duration::from_millis(400), "{silent:?}");
    wait_until(Duration::from_secs(5), "one session left", || {
        live.len() == 1
    });
    assert!(!reader.is_finished(), "the answering client was dropped");
}

#[test]
fn csv_downloads_nobody_reads_hold_no_memory() {
    let dir = dir_with_history(30_000);
    let d = start_loaded(dir.path());
    let before = rss_mb(&d);
    let mut conns: Vec<(u16, TcpStream)> = (0..64).map(|_| unread(d.http, "/csv")).collect();
    // Watch for a while: memory must not climb with the unread downloads.
    let mut peak = 0.0f64;
    poll_until(Duration::from_secs(5), || {
        peak = peak.max(rss_mb(&d) - before);
        false
    });
    eprintln!("64 unread CSV downloads: server RSS {before:.0} MB + at most {peak:.1} MB");
    assert!(
        peak < 16.0,
        "64 unread CSV downloads grew the server by {peak:.0} MB"
    );
    let streaming = conns.iter().filter(|(s, _)| *s == 200).count();
    let busy = conns.iter().filter(|(s, _)| *s == 503).count();
    assert_eq!(streaming, webperf3::http::MAX_EXPORTS, "exports at once");
    assert_eq!(streaming + busy, conns.len());
    // The write deadline drops the readers that stopped, and frees the slots.
    let limit = webperf3::http::WRITE_TIMEOUT + Duration::from_secs(15);
    for (_, conn) in conns.iter_mut().filter(|(s, _)| *s == 200) {
        assert!(closed_within(conn, limit), "a stalled download was kept");
    }
    let (status, mut conn) = raw_head(d.http, "GET /csv HTTP/1.0", &[host(d.http)]);
    assert_eq!(status, 200);
    let mut body = Vec::new();
    conn.read_to_end(&mut body).unwrap();
    let lines = body.iter().filter(|b| **b == b'\n').count();
    assert_eq!(lines, 30_001, "header and every row");
}

#[test]
fn iperf3_keeps_working_during_big_exports() {
    let dir = dir_with_history(100_000);
    let d = start_loaded(dir.path());
    let http = d.http;
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..webperf3::http::MAX_EXPORTS)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut rows = 0;
                loop {
                    let (status, mut conn) = raw_head(http, "GET /csv HTTP/1.0", &[host(http)]);
                    assert_eq!(status, 200);
                    let mut body = Vec::new();
                    let _ = conn.read_to_end(&mut body);
                    rows += body.iter().filter(|b| **b == b'\n').count();
                    if stop.load(Ordering::Relaxed) {
                        return rows;
                    }
                }
            })
        })
        .collect();
    // While every export slot streams, a stock client's test runs as usual.
    let started = Instant::now();
    let out = iperf3::client_json(d.port, &["-t", "1", "--extra-data", "during-export"]);
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let rows: Vec<usize> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    eprintln!("a 1 s stock test beside 4 exports of 100,000 rows: {took:?}; lines {rows:?}");
    assert!(out.get("error").is_none(), "{out}");
    assert!(took < Duration::from_secs(10), "a 1 s test took {took:?}");
    for r in rows {
        assert!(r > 100_000, "an export delivered {r} lines");
    }
}

#[test]
fn rebinding_host_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), &[]);
    let get = |host: &str| {
        raw_head(
            d.http,
            "GET /api/status HTTP/1.1",
            &[format!("Host: {host}")],
        )
        .0
    };
    for evil in [
        "evil.example",
        "evil.example:8080",
        "localhost.evil.example",
    ] {
        let status = get(evil);
        assert!(status == 421 || status == 403, "Host {evil}: {status}");
    }
    // The same for the page and for clearing, the request DNS rebinding
    // makes (its Origin matches its Host).
    assert_eq!(
        raw_head(d.http, "GET / HTTP/1.1", &["Host: evil.example".into()]).0,
        421
    );
    let (status, _) = raw_head(
        d.http,
        "POST /api/clear HTTP/1.1",
        &[
            "Host: evil.example".into(),
            "Origin: http://evil.example".into(),
            "Content-Length: 0".into(),
        ],
    );
    assert_eq!(status, 421);
    for ok in [
        d.http.to_string(),
        "localhost".into(),
        format!("localhost:{}", d.http.port()),
        "[::1]:8080".into(),
    ] {
        assert_eq!(get(&ok), 200, "Host {ok}");
    }
}

#[test]
fn names_given_with_http_host_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(
        dir.path(),
        &["--http-host", "speed.test", "--http-host", "Pi.Example"],
    );
    let get = |host: &str| {
        raw_head(
            d.http,
            "GET /api/status HTTP/1.1",
            &[format!("Host: {host}")],
        )
        .0
    };
    assert_eq!(get("speed.test"), 200);
    assert_eq!(get("pi.example:8080"), 200);
    assert_eq!(get("evil.example"), 421);
}

#[test]
fn cross_origin_websockets_are_refused_same_origin_ones_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), &[]);
    let addr = d.http;
    for evil in [
        "http://evil.example",
        "null",
        &format!("http://127.0.0.1:{}", addr.port() + 1),
    ] {
        let (status, _) = ws_handshake(addr, &[host(addr), format!("Origin: {evil}")]);
        assert_eq!(status, 403, "Origin {evil}");
    }
    let (status, _) = ws_handshake(addr, &[host(addr), format!("Origin: http://{addr}")]);
    assert_eq!(status, 101);
    // Scripts send no Origin.
    let (status, _) = ws_handshake(addr, &[host(addr)]);
    assert_eq!(status, 101);
}

#[tokio::test]
async fn csv_formulas_behind_blanks_and_full_width_signs_are_neutralised() {
    let env = Env::empty();
    let names = [
        " =1+1",
        "\t=cmd",
        "\u{FEFF}@SUM(A1)",
        "\u{FF1D}1+1",
        " \u{FF0D}2",
        "\r\n+x",
    ];
    for name in names {
        env.hub.record(P1, &entry_named(STOCK, name));
    }
    let res = request().path("/csv").reply(&env.routes()).await;
    assert_eq!(res.status(), 200);
    let mut reader = csv::Reader::from_reader(res.body().as_ref());
    let cells: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[1].to_string())
        .collect();
    assert_eq!(cells.len(), names.len());
    for (cell, name) in cells.iter().zip(names) {
        assert_eq!(*cell, format!("'{name}"), "{name:?}");
    }
}
