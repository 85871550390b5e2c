//! The CSV export (`GET /csv`) and the Prometheus exposition (`GET /metrics`):
//! pure functions from results to text, no I/O.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::TimeZone;

use crate::hub::{PortState, Status, TestResult};

/// The CSV header; the first five columns are the original tool's.
pub const CSV_HEADER: [&str; 18] = [
    "Port",
    "Name",
    "Timestamp",
    "Send rate (bps)",
    "Receive rate (bps)",
    "Title",
    "Client",
    "Protocol",
    "Duration (s)",
    "Streams",
    "Reverse",
    "Bidir",
    "Bytes sent",
    "Bytes received",
    "Retransmits",
    "Jitter (ms)",
    "Lost (%)",
    "Error",
];

/// Every result as CSV, oldest first, with [`CSV_HEADER`]. Timestamps are
/// local time `YYYY-MM-DD HH:MM:SS`; text a client sent is neutralised
/// against spreadsheet formulas.
pub fn csv(results: &[TestResult]) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(CSV_HEADER)?;
    for r in results {
        let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        let text = |v: &Option<String>| {
            v.as_deref()
                .map(neutralise)
                .unwrap_or_default()
                .into_owned()
        };
        writer.write_record([
            r.port.to_string(),
            text(&r.name),
            local_time(r.timestamp),
            opt(r.send_bps),
            opt(r.receive_bps),
            text(&r.title),
            text(&r.client),
            neutralise(&r.protocol).into_owned(),
            r.duration.to_string(),
            r.streams.to_string(),
            r.reverse.to_string(),
            r.bidir.to_string(),
            r.bytes_sent.to_string(),
            r.bytes_received.to_string(),
            r.retransmits.map(|v| v.to_string()).unwrap_or_default(),
            opt(r.jitter_ms),
            opt(r.lost_percent),
            text(&r.error),
        ])?;
    }
    writer.into_inner().map_err(|e| e.into_error().into())
}

/// `timestamp` (unix seconds) as local time `YYYY-MM-DD HH:MM:SS`.
pub fn local_time(timestamp: i64) -> String {
    match chrono::Local.timestamp_opt(timestamp, 0).earliest() {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => timestamp.to_string(),
    }
}

/// A cell a spreadsheet would run as a formula (it starts with `=`, `+`,
/// `-`, `@`, a tab or a carriage return) gets a leading `'`; a plain number
/// such as `-1.5` stays a number.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && !is_plain_number(cell) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// `[+-]digits[.digits][e[+-]digits]` (or `.digits`), nothing else.
fn is_plain_number(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = (!int.is_empty() || !frac.is_empty()) && digits(int) && digits(frac);
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

/// The Prometheus text exposition (format 0.0.4) of the latest results, the
/// per-port counts of recorded tests and whether each port is busy.
pub fn metrics(
    latest: &[Option<TestResult>],
    recorded: &BTreeMap<u16, u64>,
    status: &Status,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# HELP webperf3_info The running webperf3 version.");
    let _ = writeln!(out, "# TYPE webperf3_info gauge");
    let _ = writeln!(
        out,
        "webperf3_info{{version=\"{}\"}} 1",
        escape_label(&status.version)
    );

    let mut counts: BTreeMap<u16, u64> = status.ports.iter().map(|p| (p.port, 0)).collect();
    for (port, n) in recorded {
        *counts.entry(*port).or_default() += n;
    }
    let _ = writeln!(
        out,
        "# HELP webperf3_tests_recorded_total Tests recorded in the logs, per port."
    );
    let _ = writeln!(out, "# TYPE webperf3_tests_recorded_total counter");
    for (port, n) in &counts {
        let _ = writeln!(out, "webperf3_tests_recorded_total{{port=\"{port}\"}} {n}");
    }

    let _ = writeln!(
        out,
        "# HELP webperf3_test_running 1 while a test runs on the port, else 0."
    );
    let _ = writeln!(out, "# TYPE webperf3_test_running gauge");
    for p in &status.ports {
        let running = u8::from(p.state == PortState::Running);
        let _ = writeln!(
            out,
            "webperf3_test_running{{port=\"{}\"}} {running}",
            p.port
        );
    }

    let _ = writeln!(
        out,
        "# HELP webperf3_log_write_error 1 while writing a log file fails, else 0."
    );
    let _ = writeln!(out, "# TYPE webperf3_log_write_error gauge");
    let _ = writeln!(
        out,
        "webperf3_log_write_error {}",
        u8::from(status.log_error.is_some())
    );

    let latest: Vec<&TestResult> = latest.iter().flatten().collect();
    type Field = fn(&TestResult) -> Option<f64>;
    let gauges: [(&str, &str, Field); 5] = [
        (
            "webperf3_latest_receive_bps",
            "What the server received (client to server) in the port's latest test, bits/s.",
            |r| r.receive_bps,
        ),
        (
            "webperf3_latest_send_bps",
            "What the server sent (server to client) in the port's latest test, bits/s.",
            |r| r.send_bps,
        ),
        (
            "webperf3_latest_timestamp_seconds",
            "When the port's latest test started, unix seconds.",
            |r| Some(r.timestamp as f64),
        ),
        (
            "webperf3_latest_jitter_ms",
            "UDP jitter of the port's latest test, milliseconds.",
            |r| r.jitter_ms,
        ),
        (
            "webperf3_latest_lost_percent",
            "UDP loss of the port's latest test, percent.",
            |r| r.lost_percent,
        ),
    ];
    for (name, help, field) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for r in &latest {
            if let Some(v) = field(r) {
                let _ = writeln!(
                    out,
                    "{name}{{port=\"{}\",name=\"{}\"}} {}",
                    r.port,
                    escape_label(r.name.as_deref().unwrap_or("")),
                    prom_number(v)
                );
            }
        }
    }
    out
}

/// A label value with `\`, `"` and newlines escaped as the format requires.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn prom_number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_numbers_are_not() {
        assert_eq!(neutralise("=1+1"), "'=1+1");
        assert_eq!(neutralise("+cmd"), "'+cmd");
        assert_eq!(neutralise("-2+3"), "'-2+3");
        assert_eq!(neutralise("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(neutralise("\tx"), "'\tx");
        assert_eq!(neutralise("\rx"), "'\rx");
        assert_eq!(neutralise("-"), "'-");
        assert_eq!(neutralise("-1.5"), "-1.5");
        assert_eq!(neutralise("+3"), "+3");
        assert_eq!(neutralise("-1e9"), "-1e9");
        assert_eq!(neutralise("-.5"), "-.5");
        assert_eq!(neutralise("-inf"), "'-inf");
        assert_eq!(neutralise("-1e"), "'-1e");
        assert_eq!(neutralise("alice"), "alice");
        assert_eq!(neutralise("a=b"), "a=b");
        assert_eq!(neutralise(""), "");
    }

    #[test]
    fn label_escaping() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn local_time_shape() {
        let t = local_time(1_763_767_679);
        assert_eq!(t.len(), 19, "{t}");
        assert_eq!(&t[4..5], "-");
        assert_eq!(&t[10..11], " ");
        assert_eq!(&t[13..14], ":");
    }
}
