//! The parts a data stream is made of, below both its thread
//! ([`super::streams`]) and the I/O that moves its bytes
//! ([`super::tcp_io`], [`super::udp`], [`super::udp_batch`]): how the thread
//! moves bytes ([`Method`]), the counters the interval reporter reads
//! ([`Counters`]), the payload, and the pacing of a `-b` target
//! ([`Pacing`]).

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::time::Duration;

use crate::protocol::params::TestParams;

/// How a stream's thread moves its bytes, as the log names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Method {
    /// The thread has not started.
    None = 0,
    /// TCP receive, copied into a buffer.
    Read,
    /// TCP or UDP receive, dropped in the kernel (`MSG_TRUNC`; UDP keeps
    /// each datagram's header).
    Discard,
    /// TCP send, copied from a buffer.
    Write,
    /// TCP send from an in-memory file.
    Sendfile,
    /// UDP receive, datagrams copied in batches (`recvmmsg`).
    Recvmmsg,
    /// UDP receive, coalesced datagrams (`UDP_GRO`).
    Gro,
    /// UDP send, one datagram per call.
    Send,
    /// UDP send, many datagrams per call (`UDP_SEGMENT`).
    Gso,
}

impl Method {
    const ALL: [Method; 9] = [
        Method::None,
        Method::Read,
        Method::Discard,
        Method::Write,
        Method::Sendfile,
        Method::Recvmmsg,
        Method::Gro,
        Method::Send,
        Method::Gso,
    ];

    /// The name the log gives it.
    pub fn name(self) -> &'static str {
        match self {
            Method::None => "none",
            Method::Read => "read",
            Method::Discard => "discard",
            Method::Write => "write",
            Method::Sendfile => "sendfile",
            Method::Recvmmsg => "recvmmsg",
            Method::Gro => "gro",
            Method::Send => "send",
            Method::Gso => "gso",
        }
    }
}

/// Counters one stream thread writes and the reporter reads.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes moved.
    pub bytes: AtomicU64,
    /// Blocks moved (whole blocks of the test's length, TCP; datagrams, UDP).
    pub blocks: AtomicU64,
    /// UDP: datagrams sent, or highest sequence number seen.
    pub packets: AtomicU64,
    /// UDP receive: lost datagrams (net of late arrivals).
    pub lost: AtomicU64,
    /// UDP receive: out-of-order datagrams.
    pub out_of_order: AtomicU64,
    /// UDP receive: jitter in seconds, as `f64` bits.
    pub jitter_bits: AtomicU64,
    /// The stream ended with an I/O error before it was stopped.
    pub failed: AtomicBool,
    /// The OS error number of that failure (0 if none was given).
    pub os_error: AtomicI32,
    /// Set by the reporter when the omit period ends: the receiver restarts
    /// its jitter measurement.
    pub restart: AtomicBool,
    /// A sending TCP stream is inside a write (blocked there while the
    /// client does not read).
    pub writing: AtomicBool,
    /// The [`Method`] the thread uses (it changes on a fallback).
    method: AtomicU8,
}

impl Counters {
    /// Records that the stream ended with `error`.
    pub fn fail(&self, error: Option<&std::io::Error>) {
        let errno = error.and_then(std::io::Error::raw_os_error).unwrap_or(0);
        self.os_error.store(errno, Relaxed);
        self.failed.store(true, Relaxed);
    }

    /// Records how the thread moves bytes from now on.
    pub fn set_method(&self, m: Method) {
        self.method.store(m as u8, Relaxed);
    }

    /// How the thread moves bytes.
    pub fn method(&self) -> Method {
        Method::ALL[usize::from(self.method.load(Relaxed)).min(Method::ALL.len() - 1)]
    }

    /// Whether the stream has not failed.
    pub fn failure_free(&self) -> bool {
        !self.failed.load(Relaxed)
    }

    /// Adds to a counter that only this thread writes: a plain load and
    /// store, no locked read-modify-write on the hot path.
    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
    }
}

/// A block of payload: random bytes, or `0123456789…` for `--repeating-payload`.
pub fn payload(len: usize, repeating: bool) -> Vec<u8> {
    let mut buf = vec![0; len];
    fill_payload(&mut buf, repeating);
    buf
}

