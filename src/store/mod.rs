//! The per-port log files and the results derived from them.
//!
//! - [`log`]: `port-<PORT>.json` files: one-write appends, loading at start-up.
//! - [`reader`]: splits a log's text into entries, tolerating damage.
//! - [`summary`]: one log entry → one [`summary::TestResult`] (the SPEC's
//!   result object).
//! - [`results`]: every result in memory, and the latest per port.

pub mod log;
pub mod reader;
pub mod results;
pub mod summary;
