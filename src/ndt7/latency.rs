//! Latency under load for a speed-test run, without sockets or clock
//! reads (time is a parameter: a `Duration` on one monotonic clock).
//!
//! - [`Pinger`]: one latency websocket's frames out and echoes in: which
//!   frame is due, the round trip of each echo, the phase it counts in.
//! - [`Runs`]: the runs the box knows: each run's phase (set by its ndt7
//!   subtests), its samples until its subtests are logged, its one
//!   latency socket; bounded in runs, samples and time.
//! - [`Stats`] and [`jitter`]: the figures a result shows of samples.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Kind;

/// How often the server sends a latency frame.
pub const INTERVAL: Duration = Duration::from_millis(100);
/// Samples kept per run (60 s of frames).
pub const MAX_SAMPLES: usize = 600;
/// Frames awaiting their echo; an older one is given up as lost.
pub const MAX_PENDING: usize = 64;
/// Runs known at once; a new one beyond is refused.
pub const MAX_RUNS: usize = 64;
/// A run not touched for this long is forgotten.
pub const RUN_TTL: Duration = Duration::from_secs(120);
/// The longest a latency socket stays open.
pub const SOCKET_LIMIT: Duration = Duration::from_secs(60);
/// The largest echo accepted (a frame is about 60 bytes).
pub const MAX_ECHO: usize = 256;

/// What a run is doing when a frame is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// No subtest of the run moves data.
    Idle,
    /// The run's download subtest moves data.
    Download,
    /// The run's upload subtest moves data.
    Upload,
}

/// One round trip: `[ms since the socket opened, phase, rtt ms]` in the log.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample(pub f64, pub Phase, pub f64);

impl Sample {
    /// The phase it counts in.
    pub fn phase(&self) -> Phase {
        self.1
    }

    /// The round trip, ms.
    pub fn rtt_ms(&self) -> f64 {
        self.2
    }
}

/// What a subtest's document holds of its run's latency (`WebperfLatency`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyLog {
    /// The run id.
    #[serde(rename = "Run")]
    pub run: String,
    /// The samples, oldest first.
    #[serde(rename = "Samples", default)]
    pub samples: Vec<Sample>,
}

