//! The verdict on a recorded test: what most likely capped its rate, and
//! the figures that say so, in words. Computed from the recorded log entry
//! only (stock's keys and our `webperf3` key), so it is the same every time
//! the test is looked at and works on logs stock iperf3 wrote (with less
//! evidence: then mostly `unknown`, `bitrate-target` or `network`). No I/O.
//!
//! The rules, tried in this order; the first that holds names the limit
//! (docs/verdict.md says why each threshold is what it is):
//!
//! 1. `bitrate-target`: every direction that ran reached
//!    [`TARGET_SHARE`] of the client's `-b` (per stream, so × `-P`).
//! 2. `pi-throttled`: the Pi's firmware reported throttling (or
//!    under-voltage) during the test, or the CPU reached
//!    [`TEMPERATURE_LIMIT_C`].
//! 3. `server-cpu`: the server used [`CPU_SHARE`] of the CPU it could use
//!    for the test: one core per data stream, no more than the machine has
//!    (one core for stock iperf3 before 3.16); or one stream's thread used
//!    that share of a core.
//! 4. `receive-window` / `send-buffer`: where the server sent on TCP, the
//!    client's receive window or the server's send buffer held it back for
//!    [`LIMITED_SHARE`] of the time it had data to send (the larger wins).
//! 5. `network`: TCP retransmitted, or UDP lost [`UDP_LOSS_PERCENT`].
//! 6. `unknown`: none of these; better than a guess.
//!
//! - this file: the verdict, the rules and their order.
//! - `evidence.rs`: the figures, read from the entry and its result.
//! - `lean.rs`: the part of an entry's text the verdict reads, in one pass.

mod evidence;
mod lean;

pub use lean::read_lean;

pub use crate::store::limit::LimitedBy;

#[cfg(test)]
mod tests;

use serde::Serialize;

use self::evidence::Evidence;
use crate::report::json::{from_value, to_value, Json};
use crate::store::result::TestResult;
use crate::store::summary::summarize;
use crate::store::words::{millis, percent, plural, rate, seconds};

/// The share of the client's target a direction must reach for the target
/// to be what limited it: short tests lose a few percent to the first
/// interval's ramp and the end's timing.
pub const TARGET_SHARE: f64 = 0.90;
/// The CPU temperature (°C) from which a Pi's firmware throttles its clock.
pub const TEMPERATURE_LIMIT_C: f64 = 80.0;
/// The share of the CPU the server could use beyond which it was the limit.
pub const CPU_SHARE: f64 = 0.90;
/// The share of the sending time held back by the receive window or the
/// send buffer from which that was the limit.
pub const LIMITED_SHARE: f64 = 0.25;
/// UDP loss (%) from which the network is named.
pub const UDP_LOSS_PERCENT: f64 = 1.0;

/// iperf3's UDP bitrate when the client gives no `-b`.
const UDP_DEFAULT_BPS: f64 = 1_048_576.0;

/// The verdict on one test, as `GET /api/results/{id}` answers it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// What most likely capped the test.
    pub limited_by: LimitedBy,
    /// The figures, in words: those behind the verdict first.
    pub evidence: Vec<String>,
}

/// What one rule found: the limit it names, if it holds, and the figures
/// it looked at.
#[derive(Debug, Default)]
struct Finding {
    limit: Option<LimitedBy>,
    lines: Vec<String>,
}

/// Judges one recorded test from its log entry and the result summarised
/// from it.
pub fn judge(entry: &Json, result: &TestResult) -> Verdict {
    let ev = Evidence::read(entry, result);
    let mut context = Vec::new();
    if let Some(c) = ev.client_cpu_percent {
        // No rule names the client, but a reader may see it was the limit.
        context.push(format!("the client reported {c:.1} % CPU"));
    }
    if ev.overlapped {
        context.push("another test moved data at the same time".to_string());
    }
    if let Some(e) = &ev.error {
        context.push(format!("the test ended with an error: {e}"));
    }
    if !ev.moved_data() {
        let mut evidence = vec!["the test moved no data".to_string()];
        evidence.extend(context);
        return Verdict {
            limited_by: LimitedBy::Unknown,
            evidence,
        };
    }
    let findings = [
        target(&ev),
        throttling(&ev),
        cpu(&ev),
        windows(&ev),
        network(&ev),
    ];
    let winner = findings.iter().position(|f| f.limit.is_some());
    let mut evidence = Vec::new();
    let limited_by = match winner {
        Some(i) => {
            evidence.extend(findings[i].lines.iter().cloned());
            findings[i].limit.unwrap_or(LimitedBy::Unknown)
        }
        None => {
            evidence.push("no recorded figure explains the rate".to_string());
            LimitedBy::Unknown
        }
    };
    for (i, f) in findings.iter().enumerate() {
        if Some(i) != winner {
            evidence.extend(f.lines.iter().cloned());
        }
    }
    evidence.extend(context);
    Verdict {
        limited_by,
        evidence,
    }
}

