//! The analysis of one recorded entry: its result object (the summary the
//! dashboard and the API show) and its verdict (what most likely limited
//! the test). Pure: an entry in, figures out; no files, no history.
//!
//! Arrows point down this list; no module imports one above it.
//!
//! - [`headline`]: the sentence a person reads first about a test.
//! - [`probe`]: the result object of a probe's entry (`"kind": "probe"`).
//! - [`ndt7`]: the result object of an ndt7 subtest's document.
//! - [`verdict`]: what most likely limited a recorded test, from its entry.
//! - [`words`]: figures as words (rates, shares, times).
//! - [`summary`]: one log entry → one [`test_result::TestResult`], and what
//!   of an entry that needs ([`summary::LEAN`]).
//! - [`test_result`]: the result object of the README's "Dashboard and HTTP
//!   API".
//! - [`limit`]: what capped a test, as a one-byte code.
//! - [`grade`]: the bufferbloat grade and what a link is good for (AIM).

pub mod grade;
pub mod headline;
pub mod limit;
pub mod ndt7;
pub mod probe;
pub mod summary;
pub mod test_result;
pub mod verdict;
pub mod words;
