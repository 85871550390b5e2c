//! Each rule on small recorded entries, their order, real stock entries,
//! and any JSON at all without a panic.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::report::json::from_value;
use crate::testing::json_value;

const STOCK: &str = include_str!("../../../tests/fixtures/stock-3.12.json");

/// A finished TCP entry of ours: `-P streams`, `-b target` (0 = none), the
/// server receiving (or sending, `reverse`) at `bps` for 10 s, with `ours`
/// as the `webperf3` key.
fn tcp(reverse: bool, streams: u32, target: u64, bps: f64, ours: Value) -> Value {
    let sum = |moved: bool| {
        let bps = if moved { bps } else { 0.0 };
        json!({"seconds": 10.0, "bytes": (bps * 10.0 / 8.0) as u64, "bits_per_second": bps})
    };
    json!({
        "start": {
            "version": "webperf3 0.1.0",
            "timestamp": {"timesecs": 1_795_309_625},
            "target_bitrate": target,
            "test_start": {"protocol": "TCP", "num_streams": streams, "reverse": i64::from(reverse),
                           "bidir": 0, "target_bitrate": target}
        },
        "intervals": [],
        "end": {"sum_sent": sum(reverse), "sum_received": sum(!reverse)},
        "webperf3": ours
    })
}

/// Our key with a CPU figure, the machine's cores, and more members.
fn ours(cpu: f64, cpus: u32, more: Value) -> Value {
    let mut o = json!({"overlapped": false, "health": {"server_cpu_percent": cpu}, "cpus": cpus});
    if let (Some(o), Value::Object(more)) = (o.as_object_mut(), more) {
        o.extend(more);
    }
    o
}

/// `webperf3.tcp_send` with these sums (µs).
fn tcp_send(busy: u64, rwnd: u64, sndbuf: u64, retransmits: u64) -> Value {
    let sum = json!({"busy_time_us": busy, "rwnd_limited_us": rwnd, "sndbuf_limited_us": sndbuf,
                     "min_rtt_us": 2500, "retransmits": retransmits, "data_segs_out": 100_000,
                     "delivery_rate_bps": 400_000_000u64});
    json!({"tcp_send": {"streams": [sum.clone()], "sum": sum}})
}

fn verdict(entry: &Value) -> Verdict {
    judge_entry(5201, &from_value(entry)).expect("a test that started")
}

fn limited(entry: &Value) -> LimitedBy {
    verdict(entry).limited_by
}

#[test]
fn the_target_reached_is_the_limit_with_its_figures_first() {
    let v = verdict(&tcp(
        false,
        1,
        50_000_000,
        49_900_000.0,
        ours(3.0, 2, json!({})),
    ));
    assert_eq!(v.limited_by, LimitedBy::BitrateTarget);
    assert_eq!(
        v.evidence[0],
        "the server received 49.9 Mbit/s of a 50 Mbit/s target (99.8 %)"
    );
    assert!(v
        .evidence
        .iter()
        .any(|l| l.starts_with("the server used 3.0 % CPU")));
    // -b is per stream: four streams at 50 Mbit/s aim at 200 Mbit/s.
    let v = verdict(&tcp(
        true,
        4,
        50_000_000,
        199_000_000.0,
        ours(3.0, 2, json!({})),
    ));
    assert_eq!(v.limited_by, LimitedBy::BitrateTarget);
    assert_eq!(
        v.evidence[0],
        "the server sent 199 Mbit/s of a 200 Mbit/s (4 streams × 50 Mbit/s) target (99.5 %)"
    );
    // Below the share: some other rule, or none.
    let v = verdict(&tcp(
        false,
        4,
        50_000_000,
        150_000_000.0,
        ours(3.0, 2, json!({})),
    ));
    assert_eq!(v.limited_by, LimitedBy::Unknown);
    assert_eq!(v.evidence[0], "no recorded figure explains the rate");
}

