//! The `webperf3` binary as a user runs it: started as a child process with
//! its own log dir, waited for until its start-up line (which names the
//! bound iperf3 port and dashboard address), watched through its stderr and
//! `/proc`, and stopped with SIGTERM.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use super::http::http_get;
use super::ports::retry_in_use;
use super::process::{run_bounded, Missed, Spawned};

/// The binary cargo built for this test target or bench.
pub const BIN: &str = env!("CARGO_BIN_EXE_webperf3");

/// How long start-up, a stderr line, or a stop may take.
const DEADLINE: Duration = Duration::from_secs(20);

/// Runs the binary with `args` to its end (deadline 20 s).
pub fn run(args: &[&str]) -> Output {
    run_bounded(Command::new(BIN).args(args), DEADLINE).unwrap_or_else(|e| panic!("{e}"))
}

/// Resource limits for the server process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rlimits {
    /// File size limit in bytes (`ulimit -f`).
    pub fsize: Option<u64>,
    /// Open files limit, soft and hard (`ulimit -n`).
    pub nofile: Option<(u64, u64)>,
}

/// How to start the binary: by default one iperf3 port that the kernel
/// picks (`--port 0 --servers 1`) on 127.0.0.1, the dashboard on
/// `127.0.0.1:0`, HTTPS on `127.0.0.1:0` (unless the flags name
/// `--https` or `--no-https`).
#[derive(Debug, Clone)]
pub struct Launch {
    port: u16,
    servers: u16,
    log_dir: PathBuf,
    extra: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    limits: Rlimits,
    deadline: Duration,
    binary: PathBuf,
}

impl Launch {
    /// One kernel-chosen port, logs in `log_dir`.
    pub fn new(log_dir: &Path) -> Launch {
        Launch {
            port: 0,
            servers: 1,
            log_dir: log_dir.to_path_buf(),
            extra: Vec::new(),
            envs: Vec::new(),
            limits: Rlimits::default(),
            binary: PathBuf::from(BIN),
            deadline: DEADLINE,
        }
    }

    /// `servers` consecutive ports from `first` (see
    /// [`super::ports::retry_in_use`] for picking them).
    pub fn ports(mut self, first: u16, servers: u16) -> Launch {
        self.port = first;
        self.servers = servers;
        self
    }

