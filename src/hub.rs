//! The live state the dashboard shows, and the broadcast of its changes.
//!
//! The iperf3 side reports into the hub (a test started, progress, a finished
//! test's log entry); the hub hands entries to the store's write path
//! ([`LogDir::record`]), keeps the results, and publishes [`Event`]s on a
//! tokio broadcast channel that websocket clients subscribe to. A slow
//! subscriber lags and skips ahead; it never slows a test. The web side
//! takes the result type from here ([`TestResult`]) rather than from the
//! store.
//!
//! Nothing here does network I/O or awaits: every method is a short critical
//! section (plus, for [`Hub::record`] and [`Hub::clear`], one log append),
//! callable from any thread or task.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::Serialize;
use tokio::sync::broadcast;

use crate::locks::lock;
use crate::ndt7::record::Record;
use crate::report::json::Json;
use crate::store::entry::{self, EntryError};
use crate::store::entry_check::recorded_at;
use crate::store::ids::TestId;
use crate::store::log::{LogDir, Recorded};
pub use crate::store::result::TestResult;
use crate::store::results::ResultsStore;

/// What must hold every recorded test before anyone sees it (the
/// forwarding queue, the metrics) hooks into the record path here. Records
/// are serialised: `before_write` and the `after_write` that follows it
/// belong to the same test, with no other record in between.
pub trait RecordHook: Send + Sync {
    /// `entry` (as JSON) is about to be appended to `port`'s log.
    fn before_write(&self, _port: u16, _entry: &serde_json::Value) {}
    /// The entry was handled: `result` is the recorded test (`None` for an
    /// entry that never started one); it is announced right after.
    fn after_write(&self, result: Option<&TestResult>, entry: &serde_json::Value);
}

/// How many events a websocket subscriber may fall behind before it skips
/// ahead (it then misses the oldest ones; the page resynchronises on reconnect).
const EVENT_BUFFER: usize = 256;

/// The program's version as `/api/status` reports it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Whether a port is serving a test right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PortState {
    /// Waiting for a client.
    Idle,
    /// A test is running.
    Running,
}

/// One port's live status, as `/api/status` and `status` events show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PortStatus {
    /// The iperf3 port.
    pub port: u16,
    /// Idle or running.
    pub state: PortState,
    /// The running test's client address (IPv4-mapped shown as IPv4).
    pub client: Option<String>,
    /// The running test's `--extra-data`.
    pub name: Option<String>,
    /// Unix seconds when the running test started.
    pub started: Option<i64>,
    /// The running test's latest progress rate, bits/s.
    pub bps: Option<f64>,
    /// Seconds since the running test started, as of the latest progress.
    pub seconds: Option<f64>,
    /// Which way the running test's data flows, seen from its client:
    /// `"upload"`, `"download"` (`-R`) or `"both"` (`--bidir`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<&'static str>,
    /// The running test's planned length in seconds (`-t` plus `-O`);
    /// absent for tests limited by bytes or blocks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<u32>,
}

/// What a starting test's client asked for, as the live status shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Plan {
    /// `"upload"`, `"download"` or `"both"`, seen from the client.
    pub direction: Option<&'static str>,
    /// Planned seconds (time plus omit), when the test is timed.
    pub duration: Option<u32>,
}

impl PortStatus {
    fn idle(port: u16) -> PortStatus {
        PortStatus {
            port,
            state: PortState::Idle,
            client: None,
            name: None,
            started: None,
            bps: None,
            seconds: None,
            direction: None,
            duration: None,
        }
    }
}

/// The whole live status: `GET /api/status` and the `status` event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// The program's version.
    pub version: String,
    /// Every served port, in port order.
    pub ports: Vec<PortStatus>,
    /// The latest log write that failed (and has not succeeded since), if any.
    pub log_error: Option<String>,
}

/// A change pushed to websocket clients, serialised as
/// `{"type": "status" | "progress" | "result" | "cleared", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Event {
    /// A test started or ended, or the log error state changed.
    Status(Status),
    /// About once a second during a test.
    Progress {
        /// The port the test runs on.
        port: u16,
        /// The rate over the last interval, bits/s.
        bps: f64,
        /// Seconds since the test started.
        seconds: f64,
    },
    /// A test was recorded.
    Result {
        /// The recorded test (boxed: it is much larger than the other events).
        result: Box<TestResult>,
    },
    /// The latest-per-port table was emptied.
    Cleared,
}

/// Which results `GET /api/results` returns; every set field must match.
pub use crate::store::query::Filter as ResultFilter;

struct State {
    store: ResultsStore,
    ports: Vec<PortStatus>,
    /// Per port, the message of a log write that failed and has not
    /// succeeded since.
    log_errors: BTreeMap<u16, String>,
}

