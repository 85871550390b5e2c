//! The send method measured where the server runs: at start-up, each TCP
//! send method ([`SendMethod`]) sends over loopback for a few short rounds,
//! in turn, to a receiver that copies the data into user space as stock
//! iperf3's client does (what a method costs depends on what the receiver
//! does). The CPU of both threads per byte decides
//! ([`crate::send_method::cheapest`]); the result is kept in
//! `<log-dir>/send-method.json` for the same kernel, binary and CPU, and
//! measured again when any of them changes. It runs on a thread of its
//! own, so ports accept tests meanwhile; those copy until it is done.

use std::io::Read;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::stream_parts::{Counters, Method, Pacing};
use super::tcp_io;
use crate::locks::lock;
use crate::send_method::{
    self, Calibration, Choice, Key, Measurement, Record, SendMethod, SendSetting,
};

/// The calibration file's name in the log directory.
pub const FILE: &str = "send-method.json";

/// The block each round sends: stock's default TCP length.
const BLOCK: usize = 128 * 1024;

/// How long a round's measurement lasts, after its warm-up.
pub const ROUND: Duration = Duration::from_millis(50);

/// A round's warm-up: connection set-up and slow start, not measured.
const WARM_UP: Duration = Duration::from_millis(10);

/// Rounds per method (alternating, so drift on the machine hits both).
pub const ROUNDS: usize = 4;

/// The server's send setting and the calibration's state, shared by every
/// port.
#[derive(Debug, Default)]
pub struct SendPath {
    /// `--send-method`.
    pub setting: SendSetting,
    state: Mutex<Option<Calibration>>,
}

impl SendPath {
    /// A send path for `setting`, not calibrated yet.
    pub fn new(setting: SendSetting) -> SendPath {
        SendPath {
            setting,
            state: Mutex::new(None),
        }
    }

    /// A send path always using `method`.
    pub fn forced(method: SendMethod) -> SendPath {
        SendPath::new(SendSetting::Forced(method))
    }

    /// A send path whose calibration chose `method` (as read from a file).
    pub fn calibrated(method: SendMethod) -> SendPath {
        SendPath {
            setting: SendSetting::Auto,
            state: Mutex::new(Some(Calibration::Chosen(method))),
        }
    }

    /// The calibration's state (running until one has been started and
    /// has finished).
    pub fn calibration(&self) -> Calibration {
        lock(&self.state).clone().unwrap_or(Calibration::Running)
    }

    fn set(&self, state: Calibration) {
        *lock(&self.state) = Some(state);
    }

    /// The method a test starts its sending streams with, and why.
    pub fn choice(&self, copy: bool, client_zerocopy: bool) -> Choice {
        send_method::choose(self.setting, copy, client_zerocopy, &self.calibration())
    }
}

/// What this binary on this kernel and CPU is: the calibration file's key.
pub fn this_key() -> Key {
    let build = std::fs::metadata("/proc/self/exe")
        .ok()
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            format!("{}-{}.{}", m.len(), m.mtime(), m.mtime_nsec())
        })
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("CPU part"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default();
    Key {
        kernel: crate::sys::system_info()
            .split(' ')
            .nth(2)
            .unwrap_or("")
            .to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        build,
        cpu,
    }
}

/// Starts the calibration for `path` unless the setting forces a method
/// or `--copy` makes it moot: reads `<dir>/send-method.json` when it holds
/// a result for this key, or else measures on a thread of its own and
/// writes the file.
pub fn start(path: &Arc<SendPath>, dir: &Path, copy: bool) {
    if path.setting != SendSetting::Auto || copy {
        return;
    }
    let file = dir.join(FILE);
    let key = this_key();
    if let Some(record) = load(&file, &key) {
        tracing::info!(
            method = record.method.name(),
            figures = ?record.figures,
            file = %file.display(),
            "send method: from the calibration file"
        );
        path.set(Calibration::Chosen(record.method));
        return;
    }
    let shared = Arc::clone(path);
    let spawned = std::thread::Builder::new()
        .name("calibrate".into())
        .spawn(move || {
            match measure_and_keep(&file, key) {
                Ok((record, took)) => {
                    shared.set(Calibration::Chosen(record.method));
                    // Said once the choice is in force and kept.
                    tracing::info!(
                        method = record.method.name(),
                        took_ms = took.as_millis() as u64,
                        "send method: calibrated"
                    );
                }
                Err(e) => {
                    shared.set(Calibration::Failed(e.to_string()));
                    tracing::warn!(error = %e, "send method: calibration failed; copying");
                }
            }
        });
    if let Err(e) = spawned {
        path.set(Calibration::Failed(e.to_string()));
    }
}

/// The most of the file read back: a record is well under 1 KiB.
const MAX_FILE: u64 = 64 * 1024;

/// The record in `file` when it is one for `key`.
pub fn load(file: &Path, key: &Key) -> Option<Record> {
    let mut text = String::new();
    std::fs::File::open(file)
        .ok()?
        .take(MAX_FILE)
        .read_to_string(&mut text)
        .ok()?;
    send_method::read_back(&text, key)
}

