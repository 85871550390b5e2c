//! The download's binary message size: it starts at
//! [`INITIAL_MESSAGE_SIZE`] and doubles once the bytes queued so far exceed
//! 16 times the current size, up to [`MAX_MESSAGE_SIZE`] (the spec's
//! appendix), so only fast clients see large messages.

use super::{INITIAL_MESSAGE_SIZE, MAX_MESSAGE_SIZE};

/// The size of the next binary message, given what was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageSize {
    size: usize,
    total: u64,
}

impl Default for MessageSize {
    fn default() -> Self {
        MessageSize {
            size: INITIAL_MESSAGE_SIZE,
            total: 0,
        }
    }
}

impl MessageSize {
    /// The size the next message should have, bytes.
    pub fn current(&self) -> usize {
        self.size
    }

    /// Bytes of binary messages sent so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Counts one sent message of `len` bytes and grows the size if due.
    pub fn sent(&mut self, len: usize) {
        self.total = self.total.saturating_add(len as u64);
        if self.size < MAX_MESSAGE_SIZE && (self.size as u64) < self.total / 16 {
            self.size *= 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_small_and_doubles_after_sixteen_times_its_size() {
        let mut s = MessageSize::default();
        assert_eq!(s.current(), 1 << 13);
        for _ in 0..16 {
            s.sent(1 << 13);
        }
        // Exactly 16 × size queued: not yet more than it.
        assert_eq!(s.current(), 1 << 13);
        s.sent(1 << 13);
        assert_eq!(s.current(), 1 << 14);
    }

    #[test]
    fn never_exceeds_the_maximum() {
        let mut s = MessageSize::default();
        for _ in 0..10_000 {
            let n = s.current();
            s.sent(n);
        }
        assert_eq!(s.current(), MAX_MESSAGE_SIZE);
        assert!(s.total() > 1 << 30);
    }
}