impl State {
    fn port_mut(&mut self, port: u16) -> Option<&mut PortStatus> {
        self.ports.iter_mut().find(|p| p.port == port)
    }

    fn status(&self) -> Status {
        Status {
            version: VERSION.to_string(),
            ports: self.ports.clone(),
            log_error: self.log_error(),
        }
    }

    fn log_error(&self) -> Option<String> {
        if self.log_errors.is_empty() {
            None
        } else {
            Some(
                self.log_errors
                    .values()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        }
    }
}

/// Shared live state; cheap to clone (`Arc`).
pub struct Hub {
    logs: LogDir,
    /// Serialises log appends with the store updates that follow them, so
    /// the order of entries and `{}` markers in the files is the order the
    /// store saw (and a restart rebuilds the same latest table).
    writer: Mutex<()>,
    state: RwLock<State>,
    events: broadcast::Sender<Event>,
    /// Log write errors already logged (each is logged once).
    reported: Mutex<HashSet<String>>,
    /// Called around every record ([`Hub::watch_records`]).
    hooks: RwLock<Vec<Box<dyn RecordHook>>>,
}

impl Hub {
    /// A hub serving `store` (as loaded from `logs`) for these ports.
    pub fn new(logs: LogDir, store: ResultsStore) -> Arc<Hub> {
        let ports = store.ports().iter().map(|&p| PortStatus::idle(p)).collect();
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Arc::new(Hub {
            logs,
            writer: Mutex::new(()),
            state: RwLock::new(State {
                store,
                ports,
                log_errors: BTreeMap::new(),
            }),
            events,
            reported: Mutex::new(HashSet::new()),
            hooks: RwLock::new(Vec::new()),
        })
    }

    /// A test began on `port` (parameters received).
    pub fn test_started(&self, port: u16, client: IpAddr, name: Option<String>) {
        self.test_started_with(port, client, name, Plan::default());
    }

    /// A test started on `port`, with what its client asked for.
    pub fn test_started_with(&self, port: u16, client: IpAddr, name: Option<String>, plan: Plan) {
        let mut state = self.write();
        let Some(status) = state.port_mut(port) else {
            return;
        };
        *status = PortStatus {
            port,
            state: PortState::Running,
            client: Some(client.to_canonical().to_string()),
            name,
            started: Some(chrono::Utc::now().timestamp()),
            bps: None,
            seconds: None,
            direction: plan.direction,
            duration: plan.duration,
        };
        let event = Event::Status(state.status());
        self.publish(event);
    }

    /// About once a second while a test runs: its total rate over the last
    /// interval, and the seconds since it started.
    pub fn progress(&self, port: u16, bps: f64, seconds: f64) {
        let mut state = self.write();
        if let Some(status) = state.port_mut(port) {
            status.bps = Some(bps);
            status.seconds = Some(seconds);
        }
        self.publish(Event::Progress { port, bps, seconds });
    }

    /// The test on `port` is over (recorded or not); the port is idle.
    pub fn test_ended(&self, port: u16) {
        let mut state = self.write();
        let Some(status) = state.port_mut(port) else {
            return;
        };
        *status = PortStatus::idle(port);
        let event = Event::Status(state.status());
        self.publish(event);
    }

    /// Records one finished test's log `entry`: the store appends it to the
    /// port's log with a single write and summarises it; the result joins
    /// the results and is announced. A failed write is reported (standard
    /// error, status) and the result is still shown.
    pub fn record(&self, port: u16, entry: &Json) {
        let _writer = lock(&self.writer);
        let value = self.before_write(port, || crate::report::json::to_value(entry));
        let recorded = self.logs.record(port, entry);
        self.recorded(port, recorded, value, || self.logs.path(port));
    }

    /// Records one finished ndt7 subtest as [`Hub::record`] does: appended
    /// to the ndt7 log, then shown and announced (its `port` is the
    /// dashboard's).
    pub fn record_ndt7(&self, record: &Record) {
        let _writer = lock(&self.writer);
        let value = self.before_write(record.server_port, || {
            serde_json::to_value(record).unwrap_or_default()
        });
        let recorded = self.logs.record_ndt7(record);
        self.recorded(record.server_port, recorded, value, || {
            self.logs.ndt7_path()
        });
    }

    /// Records one probe's entry (the stock client's layout) as
    /// [`Hub::record`] does: appended to the probes' log, then shown and
    /// announced. Its port is 0: a probe ran on no port of the box.
    pub fn record_probe(&self, entry: &Json) {
        let _writer = lock(&self.writer);
        let value = self.before_write(0, || crate::report::json::to_value(entry));
        let recorded = self.logs.record_probe(entry);
        self.recorded(0, recorded, value, || self.logs.probe_path());
    }

