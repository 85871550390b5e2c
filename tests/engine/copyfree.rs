//! The copy-free data paths against the stock client: byte and datagram
//! counts under each mode (the default, `--copy`, and `--copy` with the
//! client's `-Z`), and what the log's `webperf3.data_path` says was used.

use serde_json::Value;
use std::sync::Arc;
use webperf3::send_method::SendMethod;
use webperf3::server::calibrate::SendPath;
use webperf3::server::port::PortSettings;

use crate::harness::{num, Server};
use crate::support::iperf3::client_json;

/// Runs one client test against a server with or without `--copy` and
/// returns (client JSON, our log entry), after checking the entry has no
/// error and names the mode.
fn run(copy: bool, args: &[&str]) -> (Value, Value) {
    run_with(copy, SendPath::calibrated(SendMethod::Sendfile), args)
}

/// [`run`], with the server's TCP send method set by `send`.
fn run_with(copy: bool, send: SendPath, args: &[&str]) -> (Value, Value) {
    let server = Server::with_settings(
        1,
        PortSettings {
            copy,
            send: Arc::new(send),
            ..PortSettings::default()
        },
    );
    let c = client_json(server.ports[0], args);
    let e = server.wait_entries(0, 1).remove(0);
    assert!(e.get("error").is_none(), "error in log: {}", e["error"]);
    let mode = if copy { "copy" } else { "copy-free" };
    assert_eq!(
        e["webperf3"]["data_path"]["mode"], mode,
        "{}",
        e["webperf3"]
    );
    (c, e)
}

/// Why the sending TCP streams used their method.
fn send_reason(e: &Value) -> &str {
    e["webperf3"]["data_path"]["send_reason"]
        .as_str()
        .unwrap_or_else(|| panic!("no send_reason in {}", e["webperf3"]))
}

fn method(e: &Value, direction: &str) -> String {
    e["webperf3"]["data_path"][direction]
        .as_str()
        .unwrap_or_else(|| panic!("no {direction} method in {}", e["webperf3"]))
        .to_string()
}

/// The most a TCP connection can hold in flight on this machine: a full
/// send buffer and a full receive buffer (the largest the kernel grows).
fn in_flight_limit() -> f64 {
    let max = |path: &str| -> f64 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.split_whitespace()
            .last()
            .and_then(|v| v.parse().ok())
            .unwrap_or(64.0 * 1_048_576.0)
    };
    max("/proc/sys/net/ipv4/tcp_rmem") + max("/proc/sys/net/ipv4/tcp_wmem")
}

