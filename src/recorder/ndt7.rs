//! A finished ndt7 subtest, as the recorder takes it: its result document,
//! shown under the dashboard's port; its JSON is made only when a hook
//! listens (the log's text and summary come from the document itself).

use serde_json::Value;

use super::Kind;
use crate::files::log_dir::{LogDir, Recorded};
use crate::history::ids::LogKey;
use crate::ndt7::record::Record;

/// A finished ndt7 subtest's document.
#[derive(Debug, Clone, Copy)]
pub struct Ndt7Subtest<'a>(pub &'a Record);

impl Kind for Ndt7Subtest<'_> {
    fn port(&self) -> u16 {
        self.0.server_port
    }

    fn log(&self) -> LogKey {
        LogKey::Ndt7
    }

    fn value(&self, hooked: bool) -> Option<Value> {
        hooked.then(|| serde_json::to_value(self.0).unwrap_or_default())
    }

    fn append(&self, logs: &LogDir, _value: Option<&Value>) -> Recorded {
        logs.record_ndt7(self.0)
    }
}
