//! The binary run as a subprocess, with its stderr kept, its dashboard
//! address read from its start-up line, and its memory and descriptors read
//! from /proc.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_webperf3");

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Resource limits for the server process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rlimits {
    /// File size limit in bytes (`ulimit -f`).
    pub fsize: Option<u64>,
    /// Open files limit, soft and hard (`ulimit -n`).
    pub nofile: Option<(u64, u64)>,
}

/// A running `webperf3` serving one iperf3 port on 127.0.0.1.
pub struct Daemon {
    child: Child,
    /// The dashboard's address.
    pub http: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// Starts the binary on `port` with logs in `dir` and `extra` flags, and
    /// waits for its start-up line.
    pub fn start(port: u16, dir: &Path, extra: &[&str]) -> Daemon {
        Daemon::start_limited(port, dir, extra, Rlimits::default())
    }

    /// As [`Daemon::start`], with resource limits set for the server process.
    pub fn start_limited(port: u16, dir: &Path, extra: &[&str], limits: Rlimits) -> Daemon {
        let mut cmd = Command::new(BIN);
        cmd.args(["--port", &port.to_string(), "--servers", "1"])
            .args(["--bind", "127.0.0.1", "--http", "127.0.0.1:0", "--log-dir"])
            .arg(dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: setrlimit is async-signal-safe; nothing else runs between
        // fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let set = |resource, (soft, hard): (u64, u64)| {
                    let rl = libc::rlimit {
                        rlim_cur: soft,
                        rlim_max: hard,
                    };
                    if libc::setrlimit(resource, &rl) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                };
                if let Some(bytes) = limits.fsize {
                    set(libc::RLIMIT_FSIZE, (bytes, bytes))?;
                }
                if let Some(pair) = limits.nofile {
                    set(libc::RLIMIT_NOFILE, pair)?;
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("start webperf3");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let keep = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let addr = line.find("dashboard on http://").map(|at| {
                    let rest = &line[at + "dashboard on http://".len()..];
                    rest.split(',').next().unwrap_or("").to_string()
                });
                keep.lock().unwrap().push(line);
                if let Some(addr) = addr {
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no start-up line: {:?}", lines.lock().unwrap()));
        Daemon {
            child,
            http: addr.parse().expect("dashboard address"),
            stderr: lines,
        }
    }

    /// Everything the server printed on stderr so far.
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (deadline 20 s) until a stderr line contains `text`.
    pub fn wait_stderr(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(line) = self.stderr().into_iter().find(|l| l.contains(text)) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "stderr never said {text:?}: {:?}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A value from /proc/<pid>/status, in kB (e.g. `VmRSS`).
    pub fn status_kb(&self, key: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in /proc status"))
    }

    /// The soft limit of `name` in /proc/<pid>/limits (e.g. "Max open files").
    pub fn soft_limit(&self, name: &str) -> String {
        let text = std::fs::read_to_string(format!("/proc/{}/limits", self.child.id())).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in /proc limits"));
        line[name.len()..]
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    }

    /// Open file descriptors of the server.
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .unwrap()
            .count()
    }

    /// `GET path` on the dashboard: the status code and the body.
    pub fn get(&self, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(self.http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.http
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let code = raw
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        (code, body.to_string())
    }

    /// Stops the server with SIGTERM and waits for it.
    pub fn stop(mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "webperf3 did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