/// `result`, summarised from `entry` (as the store reads it), with the
/// verdict's kind: what the history keeps of the verdict.
pub fn with_limit(mut result: TestResult, entry: &serde_json::Value) -> TestResult {
    result.limited_by = Some(judge(&from_value(entry), &result).limited_by);
    result
}

/// Judges a log entry of `port` as it stands in the log: summarises it as
/// the store does, then [`judge`]s it. `None` for an entry that never
/// started a test.
pub fn judge_entry(port: u16, entry: &Json) -> Option<Verdict> {
    let result = summarize(port, &to_value(entry))?;
    Some(judge(entry, &result))
}

/// Rule 1: the client's target, per direction.
fn target(ev: &Evidence) -> Finding {
    let mut f = Finding::default();
    let streams = f64::from(ev.streams);
    let mut all_reached = true;
    for d in &ev.directions {
        let verb = if d.server_sent {
            "the server sent"
        } else {
            "the server received"
        };
        match ev.target_bps {
            Some(per_stream) => {
                let total = per_stream * streams;
                let share = d.bps / total;
                all_reached &= share >= TARGET_SHARE;
                let of = if ev.streams > 1 {
                    format!(
                        "{} ({} × {})",
                        rate(total),
                        plural(streams, "stream"),
                        rate(per_stream)
                    )
                } else {
                    rate(total)
                };
                f.lines.push(format!(
                    "{verb} {} of a {of} target ({})",
                    rate(d.bps),
                    percent(share)
                ));
            }
            None => f.lines.push(format!("{verb} {}", rate(d.bps))),
        }
    }
    match ev.target_bps {
        Some(b) if ev.udp && b == UDP_DEFAULT_BPS => f
            .lines
            .push("the target is iperf3's UDP default: the client gave no -b".to_string()),
        Some(_) => {}
        None => f
            .lines
            .push("the client set no bitrate target (-b)".to_string()),
    }
    if ev.target_bps.is_some() && all_reached {
        f.limit = Some(LimitedBy::BitrateTarget);
    }
    f
}

/// Rule 2: the Pi's throttling flags and the CPU temperature.
fn throttling(ev: &Evidence) -> Finding {
    let mut f = Finding::default();
    if !ev.throttled.is_empty() {
        f.lines.push(format!(
            "the Pi reported {} during the test",
            ev.throttled.join(", ")
        ));
        f.limit = Some(LimitedBy::PiThrottled);
    }
    if let Some(t) = ev.temperature_c {
        if t >= TEMPERATURE_LIMIT_C {
            f.lines.push(format!(
                "the CPU temperature reached {t:.1} °C; firmware throttles from {TEMPERATURE_LIMIT_C:.0} °C"
            ));
            f.limit = Some(LimitedBy::PiThrottled);
        } else {
            f.lines
                .push(format!("the CPU temperature peaked at {t:.1} °C"));
        }
    }
    f
}

/// Rule 3: the server's CPU against what it could use, and the busiest
/// stream's thread against one core.
fn cpu(ev: &Evidence) -> Finding {
    let mut f = Finding::default();
    if let Some(busiest) = ev.busiest_stream_cpu {
        f.lines.push(format!(
            "the busiest stream's thread used {busiest:.1} % of a core"
        ));
        if busiest >= CPU_SHARE * 100.0 {
            f.limit = Some(LimitedBy::ServerCpu);
        }
    }
    if let Some(used) = ev.cpu_percent {
        let (cores, why) = &ev.cpu_ceiling;
        let share = used / (cores * 100.0);
        f.lines.push(format!(
            "the server used {used:.1} % CPU: {} of the {} it could use ({why})",
            percent(share),
            plural(*cores, "core")
        ));
        if share >= CPU_SHARE {
            f.limit = Some(LimitedBy::ServerCpu);
        }
    }
    f
}

