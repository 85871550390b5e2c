//! The server's JSON output in stock `iperf3 --json` layout.
//!
//! - [`test_log`]: one test's log entry (`start`, `intervals`, `end`, …).
//! - [`stats`]: per-stream statistics → intervals, `end`, results document.
//! - [`tcp_receive`]: round trips of the receiving TCP streams, for our key.
//! - [`tcp_send`]: TCP_INFO of the sending streams over a test, for our key.

pub mod stats;
pub mod tcp_receive;
pub mod tcp_send;
pub mod test_log;
