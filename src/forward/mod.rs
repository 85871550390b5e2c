//! Forwarding of recorded tests to other systems (`--forward URL`,
//! repeatable): each recorded test, iperf3 or ndt7, is queued on disk for
//! every receiver before it is announced as recorded, and a task per
//! receiver sends the queue oldest first, off the test path.
//!
//! [`target`] holds the pure parts (URLs, bodies, back-off), [`queue`] the
//! on-disk queue, [`pending`] the write-ahead note that covers the moment
//! between a test's log write and its queueing, [`send`] one HTTP request;
//! `disk` makes their files durable. Delivery is at least once: a
//! test leaves the queue only after a 2xx answer (and that removal is made
//! durable before the next test is sent), so a receiver may see a test
//! again only if the box stopped between the answer and the removal; the
//! `Idempotency-Key: <host>/<id>` header lets it recognise the repeat.
//! A test the receiver refuses for good (a 4xx other than 408 and 429)
//! goes to the queue's dead-letter directory instead of blocking those
//! behind it. Status readers see the queue's size without waiting for its
//! disk work.

mod disk;
pub mod pending;
pub mod queue;
pub mod send;
pub mod target;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use thiserror::Error;
use tokio::sync::Notify;
use tracing::{error, info, warn};

use crate::analysis::test_result::TestResult;
use crate::config::ForwardConfig;
use crate::locks::lock;
use crate::shutdown::Shutdown;
use pending::Pending;
use queue::{Bounds, Counts, Queue};
use target::{Target, TargetError};

/// The directory under the log directory holding one queue per receiver.
pub const QUEUE_DIR: &str = "forward";

/// Why forwarding cannot start.
#[derive(Debug, Error)]
pub enum ForwardError {
    /// A `--forward` URL is not usable.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// A queue directory cannot be created or read.
    #[error("forwarding queue {0}")]
    Queue(PathBuf, #[source] io::Error),
}

/// One receiver's state as `/api/status` (member `forward`) and `/metrics`
/// show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetStatus {
    /// The `--forward` URL.
    pub target: String,
    /// Tests waiting.
    pub queued: u64,
    /// Bytes waiting on disk.
    pub bytes: u64,
    /// When the oldest waiting test was queued, unix seconds.
    pub oldest_queued: Option<i64>,
    /// Tests delivered (2xx) since start.
    pub delivered: u64,
    /// Failed attempts since start.
    pub failed: u64,
    /// Tests dropped unsent since start (bounds).
    pub dropped: u64,
    /// Tests the receiver refused for good (a 4xx other than 408 and 429)
    /// since start, moved to the dead-letter directory.
    pub rejected: u64,
    /// Tests in the dead-letter directory now.
    pub dead_letters: u64,
    /// The latest failure, if any since start.
    pub last_error: Option<String>,
    /// When it happened, unix seconds.
    pub last_error_at: Option<i64>,
}

#[derive(Debug, Default)]
struct Stats {
    delivered: u64,
    failed: u64,
    dropped: u64,
    rejected: u64,
    last_error: Option<String>,
    last_error_at: Option<i64>,
}

/// One receiver: its queue, its counters, and the wake-up of its sender.
/// The queue's lock is held across its disk work; `counts` and `stats`
/// never are.
struct Lane {
    target: Target,
    queue: Mutex<Queue>,
    counts: Arc<Counts>,
    stats: Mutex<Stats>,
    wake: Notify,
    retry_max: Duration,
}

