//! Faults and bad input on real sockets: raw protocol clients that stay
//! silent, die or send garbage at every phase, broken data streams, and
//! garbage datagrams. Each test checks what the server answered, then runs a
//! stock client test on the same port and re-reads every log strictly (no
//! truncated or interleaved object).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use serde_json::Value;
use webperf3::protocol::session::Limits;

use crate::harness::Server;
use crate::support::iperf3::{client_json, Running};
use crate::support::logs::read_entries;

/// Short limits, so each timeout fires within a second or two.
fn short() -> Limits {
    Limits {
        read_start: Duration::from_millis(300),
        read_total: Duration::from_millis(900),
        streams: Duration::from_millis(900),
        rcv_timeout: Duration::from_millis(700),
        ..Limits::default()
    }
}

/// A cookie as a stock client makes it: 36 characters and a NUL.
fn cookie(tag: u8) -> [u8; 37] {
    let mut c = [b'a' + tag % 26; 37];
    c[36] = 0;
    c
}

/// A client that speaks the control protocol byte by byte.
struct Raw {
    ctrl: TcpStream,
    port: u16,
    cookie: [u8; 37],
}

impl Raw {
    fn connect(port: u16) -> Raw {
        let ctrl = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        ctrl.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        ctrl.set_nodelay(true).unwrap();
        Raw {
            ctrl,
            port,
            cookie: cookie(0),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.ctrl
            .write_all(bytes)
            .expect("send on the control connection");
    }

    /// The next byte from the server.
    fn byte(&mut self) -> u8 {
        let mut b = [0u8];
        self.ctrl.read_exact(&mut b).expect("a state byte");
        b[0]
    }

    fn expect(&mut self, want: u8) {
        let got = self.byte();
        assert_eq!(got, want, "state byte {got:#04x}, wanted {want:#04x}");
    }

    /// Reads `SERVER_ERROR`: `fe`, then the error code and errno.
    fn server_error(&mut self) -> (i32, i32) {
        self.expect(0xfe);
        let mut raw = [0u8; 8];
        self.ctrl.read_exact(&mut raw).expect("two i32s after 0xfe");
        let code = i32::from_be_bytes(raw[..4].try_into().unwrap());
        let errno = i32::from_be_bytes(raw[4..].try_into().unwrap());
        (code, errno)
    }

    /// The server closed the connection (and sent nothing more).
    fn closed(&mut self) {
        let mut rest = Vec::new();
        match self.ctrl.read_to_end(&mut rest) {
            Ok(_) => assert!(rest.is_empty(), "unexpected bytes {rest:?}"),
            Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
        }
    }

    fn frame(&mut self, body: &[u8]) {
        let mut framed = (body.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(body);
        self.send(&framed);
    }

    /// Connected, cookie sent, `PARAM_EXCHANGE` read.
    fn hello(port: u16) -> Raw {
        let mut raw = Raw::connect(port);
        let c = raw.cookie;
        raw.send(&c);
        raw.expect(9);
        raw
    }

    /// Parameters accepted: `CREATE_STREAMS` read.
    fn accepted(port: u16, params: &str) -> Raw {
        let mut raw = Raw::hello(port);
        raw.frame(params.as_bytes());
        raw.expect(10);
        raw
    }

    /// A TCP data stream carrying our cookie.
    fn stream(&self) -> TcpStream {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("data connect");
        s.write_all(&self.cookie).unwrap();
        s
    }

    /// A running test with `n` TCP streams: `TEST_START`, `TEST_RUNNING` read.
    fn running(port: u16, params: &str, n: usize) -> (Raw, Vec<TcpStream>) {
        let mut raw = Raw::accepted(port, params);
        let streams = (0..n).map(|_| raw.stream()).collect();
        raw.expect(1);
        raw.expect(2);
        (raw, streams)
    }
}

/// Asserts `elapsed` is at least `limit` (less a little) and not far more.
fn took(start: Instant, limit: Duration) {
    let elapsed = start.elapsed();
    assert!(
        elapsed + Duration::from_millis(50) >= limit && elapsed < limit + Duration::from_secs(5),
        "answered after {elapsed:?}, limit {limit:?}"
    );
}

/// The end of every fault test: a stock client test on the same port works
/// and is logged, and every log in the dir reads back as whole objects.
fn then_a_good_test(server: &Server, entries_before: usize) {
    let c = client_json(server.ports[0], &["-t", "1", "--extra-data", "after"]);
    assert!(c["end"]["sum_received"]["bytes"].as_u64().unwrap() > 0);
    let entries = server.wait_entries(0, entries_before + 1);
    let last = entries.last().unwrap();
    assert_eq!(last["extra_data"], "after");
    assert!(last.get("error").is_none(), "{}", last["error"]);
    for file in std::fs::read_dir(server.dir.path()).unwrap() {
        read_entries(&file.unwrap().path());
    }
}

#[test]
fn silent_connection_is_dropped_after_the_start_limit() {
    let server = Server::with_limits(1, short());
    let start = Instant::now();
    let mut raw = Raw::connect(server.ports[0]);
    assert_eq!(raw.server_error(), (106, 0));
    took(start, short().read_start);
    raw.closed();
    let e = &server.wait_entries(0, 1)[0];
    assert_eq!(e["error"], "error - unable to receive cookie at server: ");
    then_a_good_test(&server, 1);
}

#[test]
fn no_parameters_after_the_cookie() {
    let server = Server::with_limits(1, short());
    let start = Instant::now();
    let mut raw = Raw::hello(server.ports[0]);
    assert_eq!(raw.server_error(), (114, 0));
    took(start, short().read_start);
    raw.closed();
    let e = &server.wait_entries(0, 1)[0];
    assert_eq!(
        e["error"],
        "error - unable to receive parameters from client: "
    );
    then_a_good_test(&server, 1);
}

#[test]
fn parameters_that_stop_halfway() {
    let server = Server::with_limits(1, short());
    let mut raw = Raw::hello(server.ports[0]);
    let start = Instant::now();
    // The length prefix and part of the body: the message has begun, so it
    // gets the whole read limit, not just the start limit.
    raw.send(&[0, 0, 0, 40]);
    raw.send(br#"{"tcp":true,"#);
    assert_eq!(raw.server_error(), (114, 0));
    took(start, short().read_total);
    raw.closed();
    then_a_good_test(&server, 1);
}

#[test]
fn client_killed_before_parameters() {
    let server = Server::with_limits(1, short());
    let raw = Raw::hello(server.ports[0]);
    drop(raw);
    let e = &server.wait_entries(0, 1)[0];
    assert_eq!(
        e["error"],
        "error - unable to receive parameters from client: "
    );
    then_a_good_test(&server, 1);
}

/// Every shape of bad parameters, each on its own connection, answered
/// with `SERVER_ERROR` and its code.
#[test]
fn bad_parameters_over_a_socket() {
    let server = Server::with_limits(1, short());
    let port = server.ports[0];
    let nested = format!("{}{}", "[".repeat(4000), "]".repeat(4000));
    let nested_in_object = format!(r#"{{"title":{}"x"{}}}"#, "[".repeat(4000), "]".repeat(4000));
    let cases: Vec<(&[u8], i32)> = vec![
        (b"not json", 114),
        (b"[1,2,3]", 114),
        (b"\"tcp\"", 114),
        (b"{\"time\":", 114),
        (b"\xff\xfe\x00", 114),
        (nested.as_bytes(), 114),
        (nested_in_object.as_bytes(), 114),
        (br#"{"time":"10"}"#, 114),
        (br#"{"parallel":[2]}"#, 114),
        (br#"{"reverse":"yes"}"#, 114),
        (br#"{"num":1e400}"#, 114),
        (br#"{"num":-1}"#, 114),
        (br#"{"time":-1}"#, 5),
        (br#"{"time":99999999999999999999}"#, 5),
        (br#"{"parallel":129}"#, 6),
        (br#"{"parallel":0}"#, 6),
        (br#"{"len":2000000}"#, 7),
        (br#"{"udp":true,"len":8}"#, 7),
        (br#"{"window":1000000000}"#, 8),
        (br#"{"MSS":-1}"#, 10),
        (br#"{"omit":601}"#, 12),
        (br#"{"burst":5000}"#, 15),
        (br#"{"sctp":true}"#, 18),
        (br#"{"TOS":300}"#, 21),
        (br#"{"reverse":true,"bidirectional":true}"#, 25),
    ];
    let mut logged = 0;
    for (body, want) in &cases {
        let mut raw = Raw::hello(port);
        raw.frame(body);
        assert_eq!(
            raw.server_error(),
            (*want, 0),
            "{}",
            String::from_utf8_lossy(&body[..body.len().min(40)])
        );
        raw.closed();
        logged += 1;
    }
    // Length prefixes refused before any body is read: 0 and over 8 KiB.
    for prefix in [[0u8, 0, 0, 0], [0, 0, 0x20, 1], [0xff; 4]] {
        let mut raw = Raw::hello(port);
        raw.send(&prefix);
        assert_eq!(raw.server_error(), (114, 0), "prefix {prefix:?}");
        raw.closed();
        logged += 1;
    }
    let entries = server.wait_entries(0, logged);
    assert!(entries.iter().all(|e| e["error"].is_string()));
    then_a_good_test(&server, logged);
}

#[test]
fn control_and_streams_silent_mid_test() {
    let server = Server::with_limits(1, short());
    let (mut raw, streams) = Raw::running(server.ports[0], r#"{"tcp":true,"time":30}"#, 1);
    let start = Instant::now();
    assert_eq!(raw.server_error(), (144, 0));
    took(start, short().rcv_timeout);
    raw.closed();
    drop(streams);
    let e = &server.wait_entries(0, 1)[0];
    assert_eq!(e["error"], "error - idle timeout for receiving data");
    then_a_good_test(&server, 1);
}

#[test]
fn reverse_client_that_stops_reading() {
    let server = Server::with_limits(1, short());
    // An untimed reverse test: the server sends until the client says
    // stop, and this client never reads.
    let params = r#"{"tcp":true,"time":0,"num":100000000000,"reverse":true}"#;
    let (mut raw, streams) = Raw::running(server.ports[0], params, 1);
    assert_eq!(raw.server_error(), (144, 0));
    raw.closed();
    drop(streams);
    let e = &server.wait_entries(0, 1)[0];
    assert_eq!(e["error"], "error - idle timeout for sending data");
    assert!(e["end"]["sum_sent"]["bytes"].as_u64().unwrap() > 0);
    then_a_good_test(&server, 1);
}

/// A raw test that ran for a moment and sent `TEST_END`; the server has
/// asked for the results.
fn at_results_exchange(port: u16) -> Raw {
    let (mut raw, mut streams) = Raw::running(port, r#"{"tcp":true,"time":1}"#, 1);
    streams[0].write_all(&[0u8; 65536]).unwrap();
    raw.send(&[4]);
    raw.expect(13);
    raw
}

#[test]
fn results_that_never_come() {
    let server = Server::with_limits(1, short());
    let mut raw = at_results_exchange(server.ports[0]);
    let start = Instant::now();
    assert_eq!(raw.server_error(), (117, 0));
    took(start, short().read_start);
    raw.closed();
    let e = &server.wait_entries(0, 1)[0];
    assert_eq!(e["error"], "error - unable to receive results: ");
    // The test ran: its end was built at TEST_END (what of the data was
    // counted by then is a race, as with stock).
    assert!(e["end"]["sum_received"]["bytes"].as_u64().unwrap() <= 65536);
    then_a_good_test(&server, 1);
}

#[test]
fn client_dies_during_the_results_exchange() {
    let server = Server::with_limits(1, short());
    drop(at_results_exchange(server.ports[0]));
    let e = &server.wait_entries(0, 1)[0];
    assert_eq!(e["error"], "error - unable to receive results: ");
    then_a_good_test(&server, 1);
}

/// The results of [`at_results_exchange`]'s one stream, as a client sends
/// them.
fn results_of_one_stream(id: i64) -> String {
    format!(
        r#"{{"cpu_util_total":1,"cpu_util_user":1,"cpu_util_system":0,"sender_has_retransmits":0,"streams":[{{"id":{id},"bytes":65536,"retransmits":0,"jitter":0,"errors":0,"packets":0}}]}}"#
    )
}

#[test]
fn a_client_with_its_results_holds_the_port_no_longer() {
    let server = Server::start(1);
    let port = server.ports[0];
    let mut raw = at_results_exchange(port);
    raw.frame(results_of_one_stream(1).as_bytes());
    let mut len = [0u8; 4];
    raw.ctrl.read_exact(&mut len).unwrap();
    let mut theirs = vec![0u8; u32::from_be_bytes(len) as usize];
    raw.ctrl.read_exact(&mut theirs).unwrap();
    raw.expect(14);
    // DISPLAY_RESULTS read, IPERF_DONE not sent yet (a stock client's
    // next test can be this quick, or its server this slow to read): the
    // port is free already.
    client_json(port, &["-t", "1", "--extra-data", "next"]);
    raw.send(&[16]);
    raw.closed();
    // Both tests are logged (each is recorded off its port once its
    // client is done, so either may be written first).
    let entries = server.wait_entries(0, 2);
    let names: Vec<&Value> = entries.iter().map(|e| &e["extra_data"]).collect();
    assert!(names.contains(&&Value::from("next")), "{names:?}");
    for e in &entries {
        assert!(e.get("error").is_none(), "{}", e["error"]);
    }
}

#[test]
fn garbage_results_are_refused() {
    let server = Server::with_limits(1, short());
    let port = server.ports[0];
    let stream = results_of_one_stream;
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let cases: Vec<(Vec<u8>, i32)> = vec![
        (b"\x00\x01garbage".to_vec(), 117),
        (b"{}".to_vec(), 117),
        (deep.into_bytes(), 117),
        (
            stream(1)
                .replace("\"bytes\":65536", "\"bytes\":\"x\"")
                .into_bytes(),
            117,
        ),
        (stream(2).into_bytes(), 208),
    ];
    let n = cases.len();
    for (body, want) in cases {
        let mut raw = at_results_exchange(port);
        raw.frame(&body);
        assert_eq!(raw.server_error(), (want, 0));
        raw.closed();
    }
    // Announced far beyond the results limit: refused without waiting.
    let mut raw = at_results_exchange(port);
    raw.send(&u32::MAX.to_be_bytes());
    assert_eq!(raw.server_error(), (117, 0));
    raw.closed();
    let entries = server.wait_entries(0, n + 1);
    assert_eq!(entries[n - 1]["error"], "error - stream has an invalid id");
    then_a_good_test(&server, n + 1);
}

#[test]
fn data_stream_reset_mid_test() {
    let limits = Limits {
        rcv_timeout: Duration::from_secs(60),
        ..short()
    };
    let server = Server::with_limits(1, limits);
    // The receive timeout alone would not end this test for a while.
    let (mut raw, mut streams) = Raw::running(server.ports[0], r#"{"tcp":true,"time":30}"#, 1);
    let mut s = streams.remove(0);
    s.write_all(&[0u8; 65536]).unwrap();
    // SO_LINGER 0: closing sends a reset instead of a FIN.
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
    // The control connection stays open and keeps the test's clock going.
    assert_eq!(raw.server_error(), (206, 0));
    raw.closed();
    let e = &server.wait_entries(0, 1)[0];
    assert_eq!(
        e["error"],
        "error - unable to read from stream socket: Connection reset by peer"
    );
    then_a_good_test(&server, 1);
}

#[test]
fn extra_streams_with_the_test_cookie_are_refused() {
    let server = Server::with_limits(1, short());
    let (mut raw, mut streams) = Raw::running(server.ports[0], r#"{"tcp":true,"time":30}"#, 1);
    let mut extra = raw.stream();
    extra
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut b = [0u8];
    extra.read_exact(&mut b).unwrap();
    assert_eq!(b[0], 0xff);
    streams[0].write_all(&[0u8; 1000]).unwrap();
    raw.send(&[12]); // CLIENT_TERMINATE
    raw.closed();
    assert_eq!(
        server.wait_entries(0, 1)[0]["error"],
        "the client has terminated"
    );
    then_a_good_test(&server, 1);
}

#[test]
fn strangers_while_a_test_waits_for_its_streams() {
    let server = Server::with_limits(1, short());
    let mut raw = Raw::accepted(server.ports[0], r#"{"tcp":true,"time":30}"#);
    // A wrong cookie: read whole, then refused.
    let mut stranger = TcpStream::connect(("127.0.0.1", raw.port)).unwrap();
    stranger
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stranger.write_all(&cookie(7)).unwrap();
    let mut answer = Vec::new();
    let _ = stranger.read_to_end(&mut answer);
    assert_eq!(answer, [0xff]);
    // A silent connection ahead of the real stream holds it back for the
    // start limit at most (streams are routed in the order they arrive).
    let _silent = TcpStream::connect(("127.0.0.1", raw.port)).unwrap();
    let start = Instant::now();
    let mut stream = raw.stream();
    raw.expect(1);
    raw.expect(2);
    assert!(start.elapsed() < short().read_start + Duration::from_secs(2));
    stream.write_all(&[0u8; 1000]).unwrap();
    raw.send(&[12]); // CLIENT_TERMINATE
    raw.closed();
    assert_eq!(
        server.wait_entries(0, 1)[0]["error"],
        "the client has terminated"
    );
    then_a_good_test(&server, 1);
}

/// A tiny deterministic generator for garbage.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn tcp_garbage_on_a_port() {
    let server = Server::with_limits(1, short());
    let port = server.ports[0];
    let mut rng = XorShift(0x5eed_1234_abcd_ef01);
    for i in 0..40 {
        let len = [0usize, 1, 36, 37, 41, 200, 5000][i % 7] + (rng.next() % 4) as usize;
        let garbage = rng.bytes(len);
        let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // The server may close while we still write: that is fine.
        let _ = conn.write_all(&garbage);
        let mut answer = Vec::new();
        let _ = conn.read_to_end(&mut answer);
        // PARAM_EXCHANGE after a cookie's worth of bytes, then an error;
        // or busy; or an error straight away.
        let ok = answer.is_empty()
            || answer == [0xff]
            || (answer.first() == Some(&0xfe) && answer.len() == 9)
            || (answer.first() == Some(&9) && (answer.len() == 1 || answer[1] == 0xfe));
        assert!(ok, "garbage {len} bytes: answer {answer:?}");
    }
    let before = read_entries(&server.log_path(0)).len();
    then_a_good_test(&server, before);
}

/// A thread that sends garbage datagrams (never 4 bytes long) to `port`
/// until the returned guard is dropped.
struct Flood {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Flood {
    fn start(port: u16) -> Flood {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut rng = XorShift(0x0dd_ba11);
            let mut sent = 0u64;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let len = match (rng.next() % 64) as usize {
                    4 => 5,
                    n => n,
                };
                let _ = sock.send_to(&rng.bytes(len), ("127.0.0.1", port));
                sent += 1;
                // A steady trickle, not a benchmark of the loopback.
                std::thread::sleep(Duration::from_micros(200));
            }
            sent
        });
        Flood {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

#[test]
fn udp_garbage_idle_and_during_a_udp_test() {
    let server = Server::start(1);
    let port = server.ports[0];
    // Idle: nothing listens for UDP; the datagrams go nowhere.
    let idle = Flood::start(port);
    let c = client_json(port, &["-t", "1", "--extra-data", "tcp under udp garbage"]);
    assert!(c["end"]["sum_received"]["bytes"].as_u64().unwrap() > 0);
    assert!(idle.stop() > 0);
    // During a UDP test, from its handshake (4 streams, so four hellos to
    // tell from the garbage) to its end.
    let flood = Flood::start(port);
    let c = client_json(
        port,
        &[
            "-u",
            "-b",
            "20M",
            "-P",
            "4",
            "-t",
            "2",
            "--extra-data",
            "udp",
        ],
    );
    assert!(flood.stop() > 100);
    let entries = server.wait_entries(0, 2);
    let e = &entries[1];
    assert!(e.get("error").is_none(), "{}", e["error"]);
    assert_eq!(e["start"]["test_start"]["num_streams"], 4);
    // Every stream is the client's: garbage took none of their places.
    let ours = e["end"]["sum_received"]["packets"].as_u64().unwrap();
    let theirs = c["end"]["sum"]["packets"].as_u64().unwrap();
    assert!(
        ours.abs_diff(theirs) * 10 <= theirs,
        "{ours} vs {theirs} packets"
    );
    then_a_good_test(&server, 2);
}

#[test]
fn udp_client_killed_mid_test() {
    let server = Server::start(1);
    let Running {
        child: mut victim,
        rest: _output,
    } = Running::start(
        server.ports[0],
        &["-u", "-b", "10M", "-t", "10", "--extra-data", "udp victim"],
    );
    victim.kill().unwrap();
    victim.wait().unwrap();
    let e = &server.wait_entries(0, 1)[0];
    assert_eq!(
        e["error"],
        "the client has unexpectedly closed the connection"
    );
    assert_eq!(e["extra_data"], "udp victim");
    assert!(!e["intervals"].as_array().unwrap().is_empty());
    then_a_good_test(&server, 1);
}
