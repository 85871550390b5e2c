//! The analysis of one recorded entry: its result object (the summary the
//! dashboard and the API show) and its verdict (what most likely limited
//! the test). Pure: an entry in, figures out; no files, no history.
//!
//! Arrows point down this list; no module imports one above it.
//!
//! - [`verdict`]: what most likely limited a recorded test, from its entry.
//! - [`summary`]: one log entry → one [`test_result::TestResult`], and what
//!   of an entry that needs ([`summary::LEAN`]).
//! - [`test_result`]: the result object of the README's "Dashboard and HTTP
//!   API".

pub mod summary;
pub mod test_result;
pub mod verdict;
