//! Child processes: spawned so that they die with the thread that started
//! them, their stderr kept line by line (and waited on as it arrives), and
//! waited for with a deadline.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A child's stderr as it arrives, line by line, kept by a reader thread.
#[derive(Clone)]
pub struct Captured {
    shared: Arc<(Mutex<Lines>, Condvar)>,
}

#[derive(Default)]
struct Lines {
    lines: Vec<String>,
    /// The pipe reached its end: the process exited (or closed stderr).
    closed: bool,
}

/// Why [`Captured::wait`] returned without what it waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// The pipe ended first.
    Closed,
    /// The deadline passed first.
    TimedOut,
}

impl Captured {
    /// Reads `pipe` to its end in a thread of its own.
    pub fn read(pipe: impl Read + Send + 'static) -> Captured {
        let captured = Captured {
            shared: Arc::new((Mutex::new(Lines::default()), Condvar::new())),
        };
        let shared = Arc::clone(&captured.shared);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                let n = reader.read_until(b'\n', &mut buf).unwrap_or(0);
                let (lock, cond) = &*shared;
                let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
                if n == 0 {
                    state.closed = true;
                    cond.notify_all();
                    return;
                }
                let line = String::from_utf8_lossy(&buf);
                let line = line.strip_suffix('\n').unwrap_or(&line);
                state.lines.push(line.to_string());
                cond.notify_all();
            }
        });
        captured
    }

    fn state(&self) -> MutexGuard<'_, Lines> {
        self.shared.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.state().lines.clone()
    }

    /// Everything so far, lines joined with `\n`.
    pub fn text(&self) -> String {
        self.state().lines.join("\n")
    }

    /// Waits (at most `limit`) until `found` picks something out of the
    /// lines so far; it is asked again whenever a line arrives.
    pub fn wait<T>(
        &self,
        limit: Duration,
        mut found: impl FnMut(&[String]) -> Option<T>,
    ) -> Result<T, Missed> {
        let deadline = Instant::now() + limit;
        let (_, cond) = &*self.shared;
        let mut state = self.state();
        loop {
            if let Some(t) = found(&state.lines) {
                return Ok(t);
            }
            if state.closed {
                return Err(Missed::Closed);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Missed::TimedOut);
            }
            state = cond
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits (at most `limit`) for the first line containing `text`.
    pub fn wait_for(&self, limit: Duration, text: &str) -> Result<String, Missed> {
        self.wait(limit, |lines| {
            lines.iter().find(|l| l.contains(text)).cloned()
        })
    }

    /// Waits (at most `limit`) for the pipe to end; whether it did.
    pub fn wait_closed(&self, limit: Duration) -> bool {
        match self.wait(limit, |_| None::<()>) {
            Err(Missed::Closed) => true,
            Ok(()) | Err(Missed::TimedOut) => false,
        }
    }
}

/// Sends `sig` to process `pid` (a child of ours, not yet waited for).
pub fn signal(pid: u32, sig: i32) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: kill(2) on our own child's pid, which stays ours until waited for.
    unsafe { libc::kill(pid, sig) };
}

/// Makes the child of `cmd` get SIGKILL when the thread that starts it
/// ends, so that a test or bench killed midway leaves no server behind.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork
    // and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// A child started by [`Spawned::start`]: stdin from `/dev/null`, stderr
/// [`Captured`], killed when dropped and (`PR_SET_PDEATHSIG`) when the
/// thread that started it ends.
pub struct Spawned {
    child: Child,
    stderr: Captured,
}

impl Spawned {
    /// Starts `cmd` (its stdout as the caller set it).
    pub fn start(cmd: &mut Command) -> std::io::Result<Spawned> {
        die_with_parent(cmd);
        let mut child = cmd.stdin(Stdio::null()).stderr(Stdio::piped()).spawn()?;
        let stderr = Captured::read(child.stderr.take().expect("stderr piped"));
        Ok(Spawned { child, stderr })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its stderr so far, and to wait on.
    pub fn stderr(&self) -> &Captured {
        &self.stderr
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `sig` to it.
    pub fn signal(&self, sig: i32) {
        signal(self.pid(), sig);
    }

    /// Waits (at most `limit`) for it to exit: its stderr ends when it
    /// does; then its status.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        if !self.stderr.wait_closed(limit) {
            return None;
        }
        self.child.wait().ok()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `child` (its piped output read as it comes) at most `limit`;
/// past that it is killed and the error holds what it had printed.
pub fn finish(child: Child, limit: Duration) -> Result<Output, String> {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let timed_out = match rx.recv_timeout(limit) {
        Ok(out) => return out.map_err(|e| format!("waiting for process {pid}: {e}")),
        Err(_) => {
            // Not reaped yet (the waiting thread has not returned), so the
            // pid is still this child's.
            signal(pid, libc::SIGKILL);
            rx.recv()
        }
    };
    let stdout = match timed_out {
        Ok(Ok(out)) => String::from_utf8_lossy(&out.stdout).into_owned(),
        _ => String::new(),
    };
    Err(format!(
        "process {pid} did not finish within {limit:?}; killed. It printed: {stdout}"
    ))
}

/// As [`finish`], failing the test when the deadline passes.
pub fn wait_output(child: Child, limit: Duration) -> Output {
    finish(child, limit).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `cmd` with its stdout and stderr captured, within `limit`.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Result<Output, String> {
    die_with_parent(cmd);
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    finish(child, limit).map_err(|e| format!("{:?}: {e}", cmd.get_program()))
}
