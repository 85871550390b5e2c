//! One log entry (stock's or ours) → one result object as the README's
//! "Dashboard and HTTP API" defines it (details and ids: `docs/api.md`).
//!
//! Reads a parsed entry defensively: any missing or oddly typed field gives a
//! default, never a panic. Numbers are taken from the server's point of view
//! (protocol reference, Appendix A): what it received is in `end.sum_received`,
//! what it sent in `end.sum_sent` (`-R`) or `end.sum_sent_bidir_reverse`
//! (`--bidir`). No I/O here.

use serde_json::Value;

use super::prune::Keep;
use super::result::{Latency, TestResult};

/// Summarises one log entry of `port`. `None` for entries that never got as
/// far as starting a test (e.g. a port scan that sent no parameters).
pub fn summarize(port: u16, entry: &Value) -> Option<TestResult> {
    let start = entry.get("start")?;
    let test_start = start.get("test_start").filter(|v| v.is_object())?;
    let end = entry.get("end").unwrap_or(&Value::Null);

    let ours = entry.get("webperf3").filter(|v| v.is_object());
    let health = ours.and_then(|o| o.get("health")).filter(|v| v.is_object());
    let protocol = text(test_start.get("protocol")).unwrap_or_else(|| "TCP".to_string());
    let udp = protocol.eq_ignore_ascii_case("UDP");
    let Ways {
        bidir,
        old_bidir,
        reverse,
    } = ways(entry, test_start);
    let receives = !reverse;
    let sends = reverse || bidir;

    let (received, sent) = if old_bidir {
        (
            stream_pass(entry, udp, false),
            stream_pass(entry, udp, true),
        )
    } else {
        (
            receives.then(|| received_pass(entry, udp)).flatten(),
            sends.then(|| sent_pass(entry, udp, bidir)).flatten(),
        )
    };

    let loaded = (!udp)
        .then(|| sender_rtt(end))
        .flatten()
        .map(|(min, mean)| {
            // The kernel's own minimum (ours log it): the intervals' samples
            // start when a queue may have filled already.
            let kernel = ours.and_then(|o| number(o.pointer("/tcp_send/sum/min_rtt_us")));
            (kernel.map_or(min, |k| (k / 1000.0).min(min)), mean)
        });
    let (mut jitter_ms, mut lost_percent) = (None, None);
    if udp {
        if let Some(pass) = &received {
            jitter_ms = pass.jitter_ms;
            lost_percent = pass.lost_percent;
        } else if reverse {
            // Only the client measured the server's sending direction.
            (jitter_ms, lost_percent) = client_udp_quality(entry);
        }
    }

    let measured = ["sum_received", "sum_sent", "sum"]
        .iter()
        .find_map(|key| end.get(*key).and_then(|sum| number(sum.get("seconds"))))
        .or_else(|| received.as_ref().and_then(|p| p.seconds))
        .or_else(|| sent.as_ref().and_then(|p| p.seconds));
    let duration = measured
        .or_else(|| number(test_start.get("duration")))
        .unwrap_or(0.0);

    Some(
        TestResult {
            id: String::new(),
            port,
            timestamp: integer(start.pointer("/timestamp/timesecs")).unwrap_or(0),
            name: text(entry.get("extra_data")),
            title: text(entry.get("title")),
            client: text(start.pointer("/accepted_connection/host")).map(|h| readable_host(&h)),
            protocol,
            duration,
            streams: count(test_start.get("num_streams"))
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(1),
            reverse,
            bidir,
            send_bps: sent.as_ref().and_then(|p| p.bps),
            receive_bps: received.as_ref().and_then(|p| p.bps),
            bytes_sent: sent.as_ref().map_or(0, |p| p.bytes),
            bytes_received: received.as_ref().map_or(0, |p| p.bytes),
            retransmits: sent.as_ref().and_then(|p| p.retransmits),
            jitter_ms,
            lost_percent,
            min_rtt_ms: loaded.map(|(min, _)| min),
            error: text(entry.get("error")),
            overlapped: ours
                .and_then(|o| o.get("overlapped"))
                .and_then(Value::as_bool),
            server_cpu_percent: health
                .and_then(|h| number(h.get("server_cpu_percent")))
                .or_else(|| number(end.pointer("/cpu_utilization_percent/host_total"))),
            cpu_temp_c: health.and_then(|h| number(h.get("cpu_temp_max_c"))),
            throttled: health
                .and_then(|h| h.get("throttled_during"))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                }),
            kind: None,
            target: None,
            target_bps: target_bps(start, test_start),
            link_bps: ours
                .and_then(|o| number(o.get("link_mbps")))
                .filter(|&m| m > 0.0)
                .map(|m| m * 1e6),
            limited_by: None,
            headline: String::new(),
            latency: Latency {
                latency_down_ms: loaded.map(|(_, mean)| mean),
                ..Latency::default()
            },
        }
        .graded(),
    )
}