#[test]
fn serialised_as_the_api_gives_it() {
    let v = Verdict {
        limited_by: LimitedBy::ReceiveWindow,
        evidence: vec!["a figure".to_string()],
    };
    assert_eq!(
        serde_json::to_value(&v).unwrap(),
        json!({"limited_by": "receive-window", "evidence": ["a figure"]})
    );
    let names: Vec<Value> = [
        LimitedBy::BitrateTarget,
        LimitedBy::ServerCpu,
        LimitedBy::PiThrottled,
        LimitedBy::SendBuffer,
        LimitedBy::Network,
        LimitedBy::Unknown,
    ]
    .iter()
    .map(|l| serde_json::to_value(l).unwrap())
    .collect();
    assert_eq!(
        names,
        [
            "bitrate-target",
            "server-cpu",
            "pi-throttled",
            "send-buffer",
            "network",
            "unknown"
        ]
    );
}

#[test]
fn a_core_saturated_per_stream_is_the_cpu() {
    let one = |cpu| limited(&tcp(false, 1, 0, 9e9, ours(cpu, 4, json!({}))));
    assert_eq!(one(97.0), LimitedBy::ServerCpu);
    assert_eq!(one(60.0), LimitedBy::Unknown);
    let v = verdict(&tcp(false, 1, 0, 9e9, ours(97.0, 4, json!({}))));
    assert_eq!(
        v.evidence[0],
        "the server used 97.0 % CPU: 97 % of the 1 core it could use (one per stream, 1 stream)"
    );
}

#[test]
fn many_streams_may_use_as_many_cores_as_the_machine_has() {
    // Four streams on two cores: two cores' worth is the ceiling.
    let four = |cpu| verdict(&tcp(false, 4, 0, 9e9, ours(cpu, 2, json!({}))));
    assert_eq!(four(150.0).limited_by, LimitedBy::Unknown);
    let v = four(190.0);
    assert_eq!(v.limited_by, LimitedBy::ServerCpu);
    assert_eq!(
        v.evidence[0],
        "the server used 190.0 % CPU: 95 % of the 2 cores it could use (4 streams on 2 cores)"
    );
    // On eight cores, four streams can use four.
    assert_eq!(
        limited(&tcp(false, 4, 0, 9e9, ours(190.0, 8, json!({})))),
        LimitedBy::Unknown
    );
}

#[test]
fn one_stream_thread_saturated_is_the_cpu() {
    let threads = |busiest: f64| {
        json!({"stream_cpu_percent": [{"socket": 5, "percent": 20.0},
            {"socket": 6, "percent": busiest}, {"socket": 7, "percent": 15.0}]})
    };
    // 135 % of four cores' worth is not the process's limit...
    let v = verdict(&tcp(false, 3, 0, 9e9, ours(135.0, 4, threads(96.5))));
    assert_eq!(v.limited_by, LimitedBy::ServerCpu);
    // ...but one stream's thread spent the whole test on its core.
    assert_eq!(
        v.evidence[..2],
        [
            "the busiest stream's thread used 96.5 % of a core",
            "the server used 135.0 % CPU: 45 % of the 3 cores it could use (one per stream, 3 streams)"
        ]
    );
    assert_eq!(
        limited(&tcp(false, 3, 0, 9e9, ours(135.0, 4, threads(70.0)))),
        LimitedBy::Unknown
    );
}

#[test]
fn stock_before_3_16_had_one_thread_for_all_streams() {
    let mut e = tcp(false, 4, 0, 9e9, Value::Null);
    e["start"]["version"] = json!("iperf 3.12");
    e.as_object_mut().unwrap().remove("webperf3");
    e["end"]["cpu_utilization_percent"] = json!({"host_total": 95.0});
    let v = verdict(&e);
    assert_eq!(v.limited_by, LimitedBy::ServerCpu);
    assert!(v.evidence[0].contains("stock iperf3 3.12 runs a test on one thread"));
    // 3.16 and later: a thread per stream.
    e["start"]["version"] = json!("iperf 3.17.1");
    assert_eq!(limited(&e), LimitedBy::Unknown);
}

