//! The live state the dashboard shows, and the broadcast of its changes.
//!
//! The iperf3 side reports into the hub (a test started, progress, a finished
//! test's log entry); the hub hands entries to the recorder
//! ([`crate::recorder`], which logs them and tells the record hooks), keeps
//! the history of results, and publishes [`Event`]s on a tokio broadcast
//! channel that websocket clients subscribe to. A slow subscriber lags and
//! skips ahead; it never slows a test. The web side takes the result type
//! from here ([`TestResult`]) rather than from the analysis.
//!
//! Two locks, never one inside the other but for [`Hub::with_store`]
//! (history, then live): the live status of the ports (what `progress`
//! and `test_started` touch, never held for long) and the history (read
//! long by pages and exports, written briefly once a record is done; a
//! rotation's rebuild is made under the read lock and swapped in).
//! Nothing here does network I/O or awaits; callable from any thread or
//! task.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use serde::Serialize;
use tokio::sync::broadcast;

pub use crate::analysis::test_result::TestResult;
use crate::files::entry::{self, EntryError};
use crate::files::entry_check::recorded_at;
use crate::files::log_dir::LogDir;
use crate::history::ids::{LogKey, TestId};
use crate::history::results_store::ResultsStore;
use crate::json::Json;
use crate::locks::lock;
use crate::ndt7::record::Record;
pub use crate::recorder::RecordHook;
use crate::recorder::{Finished, IperfTest, Kind, Ndt7Subtest, Probe, Recorder};

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
pub use crate::history::query::Filter as ResultFilter;

/// What changes while tests run: the ports' status and the log errors.
struct Live {
    ports: Vec<PortStatus>,
    /// Per port, the message of a log write that failed and has not
    /// succeeded since.
    log_errors: BTreeMap<u16, String>,
    /// Log write errors already logged (each is logged once).
    reported: HashSet<String>,
}

impl Live {
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
    recorder: Recorder,
    /// Every result; written only from the recorder's publication (one
    /// record at a time), read by anyone.
    history: RwLock<ResultsStore>,
    live: Mutex<Live>,
    events: broadcast::Sender<Event>,
}

impl Hub {
    /// A hub serving `store` (as loaded from `logs`) for these ports.
    pub fn new(logs: LogDir, store: ResultsStore) -> Arc<Hub> {
        let ports = store.ports().iter().map(|&p| PortStatus::idle(p)).collect();
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Arc::new(Hub {
            recorder: Recorder::new(logs),
            history: RwLock::new(store),
            live: Mutex::new(Live {
                ports,
                log_errors: BTreeMap::new(),
                reported: HashSet::new(),
            }),
            events,
        })
    }

    /// A test began on `port` (parameters received).
    pub fn test_started(&self, port: u16, client: IpAddr, name: Option<String>) {
        self.test_started_with(port, client, name, Plan::default());
    }

