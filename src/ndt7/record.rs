//! The result document of one finished subtest, in the layout of
//! ndt-server's `spec/data-format.md` (`ClientIP`, `ClientPort`,
//! `ServerIP`, `ServerPort`, `StartTime`, `EndTime`, and `Download` or
//! `Upload` with `UUID`, `StartTime`, `EndTime`, `ClientMetadata`,
//! `ServerMetadata`, `ServerMeasurements`, `ClientMeasurements`), and the
//! figures a dashboard shows, derived from the recorded measurements only
//! (so a document read back gives the same figures).

use std::net::SocketAddr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::latency::{jitter, valid_run, LatencyLog, Phase, Sample, Stats};
use super::measurement::Measurement;
use super::Kind;

/// One `{"Name": ..., "Value": ...}` pair of metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameValue {
    /// The key.
    #[serde(rename = "Name")]
    pub name: String,
    /// The value.
    #[serde(rename = "Value")]
    pub value: String,
}

/// Server metadata naming a subtest that ran beside another test.
pub const OVERLAPPED: &str = "overlapped";

/// Server metadata with why a subtest ended early (the peer went away).
pub const ERROR: &str = "error";

/// The per-subtest part of a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// RFC 3339, nanoseconds.
    #[serde(rename = "StartTime")]
    pub start_time: String,
    /// RFC 3339, nanoseconds.
    #[serde(rename = "EndTime")]
    pub end_time: String,
    /// The subtest's id.
    #[serde(rename = "UUID")]
    pub uuid: String,
    /// The client's query parameters.
    #[serde(rename = "ClientMetadata", default)]
    pub client_metadata: Vec<NameValue>,
    /// What the server notes (overlap, early end).
    #[serde(rename = "ServerMetadata", default)]
    pub server_metadata: Vec<NameValue>,
    /// The measurements the server sent.
    #[serde(rename = "ServerMeasurements", default)]
    pub server_measurements: Vec<Measurement>,
    /// The measurements the client sent (as received).
    #[serde(rename = "ClientMeasurements", default)]
    pub client_measurements: Vec<serde_json::Value>,
    /// The round trips of the subtest's speed-test run (ours; ndt-server's
    /// readers ignore it).
    #[serde(
        rename = "WebperfLatency",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub latency: Option<LatencyLog>,
}

/// One finished subtest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The client's address.
    #[serde(rename = "ClientIP")]
    pub client_ip: String,
    /// The client's port.
    #[serde(rename = "ClientPort")]
    pub client_port: u16,
    /// Our address.
    #[serde(rename = "ServerIP")]
    pub server_ip: String,
    /// Our port (the dashboard's).
    #[serde(rename = "ServerPort")]
    pub server_port: u16,
    /// RFC 3339, nanoseconds.
    #[serde(rename = "StartTime")]
    pub start_time: String,
    /// RFC 3339, nanoseconds.
    #[serde(rename = "EndTime")]
    pub end_time: String,
    /// Set for a download.
    #[serde(rename = "Download", skip_serializing_if = "Option::is_none", default)]
    pub download: Option<Summary>,
    /// Set for an upload.
    #[serde(rename = "Upload", skip_serializing_if = "Option::is_none", default)]
    pub upload: Option<Summary>,
}

/// What a dashboard shows of a subtest.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Download or upload.
    pub kind: Kind,
    /// Unix seconds of the start.
    pub timestamp: i64,
    /// Seconds measured.
    pub seconds: f64,
    /// Application bytes moved.
    pub bytes: u64,
    /// The server-measured rate, bits/s: TCP bytes acknowledged (download)
    /// or application bytes received (upload) over the time elapsed.
    pub bps: Option<f64>,
    /// The kernel's minimum RTT, ms.
    pub min_rtt_ms: Option<f64>,
    /// The `name` metadata.
    pub name: Option<String>,
    /// The client's address (IPv4-mapped shown as IPv4).
    pub client: String,
    /// Whether another test ran at the same time.
    pub overlapped: bool,
    /// Why it ended early, if it did.
    pub error: Option<String>,
}

/// How many spaces [`Record::to_text`] indents an element of
/// `ClientMeasurements` by (three levels: the document, the subtest, the list).
const CLIENT_INDENT: usize = 6;

/// The bytes the client measurement `value` adds to a document as
/// [`Record::to_text`] prints it: its pretty text, every line indented,
/// and the separator after it.
pub fn client_logged_len(value: &serde_json::Value) -> usize {
    /// Counts bytes and line breaks written.
    struct Count {
        bytes: usize,
        lines: usize,
    }
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.bytes += buf.len();
            self.lines += memchr::memchr_iter(b'\n', buf).count();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count { bytes: 0, lines: 1 };
    // Writing to a counter cannot fail.
    let _ = serde_json::to_writer_pretty(&mut count, value);
    count.bytes + count.lines * CLIENT_INDENT + ",\n".len()
}

