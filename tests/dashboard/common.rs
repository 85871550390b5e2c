//! Helpers of the dashboard tests alone: temp log dirs preloaded with stock
//! iperf3 logs, a hub and routes over them. What the engine tests and
//! benches share with them (finding Chromium among it) is in
//! `tests/support`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use webperf3::files::log_dir::LogDir;
use webperf3::http::Context;
use webperf3::hub::Hub;
use webperf3::json::Json;
use webperf3::shutdown::Shutdown;

use crate::support::logs::entry_texts;

/// Port the fixtures are loaded on, and the second served port.
pub const P1: u16 = 5201;
pub const P2: u16 = 5202;

/// A log written by stock iperf3 3.12 over loopback: five tests (alice,
/// bob `-R -T kitchen`, `=1+1` UDP, carol `--bidir`, alice `-P 2`) and the
/// server's "interrupt" entry when it was stopped.
pub const STOCK: &str = include_str!("fixtures/stock-3.12.json");
/// Names of the tests in [`STOCK`], in order.
pub const STOCK_NAMES: [&str; 5] = ["alice", "bob", "=1+1", "carol", "alice"];
/// One stock test whose name is markup meant to run script.
pub const XSS: &str = include_str!("fixtures/xss-3.12.json");
/// The name [`XSS`] carries.
pub const XSS_NAME: &str = "<img src=x onerror=\"document.title='pwned'\">";

/// The first entry of a stock log with its `extra_data` replaced by `name`
/// (JSON-escaped as the log would have it), as the engine hands it over.
pub fn entry_named(log: &str, name: &str) -> Json {
    let first = entry_texts(log).remove(0);
    let start = first
        .find("\t\"extra_data\":\t")
        .expect("fixture has extra_data");
    let end = first[start..].find('\n').unwrap() + start;
    let value = serde_json::to_string(name).unwrap();
    let text = format!(
        "{}\t\"extra_data\":\t{value}{}",
        &first[..start],
        &first[end..]
    );
    serde_json::from_str(&text).unwrap()
}

/// A temp log dir, the hub loaded from it, and the routes over the hub.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub hub: Arc<Hub>,
    pub shutdown: Shutdown,
    pub ctx: Context,
    /// Stops the served dashboard and websocket sessions when the env goes.
    _stop: tokio_util::sync::DropGuard,
}

impl Env {
    /// Writes `logs` (port, text) into a fresh dir and loads it for `ports`.
    pub fn with_logs(ports: &[u16], logs: &[(u16, &str)]) -> Env {
        let dir = tempfile::tempdir().unwrap();
        for (port, text) in logs {
            std::fs::write(dir.path().join(format!("port-{port}.json")), text).unwrap();
        }
        Env::open(dir, ports)
    }

    /// An empty log dir serving [`P1`] and [`P2`].
    pub fn empty() -> Env {
        Env::with_logs(&[P1, P2], &[])
    }

    /// [`STOCK`] on [`P1`], nothing on [`P2`].
    pub fn stock() -> Env {
        Env::with_logs(&[P1, P2], &[(P1, STOCK)])
    }

    fn open(dir: tempfile::TempDir, ports: &[u16]) -> Env {
        let logs = LogDir::open(dir.path()).unwrap();
        let loaded = logs.load(ports);
        let hub = Hub::new(logs, loaded.store);
        let shutdown = Shutdown::new();
        let ctx = Context::new(hub.clone(), shutdown.clone());
        let _stop = shutdown.token().clone().drop_guard();
        Env {
            dir,
            hub,
            shutdown,
            ctx,
            _stop,
        }
    }

    /// The same dir loaded afresh, as after a restart.
    pub fn restart(self) -> Env {
        let ports = self.hub.ports();
        let Env { dir, .. } = self;
        Env::open(dir, &ports)
    }

    /// All routes, as the server runs them.
    pub fn routes(
        &self,
    ) -> impl warp::Filter<Extract = (impl warp::Reply,), Error = std::convert::Infallible>
           + Clone
           + 'static {
        webperf3::http::routes(self.ctx.clone())
    }

    /// The log file of `port`.
    pub fn log_path(&self, port: u16) -> PathBuf {
        self.dir.path().join(format!("port-{port}.json"))
    }

    /// Serves the dashboard for real on 127.0.0.1 (ephemeral port); the
    /// server stops when the env's shutdown token fires.
    pub fn serve(&self) -> SocketAddr {
        let listener = webperf3::http::bind(Some(SocketAddr::from(([127, 0, 0, 1], 0)))).unwrap();
        let addr = listener.local_addr().unwrap();
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        tokio::spawn(webperf3::http::serve(
            listener,
            self.hub.clone(),
            self.shutdown.clone(),
        ));
        addr
    }
}

/// Chromium (or Chrome) for the headless browser tests.
pub use crate::support::browser::chromium;

/// Every `verdict.limited_by` the contract names (`client-cpu` only for
/// a probe).
pub const VERDICT_LIMITS: [&str; 8] = [
    "bitrate-target",
    "server-cpu",
    "client-cpu",
    "pi-throttled",
    "receive-window",
    "send-buffer",
    "network",
    "unknown",
];
