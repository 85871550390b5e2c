//! UDP tests with the stock client: every UDP mode, with the packet counts,
//! loss and pacing checked against what the client saw.

use serde_json::Value;

use crate::harness::{close, num, Server};
use crate::support::iperf3::{client, client_json};

/// Runs one UDP client test on a fresh server (alone on the machine, so
/// loss figures mean something) and returns (client JSON, our log entry)
/// after the shared checks: exit 0, one clean entry, `extra_data`, and
/// packet counts that agree with the client's.
fn run(extra: &[&str]) -> (Value, Value) {
    let server = Server::alone(1);
    let name = format!("udp {}", extra.join(" "));
    let mut args = vec!["-u", "--extra-data", &name];
    if !extra.contains(&"-n") {
        args.extend_from_slice(&["-t", "2"]);
    }
    args.extend_from_slice(extra);
    let c = client_json(server.ports[0], &args);
    let e = server.wait_entries(0, 1).remove(0);
    assert!(e.get("error").is_none(), "error in log: {}", e["error"]);
    assert_eq!(e["extra_data"], Value::from(name.as_str()));
    assert_eq!(e["start"]["test_start"]["protocol"], "UDP");
    let reverse = extra.contains(&"-R");
    if !reverse {
        // Our receiver's packets (highest sequence seen) against what the
        // client says it sent.
        close(
            "packets",
            num(&e, "/end/sum_received/packets"),
            num(&c, "/end/sum_sent/packets"),
        );
        close(
            "bytes",
            num(&e, "/end/sum_received/bytes"),
            num(&c, "/end/sum_received/bytes"),
        );
    } else {
        close(
            "packets",
            num(&e, "/end/sum_sent/packets"),
            num(&c, "/end/sum_received/packets"),
        );
    }
    (c, e)
}

fn loss_near_zero(what: &str, percent: f64) {
    assert!(percent < 1.0, "{what}: {percent}% lost on loopback");
}

#[test]
fn rate_100m() {
    let (c, e) = run(&["-b", "100M"]);
    loss_near_zero("server receiver", num(&e, "/end/sum_received/lost_percent"));
    close(
        "rate",
        num(&e, "/end/sum_received/bits_per_second"),
        num(&c, "/end/sum_sent/bits_per_second"),
    );
    assert!(num(&e, "/end/sum_received/jitter_ms") >= 0.0);
    // The client's receiver line is our results document.
    assert_eq!(
        num(&c, "/end/sum_received/packets"),
        num(&e, "/end/sum_received/packets")
    );
    let iv = &e["intervals"][0]["sum"];
    assert!(
        iv["jitter_ms"].is_number()
            && iv["lost_packets"].is_u64()
            && iv["packets"].as_u64().unwrap() > 0
    );
}

#[test]
fn reverse_is_paced() {
    // A 1 MB window gives the client's receiver room for scheduling hiccups
    // of a busy machine; the loss then measures our pacing, not the client.
    let (c, e) = run(&["-R", "-b", "100M", "-w", "1M"]);
    close(
        "paced rate",
        num(&e, "/end/sum_sent/bits_per_second"),
        100e6,
    );
    loss_near_zero("client receiver", num(&c, "/end/sum_received/lost_percent"));
    assert!(e["intervals"][0]["streams"][0]["packets"].as_u64().unwrap() > 0);
}

#[test]
fn bidir() {
    let (c, e) = run(&["--bidir", "-b", "50M"]);
    close(
        "forward",
        num(&e, "/end/sum_received/bits_per_second"),
        50e6,
    );
    close(
        "reverse",
        num(&e, "/end/sum_sent_bidir_reverse/bits_per_second"),
        50e6,
    );
    assert!(
        e["intervals"][0]["sum_bidir_reverse"]["packets"]
            .as_u64()
            .unwrap()
            > 0
    );
    close(
        "reverse packets",
        num(&e, "/end/sum_sent_bidir_reverse/packets"),
        num(&c, "/end/sum_received_bidir_reverse/packets"),
    );
}

#[test]
fn parallel_four() {
    let (c, e) = run(&["-P", "4", "-b", "50M"]);
    assert_eq!(e["end"]["streams"].as_array().unwrap().len(), 4);
    close(
        "total",
        num(&e, "/end/sum_received/bytes"),
        num(&c, "/end/sum_sent/bytes"),
    );
    loss_near_zero("server receiver", num(&e, "/end/sum_received/lost_percent"));
}

#[test]
fn datagram_1400() {
    let (_, e) = run(&["-l", "1400", "-b", "20M"]);
    assert_eq!(e["start"]["test_start"]["blksize"], 1400);
}

#[test]
fn datagram_8000() {
    let (_, e) = run(&["-l", "8000", "-b", "20M"]);
    assert_eq!(e["start"]["test_start"]["blksize"], 8000);
}

#[test]
fn counters_64bit() {
    let (_, e) = run(&["--udp-counters-64bit", "-b", "20M"]);
    loss_near_zero("server receiver", num(&e, "/end/sum_received/lost_percent"));
}

#[test]
fn unlimited_rate() {
    let (_, e) = run(&["-b", "0", "-l", "1400"]);
    assert!(num(&e, "/end/sum_received/bits_per_second") > 100e6);
}

#[test]
fn bytes_limit() {
    let (c, e) = run(&["-n", "10M", "-b", "100M"]);
    assert_eq!(e["start"]["test_start"]["bytes"], 10_485_760);
    assert!(num(&c, "/end/sum_sent/bytes") >= 10_485_760.0);
}

#[test]
fn omit() {
    let (c, e) = run(&["-O", "1", "-b", "10M"]);
    let intervals = e["intervals"].as_array().unwrap();
    assert_eq!(intervals[0]["sum"]["omitted"], true);
    assert_eq!(intervals.last().unwrap()["sum"]["omitted"], false);
    // Only the two seconds after the omit period count.
    close(
        "omit excluded",
        num(&e, "/end/sum_received/bytes"),
        num(&c, "/end/sum_sent/bytes"),
    );
    assert!(
        num(&e, "/end/sum_received/seconds") < 2.5,
        "the omit second is not in end"
    );
}

#[test]
fn ipv6() {
    let server = Server::alone(1);
    let port = server.ports[0].to_string();
    let out = client(&[
        "-c", "::1", "-6", "-u", "-p", &port, "-t", "1", "-b", "10M", "-J",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let e = &server.wait_entries(0, 1)[0];
    assert_eq!(e["start"]["connected"][0]["remote_host"], "::1");
    assert!(num(e, "/end/sum_received/packets") > 0.0);
}

#[test]
fn get_server_output() {
    let (c, e) = run(&["--get-server-output", "-b", "10M"]);
    assert_eq!(c["server_output_json"]["end"], e["end"]);
}

#[test]
fn udp_after_tcp_on_the_same_port() {
    let server = Server::alone(1);
    client_json(server.ports[0], &["-t", "1"]);
    client_json(server.ports[0], &["-u", "-t", "1", "-b", "10M"]);
    client_json(server.ports[0], &["-t", "1", "-R"]);
    let entries = server.wait_entries(0, 3);
    assert!(entries.iter().all(|e| e.get("error").is_none()));
}