/// How deeply `value` nests: 0 for a scalar, 1 for an object or array of
/// scalars, and so on.
pub fn depth(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    let inner = match value {
        Value::Array(items) => items.iter().map(depth).max(),
        Value::Object(members) => members.values().map(depth).max(),
        _ => return 0,
    };
    1 + inner.unwrap_or(0)
}

/// A time as the documents write it.
pub fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

impl Record {
    /// The document of a subtest between `start` and `end` on the
    /// connection `client` → `server`.
    pub fn new(
        kind: Kind,
        client: SocketAddr,
        server: SocketAddr,
        (start, end): (DateTime<Utc>, DateTime<Utc>),
        summary_fields: Summary,
    ) -> Record {
        let summary = Summary {
            start_time: time_text(start),
            end_time: time_text(end),
            ..summary_fields
        };
        let (download, upload) = match kind {
            Kind::Download => (Some(summary), None),
            Kind::Upload => (None, Some(summary)),
        };
        Record {
            client_ip: client.ip().to_canonical().to_string(),
            client_port: client.port(),
            server_ip: server.ip().to_canonical().to_string(),
            server_port: server.port(),
            start_time: time_text(start),
            end_time: time_text(end),
            download,
            upload,
        }
    }

    /// The document as the log holds it: pretty-printed, ending in a line
    /// break, its opening `{` at a line start.
    pub fn to_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into());
        text.push('\n');
        text
    }

    /// The subtest's part and which one it is.
    pub fn summary(&self) -> Option<(Kind, &Summary)> {
        match (&self.download, &self.upload) {
            (Some(s), _) => Some((Kind::Download, s)),
            (None, Some(s)) => Some((Kind::Upload, s)),
            (None, None) => None,
        }
    }

    /// Unix seconds of the start, if the time reads.
    pub fn timestamp(&self) -> Option<i64> {
        DateTime::parse_from_rfc3339(&self.start_time)
            .ok()
            .map(|t| t.timestamp())
    }

    /// The figures a dashboard shows; `None` if the document has no subtest
    /// or no readable start time.
    pub fn figures(&self) -> Option<Figures> {
        let (kind, s) = self.summary()?;
        let timestamp = self.timestamp()?;
        let meta = |list: &[NameValue], key: &str| {
            list.iter()
                .find(|nv| nv.name == key)
                .map(|nv| nv.value.clone())
        };
        let last_app = s.server_measurements.iter().rev().find_map(|m| m.app_info);
        let last_tcp = s.server_measurements.iter().rev().find_map(|m| m.tcp_info);
        let secs = |us: i64| us as f64 / 1e6;
        let bytes = last_app.map_or(0, |a| u64::try_from(a.num_bytes).unwrap_or(0));
        let bps = match kind {
            Kind::Download => last_tcp
                .filter(|t| t.elapsed_time > 0)
                .map(|t| t.bytes_acked as f64 * 8.0 / secs(t.elapsed_time)),
            Kind::Upload => last_app
                .filter(|a| a.elapsed_time > 0)
                .map(|a| a.num_bytes as f64 * 8.0 / secs(a.elapsed_time)),
        };
        let seconds = match kind {
            Kind::Download => last_tcp.map(|t| secs(t.elapsed_time)),
            Kind::Upload => None,
        }
        .or(last_app.map(|a| secs(a.elapsed_time)))
        .unwrap_or(0.0);
        Some(Figures {
            kind,
            timestamp,
            seconds,
            bytes,
            bps,
            min_rtt_ms: last_tcp
                .filter(|t| t.min_rtt > 0)
                .map(|t| t.min_rtt as f64 / 1000.0),
            name: meta(&s.client_metadata, "name"),
            client: self.client_ip.clone(),
            overlapped: meta(&s.server_metadata, OVERLAPPED).as_deref() == Some("true"),
            error: meta(&s.server_metadata, ERROR),
        })
    }

    /// The speed-test run the subtest belongs to: its `run` metadata, if
    /// that is a run id.
    pub fn run(&self) -> Option<String> {
        let (_, s) = self.summary()?;
        let nv = s.client_metadata.iter().find(|nv| nv.name == RUN)?;
        valid_run(&nv.value).then(|| nv.value.clone())
    }

    /// The round trips the subtest's document holds: its run's samples per
    /// phase; a download without samples of its own phase has the
    /// server's smoothed TCP RTT of the loading connection instead (what
    /// M-Lab's clients, which measure no latency beside, still show).
    pub fn latency(&self) -> Measured {
        let Some((kind, s)) = self.summary() else {
            return Measured::default();
        };
        let samples = s.latency.as_ref().map_or(&[][..], |l| &l.samples[..]);
        let idle: Vec<f64> = samples
            .iter()
            .filter(|x| x.phase() == Phase::Idle)
            .map(Sample::rtt_ms)
            .collect();
        let tcp_rtt = || {
            let rtts = s.server_measurements.iter().filter_map(|m| m.tcp_info);
            Stats::of(rtts.filter(|t| t.rtt > 0).map(|t| t.rtt as f64 / 1000.0))
        };
        Measured {
            idle: Stats::of(idle.iter().copied()),
            jitter_ms: jitter(&idle),
            download: Stats::of_phase(samples, Phase::Download)
                .or_else(|| (kind == Kind::Download).then(tcp_rtt).flatten()),
            upload: Stats::of_phase(samples, Phase::Upload),
        }
    }
}

