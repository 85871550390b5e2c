//! `GET /metrics`: the Prometheus exposition, written with the Prometheus
//! project's client library (`prometheus-client`), in the Prometheus text
//! format or, when asked for, OpenMetrics.
//!
//! Names follow Prometheus' rules: base units (bytes, seconds, ratios),
//! `_total` on counters, `_info` on the build information. Labels carry only
//! bounded values: the served ports (or `kind="probe"` for the tests the
//! box ran as the client), the protocol (`tcp`, `udp`, `ndt7`, `other`),
//! the direction and the outcome, the forwarding targets the
//! command line names. What a client chose (`--extra-data`, `--title`, its
//! address) is never a label.
//!
//! Counters and the histogram are kept as tests are recorded (the hub calls
//! [`Metrics::observe`]) and start from the history loaded at start-up, so
//! a restart continues the counts instead of dropping them to zero; they go
//! down only when logs are removed from the log directory, which Prometheus
//! treats as any counter reset. Gauges about now (tests running, the
//! machine's health, the forwarding queue) are read when scraped.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{text, EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::forward::TargetStatus;
use crate::health::HealthProbe;
use crate::hub::{PortState, RecordHook, Status, TestResult};

/// The content type of the Prometheus text format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The content type of OpenMetrics text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the throughput histogram, bytes/s: 1, 2.5 and 5 per
/// decade from 1 Mbit/s to 100 Gbit/s.
pub const THROUGHPUT_BUCKETS: [f64; 16] = [
    125e3, 312.5e3, 625e3, 1.25e6, 3.125e6, 6.25e6, 12.5e6, 31.25e6, 62.5e6, 125e6, 312.5e6, 625e6,
    1.25e9, 3.125e9, 6.25e9, 12.5e9,
];

type FloatGauge = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PortLabels {
    port: u16,
}

/// Where a recorded test ran: on a served port (`port="N"`), or as a
/// probe (`kind="probe"`: the box was the client, on no port of its own).
/// A served test's series are the same as before probes were counted.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
enum Origin {
    Port(u16),
    Probe,
}

impl Origin {
    fn of(r: &TestResult) -> Origin {
        match r.kind {
            Some(_) => Origin::Probe,
            None => Origin::Port(r.port),
        }
    }
}

impl EncodeLabelSet for Origin {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        match self {
            Origin::Port(port) => [("port", *port)].encode(encoder),
            Origin::Probe => [("kind", PROBE)].encode(encoder),
        }
    }
}

/// `kind="probe"` after the other labels for a probe; nothing for a
/// served test.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct ProbeKind(bool);

impl EncodeLabelSet for ProbeKind {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        if self.0 {
            [("kind", PROBE)].encode(encoder)
        } else {
            Ok(())
        }
    }
}

