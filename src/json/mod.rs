//! JSON in the exact shape stock iperf3 writes it, and reading it lean.
//!
//! - [`tree`]: the ordered tree that allows duplicate keys, the
//!   cJSON-compatible printers, and the one conversion to and from
//!   `serde_json::Value`.
//! - [`prune`]: a JSON value read building only the members asked for.
//!
//! Knows nothing of iperf3 tests, logs or summaries.

pub mod prune;
pub mod tree;

pub use tree::{format_g, format_number, from_value, to_compact, to_pretty, to_value, Json};