    /// A test started on `port`, with what its client asked for.
    pub fn test_started_with(&self, port: u16, client: IpAddr, name: Option<String>, plan: Plan) {
        let mut live = self.live();
        let Some(status) = live.port_mut(port) else {
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
        let event = Event::Status(live.status());
        self.publish(event);
    }

    /// About once a second while a test runs: its total rate over the last
    /// interval, and the seconds since it started.
    pub fn progress(&self, port: u16, bps: f64, seconds: f64) {
        let mut live = self.live();
        if let Some(status) = live.port_mut(port) {
            status.bps = Some(bps);
            status.seconds = Some(seconds);
        }
        self.publish(Event::Progress { port, bps, seconds });
    }

    /// The test on `port` is over (recorded or not); the port is idle.
    pub fn test_ended(&self, port: u16) {
        let mut live = self.live();
        let Some(status) = live.port_mut(port) else {
            return;
        };
        *status = PortStatus::idle(port);
        let event = Event::Status(live.status());
        self.publish(event);
    }

    /// Records one finished test's log `entry`: the recorder appends it to
    /// the port's log with a single write and summarises it; the result
    /// joins the history and is announced. A failed write is reported
    /// (standard error, status) and the result is still shown.
    pub fn record(&self, port: u16, entry: &Json) {
        self.record_kind(&IperfTest { port, entry });
    }

    /// Records one finished ndt7 subtest as [`Hub::record`] does: appended
    /// to the ndt7 log, then shown and announced (its `port` is the
    /// dashboard's).
    pub fn record_ndt7(&self, record: &Record) {
        self.record_kind(&Ndt7Subtest(record));
    }

    /// Records one probe's entry (the stock client's layout) as
    /// [`Hub::record`] does: appended to the probes' log, then shown and
    /// announced. Its port is 0: a probe ran on no port of the box.
    pub fn record_probe(&self, entry: &Json) {
        self.record_kind(&Probe(entry));
    }

    /// Records one finished record of any kind as [`Hub::record`] does:
    /// appended to its log, then shown and announced.
    pub fn record_kind(&self, record: &dyn Kind) {
        self.recorder.record(record, |f| self.recorded(f));
    }

    /// Notes a finished record's log write, and shows and announces its
    /// result. The history is written only briefly: a rotation that drops
    /// tests is rebuilt under the read lock first.
    fn recorded(&self, finished: Finished) {
        let recorded = finished.recorded;
        self.note_write(finished.port, finished.log, recorded.written);
        let rebuilt =
            (recorded.rotated).and_then(|r| self.read().rebuilt_for_rotation(r.log, r.keep));
        let mut history = crate::locks::write(&self.history);
        if let Some(rotated) = recorded.rotated {
            history.apply_rotation(rotated.log, rotated.keep, rebuilt);
        }
        if let Some(result) = recorded.result {
            let result = history.push(result);
            self.publish(Event::Result {
                result: Box::new(result),
            });
        }
    }

    /// Empties the latest-per-port table (history is kept), appends a `{}`
    /// marker to every port's log so the cleared state survives a restart,
    /// and returns the new (empty) latest table.
    pub fn clear(&self) -> Vec<Option<TestResult>> {
        let ports = self.ports();
        self.recorder.clear(&ports, |written| {
            for (port, result) in written {
                self.note_write(port, LogKey::Port(port), result);
            }
            let mut history = crate::locks::write(&self.history);
            history.clear_latest();
            self.publish(Event::Cleared);
            history.latest()
        })
    }

    /// Calls `history` with every result recorded so far and `hook` around
    /// every record from now on, with no test missed or seen twice in
    /// between.
    pub fn watch_records(&self, history: impl FnOnce(&ResultsStore), hook: Box<dyn RecordHook>) {
        self.recorder.watch(|| history(&self.read()), hook);
    }

    /// A receiver of every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// The live status of every port.
    pub fn status(&self) -> Status {
        self.live().status()
    }

    /// The served ports, in order.
    pub fn ports(&self) -> Vec<u16> {
        self.live().ports.iter().map(|p| p.port).collect()
    }

    /// One entry per port, in port order: its latest result, or `None`.
    pub fn latest(&self) -> Vec<Option<TestResult>> {
        self.read().latest()
    }

    /// Every recorded result passing `filter`, oldest first.
    pub fn results(&self, filter: &ResultFilter) -> Vec<TestResult> {
        self.read().iter().filter(|r| filter.matches(r)).collect()
    }

    /// The test `id` names: its result and its log file, opened with no
    /// rotation half done (see [`entry::open`], [`Recorder::settled`]:
    /// without waiting for a record in progress), and checked (without
    /// any lock) to still hold that test's entry at the offset
    /// ([`recorded_at`]).
    pub fn open_entry(&self, id: &TestId) -> Option<(TestResult, Result<File, EntryError>, u64)> {
        let logs = self.recorder.logs();
        let (result, file, offset) = self
            .recorder
            .settled(|| entry::open(&self.read(), logs, id))?;
        let file = file
            .map_err(EntryError::from)
            .and_then(|file| recorded_at(file, id.log, offset, result.timestamp));
        Some((result, file, offset))
    }

    /// Reads several views under one lock, so they agree with each other.
    pub fn with_store<T>(&self, f: impl FnOnce(&ResultsStore, &Status) -> T) -> T {
        let history = self.read();
        let status = self.status();
        f(&history, &status)
    }

    /// The current log write error, if any.
    pub fn log_error(&self) -> Option<String> {
        self.live().log_error()
    }

    /// Records the outcome of a log write to `log` of `port`: an error is
    /// logged the first time it is seen and shown in the status until that
    /// port's log is written successfully again.
    fn note_write(&self, port: u16, log: LogKey, result: io::Result<()>) {
        let mut live = self.live();
        let before = live.log_error();
        match result {
            Ok(()) => {
                live.log_errors.remove(&port);
            }
            Err(err) => {
                let path = self.recorder.logs().log_path(log, 0);
                let msg = format!("cannot write {}: {err}", path.display());
                if live.reported.insert(msg.clone()) {
                    tracing::error!(port, "{msg}");
                }
                live.log_errors.insert(port, msg);
            }
        }
        if live.log_error() != before {
            self.publish(Event::Status(live.status()));
        }
    }

    /// Sends an event; having no subscribers is fine. Called with the lock
    /// of what changed held, so events leave in the order it changed.
    fn publish(&self, event: Event) {
        let _ = self.events.send(event);
    }

    fn read(&self) -> RwLockReadGuard<'_, ResultsStore> {
        crate::locks::read(&self.history)
    }

