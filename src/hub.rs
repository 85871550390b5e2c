//! The live state the dashboard shows, and the broadcast of its changes.
//!
//! The iperf3 side reports into the hub (a test started, progress, a finished
//! test's log entry); the hub appends entries to the logs, keeps the results
//! store, and publishes [`Event`]s on a tokio broadcast channel that websocket
//! clients subscribe to. A slow subscriber lags and skips ahead; it never
//! slows a test.

use std::net::IpAddr;
use std::sync::Arc;

use crate::store::log::LogDir;
use crate::store::results::ResultsStore;

/// Shared live state; cheap to clone (`Arc`).
pub struct Hub {
    logs: LogDir,
}

impl Hub {
    /// A hub serving `store` (as loaded from `logs`) for these ports.
    pub fn new(logs: LogDir, store: ResultsStore) -> Arc<Hub> {
        let _ = store;
        Arc::new(Hub { logs })
    }

    /// A test began on `port` (parameters received).
    pub fn test_started(&self, port: u16, client: IpAddr, name: Option<String>) {
        let _ = (port, client, name);
    }

    /// About once a second while a test runs: its total rate over the last
    /// interval, and the seconds since it started.
    pub fn progress(&self, port: u16, bps: f64, seconds: f64) {
        let _ = (port, bps, seconds);
    }

    /// The test on `port` is over (recorded or not); the port is idle.
    pub fn test_ended(&self, port: u16) {
        let _ = port;
    }

    /// Appends one finished test's log entry (`text`, a whole pretty-printed
    /// object ending in `\n`) to the port's log with a single write, then adds
    /// its summary to the results and announces it. A failed write is
    /// reported (stderr, status) and the result is still shown.
    pub fn record_entry(&self, port: u16, text: &str) {
        if let Err(e) = self.logs.append(port, text) {
            eprintln!("webperf3: cannot append to the log of port {port}: {e}");
        }
    }
}
