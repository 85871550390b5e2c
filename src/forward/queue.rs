//! One receiver's queue on disk: a directory holding one file per waiting
//! test, `<seq>-<queued unix seconds>.json`, oldest first by `seq`.
//!
//! A test is added by writing a temporary file, syncing it, renaming it into
//! place and syncing the directory, so after [`Queue::push`] returns the test
//! survives a crash or power loss. A delivered test is removed the same way
//! (unlink, then sync the directory), so a receiver that answered 2xx is not
//! sent that test again after a restart. The queue is bounded by count,
//! bytes and age; what falls out is the oldest, and is counted.

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::disk::{remove_durably, write_durably};

/// The queue's bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// Most tests waiting.
    pub max_count: usize,
    /// Most bytes waiting.
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

/// A queue directory and what is in it.
#[derive(Debug)]
pub struct Queue {
    dir: PathBuf,
    items: VecDeque<Item>,
    bytes: u64,
    next_seq: u64,
    bounds: Bounds,
}

impl Queue {
    /// Opens (creating) the queue in `dir`: what an earlier run left is
    /// waiting again; half-written temporary files are removed.
    pub fn open(dir: &Path, bounds: Bounds) -> io::Result<Queue> {
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
        let next_seq = items.last().map_or(0, |i| i.seq + 1);
        let bytes = items.iter().map(|i| i.len).sum();
        Ok(Queue {
            dir: dir.to_path_buf(),
            items: items.into(),
            bytes,
            next_seq,
            bounds,
        })
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
        let mut dropped = 0;
        while self.items.len() > 1
            && (self.items.len() > self.bounds.max_count || self.bytes > self.bounds.max_bytes)
        {
            let oldest = self.items[0];
            self.remove(oldest.seq)?;
            dropped += 1;
        }
        Ok(dropped)
    }

    /// Drops the tests queued before `now - max_age`; returns how many.
    pub fn expire(&mut self, now: i64) -> io::Result<usize> {
        let limit = now.saturating_sub(self.bounds.max_age_secs);
        let mut dropped = 0;
        while let Some(oldest) = self.items.front().copied() {
            if oldest.queued >= limit {
                break;
            }
            self.remove(oldest.seq)?;
            dropped += 1;
        }
        Ok(dropped)
    }

    /// The oldest waiting test.
    pub fn front(&self) -> Option<Item> {
        self.items.front().copied()
    }

    /// Every waiting test, oldest first.
    pub fn items(&self) -> impl Iterator<Item = Item> + '_ {
        self.items.iter().copied()
    }

    /// The body of a waiting test.
    pub fn read(&self, item: &Item) -> io::Result<Vec<u8>> {
        fs::read(self.path(item))
    }

    /// Removes a test for good (delivered or dropped); one already gone is
    /// fine. The directory is synced, so the removal survives a crash.
    pub fn remove(&mut self, seq: u64) -> io::Result<()> {
        let Some(at) = self.items.iter().position(|i| i.seq == seq) else {
            return Ok(());
        };
        let item = self.items[at];
        remove_durably(&self.path(&item))?;
        self.items.remove(at);
        self.bytes -= item.len;
        Ok(())
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
        self.dir
            .join(format!("{:020}-{}.json", item.seq, item.queued))
    }
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
        assert_eq!(q.expire(1105).unwrap(), 0);
        assert_eq!(q.expire(1106).unwrap(), 1);
        assert!(q.is_empty());
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
    }
}
