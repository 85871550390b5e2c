//! The server's JSON output in stock `iperf3 --json` layout.
//!
//! - [`json`]: ordered JSON tree and cJSON-compatible printers.

pub mod json;
