//! One receiver's queue on disk: a directory holding one file per waiting
//! test, `<seq>-<queued unix seconds>.json`, oldest first by `seq`, and
//! beside them `dead/`, the tests the receiver refused for good.
//!
//! A test is added by writing a temporary file, syncing it, renaming it into
//! place and syncing the directory, so after [`Queue::push`] returns the test
//! survives a crash or power loss. A delivered test leaves the queue in
//! memory first and then on disk (unlink, then sync the directory), so a
//! receiver that answered 2xx is not sent that test again after a restart,
//! and a failed unlink or sync cannot make the sender try the same test
//! again and again; a file already gone is a test already done. A test
//! the receiver refused for good is moved to `dead/` the same way, where it
//! waits for a person (kept within the queue's count and bytes, oldest
//! dropped). The queue is bounded by count, bytes and age; what falls out
//! is the oldest, and is counted. Its size is published in [`Counts`],
//! which status readers see without waiting for the queue's disk work.

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use super::disk::{move_durably, remove_durably, write_durably};

/// The directory, inside a queue's, of the tests its receiver refused.
pub const DEAD_DIR: &str = "dead";

/// The queue's bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// Most tests waiting (and most kept in `dead/`).
    pub max_count: usize,
    /// Most bytes waiting (and most kept in `dead/`).
    pub max_bytes: u64,
    /// Tests queued longer ago than this many seconds are dropped.
    pub max_age_secs: i64,
}

/// One waiting test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    /// Its place in the queue (increasing).
    pub seq: u64,
    /// When it was queued, unix seconds.
    pub queued: i64,
    /// Its size on disk.
    pub len: u64,
}

/// The size of a queue as last changed, readable without its lock.
#[derive(Debug)]
pub struct Counts {
    queued: AtomicU64,
    bytes: AtomicU64,
    oldest: AtomicI64,
    dead: AtomicU64,
}

/// What [`Counts`] held when read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Tests waiting.
    pub queued: u64,
    /// Bytes waiting.
    pub bytes: u64,
    /// When the oldest waiting test was queued.
    pub oldest_queued: Option<i64>,
    /// Tests in `dead/`.
    pub dead_letters: u64,
}

impl Counts {
    /// The sizes as of the queue's latest change.
    pub fn read(&self) -> Sizes {
        let oldest = self.oldest.load(Relaxed);
        Sizes {
            queued: self.queued.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            oldest_queued: (oldest != i64::MIN).then_some(oldest),
            dead_letters: self.dead.load(Relaxed),
        }
    }
}

/// The tests of `dead/`, oldest first.
#[derive(Debug, Default)]
struct Dead {
    items: VecDeque<Item>,
    bytes: u64,
}

/// A queue directory and what is in it.
#[derive(Debug)]
pub struct Queue {
    dir: PathBuf,
    items: VecDeque<Item>,
    bytes: u64,
    next_seq: u64,
    bounds: Bounds,
    dead: Dead,
    counts: Arc<Counts>,
}

/// The tests in `dir` (half-written temporary files removed), oldest first.
fn scan(dir: &Path) -> io::Result<Vec<Item>> {
    fs::create_dir_all(dir)?;
    let mut items = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
            continue;
        }
        if let Some(item) = parse_name(&name) {
            let len = entry.metadata()?.len();
            items.push(Item { len, ..item });
        }
    }
    items.sort_by_key(|i| i.seq);
    Ok(items)
}

impl Queue {
    /// Opens (creating) the queue in `dir`: what an earlier run left is
    /// waiting again; half-written temporary files are removed.
    pub fn open(dir: &Path, bounds: Bounds) -> io::Result<Queue> {
        let items = scan(dir)?;
        let dead = scan(&dir.join(DEAD_DIR))?;
        // A seq is never used twice, in the queue or in `dead/`.
        let last = items.iter().chain(&dead).map(|i| i.seq).max();
        let queue = Queue {
            dir: dir.to_path_buf(),
            bytes: items.iter().map(|i| i.len).sum(),
            items: items.into(),
            next_seq: last.map_or(0, |s| s + 1),
            bounds,
            dead: Dead {
                bytes: dead.iter().map(|i| i.len).sum(),
                items: dead.into(),
            },
            counts: Arc::new(Counts {
                queued: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
                oldest: AtomicI64::new(i64::MIN),
                dead: AtomicU64::new(0),
            }),
        };
        queue.publish();
        Ok(queue)
    }