/// The RTT of the server's sending TCP streams while they sent, ms: the
/// smallest `min_rtt` and the mean of the `mean_rtt`s of `end.streams[]
/// .sender` (the kernel's smoothed RTT sampled every interval, µs);
/// `None` without sending TCP streams.
fn sender_rtt(end: &Value) -> Option<(f64, f64)> {
    let senders = end.get("streams")?.as_array()?.iter().filter_map(|s| {
        let s = s.get("sender")?;
        if s.get("sender").and_then(Value::as_bool) != Some(true) {
            return None;
        }
        Some((number(s.get("min_rtt"))?, number(s.get("mean_rtt"))?))
    });
    let (mut min, mut total, mut n) = (f64::INFINITY, 0.0, 0.0);
    for (lo, mean) in senders.filter(|(lo, _)| *lo > 0.0) {
        min = min.min(lo);
        total += mean;
        n += 1.0;
    }
    (n > 0.0).then(|| (min / 1000.0, total / n / 1000.0))
}

/// The client's `-b` for all its streams together, bits/s (`None` for
/// none: 0 is "as fast as it goes").
fn target_bps(start: &Value, test_start: &Value) -> Option<f64> {
    let per_stream = number(test_start.get("target_bitrate"))
        .or_else(|| number(start.get("target_bitrate")))
        .filter(|&b| b > 0.0)?;
    let streams = count(test_start.get("num_streams")).unwrap_or(1).max(1);
    // Streams are at most a few hundred: exact in an f64.
    #[allow(clippy::cast_precision_loss)]
    Some(per_stream * streams as f64)
}

/// What of an entry [`summarize`] reads, for reading logs lean (the
/// reader's `Detail::Summary`): all of it but the numbers
/// of `intervals`, of which only what [`lean_is_enough`] looks at to tell
/// whether they are needed. Keep in step with the reads in this module.
pub const LEAN: Keep = Keep::Members(&[
    (
        "start",
        Keep::Members(&[
            ("timestamp", Keep::Named(&["timesecs"])),
            ("accepted_connection", Keep::Named(&["host"])),
            (
                "test_start",
                Keep::Named(&[
                    "protocol",
                    "num_streams",
                    "duration",
                    "reverse",
                    "bidir",
                    "target_bitrate",
                ]),
            ),
            // Read by the verdict (`verdict/evidence.rs`).
            ("version", Keep::All),
            ("target_bitrate", Keep::All),
        ]),
    ),
    (
        "intervals",
        Keep::Each(&Keep::Members(&[
            ("sum_bidir_reverse", Keep::Members(&[])),
            ("streams", Keep::Each(&Keep::Named(&["sender"]))),
        ])),
    ),
    (
        "end",
        Keep::Members(&[
            ("sum", SUM),
            ("sum_sent", SUM),
            ("sum_received", SUM),
            ("*_bidir_reverse", SUM),
            (
                "cpu_utilization_percent",
                Keep::Named(&["host_total", "remote_total"]),
            ),
            (
                "streams",
                Keep::Each(&Keep::Members(&[(
                    "sender",
                    Keep::Named(&["sender", "min_rtt", "mean_rtt"]),
                )])),
            ),
        ]),
    ),
    ("extra_data", Keep::All),
    ("title", Keep::All),
    ("error", Keep::All),
    (
        "webperf3",
        Keep::Members(&[
            ("overlapped", Keep::All),
            ("health", Keep::All),
            (
                "client_results",
                Keep::Named(&["streams", "cpu_util_total"]),
            ),
            ("link_mbps", Keep::All),
            // Read by the verdict (`verdict/evidence.rs`).
            ("cpus", Keep::All),
            ("tcp_send", Keep::Named(&["sum"])),
            ("stream_cpu_percent", Keep::All),
        ]),
    ),
]);

/// What [`Pass::from_sum`] reads of an `end` sum.
const SUM: Keep = Keep::Named(&[
    "bytes",
    "seconds",
    "bits_per_second",
    "retransmits",
    "jitter_ms",
    "lost_percent",
    "lost_packets",
    "packets",
]);

/// Whether [`summarize`] gives the same for `lean`, an entry read as
/// [`LEAN`] says, as for the whole entry: when its `end` holds every sum the
/// summary reads, so no numbers of the intervals are needed. (They are for
/// tests cut short and for 3.7–3.10 UDP and bidir entries.)
pub fn lean_is_enough(lean: &Value) -> bool {
    let Some(end) = lean.get("end") else {
        return false;
    };
    let test_start = lean.pointer("/start/test_start").unwrap_or(&Value::Null);
    let ways = ways(lean, test_start);
    let sum = |key: &str| end.get(key).is_some_and(Value::is_object);
    !ways.old_bidir
        && sum("sum_received")
        && sum("sum_sent")
        && (!ways.bidir || sum("sum_sent_bidir_reverse"))
}

