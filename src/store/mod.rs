//! The per-port log files and the results derived from them.
//!
//! Arrows point down this list; no module imports one above it.
//!
//! - [`load`]: every log loaded at start-up, damage named and skipped.
//! - [`log`]: `port-<PORT>.json` files and the one write path into them: a
//!   finished test printed, appended with one write and summarised
//!   ([`log::LogDir::record`]); the `{}` clear marker.
//! - [`ndt7_log`]: `ndt7.json`, the ndt7 subtests: appended with the same
//!   write path, read back at start-up by [`load`].
//! - [`reader`]: splits a log's text into entries, tolerating damage.
//! - [`verdict`]: what most likely limited a recorded test, from its entry.
//! - [`summary`]: one log entry → one [`result::TestResult`], and what of an
//!   entry that needs ([`summary::LEAN`]).
//! - [`prune`]: reads a JSON value building only the members named.
//! - [`results`]: every result in memory, and the latest per port.
//! - [`result`]: the result object of SPEC.md.

pub mod load;
pub mod log;
pub mod ndt7_log;
pub mod prune;
pub mod reader;
pub mod result;
pub mod results;
pub mod summary;
pub mod verdict;
