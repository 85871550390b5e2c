//! The per-port log files and the results derived from them.
//!
//! Arrows point down this list; no module imports one above it.
//!
//! - [`load`]: every log loaded at start-up in bounded chunks, damage named
//!   and skipped, the part of a file its index covers read from the index.
//! - [`index_dir`]: `<log-dir>/.index/`, one index per log file, read only
//!   when it still matches its file, written atomically.
//! - [`index`]: the format of an index (records, texts, key, latest,
//!   damage of the part of a log it covers) and its checks; pure.
//! - [`entry`]: one logged entry read back from its file, exactly as it stands.
//! - [`entry_check`]: whether the entry at a test's offset is still that
//!   test's (a log cut short and written again holds another there).
//! - [`log`]: `port-<PORT>.json` files and the one write path into them: a
//!   finished test printed, appended with one write and summarised
//!   ([`log::LogDir::record`]), the log rotated first when it would grow too
//!   big; the `{}` clear marker.
//! - [`rotate`]: retention (size limit, copies kept), the names of the logs
//!   and their copies, and the rotation itself, for both kinds of log.
//! - [`chunks`]: a file read in bounded chunks cut before entries.
//! - [`ndt7_log`]: `ndt7.json`, the ndt7 subtests: appended with the same
//!   write path and retention; the result object of a logged subtest.
//! - [`probe_log`]: `probes.json`, the probes the box ran as a client
//!   (stock client layout), on the same write path and retention; the
//!   result object (`"kind": "probe"`) of a logged probe.
//! - [`reader`]: splits a log's text into entries, tolerating damage.
//! - [`verdict`]: what most likely limited a recorded test, from its entry.
//! - [`summary`]: one log entry → one [`result::TestResult`], and what of an
//!   entry that needs ([`summary::LEAN`]).
//! - [`prune`]: reads a JSON value building only the members named.
//! - [`devices`]: each name's tests side by side: medians over 7 and 30
//!   days, the last result, a per-day series for one device.
//! - [`query`]: filters, pages and time buckets over the history.
//! - [`medians`]: medians and quartiles of tests' figures, per kind.
//! - [`kinds`]: a test's kind (iperf3 TCP, UDP, ndt7, probe) from its record.
//! - [`results`]: every result in memory (compact), and the latest per port.
//! - [`runs`]: the two ndt7 subtests of one speed-test run joined into one record.
//! - [`compact`]: the fixed-size record of one test and its interned texts.
//! - [`headline`]: the sentence a person reads first about a test.
//! - [`words`]: figures as words (rates, shares, times).
//! - [`limit`]: what capped a test, as a one-byte code.
//! - [`ids`]: test ids, where a test sits in its log.
//! - [`result`]: the result object of the README's "Dashboard and HTTP API".
//! - [`grade`]: the bufferbloat grade and what a link is good for (AIM).

pub mod chunks;
pub mod compact;
pub mod devices;
pub mod entry;
pub mod entry_check;
pub mod grade;
pub mod headline;
pub mod ids;
pub mod index;
pub mod index_dir;
#[cfg(test)]
mod index_tests;
pub mod kinds;
pub mod limit;
pub mod load;
pub mod log;
pub mod medians;
pub mod ndt7_log;
pub mod probe_log;
pub mod prune;
pub mod query;
pub mod reader;
pub mod result;
pub mod results;
pub mod rotate;
pub mod runs;
pub mod summary;
pub mod verdict;
pub mod words;
