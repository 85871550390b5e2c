//! `GET /probe?target=HOST[:PORT]`: one iperf3 test from the box to a
//! target, answered in the Prometheus text format, as the multi-target
//! exporters (`blackbox_exporter`) do. Not an open relay: only targets
//! `--probe-allow` lists (none by default: 404), only for clients inside
//! `--allow` and not asked from another site's page (403), one probe at a
//! time (503; a scrape first waits for the slot while its probe would
//! still fit its timeout; the target's name is resolved only inside that
//! one slot), within a maximum duration and bitrate
//! (400). A probe that ran but failed answers 200 with
//! `webperf3_probe_success 0` and the reason in `X-Webperf3-Probe-Error`;
//! a busy target is tried again while the scrape's timeout allows.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::Semaphore;
use tracing::{info, warn};
use warp::http::StatusCode;
use warp::Reply;

use super::metrics::TEXT_CONTENT_TYPE;
use super::{ConnInfo, Context};
use crate::config::ProbeSettings;
use crate::hub::Hub;
use crate::probe::{self, Outcome};
use crate::protocol::client::{Failure, Limits};
use crate::protocol::policy::AllowList;
use crate::protocol::probe_policy::{self as policy, ProbeRequest, Target};

/// How long resolving a target's name may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// What `GET /probe` needs: its settings, who may ask, the one slot.
#[derive(Debug)]
pub struct Probes {
    settings: ProbeSettings,
    askers: AllowList,
    running: Semaphore,
}

impl Probes {
    /// Probes with `settings` for clients `askers` allows; `None` when no
    /// target is allowed (probes are off).
    pub fn new(settings: &ProbeSettings, askers: &AllowList) -> Option<Arc<Probes>> {
        (!settings.allow.is_empty()).then(|| {
            Arc::new(Probes {
                settings: settings.clone(),
                askers: askers.clone(),
                running: Semaphore::new(1),
            })
        })
    }
}

fn refuse(status: StatusCode, reason: impl Into<String>) -> warp::reply::Response {
    let reason = reason.into();
    warp::reply::with_status(format!("{reason}\n"), status).into_response()
}

/// Answers one `GET /probe`.
pub async fn probe(
    query: Vec<(String, String)>,
    scrape_timeout: Option<String>,
    fetch_site: Option<String>,
    conn: Option<ConnInfo>,
    ctx: Context,
) -> Result<warp::reply::Response, warp::Rejection> {
    if policy::from_another_site(fetch_site.as_deref()) {
        return Ok(refuse(
            StatusCode::FORBIDDEN,
            "a probe is not started from another site's page",
        ));
    }
    let Some(probes) = ctx.probes.clone() else {
        return Ok(refuse(
            StatusCode::NOT_FOUND,
            "probes are off: no target is allowed (start webperf3 with --probe-allow)",
        ));
    };
    let Some(asker) = conn.map(|c| c.peer.ip().to_canonical()) else {
        return Ok(refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no connection details",
        ));
    };
    if !probes.askers.allows(asker) {
        return Ok(refuse(
            StatusCode::FORBIDDEN,
            format!("client {asker} is not in the allowed networks"),
        ));
    }
    let request = match policy::probe_request(&query, probes.settings.limits) {
        Ok(r) => r,
        Err(e) => return Ok(refuse(StatusCode::BAD_REQUEST, e)),
    };
    let begun = Instant::now();
    let deadline = policy::scrape_deadline(scrape_timeout.as_deref(), begun);
    if scrape_timeout.is_some() && !policy::fits(request.params.time, begun, deadline) {
        return Ok(refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "a probe of {} s does not fit the scrape timeout of {} s",
                request.params.time,
                scrape_timeout.unwrap_or_default()
            ),
        ));
    }
    // Taken before the name is resolved: a resolution runs on a blocking
    // thread that outlives its timeout, so askers must not start them side
    // by side. A scrape (it says its timeout) waits for the slot while its
    // probe would still fit: Prometheus scrapes the targets of one box at
    // fixed offsets, and two close ones would otherwise fail every time.
    let waited = match scrape_timeout {
        Some(_) => {
            let latest = policy::latest_start(request.params.time, deadline);
            tokio::time::timeout_at(latest.into(), probes.running.acquire())
                .await
                .ok()
                .and_then(Result::ok)
        }
        None => probes.running.try_acquire().ok(),
    };
    let Some(_slot) = waited else {
        return Ok(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy: another probe is running; try again shortly",
        ));
    };
    let addr = match probes.resolve(&request).await {
        Ok(addr) => addr,
        Err(refused) => return Ok(refuse(refused.0, refused.1)),
    };
    let target = &request.target;
    let outcome = run_with_retries(
        addr,
        &target.host,
        &request,
        deadline,
        probes.settings.limits.max_duration,
    )
    .await;
    let elapsed = begun.elapsed().as_secs_f64();
    record(&ctx.hub, target, &outcome, elapsed).await;
    let mut reply =
        warp::reply::with_header(render(&outcome, elapsed), "content-type", TEXT_CONTENT_TYPE)
            .into_response();
    if let Some(f) = &outcome.failure {
        if let Ok(v) = f.to_string().parse() {
            reply.headers_mut().insert("x-webperf3-probe-error", v);
        }
    }
    Ok(reply)
}

