//! Load: the binary under a websocket flood of slow readers during a test,
//! then 500 TCP connections in bursts on its iperf3 port and idle ones on
//! its dashboard. Afterwards its memory and descriptors return to near
//! their idle level and a stock client test succeeds.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::support::daemon::{Daemon, Rlimits};
use crate::support::http::status_code;
use crate::support::iperf3::{self, client_json};

/// Opens a websocket on `/ws` by hand and returns the connection and the
/// answer's status code; the socket is never read again (a slow reader).
fn ws_upgrade(addr: SocketAddr) -> (TcpStream, u16) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    (s, status_code(&head).unwrap_or(0))
}

/// Waits (deadline `limit`) until `ok` holds for the server, and returns
/// what `measure` says then.
fn settle<T: Copy + std::fmt::Debug>(
    limit: Duration,
    what: &str,
    mut measure: impl FnMut() -> T,
    ok: impl Fn(T) -> bool,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        let now = measure();
        if ok(now) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not settle within {limit:?}: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_open_files_limit_is_raised_to_the_hard_limit() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Rlimits {
        nofile: Some((256, 4096)),
        ..Rlimits::default()
    };
    let server = Daemon::start_limited(dir.path(), &[], limits);
    assert_eq!(server.soft_limit("Max open files"), "4096");
    server.stop();
}

#[test]
fn floods_leave_memory_and_descriptors_near_idle() {
    iperf3::require();
    let dir = tempfile::tempdir().unwrap();
    let server = Daemon::start(dir.path(), &["--ctrl-timeout", "1"]);
    let port = server.port;
    // Warm up what a normal day uses: a test, the page, the API.
    client_json(port, &["-t", "1", "--extra-data", "warm-up"]);
    for path in ["/", "/assets/app.js", "/api/status", "/api/results", "/csv"] {
        assert_eq!(server.get(path).0, 200, "{path}");
    }
    let idle_fds = settle(
        Duration::from_secs(10),
        "descriptors after warm-up",
        || server.fds(),
        |_| true,
    );
    let idle_rss = server.status_kb("VmRSS");

    // Websockets that never read, more than the server keeps, while a
    // test runs and its progress goes out to all of them.
    let flood: Vec<(TcpStream, u16)> = (0..300).map(|_| ws_upgrade(server.http)).collect();
    // Each is let in; past the per-address bound a new one closes that
    // address's oldest, so idle ones never lock a newcomer out.
    let accepted = flood.iter().filter(|(_, c)| *c == 101).count();
    assert_eq!(accepted, 300);
    let c = client_json(
        port,
        &["-t", "2", "--extra-data", "under a websocket flood"],
    );
    assert!(c["end"]["sum_received"]["bytes"].as_u64().unwrap() > 0);
    assert_eq!(server.get("/api/status").0, 200);

    // 500 connections to the iperf3 port in bursts of 100: silent ones,
    // garbage, cookies, cookies with a bad length prefix; and 100 idle
    // dashboard connections.
    let mut held = Vec::new();
    for burst in 0..5u8 {
        for i in 0..100u32 {
            let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
                continue;
            };
            let mut cookie = [b'a' + burst; 37];
            cookie[36] = 0;
            let _ = match i % 4 {
                0 => Ok(()),
                1 => s.write_all(&[0x5a; 300]),
                2 => s.write_all(&cookie),
                _ => s.write_all(&cookie).and_then(|_| s.write_all(&[0xff; 4])),
            };
            held.push(s);
        }
    }
    for _ in 0..100 {
        if let Ok(s) = TcpStream::connect(server.http) {
            held.push(s);
        }
    }
    let peak_rss = server.status_kb("VmRSS");
    let peak_fds = server.fds();
    // Bounded while it lasts (per-port and dashboard limits).
    assert!(peak_rss < idle_rss + 128 * 1024, "peak {peak_rss} kB");
    drop(held);
    drop(flood);

    // Back near idle: descriptors within a few (a test may be finishing),
    // memory within a margin (the allocator keeps some freed memory).
    let margin_kb = (idle_rss / 4).max(8 * 1024);
    let fds = settle(
        Duration::from_secs(30),
        "descriptors",
        || server.fds(),
        |n| n <= idle_fds + 4,
    );
    let rss = settle(
        Duration::from_secs(30),
        &format!("memory (idle {idle_rss} kB, peak {peak_rss} kB, margin {margin_kb} kB)"),
        || server.status_kb("VmRSS"),
        |kb| kb <= idle_rss + margin_kb,
    );
    eprintln!(
        "load: VmRSS idle {idle_rss} kB, peak {peak_rss} kB, after {rss} kB; \
         descriptors idle {idle_fds}, peak {peak_fds}, after {fds}"
    );
    // Tests work as before.
    let c = client_json(port, &["-t", "1", "--extra-data", "after the floods"]);
    assert!(c["end"]["sum_received"]["bytes"].as_u64().unwrap() > 0);
    server.stop();
}
