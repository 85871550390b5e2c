//! Stock `iperf3`: finding it (a missing one fails with how to install it),
//! running clients against a port on 127.0.0.1, and running a stock server
//! beside ours.

use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::ports::{in_use, listening, retry_in_use};
use super::process::{run_bounded, Spawned};
use super::tools;
use super::wait::poll_until;

/// How long a client may run.
const CLIENT_DEADLINE: Duration = Duration::from_secs(60);
/// How long a stock server may take to listen.
const START_DEADLINE: Duration = Duration::from_secs(15);

/// The stock `iperf3` on PATH, or why there is none.
pub fn find() -> Result<PathBuf, String> {
    tools::find(&["iperf3"]).ok_or_else(|| {
        format!(
            "iperf3 is not installed (no iperf3 on PATH); {}",
            tools::install_hint("iperf3")
        )
    })
}

/// The stock `iperf3` on PATH; fails the test when it is missing.
pub fn require() -> PathBuf {
    tools::require("stock iperf3", &["iperf3"], "iperf3")
}

/// Runs the stock client with `args` (deadline 60 s) and returns its output.
pub fn client(args: &[&str]) -> Output {
    run_bounded(Command::new(require()).args(args), CLIENT_DEADLINE)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs the client with `-J` against `port` on 127.0.0.1 and returns its
/// JSON after checking it exited 0 and reports no error.
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

/// A stock client in text mode whose test is running: it has printed its
/// first interval.
pub struct Running {
    /// The client (stderr piped, stdout taken into `rest`).
    pub child: Child,
    /// Its stdout after the first interval line.
    pub rest: Lines<BufReader<ChildStdout>>,
}

impl Running {
    /// Starts the client against `port` on 127.0.0.1 with `extra` flags,
    /// intervals every 0.2 s flushed at once, and returns when its first
    /// interval is printed.
    pub fn start(port: u16, extra: &[&str]) -> Running {
        let port = port.to_string();
        let mut child = Command::new(require())
            .args(["-c", "127.0.0.1", "-p", &port, "-i", "0.2", "--forceflush"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn iperf3");
        let mut rest = BufReader::new(child.stdout.take().expect("stdout piped")).lines();
        loop {
            let line = rest
                .next()
                .expect("client output ended before the test ran")
                .expect("client output");
            if line.contains("sec") && line.contains("Bytes") {
                break;
            }
        }
        Running { child, rest }
    }

    /// The client, its stdout read on in the background so that it never
    /// blocks on a full pipe.
    pub fn draining(self) -> Child {
        let rest = self.rest;
        std::thread::spawn(move || for _ in rest {});
        self.child
    }
}

/// A stock `iperf3 -s --json --logfile` on 127.0.0.1, killed when dropped.
pub struct StockServer {
    process: Spawned,
    /// Its port.
    pub port: u16,
    /// Its log file.
    pub log: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl StockServer {
    /// The stock server on PATH with its log in a temp dir of its own;
    /// fails the test when it cannot start.
    pub fn start() -> StockServer {
        StockServer::start_with(&[])
    }

    /// [`StockServer::start`] with more server flags.
    pub fn start_with(extra: &[&str]) -> StockServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = StockServer::try_start_with(&require(), dir.path(), extra)
            .unwrap_or_else(|e| panic!("{e}"));
        server._dir = Some(dir);
        server
    }

    /// Starts `exe` as a server with its log in `dir` (`stock-<port>.json`)
    /// and waits until it listens. Stock iperf3 has no port-0 mode, so the
    /// port is picked by [`retry_in_use`].
    pub fn try_start(exe: &Path, dir: &Path) -> Result<StockServer, String> {
        StockServer::try_start_with(exe, dir, &[])
    }

    /// [`StockServer::try_start`] with more server flags.
    pub fn try_start_with(exe: &Path, dir: &Path, extra: &[&str]) -> Result<StockServer, String> {
        retry_in_use(1, |port| {
            let log = dir.join(format!("stock-{port}.json"));
            let mut cmd = Command::new(exe);
            cmd.args(["-s", "-B", "127.0.0.1", "-p", &port.to_string()])
                .args(["--json", "--logfile"])
                .arg(&log)
                .args(extra)
                .stdout(Stdio::null());
            let mut process = Spawned::start(&mut cmd)
                .map_err(|e| format!("cannot start the stock server {}: {e}", exe.display()))?;
            let pid = process.pid();
            // Wait for the listening socket without connecting to it (stock
            // would take a probe connection for a client).
            let up = poll_until(START_DEADLINE, || listening(pid, port) || !process.alive());
            if up && process.alive() {
                return Ok(StockServer {
                    process,
                    port,
                    log,
                    _dir: None,
                });
            }
            // With --logfile, stock writes its errors there; 3.12 with
            // --json dies of SIGSEGV on a port in use without a word, so
            // whether the port is taken is looked at here.
            let said = format!(
                "{} {}",
                process.stderr().text(),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            let taken = if in_use(port) { " (port in use)" } else { "" };
            Err(if up {
                format!("the stock server exited at start{taken}: {said}")
            } else {
                format!("the stock server is not listening on 127.0.0.1:{port} after {START_DEADLINE:?}: {said}")
            })
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        self.process.alive()
    }

    /// What it printed on stderr so far.
    pub fn stderr_text(&self) -> String {
        self.process.stderr().text()
    }
}
