//! The session's timer table: one deadline per kind of wait, each armed or
//! not. The session's next wake-up is the earliest armed timer; what a timer
//! means when it passes is decided by the session, not here.

use std::time::{Duration, Instant};

/// Length of one interval report (stock's default `-i 1`).
pub const INTERVAL: Duration = Duration::from_secs(1);

/// How early an interval tick may end the omit period: a tick that lands
/// just before the omit end still closes it rather than leaving one more
/// omitted interval.
pub const OMIT_SLACK: Duration = Duration::from_millis(50);

/// Timing limits of a test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Longest wait for the first byte of the cookie, parameters or results
    /// (stock 3.15+: 10 s).
    pub read_start: Duration,
    /// Longest wait for a whole cookie, parameters or results message, and
    /// for `IPERF_DONE` after the results (stock 3.15+: 30 s).
    pub read_total: Duration,
    /// Longest wait for all data streams to connect.
    pub streams: Duration,
    /// No data received for this long while receiving → error 144; no data
    /// sent for this long while every sending stream is blocked (the client
    /// stopped reading) → error 144 too.
    pub rcv_timeout: Duration,
    /// Extra time past `time + omit` before a timed test is cut (error 160).
    pub grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            read_start: Duration::from_secs(10),
            read_total: Duration::from_secs(30),
            streams: Duration::from_secs(30),
            rcv_timeout: Duration::from_secs(120),
            grace: Duration::from_secs(40),
        }
    }
}

/// The kinds of deadline a session keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// The first byte of the awaited cookie, parameters or results.
    ReadStart,
    /// The whole awaited message (or `IPERF_DONE` after the results).
    ReadTotal,
    /// All data streams connected.
    Streams,
    /// A timed test's `time + omit + grace`.
    Grace,
    /// The last received bytes plus the idle limit.
    RecvIdle,
    /// The last sent bytes (or unblocked sender) plus the idle limit.
    SendIdle,
    /// The next interval sample.
    Interval,
    /// The end of the omit period.
    OmitEnd,
}

impl Timer {
    /// Every kind, in table order.
    pub const ALL: [Timer; 8] = [
        Timer::ReadStart,
        Timer::ReadTotal,
        Timer::Streams,
        Timer::Grace,
        Timer::RecvIdle,
        Timer::SendIdle,
        Timer::Interval,
        Timer::OmitEnd,
    ];

    /// The timers that wait on the client's control messages.
    pub const PHASE: [Timer; 3] = [Timer::ReadStart, Timer::ReadTotal, Timer::Streams];

    /// The timers of the data phase.
    pub const RUNNING: [Timer; 5] = [
        Timer::Grace,
        Timer::RecvIdle,
        Timer::SendIdle,
        Timer::Interval,
        Timer::OmitEnd,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// One optional deadline per [`Timer`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimerTable {
    at: [Option<Instant>; Timer::ALL.len()],
}

impl TimerTable {
    /// Arms `timer` for `at` (replacing any earlier setting).
    pub fn set(&mut self, timer: Timer, at: Instant) {
        self.at[timer.index()] = Some(at);
    }

    /// Moves `timer` to `at` only if it is armed.
    pub fn bump(&mut self, timer: Timer, at: Instant) {
        if self.is_armed(timer) {
            self.set(timer, at);
        }
    }

    /// Disarms `timer`.
    pub fn stop(&mut self, timer: Timer) {
        self.at[timer.index()] = None;
    }

    /// Disarms every timer.
    pub fn stop_all(&mut self) {
        self.at = Default::default();
    }

    /// When `timer` is due, if armed.
    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.at[timer.index()]
    }

    /// Whether `timer` is armed.
    pub fn is_armed(&self, timer: Timer) -> bool {
        self.get(timer).is_some()
    }

    /// Whether `timer` is armed and due at `now`.
    pub fn expired(&self, timer: Timer, now: Instant) -> bool {
        self.get(timer).is_some_and(|at| at <= now)
    }

    /// The earliest armed deadline.
    pub fn next(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }

    /// Re-arms a periodic `timer` one `step` after its last deadline, so
    /// ticks keep their cadence without drift; ticks missed entirely (the
    /// next one would already be due at `now`) are skipped, and the cadence
    /// restarts from `now`.
    pub fn advance(&mut self, timer: Timer, step: Duration, now: Instant) {
        let next = self.get(timer).map_or(now + step, |at| at + step);
        self.set(timer, if next <= now { now + step } else { next });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_armed_timer_is_next() {
        let t0 = Instant::now();
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set(Timer::Grace, t0 + Duration::from_secs(40));
        t.set(Timer::Interval, t0 + Duration::from_secs(1));
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(1)));
        assert!(!t.expired(Timer::Interval, t0));
        assert!(t.expired(Timer::Interval, t0 + Duration::from_secs(1)));
        t.stop(Timer::Interval);
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(40)));
        t.bump(Timer::RecvIdle, t0);
        assert!(!t.is_armed(Timer::RecvIdle));
        t.stop_all();
        assert_eq!(t.next(), None);
    }

    #[test]
    fn periodic_ticks_keep_their_cadence_and_skip_missed_ones() {
        let t0 = Instant::now();
        let s = |x: f64| t0 + Duration::from_secs_f64(x);
        let mut t = TimerTable::default();
        t.set(Timer::Interval, s(1.0));
        // A tick handled late still schedules the next on the grid.
        t.advance(Timer::Interval, INTERVAL, s(1.3));
        assert_eq!(t.get(Timer::Interval), Some(s(2.0)));
        // Two whole ticks missed: skipped, the cadence restarts from now.
        t.advance(Timer::Interval, INTERVAL, s(4.5));
        assert_eq!(t.get(Timer::Interval), Some(s(5.5)));
    }
}
