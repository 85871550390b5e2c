//! The history in memory and its questions: every recorded result kept as a
//! compact record, the latest per port, and the filters, pages, stretches
//! and time buckets the dashboard asks for. Knows nothing of files.
//!
//! Arrows point down this list; no module imports one above it.
//!
//! - [`query`]: filters, pages and time buckets over the history.
//! - [`results_store`]: every result in memory (compact), the latest per
//!   port, the table of log files the ids point into.
//! - [`compact`]: the fixed-size record of one test and its interned texts.
//! - [`ids`]: test ids, where a test sits in its log.

pub mod compact;
pub mod ids;
pub mod query;
pub mod results_store;