    /// One more flag or value, after the ones above.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Launch {
        self.extra.push(arg.into());
        self
    }

    /// More flags, after the ones above.
    pub fn args<S: Into<OsString>>(mut self, extra: impl IntoIterator<Item = S>) -> Launch {
        self.extra.extend(extra.into_iter().map(Into::into));
        self
    }

    /// An environment variable for the server process.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Launch {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Resource limits for the server process.
    pub fn limits(mut self, limits: Rlimits) -> Launch {
        self.limits = limits;
        self
    }

    /// How long start-up may take (default 20 s; loading a long history
    /// on a busy machine takes longer).
    pub fn start_deadline(mut self, deadline: Duration) -> Launch {
        self.deadline = deadline;
        self
    }

    /// Runs `binary` instead of the one cargo built for this target (a
    /// release build for tests whose start-up would take minutes in debug).
    pub fn binary(mut self, binary: &Path) -> Launch {
        self.binary = binary.to_path_buf();
        self
    }

    /// Starts it and waits for its start-up line; the error holds its
    /// stderr when it exits first (e.g. "Address in use").
    pub fn try_start(&self) -> Result<Daemon, String> {
        let mut cmd = Command::new(&self.binary);
        cmd.args(["--port", &self.port.to_string()])
            .args(["--servers", &self.servers.to_string()])
            .args(["--bind", "127.0.0.1", "--http", "127.0.0.1:0", "--log-dir"])
            .arg(&self.log_dir);
        let https_named = self.extra.iter().any(|a| {
            let a = a.to_string_lossy();
            a == "--no-https" || a == "--https" || a.starts_with("--https=")
        });
        if !https_named {
            cmd.args(["--https", "127.0.0.1:0"]);
        }
        cmd.args(&self.extra)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null());
        let limits = self.limits;
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
        let process = Spawned::start(&mut cmd)
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        let found = process.stderr().wait(self.deadline, |lines| {
            lines.iter().enumerate().find_map(|(at, line)| {
                let (port, http, https) = parse_start_up(line)?;
                Some((at, port, http, https))
            })
        });
        match found {
            Ok((banner_at, port, http, https)) => Ok(Daemon {
                process,
                port,
                http,
                https,
                banner_at,
                log_dir: self.log_dir.clone(),
            }),
            Err(Missed::Closed) => Err(format!(
                "webperf3 exited before its start-up line: {}",
                process.stderr().text()
            )),
            Err(Missed::TimedOut) => Err(format!(
                "no start-up line within {:?}: {}",
                self.deadline,
                process.stderr().text()
            )),
        }
    }

    /// As [`Launch::try_start`], failing the test on an error.
    pub fn start(&self) -> Daemon {
        self.try_start().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Starts the binary on one port known before it starts, with its logs in
/// a fresh temp dir that `prepare(dir, port)` fills first (a log named
/// after the port, say); `launch` adds the rest (flags, limits). The port
/// is picked by [`retry_in_use`], each attempt with a dir of its own so
/// that a failed one leaves nothing behind.
pub fn start_prepared(
    launch: impl Fn(Launch) -> Launch,
    mut prepare: impl FnMut(&Path, u16),
) -> (tempfile::TempDir, Daemon) {
    retry_in_use(1, |port| {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        prepare(dir.path(), port);
        let daemon = launch(Launch::new(dir.path()).ports(port, 1)).try_start()?;
        Ok((dir, daemon))
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The first iperf3 port, the dashboard address and the HTTPS one from the
/// start-up line `webperf3 <version>: iperf3 on port[s] <P>[-<Q>],
/// dashboard on http://<addr>[, https://<addr>], ...`.
fn parse_start_up(line: &str) -> Option<(u16, SocketAddr, Option<SocketAddr>)> {
    let (_, rest) = line.split_once(": iperf3 on port")?;
    let rest = rest.strip_prefix('s').unwrap_or(rest).trim_start();
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let port = rest[..digits].parse().ok()?;
    let (_, rest) = line.split_once(", dashboard on http://")?;
    let http = rest.split(',').next()?.parse().ok()?;
    let https = line
        .split_once(", https://")
        .and_then(|(_, rest)| rest.split(',').next()?.parse().ok());
    Some((port, http, https))
}

/// A running `webperf3`, killed when dropped.
pub struct Daemon {
    process: Spawned,
    /// The first iperf3 port, as the start-up line named it.
    pub port: u16,
    /// The dashboard's address, as the start-up line named it.
    pub http: SocketAddr,
    /// The HTTPS address, as the start-up line named it (if any).
    pub https: Option<SocketAddr>,
    /// Where the start-up line is among the stderr lines.
    banner_at: usize,
    log_dir: PathBuf,
}

impl Daemon {
    /// Starts the binary on one kernel-chosen port with logs in `dir` and
    /// `extra` flags, and waits for its start-up line.
    pub fn start(dir: &Path, extra: &[&str]) -> Daemon {
        Launch::new(dir).args(extra).start()
    }

    /// As [`Daemon::start`], with resource limits set for the server process.
    pub fn start_limited(dir: &Path, extra: &[&str], limits: Rlimits) -> Daemon {
        Launch::new(dir).args(extra).limits(limits).start()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        self.process.alive()
    }

    /// The start-up line.
    pub fn banner(&self) -> String {
        self.stderr_line(self.banner_at)
    }

    /// Everything the server printed on stderr so far.
    pub fn stderr(&self) -> Vec<String> {
        self.process.stderr().lines()
    }

    /// Everything printed on stderr so far, as one text.
    pub fn stderr_text(&self) -> String {
        self.process.stderr().text()
    }

    /// Waits (deadline 20 s) until a stderr line contains `text`.
    pub fn wait_stderr(&self, text: &str) -> String {
        self.process
            .stderr()
            .wait_for(DEADLINE, text)
            .unwrap_or_else(|why| {
                panic!("stderr never said {text:?} ({why:?}): {:?}", self.stderr())
            })
    }

    /// Waits (deadline 20 s) for the `n`-th line after the start-up line
    /// (1 = the next one).
    pub fn wait_line_after_banner(&self, n: usize) -> String {
        self.stderr_line(self.banner_at + n)
    }

    fn stderr_line(&self, at: usize) -> String {
        self.process
            .stderr()
            .wait(DEADLINE, |lines| lines.get(at).cloned())
            .unwrap_or_else(|why| panic!("no stderr line {at} ({why:?}): {:?}", self.stderr()))
    }

    /// The log file of the `i`-th iperf3 port.
    pub fn log_path(&self, i: u16) -> PathBuf {
        self.log_dir.join(format!("port-{}.json", self.port + i))
    }

    /// A value from /proc/<pid>/status, in kB (e.g. `VmRSS`).
    pub fn status_kb(&self, key: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in /proc status"))
    }

    /// The soft limit of `name` in /proc/<pid>/limits (e.g. "Max open files").
    pub fn soft_limit(&self, name: &str) -> String {
        let text = std::fs::read_to_string(format!("/proc/{}/limits", self.pid())).unwrap();
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
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// `GET path` on the dashboard: the status code and the body.
    pub fn get(&self, path: &str) -> (u16, String) {
        let reply = http_get(self.http, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
        (
            reply.status,
            String::from_utf8_lossy(&reply.body).into_owned(),
        )
    }

    /// Sends `sig` to the server.
    pub fn signal(&self, sig: i32) {
        self.process.signal(sig);
    }

    /// SIGTERM, then its exit status (deadline 20 s).
    pub fn terminate(&mut self) -> ExitStatus {
        self.process.signal(libc::SIGTERM);
        self.process
            .wait_exit(DEADLINE)
            .unwrap_or_else(|| panic!("webperf3 did not stop: {}", self.stderr_text()))
    }

    /// Stops the server with SIGTERM and waits for it.
    pub fn stop(mut self) {
        self.terminate();
    }
}