/// Records a probe's entry in the probes' log (as every test is) and
/// says how it went in the box's log.
pub async fn record(hub: &Arc<Hub>, target: &Target, outcome: &Outcome, elapsed: f64) {
    let (hub, mut entry) = (Arc::clone(hub), outcome.entry.clone());
    let _ = tokio::task::spawn_blocking(move || {
        crate::link::note(&mut entry);
        hub.record_probe(&entry);
    })
    .await;
    match &outcome.failure {
        None => info!(target = %target, seconds = elapsed, "probe done"),
        Some(f) => warn!(target = %target, reason = %f, "probe failed"),
    }
}

impl Probes {
    /// The address of the request's target, if its name resolves and it
    /// is inside `--probe-allow`; else the status and why.
    pub async fn resolve(
        &self,
        request: &ProbeRequest,
    ) -> Result<SocketAddr, (StatusCode, String)> {
        let target = &request.target;
        let resolved = tokio::time::timeout(
            RESOLVE_TIMEOUT,
            tokio::net::lookup_host((target.host.as_str(), target.port)),
        )
        .await;
        let addr = match resolved {
            Ok(Ok(mut addrs)) => addrs.next(),
            _ => None,
        };
        let Some(addr) = addr else {
            let why = format!("the target {target} could not be resolved");
            return Err((StatusCode::BAD_REQUEST, why));
        };
        if !self.settings.allow.allows(target, addr.ip().to_canonical()) {
            let why = format!(
                "the target {target} ({}) is not in --probe-allow",
                addr.ip()
            );
            return Err((StatusCode::FORBIDDEN, why));
        }
        Ok(addr)
    }

    /// The schedules of `--probe-every`, and the box's name.
    pub fn schedules(&self) -> (&[crate::protocol::probe_schedule::Schedule], &str) {
        (&self.settings.every, &self.settings.box_name)
    }

    /// Waits for the one probe slot (a scheduled probe waits for a
    /// `/probe` one rather than failing).
    pub async fn slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.running.acquire().await.ok()
    }

    /// The longest a probe may run.
    pub fn max_duration(&self) -> u32 {
        self.settings.limits.max_duration
    }
}

