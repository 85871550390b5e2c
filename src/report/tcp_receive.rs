//! What the kernel's TCP_INFO says of the round trip of the server's
//! receiving TCP streams (plain uploads, the forward half of `--bidir`):
//! `tcpi_rcv_rtt`, the receiver's estimate of how long the sender takes to
//! deliver a window of data, which grows with a queue on the path; and
//! `tcpi_min_rtt`, which on a stream that never sends data is the round
//! trip of its handshake, before any load. Written under our log key
//! (`webperf3.tcp_receive`); stock keys are never touched.
//!
//! Pure: the driver hands in the TCP_INFO readings it takes at each
//! interval tick and at the end, and closes each interval; this module
//! keeps the median across streams of each interval and turns them into
//! JSON. Bounded: at most [`MAX_KEPT_INTERVALS`] intervals are kept,
//! whatever the test's length.

use crate::json::Json;
use crate::sys::KernelTcpInfo;

/// Intervals a test keeps (8 bytes each): an hour of one-second intervals.
/// Later intervals still count in `min_ms` and `min_rtt_ms`.
pub const MAX_KEPT_INTERVALS: usize = 3_600;

/// Where `tcpi_min_rtt` ends (kernel 4.6+).
const MIN_RTT_END: usize = std::mem::offset_of!(KernelTcpInfo, min_rtt) + 4;

/// The receiving streams' round trips over a test.
#[derive(Debug, Clone, Default)]
pub struct TcpReceive {
    /// This interval's `tcpi_rcv_rtt` readings (µs), zeros left out.
    current: Vec<u32>,
    /// Each closed interval's median across streams, µs.
    intervals: Vec<f64>,
    /// The smallest `tcpi_rcv_rtt` reading, µs.
    min: Option<u32>,
    /// The smallest `tcpi_min_rtt` reading, µs.
    min_rtt: Option<u32>,
}

/// The median of `v` (not empty), sorting it.
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn smaller(to: &mut Option<u32>, v: u32) {
    *to = Some(to.map_or(v, |m| m.min(v)));
}

/// µs → ms, to the µs.
fn ms(us: f64) -> f64 {
    us.round() / 1000.0
}

impl TcpReceive {
    /// Records a reading of a receiving TCP stream, `len` bytes of it
    /// filled by the kernel. The kernel reports 0 (`rcv_rtt`) and `~0`
    /// (`min_rtt`) until it has measured: such readings are left out.
    pub fn add(&mut self, info: &KernelTcpInfo, len: usize) {
        if info.rcv_rtt != 0 {
            self.current.push(info.rcv_rtt);
            smaller(&mut self.min, info.rcv_rtt);
        }
        if len >= MIN_RTT_END && info.min_rtt != 0 && info.min_rtt != u32::MAX {
            smaller(&mut self.min_rtt, info.min_rtt);
        }
    }

    /// Closes an interval: the median of its readings is kept (within
    /// [`MAX_KEPT_INTERVALS`]); an interval without one is skipped.
    pub fn end_interval(&mut self) {
        if self.current.is_empty() {
            return;
        }
        let mut v: Vec<f64> = self.current.drain(..).map(f64::from).collect();
        if self.intervals.len() < MAX_KEPT_INTERVALS {
            self.intervals.push(median(&mut v));
        }
    }

    /// The `tcp_receive` object of our log key: `rcv_rtt_ms` (each
    /// interval's median across streams), `median_ms` (their median),
    /// `min_ms` (the smallest reading) and `min_rtt_ms` (the smallest
    /// `tcpi_min_rtt`: the handshake's round trip). `None` when no
    /// receiving stream measured a `rcv_rtt`.
    pub fn to_json(&self) -> Option<Json> {
        let min = self.min?;
        let mut sorted = self.intervals.clone();
        let mut o = Json::obj().with(
            "rcv_rtt_ms",
            Json::Arr(self.intervals.iter().map(|&us| ms(us).into()).collect()),
        );
        if !sorted.is_empty() {
            o.push("median_ms", ms(median(&mut sorted)));
        }
        o.push("min_ms", ms(f64::from(min)));
        if let Some(m) = self.min_rtt {
            o.push("min_rtt_ms", ms(f64::from(m)));
        }
        Some(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::to_compact;

    const FULL: usize = std::mem::size_of::<KernelTcpInfo>();

    fn info(rcv_rtt: u32, min_rtt: u32) -> KernelTcpInfo {
        KernelTcpInfo {
            rcv_rtt,
            min_rtt,
            ..KernelTcpInfo::default()
        }
    }

    #[test]
    fn nothing_measured_is_nothing_written() {
        let mut t = TcpReceive::default();
        t.add(&info(0, u32::MAX), FULL);
        t.end_interval();
        assert_eq!(t.to_json(), None);
    }

    #[test]
    fn each_interval_is_the_median_across_streams_zeros_left_out() {
        let mut t = TcpReceive::default();
        // Not measured yet: left out, and the interval with it.
        t.add(&info(0, 60), FULL);
        t.end_interval();
        t.add(&info(148_000, 60), FULL);
        t.add(&info(0, 50), FULL);
        t.end_interval();
        for rtt in [183_000, 185_000, 184_700] {
            t.add(&info(rtt, 60), FULL);
        }
        t.end_interval();
        t.add(&info(184_900, 60), FULL);
        t.add(&info(185_100, 60), FULL);
        t.end_interval();
        assert_eq!(
            to_compact(&t.to_json().unwrap()),
            r#"{"rcv_rtt_ms":[148,184.7,185],"median_ms":184.7,"min_ms":148,"min_rtt_ms":0.05}"#
        );
    }

    #[test]
    fn an_old_kernel_without_min_rtt_gives_none() {
        let mut t = TcpReceive::default();
        t.add(&info(2_000, 60), MIN_RTT_END - 4);
        t.end_interval();
        assert_eq!(
            to_compact(&t.to_json().unwrap()),
            r#"{"rcv_rtt_ms":[2],"median_ms":2,"min_ms":2}"#
        );
    }

    #[test]
    fn kept_intervals_are_bounded() {
        let mut t = TcpReceive::default();
        for i in 0..MAX_KEPT_INTERVALS + 10 {
            t.add(&info(10_000 - i as u32, 60), FULL);
            t.end_interval();
        }
        assert_eq!(t.intervals.len(), MAX_KEPT_INTERVALS);
        // The later, smaller readings still count in the minimum.
        let min = 10_000 - (MAX_KEPT_INTERVALS + 9) as u32;
        assert_eq!(t.min, Some(min));
    }
}
