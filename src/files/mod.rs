//! The files on disk: the per-port logs, the ndt7 and probe logs, their
//! rotation and indexes, and reading them back (at start-up in bulk, one
//! entry by its id).
//!
//! Arrows point down this list; no module imports one above it.
//!
//! - [`load`]: every log loaded at start-up in bounded chunks, damage named
//!   and skipped, the part of a file its index covers read from the index.
//! - [`index_dir`]: `<log-dir>/.index/`, one index per log file, read only
//!   when it still matches its file, written atomically.
//! - [`index`]: the format of an index (records, texts, key, latest,
//!   damage of the part of a log it covers) and its checks; pure.
//! - [`entry_check`]: whether the entry at a test's offset is still that
//!   test's (a log cut short and written again holds another there).
//! - [`ndt7_log`]: `ndt7.json`, the ndt7 subtests: appended with the same
//!   write path and retention.
//! - [`probe_log`]: `probes.json`, the probes the box ran as a client
//!   (stock client layout), on the same write path and retention.
//! - [`entry`]: one logged entry read back from its file, exactly as it stands.
//! - [`log_dir`]: `port-<PORT>.json` files and the one write path into them:
//!   a finished test printed, appended with one write and summarised
//!   ([`log_dir::LogDir::record`]), the log rotated first when it would grow
//!   too big; the `{}` clear marker.
//! - [`rotate`]: the names of the logs and their copies, and the rotation
//!   itself, for every kind of log.
//! - [`chunks`]: a file read in bounded chunks cut before entries.
//! - [`reader`]: splits a log's text into entries, tolerating damage.

pub mod chunks;
pub mod entry;
pub mod entry_check;
pub mod index;
pub mod index_dir;
#[cfg(test)]
mod index_tests;
pub mod load;
pub mod log_dir;
pub mod ndt7_log;
pub mod probe_log;
pub mod reader;
pub mod rotate;