/// Runs the probe, trying a busy target again while the deadline allows.
pub async fn run_with_retries(
    addr: SocketAddr,
    host: &str,
    request: &ProbeRequest,
    deadline: Instant,
    max_duration: u32,
) -> Outcome {
    let limits = Limits {
        reply: Duration::from_secs(5),
        read_start: Duration::from_secs(5),
        streams: Duration::from_secs(5),
        rcv_timeout: Duration::from_secs(10),
        max_run: Duration::from_secs(u64::from(max_duration)),
    };
    loop {
        let outcome = probe::run_named(addr, host, request.params.clone(), limits).await;
        let busy = outcome.failure.as_ref().is_some_and(Failure::is_busy);
        match policy::retry_busy(request.params.time, Instant::now(), deadline) {
            Some(at) if busy => tokio::time::sleep_until(at.into()).await,
            _ => return outcome,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// The Prometheus text of a probe's outcome; `elapsed` is the whole
/// probe's time, retries included.
pub fn render(out: &Outcome, elapsed: f64) -> String {
    let mut registry = Registry::default();
    let gauge = |registry: &mut Registry, name: &str, help: &str, value: f64| {
        let g = FloatGauge::default();
        g.set(value);
        registry.register(name, help, g);
    };
    let ok = out.failure.is_none();
    gauge(
        &mut registry,
        "webperf3_probe_success",
        "Whether the probe's test ended cleanly (1) or failed (0)",
        if ok { 1.0 } else { 0.0 },
    );
    gauge(
        &mut registry,
        "webperf3_probe_duration_seconds",
        "How long the probe took, retries included",
        elapsed,
    );
    gauge(
        &mut registry,
        "webperf3_probe_sent_bytes",
        "Bytes the box sent to the target after the omit period",
        out.sent.bytes as f64,
    );
    gauge(
        &mut registry,
        "webperf3_probe_received_bytes",
        "Bytes the box received from the target after the omit period",
        out.received.bytes as f64,
    );
    let per_direction = |registry: &mut Registry,
                         name: &str,
                         help: &str,
                         values: &[(&'static str, Option<f64>)]| {
        let family = Family::<DirectionLabels, FloatGauge>::default();
        let mut any = false;
        for (direction, value) in values {
            if let Some(v) = value {
                family.get_or_create(&DirectionLabels { direction }).set(*v);
                any = true;
            }
        }
        if any {
            registry.register(name, help, family);
        }
    };
    let p = &out.params;
    let rate = |d: &probe::Direction, ran: bool| {
        (ran && d.seconds > 0.0).then(|| d.bytes as f64 / d.seconds)
    };
    let box_sends = !p.reverse;
    let box_receives = p.reverse || p.bidirectional;
    per_direction(
        &mut registry,
        "webperf3_probe_throughput_bytes_per_second",
        "Throughput of the probe by direction: send (box to target), receive (target to box)",
        &[
            ("send", rate(&out.sent, ok && box_sends)),
            ("receive", rate(&out.received, ok && box_receives)),
        ],
    );
    if let Some(r) = out.retransmits {
        gauge(
            &mut registry,
            "webperf3_probe_retransmits",
            "TCP retransmissions of the box's sending streams",
            r as f64,
        );
    }
    if let Some(rtt) = out.rtt {
        gauge(
            &mut registry,
            "webperf3_probe_rtt_seconds",
            "Mean smoothed RTT of the box's sending TCP streams at the end",
            rtt,
        );
    }
    let (udp_send, udp_receive) = out.udp;
    per_direction(
        &mut registry,
        "webperf3_probe_lost_ratio",
        "UDP datagrams lost, as a share of those sent, by direction",
        &[
            ("send", udp_send.map(|u| u.lost_ratio())),
            ("receive", udp_receive.map(|u| u.lost_ratio())),
        ],
    );
    per_direction(
        &mut registry,
        "webperf3_probe_jitter_seconds",
        "UDP jitter as the receiver measured it, by direction",
        &[
            ("send", udp_send.map(|u| u.jitter)),
            ("receive", udp_receive.map(|u| u.jitter)),
        ],
    );
    let mut body = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_text::encode(&mut body, &registry);
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{Direction, UdpFigures};
    use crate::protocol::params::{Protocol, TestParams};

    fn outcome(params: TestParams, failure: Option<Failure>) -> Outcome {
        Outcome {
            params,
            failure,
            sent: Direction {
                bytes: 1000,
                seconds: 2.0,
            },
            received: Direction::default(),
            retransmits: None,
            rtt: None,
            udp: (None, None),
            server: None,
            elapsed: 2.5,
            entry: crate::report::json::Json::obj(),
        }
    }

    #[test]
    fn a_probe_is_rendered_with_the_metrics_it_has() {
        let udp = TestParams::client_default(Protocol::Udp);
        let mut out = outcome(udp, None);
        out.udp.0 = Some(UdpFigures {
            lost: 5,
            packets: 100,
            jitter: 0.002,
        });
        let text = render(&out, 3.0);
        for line in [
            "webperf3_probe_success 1.0",
            "webperf3_probe_duration_seconds 3.0",
            "webperf3_probe_sent_bytes 1000.0",
            "webperf3_probe_received_bytes 0.0",
            "webperf3_probe_throughput_bytes_per_second{direction=\"send\"} 500.0",
            "webperf3_probe_lost_ratio{direction=\"send\"} 0.05",
            "webperf3_probe_jitter_seconds{direction=\"send\"} 0.002",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        // What did not run is left out rather than shown as zero.
        assert!(!text.contains("direction=\"receive\""));
        assert!(!text.contains("webperf3_probe_rtt_seconds"));

        let failed = outcome(
            TestParams::client_default(Protocol::Tcp),
            Some(Failure::Busy),
        );
        let text = render(&failed, 1.0);
        assert!(text.lines().any(|l| l == "webperf3_probe_success 0.0"));
        assert!(!text.contains("webperf3_probe_throughput"));
    }
}
