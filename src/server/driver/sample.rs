//! Reading the data streams: their counters into the session's tick, the
//! interval samples into the log and the dashboard (with the machine's
//! health beside them), the omit end, and the final sample with the CPU
//! figures (the process's, and each stream thread's) that make `end`.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use super::Test;
use crate::protocol::session::Counters;
use crate::report::stats::Sample;
use crate::report::tcp_receive::TcpReceive;
use crate::report::tcp_send::TcpSend;
use crate::server::streams::DataStream;
use crate::sys::os_error_text;

/// Interval records (one per stream, plus the sum, per interval) a test
/// keeps for its log entry: about 750 bytes each in memory, so a test holds
/// at most about 24 MiB of intervals however long it runs (`-t 0` runs
/// forever). That is 4.5 hours of one stream, an hour of `-P 8`, four
/// minutes of `-P 128`; later intervals still count in `end`, and the log
/// entry says how many were left out (`webperf3.intervals_dropped`).
pub const MAX_KEPT_INTERVAL_RECORDS: usize = 32_768;

/// Whether a test with `streams` streams that kept `kept` intervals keeps
/// one more.
pub(super) fn keeps_interval(kept: usize, streams: usize) -> bool {
    (kept + 1).saturating_mul(streams + 1) <= MAX_KEPT_INTERVAL_RECORDS
}

impl Test {
    /// Keeps an interval for the log, within [`MAX_KEPT_INTERVAL_RECORDS`].
    fn keep_interval(&mut self, interval: crate::json::Json) {
        if keeps_interval(self.log.intervals.len(), self.streams.len()) {
            self.log.intervals.push(interval);
        } else {
            self.intervals_dropped += 1;
        }
    }

    /// The streams' counters for a tick: totals per direction, whether a
    /// sender can still move (it waits on its pacing rather than on the
    /// client), and the first broken stream.
    pub(super) fn counters(&self) -> Counters {
        let total = |sender: bool| -> u64 {
            self.streams
                .iter()
                .filter(|s| s.kind.sender == sender)
                .map(DataStream::sample_bytes)
                .sum()
        };
        let pacing = self
            .streams
            .iter()
            .filter(|s| s.kind.sender)
            .any(|s| !s.blocked_in_write() && s.failure().is_none());
        let broken = self.streams.iter().find_map(|s| {
            s.failure().map(|errno| {
                let os = std::io::Error::from_raw_os_error(errno);
                (s.kind.sender, (errno != 0).then(|| os_error_text(&os)))
            })
        });
        Counters {
            received: total(false),
            sent: total(true),
            pacing,
            broken,
        }
    }

    /// An interval sample: into the log and the dashboard, with a health
    /// reading. Kept for [`Test::end_omit`], which must start from it.
    pub(super) fn sample_interval(&mut self) {
        let now = Instant::now();
        let Some(m) = self.measuring.as_mut() else {
            return;
        };
        let samples = sample_streams(&self.streams, &mut self.tcp_send, &mut self.tcp_receive);
        let sampled = m.stats.sample(now, &samples);
        let seconds = (now - m.t0).as_secs_f64();
        m.last_sample = Some((now, samples));
        self.health.add(self.ctx.settings.health.sample());
        if let Some((interval, bps)) = sampled {
            self.keep_interval(interval);
            self.ctx.hub.progress(self.ctx.port, bps, seconds);
        }
    }

    /// Ends the omit period at the last interval sample: its counters
    /// become the baselines, and receivers restart their jitter.
    pub(super) fn end_omit(&mut self) {
        let Some(m) = self.measuring.as_mut() else {
            return;
        };
        let Some((at, samples)) = &m.last_sample else {
            return;
        };
        m.stats.end_omit(*at, samples);
        for s in &self.streams {
            s.counters.restart.store(true, Relaxed);
        }
    }

    /// The final sample, the CPU figures and the `end` section.
    pub(super) fn end_test(&mut self) {
        self.overlap.end();
        self.health.add(self.ctx.settings.health.sample());
        let now = Instant::now();
        let Some(m) = self.measuring.as_mut() else {
            return;
        };
        let samples = sample_streams(&self.streams, &mut self.tcp_send, &mut self.tcp_receive);
        let last = m.stats.sample(now, &samples);
        let (u0, s0) = m.cpu_at_t0;
        let (u1, s1) = crate::sys::cpu_times();
        let wall = (now - m.t0).as_secs_f64();
        if wall > 0.0 {
            let (u, s) = ((u1 - u0) / wall * 100.0, (s1 - s0) / wall * 100.0);
            m.cpu = (u + s, u, s);
            // Each stream's thread started at t0.
            m.stream_cpu = (self.streams.iter())
                .filter_map(|s| Some((s.socket_no, s.thread_cpu_secs()? / wall * 100.0)))
                .collect();
        }
        self.log.end = m.stats.end(m.cpu, m.congestion.as_deref());
        if let Some((interval, _)) = last {
            self.keep_interval(interval);
        }
    }
}

/// Every stream's counters, keeping the TCP_INFO reading of each sending
/// TCP stream in `tcp_send` (the same reading, no second system call) and
/// of each receiving one in `tcp_receive`, whose interval it closes.
fn sample_streams(
    streams: &[DataStream],
    tcp_send: &mut TcpSend,
    tcp_receive: &mut TcpReceive,
) -> Vec<Sample> {
    let samples = streams
        .iter()
        .map(|s| {
            let (sample, info) = s.sample_with_info();
            match info {
                Some((raw, len)) if s.kind.sender => tcp_send.add(s.socket_no, &raw, len),
                Some((raw, len)) => tcp_receive.add(&raw, len),
                None => {}
            }
            sample
        })
        .collect();
    tcp_receive.end_interval();
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_intervals_are_bounded_by_records() {
        // One stream: two records an interval.
        assert!(keeps_interval(16_383, 1));
        assert!(!keeps_interval(16_384, 1));
        // -P 128: 129 records an interval.
        assert!(keeps_interval(253, 128));
        assert!(!keeps_interval(254, 128));
        // -P 128 --bidir: 257.
        assert!(!keeps_interval(127, 256));
        assert!(keeps_interval(0, 256));
    }
}