    /// The queue's size, kept up to date as it changes.
    pub fn counts(&self) -> Arc<Counts> {
        Arc::clone(&self.counts)
    }

    fn publish(&self) {
        let c = &self.counts;
        c.queued.store(self.items.len() as u64, Relaxed);
        c.bytes.store(self.bytes, Relaxed);
        let oldest = self.items.front().map_or(i64::MIN, |i| i.queued);
        c.oldest.store(oldest, Relaxed);
        c.dead.store(self.dead.items.len() as u64, Relaxed);
    }

    /// Adds `body` as the newest test, durably, queued at `now`; then drops
    /// the oldest while a bound is exceeded (never the one just added).
    /// Returns how many were dropped.
    pub fn push(&mut self, body: &[u8], now: i64) -> io::Result<usize> {
        let item = Item {
            seq: self.next_seq,
            queued: now,
            len: body.len() as u64,
        };
        write_durably(&self.path(&item), body)?;
        self.next_seq += 1;
        self.items.push_back(item);
        self.bytes += item.len;
        self.publish();
        let mut dropped = 0;
        while self.items.len() > 1
            && (self.items.len() > self.bounds.max_count || self.bytes > self.bounds.max_bytes)
        {
            let oldest = self.items[0];
            self.drop_oldest(oldest);
            dropped += 1;
        }
        Ok(dropped)
    }

    /// Drops the tests queued before `now - max_age`; returns how many.
    pub fn expire(&mut self, now: i64) -> usize {
        let limit = now.saturating_sub(self.bounds.max_age_secs);
        let mut dropped = 0;
        while let Some(oldest) = self.items.front().copied() {
            if oldest.queued >= limit {
                break;
            }
            self.drop_oldest(oldest);
            dropped += 1;
        }
        dropped
    }

    /// Drops a test past a bound: it leaves the queue even if its file
    /// cannot be removed (then it is sent again after a restart).
    fn drop_oldest(&mut self, item: Item) {
        if let Err(e) = self.remove(item.seq) {
            tracing::warn!(file = %self.path(&item).display(), error = %e, "cannot remove a dropped forwarding entry");
        }
    }

    /// The oldest waiting test.
    pub fn front(&self) -> Option<Item> {
        self.items.front().copied()
    }

    /// The oldest waiting test and its body. A test whose file is gone was
    /// done already (its removal reached the disk, its note in memory did
    /// not): it leaves the queue, and the next one is taken. Something other
    /// than a regular file in a test's place has no body: it comes back
    /// empty, so the sender drops it as unreadable instead of waiting on it.
    pub fn next_to_send(&mut self) -> io::Result<Option<(Item, Vec<u8>)>> {
        while let Some(item) = self.front() {
            match self.read(&item) {
                Ok(body) => return Ok(Some((item, body))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.forget(item.seq);
                }
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                    return Ok(Some((item, Vec::new())));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Every waiting test, oldest first.
    pub fn items(&self) -> impl Iterator<Item = Item> + '_ {
        self.items.iter().copied()
    }

    /// The body of a waiting test. Only a regular file is read: a FIFO put
    /// in its place would otherwise hold the sender forever.
    pub fn read(&self, item: &Item) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        io::Read::read_to_end(&mut crate::sys::open_regular(&self.path(item))?, &mut body)?;
        Ok(body)
    }

    /// Takes a test out of the queue in memory; the item, if it was there.
    fn forget(&mut self, seq: u64) -> Option<Item> {
        let at = self.items.iter().position(|i| i.seq == seq)?;
        let item = self.items.remove(at)?;
        self.bytes -= item.len;
        self.publish();
        Some(item)
    }

    /// Removes a test for good (delivered or dropped); one already gone is
    /// fine. It leaves the queue first, so an error (the unlink or the
    /// directory sync failed) never keeps it waiting: at worst its file is
    /// still there after a restart and it is sent again.
    pub fn remove(&mut self, seq: u64) -> io::Result<()> {
        match self.forget(seq) {
            Some(item) => remove_durably(&self.path(&item)),
            None => Ok(()),
        }
    }

    /// Moves a test the receiver refused for good to `dead/` (it leaves the
    /// queue first, as in [`Queue::remove`]); the oldest there are deleted
    /// past the queue's count and bytes.
    pub fn dead_letter(&mut self, seq: u64) -> io::Result<()> {
        let Some(item) = self.forget(seq) else {
            return Ok(());
        };
        move_durably(&self.path(&item), &self.dead_path(&item))?;
        self.dead.items.push_back(item);
        self.dead.bytes += item.len;
        let mut result = Ok(());
        while self.dead.items.len() > 1
            && (self.dead.items.len() > self.bounds.max_count
                || self.dead.bytes > self.bounds.max_bytes)
        {
            if let Some(oldest) = self.dead.items.pop_front() {
                self.dead.bytes -= oldest.len;
                result = result.and(remove_durably(&self.dead_path(&oldest)));
            }
        }
        self.publish();
        result
    }

    /// Tests waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn path(&self, item: &Item) -> PathBuf {
        self.dir.join(file_name(item))
    }

