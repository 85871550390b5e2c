//! A probe the box ran as an iperf3 client, as the recorder takes it: its
//! entry in the stock client's layout, shown under port 0 (it ran on no
//! port of the box), summarised as a probe ([`crate::analysis::probe`]).

use serde_json::Value;

use super::Kind;
use crate::analysis::probe::judged;
use crate::files::log_dir::{LogDir, Recorded};
use crate::history::ids::LogKey;
use crate::json::{to_value, Json};

/// A finished probe's entry.
#[derive(Debug, Clone, Copy)]
pub struct Probe<'a>(pub &'a Json);

impl Kind for Probe<'_> {
    fn port(&self) -> u16 {
        0
    }

    fn log(&self) -> LogKey {
        LogKey::Probe
    }

    fn value(&self, _hooked: bool) -> Option<Value> {
        Some(to_value(self.0))
    }

    fn append(&self, logs: &LogDir, value: Option<&Value>) -> Recorded {
        match value {
            Some(value) => logs.record_in(self.log(), self.0, value, judged),
            None => logs.record_probe(self.0),
        }
    }
}