    fn live(&self) -> MutexGuard<'_, Live> {
        lock(&self.live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::within;
    use std::time::Duration;

    fn result(port: u16, timestamp: i64, name: Option<&str>) -> TestResult {
        TestResult {
            name: name.map(str::to_string),
            client: Some("192.0.2.1".into()),
            ..crate::history::results_store::tests::result(port, timestamp)
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
        use crate::files::log_dir::tests::entry;
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
            crate::json::to_pretty(&entry(11, "b")) + "{}\n"
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

    /// A receiver's queue on a slow disk: the forwarder syncs its queue in
    /// `before_write`; this one holds there until the test lets it go (or
    /// drops the sender, failing).
    struct SlowQueue {
        entered: std::sync::mpsc::Sender<()>,
        release: Mutex<std::sync::mpsc::Receiver<()>>,
    }

    impl RecordHook for SlowQueue {
        fn before_write(&self, _port: u16, _entry: &serde_json::Value) {
            let _ = self.entered.send(());
            let _ = lock(&self.release).recv_timeout(Duration::from_secs(60));
        }

        fn after_write(&self, _result: Option<&TestResult>, _entry: &serde_json::Value) {}
    }

    #[test]
    fn a_detail_read_answers_while_a_slow_recording_is_in_progress() {
        use crate::files::log_dir::tests::entry;
        use std::sync::mpsc::channel;
        let tmp = tempfile::tempdir().unwrap();
        let hub = Hub::new(
            LogDir::open(tmp.path()).unwrap(),
            ResultsStore::new(&[5201]),
        );
        hub.record(5201, &entry(10, "a"));
        let first = hub.latest()[0].clone().expect("recorded");
        let id = TestId::parse(&first.id).expect("an id");
        let ((entered_tx, entered), (release, release_rx)) = (channel(), channel());
        let queue = SlowQueue {
            entered: entered_tx,
            release: Mutex::new(release_rx),
        };
        hub.watch_records(|_| {}, Box::new(queue));
        let recording = {
            let hub = Arc::clone(&hub);
            std::thread::spawn(move || hub.record(5201, &entry(20, "b")))
        };
        entered
            .recv_timeout(Duration::from_secs(10))
            .expect("the recording reached the queue");

        let hub_ = Arc::clone(&hub);
        let (read, ok) = within(Duration::from_secs(5), move || {
            let (result, file, _) = hub_.open_entry(&id).expect("found");
            (result.id, file.is_ok())
        });
        assert_eq!((read, ok), (first.id, true));
        release.send(()).unwrap();
        recording.join().unwrap();
        assert_eq!(hub.results(&ResultFilter::default()).len(), 2);
    }

    #[test]
    fn progress_and_starts_answer_while_the_history_is_read_long() {
        use std::sync::mpsc::channel;
        let tmp = tempfile::tempdir().unwrap();
        let hub = Hub::new(
            LogDir::open(tmp.path()).unwrap(),
            ResultsStore::new(&[5201]),
        );
        let ((held_tx, held), (release, release_rx)) = (channel(), channel::<()>());
        let reader = {
            let hub = Arc::clone(&hub);
            std::thread::spawn(move || {
                hub.with_store(|_, _| {
                    held_tx.send(()).unwrap();
                    let _ = release_rx.recv_timeout(Duration::from_secs(60));
                })
            })
        };
        held.recv_timeout(Duration::from_secs(10))
            .expect("the reader holds the history");
        let hub_ = Arc::clone(&hub);
        within(Duration::from_secs(5), move || {
            hub_.test_started(5201, "192.0.2.1".parse().unwrap(), None);
            hub_.progress(5201, 1e9, 1.0);
        });
        release.send(()).unwrap();
        reader.join().unwrap();
        assert_eq!(hub.status().ports[0].bps, Some(1e9));
    }

    #[test]
    fn entries_are_found_in_rotated_copies_once_the_rotation_settles() {
        use crate::config::Retention;
        use crate::files::log_dir::tests::entry;
        let tmp = tempfile::tempdir().unwrap();
        let one = crate::json::to_pretty(&entry(10, "a")).len() as u64;
        let retention = Retention {
            max_size: Some(one + 1),
            keep: 2,
        };
        let logs = LogDir::open(tmp.path()).unwrap().with_retention(retention);
        let hub = Hub::new(logs.clone(), ResultsStore::new(&[5201]));
        for (secs, name) in [(10, "a"), (11, "b"), (12, "c"), (13, "d")] {
            hub.record(5201, &entry(secs, name));
        }
        // Two rotations, each marked and settled; the first test is gone.
        assert_eq!(logs.rotation_mark(), 6);
        let shown = hub.results(&ResultFilter::default());
        let names: Vec<_> = shown.iter().map(|r| r.name.clone().unwrap()).collect();
        assert_eq!(names, ["b", "c", "d"]);
        for r in shown {
            let id = TestId::parse(&r.id).unwrap();
            let (found, file, _) = hub.open_entry(&id).expect("found");
            assert_eq!(found.id, r.id);
            assert!(file.is_ok(), "{}", r.id);
        }
    }
}