/// Which ways a test moved data.
struct Ways {
    /// `--bidir`, whatever the version.
    bidir: bool,
    /// A 3.7–3.10 bidir entry, to be read per stream.
    old_bidir: bool,
    /// `-R`.
    reverse: bool,
}

/// Which ways the test of `entry` (whose `start.test_start` is
/// `test_start`) moved data.
fn ways(entry: &Value, test_start: &Value) -> Ways {
    // 3.7–3.10 bidir entries have no flag and no `_bidir_reverse` keys; their
    // sums repeat the plain names (the parser kept the last), so such entries
    // are recognised by streams of both directions and read per stream.
    let bidir_keys = has_bidir_keys(entry);
    let old_bidir = !bidir_keys && both_directions(entry);
    let bidir = truthy(test_start.get("bidir")) || bidir_keys || old_bidir;
    Ways {
        bidir,
        old_bidir,
        reverse: !bidir && truthy(test_start.get("reverse")),
    }
}

/// The numbers of one direction of a test.
#[derive(Debug, Default)]
struct Pass {
    bytes: u64,
    bps: Option<f64>,
    seconds: Option<f64>,
    retransmits: Option<u64>,
    jitter_ms: Option<f64>,
    lost_percent: Option<f64>,
}

impl Pass {
    /// A pass from an `end` sum object (`sum_received`, `sum_sent`, …).
    fn from_sum(sum: &Value) -> Option<Pass> {
        if !sum.is_object() {
            return None;
        }
        let bytes = count(sum.get("bytes")).unwrap_or(0);
        let seconds = number(sum.get("seconds"));
        let bps = number(sum.get("bits_per_second")).or_else(|| rate(bytes, seconds));
        let lost_percent = number(sum.get("lost_percent"))
            .or_else(|| percent(count(sum.get("lost_packets"))?, count(sum.get("packets"))?));
        Some(Pass {
            bytes,
            bps,
            seconds,
            retransmits: count(sum.get("retransmits")),
            jitter_ms: number(sum.get("jitter_ms")),
            lost_percent,
        })
    }

    /// A pass added up from the interval sums named `key`, skipping omitted
    /// intervals: for entries whose `end` lacks the sum (client vanished,
    /// 3.7–3.10 UDP receivers).
    fn from_intervals(entry: &Value, key: &str) -> Option<Pass> {
        let sums: Vec<&Value> = entry
            .get("intervals")?
            .as_array()?
            .iter()
            .filter_map(|interval| interval.get(key))
            .filter(|sum| sum.is_object() && !truthy(sum.get("omitted")))
            .collect();
        if sums.is_empty() {
            return None;
        }
        let bytes = sums
            .iter()
            .filter_map(|s| count(s.get("bytes")))
            .fold(0u64, u64::saturating_add);
        let seconds: f64 = sums.iter().filter_map(|s| number(s.get("seconds"))).sum();
        let seconds = (seconds > 0.0).then_some(seconds);
        let lost = sums
            .iter()
            .filter_map(|s| count(s.get("lost_packets")))
            .fold(0u64, u64::saturating_add);
        let packets = sums
            .iter()
            .filter_map(|s| count(s.get("packets")))
            .fold(0u64, u64::saturating_add);
        Some(Pass {
            bytes,
            bps: rate(bytes, seconds),
            seconds,
            retransmits: None,
            jitter_ms: sums.last().and_then(|s| number(s.get("jitter_ms"))),
            lost_percent: percent(lost, packets),
        })
    }
}

/// What the server received: `end.sum_received`; for 3.7–3.10 UDP (only a
/// plain `end.sum`, whose `bytes` are the sent total) the interval sums with
/// jitter and loss from `end.sum`; for an entry without `end` sums, the
/// intervals.
fn received_pass(entry: &Value, udp: bool) -> Option<Pass> {
    let end = entry.get("end")?;
    if let Some(pass) = end.get("sum_received").and_then(Pass::from_sum) {
        return Some(pass);
    }
    let mut pass = Pass::from_intervals(entry, "sum")?;
    if let Some(sum) = end.get("sum").filter(|_| udp).and_then(Pass::from_sum) {
        pass.seconds = sum.seconds.or(pass.seconds);
        pass.bps = rate(pass.bytes, pass.seconds);
        pass.jitter_ms = sum.jitter_ms.or(pass.jitter_ms);
        pass.lost_percent = sum.lost_percent.or(pass.lost_percent);
    }
    Some(pass)
}

