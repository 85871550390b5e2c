//! The dashboard's HTTP side: warp routes, the embedded frontend, the
//! websocket, CSV export and metrics.
//!
//! Laid out like warp's own examples: [`filters`] has one function per route
//! (method and path in its doc line), [`handlers`] the async functions that
//! answer, [`models`] the serde types of the API. Beside them: [`assets`] (the
//! embedded `web/` directory), [`export`] (CSV, pure functions), [`metrics`]
//! (the Prometheus exposition), [`probe`] (`GET /probe`, the box testing
//! a target for Prometheus), [`scheduled`] (`--probe-every`), [`download`] (whole-history exports, CSV and
//! JSON, streamed off the async workers), [`history`] (a test's detail
//! answer), [`origin`] (which `Host` and `Origin` are ours), [`sessions`]
//! (the bound on live websockets), [`ws`] (one websocket session),
//! [`ndt7`] (the ndt7 speed test's routes and websocket sessions), [`nq`]
//! (the responsiveness test's endpoints), [`serve`] (the accept loop of the
//! plain and the HTTPS listener) and `tls` (the HTTPS certificate and
//! settings, with the `https` feature). This module binds the sockets;
//! the server runs until shutdown, with bounds: at
//! most [`MAX_CONNECTIONS`] connections, [`MAX_WEBSOCKETS`] websocket
//! sessions, [`MAX_EXPORTS`] exports and [`MAX_DETAILS`] detail answers at
//! once, a deadline on every request's header (which also
//! closes idle keep-alive connections) and on every write ([`deadline`]).

pub mod assets;
pub mod compress;
pub mod deadline;
pub mod devices;
pub mod download;
pub mod export;
pub mod filters;
pub mod handlers;
pub mod history;
pub mod latency;
pub mod metrics;
pub mod models;
pub mod ndt7;
pub mod ndt7_raw;
pub mod ndt7_sendfile;
pub mod nq;
pub mod origin;
pub mod probe;
pub mod scheduled;
pub mod serve;
pub mod sessions;
#[cfg(feature = "https")]
pub mod tls;
pub mod ws;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use socket2::{Domain, Protocol, Socket, Type};
use tokio_util::task::TaskTracker;

use crate::config::{Ndt7Settings, NqSettings};
use crate::config::{DEFAULT_HTTPS_PORT, DEFAULT_HTTP_PORT};
use crate::forward::Forwarder;
use crate::health::HealthProbe;
use crate::hub::Hub;
use crate::overlap::Overlaps;
use crate::send_method::SendMethod;
use crate::shutdown::Shutdown;

pub use crate::config::{HttpSettings, HEADER_TIMEOUT, WRITE_TIMEOUT};
pub use download::MAX_EXPORTS;
pub use filters::routes;
pub use history::MAX_DETAILS;
pub use serve::{serve_all, TlsListener};
pub use sessions::{MAX_WEBSOCKETS, PER_SOURCE};

/// How long shutdown waits for open HTTP connections and websocket sessions
/// before it stops waiting.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// HTTP connections served at once; one more is closed as soon as it is
/// accepted (a page needs a handful; this bounds the memory of many).
pub const MAX_CONNECTIONS: usize = 256;

