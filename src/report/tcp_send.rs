//! What the kernel's TCP_INFO says of the server's sending TCP streams over
//! a test: how long each was busy, and for how much of that it was held
//! back by the client's receive window or by its own send buffer, with its
//! smallest RTT, its retransmissions and its last delivery rate. Written
//! under our log key (`webperf3.tcp_send`) as the evidence the verdict
//! (`analysis::verdict`) reads; stock keys are never touched.
//!
//! Pure: the driver hands in TCP_INFO readings it already takes at each
//! interval tick and at the end (no extra system call per block or per
//! tick); this module keeps the last reading of each stream and turns them
//! into JSON. The kernel's counters run over the connection's life, and a
//! data connection carries nothing before the test starts, so the last
//! reading is the test's total (the omit period included).

use crate::json::Json;
use crate::sys::KernelTcpInfo;

/// The last TCP_INFO reading of each sending TCP stream of a test.
#[derive(Debug, Clone, Default)]
pub struct TcpSend {
    streams: Vec<(i64, Reading)>,
}

/// One reading, with how much of the structure the kernel filled.
#[derive(Debug, Clone, Copy)]
struct Reading {
    info: KernelTcpInfo,
    len: usize,
}

impl Reading {
    /// Whether the kernel filled the field that ends at `end` bytes.
    fn has(&self, end: usize) -> bool {
        self.len >= end
    }
}

/// Where the chrono counters end (`tcpi_sndbuf_limited`, kernel 4.10+).
const CHRONO_END: usize = std::mem::offset_of!(KernelTcpInfo, sndbuf_limited) + 8;
/// Where `tcpi_delivery_rate` ends (kernel 4.9+).
const DELIVERY_END: usize = std::mem::offset_of!(KernelTcpInfo, delivery_rate) + 8;
/// Where `tcpi_data_segs_out` ends (kernel 4.6+).
const SEGS_END: usize = std::mem::offset_of!(KernelTcpInfo, data_segs_out) + 4;
/// Where `tcpi_min_rtt` ends (kernel 4.6+).
const MIN_RTT_END: usize = std::mem::offset_of!(KernelTcpInfo, min_rtt) + 4;

/// The sums over the streams, and whether each part was reported at all.
#[derive(Debug, Default)]
struct Sum {
    busy: Option<u64>,
    rwnd: Option<u64>,
    sndbuf: Option<u64>,
    min_rtt: Option<u32>,
    retransmits: u64,
    segments: Option<u64>,
    delivery: Option<u64>,
    app_limited: Option<bool>,
}

fn add(to: &mut Option<u64>, v: u64) {
    *to = Some(to.unwrap_or(0).saturating_add(v));
}

impl TcpSend {
    /// Records a reading of the sending stream `socket` (the log's `socket`
    /// number), `len` bytes of it filled by the kernel.
    pub fn add(&mut self, socket: i64, info: &KernelTcpInfo, len: usize) {
        let reading = Reading { info: *info, len };
        match self.streams.iter_mut().find(|(s, _)| *s == socket) {
            Some((_, r)) => *r = reading,
            None => self.streams.push((socket, reading)),
        }
    }

