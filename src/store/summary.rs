//! One log entry (stock's or ours) → one result object as SPEC.md defines it.

use serde::Serialize;

/// A recorded test as the HTTP API, websocket and CSV show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestResult {
    /// The iperf3 port the test ran on.
    pub port: u16,
    /// Unix seconds when the test's control connection was accepted.
    pub timestamp: i64,
    /// The client's `--extra-data`.
    pub name: Option<String>,
    /// The client's `--title`.
    pub title: Option<String>,
    /// The client's address as a person reads it (IPv4-mapped shown as IPv4).
    pub client: Option<String>,
    /// `"TCP"` or `"UDP"`.
    pub protocol: String,
    /// Seconds the test ran (measured), else the requested duration.
    pub duration: f64,
    /// Parallel streams (`-P`).
    pub streams: u32,
    /// `-R`.
    pub reverse: bool,
    /// `--bidir`.
    pub bidir: bool,
    /// What the server sent (server → client), bits/s; `None` if that direction did not run.
    pub send_bps: Option<f64>,
    /// What the server received (client → server), bits/s; `None` if that direction did not run.
    pub receive_bps: Option<f64>,
    /// Bytes the server sent.
    pub bytes_sent: u64,
    /// Bytes the server received.
    pub bytes_received: u64,
    /// TCP retransmissions of the server's sending streams.
    pub retransmits: Option<u64>,
    /// UDP jitter (ms) of the received direction.
    pub jitter_ms: Option<f64>,
    /// UDP loss (%) of the received direction.
    pub lost_percent: Option<f64>,
    /// The entry's `error`, if the test failed or was cut short.
    pub error: Option<String>,
}

/// Summarises one log entry of `port`. `None` for entries that never got as
/// far as starting a test (e.g. a port scan that sent no parameters).
pub fn summarize(port: u16, entry: &serde_json::Value) -> Option<TestResult> {
    let _ = (port, entry);
    todo!()
}