/// Measures every method, chooses, logs the figures, and writes `file` (a
/// failure to write is logged; the choice stands); the record and how long
/// it took.
pub fn measure_and_keep(file: &PathBuf, key: Key) -> std::io::Result<(Record, Duration)> {
    let started = Instant::now();
    let runs = measure(ROUNDS, ROUND)?;
    let figures = send_method::figures(&runs);
    let method = send_method::cheapest(&figures)
        .ok_or_else(|| std::io::Error::other("no method moved any data"))?;
    for f in &figures {
        tracing::info!(
            method = f.method.name(),
            cpu_s_per_gb = format!("{:.3}", f.cpu_s_per_gb),
            gbit_s = format!("{:.2}", f.gbit_s),
            rounds = f.rounds,
            "send method measured"
        );
    }
    let record = Record {
        key,
        method,
        figures,
        measured_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    let tmp = file.with_extension("json.tmp");
    let written = std::fs::write(&tmp, send_method::render(&record))
        .and_then(|()| std::fs::rename(&tmp, file));
    if let Err(e) = written {
        tracing::warn!(error = %e, file = %file.display(), "send method: result not kept");
    }
    Ok((record, started.elapsed()))
}

/// `rounds` rounds of `window` per method, alternating.
pub fn measure(rounds: usize, window: Duration) -> std::io::Result<Vec<Measurement>> {
    let mut runs = Vec::new();
    for _ in 0..rounds {
        for m in SendMethod::ALL {
            runs.push(one_round(m, window)?);
        }
    }
    Ok(runs)
}

/// One method sending to a copying receiver over loopback for `window`
/// (after a warm-up): bytes received and both threads' CPU time.
fn one_round(method: SendMethod, window: Duration) -> std::io::Result<Measurement> {
    let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
    let receiver_sock = TcpStream::connect(listener.local_addr()?)?;
    let (sender_sock, _) = listener.accept()?;
    let probe = sender_sock.try_clone()?;
    let received = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&received);
    let receiver = std::thread::Builder::new()
        .name("calibrate-rx".into())
        .spawn(move || {
            let mut buf = vec![0u8; BLOCK];
            let mut sock = receiver_sock;
            while let Ok(n @ 1..) = sock.read(&mut buf) {
                counted.fetch_add(n as u64, Relaxed);
            }
        })?;
    let counters = Arc::new(Counters::default());
    let c = Arc::clone(&counters);
    let sender = std::thread::Builder::new()
        .name("calibrate-tx".into())
        .spawn(move || {
            let bytes = vec![0x5a_u8; BLOCK];
            let copies = tcp_io::blocks_per_call(BLOCK);
            let file = match method {
                SendMethod::Copy => None,
                SendMethod::Sendfile => crate::sys::memfd_with(&bytes, copies).ok(),
            };
            let block = tcp_io::Block {
                bytes: &bytes,
                file,
                copies,
            };
            let unpaced = Pacing { rate: 0, burst: 1 };
            tcp_io::send(sender_sock, block, unpaced, Instant::now(), &c);
        })?;
    let cpu = || {
        crate::sys::thread_cpu_secs(&sender).unwrap_or(0.0)
            + crate::sys::thread_cpu_secs(&receiver).unwrap_or(0.0)
    };
    // The window is what is measured, not a wait for another thread.
    std::thread::sleep(WARM_UP);
    let (bytes0, cpu0, t0) = (received.load(Relaxed), cpu(), Instant::now());
    std::thread::sleep(window);
    let (bytes1, cpu1, wall) = (received.load(Relaxed), cpu(), t0.elapsed());
    let _ = probe.shutdown(Shutdown::Both);
    let _ = sender.join();
    let _ = receiver.join();
    // A method the kernel refused (the loop fell back to writing) moved
    // nothing of its own: it is not chosen.
    let refused = method == SendMethod::Sendfile && counters.method() != Method::Sendfile;
    if refused {
        tracing::debug!("send method: sendfile refused by the kernel");
    }
    Ok(Measurement {
        method,
        bytes: if refused { 0 } else { bytes1 - bytes0 },
        cpu_secs: (cpu1 - cpu0).max(0.0),
        wall_secs: wall.as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_is_measured_in_turn() {
        let runs = measure(2, Duration::from_millis(20)).unwrap();
        let methods: Vec<_> = runs.iter().map(|r| r.method).collect();
        use SendMethod::*;
        assert_eq!(methods, [Copy, Sendfile, Copy, Sendfile]);
        for r in &runs {
            assert!(r.wall_secs >= 0.02, "{r:?}");
        }
        // A round may be starved on a busy machine; not every round.
        for m in [Copy, Sendfile] {
            let mine = runs.iter().filter(|r| r.method == m);
            let (bytes, cpu) = mine.fold((0, 0.0), |(b, c), r| (b + r.bytes, c + r.cpu_secs));
            assert!(bytes > 0 && cpu > 0.0, "{runs:?}");
        }
    }

    #[test]
    fn the_result_is_kept_and_measured_again_for_another_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(FILE);
        let key = this_key();
        assert!(load(&file, &key).is_none());
        let first = measure_and_keep(&file, key.clone()).unwrap().0;
        assert_eq!(load(&file, &key), Some(first.clone()));
        // Started with the file in place: the choice is read, not measured.
        let path = Arc::new(SendPath::default());
        start(&path, dir.path(), false);
        assert_eq!(path.calibration(), Calibration::Chosen(first.method));
        // Another kernel: the file does not count.
        let mut other = key.clone();
        other.kernel.push_str("-next");
        assert!(load(&file, &other).is_none());
        let second = measure_and_keep(&file, other.clone()).unwrap().0;
        assert!(second.measured_at >= first.measured_at);
        assert_eq!(load(&file, &other), Some(second));
        assert!(load(&file, &key).is_none(), "the file holds the new key");
    }

    #[test]
    fn a_forced_method_or_copy_measures_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let forced = Arc::new(SendPath::forced(SendMethod::Sendfile));
        start(&forced, dir.path(), false);
        let copy = Arc::new(SendPath::default());
        start(&copy, dir.path(), true);
        assert!(!dir.path().join(FILE).exists());
        assert_eq!(copy.calibration(), Calibration::Running);
        assert_eq!(forced.choice(false, false).reason, "forced");
    }
}
