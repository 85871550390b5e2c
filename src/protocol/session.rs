//! The control-channel state machine.

use std::time::Duration;

/// Timing limits of a test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Longest wait for the first byte of the cookie, parameters or results.
    pub read_start: Duration,
    /// Longest wait for a whole cookie, parameters or results message.
    pub read_total: Duration,
    /// Longest wait for all data streams to connect.
    pub streams: Duration,
    /// No data received for this long while receiving → error 144.
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
