//! Wires the pieces together: [`run_main`] binds what the configuration
//! names, loads the logs and runs everything until SIGINT/SIGTERM; [`serve`]
//! runs already-bound listeners until a cancellation token fires (what tests
//! use).

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::task::TaskTracker;
#[cfg(feature = "https")]
use tracing::{debug, info};
use tracing::{error, warn};

#[cfg(feature = "https")]
use crate::config::DEFAULT_HTTPS_PORT;
use crate::config::{Config, HttpSettings, HttpsConfig, Padding, DEFAULT_HTTP_PORT};
use crate::files::log_dir::LogDir;
use crate::forward::Forwarder;
use crate::hub::{Hub, RecordHook, TestResult};
use crate::protocol::errors;
use crate::server::auth::Authenticator;
use crate::server::calibrate::SendPath;
use crate::server::listen::{self, ListenOpts};
use crate::server::port::{self, PortSettings};
use crate::shutdown::Shutdown;

/// How long shutdown waits for running tests to write their log entries.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Listeners bound for a run.
pub struct Bound {
    /// One TCP listener per iperf3 port, in port order.
    pub iperf: Vec<TcpListener>,
    /// The dashboard's listener.
    pub http: TcpListener,
    /// The HTTPS listener, if there is one.
    pub https: Option<HttpsBound>,
}

/// The HTTPS listener, bound, and its TLS settings.
pub struct HttpsBound {
    /// The bound socket.
    pub listener: TcpListener,
    /// The certificate and ALPN.
    #[cfg(feature = "https")]
    pub tls: Arc<rustls::ServerConfig>,
}

impl Bound {
    /// The iperf3 ports actually bound, in order (port 0 in the
    /// configuration becomes the kernel's choice here).
    pub fn iperf_ports(&self) -> std::io::Result<Vec<u16>> {
        self.iperf
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect()
    }
}

