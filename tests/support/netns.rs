//! A network namespace of a test's own, its loopback shaped into a slow
//! link: `ip netns add` under a unique name (removed when dropped), `lo`
//! up with an MTU of 1500, a loss-based congestion control (`reno`: the
//! kernel's default BBR keeps queues short), and a token bucket (`tbf`)
//! queue on `lo`. Needs root and iproute2 (`ip`, `tc`).
//!
//! [`Netns::run`] runs a closure on a thread inside the namespace: every
//! socket it opens and every process it starts (the binary, stock
//! `iperf3`, Chromium) is in the namespace, talking over the shaped `lo`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::process::run_bounded;
use super::tools;

/// How long an `ip` or `tc` command may take.
const DEADLINE: Duration = Duration::from_secs(20);

/// A 10 Mbit/s link with a deep FIFO: up to 600 ms of queue.
pub const DEEP: &[&str] = &["rate", "10mbit", "burst", "32kb", "latency", "600ms"];
/// The same rate with a shallow queue: 5 ms beyond the burst.
pub const SHALLOW: &[&str] = &["rate", "10mbit", "burst", "32kb", "latency", "5ms"];

/// A network namespace, deleted when dropped.
pub struct Netns {
    name: String,
}

fn ip() -> PathBuf {
    tools::require("ip", &["ip", "/usr/sbin/ip", "/sbin/ip"], "iproute2")
}

fn tc() -> PathBuf {
    tools::require("tc", &["tc", "/usr/sbin/tc", "/sbin/tc"], "iproute2")
}

/// Runs `cmd`, failing the test with its output if it fails.
fn must(cmd: &mut Command) {
    let what = format!("{cmd:?}");
    let out = run_bounded(cmd, DEADLINE).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed (this test needs root): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// A new namespace with `lo` up (MTU 1500) and `reno` as its
    /// congestion control; not shaped yet.
    pub fn new() -> Netns {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "webperf3-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        must(Command::new(ip()).args(["netns", "add", &name]));
        let ns = Netns { name };
        must(Command::new(ip()).args(["-n", &ns.name, "link", "set", "lo", "mtu", "1500", "up"]));
        must(
            ns.exec("sysctl")
                .args(["-qw", "net.ipv4.tcp_congestion_control=reno"]),
        );
        ns
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Puts a `tbf` queue with `params` (e.g. [`DEEP`]) on `lo`, in place
    /// of any before it.
    pub fn shape(&self, params: &[&str]) {
        must(
            Command::new(tc())
                .args([
                    "-n", &self.name, "qdisc", "replace", "dev", "lo", "root", "tbf",
                ])
                .args(params),
        );
    }

    /// `program` to be run inside the namespace (`ip netns exec`).
    pub fn exec(&self, program: &str) -> Command {
        let mut cmd = Command::new(ip());
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs `f` on a thread inside the namespace and returns what it
    /// returns (a panic in it fails the caller).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        std::thread::scope(|scope| {
            let thread = scope.spawn(move || {
                use std::os::fd::AsRawFd;
                // SAFETY: setns on a namespace file this thread holds open;
                // it moves only this thread.
                let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            });
            thread
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Processes still inside keep it alive until they end; the name goes now.
        let _ = run_bounded(
            Command::new(ip()).args(["netns", "del", &self.name]),
            DEADLINE,
        );
    }
}