/// What the server sent: `end.sum_sent_bidir_reverse` (bidir) or
/// `end.sum_sent`; 3.7–3.10 UDP `-R` has it in `end.sum`; else the intervals.
fn sent_pass(entry: &Value, udp: bool, bidir: bool) -> Option<Pass> {
    let end = entry.get("end")?;
    let key = if bidir {
        "sum_sent_bidir_reverse"
    } else {
        "sum_sent"
    };
    if let Some(pass) = end.get(key).and_then(Pass::from_sum) {
        return Some(pass);
    }
    if udp && !bidir {
        if let Some(pass) = end.get("sum").and_then(Pass::from_sum) {
            return Some(pass);
        }
    }
    Pass::from_intervals(entry, if bidir { "sum_bidir_reverse" } else { "sum" })
}

/// Jitter (ms) and loss (%) the client measured on what the server sent, from
/// the client's results stored under `webperf3.client_results`.
fn client_udp_quality(entry: &Value) -> (Option<f64>, Option<f64>) {
    let Some(streams) = entry
        .pointer("/webperf3/client_results/streams")
        .and_then(Value::as_array)
    else {
        return (None, None);
    };
    let jitters: Vec<f64> = streams
        .iter()
        .filter_map(|s| number(s.get("jitter")))
        .collect();
    let jitter_ms =
        (!jitters.is_empty()).then(|| jitters.iter().sum::<f64>() / jitters.len() as f64 * 1000.0);
    let errors = streams
        .iter()
        .filter_map(|s| count(s.get("errors")))
        .fold(0u64, u64::saturating_add);
    let packets = streams
        .iter()
        .filter_map(|s| count(s.get("packets")))
        .fold(0u64, u64::saturating_add);
    (jitter_ms, percent(errors, packets))
}

/// The streams of every interval, with their `sender` flag.
fn interval_streams(entry: &Value) -> impl Iterator<Item = &Value> {
    entry
        .get("intervals")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|interval| interval.get("streams").and_then(Value::as_array))
        .flatten()
}

/// Whether the intervals hold both streams the server received on and
/// streams it sent on: a bidir test, whatever the version.
fn both_directions(entry: &Value) -> bool {
    let flags = || interval_streams(entry).filter_map(|s| s.get("sender").and_then(Value::as_bool));
    flags().any(|f| f) && flags().any(|f| !f)
}

/// One direction of a bidir entry added up per stream (`sending`: the
/// server's sending streams): TCP from `end.streams`, UDP (whose `end`
/// streams lack received bytes) from the non-omitted interval streams.
fn stream_pass(entry: &Value, udp: bool, sending: bool) -> Option<Pass> {
    let mut pass = Pass::default();
    if !udp {
        let streams = entry.pointer("/end/streams").and_then(Value::as_array)?;
        let side = if sending { "sender" } else { "receiver" };
        let mut found = false;
        for half in streams.iter().filter_map(|s| s.get(side)) {
            if half.get("sender").and_then(Value::as_bool) != Some(sending) {
                continue;
            }
            found = true;
            pass.bytes = pass
                .bytes
                .saturating_add(count(half.get("bytes")).unwrap_or(0));
            pass.seconds = pass.seconds.or_else(|| number(half.get("seconds")));
            if let Some(r) = count(half.get("retransmits")) {
                pass.retransmits = Some(pass.retransmits.unwrap_or(0).saturating_add(r));
            }
        }
        pass.bps = rate(pass.bytes, pass.seconds);
        return found.then_some(pass);
    }
    let streams: Vec<&Value> = interval_streams(entry)
        .filter(|s| s.get("sender").and_then(Value::as_bool) == Some(sending))
        .filter(|s| !truthy(s.get("omitted")))
        .collect();
    let first_socket = streams.first()?.get("socket");
    pass.bytes = streams
        .iter()
        .filter_map(|s| count(s.get("bytes")))
        .fold(0, u64::saturating_add);
    let seconds: f64 = streams
        .iter()
        .filter(|s| s.get("socket") == first_socket)
        .filter_map(|s| number(s.get("seconds")))
        .sum();
    pass.seconds = (seconds > 0.0).then_some(seconds);
    pass.bps = rate(pass.bytes, pass.seconds);
    if !sending {
        let lost = streams
            .iter()
            .filter_map(|s| count(s.get("lost_packets")))
            .fold(0, u64::saturating_add);
        let packets = streams
            .iter()
            .filter_map(|s| count(s.get("packets")))
            .fold(0, u64::saturating_add);
        pass.lost_percent = percent(lost, packets);
        // The jitter of the last interval, averaged over the streams.
        let last = entry
            .get("intervals")
            .and_then(Value::as_array)
            .and_then(|list| list.last())
            .and_then(|interval| interval.get("streams"))
            .and_then(Value::as_array);
        let jitters: Vec<f64> = last
            .into_iter()
            .flatten()
            .filter(|s| s.get("sender").and_then(Value::as_bool) == Some(false))
            .filter_map(|s| number(s.get("jitter_ms")))
            .collect();
        pass.jitter_ms =
            (!jitters.is_empty()).then(|| jitters.iter().sum::<f64>() / jitters.len() as f64);
    }
    Some(pass)
}