/// The `kind` label's value of a probe.
const PROBE: &str = "probe";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TestLabels {
    #[prometheus(flatten)]
    origin: Origin,
    protocol: &'static str,
    direction: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PortDirection {
    port: u16,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OriginDirection {
    #[prometheus(flatten)]
    origin: Origin,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolDirection {
    protocol: &'static str,
    direction: &'static str,
    #[prometheus(flatten)]
    kind: ProbeKind,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: String,
}

/// Every metric, registered once; cheap to share behind an `Arc`.
pub struct Metrics {
    registry: Registry,
    tests: Family<TestLabels, Counter>,
    bytes: Family<OriginDirection, Counter>,
    throughput: Family<ProtocolDirection, Histogram>,
    running: Family<PortLabels, Gauge>,
    last_timestamp: Family<PortLabels, FloatGauge>,
    last_throughput: Family<PortDirection, FloatGauge>,
    last_jitter: Family<PortLabels, FloatGauge>,
    last_lost: Family<PortLabels, FloatGauge>,
    log_error: Gauge,
    temperature: Family<Vec<(String, String)>, FloatGauge>,
    throttled: Family<Vec<(String, String)>, Gauge>,
    forward_queued: Family<TargetLabels, Gauge>,
    forward_bytes: Family<TargetLabels, Gauge>,
    forward_oldest: Family<TargetLabels, FloatGauge>,
    forward_last_error: Family<TargetLabels, FloatGauge>,
    forward_delivered: Family<TargetLabels, Counter>,
    forward_failed: Family<TargetLabels, Counter>,
    forward_dropped: Family<TargetLabels, Counter>,
    forward_rejected: Family<TargetLabels, Counter>,
    forward_dead_letters: Family<TargetLabels, Gauge>,
    health: HealthProbe,
}

/// `protocol` of a result as a bounded label value.
fn protocol_label(protocol: &str) -> &'static str {
    if protocol.eq_ignore_ascii_case("tcp") {
        "tcp"
    } else if protocol.eq_ignore_ascii_case("udp") {
        "udp"
    } else if protocol.eq_ignore_ascii_case("ndt7") {
        "ndt7"
    } else {
        "other"
    }
}

/// Each direction of a test: its label, its rate (bits/s, when it ran and
/// is a usable number) and its bytes.
fn directions(r: &TestResult) -> [(&'static str, Option<f64>, u64); 2] {
    let usable = |bps: Option<f64>| bps.filter(|b| b.is_finite() && *b >= 0.0);
    [
        ("receive", usable(r.receive_bps), r.bytes_received),
        ("send", usable(r.send_bps), r.bytes_sent),
    ]
}

/// Which way a test moved data: `receive` (client to server), `send`
/// (server to client, `-R`) or `bidir`.
pub fn direction_label(result: &TestResult) -> &'static str {
    if result.bidir {
        "bidir"
    } else if result.reverse || (result.receive_bps.is_none() && result.send_bps.is_some()) {
        "send"
    } else {
        "receive"
    }
}

impl Metrics {
    /// Every metric registered, with nothing observed yet; the machine's
    /// health is read through `health`.
    pub fn new(version: &str, health: HealthProbe) -> Metrics {
        let mut registry = Registry::default();
        let info = Info::new(VersionLabels {
            version: version.to_string(),
        });
        registry.register("webperf3_build", "The running webperf3 version", info);
        let m = Metrics {
            registry: Registry::default(),
            tests: Family::default(),
            bytes: Family::default(),
            throughput: Family::new_with_constructor(|| {
                Histogram::new(THROUGHPUT_BUCKETS.iter().copied())
            }),
            running: Family::default(),
            last_timestamp: Family::default(),
            last_throughput: Family::default(),
            last_jitter: Family::default(),
            last_lost: Family::default(),
            log_error: Gauge::default(),
            temperature: Family::default(),
            throttled: Family::default(),
            forward_queued: Family::default(),
            forward_bytes: Family::default(),
            forward_oldest: Family::default(),
            forward_last_error: Family::default(),
            forward_delivered: Family::default(),
            forward_failed: Family::default(),
            forward_dropped: Family::default(),
            forward_rejected: Family::default(),
            forward_dead_letters: Family::default(),
            health,
        };
        let r = &mut registry;
        r.register(
            "webperf3_tests",
            "Tests recorded, by port (or kind=probe for the box's own tests as the client), protocol, direction and outcome (ok, or error when the test failed)",
            m.tests.clone(),
        );
        r.register(
            "webperf3_transferred_bytes",
            "Bytes moved by recorded tests, by port (or kind=probe); receive is client to server, send server to client",
            m.bytes.clone(),
        );
        r.register(
            "webperf3_test_throughput_bytes_per_second",
            "Throughput of each direction of the tests recorded without error",
            m.throughput.clone(),
        );
        r.register(
            "webperf3_test_running",
            "1 while a test runs on the port, else 0",
            m.running.clone(),
        );
        r.register(
            "webperf3_last_test_timestamp_seconds",
            "When the port's latest recorded test started, unix seconds",
            m.last_timestamp.clone(),
        );
        r.register(
            "webperf3_last_test_throughput_bytes_per_second",
            "Throughput of each direction of the port's latest recorded test",
            m.last_throughput.clone(),
        );
        r.register(
            "webperf3_last_test_jitter_seconds",
            "UDP jitter of the port's latest recorded test, when it was UDP",
            m.last_jitter.clone(),
        );
        r.register(
            "webperf3_last_test_lost_ratio",
            "UDP datagrams lost (0 to 1) in the port's latest recorded test, when it was UDP",
            m.last_lost.clone(),
        );
        r.register(
            "webperf3_log_write_error",
            "1 while writing a log file fails, else 0",
            m.log_error.clone(),
        );
        r.register(
            "webperf3_cpu_temperature_celsius",
            "CPU temperature, where the machine reports one",
            m.temperature.clone(),
        );
        r.register(
            "webperf3_throttled",
            "1 while the Raspberry Pi firmware reports throttling, under-voltage or a temperature limit, else 0 (Pi only)",
            m.throttled.clone(),
        );
        r.register(
            "webperf3_forward_queue_tests",
            "Recorded tests waiting to be forwarded, per target",
            m.forward_queued.clone(),
        );
        r.register(
            "webperf3_forward_queue_bytes",
            "Bytes of the forwarding queue on disk, per target",
            m.forward_bytes.clone(),
        );
        r.register(
            "webperf3_forward_oldest_queued_timestamp_seconds",
            "When the oldest waiting test was queued, unix seconds (0 when none waits)",
            m.forward_oldest.clone(),
        );
        r.register(
            "webperf3_forward_last_error_timestamp_seconds",
            "When forwarding to the target last failed, unix seconds (0: never since start)",
            m.forward_last_error.clone(),
        );
        r.register(
            "webperf3_forward_delivered",
            "Tests the target accepted (2xx) since start",
            m.forward_delivered.clone(),
        );
        r.register(
            "webperf3_forward_failed",
            "Delivery attempts that failed since start (error, timeout or non-2xx answer)",
            m.forward_failed.clone(),
        );
        r.register(
            "webperf3_forward_dropped",
            "Queued tests dropped unsent since start: the queue was full or they grew too old",
            m.forward_dropped.clone(),
        );
        r.register(
            "webperf3_forward_rejected",
            "Tests the target refused for good (a 4xx other than 408 and 429) since start, moved to the dead-letter directory",
            m.forward_rejected.clone(),
        );
        r.register(
            "webperf3_forward_dead_letter_tests",
            "Tests in the target's dead-letter directory",
            m.forward_dead_letters.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Counts one recorded test and makes it its port's latest.
    pub fn observe(&self, r: &TestResult) {
        self.observe_all([r.clone()]);
    }

    /// Counts `results` (oldest first) and makes the last of each port its
    /// latest: the start-up history in one pass, added up here and each
    /// labelled metric touched once (a million tests take under a second).
    pub fn observe_all(&self, results: impl IntoIterator<Item = TestResult>) {
        let mut tests: HashMap<TestLabels, u64> = HashMap::new();
        let mut bytes: HashMap<OriginDirection, u64> = HashMap::new();
        let mut histograms: HashMap<ProtocolDirection, Histogram> = HashMap::new();
        let mut latest: BTreeMap<u16, TestResult> = BTreeMap::new();
        for r in results {
            let protocol = protocol_label(&r.protocol);
            let outcome = if r.error.is_some() { "error" } else { "ok" };
            let origin = Origin::of(&r);
            let labels = TestLabels {
                origin,
                protocol,
                direction: direction_label(&r),
                outcome,
            };
            *tests.entry(labels).or_default() += 1;
            for (direction, bps, n) in directions(&r) {
                if n > 0 || bps.is_some() {
                    let key = OriginDirection { origin, direction };
                    *bytes.entry(key).or_default() += n;
                }
                if let (Some(bps), None) = (bps, &r.error) {
                    let key = ProtocolDirection {
                        protocol,
                        direction,
                        kind: ProbeKind(origin == Origin::Probe),
                    };
                    let histogram = match histograms.get(&key) {
                        Some(h) => h,
                        None => {
                            let h = self.throughput.get_or_create_owned(&key);
                            histograms.entry(key).or_insert(h)
                        }
                    };
                    histogram.observe(bps / 8.0);
                }
            }
            // A probe ran on no port of the box: `/probe` answers its
            // latest figures.
            if origin != Origin::Probe {
                latest.insert(r.port, r);
            }
        }
        for (labels, n) in tests {
            self.tests.get_or_create(&labels).inc_by(n);
        }
        for (labels, n) in bytes {
            self.bytes.get_or_create(&labels).inc_by(n);
        }
        for r in latest.values() {
            self.set_latest(r);
        }
    }

    /// Makes `r` its port's latest test.
    fn set_latest(&self, r: &TestResult) {
        let port = r.port;
        for (direction, bps, _) in directions(r) {
            let labels = PortDirection { port, direction };
            match bps {
                Some(bps) => {
                    self.last_throughput.get_or_create(&labels).set(bps / 8.0);
                }
                None => {
                    self.last_throughput.remove(&labels);
                }
            }
        }
        let labels = PortLabels { port };
        // i64 → f64 is exact for any plausible timestamp.
        self.last_timestamp
            .get_or_create(&labels)
            .set(r.timestamp as f64);
        match r.jitter_ms {
            Some(ms) => {
                self.last_jitter.get_or_create(&labels).set(ms / 1000.0);
            }
            None => {
                self.last_jitter.remove(&labels);
            }
        }
        match r.lost_percent {
            Some(pct) => {
                self.last_lost.get_or_create(&labels).set(pct / 100.0);
            }
            None => {
                self.last_lost.remove(&labels);
            }
        }
    }

    /// The exposition as of now: `status` for the ports, `forward` for the
    /// forwarding targets; OpenMetrics (ending in `# EOF`) when `openmetrics`.
    pub fn render(&self, status: &Status, forward: &[TargetStatus], openmetrics: bool) -> String {
        for p in &status.ports {
            let running = i64::from(p.state == PortState::Running);
            self.running
                .get_or_create(&PortLabels { port: p.port })
                .set(running);
        }
        self.log_error.set(i64::from(status.log_error.is_some()));
        let sample = self.health.sample();
        if let Some(t) = sample.temperature {
            self.temperature.get_or_create(&Vec::new()).set(t);
        }
        if let Some(bits) = sample.throttled {
            // The low four bits say "now"; the ones above, "since boot".
            let now = i64::from(bits & 0xf != 0);
            self.throttled.get_or_create(&Vec::new()).set(now);
        }
        for t in forward {
            let labels = TargetLabels {
                target: t.target.clone(),
            };
            let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            self.forward_queued
                .get_or_create(&labels)
                .set(gauge(t.queued));
            self.forward_bytes
                .get_or_create(&labels)
                .set(gauge(t.bytes));
            self.forward_oldest
                .get_or_create(&labels)
                .set(t.oldest_queued.unwrap_or(0) as f64);
            self.forward_last_error
                .get_or_create(&labels)
                .set(t.last_error_at.unwrap_or(0) as f64);
            set_counter(&self.forward_delivered, &labels, t.delivered);
            set_counter(&self.forward_failed, &labels, t.failed);
            set_counter(&self.forward_dropped, &labels, t.dropped);
            set_counter(&self.forward_rejected, &labels, t.rejected);
            self.forward_dead_letters
                .get_or_create(&labels)
                .set(gauge(t.dead_letters));
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = if openmetrics {
            text::encode(&mut out, &self.registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        };
        out
    }
}

/// The metrics on the hub's record path: every recorded test is counted.
pub struct Observe(pub std::sync::Arc<Metrics>);

impl RecordHook for Observe {
    fn after_write(&self, result: Option<&TestResult>, _entry: &serde_json::Value) {
        if let Some(result) = result {
            self.0.observe(result);
        }
    }
}

/// Brings a counter mirrored from elsewhere up to `value` (it never goes down).
fn set_counter(family: &Family<TargetLabels, Counter>, labels: &TargetLabels, value: u64) {
    let counter = family.get_or_create(labels);
    let now = counter.get();
    if value > now {
        counter.inc_by(value - now);
    }
}

/// Whether an `Accept` header asks for OpenMetrics text.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|part| {
            let media = part.split(';').next().unwrap_or("").trim();
            let q_zero = part
                .split(';')
                .skip(1)
                .any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            media.eq_ignore_ascii_case("application/openmetrics-text") && !q_zero
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::PortStatus;

    fn udp(port: u16) -> TestResult {
        TestResult {
            protocol: "UDP".into(),
            receive_bps: Some(8e6),
            bytes_received: 10_000_000,
            jitter_ms: Some(0.5),
            lost_percent: Some(2.0),
            ..crate::history::results_store::tests::result(port, 1_700_000_000)
        }
    }

    fn status() -> Status {
        Status {
            version: "9.9.9".into(),
            ports: vec![PortStatus {
                port: 5201,
                state: PortState::Running,
                client: Some("192.0.2.1".into()),
                name: Some("evil\"name".into()),
                started: None,
                bps: None,
                seconds: None,
                direction: None,
                duration: None,
            }],
            log_error: None,
        }
    }

    #[test]
    fn names_units_and_labels() {
        let m = Metrics::new(
            "9.9.9",
            HealthProbe::new(std::path::Path::new("/nonexistent")),
        );
        m.observe(&TestResult {
            name: Some("alice\"}".into()),
            ..udp(5201)
        });
        let text = m.render(&status(), &[], false);
        assert!(
            text.contains("webperf3_build_info{version=\"9.9.9\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "webperf3_tests_total{port=\"5201\",protocol=\"udp\",direction=\"receive\",outcome=\"ok\"} 1\n"
            ),
            "{text}"
        );
        assert!(text.contains(
            "webperf3_transferred_bytes_total{port=\"5201\",direction=\"receive\"} 10000000\n"
        ));
        assert!(text.contains(
            "webperf3_last_test_throughput_bytes_per_second{port=\"5201\",direction=\"receive\"} 1000000.0\n"
        ), "{text}");
        assert!(text.contains("webperf3_last_test_jitter_seconds{port=\"5201\"} 0.0005\n"));
        assert!(text.contains("webperf3_last_test_lost_ratio{port=\"5201\"} 0.02\n"));
        assert!(text.contains("webperf3_test_running{port=\"5201\"} 1\n"));
        let bucket = "webperf3_test_throughput_bytes_per_second_bucket";
        assert!(text.contains(&format!(
            "{bucket}{{protocol=\"udp\",direction=\"receive\",le=\"625000\"}} 0\n"
        )));
        assert!(text.contains(&format!(
            "{bucket}{{protocol=\"udp\",direction=\"receive\",le=\"1.25e+06\"}} 1\n"
        )));
        assert!(!text.contains("alice") && !text.contains("evil"), "{text}");
        assert!(!text.contains("# EOF"));

        // A TCP test replaces the UDP figures of the port.
        m.observe(&crate::history::results_store::tests::result(
            5201,
            1_700_000_100,
        ));
        let text = m.render(&status(), &[], true);
        assert!(
            !text.contains("webperf3_last_test_jitter_seconds{"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
        assert!(text.contains("# TYPE webperf3_build info\n"), "{text}");
    }

    #[test]
    fn a_probe_counts_with_its_kind_and_leaves_the_ports_alone() {
        let m = Metrics::new(
            "9.9.9",
            HealthProbe::new(std::path::Path::new("/nonexistent")),
        );
        m.observe(&udp(5201));
        let served = m.render(&status(), &[], false);
        m.observe(&TestResult {
            kind: Some("probe"),
            target: Some("192.0.2.9:5201".into()),
            ..crate::history::results_store::tests::result(0, 1_700_000_100)
        });
        let text = m.render(&status(), &[], false);
        for line in [
            "webperf3_tests_total{kind=\"probe\",protocol=\"tcp\",direction=\"receive\",outcome=\"ok\"} 1",
            "webperf3_tests_total{port=\"5201\",protocol=\"udp\",direction=\"receive\",outcome=\"ok\"} 1",
            "webperf3_transferred_bytes_total{port=\"5201\",direction=\"receive\"} 10000000",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        assert!(text.contains("webperf3_transferred_bytes_total{kind=\"probe\",direction="));
        assert!(text.contains("_bucket{protocol=\"tcp\",direction=\"receive\",kind=\"probe\",le="));
        assert!(!text.contains("port=\"0\""), "{text}");
        // The served series are as they were, the port's latest test too.
        let is_probe = |l: &&str| l.contains("kind=\"probe\"");
        let without: Vec<&str> = text.lines().filter(|l| !is_probe(l)).collect();
        assert_eq!(without, served.lines().collect::<Vec<_>>());
    }

    #[test]
    fn the_history_in_one_pass_counts_as_one_by_one() {
        let history: Vec<TestResult> = (0..30)
            .map(|i| {
                let mut r = if i % 3 == 0 {
                    udp(5201 + i % 2)
                } else {
                    crate::history::results_store::tests::result(5201 + i % 2, i64::from(i))
                };
                r.reverse = i % 4 == 0;
                r.error = (i % 5 == 0).then(|| "x".into());
                r
            })
            .collect();
        let probe = || HealthProbe::new(std::path::Path::new("/nonexistent"));
        let (bulk, single) = (Metrics::new("1", probe()), Metrics::new("1", probe()));
        bulk.observe_all(history.iter().cloned());
        history.iter().for_each(|r| single.observe(r));
        // The same samples (a family's series come in no set order).
        let lines = |m: &Metrics| {
            let mut l: Vec<String> = m
                .render(&status(), &[], false)
                .lines()
                .map(str::to_string)
                .collect();
            l.sort();
            l
        };
        assert_eq!(lines(&bulk), lines(&single));
    }

    #[test]
    fn accept_negotiation() {
        assert!(wants_openmetrics(Some(
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
        )));
        assert!(!wants_openmetrics(Some("text/plain")));
        assert!(!wants_openmetrics(Some("application/openmetrics-text;q=0")));
        assert!(!wants_openmetrics(None));
    }
}
