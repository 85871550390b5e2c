//! The figures a verdict rests on, read from one recorded test: its log
//! entry (stock's keys, and our `webperf3` key where we wrote it) and the
//! result object summarised from it. Reads defensively: a missing or oddly
//! typed field is absent, never a panic, so stock-written logs (and entries
//! of tests that failed early) read as well as ours.

use crate::analysis::test_result::TestResult;
use crate::json::Json;

/// One direction the test moved data in, from the server's point of view.
#[derive(Debug, Clone, PartialEq)]
pub struct Direction {
    /// The server sent (`-R`, the reverse half of `--bidir`).
    pub server_sent: bool,
    /// What was achieved, bits/s.
    pub bps: f64,
}

/// What TCP_INFO said of the server's sending TCP streams, summed
/// (`webperf3.tcp_send.sum`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TcpSend {
    /// µs the streams had data to send.
    pub busy_us: Option<f64>,
    /// µs of those the client's receive window held them back.
    pub rwnd_limited_us: Option<f64>,
    /// µs of those the server's send buffer held them back.
    pub sndbuf_limited_us: Option<f64>,
    /// The smallest RTT, µs.
    pub min_rtt_us: Option<f64>,
    /// Segments retransmitted.
    pub retransmits: Option<f64>,
    /// Segments that carried data, retransmissions included.
    pub data_segs_out: Option<f64>,
    /// The kernel's last delivery-rate estimates, summed, bits/s.
    pub delivery_rate_bps: Option<f64>,
    /// That estimate was taken while the server had too little to send.
    pub app_limited: bool,
}

/// Everything the rules look at.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    /// A UDP test.
    pub udp: bool,
    /// Parallel streams per direction (`-P`).
    pub streams: u32,
    /// The directions that ran, with their rates.
    pub directions: Vec<Direction>,
    /// The client's `-b` per stream, bits/s, when nonzero.
    pub target_bps: Option<f64>,
    /// The server's CPU use over the test, % of one core.
    pub cpu_percent: Option<f64>,
    /// The CPU use of the busiest stream's thread, % of one core (our logs
    /// only).
    pub busiest_stream_cpu: Option<f64>,
    /// How many cores' worth of CPU the server could have used for this
    /// test, and why (in words).
    pub cpu_ceiling: (f64, String),
    /// Pi throttling seen during the test.
    pub throttled: Vec<String>,
    /// The highest CPU temperature seen during the test, °C.
    pub temperature_c: Option<f64>,
    /// TCP_INFO of the server's sending streams (our logs only).
    pub tcp_send: Option<TcpSend>,
    /// Retransmissions of the server's sending streams as `end` states them.
    pub server_retransmits: Option<f64>,
    /// Retransmissions of the client's sending streams, from the results
    /// the client sent (our logs only).
    pub client_retransmits: Option<f64>,
    /// UDP loss, %.
    pub lost_percent: Option<f64>,
    /// The client's CPU use as it reported it, %.
    pub client_cpu_percent: Option<f64>,
    /// Another test moved data at the same time.
    pub overlapped: bool,
    /// A probe: the box was the client (its entry is the client's).
    pub probe: bool,
    /// The test's error, if it had one.
    pub error: Option<String>,
}

/// The member at `path` of nested objects.
fn at<'a>(json: &'a Json, path: &[&str]) -> Option<&'a Json> {
    path.iter().try_fold(json, |j, key| j.get(key))
}

/// A finite number (integer or not).
fn num(json: Option<&Json>) -> Option<f64> {
    match json? {
        Json::Int(i) => Some(*i as f64),
        Json::Num(n) if n.is_finite() => Some(*n),
        _ => None,
    }
}

/// A count as a peer may have sent it: a finite number from 0 up to 2^53
/// (the client writes `-1`, or that as unsigned, for "unknown").
fn count(json: Option<&Json>) -> Option<f64> {
    num(json).filter(|n| (0.0..=9_007_199_254_740_992.0).contains(n))
}

