//! The one write path of finished records, apart from the live state: a
//! finished entry (an iperf3 test's, an ndt7 subtest's, a probe's) is
//! shown to the record hooks (the forwarding queue, the metrics), appended
//! to its log with one write (the log rotated first when it would grow too
//! big, the rotated copy indexed), and handed, finished, to whoever
//! publishes it (the hub, [`crate::hub`]). Each kind of record reaches it
//! through [`Kind`]: [`IperfTest`], [`Ndt7Subtest`], [`Probe`].
//!
//! Records are serialised by the writer lock, held from the hooks' note
//! through the publication, so the order of entries in the files is the
//! order the history sees. Readers never wait for it while no rotation is
//! under way: an entry is found by its id between two equal rotation marks
//! of the log directory ([`Recorder::settled`]).

use std::io;
use std::sync::{Mutex, RwLock};

use crate::analysis::test_result::TestResult;
use crate::files::log_dir::{LogDir, Recorded};
use crate::history::ids::LogKey;
use crate::locks::lock;

mod ndt7;
mod probe;
mod test;

pub use ndt7::Ndt7Subtest;
pub use probe::Probe;
pub use test::IperfTest;

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

/// One kind of finished record (an iperf3 test, an ndt7 subtest, a
/// probe), as the recorder takes it. A new kind is one more implementation
/// (a file of this module), beside its log's file parts in
/// [`crate::files`] and its result object in [`crate::analysis`].
pub trait Kind {
    /// The port its result is shown under.
    fn port(&self) -> u16;
    /// The log it is appended to.
    fn log(&self) -> LogKey;
    /// Its JSON as the hooks see it, made once: `None` when it is made
    /// only for the hooks and none listens (`hooked` false).
    fn value(&self, hooked: bool) -> Option<serde_json::Value>;
    /// Appends it to its log in `logs`, summarised from `value` (what
    /// [`Kind::value`] made) when there is one.
    fn append(&self, logs: &LogDir, value: Option<&serde_json::Value>) -> Recorded;
}

/// What one record did, handed to its publisher.
#[derive(Debug)]
pub struct Finished {
    /// The port its result is shown under.
    pub port: u16,
    /// The log written.
    pub log: LogKey,
    /// The result, whether the write succeeded, and any rotation.
    pub recorded: Recorded,
}

/// How often a reader tries to find an entry between two rotation marks
/// before it waits for the writer instead.
const TRIES: usize = 3;

/// The record path: the logs, the hooks, the writer lock.
pub struct Recorder {
    logs: LogDir,
    /// Serialises records with their publication, so the order of entries
    /// and `{}` markers in the files is the order the history saw (and a
    /// restart rebuilds the same latest table).
    writer: Mutex<()>,
    /// Called around every record ([`Recorder::watch`]).
    hooks: RwLock<Vec<Box<dyn RecordHook>>>,
}

impl Recorder {
    /// A recorder writing into `logs`.
    pub fn new(logs: LogDir) -> Recorder {
        Recorder {
            logs,
            writer: Mutex::new(()),
            hooks: RwLock::new(Vec::new()),
        }
    }

    /// The log directory written.
    pub fn logs(&self) -> &LogDir {
        &self.logs
    }

    /// Records one finished `entry`: the hooks are told, the entry is
    /// appended to its log (rotated first if need be, the rotated copy
    /// then indexed), the hooks are told it was handled, and `publish`
    /// gets what was done, before the next record starts.
    pub fn record(&self, entry: &dyn Kind, publish: impl FnOnce(Finished)) {
        let _writer = lock(&self.writer);
        let port = entry.port();
        let value = {
            let hooks = crate::locks::read(&self.hooks);
            let value = entry.value(!hooks.is_empty());
            if let (Some(value), false) = (&value, hooks.is_empty()) {
                hooks.iter().for_each(|h| h.before_write(port, value));
            }
            value
        };
        let recorded = entry.append(&self.logs, value.as_ref());
        if let Some(value) = &value {
            let result = recorded.result.as_ref();
            let hooks = crate::locks::read(&self.hooks);
            hooks.iter().for_each(|h| h.after_write(result, value));
        }
        let rotated = recorded.rotated;
        publish(Finished {
            port,
            log: entry.log(),
            recorded,
        });
        if let Some(rotated) = rotated {
            if rotated.keep > 0 {
                self.logs.index_rotated(rotated.log);
            }
        }
        self.logs.rotation_settled();
    }

    /// Appends the `{}` clear marker to the log of each of `ports`, then
    /// calls `publish` with how each write went, before any record.
    pub fn clear<T>(
        &self,
        ports: &[u16],
        publish: impl FnOnce(Vec<(u16, io::Result<()>)>) -> T,
    ) -> T {
        let _writer = lock(&self.writer);
        let written = (ports.iter())
            .map(|&port| (port, self.logs.append_cleared(port)))
            .collect();
        publish(written)
    }

    /// Calls `before` and adds `hook` around every record from now on,
    /// with no record in between.
    pub fn watch(&self, before: impl FnOnce(), hook: Box<dyn RecordHook>) {
        let _writer = lock(&self.writer);
        before();
        crate::locks::write(&self.hooks).push(hook);
    }

    /// What `find` finds of the files by generation, with no rotation half
    /// done: tried between two equal rotation marks (no writer's lock,
    /// so a slow record never holds a reader up), and only while a
    /// rotation is under way with the writer's lock held.
    pub fn settled<T>(&self, find: impl Fn() -> T) -> T {
        for _ in 0..TRIES {
            let mark = self.logs.rotation_mark();
            if mark % 2 == 1 {
                break;
            }
            let found = find();
            if self.logs.rotation_mark() == mark {
                return found;
            }
        }
        let _writer = lock(&self.writer);
        find()
    }
}