    /// The `tcp_send` object of our log key: per stream and summed,
    /// `busy_time_us`, `rwnd_limited_us`, `sndbuf_limited_us` (µs the
    /// stream had data to send, and of those the µs the receive window or
    /// the send buffer held it back), `min_rtt_us`, `retransmits` and
    /// `data_segs_out` (segments that carried data, retransmissions
    /// included), `delivery_rate_bps` (the kernel's last estimate, bits/s)
    /// and `delivery_rate_app_limited` (that estimate was taken while the
    /// server had less to send than the path could take; in the sum: for
    /// any stream). The sum
    /// adds times, retransmissions and rates, and keeps the smallest RTT.
    /// Fields the kernel did not report are left out; `None` when no
    /// sending TCP stream was read.
    pub fn to_json(&self) -> Option<Json> {
        if self.streams.is_empty() {
            return None;
        }
        let mut sum = Sum::default();
        let mut streams = Vec::with_capacity(self.streams.len());
        for (socket, r) in &self.streams {
            let i = &r.info;
            let mut o = Json::obj().with("socket", *socket);
            if r.has(CHRONO_END) {
                o.push("busy_time_us", i.busy_time);
                o.push("rwnd_limited_us", i.rwnd_limited);
                o.push("sndbuf_limited_us", i.sndbuf_limited);
                add(&mut sum.busy, i.busy_time);
                add(&mut sum.rwnd, i.rwnd_limited);
                add(&mut sum.sndbuf, i.sndbuf_limited);
            }
            // The kernel reports `~0` before it has measured an RTT.
            if r.has(MIN_RTT_END) && i.min_rtt != 0 && i.min_rtt != u32::MAX {
                o.push("min_rtt_us", i.min_rtt);
                sum.min_rtt = Some(sum.min_rtt.map_or(i.min_rtt, |m| m.min(i.min_rtt)));
            }
            o.push("retransmits", i.total_retrans);
            sum.retransmits += u64::from(i.total_retrans);
            if r.has(SEGS_END) {
                o.push("data_segs_out", i.data_segs_out);
                add(&mut sum.segments, u64::from(i.data_segs_out));
            }
            if r.has(DELIVERY_END) {
                let bps = i.delivery_rate.saturating_mul(8);
                // `tcpi_delivery_rate_app_limited`, the low bit after the
                // window scales.
                let app_limited = i.flags & 1 != 0;
                o.push("delivery_rate_bps", bps);
                o.push("delivery_rate_app_limited", app_limited);
                add(&mut sum.delivery, bps);
                sum.app_limited = Some(sum.app_limited.unwrap_or(false) || app_limited);
            }
            streams.push(o);
        }
        let mut total = Json::obj();
        let parts = [
            ("busy_time_us", sum.busy),
            ("rwnd_limited_us", sum.rwnd),
            ("sndbuf_limited_us", sum.sndbuf),
            ("min_rtt_us", sum.min_rtt.map(u64::from)),
            ("retransmits", Some(sum.retransmits)),
            ("data_segs_out", sum.segments),
            ("delivery_rate_bps", sum.delivery),
        ];
        for (key, value) in parts {
            if let Some(v) = value {
                total.push(key, v);
            }
        }
        if let Some(app_limited) = sum.app_limited {
            total.push("delivery_rate_app_limited", app_limited);
        }
        Some(
            Json::obj()
                .with("streams", Json::Arr(streams))
                .with("sum", total),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::to_compact;

    const FULL: usize = std::mem::size_of::<KernelTcpInfo>();

    fn info(busy: u64, rwnd: u64, sndbuf: u64, min_rtt: u32, retrans: u32) -> KernelTcpInfo {
        KernelTcpInfo {
            busy_time: busy,
            rwnd_limited: rwnd,
            sndbuf_limited: sndbuf,
            min_rtt,
            total_retrans: retrans,
            delivery_rate: 1_000_000,
            ..KernelTcpInfo::default()
        }
    }

    #[test]
    fn nothing_read_is_nothing_written() {
        assert_eq!(TcpSend::default().to_json(), None);
    }

    #[test]
    fn the_last_reading_of_each_stream_summed() {
        let mut t = TcpSend::default();
        t.add(5, &info(100, 10, 0, 900, 1), FULL);
        t.add(5, &info(2_000_000, 500_000, 0, 800, 3), FULL);
        let app_limited = KernelTcpInfo {
            flags: 1,
            ..info(1_000_000, 0, 250_000, 700, 0)
        };
        t.add(7, &app_limited, FULL);
        assert_eq!(
            to_compact(&t.to_json().unwrap()),
            concat!(
                r#"{"streams":[{"socket":5,"busy_time_us":2000000,"rwnd_limited_us":500000,"#,
                r#""sndbuf_limited_us":0,"min_rtt_us":800,"retransmits":3,"data_segs_out":0,"delivery_rate_bps":8000000,"delivery_rate_app_limited":false},"#,
                r#"{"socket":7,"busy_time_us":1000000,"rwnd_limited_us":0,"sndbuf_limited_us":250000,"#,
                r#""min_rtt_us":700,"retransmits":0,"data_segs_out":0,"delivery_rate_bps":8000000,"delivery_rate_app_limited":true}],"#,
                r#""sum":{"busy_time_us":3000000,"rwnd_limited_us":500000,"sndbuf_limited_us":250000,"#,
                r#""min_rtt_us":700,"retransmits":3,"data_segs_out":0,"delivery_rate_bps":16000000,"delivery_rate_app_limited":true}}"#
            )
        );
    }

    #[test]
    fn what_an_old_kernel_did_not_fill_is_left_out() {
        let mut t = TcpSend::default();
        // A 4.6 kernel: min_rtt, but no delivery rate and no chronos.
        t.add(5, &info(9, 9, 9, 800, 2), SEGS_END);
        // No RTT measured yet.
        t.add(6, &info(9, 9, 9, u32::MAX, 0), SEGS_END);
        assert_eq!(
            to_compact(&t.to_json().unwrap()),
            concat!(
                r#"{"streams":[{"socket":5,"min_rtt_us":800,"retransmits":2,"data_segs_out":0},"#,
                r#"{"socket":6,"retransmits":0,"data_segs_out":0}],"#,
                r#""sum":{"min_rtt_us":800,"retransmits":2,"data_segs_out":0}}"#
            )
        );
    }
}
