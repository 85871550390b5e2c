//! Hostile clients on the iperf3 ports: what a peer can make the server
//! hold (threads, slots, log lines, the listener) stays bounded, and other
//! people's tests go on. Real stock clients as victims; floods of raw TCP
//! connections from other loopback addresses (127.0.0.2, ...), so that
//! per-source rules can tell attacker and victim apart.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use crate::support::daemon::Daemon;
use crate::support::iperf3::{client, client_json};
use crate::support::logs::{read_entries, wait_entries};
use crate::support::ports::listening;
use crate::support::wait::{poll_until, wait_until};

/// Threads of process `pid`.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(Iterator::count)
        .unwrap_or(0)
}

/// A TCP connection to `port` on 127.0.0.1 from the loopback address
/// `from` (e.g. 127.0.0.2).
fn connect_from(from: Ipv4Addr, port: u16) -> std::io::Result<TcpStream> {
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    sock.bind(&SocketAddr::V4(SocketAddrV4::new(from, 0)).into())?;
    let to = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
    sock.connect_timeout(&to.into(), Duration::from_secs(5))?;
    Ok(sock.into())
}

/// Everything a finished client printed.
fn output_text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Runs a stock client against `port` with `args` (text mode).
fn stock(port: u16, args: &[&str]) -> std::process::Output {
    let port = port.to_string();
    let mut all = vec!["-c", "127.0.0.1", "-p", &port];
    all.extend_from_slice(args);
    client(&all)
}

#[test]
fn paced_sender_threads_end_with_their_test() {
    let dir = tempfile::tempdir().unwrap();
    let server = Daemon::start(dir.path(), &[]);
    // A first test warms up what stays (runtime threads, and the
    // blocking-pool thread that writes the log).
    client_json(server.port, &["-t", "1"]);
    wait_entries(&server.log_path(0), 1);
    let before = threads(server.pid());
    // 1 bit/s with 1 MiB blocks: each of the 16 senders sends one block,
    // then has 97 days to wait before the next.
    client_json(
        server.port,
        &["-R", "-b", "1", "-l", "1M", "-P", "16", "-t", "1"],
    );
    let back = poll_until(Duration::from_secs(5), || threads(server.pid()) <= before);
    assert!(
        back,
        "threads: {before} before, {} five seconds after the test",
        threads(server.pid())
    );
}