/// Whether the entry has the sums only bidir tests write (3.11+).
fn has_bidir_keys(entry: &Value) -> bool {
    let in_end = entry
        .get("end")
        .and_then(Value::as_object)
        .is_some_and(|end| end.keys().any(|k| k.ends_with("_bidir_reverse")));
    let in_intervals = entry
        .get("intervals")
        .and_then(Value::as_array)
        .is_some_and(|list| list.iter().any(|i| i.get("sum_bidir_reverse").is_some()));
    in_end || in_intervals
}

/// An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) as plain IPv4; else as is.
fn readable_host(host: &str) -> String {
    let mapped = host
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("::ffff:"))
        .map(|_| &host[7..]);
    match mapped {
        Some(v4) if v4.parse::<std::net::Ipv4Addr>().is_ok() => v4.to_string(),
        _ => host.to_string(),
    }
}

/// A string member.
fn text(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).map(str::to_string)
}

/// A finite number (integers included).
fn number(value: Option<&Value>) -> Option<f64> {
    value.and_then(Value::as_f64).filter(|n| n.is_finite())
}

/// A signed integer (a whole double counts).
pub(crate) fn integer(value: Option<&Value>) -> Option<i64> {
    let value = value?;
    value.as_i64().or_else(|| {
        let n = value
            .as_f64()
            .filter(|n| n.is_finite() && n.fract() == 0.0)?;
        // In range, so the conversion is exact.
        (n.abs() < 9.0e18).then_some(n as i64)
    })
}

/// A non-negative count. Negative values and 3.12/3.13's `-1` written as
/// 2^64−1 mean "unavailable".
fn count(value: Option<&Value>) -> Option<u64> {
    let value = value?;
    if let Some(n) = value.as_u64() {
        return (n != u64::MAX).then_some(n);
    }
    let n = value.as_f64().filter(|n| n.is_finite() && *n >= 0.0)?;
    // Below 2^63, so the conversion is exact after rounding.
    (n < 9.0e18).then_some(n.round() as u64)
}

/// A flag written as `0`/`1` or `true`/`false`.
fn truthy(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|n| n != 0.0),
        _ => false,
    }
}

/// Bits per second of `bytes` over `seconds`.
fn rate(bytes: u64, seconds: Option<f64>) -> Option<f64> {
    seconds.filter(|s| *s > 0.0).map(|s| bytes as f64 * 8.0 / s)
}

/// 100 × part ÷ whole, `None` when whole is 0.
fn percent(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| 100.0 * part as f64 / whole as f64)
}

