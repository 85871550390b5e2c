//! The client machine's timers: the kinds of wait, their table (a
//! [`Deadlines`]) and the timing limits. What a timer means when it passes
//! is decided by the machine, not here.

use std::time::Duration;

use crate::protocol::deadlines::{Deadlines, TimerKind};

/// How often a test that ends on a byte or block count (`-n`, `-k`) looks
/// at the counters.
pub const COUNT_CHECK: Duration = Duration::from_millis(10);

/// Timing limits of a client's test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Longest wait for each answer of the server on the control
    /// connection outside the data phase (a state byte, or the whole
    /// results document).
    pub reply: Duration,
    /// Longest wait for the first byte of the server's results.
    pub read_start: Duration,
    /// Longest wait for every data stream to connect.
    pub streams: Duration,
    /// No data received for this long while receiving ends the test as
    /// failed (stock's `--rcv-timeout`).
    pub rcv_timeout: Duration,
    /// The longest data phase, whatever the parameters ask (a `-n` test
    /// at a crawl): the test then ends as if its time were up.
    pub max_run: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            reply: Duration::from_secs(30),
            read_start: Duration::from_secs(10),
            streams: Duration::from_secs(30),
            rcv_timeout: Duration::from_secs(120),
            max_run: Duration::from_secs(3600),
        }
    }
}

/// The kinds of deadline a client keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// The server's next control message (or the whole results document).
    Reply,
    /// The first byte of the server's results.
    ReadStart,
    /// All data streams connected.
    Streams,
    /// The end of a timed test (`time + omit`), or of the longest run.
    End,
    /// The next look at the counters of a `-n`/`-k` test.
    Count,
    /// The last received bytes plus the idle limit.
    RecvIdle,
    /// The next interval sample.
    Interval,
    /// The end of the omit period.
    OmitEnd,
}

impl Timer {
    /// Every kind, in table order.
    pub const ALL: [Timer; 8] = [
        Timer::Reply,
        Timer::ReadStart,
        Timer::Streams,
        Timer::End,
        Timer::Count,
        Timer::RecvIdle,
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