    /// Tells the record hooks that an entry of `port` is about to be
    /// written; its JSON (made only when a hook listens) for
    /// [`Hub::recorded`]. Hooks run before the state lock: a queue's disk
    /// sync never holds up readers.
    fn before_write(
        &self,
        port: u16,
        value: impl FnOnce() -> serde_json::Value,
    ) -> Option<serde_json::Value> {
        let hooks = crate::locks::read(&self.hooks);
        let value = (!hooks.is_empty()).then(value);
        if let Some(value) = &value {
            hooks.iter().for_each(|h| h.before_write(port, value));
        }
        value
    }

    /// Tells the hooks the entry `value` was handled, notes the log write
    /// of `port` to `path`, and shows and announces its result.
    fn recorded(
        &self,
        port: u16,
        recorded: Recorded,
        value: Option<serde_json::Value>,
        path: impl Fn() -> PathBuf,
    ) {
        if let Some(value) = &value {
            let result = recorded.result.as_ref();
            let hooks = crate::locks::read(&self.hooks);
            hooks.iter().for_each(|h| h.after_write(result, value));
        }
        let mut state = self.write();
        self.note_write(&mut state, port, recorded.written, path);
        if let Some(rotated) = recorded.rotated {
            state.store.rotated(rotated.log, rotated.keep);
            if rotated.keep > 0 {
                self.logs.index_rotated(rotated.log);
            }
        }
        if let Some(result) = recorded.result {
            let result = state.store.push(result);
            self.publish(Event::Result {
                result: Box::new(result),
            });
        }
    }

    /// Empties the latest-per-port table (history is kept), appends a `{}`
    /// marker to every port's log so the cleared state survives a restart,
    /// and returns the new (empty) latest table.
    pub fn clear(&self) -> Vec<Option<TestResult>> {
        let _writer = lock(&self.writer);
        let ports = self.read().store.ports().to_vec();
        let written: Vec<_> = ports
            .iter()
            .map(|&port| (port, self.logs.append_cleared(port)))
            .collect();
        let mut state = self.write();
        for (port, result) in written {
            self.note_write(&mut state, port, result, || self.logs.path(port));
        }
        state.store.clear_latest();
        self.publish(Event::Cleared);
        state.store.latest()
    }

    /// Calls `history` with every result recorded so far and `hook` around
    /// every record from now on, with no test missed or seen twice in
    /// between.
    pub fn watch_records(&self, history: impl FnOnce(&ResultsStore), hook: Box<dyn RecordHook>) {
        let _writer = lock(&self.writer);
        history(&self.read().store);
        crate::locks::write(&self.hooks).push(hook);
    }

    /// A receiver of every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// The live status of every port.
    pub fn status(&self) -> Status {
        self.read().status()
    }

    /// The served ports, in order.
    pub fn ports(&self) -> Vec<u16> {
        self.read().store.ports().to_vec()
    }

    /// One entry per port, in port order: its latest result, or `None`.
    pub fn latest(&self) -> Vec<Option<TestResult>> {
        self.read().store.latest()
    }

    /// Every recorded result passing `filter`, oldest first.
    pub fn results(&self, filter: &ResultFilter) -> Vec<TestResult> {
        self.read()
            .store
            .iter()
            .filter(|r| filter.matches(r))
            .collect()
    }

    /// The test `id` names: its result and its log file, opened with the
    /// writer held so no rotation is half done (see [`entry::open`]), and
    /// checked (without the locks) to still hold that test's entry at the
    /// offset ([`recorded_at`]).
    pub fn open_entry(&self, id: &TestId) -> Option<(TestResult, Result<File, EntryError>, u64)> {
        let (result, file, offset) = {
            let _writer = lock(&self.writer);
            entry::open(&self.read().store, &self.logs, id)?
        };
        let file = file
            .map_err(EntryError::from)
            .and_then(|file| recorded_at(file, id.log, offset, result.timestamp));
        Some((result, file, offset))
    }

    /// Reads several views under one lock, so they agree with each other.
    pub fn with_store<T>(&self, f: impl FnOnce(&ResultsStore, &Status) -> T) -> T {
        let state = self.read();
        f(&state.store, &state.status())
    }

    /// The current log write error, if any.
    pub fn log_error(&self) -> Option<String> {
        self.read().log_error()
    }

    /// Records the outcome of a log write: an error is logged the first
    /// time it is seen and shown in the status until that port's log is
    /// written successfully again.
    fn note_write(
        &self,
        state: &mut State,
        port: u16,
        result: io::Result<()>,
        path: impl Fn() -> PathBuf,
    ) {
        let before = state.log_error();
        match result {
            Ok(()) => {
                state.log_errors.remove(&port);
            }
            Err(err) => {
                let msg = format!("cannot write {}: {err}", path().display());
                if lock(&self.reported).insert(msg.clone()) {
                    tracing::error!(port, "{msg}");
                }
                state.log_errors.insert(port, msg);
            }
        }
        if state.log_error() != before {
            self.publish(Event::Status(state.status()));
        }
    }

