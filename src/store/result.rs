//! The result object of the README's "Dashboard and HTTP API": one
//! recorded test as the HTTP API, the websocket and the CSV show it.
//! Derived from a log entry by the summary; shared by the store, the hub
//! and the web side.

use serde::Serialize;

use super::grade::{self, GoodFor};
use super::limit::LimitedBy;

/// A recorded test as the HTTP API, websocket and CSV show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestResult {
    /// Names this test on the box, the same after a restart: derived from
    /// where the test sits in its log (see `store::log`). Empty until the
    /// test has been written.
    pub id: String,
    /// The iperf3 port the test ran on (the dashboard's port for ndt7, 0
    /// for a probe: its port is the target's).
    pub port: u16,
    /// Unix seconds when the test's control connection was accepted.
    pub timestamp: i64,
    /// The client's `--extra-data`.
    pub name: Option<String>,
    /// The client's `--title`.
    pub title: Option<String>,
    /// The client's address as a person reads it (IPv4-mapped shown as IPv4).
    pub client: Option<String>,
    /// `"TCP"`, `"UDP"` or `"ndt7"`.
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
    /// UDP jitter (ms) of the received direction; for an ndt7 run, the
    /// variation of its idle round trips.
    pub jitter_ms: Option<f64>,
    /// UDP loss (%) of the received direction.
    pub lost_percent: Option<f64>,
    /// The smallest RTT the server's TCP saw, ms (ndt7; `None` where not measured).
    pub min_rtt_ms: Option<f64>,
    /// The entry's `error`, if the test failed or was cut short.
    pub error: Option<String>,
    /// Whether another test on the box moved data at the same time (they
    /// shared the link); `None` for logs that do not say (stock's).
    pub overlapped: Option<bool>,
    /// The server's CPU use during the test, %.
    pub server_cpu_percent: Option<f64>,
    /// The highest CPU temperature seen during the test, °C (where the
    /// machine reports one).
    pub cpu_temp_c: Option<f64>,
    /// Pi throttling seen during the test (e.g. `"under-voltage"`); `None`
    /// where the machine has no such flags.
    pub throttled: Option<Vec<String>>,
    /// `"probe"` for a test the box ran as the client (`/probe`,
    /// `--probe-every`); absent for the tests it served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// A probe's target, `host:port` (`[v6]:port`), the server of its
    /// test (the figures read as for any test); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The client's `-b` for all its streams together (per direction),
    /// bits/s; `None` without one (TCP at full speed, ndt7).
    pub target_bps: Option<f64>,
    /// The speed of the box's network interface the test ran on, bits/s;
    /// absent where not known (loopback, virtual interfaces, Wi-Fi, logs
    /// that do not say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_bps: Option<f64>,
    /// What most likely capped the test (the verdict's kind); `None` where
    /// it was not judged.
    pub limited_by: Option<LimitedBy>,
    /// One plain sentence: what the test reached and what limited it.
    /// Built from the other fields when a result is shown.
    pub headline: String,
    /// Latency under load, its grade and what the link is good for.
    #[serde(flatten)]
    pub latency: Latency,
}

/// The latency of a test under load and what it means (a speed-test run,
/// or a TCP iperf3 test where its RTT was measured): flattened into the
/// result object. Every figure is `None` where not measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Median round trip before any load, ms (a run's idle phase).
    pub latency_idle_ms: Option<f64>,
    /// Median round trip while data flowed to the client, ms.
    pub latency_down_ms: Option<f64>,
    /// Median round trip while data flowed from the client, ms.
    pub latency_up_ms: Option<f64>,
    /// The bufferbloat grade of the increase of loaded latency over idle
    /// (or over the test's minimum RTT): `"A+"` … `"F"`.
    pub grade: Option<&'static str>,
    /// What the link is good for (Cloudflare's AIM classes).
    pub good_for: Option<GoodFor>,
    /// The speed-test run the test belongs to (the page's `run` metadata):
    /// what ties a run's subtests together; not shown.
    #[serde(skip)]
    pub run: Option<String>,
}

impl TestResult {
    /// Fills `grade` and `good_for` from the figures the result holds:
    /// the increase of loaded latency over the idle latency (else the
    /// test's minimum RTT). For ndt7, `jitter_ms` is the idle jitter.
    pub fn graded(mut self) -> TestResult {
        let l = &self.latency;
        let base = l.latency_idle_ms.or(self.min_rtt_ms);
        let increase = grade::increase(base, l.latency_down_ms, l.latency_up_ms);
        self.latency.grade = increase.map(grade::grade);
        let ndt7 = self.protocol == crate::store::ndt7_log::PROTOCOL;
        self.latency.good_for = grade::good_for(&grade::Inputs {
            latency_ms: base,
            jitter_ms: self.jitter_ms.filter(|_| ndt7),
            loss: None,
            download_bps: self.send_bps,
            increase_ms: increase,
        });
        self
    }
}