/// Fills `buf` with payload, as [`payload`] makes it.
pub fn fill_payload(buf: &mut [u8], repeating: bool) {
    if repeating {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = b"0123456789"[i % 10];
        }
        return;
    }
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
    for b in buf {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
}

/// How far ahead of its schedule a paced stream may run before it sleeps.
pub const PACING_SLACK: Duration = Duration::from_millis(1);

/// Pacing of a sending stream: the average rate since the test started must
/// stay at or below `rate` bits/s; `burst` blocks go out per check.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// Target bits per second; 0 = unlimited.
    pub rate: u64,
    /// Blocks back to back per check (at least 1).
    pub burst: u32,
}

impl Pacing {
    /// From the client's parameters.
    pub fn of(p: &TestParams) -> Pacing {
        Pacing {
            rate: p.bandwidth,
            burst: p.burst.max(1),
        }
    }

    /// How long to wait before sending more, having sent `sent` bytes
    /// `elapsed` after the start; `None` = send now. A stream may run up to
    /// [`PACING_SLACK`] ahead of its schedule before it sleeps, so it wakes
    /// about once per millisecond at most, as stock's 1 ms pacing timer did,
    /// instead of once per datagram.
    pub fn wait(&self, sent: u64, elapsed: Duration) -> Option<Duration> {
        if self.rate == 0 {
            return None;
        }
        let due = Duration::from_secs_f64(sent as f64 * 8.0 / self.rate as f64);
        (due > elapsed + PACING_SLACK).then(|| due - elapsed)
    }

    /// How many datagrams of `len` bytes may go out now, having sent `sent`
    /// bytes `elapsed` after the start (when [`Pacing::wait`] said "now"):
    /// those the schedule allows up to [`PACING_SLACK`] ahead, at least the
    /// burst; `u64::MAX` when unpaced.
    pub fn allowance(&self, sent: u64, elapsed: Duration, len: usize) -> u64 {
        if self.rate == 0 {
            return u64::MAX;
        }
        let due = (elapsed + PACING_SLACK).as_secs_f64() * self.rate as f64 / 8.0;
        let ahead = (due - sent as f64).max(0.0) / len.max(1) as f64;
        (ahead as u64).max(u64::from(self.burst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::PageBuf;

    #[test]
    fn pacing_is_average_since_start() {
        let p = Pacing {
            rate: 8_000_000,
            burst: 1,
        };
        assert_eq!(p.wait(0, Duration::ZERO), None);
        // 1 MB at 8 Mbit/s is due at 1 s.
        assert_eq!(
            p.wait(1_000_000, Duration::from_millis(400)),
            Some(Duration::from_millis(600))
        );
        assert_eq!(p.wait(1_000_000, Duration::from_millis(1200)), None);
        // Less than the slack ahead of schedule: keep sending.
        assert_eq!(p.wait(1_000_000, Duration::from_micros(999_500)), None);
        assert_eq!(
            p.wait(1_000_000, Duration::from_micros(998_000)),
            Some(Duration::from_millis(2))
        );
        assert_eq!(
            Pacing { rate: 0, burst: 1 }.wait(u64::MAX, Duration::ZERO),
            None
        );
    }

    #[test]
    fn allowance_follows_the_schedule_and_the_burst() {
        let p = Pacing {
            rate: 8_000_000,
            burst: 2,
        };
        // 1 MB/s: by 10 ms (+1 ms slack) 11 000 bytes are due.
        assert_eq!(p.allowance(0, Duration::from_millis(10), 1000), 11);
        assert_eq!(p.allowance(5_000, Duration::from_millis(10), 1000), 6);
        // Never less than the burst, even when on schedule.
        assert_eq!(p.allowance(11_000, Duration::from_millis(10), 1000), 2);
        assert_eq!(
            Pacing { rate: 0, burst: 1 }.allowance(0, Duration::ZERO, 1000),
            u64::MAX
        );
    }

    #[test]
    fn payloads() {
        assert_eq!(&payload(12, true), b"012345678901");
        let mut block = PageBuf::zeroed(12).unwrap();
        fill_payload(&mut block, true);
        assert_eq!(&block[..], b"012345678901");
        let r = payload(4096, false);
        assert_eq!(r.len(), 4096);
        assert!(r.iter().any(|&b| b != r[0]));
    }
}