/// What every handler needs: the hub, the shutdown token (websocket sessions
/// end on it), the tracker of websocket sessions (shutdown waits for them)
/// and the dashboard's bounds and settings.
#[derive(Clone)]
pub struct Context {
    /// The live state.
    pub hub: Arc<Hub>,
    /// Fires when the program shuts down.
    pub shutdown: Shutdown,
    /// Running websocket sessions.
    pub sessions: TaskTracker,
    /// The live websocket sessions and who they make room for.
    pub websockets: Arc<sessions::Sessions>,
    /// Exports streaming now, CSV or JSON (at most [`MAX_EXPORTS`]).
    pub exports: Arc<Semaphore>,
    /// Detail answers being read or sent (at most [`MAX_DETAILS`]).
    pub details: Arc<Semaphore>,
    /// The names (besides IP literals and `localhost`) `Host` may carry.
    pub hosts: origin::HostNames,
    /// The token `POST /api/clear` requires, if any.
    pub clear_token: Option<Arc<str>>,
    /// The deadline on a request's header.
    pub header_timeout: Duration,
    /// The deadline on a write that makes no progress.
    pub write_timeout: Duration,
    /// How often websocket clients are pinged.
    pub ws_ping: Duration,
    /// The ndt7 speed test's settings.
    pub ndt7: Ndt7Settings,
    /// Free ndt7 subtest slots.
    pub ndt7_slots: Arc<Semaphore>,
    /// Speed-test runs and their latency sockets.
    pub latency: Arc<latency::Latency>,
    /// The responsiveness endpoints' settings.
    pub nq: NqSettings,
    /// Free slots for their large downloads and uploads.
    pub nq_slots: Arc<Semaphore>,
    /// Tests moving data box-wide (shared with the iperf3 ports).
    pub overlaps: Arc<Overlaps>,
    /// What `GET /metrics` shows, kept up to date by the hub.
    pub metrics: Arc<metrics::Metrics>,
    /// The forwarding of recorded tests, when `--forward` is given.
    pub forward: Option<Arc<Forwarder>>,
    /// `GET /probe`, when `--probe-allow` names targets.
    pub probes: Option<Arc<probe::Probes>>,
    /// How `-R` tests send now (the calibration's choice): ndt7 downloads
    /// on plain connections send their payload the same way.
    pub send_method: Arc<dyn Fn() -> SendMethod + Send + Sync>,
}

/// The connection a request arrived on, as a request extension: what the
/// ndt7 routes need beyond the request (addresses, and the socket for
/// `TCP_INFO`).
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// Our address.
    pub local: SocketAddr,
    /// A duplicate of the connection's socket descriptor (closed with the
    /// last request of the connection that holds it).
    pub socket: Arc<OwnedFd>,
    /// Whether it came through the HTTPS listener.
    pub secure: bool,
}

impl Context {
    /// A context with a fresh session tracker and metrics counted from
    /// the hub's history on (the hub reports every test recorded later).
    pub fn new(hub: Arc<Hub>, shutdown: Shutdown) -> Context {
        let defaults = HttpSettings::default();
        let metrics = Arc::new(metrics::Metrics::new(crate::hub::VERSION, health_probe()));
        hub.watch_records(
            |history| metrics.observe_all(history.iter()),
            Box::new(metrics::Observe(Arc::clone(&metrics))),
        );
        Context {
            hub,
            shutdown,
            sessions: TaskTracker::new(),
            websockets: Arc::default(),
            exports: Arc::new(Semaphore::new(MAX_EXPORTS)),
            details: Arc::new(Semaphore::new(MAX_DETAILS)),
            hosts: origin::HostNames::new(crate::sys::hostname().as_deref(), &[]),
            clear_token: None,
            header_timeout: defaults.header_timeout,
            write_timeout: defaults.write_timeout,
            ws_ping: defaults.ws_ping,
            ndt7: Ndt7Settings::default(),
            ndt7_slots: Arc::new(Semaphore::new(Ndt7Settings::default().max_tests)),
            latency: Arc::new(latency::Latency::new(Ndt7Settings::default().max_tests)),
            nq: NqSettings::default(),
            nq_slots: Arc::new(Semaphore::new(NqSettings::default().max_transfers)),
            overlaps: Arc::default(),
            metrics,
            forward: None,
            probes: None,
            send_method: Arc::new(|| SendMethod::Copy),
        }
    }

    /// The same context with probes sending as the iperf3 ports do
    /// (`send`: `--send-method` and the calibration).
    pub fn with_send(mut self, send: Arc<crate::server::calibrate::SendPath>) -> Context {
        self.probes = self.probes.map(|p| p.sending_with(send));
        self
    }

    /// The same context sharing `overlaps` with the iperf3 ports.
    pub fn with_overlaps(mut self, overlaps: Arc<Overlaps>) -> Context {
        self.overlaps = overlaps;
        self
    }

    /// The same context sending ndt7 payload the way `method` says.
    pub fn with_send_method(
        mut self,
        method: Arc<dyn Fn() -> SendMethod + Send + Sync>,
    ) -> Context {
        self.send_method = method;
        self
    }