/// The minor version of a stock `iperf 3.N` server, from `start.version`.
fn stock_minor(version: &str) -> Option<u32> {
    let rest = version.strip_prefix("iperf 3.")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// How many cores' worth of CPU the server could use for the test: one
/// per data stream (each moves its bytes on its own thread), no more than
/// the machine had; stock iperf3 before 3.16 ran a test on one thread.
fn cpu_ceiling(entry: &Json, threads: u32) -> (f64, String) {
    let threads = threads.max(1);
    let version = match at(entry, &["start", "version"]) {
        Some(Json::Str(v)) => v.as_str(),
        _ => "",
    };
    let plural = |n: u32, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    if let Some(minor) = stock_minor(version).filter(|&m| m < 16) {
        let why = format!("stock iperf3 3.{minor} runs a test on one thread");
        return (1.0, why);
    }
    let cpus = count(at(entry, &["webperf3", "cpus"]))
        .filter(|&n| n >= 1.0)
        .map(|n| n.min(f64::from(u32::MAX)) as u32);
    match cpus {
        Some(c) if c < threads => (
            f64::from(c),
            format!("{} on {}", plural(threads, "stream"), plural(c, "core")),
        ),
        _ => (
            f64::from(threads),
            format!("one per stream, {}", plural(threads, "stream")),
        ),
    }
}

impl TcpSend {
    /// `webperf3.tcp_send.sum`, if recorded.
    fn read(entry: &Json) -> Option<TcpSend> {
        let sum = at(entry, &["webperf3", "tcp_send", "sum"])?;
        let field = |key: &str| count(sum.get(key));
        Some(TcpSend {
            busy_us: field("busy_time_us"),
            rwnd_limited_us: field("rwnd_limited_us"),
            sndbuf_limited_us: field("sndbuf_limited_us"),
            min_rtt_us: field("min_rtt_us"),
            retransmits: field("retransmits"),
            data_segs_out: field("data_segs_out"),
            delivery_rate_bps: field("delivery_rate_bps"),
            app_limited: sum.get("delivery_rate_app_limited") == Some(&Json::Bool(true)),
        })
    }
}

/// The highest CPU use of a stream's thread, from
/// `webperf3.stream_cpu_percent`.
fn busiest_stream_cpu(entry: &Json) -> Option<f64> {
    let Some(Json::Arr(streams)) = at(entry, &["webperf3", "stream_cpu_percent"]) else {
        return None;
    };
    streams
        .iter()
        .filter_map(|s| num(s.get("percent")))
        .filter(|p| *p >= 0.0)
        .reduce(f64::max)
}

/// Retransmissions the client reported for its streams (those it sent on),
/// from `webperf3.client_results`.
fn client_retransmits(entry: &Json) -> Option<f64> {
    let Some(Json::Arr(streams)) = at(entry, &["webperf3", "client_results", "streams"]) else {
        return None;
    };
    let counts: Vec<f64> = streams
        .iter()
        .filter_map(|s| count(s.get("retransmits")))
        .collect();
    (!counts.is_empty()).then(|| counts.iter().sum())
}

/// A probe's own retransmissions (where the box sent: not `-R`), from
/// its entry's `end.sum_sent`, which in the client's layout is the box's.
fn box_retransmits(entry: &Json, result: &TestResult) -> Option<f64> {
    if result.reverse {
        return None;
    }
    count(at(entry, &["end", "sum_sent", "retransmits"]))
}

impl Evidence {
    /// Reads the evidence of one recorded test.
    pub fn read(entry: &Json, result: &TestResult) -> Evidence {
        let test_start = at(entry, &["start", "test_start"]);
        let target = test_start
            .and_then(|t| num(t.get("target_bitrate")))
            .or_else(|| num(at(entry, &["start", "target_bitrate"])))
            .filter(|&b| b > 0.0);
        let mut directions = Vec::new();
        let rates = [(false, result.receive_bps), (true, result.send_bps)];
        for (server_sent, bps) in rates {
            if let Some(bps) = bps.filter(|b| b.is_finite() && *b >= 0.0) {
                directions.push(Direction { server_sent, bps });
            }
        }
        let streams = result.streams.max(1);
        let threads = if result.bidir {
            streams.saturating_mul(2)
        } else {
            streams
        };
        let temperature = result.cpu_temp_c.filter(|t| t.is_finite());
        let probe = result.kind.is_some();
        Evidence {
            udp: result.protocol.eq_ignore_ascii_case("UDP"),
            streams,
            directions,
            target_bps: target,
            cpu_percent: result.server_cpu_percent.filter(|c| c.is_finite()),
            busiest_stream_cpu: busiest_stream_cpu(entry),
            cpu_ceiling: cpu_ceiling(entry, threads),
            throttled: result.throttled.clone().unwrap_or_default(),
            temperature_c: temperature,
            tcp_send: TcpSend::read(entry),
            server_retransmits: result.retransmits.map(|r| r as f64),
            client_retransmits: if probe {
                box_retransmits(entry, result)
            } else {
                client_retransmits(entry)
            },
            lost_percent: result.lost_percent.filter(|l| l.is_finite()),
            client_cpu_percent: num(at(entry, &["webperf3", "client_results", "cpu_util_total"]))
                .or_else(|| {
                    num(at(
                        entry,
                        &["end", "cpu_utilization_percent", "remote_total"],
                    ))
                })
                .filter(|c| *c > 0.0),
            overlapped: result.overlapped == Some(true),
            probe,
            error: result.error.clone(),
        }
    }

    /// Whether any data moved.
    pub fn moved_data(&self) -> bool {
        self.directions.iter().any(|d| d.bps > 0.0)
    }
}