#[test]
fn throttling_or_heat_is_the_pi_and_comes_before_the_cpu() {
    let health = |extra: Value| {
        let mut h = json!({"server_cpu_percent": 99.0});
        h.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        tcp(false, 1, 0, 3e8, json!({"health": h, "cpus": 4}))
    };
    let v = verdict(&health(json!({"throttled": "0x50005",
        "throttled_during": ["under-voltage", "throttled"], "cpu_temp_max_c": 61.0})));
    assert_eq!(v.limited_by, LimitedBy::PiThrottled);
    assert_eq!(
        v.evidence[..2],
        [
            "the Pi reported under-voltage, throttled during the test",
            "the CPU temperature peaked at 61.0 °C"
        ]
    );
    let v = verdict(&health(
        json!({"cpu_temp_max_c": 82.4, "throttled_during": []}),
    ));
    assert_eq!(v.limited_by, LimitedBy::PiThrottled);
    assert_eq!(
        v.evidence[0],
        "the CPU temperature reached 82.4 °C; firmware throttles from 80 °C"
    );
    // Cool and unthrottled: the CPU itself.
    let v = verdict(&health(
        json!({"cpu_temp_max_c": 55.0, "throttled_during": []}),
    ));
    assert_eq!(v.limited_by, LimitedBy::ServerCpu);
}

#[test]
fn the_receive_window_or_the_send_buffer_where_the_server_sent() {
    let e = |rwnd, sndbuf| {
        tcp(
            true,
            1,
            0,
            9e8,
            ours(20.0, 4, tcp_send(2_000_000, rwnd, sndbuf, 0)),
        )
    };
    let v = verdict(&e(1_000_000, 0));
    assert_eq!(v.limited_by, LimitedBy::ReceiveWindow);
    assert_eq!(
        v.evidence[0],
        "the client's receive window held the server back 50 % of the 2 s it had data to send"
    );
    // Four streams' busy time is summed: the share is their average, the
    // time one stream's.
    let four = tcp(
        true,
        4,
        0,
        9e8,
        ours(20.0, 4, tcp_send(8_000_000, 4_000_000, 0, 0)),
    );
    assert_eq!(
        verdict(&four).evidence[0],
        "the client's receive window held the server back 50 % of the time it had data \
         to send (2 s per stream, 4 streams)"
    );
    assert_eq!(limited(&e(0, 800_000)), LimitedBy::SendBuffer);
    assert_eq!(limited(&e(600_000, 800_000)), LimitedBy::SendBuffer);
    // A small share is no verdict.
    assert_eq!(limited(&e(200_000, 100_000)), LimitedBy::Unknown);
    // The CPU comes first.
    let busy = tcp(
        true,
        1,
        0,
        9e8,
        ours(99.0, 4, tcp_send(2_000_000, 1_000_000, 0, 0)),
    );
    assert_eq!(limited(&busy), LimitedBy::ServerCpu);
}

#[test]
fn retransmissions_or_loss_with_nothing_else_is_the_network() {
    let v = verdict(&tcp(
        true,
        1,
        0,
        9e8,
        ours(20.0, 4, tcp_send(2_000_000, 0, 0, 250)),
    ));
    assert_eq!(v.limited_by, LimitedBy::Network);
    assert_eq!(
        v.evidence[..3],
        [
            "the server retransmitted 250 segments (0.25 % of 100000 sent)",
            "the smallest RTT was 2.5 ms",
            "the kernel's last delivery-rate estimate was 400 Mbit/s, against 900 Mbit/s \
             the server sent on average"
        ]
    );
    // The client's own retransmissions, from the results it sent.
    let client = json!({"client_results": {"streams": [{"id": 1, "retransmits": 12}]}});
    let v = verdict(&tcp(false, 1, 0, 9e8, ours(20.0, 4, client)));
    assert_eq!(v.limited_by, LimitedBy::Network);
    assert_eq!(v.evidence[0], "the client retransmitted 12 segments");
    // "Unknown" as the client writes it (-1, or that read as unsigned).
    let unknown = json!({"client_results": {"streams": [{"retransmits": -1},
        {"retransmits": 18_446_744_073_709_551_615u64}]}});
    assert_eq!(
        limited(&tcp(false, 1, 0, 9e8, ours(20.0, 4, unknown))),
        LimitedBy::Unknown
    );
}