#[cfg(test)]
// Expected values are copied from logs as stock prints them: 17 digits.
#[allow(clippy::excessive_precision)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    const ENTRY_A: &str = include_str!("../../tests/fixtures/cjson-entry-a.json");
    const ENTRY_B: &str = include_str!("../../tests/fixtures/doc-entry-b.json");
    const ENTRY_C: &str = include_str!("../../tests/fixtures/doc-entry-c.json");
    const STOCK_LOG: &str = include_str!("../../tests/fixtures/stock-3.12.json");

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).expect("fixture parses")
    }

    /// The entries of the stock fixture: TCP, -R, --bidir, UDP, UDP -R,
    /// UDP --bidir, -P 2 over IPv6, SIGTERM.
    pub(crate) fn stock() -> Vec<Value> {
        // The fixture is whole objects one after the other.
        serde_json::Deserializer::from_str(STOCK_LOG)
            .into_iter::<Value>()
            .collect::<Result<_, _>>()
            .expect("fixture parses")
    }

    #[track_caller]
    fn close(actual: Option<f64>, expected: f64) {
        let actual = actual.expect("a value");
        assert!(
            (actual - expected).abs() <= expected.abs() * 1e-12,
            "{actual} != {expected}"
        );
    }

    #[test]
    fn tcp_entry_a() {
        let r = summarize(5950, &parse(ENTRY_A)).expect("a test");
        close(r.receive_bps, 22228821021.324722);
        assert_eq!(r.bytes_received, 5571870720);
        assert_eq!((r.send_bps, r.bytes_sent, r.retransmits), (None, 0, None));
        assert_eq!(r.port, 5950);
        assert_eq!(r.timestamp, 1795304411);
        assert_eq!(r.client.as_deref(), Some("127.0.0.1"));
        assert_eq!(r.protocol, "TCP");
        assert_eq!(r.duration, 2.005278);
        assert_eq!((r.streams, r.reverse, r.bidir), (1, false, false));
        assert_eq!((r.jitter_ms, r.lost_percent), (None, None));
        assert_eq!((r.name, r.title, r.error), (None, None, None));
    }

    #[test]
    fn tcp_bidir_entry_b() {
        // A 3.12 entry: no `test_start.bidir`, so the `_bidir_reverse` keys tell.
        let r = summarize(5903, &parse(ENTRY_B)).expect("a test");
        assert!(r.bidir);
        assert!(!r.reverse);
        close(r.receive_bps, 20440977.061019331);
        close(r.send_bps, 20440977.061019331);
        assert_eq!((r.bytes_received, r.bytes_sent), (5111808, 5111808));
        assert_eq!(r.retransmits, Some(0));
        assert_eq!(r.duration, 2.000612);
    }

    #[test]
    fn a_sending_tcp_test_has_its_rtt_under_load_and_a_grade() {
        // Stock's -R entry: 50 µs at least and on average.
        let r = summarize(5201, &stock()[1]).expect("a test");
        assert!(r.reverse);
        assert_eq!(r.min_rtt_ms, Some(0.05));
        assert_eq!(r.latency.latency_down_ms, Some(0.05));
        assert_eq!(r.latency.grade, Some("A+"));
        // A queue that grew: 20 ms at least, 190 ms on average over two
        // streams (one 180, one 200).
        let mut entry = stock()[1].clone();
        let stream = entry["end"]["streams"][0].clone();
        let mut streams = Vec::new();
        for (min, mean) in [(20_000, 180_000), (25_000, 200_000)] {
            let mut s = stream.clone();
            s["sender"]["min_rtt"] = json!(min);
            s["sender"]["mean_rtt"] = json!(mean);
            streams.push(s);
        }
        entry["end"]["streams"] = json!(streams);
        let r = summarize(5201, &entry).expect("a test");
        assert_eq!(r.min_rtt_ms, Some(20.0));
        assert_eq!(r.latency.latency_down_ms, Some(190.0));
        assert_eq!(r.latency.grade, Some("C"));
        // A receiving test has no RTT of its own.
        let r = summarize(5201, &stock()[0]).expect("a test");
        assert_eq!((r.min_rtt_ms, r.latency.grade), (None, None));
    }

    #[test]
    fn udp_entry_c() {
        let r = summarize(5905, &parse(ENTRY_C)).expect("a test");
        assert_eq!(r.protocol, "UDP");
        close(r.receive_bps, 1048363.1822739984);
        assert_eq!(r.bytes_received, 262144);
        assert_eq!((r.send_bps, r.bytes_sent), (None, 0));
        close(r.jitter_ms, 0.012732467826455832);
        assert_eq!(r.lost_percent, Some(0.0));
        assert_eq!(r.retransmits, None);
        assert_eq!(r.timestamp, 1795303981);
    }

    #[test]
    fn stock_log_entries() {
        let entries = stock();
        assert_eq!(entries.len(), 8);
        let results: Vec<TestResult> = entries.iter().filter_map(|e| summarize(57311, e)).collect();
        // The SIGTERM entry never started a test.
        assert_eq!(results.len(), 7);

        let tcp = &results[0];
        assert_eq!(tcp.name.as_deref(), Some("alice"));
        assert_eq!(tcp.timestamp, 1795309625);
        close(tcp.receive_bps, 11655760432.13292);
        assert_eq!((tcp.bytes_received, tcp.send_bps), (1464074240, None));

        let rev = &results[1];
        assert_eq!(
            (rev.name.as_deref(), rev.title.as_deref()),
            (Some("bob"), Some("T1"))
        );
        assert!(rev.reverse && !rev.bidir);
        close(rev.send_bps, 9286094942.945774);
        assert_eq!((rev.bytes_sent, rev.retransmits), (1162608640, Some(2)));
        assert_eq!((rev.receive_bps, rev.bytes_received), (None, 0));
        assert_eq!(rev.duration, 1.001591);

        let bidir = &results[2];
        assert!(bidir.bidir && !bidir.reverse);
        close(bidir.receive_bps, 49951021.21831643);
        close(bidir.send_bps, 50991667.49369802);
        assert_eq!((bidir.bytes_received, bidir.bytes_sent), (6291456, 6422528));
        assert_eq!(bidir.retransmits, Some(1));

        let udp = &results[3];
        assert_eq!(udp.protocol, "UDP");
        close(udp.receive_bps, 10172944.563131046);
        close(udp.jitter_ms, 6.537994557084477);
        assert_eq!(udp.lost_percent, Some(0.0));

        let udp_rev = &results[4];
        assert!(udp_rev.reverse);
        close(udp_rev.send_bps, 10218956.155992867);
        assert_eq!((udp_rev.bytes_sent, udp_rev.receive_bps), (1277952, None));
        // Stock's log has no client results: the quality is unknown.
        assert_eq!((udp_rev.jitter_ms, udp_rev.lost_percent), (None, None));

        let udp_bidir = &results[5];
        assert!(udp_bidir.bidir);
        close(udp_bidir.receive_bps, 10219548.61964938);
        close(udp_bidir.send_bps, 10219548.61964938);
        close(udp_bidir.jitter_ms, 0.003967551316099163);

        let parallel = &results[6];
        assert_eq!(parallel.streams, 2);
        assert_eq!(parallel.client.as_deref(), Some("::1"));
        assert_eq!(parallel.bytes_received, 25165824);
    }

    #[test]
    fn udp_reverse_uses_the_client_results() {
        let mut entry = stock().swap_remove(4);
        entry["webperf3"] = json!({"client_results": {
            "cpu_util_total": 1.5,
            "streams": [
                {"id": 1, "bytes": 1000, "jitter": 0.00002, "errors": 1, "packets": 20},
                {"id": 3, "bytes": 1000, "jitter": 0.00004, "errors": 3, "packets": 60},
            ]
        }});
        let r = summarize(57311, &entry).expect("a test");
        close(r.jitter_ms, 0.03);
        close(r.lost_percent, 5.0);
        // Bytes still come from the server's own log.
        assert_eq!(r.bytes_sent, 1277952);
    }

    #[test]
    fn entries_that_never_started_are_skipped() {
        let sigterm = stock().pop().expect("entries");
        assert_eq!(summarize(1, &sigterm), None);
        assert_eq!(summarize(1, &json!({})), None);
        assert_eq!(summarize(1, &json!({"start": {"test_start": 3}})), None);
        assert_eq!(summarize(1, &json!([1, 2])), None);
        assert_eq!(summarize(1, &json!("x")), None);
    }

    #[test]
    fn error_entry_falls_back_to_intervals_then_to_nothing() {
        // The client vanished: `end` is `{}`, the intervals remain.
        let mut entry = parse(ENTRY_A);
        entry["end"] = json!({});
        entry["error"] = json!("the client has unexpectedly closed the connection");
        let r = summarize(5950, &entry).expect("a test");
        assert_eq!(
            r.error.as_deref(),
            Some("the client has unexpectedly closed the connection")
        );
        assert_eq!(r.bytes_received, 2462580736 + 3104309248 + 4980736);
        let seconds = 1.0000259876251221 + 1.0001660585403442 + 0.0050860000774264336;
        close(Some(r.duration), seconds);
        close(r.receive_bps, 5571870720.0 * 8.0 / seconds);

        // Nothing measured at all: no rate, the requested duration.
        entry["intervals"] = json!([]);
        let r = summarize(5950, &entry).expect("a test");
        assert_eq!(
            (r.receive_bps, r.bytes_received, r.send_bps),
            (None, 0, None)
        );
        assert_eq!(r.duration, 2.0);
    }

    #[test]
    fn old_udp_entries_with_only_sum() {
        // 3.7–3.10 UDP: no sum_sent/sum_received; `sum.bytes` is the sent total.
        let mut entry = stock().swap_remove(3);
        let end = entry["end"].as_object_mut().expect("end");
        end.remove("sum_sent");
        end.remove("sum_received");
        let r = summarize(1, &entry).expect("a test");
        assert_eq!(r.bytes_received, 1277952);
        close(r.receive_bps, 1277952.0 * 8.0 / 1.004981);
        close(r.jitter_ms, 6.537994557084477);
        assert_eq!(r.duration, 1.004981);

        let mut entry = stock().swap_remove(4);
        let end = entry["end"].as_object_mut().expect("end");
        end.remove("sum_sent");
        end.remove("sum_received");
        let r = summarize(1, &entry).expect("a test");
        assert_eq!(r.bytes_sent, 1277952);
        close(r.send_bps, 10218956.155992867);
    }

    /// `entry` as a 3.7–3.10 server would have written it, as a last-wins
    /// parser sees it: no `_bidir_reverse` names, the sending pass's sums
    /// under the plain names.
    pub(crate) fn as_old_bidir(mut entry: Value) -> Value {
        let end = entry["end"].as_object_mut().expect("end");
        for (new, old) in [
            ("sum_bidir_reverse", "sum"),
            ("sum_sent_bidir_reverse", "sum_sent"),
            ("sum_received_bidir_reverse", "sum_received"),
        ] {
            if let Some(v) = end.remove(new) {
                end.insert(old.to_string(), v);
            }
        }
        for interval in entry["intervals"].as_array_mut().expect("intervals") {
            let interval = interval.as_object_mut().expect("interval");
            if let Some(v) = interval.remove("sum_bidir_reverse") {
                interval.insert("sum".to_string(), v);
            }
        }
        entry
    }

    #[test]
    fn old_bidir_entries_are_read_per_stream() {
        let r = summarize(1, &as_old_bidir(parse(ENTRY_B))).expect("a test");
        assert!(r.bidir && !r.reverse);
        assert_eq!((r.bytes_received, r.bytes_sent), (5111808, 5111808));
        close(r.receive_bps, 20440977.061019331);
        close(r.send_bps, 20440977.061019331);
        assert_eq!(r.retransmits, Some(0));

        let udp = stock().swap_remove(5);
        let r = summarize(1, &as_old_bidir(udp.clone())).expect("a test");
        assert!(r.bidir);
        assert_eq!((r.bytes_received, r.bytes_sent), (1277952, 1277952));
        close(
            r.jitter_ms,
            udp["intervals"][0]["sum"]["jitter_ms"]
                .as_f64()
                .expect("jitter"),
        );
        assert_eq!(r.lost_percent, Some(0.0));
        let seconds = udp["intervals"][0]["streams"][0]["seconds"]
            .as_f64()
            .expect("seconds");
        close(r.receive_bps, 1277952.0 * 8.0 / seconds);
    }

    #[test]
    fn newer_flags_and_odd_types() {
        let entry = json!({
            "start": {
                "timestamp": {"timesecs": 1.7e9},
                "accepted_connection": {"host": "::ffff:192.168.1.23"},
                "test_start": {"protocol": 5, "num_streams": "2", "reverse": true, "bidir": 0}
            },
            "end": {"sum_sent": {"bytes": 18446744073709551615u64, "seconds": "x",
                                  "bits_per_second": null, "retransmits": 18446744073709551615u64}},
            "extra_data": 7,
            "title": "<b>t</b>"
        });
        let r = summarize(1, &entry).expect("a test");
        assert_eq!(r.timestamp, 1_700_000_000);
        assert_eq!(r.client.as_deref(), Some("192.168.1.23"));
        assert_eq!((r.protocol.as_str(), r.streams), ("TCP", 1));
        assert!(r.reverse && !r.bidir);
        assert_eq!((r.bytes_sent, r.send_bps, r.retransmits), (0, None, None));
        assert_eq!((r.name, r.title.as_deref()), (None, Some("<b>t</b>")));
        assert_eq!(r.duration, 0.0);

        let bidir = json!({"start": {"test_start": {"protocol": "TCP", "bidir": 1}}});
        assert!(summarize(1, &bidir).expect("a test").bidir);
    }

    #[test]
    fn readable_hosts() {
        assert_eq!(readable_host("::ffff:10.0.0.1"), "10.0.0.1");
        assert_eq!(readable_host("::FFFF:10.0.0.1"), "10.0.0.1");
        assert_eq!(readable_host("::ffff:zz"), "::ffff:zz");
        assert_eq!(readable_host("::1"), "::1");
        assert_eq!(readable_host("fe80::1"), "fe80::1");
        assert_eq!(readable_host("é"), "é");
    }

    /// Every value of `v` replaced in turn by `weird`, at every position.
    fn mutations(v: &Value, weird: &Value, out: &mut Vec<Value>) {
        fn walk(
            root: &Value,
            at: &mut Vec<String>,
            v: &Value,
            weird: &Value,
            out: &mut Vec<Value>,
        ) {
            let pointer: String = at.iter().map(|k| format!("/{k}")).collect();
            let mut copy = root.clone();
            if let Some(slot) = copy.pointer_mut(&pointer) {
                *slot = weird.clone();
                out.push(copy);
            }
            match v {
                Value::Object(m) => {
                    for (k, child) in m {
                        at.push(k.replace('~', "~0").replace('/', "~1"));
                        walk(root, at, child, weird, out);
                        at.pop();
                    }
                }
                Value::Array(items) => {
                    for (i, child) in items.iter().enumerate() {
                        at.push(i.to_string());
                        walk(root, at, child, weird, out);
                        at.pop();
                    }
                }
                _ => {}
            }
        }
        walk(v, &mut Vec::new(), v, weird, out);
    }

    #[test]
    fn odd_values_anywhere_never_panic() {
        let weird = [
            json!(null),
            json!("x"),
            json!(-1),
            json!(1e308),
            json!([]),
            json!({}),
            json!(true),
        ];
        let entries = [parse(ENTRY_B), parse(ENTRY_C), stock().swap_remove(4)];
        let mut tried = 0;
        for entry in &entries {
            for w in &weird {
                let mut variants = Vec::new();
                mutations(entry, w, &mut variants);
                for variant in &variants {
                    if let Some(r) = summarize(1, variant) {
                        assert!(r.duration.is_finite());
                    }
                    tried += 1;
                }
            }
        }
        assert!(tried > 1000);
    }
}
