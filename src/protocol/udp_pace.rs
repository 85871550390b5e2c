//! An unlimited UDP sender (`-u -R -b 0`) paced to what its receiver
//! takes, when the receiving socket's drop counter can be read (a client
//! on this host): no I/O, times are parameters.
//!
//! Stock iperf3 sends an unlimited UDP test one datagram per call with no
//! pacing at all: its own per-call cost keeps it near the rate a stock
//! client can receive. Ours sends up to 64 datagrams per call and outruns
//! the client, which then drops datagrams at its socket: loss that says
//! nothing about the network. So, every [`CHECK`], the sender looks at the
//! receiver's drop counter: while it stays (nearly) still, the sender is
//! not paced (or its rate grows by [`PROBE`]); once it moves by more than
//! [`TOLERATED`] of what was sent, the rate is set to [`BACK_OFF`] times
//! what the receiver took over that check.

use std::time::Duration;

/// How often the receiver's drop counter is read.
pub const CHECK: Duration = Duration::from_millis(1);

/// The rate after drops, as a share of what the receiver took meanwhile.
pub const BACK_OFF: f64 = 0.95;

/// The rate's growth per check without drops.
pub const PROBE: f64 = 1.03;

/// Drops below this share of the datagrams sent since the last check are
/// let pass: a receiver that missed a few while briefly descheduled is not
/// slower than the sender, and backing off each time would ratchet the
/// rate down.
pub const TOLERATED: f64 = 0.01;

/// The lowest rate paced to, bytes/s (1 Mbit/s): a receiver that took
/// nothing for a moment is probed again from there.
pub const MIN_RATE: f64 = 125_000.0;

/// The pacing state of one sending stream.
#[derive(Debug, Clone, Default)]
pub struct ReceiverPace {
    /// Bytes/s; `None` = not paced (no drops seen yet).
    rate: Option<f64>,
    /// At the last check: the receiver's drops, bytes sent, the time.
    last: Option<(u64, u64, Duration)>,
    /// Where the current rate's schedule starts: the time, bytes sent then.
    epoch: (Duration, u64),
}

impl ReceiverPace {
    /// The rate paced to, bytes/s (`None`: not paced).
    pub fn rate(&self) -> Option<f64> {
        self.rate
    }

    /// Whether the drop counter should be read at `now` (time since the
    /// test started).
    pub fn check_due(&self, now: Duration) -> bool {
        self.last.is_none_or(|(_, _, at)| now >= at + CHECK)
    }

    /// A reading of the receiver's drop counter (`drops` datagrams) at
    /// `now`, with `sent` bytes sent so far in datagrams of `len` bytes.
    pub fn check(&mut self, now: Duration, sent: u64, drops: u64, len: usize) {
        if let Some((drops0, sent0, at)) = self.last {
            let secs = now.saturating_sub(at).as_secs_f64();
            let lost = drops.saturating_sub(drops0);
            let datagrams = sent.saturating_sub(sent0) / len.max(1) as u64;
            if secs > 0.0 && lost > 0 && lost as f64 > datagrams as f64 * TOLERATED {
                let dropped_bytes = lost.saturating_mul(len as u64);
                let taken = sent.saturating_sub(sent0).saturating_sub(dropped_bytes);
                self.rate = Some((taken as f64 / secs * BACK_OFF).max(MIN_RATE));
                self.epoch = (now, sent);
            } else if let Some(r) = self.rate.filter(|_| secs > 0.0) {
                self.rate = Some(r * PROBE);
                self.epoch = (now, sent);
            }
        }
        self.last = Some((drops, sent, now));
    }

    /// Datagrams of `len` bytes that may go out at `now` with `sent` bytes
    /// sent: `u64::MAX` when not paced, 0 when the sender must wait
    /// ([`ReceiverPace::wait`]).
    pub fn allowance(&self, now: Duration, sent: u64, len: usize) -> u64 {
        let Some(rate) = self.rate else {
            return u64::MAX;
        };
        let (from, base) = self.epoch;
        let due = now.saturating_sub(from).as_secs_f64() * rate;
        let ahead = due - sent.saturating_sub(base) as f64;
        (ahead.max(0.0) / len.max(1) as f64) as u64
    }

    /// How long until one more datagram of `len` bytes is due, having
    /// sent `sent` bytes at `now`; zero when not paced.
    pub fn wait(&self, now: Duration, sent: u64, len: usize) -> Duration {
        let Some(rate) = self.rate else {
            return Duration::ZERO;
        };
        let (from, base) = self.epoch;
        let next = (sent.saturating_sub(base) + len as u64) as f64 / rate;
        Duration::from_secs_f64(next).saturating_sub(now.saturating_sub(from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn unpaced_until_the_receiver_drops() {
        let mut p = ReceiverPace::default();
        assert!(p.check_due(Duration::ZERO));
        p.check(Duration::ZERO, 0, 7, 1400);
        assert!(!p.check_due(MS / 2));
        assert!(p.check_due(MS));
        // Drops the receiver had before the test do not count.
        p.check(MS, 1_400_000, 7, 1400);
        assert_eq!(p.rate(), None);
        assert_eq!(p.allowance(MS, 1_400_000, 1400), u64::MAX);
        assert_eq!(p.wait(MS, 1_400_000, 1400), Duration::ZERO);
    }

    #[test]
    fn drops_set_the_rate_to_what_the_receiver_took() {
        let mut p = ReceiverPace::default();
        p.check(Duration::ZERO, 0, 0, 1000);
        // 2 MB sent in 1 ms, 500 datagrams dropped: 1.5 MB taken, 1.5 GB/s.
        p.check(MS, 2_000_000, 500, 1000);
        let rate = p.rate().unwrap();
        assert!((rate - 1.5e9 * BACK_OFF).abs() < 1.0, "{rate}");
        // The schedule starts at the check: nothing is due yet.
        assert_eq!(p.allowance(MS, 2_000_000, 1000), 0);
        let wait = p.wait(MS, 2_000_000, 1000);
        assert!(
            (wait.as_secs_f64() - 1000.0 / rate).abs() < 1e-9,
            "{wait:?}"
        );
        // 100 µs later, 142 datagrams of 1000 bytes are due.
        let later = MS + Duration::from_micros(100);
        assert_eq!(p.allowance(later, 2_000_000, 1000), 142);
        assert_eq!(p.allowance(later, 2_100_000, 1000), 42);
    }

    #[test]
    fn the_rate_grows_while_nothing_is_dropped_and_has_a_floor() {
        let mut p = ReceiverPace::default();
        p.check(Duration::ZERO, 0, 0, 1000);
        p.check(MS, 1_000_000, 1000, 1000);
        assert_eq!(p.rate(), Some(MIN_RATE), "the receiver took nothing");
        p.check(2 * MS, 1_000_200, 1000, 1000);
        assert!((p.rate().unwrap() - MIN_RATE * PROBE).abs() < 1e-6);
        p.check(3 * MS, 1_000_400, 1000, 1000);
        assert!((p.rate().unwrap() - MIN_RATE * PROBE * PROBE).abs() < 1e-6);
    }

    #[test]
    fn a_few_drops_are_let_pass() {
        let mut p = ReceiverPace::default();
        p.check(Duration::ZERO, 0, 0, 1000);
        // 1000 datagrams sent, 10 dropped: 1 %, not more.
        p.check(MS, 1_000_000, 10, 1000);
        assert_eq!(p.rate(), None);
        p.check(2 * MS, 2_000_000, 21, 1000);
        assert!(p.rate().is_some(), "11 of 1000: backed off");
    }
}
