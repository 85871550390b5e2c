//! Helpers shared by the dashboard tests: temp log dirs preloaded with stock
//! iperf3 logs, a hub and routes over them, waiting on conditions, a tiny
//! HTTP client, and finding the external tools (iperf3, Chromium).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use webperf3::http::Context;
use webperf3::hub::Hub;
use webperf3::report::json::Json;
use webperf3::shutdown::Shutdown;
use webperf3::store::log::LogDir;

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

/// The top-level objects of a stock log, each as its own text (ending `}\n`).
pub fn entries(log: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in log.split_inclusive('\n') {
        if line.trim_end() == "{" {
            current = Some(String::new());
        }
        if let Some(text) = current.as_mut() {
            text.push_str(line);
            if line.trim_end() == "}" {
                out.push(current.take().unwrap_or_default());
            }
        }
    }
    out
}

/// The first entry of a stock log with its `extra_data` replaced by `name`
/// (JSON-escaped as the log would have it), as the engine hands it over.
pub fn entry_named(log: &str, name: &str) -> Json {
    let first = entries(log).remove(0);
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

/// Polls `cond` until it holds, failing the test after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A response of [`http_get`].
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// A blocking HTTP/1.0 request to a real server (no client library needed).
pub fn http(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    })
}

/// `GET path`.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<Reply> {
    http(addr, "GET", path)
}

/// The path of an external tool, or a failure saying how to install it.
pub fn require_tool(name: &str, candidates: &[&str]) -> PathBuf {
    for c in candidates {
        let path = Path::new(c);
        if path.is_absolute() && path.exists() {
            return path.to_path_buf();
        }
        if let Some(found) = std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|d| d.join(c))
            .find(|p| p.exists())
        {
            return found;
        }
    }
    panic!(
        "this test needs {name}, which is not installed; install it with \
         `apt-get install -y iperf3 chromium` (Debian/Ubuntu) and run the tests again"
    );
}

/// Stock iperf3.
pub fn iperf3() -> PathBuf {
    require_tool("iperf3", &["iperf3"])
}

/// Chromium (or Chrome) for the headless browser tests.
pub fn chromium() -> PathBuf {
    require_tool(
        "Chromium",
        &[
            "/usr/bin/chromium",
            "chromium",
            "chromium-browser",
            "google-chrome",
            "google-chrome-stable",
        ],
    )
}
