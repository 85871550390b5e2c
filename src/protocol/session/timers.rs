//! The session's timers: the kinds of wait, their table (a
//! [`Deadlines`]) and the timing limits. What a timer means when it passes
//! is decided by the session, not here.

use std::time::Duration;

use crate::protocol::deadlines::{Deadlines, TimerKind};

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
}

impl TimerKind for Timer {
    fn index(self) -> usize {
        self as usize
    }
}

/// One optional deadline per [`Timer`].
pub type TimerTable = Deadlines<Timer, { Timer::ALL.len() }>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

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
