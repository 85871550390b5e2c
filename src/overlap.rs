//! Which tests on the whole box move data at the same time. Overlapping
//! tests share the link (and the Pi's CPU), so each result records whether
//! another test ran during it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::locks::lock;

/// The tests moving data right now, on every port.
#[derive(Debug, Default)]
pub struct Overlaps {
    active: Mutex<Vec<(u64, Arc<AtomicBool>)>>,
    next: AtomicU64,
}

/// One test's registration; dropping it ends the test's data phase.
#[derive(Debug)]
pub struct Running {
    id: u64,
    flag: Arc<AtomicBool>,
    all: Arc<Overlaps>,
}

impl Overlaps {
    /// Registers a test that starts moving data. If others are already
    /// running, all of them (and this one) are marked as overlapped.
    pub fn start(self: &Arc<Self>) -> Running {
        let id = self.next.fetch_add(1, Relaxed);
        let flag = Arc::new(AtomicBool::new(false));
        let mut active = lock(&self.active);
        if !active.is_empty() {
            flag.store(true, Relaxed);
            for (_, other) in active.iter() {
                other.store(true, Relaxed);
            }
        }
        active.push((id, Arc::clone(&flag)));
        Running {
            id,
            flag,
            all: Arc::clone(self),
        }
    }

    /// How many tests are moving data now.
    pub fn running(&self) -> usize {
        lock(&self.active).len()
    }
}

impl Running {
    /// Whether another test moved data at any time during this one.
    pub fn overlapped(&self) -> bool {
        self.flag.load(Relaxed)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        lock(&self.all.active).retain(|(id, _)| *id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_marks_both_sides() {
        let all = Arc::new(Overlaps::default());
        let a = all.start();
        assert!(!a.overlapped());
        let b = all.start();
        assert!(a.overlapped() && b.overlapped());
        drop(a);
        drop(b);
        let c = all.start();
        assert!(!c.overlapped(), "earlier tests are over");
        assert_eq!(all.running(), 1);
    }
}
