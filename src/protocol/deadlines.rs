//! A table of deadlines, one per kind of wait, each armed or not: the
//! timer table both control-channel machines (the server's session and the
//! client's) keep. The next wake-up is the earliest armed deadline; what a
//! deadline means when it passes is decided by the machine, not here.

use std::marker::PhantomData;
use std::time::{Duration, Instant};

/// The kinds of deadline of one machine: each kind is a slot of the table.
pub trait TimerKind: Copy {
    /// The kind's slot, below the table's size.
    fn index(self) -> usize;
}

/// One optional deadline per kind `K` (`N` kinds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadlines<K, const N: usize> {
    at: [Option<Instant>; N],
    kind: PhantomData<K>,
}

impl<K, const N: usize> Default for Deadlines<K, N> {
    fn default() -> Self {
        Deadlines {
            at: [None; N],
            kind: PhantomData,
        }
    }
}

impl<K: TimerKind, const N: usize> Deadlines<K, N> {
    /// Arms `timer` for `at` (replacing any earlier setting).
    pub fn set(&mut self, timer: K, at: Instant) {
        self.at[timer.index()] = Some(at);
    }

    /// Moves `timer` to `at` only if it is armed.
    pub fn bump(&mut self, timer: K, at: Instant) {
        if self.is_armed(timer) {
            self.set(timer, at);
        }
    }

    /// Disarms `timer`.
    pub fn stop(&mut self, timer: K) {
        self.at[timer.index()] = None;
    }

    /// Disarms every timer.
    pub fn stop_all(&mut self) {
        self.at = [None; N];
    }

    /// When `timer` is due, if armed.
    pub fn get(&self, timer: K) -> Option<Instant> {
        self.at[timer.index()]
    }

    /// Whether `timer` is armed.
    pub fn is_armed(&self, timer: K) -> bool {
        self.get(timer).is_some()
    }

    /// Whether `timer` is armed and due at `now`.
    pub fn expired(&self, timer: K, now: Instant) -> bool {
        self.get(timer).is_some_and(|at| at <= now)
    }

    /// The earliest armed deadline.
    pub fn next(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }

    /// Re-arms a periodic `timer` one `step` after its last deadline, so
    /// ticks keep their cadence without drift; ticks missed entirely (the
    /// next one would already be due at `now`) are skipped, and the cadence
    /// restarts from `now`.
    pub fn advance(&mut self, timer: K, step: Duration, now: Instant) {
        let next = self.get(timer).map_or(now + step, |at| at + step);
        self.set(timer, if next <= now { now + step } else { next });
    }
}
