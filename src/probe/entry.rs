//! A probe's `end` completed as stock's client completes it once the
//! results are exchanged: the side of each stream the box did not see
//! (what the server received of what the box sent, or sent of what it
//! received), UDP loss and jitter as the server counted them, and the
//! server's CPU, all from the server's results document. Only JSON here.

use serde_json::Value;

use crate::json::Json;

/// One stream as the server's results describe it.
#[derive(Debug, Clone, Copy, Default)]
struct Peer {
    bytes: u64,
    seconds: f64,
    retransmits: Option<u64>,
    jitter: f64,
    errors: u64,
    packets: u64,
}

impl Peer {
    fn of(stream: &Value) -> Peer {
        let n = |key: &str| stream.get(key).and_then(Value::as_f64).unwrap_or(0.0);
        let int = |key: &str| stream.get(key).and_then(Value::as_u64).unwrap_or(0);
        Peer {
            bytes: int("bytes"),
            seconds: (n("end_time") - n("start_time")).max(0.0),
            // Stock sends -1 (or its unsigned image) when it has none.
            retransmits: stream
                .get("retransmits")
                .and_then(Value::as_u64)
                .filter(|&r| r < u64::from(u32::MAX)),
            jitter: n("jitter"),
            errors: int("errors"),
            packets: int("packets"),
        }
    }
}

/// A side of a stream or a sum: its times, bytes and rate from `peer`.
fn fill(side: &mut Json, peer: &Peer) {
    side.set("end", peer.seconds);
    side.set("seconds", peer.seconds);
    side.set("bytes", peer.bytes);
    let bps = if peer.seconds > 0.0 {
        peer.bytes as f64 * 8.0 / peer.seconds
    } else {
        0.0
    };
    side.set("bits_per_second", bps);
}

/// UDP loss and jitter of `peer` into `side`.
fn fill_udp(side: &mut Json, peer: &Peer) {
    side.set("jitter_ms", peer.jitter * 1000.0);
    side.set("lost_packets", peer.errors);
    let lost = if peer.packets > 0 {
        peer.errors as f64 * 100.0 / peer.packets as f64
    } else {
        0.0
    };
    side.set("lost_percent", lost);
}

fn is_sender(side: Option<&Json>) -> bool {
    matches!(side.and_then(|s| s.get("sender")), Some(Json::Bool(true)))
}

/// Completes `end` (the box's, streams in the order of `ids`) from the
/// server's results `server`.
pub fn complete(end: &mut Json, server: &Value, ids: &[i64]) {
    let streams = server.get("streams").and_then(Value::as_array);
    let peer_of = |id: i64| {
        streams?
            .iter()
            .find(|s| s.get("id").and_then(Value::as_i64) == Some(id))
            .map(Peer::of)
    };
    let peers: Vec<Option<Peer>> = ids.iter().map(|&id| peer_of(id)).collect();
    // Per direction the box took part in (true: it sent), the streams'
    // peer figures added up.
    let mut sums = [
        (false, Peer::default(), 0u32),
        (true, Peer::default(), 0u32),
    ];
    if let Some(Json::Arr(items)) = end.get_mut("streams") {
        for (item, peer) in items.iter_mut().zip(&peers) {
            let Some(peer) = peer else { continue };
            let udp = item.get("udp").is_some();
            let sender = is_sender(item.get("udp").or(item.get("sender")));
            let (_, sum, count) = &mut sums[usize::from(sender)];
            sum.bytes += peer.bytes;
            sum.seconds = sum.seconds.max(peer.seconds);
            sum.errors += peer.errors;
            sum.packets += peer.packets;
            sum.jitter += peer.jitter;
            sum.retransmits = match (sum.retransmits, peer.retransmits) {
                (a, None) => a,
                (a, Some(r)) => Some(a.unwrap_or(0) + r),
            };
            *count += 1;
            match (udp, sender) {
                (true, true) => item
                    .get_mut("udp")
                    .into_iter()
                    .for_each(|s| fill_udp(s, peer)),
                (true, false) => {}
                (false, true) => item
                    .get_mut("receiver")
                    .into_iter()
                    .for_each(|s| fill(s, peer)),
                (false, false) => {
                    if let Some(s) = item.get_mut("sender") {
                        fill(s, peer);
                        if let Some(r) = peer.retransmits {
                            s.set("retransmits", r);
                        }
                    }
                }
            }
        }
    }
    let bidir = sums.iter().all(|&(_, _, count)| count > 0);
    for (sender, mut sum, count) in sums {
        if count == 0 {
            continue;
        }
        sum.jitter /= f64::from(count);
        complete_sums(end, sender, &sum, bidir);
    }
    let cpu = |key: &str| server.get(key).and_then(Value::as_f64).unwrap_or(0.0);
    if let Some(c) = end.get_mut("cpu_utilization_percent") {
        c.set("remote_total", cpu("cpu_util_total"));
        c.set("remote_user", cpu("cpu_util_user"));
        c.set("remote_system", cpu("cpu_util_system"));
    }
    let keys = ["sender_tcp_congestion", "receiver_tcp_congestion"];
    let tcp = keys.iter().any(|k| end.get(k).is_some());
    if let (true, Some(congestion)) = (tcp, server.get("congestion_used").and_then(Value::as_str)) {
        for key in keys {
            if end.get(key).is_none() {
                end.push(key, congestion);
            }
        }
    }
}