#[test]
fn refused_hosts_take_no_slot_and_write_no_log() {
    let dir = tempfile::tempdir().unwrap();
    let server = Daemon::start(dir.path(), &["--allow", "127.0.0.1"]);
    let port = server.port;
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let flood = {
        let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
        std::thread::spawn(move || {
            let cookie = [b'x'; 37];
            while !stop.load(Ordering::Relaxed) {
                if let Ok(mut c) = connect_from(Ipv4Addr::new(127, 0, 0, 2), port) {
                    let _ = c.write_all(&cookie);
                    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                    let _ = c.read(&mut [0u8; 16]);
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    wait_until(Duration::from_secs(10), "flood under way", || {
        sent.load(Ordering::Relaxed) > 50
    });
    // The permitted host's tests run while the flood goes on, none of them
    // told "busy".
    for n in 1..=3 {
        client_json(port, &["-t", "1"]);
        wait_entries(&server.log_path(0), n);
    }
    wait_until(Duration::from_secs(30), "300 refused connections", || {
        sent.load(Ordering::Relaxed) >= 300
    });
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
    let flooded = sent.load(Ordering::Relaxed);
    // Only the permitted tests are logged.
    let entries = wait_entries(&server.log_path(0), 3);
    assert!(entries.iter().all(|e| e.get("error").is_none()));
    // Refusals are counted, not printed one by one.
    let lines = server.stderr().len();
    assert!(
        lines < 20,
        "{lines} stderr lines for {flooded} refusals: {:?}",
        server.stderr()
    );
}

#[test]
fn tests_per_minute_of_one_source_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let server = Daemon::start(dir.path(), &["--max-tests-per-minute", "3"]);
    for n in 1..=3 {
        client_json(server.port, &["-n", "100K"]);
        // Logged, so the port is free again: a refusal now is the rate's.
        wait_entries(&server.log_path(0), n);
    }
    let out = stock(server.port, &["-n", "100K"]);
    assert!(!out.status.success(), "a fourth test in a minute ran");
    let text = output_text(&out);
    assert!(text.contains("try again later"), "{text}");
    assert_eq!(read_entries(&server.log_path(0)).len(), 3);
    server.wait_stderr("too many tests");
}

#[test]
fn peer_strings_never_forge_stderr_lines() {
    let dir = tempfile::tempdir().unwrap();
    let server = Daemon::start(dir.path(), &["--server-max-duration", "5"]);
    let forged = "a\nFAKE forged line\r\nFAKE";
    let log = server.log_path(0);
    client_json(
        server.port,
        &["-t", "1", "--extra-data", forged, "-T", forged],
    );
    // Each test is logged before the next starts (the port is free again).
    wait_entries(&log, 1);
    // A refused test reports its name and error too.
    let out = stock(server.port, &["-t", "10", "--extra-data", forged]);
    assert!(!out.status.success());
    wait_entries(&log, 2);
    // A test that fails once prepared reports with its name.
    let out = stock(server.port, &["-t", "1", "-M", "1", "--extra-data", forged]);
    assert!(!out.status.success());
    wait_entries(&log, 3);
    server.wait_stderr("FAKE forged line");
    let lines = server.stderr();
    assert!(
        !lines.iter().any(|l| l.trim_start().starts_with("FAKE")),
        "a forged line on stderr: {lines:#?}"
    );
}

/// Opens a test's control connection by hand and leaves it waiting for its
/// data streams (which never come): the port stays in stream setup.
fn stalled_test(from: Ipv4Addr, port: u16) -> TcpStream {
    let mut c = connect_from(from, port).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(&[b's'; 37]).unwrap();
    let mut state = [0u8; 1];
    c.read_exact(&mut state).unwrap();
    assert_eq!(state[0], 9, "PARAM_EXCHANGE");
    let params = br#"{"tcp":true,"time":1,"parallel":1,"len":131072}"#;
    c.write_all(&(params.len() as u32).to_be_bytes()).unwrap();
    c.write_all(params).unwrap();
    c.read_exact(&mut state).unwrap();
    assert_eq!(state[0], 10, "CREATE_STREAMS");
    c
}

#[test]
fn a_silent_flood_during_stream_setup_fails_no_one_else() {
    let dir = tempfile::tempdir().unwrap();
    let server = Daemon::start(dir.path(), &["--max-tests-per-port", "2"]);
    let port = server.port;
    let _stalled = stalled_test(Ipv4Addr::new(127, 0, 0, 3), port);
    let flood: Vec<TcpStream> = (0..520)
        .filter_map(|_| connect_from(Ipv4Addr::new(127, 0, 0, 2), port).ok())
        .collect();
    assert!(flood.len() > 500, "{} flood connections", flood.len());
    let started = Instant::now();
    client_json(port, &["-t", "1", "-P", "8"]);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the victim waited {:?} behind the flood",
        started.elapsed()
    );
    drop(flood);
}

#[test]
fn a_bad_mss_never_leaves_the_port_without_a_listener() {
    let dir = tempfile::tempdir().unwrap();
    let server = Daemon::start(dir.path(), &["--max-tests-per-port", "2"]);
    let (pid, port) = (server.pid(), server.port);
    assert!(listening(pid, port), "no listener to begin with");
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut looks = 0u32;
            while !done.load(Ordering::Relaxed) {
                if !listening(pid, port) {
                    return Err(looks);
                }
                looks += 1;
            }
            Ok(looks)
        })
    };
    for _ in 0..3 {
        let out = stock(port, &["-t", "1", "-M", "1"]);
        assert!(!out.status.success(), "{}", output_text(&out));
    }
    done.store(true, Ordering::Relaxed);
    let looks = watcher.join().unwrap();
    assert!(
        looks.is_ok(),
        "no listener at look {:?} during bad -M tests",
        looks
    );
    // And the port still works.
    client_json(port, &["-t", "1"]);
}
