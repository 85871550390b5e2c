//! The server's JSON output in stock `iperf3 --json` layout.
//!
//! - [`json`]: ordered JSON tree and cJSON-compatible printers.
//! - [`log`]: one test's log entry (`start`, `intervals`, `end`, …).
//! - [`stats`]: per-stream statistics → intervals, `end`, results document.

pub mod json;
pub mod log;
pub mod stats;