/// The sums of the direction where the box sent (`sender`) or received:
/// the side it did not see, from `peer` (the streams' figures added up).
/// A client's sums name the direction it sends plainly, the other
/// `_bidir_reverse` (`--bidir`).
fn complete_sums(end: &mut Json, sender: bool, peer: &Peer, bidir: bool) {
    let Json::Obj(members) = end else { return };
    for (key, side) in members.iter_mut() {
        let (base, reverse) = match key.strip_suffix("_bidir_reverse") {
            Some(base) => (base, true),
            None => (key.as_str(), false),
        };
        // Without --bidir the sums are the one direction's.
        let sends = if bidir { !reverse } else { sender };
        if reverse && !bidir || sends != sender {
            continue;
        }
        let udp = side.get("jitter_ms").is_some();
        match (base, sender) {
            // What the server received of what the box sent.
            ("sum_received", true) => {
                fill(side, peer);
                if udp {
                    fill_udp(side, peer);
                }
            }
            // What the server sent of what the box received.
            ("sum_sent", false) => {
                fill(side, peer);
                if let Some(r) = peer.retransmits {
                    side.set("retransmits", r);
                }
            }
            // UDP: the loss and jitter of the box's datagrams.
            ("sum", true) if udp => fill_udp(side, peer),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::from_value;
    use serde_json::json;

    #[test]
    fn the_unseen_side_comes_from_the_server() {
        let mut end = from_value(&json!({
            "streams": [{
                "sender": {"socket": 5, "bytes": 1000, "sender": true},
                "receiver": {"socket": 5, "bytes": 0, "sender": true}
            }],
            "sum_sent": {"bytes": 1000, "sender": true},
            "sum_received": {"bytes": 0, "sender": true},
            "cpu_utilization_percent": {"host_total": 1.0, "remote_total": 0},
            "sender_tcp_congestion": "cubic"
        }));
        let server = json!({
            "cpu_util_total": 2.5, "congestion_used": "bbr",
            "streams": [{"id": 1, "bytes": 900, "start_time": 0, "end_time": 2.0, "retransmits": -1}]
        });
        complete(&mut end, &server, &[1]);
        let end = crate::json::to_value(&end);
        assert_eq!(end["streams"][0]["receiver"]["bytes"], 900);
        assert_eq!(end["streams"][0]["receiver"]["bits_per_second"], 3600.0);
        assert_eq!(end["streams"][0]["sender"]["bytes"], 1000);
        assert_eq!(end["sum_received"]["bytes"], 900);
        assert_eq!(end["sum_sent"]["bytes"], 1000);
        assert_eq!(end["cpu_utilization_percent"]["remote_total"], 2.5);
        assert_eq!(end["receiver_tcp_congestion"], "bbr");
    }

    #[test]
    fn udp_sums_take_the_loss_and_jitter_the_server_counted() {
        // As stock prints it: `sum_received` says `"sender": false` even
        // when the client sent.
        let mut end = from_value(&json!({
            "streams": [{"udp": {"bytes": 1000, "jitter_ms": 0, "lost_packets": 0, "sender": true}}],
            "sum": {"bytes": 1000, "jitter_ms": 0, "lost_packets": 0, "sender": true},
            "sum_sent": {"bytes": 1000, "jitter_ms": 0, "sender": true},
            "sum_received": {"bytes": 0, "jitter_ms": 0, "lost_packets": 0, "sender": false}
        }));
        let server = json!({"streams": [{"id": 1, "bytes": 900, "end_time": 1.0,
            "jitter": 0.002, "errors": 1, "packets": 10}]});
        complete(&mut end, &server, &[1]);
        let end = crate::json::to_value(&end);
        assert_eq!(end["sum_received"]["bytes"], 900);
        assert_eq!(end["sum_received"]["lost_percent"], 10.0);
        assert_eq!(end["sum"]["jitter_ms"], 2.0);
        assert_eq!(end["streams"][0]["udp"]["lost_packets"], 1);
        assert_eq!(end["sum_sent"]["bytes"], 1000);
    }

    #[test]
    fn bidir_sums_name_the_box_sending_plainly() {
        let mut end = from_value(&json!({
            "streams": [
                {"sender": {"bytes": 1000, "sender": true}, "receiver": {"bytes": 0, "sender": true}},
                {"sender": {"bytes": 0, "sender": false}, "receiver": {"bytes": 700, "sender": false}}
            ],
            "sum_sent": {"bytes": 1000, "sender": true},
            "sum_received": {"bytes": 0, "sender": true},
            "sum_sent_bidir_reverse": {"bytes": 0, "sender": false},
            "sum_received_bidir_reverse": {"bytes": 700, "sender": false}
        }));
        let server = json!({"streams": [
            {"id": 1, "bytes": 990, "end_time": 1.0},
            {"id": 3, "bytes": 710, "end_time": 1.0, "retransmits": 2}
        ]});
        complete(&mut end, &server, &[1, 3]);
        let end = crate::json::to_value(&end);
        assert_eq!(end["sum_received"]["bytes"], 990);
        assert_eq!(end["sum_sent_bidir_reverse"]["bytes"], 710);
        assert_eq!(end["sum_sent_bidir_reverse"]["retransmits"], 2);
        assert_eq!(end["sum_sent"]["bytes"], 1000);
        assert_eq!(end["sum_received_bidir_reverse"]["bytes"], 700);
    }

    #[test]
    fn reversed_udp_takes_what_the_server_sent() {
        let mut end = from_value(&json!({
            "streams": [{"udp": {"bytes": 800, "jitter_ms": 0.5, "sender": false}}],
            "sum": {"bytes": 800, "jitter_ms": 0.5, "sender": false},
            "sum_sent": {"bytes": 0, "sender": false},
            "sum_received": {"bytes": 800, "sender": false}
        }));
        let server = json!({"streams": [{"id": 1, "bytes": 1000, "end_time": 1.0, "errors": 0, "packets": 10}]});
        complete(&mut end, &server, &[1]);
        let end = crate::json::to_value(&end);
        assert_eq!(end["sum_sent"]["bytes"], 1000);
        assert_eq!(end["sum_received"]["bytes"], 800);
        assert_eq!(end["sum"]["jitter_ms"], 0.5);
    }
}