/// Rule 4: TCP_INFO's receive-window- and send-buffer-limited time, where
/// the server sent on TCP.
fn windows(ev: &Evidence) -> Finding {
    let mut f = Finding::default();
    let Some(tcp) = &ev.tcp_send else {
        return f;
    };
    let Some(busy) = tcp.busy_us.filter(|&b| b > 0.0) else {
        return f;
    };
    let rwnd = tcp.rwnd_limited_us.map(|us| us / busy);
    let sndbuf = tcp.sndbuf_limited_us.map(|us| us / busy);
    // The busy time is summed over the sending streams: a share of it is
    // the streams' average, and the time is one stream's.
    let of_time = if ev.streams > 1 {
        format!(
            "of the time it had data to send ({} per stream, {})",
            seconds(busy / f64::from(ev.streams)),
            plural(f64::from(ev.streams), "stream")
        )
    } else {
        format!("of the {} it had data to send", seconds(busy))
    };
    if let Some(share) = rwnd {
        f.lines.push(format!(
            "the client's receive window held the server back {} {of_time}",
            percent(share)
        ));
    }
    if let Some(share) = sndbuf {
        f.lines.push(format!(
            "the server's send buffer held it back {} {of_time}",
            percent(share)
        ));
    }
    let (rwnd, sndbuf) = (rwnd.unwrap_or(0.0), sndbuf.unwrap_or(0.0));
    if rwnd.max(sndbuf) >= LIMITED_SHARE {
        f.limit = Some(if rwnd >= sndbuf {
            LimitedBy::ReceiveWindow
        } else {
            LimitedBy::SendBuffer
        });
    }
    f
}

/// Rule 5: TCP retransmissions (either side's sending streams) and UDP
/// loss; with the RTT and the kernel's delivery rate beside them.
fn network(ev: &Evidence) -> Finding {
    let mut f = Finding::default();
    let tcp = ev.tcp_send.as_ref();
    let server = tcp.and_then(|t| t.retransmits).or(ev.server_retransmits);
    if let Some(n) = server {
        let segments = tcp.and_then(|t| t.data_segs_out).filter(|&s| s > 0.0);
        let of = segments.map_or(String::new(), |s| {
            format!(" ({:.2} % of {s:.0} sent)", n / s * 100.0)
        });
        f.lines.push(format!(
            "the server retransmitted {}{of}",
            plural(n, "segment")
        ));
        if n > 0.0 {
            f.limit = Some(LimitedBy::Network);
        }
    }
    if let Some(n) = ev.client_retransmits {
        f.lines
            .push(format!("the client retransmitted {}", plural(n, "segment")));
        if n > 0.0 {
            f.limit = Some(LimitedBy::Network);
        }
    }
    if let Some(lost) = ev.lost_percent.filter(|_| ev.udp) {
        f.lines
            .push(format!("{lost:.2} % of the UDP datagrams were lost"));
        if lost >= UDP_LOSS_PERCENT {
            f.limit = Some(LimitedBy::Network);
        }
    }
    if let Some(rtt) = tcp.and_then(|t| t.min_rtt_us) {
        f.lines
            .push(format!("the smallest RTT was {}", millis(rtt)));
    }
    if let Some(t) = tcp {
        if let Some(bps) = t.delivery_rate_bps {
            let why = if t.app_limited {
                " (taken while the server had less to send than the path could take)"
            } else {
                ""
            };
            let streams = if ev.streams > 1 {
                format!(" (its {} streams together)", ev.streams)
            } else {
                String::new()
            };
            // Beside the rate of the one direction the server sent.
            let sent = ev.directions.iter().find(|d| d.server_sent);
            let against = sent.map_or(String::new(), |d| {
                format!(", against {} the server sent on average", rate(d.bps))
            });
            f.lines.push(format!(
                "the kernel's last delivery-rate estimate{streams} was {}{against}{why}",
                rate(bps)
            ));
        }
    }
    f
}