#[test]
fn udp_loss_names_the_network_from_a_percent() {
    let udp = |lost: f64, bps: f64| {
        let mut e = tcp(false, 1, 100_000_000, bps, ours(10.0, 4, json!({})));
        e["start"]["test_start"]["protocol"] = json!("UDP");
        e["end"]["sum_received"]["lost_percent"] = json!(lost);
        e
    };
    let v = verdict(&udp(5.0, 80e6));
    assert_eq!(v.limited_by, LimitedBy::Network);
    assert_eq!(v.evidence[0], "5.00 % of the UDP datagrams were lost");
    assert_eq!(limited(&udp(0.2, 80e6)), LimitedBy::Unknown);
    // The target reached despite a little loss.
    assert_eq!(limited(&udp(2.0, 98e6)), LimitedBy::BitrateTarget);
}

#[test]
fn no_data_or_no_figures_is_unknown() {
    let mut e = tcp(false, 1, 0, 0.0, ours(1.0, 4, json!({})));
    e["error"] = json!("the client has terminated");
    let v = verdict(&e);
    assert_eq!(v.limited_by, LimitedBy::Unknown);
    assert_eq!(
        v.evidence,
        [
            "the test moved no data",
            "the test ended with an error: the client has terminated"
        ]
    );
    // An entry that never started a test has no verdict at all.
    assert_eq!(judge_entry(5201, &Json::obj()), None);
}

#[test]
fn real_stock_entries() {
    let verdicts: Vec<Option<Verdict>> = crate::store::reader::read_log(STOCK)
        .items
        .into_iter()
        .filter_map(|item| match item {
            crate::store::reader::LogItem::Entry(v) => Some(judge_entry(5201, &from_value(&v))),
            crate::store::reader::LogItem::Cleared => None,
        })
        .collect();
    let limits: Vec<Option<LimitedBy>> = verdicts
        .iter()
        .map(|v| v.as_ref().map(|v| v.limited_by))
        .collect();
    use LimitedBy::*;
    assert_eq!(
        limits,
        [
            // Unlimited: a fifth of its one thread, nothing lost.
            Some(Unknown),
            // -R unlimited: two retransmissions.
            Some(Network),
            // --bidir -b 50M, UDP -b 10M, UDP -R, UDP --bidir, -P 2 -b 100M.
            Some(BitrateTarget),
            Some(BitrateTarget),
            Some(BitrateTarget),
            Some(BitrateTarget),
            Some(BitrateTarget),
            // Written on SIGTERM before any test started.
            None,
        ]
    );
    let evidence = |i: usize| verdicts[i].as_ref().map(|v| v.evidence.clone()).unwrap();
    assert_eq!(
        evidence(0),
        [
            "no recorded figure explains the rate",
            "the server received 11.66 Gbit/s",
            "the client set no bitrate target (-b)",
            "the server used 20.5 % CPU: 20.5 % of the 1 core it could use \
             (stock iperf3 3.12 runs a test on one thread)"
        ]
    );
    assert_eq!(evidence(1)[0], "the server retransmitted 2 segments");
    assert_eq!(
        evidence(6)[0],
        "the server received 200.6 Mbit/s of a 200 Mbit/s (2 streams × 100 Mbit/s) target (100.3 %)"
    );
}

proptest! {
    /// Any entry, stock-shaped or not, gets a verdict without a panic.
    #[test]
    fn any_entry_is_judged(entry in json_value(&[
        "start", "test_start", "end", "webperf3", "version", "target_bitrate", "num_streams",
        "protocol", "sum_sent", "sum_received", "bits_per_second", "health", "cpus",
        "tcp_send", "sum", "busy_time_us", "rwnd_limited_us", "retransmits", "client_results",
        "streams", "server_cpu_percent", "throttled_during", "cpu_temp_max_c", "lost_percent",
    ])) {
        let entry = from_value(&entry);
        if let Some(v) = judge_entry(5201, &entry) {
            prop_assert!(!v.evidence.is_empty());
        }
    }
}
