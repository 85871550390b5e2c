//! The history in memory and its questions: every recorded result kept as a
//! compact record, the latest per port, and the filters, pages, stretches
//! and time buckets the dashboard asks for. Knows nothing of files.
//!
//! Arrows point down this list; no module imports one above it.
//!
//! - [`devices`]: each name's tests side by side: medians over 7 and 30
//!   days, the last result, a per-day series for one device.
//! - [`query`]: filters, pages and time buckets over the history.
//! - [`medians`]: medians and quartiles of tests' figures, per kind.
//! - [`kinds`]: a test's kind (iperf3 TCP, UDP, ndt7, probe) from its record.
//! - [`results_store`]: every result in memory (compact), the latest per
//!   port, the table of log files the ids point into.
//! - [`runs`]: the two ndt7 subtests of one speed-test run joined into one
//!   record.
//! - [`compact`]: the fixed-size record of one test and its interned texts.
//! - [`ids`]: test ids, where a test sits in its log.

pub mod compact;
pub mod devices;
pub mod ids;
pub mod kinds;
pub mod medians;
pub mod query;
pub mod results_store;
pub mod runs;
