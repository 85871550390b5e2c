//! Our server in-process on ephemeral ports (bound here, handed to
//! `app::serve`), and comparing figures.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;
use webperf3::analysis::test_result::TestResult;
use webperf3::app::{self, Bound};
use webperf3::files::log_dir::LogDir;
use webperf3::history::results_store::ResultsStore;
use webperf3::hub::{Hub, RecordHook};
use webperf3::protocol::session::Limits;
use webperf3::server::listen::{self, ListenOpts};
use webperf3::server::port::PortSettings;
use webperf3::shutdown::Shutdown;

use crate::support::iperf3;
use crate::support::logs::wait_entries;

/// Tests that measure loss or pacing run alone; the others share the machine.
static MACHINE: RwLock<()> = RwLock::new(());

/// A test's hold on the machine, for as long as its server runs.
enum Machine {
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
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

    /// Starts `n` iperf3 ports whose every record takes `delay` longer
    /// than it would (a slow SD card on the record path).
    pub fn with_slow_records(n: usize, delay: Duration) -> Server {
        let hold = Machine::Shared(MACHINE.read().unwrap_or_else(|e| e.into_inner()));
        Server::start_hooked(
            n,
            PortSettings::default(),
            hold,
            Some(Box::new(SlowRecords(delay))),
        )
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
        Server::start_hooked(n, settings, hold, None)
    }

    fn start_hooked(
        n: usize,
        settings: PortSettings,
        hold: Machine,
        hook: Option<Box<dyn RecordHook>>,
    ) -> Server {
        iperf3::require();
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
                if let Some(hook) = hook {
                    hub.watch_records(|_| {}, hook);
                }
                let http_settings = Default::default();
                app::serve(
                    Bound {
                        iperf,
                        http,
                        https: None,
                    },
                    hub,
                    settings,
                    http_settings,
                    token,
                )
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

    /// Shuts the server down and returns once it has stopped (its logs
    /// stay until the server is dropped).
    pub fn stop(&mut self) {
        self.shutdown.token().cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A record hook that makes every record slow.
struct SlowRecords(Duration);

impl RecordHook for SlowRecords {
    fn before_write(&self, _port: u16, _entry: &Value) {
        // Not a synchronisation: the record path is made slow on purpose.
        std::thread::sleep(self.0);
    }

    fn after_write(&self, _result: Option<&TestResult>, _entry: &Value) {}
}

fn ports_of(listeners: &[TcpListener]) -> Vec<u16> {
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
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