    /// The same context showing `forward`'s state in `/api/status` and
    /// `/metrics`.
    pub fn with_forward(mut self, forward: Option<Arc<Forwarder>>) -> Context {
        self.forward = forward;
        self
    }

    /// The same context with the settings applied (an empty token is none).
    pub fn with_settings(mut self, settings: &HttpSettings) -> Context {
        self.clear_token = settings
            .clear_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(Arc::from);
        self.header_timeout = settings.header_timeout;
        self.write_timeout = settings.write_timeout;
        self.ws_ping = settings.ws_ping;
        self.hosts = origin::HostNames::new(crate::sys::hostname().as_deref(), &settings.hosts);
        self.ndt7 = settings.ndt7.clone();
        self.ndt7_slots = Arc::new(Semaphore::new(settings.ndt7.max_tests));
        self.latency = Arc::new(latency::Latency::new(settings.ndt7.max_tests));
        self.nq = settings.nq.clone();
        self.nq_slots = Arc::new(Semaphore::new(settings.nq.max_transfers));
        self.probes = probe::Probes::new(&settings.probe, &settings.ndt7.allow);
        self
    }
}

/// Where `/metrics` reads the machine's health: sysfs, or the tree named by
/// `WEBPERF3_SYSFS_ROOT` (a stand-in tree, to try dashboards and alerts on
/// a machine without a Pi's sensors).
fn health_probe() -> HealthProbe {
    match std::env::var_os("WEBPERF3_SYSFS_ROOT") {
        Some(root) if !root.is_empty() => HealthProbe::new(std::path::Path::new(&root)),
        _ => HealthProbe::default(),
    }
}

/// Serves the dashboard on an already-bound listener until `shutdown` fires
/// (no clear token).
pub async fn serve(listener: tokio::net::TcpListener, hub: Arc<Hub>, shutdown: Shutdown) {
    serve_with(listener, Context::new(hub, shutdown)).await;
}

/// Serves the routes over `ctx` on an already-bound listener until its
/// shutdown token fires. Then it stops accepting, closes websockets with a
/// "going away" frame and waits (a bounded time) for open requests and
/// sessions to finish.
pub async fn serve_with(listener: tokio::net::TcpListener, ctx: Context) {
    serve::serve_all(listener, None, ctx).await;
}

/// Binds the HTTPS address as [`bind`] binds the dashboard's (default
/// port 8443).
pub fn bind_https(addr: Option<SocketAddr>) -> std::io::Result<std::net::TcpListener> {
    bind_or_default(addr, DEFAULT_HTTPS_PORT)
}

/// Binds the dashboard address: `addr`, or by default `[::]:8080`
/// dual-stack, falling back to `0.0.0.0:8080`.
///
/// The listener is non-blocking, ready for `tokio::net::TcpListener::from_std`.
/// An IPv6 address is bound with `IPV6_V6ONLY` off, so `[::]:PORT` also
/// accepts IPv4 clients.
pub fn bind(addr: Option<SocketAddr>) -> std::io::Result<std::net::TcpListener> {
    bind_or_default(addr, DEFAULT_HTTP_PORT)
}

fn bind_or_default(addr: Option<SocketAddr>, port: u16) -> std::io::Result<std::net::TcpListener> {
    match addr {
        Some(addr) => bind_one(addr),
        None => bind_one(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)))
            .or_else(|_| bind_one(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))),
    }
}

fn bind_one(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    // As std does on Unix: a restart may rebind while old connections linger
    // in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_an_ephemeral_port_on_loopback() {
        let l = bind(Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))).unwrap();
        assert_ne!(l.local_addr().unwrap().port(), 0);
    }

    #[test]
    fn ipv6_any_is_dual_stack() {
        let Ok(l) = bind(Some(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)))) else {
            return; // no IPv6 on this machine: nothing to check
        };
        let port = l.local_addr().unwrap().port();
        // An IPv4 client reaches the IPv6 listener.
        std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    }

    #[test]
    fn a_port_in_use_is_an_error() {
        let l = bind(Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))).unwrap();
        assert!(bind(Some(l.local_addr().unwrap())).is_err());
    }
}
