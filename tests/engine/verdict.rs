//! The verdict on real tests: a stock client with `-b` (either way) is
//! judged limited by its target, from the entry as it stands in the log;
//! and a server that sends records the TCP_INFO evidence the verdict reads.

use serde_json::Value;
use webperf3::analysis::verdict::{judge_entry, LimitedBy, Verdict};
use webperf3::json::Json;

use crate::harness::{num, Server};
use crate::support::iperf3::{self, client_json};

/// Runs one stock client test against a fresh server (alone on the
/// machine when it paces) and returns the log entry, as a tree read from
/// the log file's text, and its verdict.
fn judged(server: Server, args: &[&str]) -> (Json, Verdict) {
    iperf3::require();
    let port = server.ports[0];
    client_json(port, args);
    server.wait_entries(0, 1);
    let text = std::fs::read_to_string(server.log_path(0)).unwrap();
    let entry = serde_json::Deserializer::from_str(&text)
        .into_iter::<Json>()
        .next()
        .expect("one entry")
        .expect("a whole JSON object");
    let verdict = judge_entry(port, &entry).expect("the test started");
    (entry, verdict)
}

/// The entry as a `serde_json` value, for pointer look-ups.
fn value(entry: &Json) -> Value {
    webperf3::json::to_value(entry)
}

#[test]
fn a_client_target_reached_is_the_verdict() {
    let (_, v) = judged(Server::alone(1), &["-b", "50M", "-t", "2"]);
    assert_eq!(v.limited_by, LimitedBy::BitrateTarget, "{v:?}");
    assert!(
        v.evidence[0].starts_with("the server received ")
            && v.evidence[0].contains(" of a 50 Mbit/s target ("),
        "{v:?}"
    );
}

#[test]
fn a_target_reached_by_the_server_sending_is_the_verdict() {
    let (entry, v) = judged(Server::alone(1), &["-R", "-b", "50M", "-t", "2"]);
    assert_eq!(v.limited_by, LimitedBy::BitrateTarget, "{v:?}");
    assert!(
        v.evidence[0].starts_with("the server sent ")
            && v.evidence[0].contains(" of a 50 Mbit/s target ("),
        "{v:?}"
    );
    // The sending evidence is there too; the target came first. Busy time
    // is kept by the kernel in clock ticks, so a sender this far below
    // what loopback takes can log 0 of it: what it sent is the proof.
    let e = value(&entry);
    assert!(num(&e, "/webperf3/tcp_send/sum/busy_time_us") >= 0.0, "{e}");
    assert!(
        num(&e, "/webperf3/tcp_send/streams/0/data_segs_out") > 0.0,
        "{e}"
    );
}

#[test]
fn a_sending_server_records_the_tcp_info_evidence() {
    let (entry, v) = judged(Server::start(1), &["-R", "-t", "2"]);
    let e = value(&entry);
    let ours = &e["webperf3"];
    assert!(ours["cpus"].as_u64().is_some_and(|n| n >= 1), "{ours}");
    let threads = ours["stream_cpu_percent"].as_array().expect("per stream");
    assert_eq!(threads.len(), 1, "{ours}");
    assert_eq!(threads[0]["socket"], e["start"]["connected"][0]["socket"]);
    let percent = threads[0]["percent"].as_f64().expect("percent");
    // One thread cannot use more than its core (plus rounding).
    assert!(percent > 0.0 && percent <= 105.0, "{percent}");
    let streams = ours["tcp_send"]["streams"].as_array().expect("per stream");
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0]["socket"], e["start"]["connected"][0]["socket"]);
    for at in [&streams[0], &ours["tcp_send"]["sum"]] {
        // Two seconds of sending: busy for most of them.
        let busy = at["busy_time_us"].as_u64().expect("busy_time_us");
        assert!((500_000..=10_000_000).contains(&busy), "{at}");
        for key in ["rwnd_limited_us", "sndbuf_limited_us"] {
            let limited = at[key].as_u64().unwrap_or_else(|| panic!("{key} in {at}"));
            assert!(limited <= busy, "{key} {limited} > busy {busy}");
        }
        assert!(at["min_rtt_us"].as_u64().is_some_and(|r| r > 0), "{at}");
        assert!(at["retransmits"].as_u64().is_some(), "{at}");
        assert!(at["data_segs_out"].as_u64().is_some_and(|n| n > 0), "{at}");
        assert!(
            at["delivery_rate_bps"].as_u64().is_some_and(|r| r > 0),
            "{at}"
        );
    }
    // The verdict reads them, whatever it concludes on loopback.
    assert!(
        v.evidence.iter().any(|l| l.contains("it had data to send")),
        "{v:?}"
    );
    assert!(v.evidence.iter().any(|l| l.starts_with("the smallest RTT")));
}

#[test]
fn a_receiving_server_records_no_send_evidence() {
    let (entry, _) = judged(Server::start(1), &["-t", "1"]);
    let e = value(&entry);
    assert!(e["webperf3"].get("tcp_send").is_none(), "{}", e["webperf3"]);
}