/// Binds every iperf3 port and the dashboard address.
pub fn bind(config: &Config) -> anyhow::Result<Bound> {
    let ip = config.bind.unwrap_or_else(listen::default_bind);
    let iperf = config
        .ports
        .iter()
        .map(|&port| {
            let addr = SocketAddr::new(ip, port);
            listen::tcp_listener(addr, ListenOpts::default())
                .with_context(|| format!("cannot listen on iperf3 port {port} ({addr})"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let http = crate::http::bind(config.http).with_context(|| match config.http {
        Some(addr) => format!("cannot listen on dashboard address {addr}"),
        None => format!("cannot listen on dashboard port {DEFAULT_HTTP_PORT}"),
    })?;
    let https = match &config.https {
        Some(https) => bind_https(https, &config.log_dir)?,
        None => None,
    };
    Ok(Bound { iperf, http, https })
}

/// Binds the HTTPS address and readies its certificate. The default port
/// taken only warns: the box then serves plain HTTP as before.
#[cfg_attr(not(feature = "https"), allow(unused_variables))]
fn bind_https(
    https: &HttpsConfig,
    log_dir: &std::path::Path,
) -> anyhow::Result<Option<HttpsBound>> {
    #[cfg(not(feature = "https"))]
    return Ok(None);
    #[cfg(feature = "https")]
    {
        let listener = match crate::http::bind_https(https.addr) {
            Ok(listener) => listener,
            Err(e) if https.addr.is_none() => {
                warn!(port = DEFAULT_HTTPS_PORT, error = %e,
                    "https: the default port is not free; no HTTPS (choose one with --https)");
                return Ok(None);
            }
            Err(e) => {
                return Err(e).with_context(|| match https.addr {
                    Some(addr) => format!("cannot listen on HTTPS address {addr}"),
                    None => format!("cannot listen on HTTPS port {DEFAULT_HTTPS_PORT}"),
                })
            }
        };
        let (tls, origin) = crate::http::tls::server_config(https.cert.as_ref(), log_dir)
            .context("HTTPS cannot be set up")?;
        match origin {
            crate::http::tls::Origin::Made(path, names) => info!(
                path = %path.display(), names = ?names,
                "https: made a self-signed certificate"
            ),
            crate::http::tls::Origin::Kept(path) => {
                debug!(path = %path.display(), "https: self-signed certificate reused");
            }
            crate::http::tls::Origin::Given => {}
        }
        Ok(Some(HttpsBound { listener, tls }))
    }
}

/// How many of the latest tests are searched for a record that a stop
/// interrupted between its forwarding note and its log write.
const RECOVERY_WINDOW: usize = 1000;

/// Runs the iperf3 ports and the dashboard on bound listeners until
/// `shutdown` fires, then lets running tests end cleanly (they are told the
/// server is terminating, with its reason in their log entries) and waits
/// for them, at most a few seconds.
pub async fn serve(
    bound: Bound,
    hub: Arc<Hub>,
    settings: PortSettings,
    http_settings: HttpSettings,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    serve_forwarding(bound, hub, settings, http_settings, None, shutdown).await
}

/// [`serve`], also forwarding every recorded test with `forward`: it is
/// queued on the hub's record path and sent by tasks of its own.
pub async fn serve_forwarding(
    bound: Bound,
    hub: Arc<Hub>,
    settings: PortSettings,
    http_settings: HttpSettings,
    forward: Option<Arc<Forwarder>>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let tasks = TaskTracker::new();
    if let Some(forward) = &forward {
        hub.watch_records(
            |history| {
                // A record a stop interrupted is among the latest few.
                let from = history.len().saturating_sub(RECOVERY_WINDOW);
                let recent: Vec<_> = (from..history.len()).map(|i| history.result(i)).collect();
                forward.recover(&recent)
            },
            Box::new(Forwarding(Arc::clone(forward))),
        );
        tasks.spawn(Arc::clone(forward).run(shutdown.clone()));
    }
    let ports = bound.iperf_ports()?;
    let overlaps = Arc::clone(&settings.overlaps);
    let (send, copy) = (Arc::clone(&settings.send), settings.copy);
    for (listener, number) in bound.iperf.into_iter().zip(ports) {
        let fut = port::run(
            listener,
            Arc::clone(&hub),
            settings.clone(),
            shutdown.clone(),
            tasks.clone(),
        );
        tasks.spawn(async move {
            if let Err(e) = fut.await {
                error!(port = number, error = %e, "iperf3 port stopped");
            }
        });
    }
    bound.http.set_nonblocking(true)?;
    let http = tokio::net::TcpListener::from_std(bound.http)?;
    let ctx = crate::http::Context::new(Arc::clone(&hub), shutdown.clone())
        .with_settings(&http_settings)
        .with_overlaps(overlaps)
        .with_send(Arc::clone(&settings.send))
        .with_send_method(Arc::new(move || send.choice(copy, false).method))
        .with_forward(forward);
    if let Some(probes) = ctx.probes.clone() {
        let run = crate::http::scheduled::run_all(probes, Arc::clone(&hub), shutdown.clone());
        tasks.spawn(run);
    }
    let https = match bound.https {
        #[cfg(feature = "https")]
        Some(https) => {
            https.listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(https.listener)?;
            Some(crate::http::TlsListener::new(listener, https.tls))
        }
        _ => None,
    };
    tasks.spawn(crate::http::serve_all(http, https, ctx));
    tasks.spawn(release_memory_now_and_then(shutdown.clone()));
    shutdown.triggered().await;
    tasks.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tasks.wait())
        .await
        .is_err()
    {
        warn!("some tests did not end within {SHUTDOWN_GRACE:?}");
    }
    Ok(())
}

/// The forwarder on the hub's record path: a test is noted before its log
/// write and queued after it, before it is announced.
struct Forwarding(Arc<Forwarder>);

impl RecordHook for Forwarding {
    fn before_write(&self, port: u16, entry: &serde_json::Value) {
        self.0.writing(port, entry);
    }

    fn after_write(&self, result: Option<&TestResult>, entry: &serde_json::Value) {
        self.0.recorded(result, entry);
    }
}

/// Runs the program for `config` until SIGINT/SIGTERM.
pub fn run_main(config: Config) -> anyhow::Result<()> {
    // A file size limit (ulimit -f) must make a log write fail, which is
    // reported, rather than kill the server with SIGXFSZ.
    // SAFETY: setting a signal's disposition to "ignore" has no handler to
    // race with; it is done before any thread is started.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    if let Err(e) = crate::sys::raise_open_files_limit() {
        warn!(error = %e, "could not raise the open files limit");
    }
    let logs = LogDir::open(&config.log_dir)
        .with_context(|| format!("log directory {} is not usable", config.log_dir.display()))?
        .with_retention(config.retention);
    let auth = match &config.auth {
        Some(c) => Some(Arc::new(
            Authenticator::load(c).context("authentication cannot be set up")?,
        )),
        None => None,
    };
    let host = config.forward.host.clone().unwrap_or_else(host_name);
    let mut config = config;
    config.http_settings.probe.box_name.clone_from(&host);
    let forward = Forwarder::open(&config.forward, logs.dir(), host)
        .context("forwarding cannot be set up")?;
    let bound = bind(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // Handlers first: from the start-up line on, a signal means a clean stop.
        let signals = Signals::install()?;
        let ports = bound.iperf_ports()?;
        let loaded = logs.load(&ports);
        for w in &loaded.warnings {
            warn!("{w}");
        }
        let http_addr = bound.http.local_addr()?;
        let https_addr = match &bound.https {
            Some(https) => format!(", https://{}", https.listener.local_addr()?),
            None => String::new(),
        };
        eprintln!(
            "webperf3 {}: iperf3 on port{} {}, dashboard on http://{}{}, {} tests loaded from {}{}",
            env!("CARGO_PKG_VERSION"),
            if ports.len() > 1 { "s" } else { "" },
            port_range(&ports),
            http_addr,
            https_addr,
            loaded.store.len(),
            config.log_dir.display(),
            auth_summary(auth.as_deref()),
        );
        let hub = Hub::new(logs, loaded.store);
        let shutdown = Shutdown::new();
        tokio::spawn(signals.wait(shutdown.clone()));
        let settings = PortSettings {
            limits: config.limits,
            max_tests: config.max_tests_per_port,
            policy: config.policy.clone(),
            idle_timeout: config.idle_timeout,
            auth,
            copy: config.copy,
            send: send_path(&config),
            ..PortSettings::default()
        };
        serve_forwarding(
            bound,
            hub,
            settings,
            config.http_settings,
            forward,
            shutdown,
        )
        .await
    })
}

/// The send setting, with its calibration started (read from the log
/// directory, or measured on a thread of its own while ports accept tests).
fn send_path(config: &Config) -> Arc<SendPath> {
    let path = Arc::new(SendPath::new(config.send_method));
    crate::server::calibrate::start(&path, &config.log_dir, config.copy);
    path
}

/// This machine's host name (uname's node name), `localhost` if unknown.
fn host_name() -> String {
    crate::sys::system_info()
        .split(' ')
        .nth(1)
        .filter(|n| !n.is_empty())
        .unwrap_or("localhost")
        .to_string()
}

/// The start-up line's note on authentication.
fn auth_summary(auth: Option<&Authenticator>) -> String {
    match auth {
        None => String::new(),
        Some(a) => format!(
            "; authentication required: {} user{}, {}",
            a.user_count(),
            if a.user_count() == 1 { "" } else { "s" },
            match a.padding() {
                Padding::Oaep => "OAEP padding (iperf3 3.17+ clients)",
                Padding::Pkcs1 => "PKCS#1 v1.5 padding (iperf3 3.7-3.16 clients)",
            }
        ),
    }
}

fn port_range(ports: &[u16]) -> String {
    match (ports.first(), ports.last()) {
        (Some(a), Some(b)) if a != b => format!("{a}-{b}"),
        (Some(a), _) => a.to_string(),
        _ => String::new(),
    }
}

/// SIGTERM, SIGINT and SIGHUP, caught.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the first signal, records it as the shutdown reason and
    /// cancels everything.
    async fn wait(mut self, shutdown: Shutdown) {
        let text = tokio::select! {
            _ = self.term.recv() => errors::SERVER_TERMINATED_TERM,
            _ = self.int.recv() => errors::SERVER_TERMINATED_INT,
            _ = self.hup.recv() => "interrupt - the server has terminated by signal Hangup(1)",
        };
        shutdown.trigger(text);
    }
}

/// How often memory freed after a burst (a flood of connections, a big
/// export) is handed back to the system.
const RELEASE_MEMORY_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Hands freed memory back to the system every [`RELEASE_MEMORY_EVERY`]
/// until shutdown, so the footprint returns near idle after a burst
/// instead of staying at its high-water mark.
async fn release_memory_now_and_then(shutdown: Shutdown) {
    let mut every = tokio::time::interval(RELEASE_MEMORY_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.triggered() => return,
            // On the worker itself: a trim of a small heap takes well under
            // a millisecond, and a blocking-pool thread would outlive it.
            _ = every.tick() => crate::sys::release_free_memory(),
        }
    }
}