    /// Sends an event; having no subscribers is fine. Called with the state
    /// lock held, so events leave in the order the state changed.
    fn publish(&self, event: Event) {
        let _ = self.events.send(event);
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        crate::locks::read(&self.state)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        crate::locks::write(&self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(port: u16, timestamp: i64, name: Option<&str>) -> TestResult {
        TestResult {
            name: name.map(str::to_string),
            client: Some("192.0.2.1".into()),
            ..crate::store::results::tests::result(port, timestamp)
        }
    }

    #[test]
    fn filter_matches_every_set_field() {
        let r = result(5201, 1000, Some("alice"));
        assert!(ResultFilter::default().matches(&r));
        assert!(ResultFilter {
            port: Some(5201),
            ..Default::default()
        }
        .matches(&r));
        assert!(!ResultFilter {
            port: Some(5202),
            ..Default::default()
        }
        .matches(&r));
        assert!(ResultFilter {
            name: Some("alice".into()),
            ..Default::default()
        }
        .matches(&r));
        // A name is exact; `name_part` is any part, in any case.
        assert!(!ResultFilter {
            name: Some("LIC".into()),
            ..Default::default()
        }
        .matches(&r));
        assert!(ResultFilter {
            name_part: Some("LIC".into()),
            ..Default::default()
        }
        .matches(&r));
        assert!(!ResultFilter {
            name: Some("bob".into()),
            ..Default::default()
        }
        .matches(&r));
        assert!(ResultFilter {
            since: Some(1000.0),
            ..Default::default()
        }
        .matches(&r));
        assert!(!ResultFilter {
            since: Some(1000.5),
            ..Default::default()
        }
        .matches(&r));
        let anonymous = result(5201, 1000, None);
        assert!(!ResultFilter {
            name: Some(String::new()),
            ..Default::default()
        }
        .matches(&anonymous));
    }

    #[test]
    fn a_failed_write_is_reported_and_the_result_still_shown() {
        use crate::store::log::tests::entry;
        let tmp = tempfile::tempdir().unwrap();
        let logs = LogDir::open(tmp.path()).unwrap();
        // Writes to /dev/full fail with ENOSPC, as on a full disk.
        std::os::unix::fs::symlink("/dev/full", logs.path(5201)).unwrap();
        let hub = Hub::new(logs.clone(), ResultsStore::new(&[5201, 5202]));
        let mut events = hub.subscribe();
        hub.record(5201, &entry(10, "a"));
        let error = hub.log_error().expect("the error is shown");
        assert!(error.contains("cannot write") && error.contains("port-5201.json"));
        let Ok(Event::Status(status)) = events.try_recv() else {
            panic!("the status changed first")
        };
        assert_eq!(status.log_error, Some(error));
        let Ok(Event::Result { result }) = events.try_recv() else {
            panic!("then the result")
        };
        assert_eq!(result.name.as_deref(), Some("a"));
        let latest: Vec<_> = hub
            .latest()
            .into_iter()
            .map(|r| r.map(|r| r.port))
            .collect();
        assert_eq!(latest, vec![Some(5201), None]);

        // Another port's log is written, then cleared with a `{}` marker.
        hub.record(5202, &entry(11, "b"));
        assert_eq!(hub.clear(), vec![None, None]);
        assert_eq!(
            std::fs::read_to_string(logs.path(5202)).unwrap(),
            crate::report::json::to_pretty(&entry(11, "b")) + "{}\n"
        );
        assert_eq!(hub.results(&ResultFilter::default()).len(), 2);
    }

    #[test]
    fn events_serialise_with_a_type_tag() {
        let progress = Event::Progress {
            port: 5201,
            bps: 1.5e9,
            seconds: 2.0,
        };
        assert_eq!(
            serde_json::to_value(&progress).unwrap(),
            serde_json::json!({"type": "progress", "port": 5201, "bps": 1.5e9, "seconds": 2.0})
        );
        assert_eq!(
            serde_json::to_value(Event::Cleared).unwrap(),
            serde_json::json!({"type": "cleared"})
        );
        let status = Event::Status(Status {
            version: "1".into(),
            ports: vec![PortStatus::idle(5201)],
            log_error: None,
        });
        let v = serde_json::to_value(&status).unwrap();
        assert_eq!(v["type"], "status");
        assert_eq!(v["ports"][0]["port"], 5201);
        assert_eq!(v["ports"][0]["state"], "idle");
        assert!(v["ports"][0]["client"].is_null());
        let r = Event::Result {
            result: Box::new(result(5201, 1, Some("a"))),
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["type"], "result");
        assert_eq!(v["result"]["name"], "a");
    }
}
