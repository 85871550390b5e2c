//! A server in-process on ephemeral ports, the stock client, and strict log
//! reading.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use webperf3::app::{self, Bound};
use webperf3::hub::Hub;
use webperf3::protocol::session::Limits;
use webperf3::server::listen::{self, ListenOpts};
use webperf3::server::port::PortSettings;
use webperf3::shutdown::Shutdown;
use webperf3::store::log::LogDir;
use webperf3::store::results::ResultsStore;

/// Tests that measure loss or pacing run alone; the others share the machine.
static MACHINE: RwLock<()> = RwLock::new(());

/// A test's hold on the machine, for as long as its server runs.
enum Machine {
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

/// Fails the test with an install hint when stock `iperf3` is missing.
pub fn require_iperf3() {
    let ok = Command::new("iperf3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "stock iperf3 is required for this test: apt-get install -y iperf3"
    );
}

/// Our server, running in a background thread until dropped.
pub struct Server {
    /// The iperf3 ports, in order.
    pub ports: Vec<u16>,
    /// The log directory (deleted on drop).
    pub dir: tempfile::TempDir,
    /// The dashboard's address.
    #[allow(dead_code)]
    pub http: SocketAddr,
    shutdown: Shutdown,
    thread: Option<JoinHandle<()>>,
    _hold: Machine,
}

impl Server {
    /// Starts `n` iperf3 ports, sharing the machine with other tests.
    pub fn start(n: usize) -> Server {
        let hold = Machine::Shared(MACHINE.read().unwrap_or_else(|e| e.into_inner()));
        Server::start_with(n, PortSettings::default(), hold)
    }

    /// Starts `n` iperf3 ports with these protocol limits (short ones let
    /// timeout tests finish quickly).
    pub fn with_limits(n: usize, limits: Limits) -> Server {
        Server::with_settings(
            n,
            PortSettings {
                limits,
                ..PortSettings::default()
            },
        )
    }

    /// Starts `n` iperf3 ports for a test that measures loss or pacing and
    /// must have the machine to itself.
    pub fn alone(n: usize) -> Server {
        let hold = Machine::Alone(MACHINE.write().unwrap_or_else(|e| e.into_inner()));
        Server::start_with(n, PortSettings::default(), hold)
    }

    /// Starts `n` iperf3 ports with these settings (limits, policies),
    /// sharing the machine.
    pub fn with_settings(n: usize, settings: PortSettings) -> Server {
        let hold = Machine::Shared(MACHINE.read().unwrap_or_else(|e| e.into_inner()));
        Server::start_with(n, settings, hold)
    }

    fn start_with(n: usize, settings: PortSettings, hold: Machine) -> Server {
        require_iperf3();
        let dir = tempfile::tempdir().expect("temp dir");
        let iperf: Vec<TcpListener> = (0..n)
            .map(|_| {
                listen::tcp_listener("[::]:0".parse().unwrap(), ListenOpts::default())
                    .expect("bind")
            })
            .collect();
        let ports = iperf
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        let http = TcpListener::bind("127.0.0.1:0").expect("bind http");
        let http_addr = http.local_addr().unwrap();
        let logs = LogDir::open(dir.path()).expect("log dir");
        let shutdown = Shutdown::new();
        let token = shutdown.clone();
        let port_list: Vec<u16> = ports_of(&iperf);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let hub = Hub::new(logs, ResultsStore::new(&port_list));
                let http_settings = Default::default();
                app::serve(Bound { iperf, http }, hub, settings, http_settings, token)
                    .await
                    .unwrap();
            });
        });
        Server {
            ports,
            dir,
            http: http_addr,
            shutdown,
            thread: Some(thread),
            _hold: hold,
        }
    }

    /// The log file of the `i`-th port.
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("port-{}.json", self.ports[i]))
    }

    /// Waits until the `i`-th port's log holds `n` entries, and returns them.
    pub fn wait_entries(&self, i: usize, n: usize) -> Vec<Value> {
        wait_entries(&self.log_path(i), n)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.token().cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn ports_of(listeners: &[TcpListener]) -> Vec<u16> {
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// Parses a log strictly: it must be nothing but whole JSON objects.
pub fn read_entries(path: &Path) -> Vec<Value> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(_) => return Vec::new(),
    };
    let entries: Result<Vec<Value>, _> = serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .collect();
    let entries =
        entries.unwrap_or_else(|e| panic!("{} is not a clean log: {e}\n{text}", path.display()));
    for e in &entries {
        assert!(e.is_object(), "non-object in log: {e}");
    }
    assert!(
        text.is_empty() || text.ends_with("}\n"),
        "log does not end with an entry"
    );
    entries
}

/// Waits (deadline 20 s) until the log at `path` holds `n` entries.
pub fn wait_entries(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let entries = read_entries(path);
        if entries.len() >= n {
            assert_eq!(entries.len(), n, "more log entries than expected");
            return entries;
        }
        assert!(
            Instant::now() < deadline,
            "log has {} entries, wanted {n}",
            entries.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the stock client (deadline 60 s) and returns its output.
pub fn client(args: &[&str]) -> Output {
    let child = Command::new("iperf3")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn iperf3");
    wait_output(child, Duration::from_secs(60))
}

/// Waits for a child with a deadline, killing it if it overruns.
pub fn wait_output(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "iperf3 did not finish within {limit:?}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the client with `-J` against port `port` of 127.0.0.1 and returns
/// its JSON after checking it exited 0.
pub fn client_json(port: u16, extra: &[&str]) -> Value {
    let port = port.to_string();
    let mut args = vec!["-c", "127.0.0.1", "-p", &port, "-J"];
    args.extend_from_slice(extra);
    let out = client(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "iperf3 {args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("client JSON: {e}: {stdout}"));
    // With -J, some clients exit 0 even when the server refused the test.
    assert!(v.get("error").is_none(), "iperf3 {args:?}: {}", v["error"]);
    v
}

/// A number at a JSON pointer.
pub fn num(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no number at {pointer} in {v}"))
}

/// Asserts `a` and `b` agree within 10 %.
pub fn close(what: &str, a: f64, b: f64) {
    let tolerance = 0.10 * a.abs().max(b.abs());
    assert!(
        (a - b).abs() <= tolerance,
        "{what}: {a} vs {b} differ by more than 10%"
    );
}