/// The client metadata naming a subtest's speed-test run.
pub const RUN: &str = "run";

/// The latency figures of a subtest's document.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Measured {
    /// Idle round trips.
    pub idle: Option<Stats>,
    /// The variation of consecutive idle round trips, ms.
    #[serde(skip)]
    pub jitter_ms: Option<f64>,
    /// Round trips while data flowed to the client.
    pub download: Option<Stats>,
    /// Round trips while data flowed from the client.
    pub upload: Option<Stats>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ndt7::measurement::{AppInfo, TcpInfo};

    /// A subtest named `name` from `secs` (unix) for 10 s: 10^9 bytes by
    /// the application, 1.25 × 10^9 acknowledged (1 Gbit/s), 1.5 ms minimum
    /// RTT, behind an empty first measurement.
    pub(crate) fn sample(kind: Kind, secs: i64, name: &str) -> Record {
        let m = Measurement {
            app_info: Some(AppInfo {
                elapsed_time: 10_000_000,
                num_bytes: 1_000_000_000,
            }),
            tcp_info: Some(TcpInfo {
                bytes_acked: 1_250_000_000,
                elapsed_time: 10_000_000,
                min_rtt: 1500,
                ..Default::default()
            }),
            ..Default::default()
        };
        Record::new(
            kind,
            "[::ffff:192.0.2.7]:40000".parse().unwrap(),
            "[::1]:8080".parse().unwrap(),
            (
                DateTime::from_timestamp(secs, 0).unwrap(),
                DateTime::from_timestamp(secs + 10, 0).unwrap(),
            ),
            Summary {
                start_time: String::new(),
                end_time: String::new(),
                uuid: format!("u{secs}"),
                client_metadata: vec![NameValue {
                    name: "name".into(),
                    value: name.into(),
                }],
                server_metadata: vec![],
                server_measurements: vec![Measurement::default(), m],
                client_measurements: vec![],
                latency: None,
            },
        )
    }

    fn record(kind: Kind) -> Record {
        let mut r = sample(kind, 1_700_000_000, "kitchen");
        let s = r.download.as_mut().or(r.upload.as_mut()).unwrap();
        s.server_metadata.push(NameValue {
            name: OVERLAPPED.into(),
            value: "true".into(),
        });
        r
    }

    #[test]
    fn the_document_has_the_data_format_layout() {
        let r = record(Kind::Download);
        let text = r.to_text();
        assert!(text.starts_with("{\n") && text.ends_with("}\n"));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["ClientIP"], "192.0.2.7");
        assert_eq!(v["ClientPort"], 40000);
        assert_eq!(v["ServerIP"], "::1");
        assert_eq!(v["ServerPort"], 8080);
        assert_eq!(v["StartTime"], "2023-11-14T22:13:20.000000000Z");
        assert_eq!(v["Download"]["UUID"], "u1700000000");
        assert_eq!(v["Download"]["ClientMetadata"][0]["Name"], "name");
        assert!(v.get("Upload").is_none());
        let back: Record = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn figures_come_from_the_last_measurement() {
        let f = record(Kind::Download).figures().unwrap();
        assert_eq!(f.kind, Kind::Download);
        assert_eq!(f.timestamp, 1_700_000_000);
        assert_eq!(f.bps, Some(1e9));
        assert_eq!(f.bytes, 1_000_000_000);
        assert_eq!(f.min_rtt_ms, Some(1.5));
        assert_eq!(f.name.as_deref(), Some("kitchen"));
        assert_eq!(f.client, "192.0.2.7");
        assert!(f.overlapped);
        assert_eq!(f.error, None);
        let up = record(Kind::Upload).figures().unwrap();
        assert_eq!(up.bps, Some(8e8));
        assert_eq!(up.seconds, 10.0);
    }
}