/// Whether `id` is a run id: `[A-Za-z0-9-]{8,64}`.
pub fn valid_run(id: &str) -> bool {
    (8..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Why a latency socket or a subtest's run is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The run has a latency socket already.
    #[error("the run has a latency connection already")]
    Twice,
    /// [`MAX_RUNS`] runs are known.
    #[error("too many speed-test runs at once")]
    Full,
}

/// One run the box knows.
#[derive(Debug, Default)]
struct Run {
    /// The subtest moving data, if one does.
    moving: Option<Kind>,
    socket: bool,
    samples: Vec<Sample>,
    touched: Duration,
}

/// The runs the box knows, by run id.
#[derive(Debug, Default)]
pub struct Runs {
    runs: HashMap<String, Run>,
}

impl Runs {
    /// The run `id`, made if new (forgetting stale ones first).
    fn run(&mut self, id: &str, now: Duration) -> Result<&mut Run, Refused> {
        self.expire(now);
        if !self.runs.contains_key(id) && self.runs.len() >= MAX_RUNS {
            return Err(Refused::Full);
        }
        let run = self.runs.entry(id.to_string()).or_default();
        run.touched = now;
        Ok(run)
    }

    /// Forgets runs untouched for [`RUN_TTL`] that have no socket.
    fn expire(&mut self, now: Duration) {
        self.runs
            .retain(|_, r| r.socket || now.saturating_sub(r.touched) < RUN_TTL);
    }

    /// The number of runs known.
    pub fn len(&self) -> usize {
        self.runs.len()
    }

    /// Whether no run is known.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// A latency socket opens for run `id`.
    pub fn open_socket(&mut self, id: &str, now: Duration) -> Result<(), Refused> {
        let run = self.run(id, now)?;
        if run.socket {
            return Err(Refused::Twice);
        }
        run.socket = true;
        Ok(())
    }

    /// The latency socket of run `id` closed; a run with nothing left to
    /// log (no samples, no subtest) is forgotten.
    pub fn close_socket(&mut self, id: &str, now: Duration) {
        if let Some(run) = self.runs.get_mut(id) {
            run.socket = false;
            run.touched = now;
            if run.samples.is_empty() && run.moving.is_none() {
                self.runs.remove(id);
            }
        }
    }

    /// The phase of run `id` now.
    pub fn phase(&self, id: &str) -> Phase {
        match self.runs.get(id).and_then(|r| r.moving) {
            Some(Kind::Download) => Phase::Download,
            Some(Kind::Upload) => Phase::Upload,
            None => Phase::Idle,
        }
    }

    /// Run `id`'s subtest `kind` starts moving data.
    pub fn subtest_started(&mut self, id: &str, kind: Kind, now: Duration) -> Result<(), Refused> {
        self.run(id, now)?.moving = Some(kind);
        Ok(())
    }

    /// Run `id`'s subtest `kind` ended and is about to be logged: what its
    /// document keeps (a download the samples so far but the upload's,
    /// which never precede it; an upload every sample left). `None` if the
    /// run has no samples.
    pub fn subtest_ended(&mut self, id: &str, kind: Kind, now: Duration) -> Option<LatencyLog> {
        let run = self.runs.get_mut(id)?;
        if run.moving == Some(kind) {
            run.moving = None;
        }
        run.touched = now;
        let samples = std::mem::take(&mut run.samples);
        let (kept, left): (Vec<Sample>, Vec<Sample>) = match kind {
            Kind::Download => samples
                .into_iter()
                .partition(|s| s.phase() != Phase::Upload),
            Kind::Upload => (samples, Vec::new()),
        };
        run.samples = left;
        if kind == Kind::Upload && !run.socket {
            self.runs.remove(id);
        }
        (!kept.is_empty()).then(|| LatencyLog {
            run: id.to_string(),
            samples: kept,
        })
    }

    /// Adds a sample to run `id` (dropped past [`MAX_SAMPLES`]).
    pub fn add(&mut self, id: &str, sample: Sample, now: Duration) {
        if let Some(run) = self.runs.get_mut(id) {
            run.touched = now;
            if run.samples.len() < MAX_SAMPLES {
                run.samples.push(sample);
            }
        }
    }
}

/// What a frame from the page holds that we read.
#[derive(Deserialize)]
struct Echo {
    seq: u64,
}

/// A frame the server sends.
#[derive(Serialize)]
struct Frame {
    seq: u64,
    rtt_ms: Option<f64>,
    phase: Phase,
}

/// An echo that is not one of our frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadEcho {
    /// Longer than [`MAX_ECHO`].
    #[error("an echo longer than {MAX_ECHO} bytes")]
    TooLong,
    /// Not a frame's JSON.
    #[error("an echo that is not a frame")]
    NotAFrame,
}

/// One latency socket's frames and echoes.
#[derive(Debug)]
pub struct Pinger {
    opened: Duration,
    next_seq: u64,
    next_due: Duration,
    /// `(seq, sent at, phase)` of frames not yet echoed, oldest first.
    pending: VecDeque<(u64, Duration, Phase)>,
    last_rtt: Option<f64>,
}

impl Pinger {
    /// A socket opened at `now`; its first frame is due at once.
    pub fn new(now: Duration) -> Pinger {
        Pinger {
            opened: now,
            next_seq: 0,
            next_due: now,
            pending: VecDeque::new(),
            last_rtt: None,
        }
    }

    /// When the next frame is due.
    pub fn due(&self) -> Duration {
        self.next_due
    }

    /// The frame to send at `now` in `phase`, if one is due.
    pub fn frame(&mut self, now: Duration, phase: Phase) -> Option<String> {
        if now < self.next_due {
            return None;
        }
        // On time, the next one interval later; after a stall, one frame
        // and the interval again from now (never a burst).
        self.next_due += INTERVAL;
        if self.next_due <= now {
            self.next_due = now + INTERVAL;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back((seq, now, phase));
        let frame = Frame {
            seq,
            rtt_ms: self.last_rtt,
            phase,
        };
        serde_json::to_string(&frame).ok()
    }

    /// The echo `text` arrived at `now`: the sample it makes, if it
    /// answers a frame still pending (frames before it are given up).
    pub fn echoed(&mut self, text: &str, now: Duration) -> Result<Option<Sample>, BadEcho> {
        if text.len() > MAX_ECHO {
            return Err(BadEcho::TooLong);
        }
        let echo: Echo = serde_json::from_str(text).map_err(|_| BadEcho::NotAFrame)?;
        let Some(at) = self.pending.iter().position(|p| p.0 == echo.seq) else {
            return Ok(None);
        };
        let (_, sent, phase) = self.pending[at];
        self.pending.drain(..=at);
        let rtt = round(now.saturating_sub(sent).as_secs_f64() * 1000.0);
        self.last_rtt = Some(rtt);
        let at_ms = round(sent.saturating_sub(self.opened).as_secs_f64() * 1000.0);
        Ok(Some(Sample(at_ms, phase, rtt)))
    }
}

/// `x` to a hundredth.
fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The median and 90th percentile of some round trips, ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    /// The median.
    pub median_ms: f64,
    /// The 90th percentile (nearest rank).
    pub p90_ms: f64,
    /// How many samples.
    pub samples: usize,
}