    fn dead_path(&self, item: &Item) -> PathBuf {
        self.dir.join(DEAD_DIR).join(file_name(item))
    }
}

fn file_name(item: &Item) -> String {
    format!("{:020}-{}.json", item.seq, item.queued)
}

/// `<seq>-<queued>.json` into an item (its length still 0).
fn parse_name(name: &str) -> Option<Item> {
    let stem = name.strip_suffix(".json")?;
    let (seq, queued) = stem.split_once('-')?;
    Some(Item {
        seq: seq.parse().ok()?,
        queued: queued.parse().ok()?,
        len: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOMY: Bounds = Bounds {
        max_count: 100,
        max_bytes: 1 << 20,
        max_age_secs: 3600,
    };

    #[test]
    fn survives_reopening_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let mut q = Queue::open(tmp.path(), ROOMY).unwrap();
        for i in 0..3 {
            q.push(format!("{{\"n\":{i}}}").as_bytes(), 1000 + i)
                .unwrap();
        }
        let first = q.front().unwrap();
        q.remove(first.seq).unwrap();
        fs::write(tmp.path().join("junk.tmp"), b"half").unwrap();
        drop(q);
        let mut q = Queue::open(tmp.path(), ROOMY).unwrap();
        assert_eq!(q.len(), 2);
        assert!(!tmp.path().join("junk.tmp").exists());
        let front = q.front().unwrap();
        assert_eq!(q.read(&front).unwrap(), b"{\"n\":1}");
        assert_eq!(front.queued, 1001);
        q.push(b"{\"n\":3}", 2000).unwrap();
        assert_eq!(q.len(), 3);
        assert_eq!(q.bytes(), 21);
    }

    #[test]
    fn bounded_by_count_bytes_and_age() {
        let tmp = tempfile::tempdir().unwrap();
        let bounds = Bounds {
            max_count: 3,
            max_bytes: 25,
            max_age_secs: 100,
        };
        let mut q = Queue::open(tmp.path(), bounds).unwrap();
        let mut dropped = 0;
        for i in 0..5 {
            dropped += q.push(b"0123456789", 1000 + i).unwrap();
        }
        // 25 bytes hold two tests of ten.
        assert_eq!((q.len(), q.bytes(), dropped), (2, 20, 3));
        assert_eq!(q.front().unwrap().queued, 1003);
        // One test larger than the bound is still kept (alone).
        assert_eq!(q.push(&[b'x'; 40], 1005).unwrap(), 2);
        assert_eq!(q.len(), 1);
        assert_eq!(q.expire(1105), 0);
        assert_eq!(q.expire(1106), 1);
        assert!(q.is_empty());
        assert!(files(tmp.path()).is_empty());
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_fifo_in_place_of_a_test_is_refused_not_waited_on() {
        let tmp = tempfile::tempdir().unwrap();
        let mut q = Queue::open(tmp.path(), ROOMY).unwrap();
        q.push(b"{}", 1000).unwrap();
        let front = q.front().unwrap();
        fs::remove_file(q.path(&front)).unwrap();
        crate::testing::mkfifo(&q.path(&front));
        // Opening a FIFO for reading would block until a writer came.
        let err = q.read(&front).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        // The sender gets no body to wait on, and its removal takes the
        // FIFO away.
        let (item, body) = q.next_to_send().unwrap().unwrap();
        assert_eq!((item.seq, body.len()), (front.seq, 0));
        q.remove(item.seq).unwrap();
        assert!(q.is_empty() && files(tmp.path()).is_empty());
    }

    #[test]
    fn a_test_whose_file_is_gone_was_done() {
        let tmp = tempfile::tempdir().unwrap();
        let mut q = Queue::open(tmp.path(), ROOMY).unwrap();
        for i in 0..3 {
            q.push(format!("{i}").as_bytes(), 1000).unwrap();
        }
        // Its unlink reached the disk, its removal from memory did not.
        let gone = q.front().unwrap();
        fs::remove_file(q.path(&gone)).unwrap();
        let (item, body) = q.next_to_send().unwrap().unwrap();
        assert_eq!((item.seq, body.as_slice()), (1, b"1".as_slice()));
        assert_eq!(q.len(), 2);
        assert_eq!(q.counts().read().queued, 2);
        // Removing one already gone is fine too.
        fs::remove_file(q.path(&item)).unwrap();
        q.remove(item.seq).unwrap();
        assert_eq!(q.next_to_send().unwrap().unwrap().0.seq, 2);
    }

    #[test]
    fn a_failed_removal_still_takes_the_test_out_of_the_queue() {
        let tmp = tempfile::tempdir().unwrap();
        let mut q = Queue::open(tmp.path(), ROOMY).unwrap();
        q.push(b"a", 1000).unwrap();
        q.push(b"b", 1000).unwrap();
        // A file that cannot be unlinked: a directory with something in it.
        let stuck = q.front().unwrap();
        fs::remove_file(q.path(&stuck)).unwrap();
        fs::create_dir(q.path(&stuck)).unwrap();
        fs::write(q.path(&stuck).join("x"), b"x").unwrap();
        assert!(q.remove(stuck.seq).is_err());
        assert_eq!(q.front().unwrap().seq, 1, "the next test is sent");
        assert_eq!((q.len(), q.bytes()), (1, 1));
    }

    #[test]
    fn refused_tests_wait_in_dead_bounded_and_their_seqs_are_not_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let bounds = Bounds {
            max_count: 2,
            ..ROOMY
        };
        let mut q = Queue::open(tmp.path(), bounds).unwrap();
        for i in 0..3 {
            q.push(format!("{i}").as_bytes(), 1000 + i).unwrap();
            let front = q.front().unwrap();
            q.dead_letter(front.seq).unwrap();
        }
        assert!(q.is_empty());
        let sizes = q.counts().read();
        assert_eq!((sizes.queued, sizes.dead_letters), (0, 2));
        let dead = tmp.path().join(DEAD_DIR);
        assert_eq!(
            files(&dead),
            [
                "00000000000000000001-1001.json",
                "00000000000000000002-1002.json"
            ]
        );
        assert_eq!(fs::read(dead.join(&files(&dead)[1])).unwrap(), b"2");
        // After a restart the next test does not take a dead one's name.
        drop(q);
        let mut q = Queue::open(tmp.path(), bounds).unwrap();
        assert_eq!(q.counts().read().dead_letters, 2);
        q.push(b"3", 2000).unwrap();
        assert_eq!(q.front().unwrap().seq, 3);
        q.dead_letter(3).unwrap();
        assert_eq!(files(&dead).len(), 2);
        assert_eq!(fs::read(dead.join(&files(&dead)[1])).unwrap(), b"3");
    }

    fn sizes(queued: u64, bytes: u64, oldest_queued: Option<i64>, dead_letters: u64) -> Sizes {
        Sizes {
            queued,
            bytes,
            oldest_queued,
            dead_letters,
        }
    }

    #[test]
    fn counts_follow_every_change() {
        let tmp = tempfile::tempdir().unwrap();
        let mut q = Queue::open(tmp.path(), ROOMY).unwrap();
        let counts = q.counts();
        assert_eq!(counts.read(), sizes(0, 0, None, 0));
        q.push(b"abc", 1000).unwrap();
        q.push(b"de", 1001).unwrap();
        assert_eq!(counts.read(), sizes(2, 5, Some(1000), 0));
        q.remove(0).unwrap();
        assert_eq!(counts.read().oldest_queued, Some(1001));
        q.dead_letter(1).unwrap();
        assert_eq!(counts.read(), sizes(0, 0, None, 1));
    }
}