/// Every receiver; shared (`Arc`) by the hub's record path, the senders and
/// the dashboard.
pub struct Forwarder {
    host: String,
    lanes: Vec<Arc<Lane>>,
    pending: Mutex<Pending>,
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Forwarder {
    /// Opens a queue under `<log_dir>/forward/` for every URL of `config`
    /// (what an earlier run left waits again); `None` when there is none.
    /// `host` is what the documents name as their origin.
    pub fn open(
        config: &ForwardConfig,
        log_dir: &Path,
        host: String,
    ) -> Result<Option<Arc<Forwarder>>, ForwardError> {
        if config.urls.is_empty() {
            return Ok(None);
        }
        let bounds = Bounds {
            max_count: config.max_count.max(1),
            max_bytes: config.max_bytes,
            max_age_secs: i64::try_from(config.max_age.as_secs()).unwrap_or(i64::MAX),
        };
        let mut lanes = Vec::new();
        for url in &config.urls {
            let target = Target::parse(url)?;
            let dir = log_dir.join(QUEUE_DIR).join(target.queue_name());
            let queue = Queue::open(&dir, bounds).map_err(|e| ForwardError::Queue(dir, e))?;
            lanes.push(Arc::new(Lane {
                target,
                counts: queue.counts(),
                queue: Mutex::new(queue),
                stats: Mutex::new(Stats::default()),
                wake: Notify::new(),
                retry_max: config.retry_max,
            }));
        }
        let dir = log_dir.join(QUEUE_DIR).join("pending");
        let pending = Pending::open(&dir).map_err(|e| ForwardError::Queue(dir, e))?;
        Ok(Some(Arc::new(Forwarder {
            host,
            lanes,
            pending: Mutex::new(pending),
        })))
    }

    /// Before `entry` is appended to `port`'s log: notes it durably, so a
    /// stop before [`Forwarder::recorded`] cannot lose the test.
    pub fn writing(&self, port: u16, entry: &Value) {
        if let Err(e) = lock(&self.pending).write(port, entry) {
            error!(port, error = %e, "cannot note a test for forwarding");
        }
    }

    /// After the log write: queues the recorded test (if the entry started
    /// one) and drops the note.
    pub fn recorded(&self, result: Option<&TestResult>, entry: &Value) {
        if let Some(result) = result {
            self.enqueue(result, entry);
        }
        if let Err(e) = lock(&self.pending).clear() {
            warn!(error = %e, "cannot remove a forwarding note");
        }
    }

    /// At start-up, with the loaded `history`: a test whose record was
    /// interrupted after its log write is queued now (unless a queue has it
    /// already); one whose log write never happened is forgotten.
    pub fn recover(&self, history: &[TestResult]) {
        let leftovers = match lock(&self.pending).leftovers() {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "cannot read the forwarding notes");
                return;
            }
        };
        for note in leftovers {
            if let Some(result) = pending::find_recorded(history, note.port, &note.entry) {
                let document = target::document(&self.host, result, &note.entry);
                let id = document["id"].as_str().unwrap_or_default().to_string();
                let body = serde_json::to_vec(&document).unwrap_or_default();
                for lane in &self.lanes {
                    let mut queue = lock(&lane.queue);
                    if queue_holds(&queue, &id) {
                        continue;
                    }
                    match queue.push(&body, unix_now()) {
                        Ok(dropped) => lane.dropped(dropped),
                        Err(e) => {
                            error!(receiver = %lane.target.url, error = %e, "cannot queue a test for forwarding")
                        }
                    }
                }
                info!(port = note.port, id = %id, "an interrupted record queued for forwarding");
            }
            if let Err(e) = disk::remove_durably(&note.path) {
                warn!(error = %e, "cannot remove a forwarding note");
            }
        }
    }

    /// Queues one recorded test for every receiver, durably, and wakes the
    /// senders. Called on the record path before the test is announced.
    pub fn enqueue(&self, result: &TestResult, entry: &Value) {
        let document = target::document(&self.host, result, entry);
        let body = serde_json::to_vec(&document).unwrap_or_default();
        let now = unix_now();
        for lane in &self.lanes {
            let pushed = lock(&lane.queue).push(&body, now);
            match pushed {
                Ok(dropped) => lane.dropped(dropped),
                Err(e) => {
                    error!(receiver = %lane.target.url, error = %e, "cannot queue a test for forwarding");
                    lane.failed(format!("cannot queue: {e}"));
                }
            }
            lane.wake.notify_one();
        }
    }

    /// Runs a sender per receiver until `shutdown` fires.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        let mut tasks = tokio::task::JoinSet::new();
        for lane in &self.lanes {
            tasks.spawn(Arc::clone(lane).run(shutdown.clone()));
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Every receiver's state, in `--forward` order.
    pub fn status(&self) -> Vec<TargetStatus> {
        self.lanes.iter().map(|l| l.status()).collect()
    }
}

impl Lane {
    fn status(&self) -> TargetStatus {
        let sizes = self.counts.read();
        let s = lock(&self.stats);
        TargetStatus {
            target: self.target.url.clone(),
            queued: sizes.queued,
            bytes: sizes.bytes,
            oldest_queued: sizes.oldest_queued,
            delivered: s.delivered,
            failed: s.failed,
            dropped: s.dropped,
            rejected: s.rejected,
            dead_letters: sizes.dead_letters,
            last_error: s.last_error.clone(),
            last_error_at: s.last_error_at,
        }
    }

    fn dropped(&self, n: usize) {
        if n > 0 {
            warn!(receiver = %self.target.url, dropped = n, "forwarding queue full or too old: oldest tests dropped unsent");
            lock(&self.stats).dropped += n as u64;
        }
    }