impl Stats {
    /// The figures of `rtts`; `None` if there are none.
    pub fn of(rtts: impl IntoIterator<Item = f64>) -> Option<Stats> {
        let mut v: Vec<f64> = rtts.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        // Nearest rank: the smallest value with 90 % at or below it.
        let rank = (n * 9).div_ceil(10).max(1);
        Some(Stats {
            median_ms: round(median),
            p90_ms: v[rank - 1],
            samples: n,
        })
    }

    /// The figures of the samples of `phase` in `samples`.
    pub fn of_phase(samples: &[Sample], phase: Phase) -> Option<Stats> {
        Stats::of(
            samples
                .iter()
                .filter(|s| s.phase() == phase)
                .map(Sample::rtt_ms),
        )
    }
}

/// The variation of consecutive round trips: the mean absolute
/// difference of each from the one before; `None` under two samples.
pub fn jitter(rtts: &[f64]) -> Option<f64> {
    if rtts.len() < 2 {
        return None;
    }
    let sum: f64 = rtts.windows(2).map(|w| (w[1] - w[0]).abs()).sum();
    // Sample counts are small.
    #[allow(clippy::cast_precision_loss)]
    let n = (rtts.len() - 1) as f64;
    Some(round(sum / n))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn run_ids_are_checked() {
        assert!(valid_run("abcd-123"));
        assert!(valid_run(&"a".repeat(64)));
        for bad in ["short", "has space x", "ünïcode-1", &"a".repeat(65)] {
            assert!(!valid_run(bad), "{bad}");
        }
    }

    #[test]
    fn frames_are_due_every_interval_and_echoes_time_them() {
        let t0 = Duration::from_secs(5);
        let mut p = Pinger::new(t0);
        let f0 = p.frame(t0, Phase::Idle).unwrap();
        assert_eq!(f0, r#"{"seq":0,"rtt_ms":null,"phase":"idle"}"#);
        assert_eq!(p.frame(t0 + 50 * MS, Phase::Idle), None);
        assert_eq!(p.due(), t0 + INTERVAL);
        // The echo comes 12.5 ms later.
        let s = p.echoed(&f0, t0 + Duration::from_micros(12_500)).unwrap();
        assert_eq!(s, Some(Sample(0.0, Phase::Idle, 12.5)));
        let f1 = p.frame(t0 + INTERVAL, Phase::Download).unwrap();
        assert_eq!(f1, r#"{"seq":1,"rtt_ms":12.5,"phase":"download"}"#);
        // The phase is the one when the frame was sent.
        let s = p.echoed(&f1, t0 + 400 * MS).unwrap().unwrap();
        assert_eq!(s, Sample(100.0, Phase::Download, 300.0));
        // An echo twice, an unknown seq: no sample; not a frame: refused.
        assert_eq!(p.echoed(&f1, t0 + 500 * MS), Ok(None));
        assert_eq!(p.echoed(r#"{"seq":99}"#, t0 + 500 * MS), Ok(None));
        assert_eq!(p.echoed("hello", t0), Err(BadEcho::NotAFrame));
        let long = format!(r#"{{"seq":1,"x":"{}"}}"#, "y".repeat(MAX_ECHO));
        assert_eq!(p.echoed(&long, t0), Err(BadEcho::TooLong));
    }

    #[test]
    fn a_stall_sends_one_frame_and_pending_frames_are_bounded() {
        let mut p = Pinger::new(Duration::ZERO);
        let mut now = Duration::ZERO;
        for _ in 0..MAX_PENDING + 10 {
            assert!(p.frame(now, Phase::Idle).is_some());
            now += INTERVAL;
        }
        assert_eq!(p.pending.len(), MAX_PENDING);
        // Ten seconds without a tick: one frame, then the interval again.
        now += Duration::from_secs(10);
        assert!(p.frame(now, Phase::Idle).is_some());
        assert!(p.frame(now + MS, Phase::Idle).is_none());
        assert_eq!(p.due(), now + INTERVAL);
        // The first frames were given up: their echo makes no sample.
        assert_eq!(p.echoed(r#"{"seq":0}"#, now), Ok(None));
    }

    #[test]
    fn the_phase_follows_the_runs_subtests_and_samples_go_to_their_entry() {
        let mut runs = Runs::default();
        let t = |ms| Duration::from_millis(ms);
        runs.open_socket("run-0001", t(0)).unwrap();
        assert_eq!(runs.open_socket("run-0001", t(1)), Err(Refused::Twice));
        assert_eq!(runs.phase("run-0001"), Phase::Idle);
        runs.add("run-0001", Sample(0.0, Phase::Idle, 2.0), t(10));
        runs.subtest_started("run-0001", Kind::Download, t(2000))
            .unwrap();
        assert_eq!(runs.phase("run-0001"), Phase::Download);
        runs.add("run-0001", Sample(2000.0, Phase::Download, 80.0), t(2100));
        let down = runs
            .subtest_ended("run-0001", Kind::Download, t(12_000))
            .unwrap();
        assert_eq!(down.samples.len(), 2);
        assert_eq!(runs.phase("run-0001"), Phase::Idle);
        runs.subtest_started("run-0001", Kind::Upload, t(12_100))
            .unwrap();
        assert_eq!(runs.phase("run-0001"), Phase::Upload);
        runs.add(
            "run-0001",
            Sample(12_100.0, Phase::Upload, 200.0),
            t(12_300),
        );
        // The socket closes before the upload is logged: its samples wait.
        runs.close_socket("run-0001", t(22_000));
        let up = runs
            .subtest_ended("run-0001", Kind::Upload, t(22_100))
            .unwrap();
        assert_eq!(up.samples, vec![Sample(12_100.0, Phase::Upload, 200.0)]);
        assert!(runs.is_empty());
        // A run whose subtests came without a socket leaves nothing.
        runs.subtest_started("run-0002", Kind::Download, t(0))
            .unwrap();
        assert_eq!(runs.subtest_ended("run-0002", Kind::Download, t(10)), None);
    }

    #[test]
    fn runs_and_samples_are_bounded() {
        let mut runs = Runs::default();
        let now = Duration::from_secs(1);
        for i in 0..MAX_RUNS {
            runs.open_socket(&format!("run-{i:05}"), now).unwrap();
        }
        assert_eq!(runs.open_socket("run-extra", now), Err(Refused::Full));
        assert_eq!(
            runs.subtest_started("run-extra", Kind::Download, now),
            Err(Refused::Full)
        );
        for _ in 0..MAX_SAMPLES + 5 {
            runs.add("run-00000", Sample(0.0, Phase::Idle, 1.0), now);
        }
        let log = runs.subtest_ended("run-00000", Kind::Upload, now).unwrap();
        assert_eq!(log.samples.len(), MAX_SAMPLES);
        // Runs without a socket are forgotten after RUN_TTL.
        for i in 0..MAX_RUNS {
            runs.close_socket(&format!("run-{i:05}"), now);
        }
        runs.subtest_started("run-a0000", Kind::Download, now)
            .unwrap();
        runs.subtest_started("run-b0000", Kind::Download, now + RUN_TTL)
            .unwrap();
        assert_eq!(runs.len(), 1);
    }

    #[test]
    fn medians_percentiles_and_jitter() {
        let s = Stats::of([5.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert_eq!((s.median_ms, s.p90_ms, s.samples), (3.0, 5.0, 5));
        let s = Stats::of((1..=10).map(f64::from)).unwrap();
        assert_eq!((s.median_ms, s.p90_ms), (5.5, 9.0));
        assert_eq!(Stats::of([]), None);
        assert_eq!(jitter(&[10.0, 12.0, 11.0, 15.0]), Some(2.33));
        assert_eq!(jitter(&[10.0]), None);
    }
}
