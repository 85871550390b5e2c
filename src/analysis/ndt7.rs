//! The result object of a finished ndt7 subtest's document
//! (`"protocol": "ndt7"`), as logged in `ndt7.json`.

use crate::analysis::test_result::{Latency, TestResult, NDT7_PROTOCOL};
use crate::ndt7::record::Record;
use crate::ndt7::Kind;

/// The `protocol` of ndt7 results.
pub const PROTOCOL: &str = NDT7_PROTOCOL;

/// The result object of a subtest's document, named `id`; `None` if the
/// document holds no subtest or no readable start time. The port is the
/// server port the document names (the dashboard's).
pub fn result_of(record: &Record, id: String) -> Option<TestResult> {
    let f = record.figures()?;
    let measured = record.latency();
    let (send_bps, receive_bps, bytes_sent, bytes_received) = match f.kind {
        Kind::Download => (f.bps, None, f.bytes, 0),
        Kind::Upload => (None, f.bps, 0, f.bytes),
    };
    Some(
        TestResult {
            id,
            port: record.server_port,
            timestamp: f.timestamp,
            name: f.name,
            title: None,
            client: Some(f.client),
            protocol: PROTOCOL.into(),
            duration: f.seconds,
            streams: 1,
            reverse: false,
            bidir: false,
            send_bps,
            receive_bps,
            bytes_sent,
            bytes_received,
            retransmits: None,
            jitter_ms: measured.jitter_ms,
            lost_percent: None,
            min_rtt_ms: f.min_rtt_ms,
            error: f.error,
            overlapped: Some(f.overlapped),
            server_cpu_percent: None,
            cpu_temp_c: None,
            throttled: None,
            kind: None,
            target: None,
            target_bps: None,
            link_bps: None,
            limited_by: None,
            headline: String::new(),
            latency: Latency {
                latency_idle_ms: measured.idle.map(|s| s.median_ms),
                latency_down_ms: measured.download.map(|s| s.median_ms),
                latency_up_ms: measured.upload.map(|s| s.median_ms),
                run: record.run(),
                ..Latency::default()
            },
        }
        .graded(),
    )
}