    fn failed(&self, message: String) {
        let mut s = lock(&self.stats);
        s.failed += 1;
        s.last_error = Some(message);
        s.last_error_at = Some(unix_now());
    }

    /// Runs `f` on the queue on a blocking thread (it reads, unlinks and
    /// syncs files).
    async fn with_queue<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Queue) -> T + Send + 'static,
    ) -> Option<T> {
        let lane = Arc::clone(self);
        tokio::task::spawn_blocking(move || f(&mut lock(&lane.queue)))
            .await
            .ok()
    }

    /// Sends the queue, oldest first, until `shutdown`: on 2xx the test is
    /// removed; on a refusal for good it is moved to the dead-letter
    /// directory; otherwise the sender backs off and tries the same test
    /// again. A queue that cannot be read or changed is backed off from
    /// too, never spun on.
    async fn run(self: Arc<Self>, shutdown: Shutdown) {
        let url = self.target.url.clone();
        let mut backoff = Backoff::new(self.retry_max);
        loop {
            let next = self
                .with_queue(|q| (q.expire(unix_now()), q.next_to_send()))
                .await;
            let Some((expired, next)) = next else { return };
            self.dropped(expired);
            let (item, body) = match next {
                Ok(Some(next)) => next,
                Ok(None) => {
                    tokio::select! {
                        () = self.wake.notified() => continue,
                        () = shutdown.triggered() => return,
                    }
                }
                Err(e) => {
                    // Unreadable for now (not gone: that is `Ok`).
                    self.failed(format!("cannot read queue: {e}"));
                    if !backoff.wait(&shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            let document = match serde_json::from_slice::<Value>(&body) {
                Ok(doc) => doc,
                Err(e) => {
                    warn!(receiver = %url, error = %e, "dropping an unreadable forwarding entry");
                    self.dropped(1);
                    let removed = self.with_queue(move |q| q.remove(item.seq)).await;
                    if !self.settled(removed, &mut backoff, &shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            let key = target::idempotency_key(&document);
            let sent = tokio::select! {
                sent = send::post(&self.target, &key, self.target.body(&document)) => sent,
                () = shutdown.triggered() => return,
            };
            let settled = match sent {
                Ok(()) => {
                    lock(&self.stats).delivered += 1;
                    if backoff.reset() {
                        info!(receiver = %url, "forwarding works again");
                    }
                    self.with_queue(move |q| q.remove(item.seq)).await
                }
                Err(send::SendError::Status(status)) if target::refused_for_good(status) => {
                    warn!(receiver = %url, status, id = %document["id"], "the receiver refused a test for good; moved to the dead-letter directory");
                    self.failed(format!(
                        "answered {status}; moved to the dead-letter directory"
                    ));
                    lock(&self.stats).rejected += 1;
                    self.with_queue(move |q| q.dead_letter(item.seq)).await
                }
                Err(e) => {
                    let message = error_chain(&e);
                    if backoff.failures == 0 {
                        warn!(receiver = %url, error = %message, "forwarding failed; retrying with back-off");
                    }
                    self.failed(message);
                    if !backoff.wait(&shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            if !self.settled(settled, &mut backoff, &shutdown).await {
                return;
            }
        }
    }

    /// After a test left the queue: a failure to remove or move its file
    /// is reported and backed off from (the test is out of the queue
    /// anyway). `false` if shutdown came first.
    async fn settled(
        &self,
        done: Option<std::io::Result<()>>,
        backoff: &mut Backoff,
        shutdown: &Shutdown,
    ) -> bool {
        let Some(Err(e)) = done else { return true };
        error!(receiver = %self.target.url, error = %e, "cannot remove a test from the forwarding queue");
        self.failed(format!("cannot remove from queue: {e}"));
        backoff.wait(shutdown).await
    }
}

/// Whether a waiting test of `queue` has this id.
fn queue_holds(queue: &Queue, id: &str) -> bool {
    queue.items().any(|item| {
        queue
            .read(&item)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|d| d["id"] == id)
    })
}

/// Sleeps `wait`; `false` if shutdown came first.
async fn sleep_or_stop(wait: Duration, shutdown: &Shutdown) -> bool {
    tokio::select! {
        () = tokio::time::sleep(wait) => true,
        () = shutdown.triggered() => false,
    }
}

/// An error and its causes as one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The waits of one sender after failures in a row.
struct Backoff {
    failures: u32,
    cap: Duration,
    random: Jitter,
}

impl Backoff {
    fn new(cap: Duration) -> Backoff {
        Backoff {
            failures: 0,
            cap,
            random: Jitter::seeded(),
        }
    }

    /// Waits after one more failure; `false` if shutdown came first.
    async fn wait(&mut self, shutdown: &Shutdown) -> bool {
        let wait = target::backoff(self.failures, self.cap, self.random.unit());
        self.failures = self.failures.saturating_add(1);
        sleep_or_stop(wait, shutdown).await
    }

    /// After a success; whether there were failures before it.
    fn reset(&mut self) -> bool {
        std::mem::take(&mut self.failures) > 0
    }
}

/// A small xorshift generator for back-off jitter (not for secrets).
struct Jitter(u64);

impl Jitter {
    fn seeded() -> Jitter {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Jitter((nanos ^ u64::from(std::process::id()) << 32) | 1)
    }

    /// A number in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::summary::summarize;

    fn config(url: &str) -> ForwardConfig {
        ForwardConfig {
            urls: vec![url.to_string()],
            ..ForwardConfig::default()
        }
    }

    fn queued(f: &Forwarder) -> u64 {
        f.status()[0].queued
    }

    #[test]
    fn a_record_interrupted_after_its_log_write_is_queued_at_start_up() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config("http://127.0.0.1:9/in");
        let entry = crate::json::to_value(&crate::files::log_dir::tests::entry(10, "a"));
        let result = summarize(5201, &entry).unwrap();

        // A whole record: queued once, no note left.
        let f = Forwarder::open(&cfg, tmp.path(), "h".into())
            .unwrap()
            .unwrap();
        f.writing(5201, &entry);
        f.recorded(Some(&result), &entry);
        assert_eq!(queued(&f), 1);
        drop(f);
        let f = Forwarder::open(&cfg, tmp.path(), "h".into())
            .unwrap()
            .unwrap();
        f.recover(std::slice::from_ref(&result));
        assert_eq!(queued(&f), 1, "nothing to recover");

        // Stopped after the note (and the log write): queued at start-up.
        let other = crate::json::to_value(&crate::files::log_dir::tests::entry(20, "b"));
        let other_result = summarize(5201, &other).unwrap();
        f.writing(5201, &other);
        drop(f);
        let f = Forwarder::open(&cfg, tmp.path(), "h".into())
            .unwrap()
            .unwrap();
        f.recover(&[result.clone(), other_result.clone()]);
        assert_eq!(queued(&f), 2);
        // Stopped after queueing, before the note went: not queued twice.
        let fourth = crate::json::to_value(&crate::files::log_dir::tests::entry(40, "d"));
        let fourth_result = summarize(5201, &fourth).unwrap();
        f.writing(5201, &fourth);
        f.enqueue(&fourth_result, &fourth);
        assert_eq!(queued(&f), 3);
        drop(f);
        let f = Forwarder::open(&cfg, tmp.path(), "h".into())
            .unwrap()
            .unwrap();
        f.recover(&[result.clone(), other_result.clone(), fourth_result]);
        assert_eq!(queued(&f), 3, "no second copy of the same record");
        // Stopped before the log write: the test was never recorded.
        let third = crate::json::to_value(&crate::files::log_dir::tests::entry(30, "c"));
        f.writing(5201, &third);
        drop(f);
        let f = Forwarder::open(&cfg, tmp.path(), "h".into())
            .unwrap()
            .unwrap();
        f.recover(&[result, other_result]);
        assert_eq!(queued(&f), 3);
        let notes = tmp.path().join(QUEUE_DIR).join("pending");
        assert_eq!(std::fs::read_dir(notes).unwrap().count(), 0);
    }

    #[test]
    fn status_is_read_while_the_queue_is_busy_on_disk() {
        let tmp = tempfile::tempdir().unwrap();
        let f = Forwarder::open(&config("http://127.0.0.1:9/in"), tmp.path(), "h".into())
            .unwrap()
            .unwrap();
        let entry = crate::json::to_value(&crate::files::log_dir::tests::entry(10, "a"));
        f.enqueue(&summarize(5201, &entry).unwrap(), &entry);
        // The queue's lock held as a push or a removal holds it across a
        // disk sync that takes its time.
        let held = lock(&f.lanes[0].queue);
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = Arc::clone(&f);
        std::thread::spawn(move || {
            let _ = tx.send(reader.status());
        });
        let status = rx.recv_timeout(Duration::from_secs(5));
        drop(held);
        let status = status.expect("the status answered while the queue was locked");
        assert_eq!((status[0].queued, status[0].dead_letters), (1, 0));
    }
}
