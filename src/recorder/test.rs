//! An iperf3 test served on one of the box's ports, as the recorder takes
//! it: its log entry in stock's layout, summarised from that entry with
//! the verdict's kind.

use serde_json::Value;

use super::Kind;
use crate::analysis::summary::summarize;
use crate::analysis::verdict::with_limit;
use crate::files::log_dir::{LogDir, Recorded};
use crate::history::ids::LogKey;
use crate::json::{to_value, Json};

/// A finished iperf3 test's log entry.
#[derive(Debug, Clone, Copy)]
pub struct IperfTest<'a> {
    /// The port it ran on.
    pub port: u16,
    /// Its log entry.
    pub entry: &'a Json,
}

impl Kind for IperfTest<'_> {
    fn port(&self) -> u16 {
        self.port
    }

    fn log(&self) -> LogKey {
        LogKey::Port(self.port)
    }

    fn value(&self, _hooked: bool) -> Option<Value> {
        Some(to_value(self.entry))
    }

    fn append(&self, logs: &LogDir, value: Option<&Value>) -> Recorded {
        let port = self.port;
        match value {
            Some(value) => logs.record_in(self.log(), self.entry, value, |v| {
                summarize(port, v).map(|r| with_limit(r, v))
            }),
            None => logs.record(port, self.entry),
        }
    }
}