/// The client sent `-n 10M` and we received it: our count is never more
/// than the client sent, is what the client was told, and falls short of
/// it by at most what was still in flight when the client said "done"
/// (stock's server stops counting at the same moment).
fn check_tcp_forward(c: &Value, e: &Value) {
    let ours = num(e, "/end/sum_received/bytes");
    let sent = num(c, "/end/sum_sent/bytes");
    assert!(sent >= 10_485_760.0, "client sent {sent}");
    assert_eq!(ours, num(c, "/end/sum_received/bytes"), "results exchanged");
    assert!(ours <= sent, "received {ours} of {sent}");
    assert!(
        sent - ours <= in_flight_limit(),
        "received {ours} of {sent}"
    );
    // The intervals add up to the total.
    let intervals: f64 = e["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| num(i, "/sum/bytes"))
        .sum();
    assert!(intervals <= ours);
}

/// `-R -n 10M`: the client received what we sent, give or take what was in
/// flight when it said "done"; what it was told we sent is our count.
///
/// Either way: the count is taken when the client's TEST_END is read, so
/// the client may still get the rest of a send call that was under way
/// then (a `sendfile` of several blocks, on a stream thread of its own),
/// which our count does not hold.
fn check_tcp_reverse(c: &Value, e: &Value) {
    let ours = num(e, "/end/sum_sent/bytes");
    let got = num(c, "/end/sum_received/bytes");
    assert!(got >= 10_485_760.0, "client received {got}");
    assert_eq!(ours, num(c, "/end/sum_sent/bytes"), "results exchanged");
    assert!(
        (ours - got).abs() <= in_flight_limit(),
        "sent {ours}, received {got}"
    );
}

/// UDP, exact: every datagram received is counted with its full length
/// (so bytes = (highest number - lost) × length, whether datagrams came
/// coalesced or one by one), and no number is seen that was not sent.
fn check_udp(receiver: &Value, sender: &Value, len: f64) {
    let packets = num(receiver, "/end/sum_received/packets");
    let lost = num(receiver, "/end/sum_received/lost_packets");
    let bytes = num(receiver, "/end/sum_received/bytes");
    assert!(packets > 0.0);
    assert_eq!(
        bytes,
        (packets - lost) * len,
        "{packets} - {lost} datagrams"
    );
    assert!(packets <= num(sender, "/end/sum_sent/packets"));
}

#[test]
fn tcp_counts_under_each_mode() {
    let n = ["-n", "10M"];
    let (c, e) = run(false, &n);
    check_tcp_forward(&c, &e);
    assert_eq!(method(&e, "receive"), "discard");
    let (c, e) = run(true, &n);
    check_tcp_forward(&c, &e);
    assert_eq!(method(&e, "receive"), "read");
}

#[test]
fn tcp_reverse_counts_under_each_mode() {
    let n = ["-R", "-n", "10M"];
    let (c, e) = run(false, &n);
    check_tcp_reverse(&c, &e);
    assert_eq!(method(&e, "send"), "sendfile");
    assert_eq!(send_reason(&e), "calibrated");
    let (c, e) = run_with(false, SendPath::calibrated(SendMethod::Copy), &n);
    check_tcp_reverse(&c, &e);
    assert_eq!(method(&e, "send"), "write");
    assert_eq!(send_reason(&e), "calibrated");
    let (c, e) = run(true, &n);
    check_tcp_reverse(&c, &e);
    assert_eq!(method(&e, "send"), "write");
    assert_eq!(send_reason(&e), "--copy");
    // Under --copy the client's -Z is honoured, as stock honours it.
    let (c, e) = run(true, &["-R", "-n", "10M", "-Z"]);
    check_tcp_reverse(&c, &e);
    assert_eq!(method(&e, "send"), "sendfile");
    assert_eq!(send_reason(&e), "client -Z");
}

#[test]
fn tcp_reverse_copies_until_calibrated() {
    let (c, e) = run_with(false, SendPath::default(), &["-R", "-n", "10M"]);
    check_tcp_reverse(&c, &e);
    assert_eq!(method(&e, "send"), "write");
    assert_eq!(send_reason(&e), "fallback: calibration still running");
}

#[test]
fn tcp_repeating_payload_from_the_in_memory_file() {
    let (c, e) = run(false, &["-R", "-n", "10M", "--repeating-payload"]);
    check_tcp_reverse(&c, &e);
    assert_eq!(method(&e, "send"), "sendfile");
}

#[test]
fn tcp_bidir_uses_both_paths() {
    let (_, e) = run(false, &["--bidir", "-t", "1"]);
    assert_eq!(method(&e, "send"), "sendfile");
    assert_eq!(method(&e, "receive"), "discard");
}

#[test]
fn udp_counts_under_each_mode() {
    let args = ["-u", "-b", "200M", "-t", "2", "-l", "1400"];
    let (c, e) = run(false, &args);
    check_udp(&e, &c, 1400.0);
    assert_eq!(method(&e, "receive"), "gro");
    let (c, e) = run(true, &args);
    check_udp(&e, &c, 1400.0);
    assert_eq!(method(&e, "receive"), "recvmmsg");
}

#[test]
fn udp_reverse_counts_under_each_mode() {
    // A 1 MB window gives the client's receiver room on a busy machine.
    let args = [
        "-u", "-R", "-b", "200M", "-t", "2", "-l", "1400", "-w", "1M",
    ];
    let (c, e) = run(false, &args);
    check_udp(&c, &e, 1400.0);
    assert_eq!(method(&e, "send"), "gso");
    // Paced within 10 % of -b, batches or not.
    let rate = num(&e, "/end/sum_sent/bits_per_second");
    assert!((180e6..=220e6).contains(&rate), "sent at {rate} bit/s");
    let (c, e) = run(true, &args);
    check_udp(&c, &e, 1400.0);
    assert_eq!(method(&e, "send"), "send");
}
