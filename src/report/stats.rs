//! Per-stream statistics of a running test, turned into stock's interval
//! objects, the `end` section and the server's results document.
//!
//! The data path only bumps counters; this module reads snapshots of them
//! ([`Sample`]) at each interval and at the end, and does all arithmetic.

use std::time::{Duration, Instant};

use super::test_log::INTERVAL_SECS;
use crate::json::Json;
use crate::sys::TcpInfo;

/// What a stream is to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamKind {
    /// The server sends on it (`-R`, or the reverse half of `--bidir`).
    pub sender: bool,
    /// A UDP stream.
    pub udp: bool,
}

/// UDP counters of a stream at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UdpSnapshot {
    /// Sending: datagrams sent. Receiving: highest sequence number seen.
    pub packets: u64,
    /// Receiving: datagrams lost (net of late arrivals).
    pub lost: u64,
    /// Receiving: datagrams that arrived out of order.
    pub out_of_order: u64,
    /// Receiving: smoothed jitter, seconds.
    pub jitter: f64,
}

/// A snapshot of one stream's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// Bytes moved since the test started (including the omit period).
    pub bytes: u64,
    /// TCP_INFO of a sending TCP stream.
    pub tcp: Option<TcpInfo>,
    /// UDP counters.
    pub udp: Option<UdpSnapshot>,
}

#[derive(Debug, Clone)]
struct Track {
    socket: i64,
    kind: StreamKind,
    start: Instant,
    prev_at: Instant,
    prev: Sample,
    base: Sample,
    last: Sample,
    rtt: Option<(u32, u32, u64, u64)>,
    max_cwnd: u64,
    max_wnd: i64,
}

/// Statistics of one test's streams.
#[derive(Debug, Clone)]
pub struct Stats {
    tracks: Vec<Track>,
    parallel: u32,
    omitting: bool,
    last_at: Instant,
}

/// Seconds between two instants at µs resolution, as stock's timeval maths.
fn secs(from: Instant, to: Instant) -> f64 {
    let d = if to >= from { to - from } else { from - to };
    d.as_micros() as f64 / 1e6
}

fn rate(bytes: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        bytes as f64 * 8.0 / seconds
    } else {
        0.0
    }
}

fn pct(lost: u64, packets: u64) -> f64 {
    if packets > 0 {
        100.0 * lost as f64 / packets as f64
    } else {
        0.0
    }
}

impl Stats {
    /// Statistics for streams `(socket, kind)` in stream order, starting at
    /// `now` (TEST_START); `omit` says whether an omit period runs first.
    pub fn new(streams: &[(i64, StreamKind)], parallel: u32, now: Instant, omit: bool) -> Stats {
        let tracks = streams
            .iter()
            .map(|&(socket, kind)| Track {
                socket,
                kind,
                start: now,
                prev_at: now,
                prev: Sample::default(),
                base: Sample::default(),
                last: Sample::default(),
                rtt: None,
                max_cwnd: 0,
                max_wnd: -1,
            })
            .collect();
        Stats {
            tracks,
            parallel: parallel.max(1),
            omitting: omit,
            last_at: now,
        }
    }

    /// Whether the omit period is still running.
    pub fn omitting(&self) -> bool {
        self.omitting
    }

    /// When the last sample was taken.
    pub fn last_sample_at(&self) -> Instant {
        self.last_at
    }

    /// Takes an interval sample at `now`. Returns the interval object (and
    /// the total rate of the interval, bits/s), or `None` when stock would
    /// drop it: shorter than 10 % of the interval and no bytes, for every
    /// stream.
    pub fn sample(&mut self, now: Instant, samples: &[Sample]) -> Option<(Json, f64)> {
        let min = Duration::from_secs(u64::from(INTERVAL_SECS)) / 10;
        let all_idle = self.tracks.iter().zip(samples).all(|(t, s)| {
            now.saturating_duration_since(t.prev_at) < min && s.bytes == t.prev.bytes
        });
        if all_idle {
            return None;
        }
        let mut streams = Vec::new();
        let mut first: Option<(f64, f64, f64)> = None;
        let mut total = 0u64;
        let omitted = self.omitting;
        let parallel = self.parallel;
        let mut recv_sum = PassSum::default();
        let mut send_sum = PassSum::default();
        for (t, s) in self.tracks.iter_mut().zip(samples) {
            let start = secs(t.start, t.prev_at);
            let end = secs(t.start, now);
            let seconds = f64::from((end - start) as f32);
            let bytes = s.bytes.saturating_sub(t.prev.bytes);
            total += bytes;
            first.get_or_insert((start, end, seconds));
            let mut o = Json::obj()
                .with("socket", t.socket)
                .with("start", start)
                .with("end", end)
                .with("seconds", seconds)
                .with("bytes", bytes)
                .with("bits_per_second", rate(bytes, seconds));
            let sum = if t.kind.sender {
                &mut send_sum
            } else {
                &mut recv_sum
            };
            sum.present = true;
            sum.bytes = sum.bytes.saturating_add(bytes);
            if let (true, Some(info)) = (t.kind.sender && !t.kind.udp, s.tcp) {
                let prev = t
                    .prev
                    .tcp
                    .map_or(t.base.tcp.map_or(0, |b| b.total_retrans), |p| {
                        p.total_retrans
                    });
                let retrans = u64::from(info.total_retrans.saturating_sub(prev));
                sum.retransmits = Some(sum.retransmits.unwrap_or(0) + retrans);
                o.push("retransmits", retrans);
                o.push("snd_cwnd", info.snd_cwnd_bytes);
                o.push("snd_wnd", info.snd_wnd);
                o.push("rtt", info.rtt);
                o.push("rttvar", info.rttvar);
                o.push("pmtu", info.pmtu);
                o.push("reorder", info.reord_seen);
                t.max_cwnd = t.max_cwnd.max(info.snd_cwnd_bytes);
                t.max_wnd = t.max_wnd.max(info.snd_wnd);
                let (mx, mn, total, n) = t.rtt.unwrap_or((0, u32::MAX, 0, 0));
                t.rtt = Some((
                    mx.max(info.rtt),
                    mn.min(info.rtt),
                    total + u64::from(info.rtt),
                    n + 1,
                ));
            }
            if let Some(u) = s.udp {
                let prev = t.prev.udp.unwrap_or_default();
                let packets = u.packets.saturating_sub(prev.packets);
                if t.kind.sender {
                    o.push("packets", packets);
                    sum.packets = sum.packets.saturating_add(packets);
                } else {
                    let lost = u.lost.saturating_sub(prev.lost);
                    o.push("jitter_ms", u.jitter * 1000.0);
                    o.push("lost_packets", lost);
                    o.push("packets", packets);
                    o.push("lost_percent", pct(lost, packets));
                    sum.packets = sum.packets.saturating_add(packets);
                    sum.lost = sum.lost.saturating_add(lost);
                    sum.jitter += u.jitter;
                    sum.udp_recv = true;
                }
                sum.udp = true;
            }
            o.push("omitted", omitted);
            o.push("sender", t.kind.sender);
            streams.push(o);
            t.prev_at = now;
            t.prev = *s;
            t.last = *s;
        }
        self.last_at = now;
        let (start, end, seconds) = first.unwrap_or_default();
        let mut interval = Json::obj().with("streams", Json::Arr(streams));
        let times = (start, end, seconds);
        if recv_sum.present || !send_sum.present {
            interval.push("sum", recv_sum.interval(times, parallel, omitted, false));
        }
        if send_sum.present {
            let key = if recv_sum.present {
                "sum_bidir_reverse"
            } else {
                "sum"
            };
            interval.push(key, send_sum.interval(times, parallel, omitted, true));
        }
        Some((interval, rate(total, seconds)))
    }

    /// Ends the omit period at `now`: the counters as of `samples` become
    /// the baselines and every stream's clock restarts.
    pub fn end_omit(&mut self, now: Instant, samples: &[Sample]) {
        self.omitting = false;
        self.last_at = now;
        for (t, s) in self.tracks.iter_mut().zip(samples) {
            t.start = now;
            t.prev_at = now;
            t.prev = *s;
            t.base = *s;
            t.last = *s;
            if let Some(u) = &mut t.base.udp {
                // Jitter restarts from zero after the omit period.
                u.jitter = 0.0;
            }
            t.rtt = None;
            t.max_cwnd = 0;
            t.max_wnd = -1;
        }
    }

    fn elapsed(&self) -> f64 {
        self.tracks
            .first()
            .map_or(0.0, |t| secs(t.start, t.prev_at))
    }

    /// The `end` section, from the last sample, with the server's CPU figures
    /// (total, user, system, %) and congestion algorithm.
    pub fn end(&self, cpu: (f64, f64, f64), congestion: Option<&str>) -> Json {
        self.end_as(cpu, congestion, false)
    }

    /// [`Stats::end`] as the side that ran the test: a client's `--bidir`
    /// sums name its sending streams plainly (client to server) and its
    /// receiving ones `_bidir_reverse`, a server's the other way round.
    pub fn end_as(&self, cpu: (f64, f64, f64), congestion: Option<&str>, client: bool) -> Json {
        let big_t = self.elapsed();
        let mut streams = Vec::new();
        let mut recv_sum = PassSum::default();
        let mut send_sum = PassSum::default();
        for t in &self.tracks {
            let bytes = t.last.bytes.saturating_sub(t.base.bytes);
            let sum = if t.kind.sender {
                &mut send_sum
            } else {
                &mut recv_sum
            };
            sum.present = true;
            sum.bytes = sum.bytes.saturating_add(bytes);
            if t.kind.udp {
                sum.udp = true;
                let u = t.last.udp.unwrap_or_default();
                let b = t.base.udp.unwrap_or_default();
                let packets = u.packets.saturating_sub(b.packets);
                let lost = u.lost.saturating_sub(b.lost);
                let sent_bytes = if t.kind.sender { bytes } else { 0 };
                let (jitter, lost_pct) = if t.kind.sender {
                    (0.0, 0.0)
                } else {
                    (u.jitter, 0.0)
                };
                if !t.kind.sender {
                    sum.udp_recv = true;
                    sum.lost = sum.lost.saturating_add(lost);
                    sum.jitter += u.jitter;
                }
                sum.packets = sum.packets.saturating_add(packets);
                streams.push(
                    Json::obj().with(
                        "udp",
                        Json::obj()
                            .with("socket", t.socket)
                            .with("start", 0)
                            .with("end", big_t)
                            .with("seconds", big_t)
                            .with("bytes", sent_bytes)
                            .with("bits_per_second", rate(sent_bytes, big_t))
                            .with("jitter_ms", jitter * 1000.0)
                            .with("lost_packets", if t.kind.sender { 0 } else { lost })
                            .with("packets", packets)
                            .with("lost_percent", lost_pct)
                            .with(
                                "out_of_order",
                                u.out_of_order.saturating_sub(b.out_of_order),
                            )
                            .with("sender", t.kind.sender),
                    ),
                );
                continue;
            }
            let side = |role_bytes: u64| {
                Json::obj()
                    .with("socket", t.socket)
                    .with("start", 0)
                    .with("end", big_t)
                    .with("seconds", big_t)
                    .with("bytes", role_bytes)
                    .with("bits_per_second", rate(role_bytes, big_t))
            };
            let mut sender = side(if t.kind.sender { bytes } else { 0 });
            if let (true, Some(info)) = (t.kind.sender, t.last.tcp) {
                let base = t.base.tcp.map_or(0, |b| b.total_retrans);
                let retrans = u64::from(info.total_retrans.saturating_sub(base));
                sum.retransmits = Some(sum.retransmits.unwrap_or(0) + retrans);
                let (max_rtt, min_rtt, total, n) =
                    t.rtt
                        .unwrap_or((info.rtt, info.rtt, u64::from(info.rtt), 1));
                sender.push("retransmits", retrans);
                sender.push("reorder", info.reord_seen);
                sender.push("max_snd_cwnd", t.max_cwnd.max(info.snd_cwnd_bytes));
                sender.push("max_snd_wnd", t.max_wnd.max(info.snd_wnd));
                sender.push("max_rtt", max_rtt);
                sender.push("min_rtt", min_rtt);
                sender.push("mean_rtt", total / n.max(1));
            }
            sender.push("sender", t.kind.sender);
            let receiver =
                side(if t.kind.sender { 0 } else { bytes }).with("sender", t.kind.sender);
            streams.push(
                Json::obj()
                    .with("sender", sender)
                    .with("receiver", receiver),
            );
        }
        let mut end = Json::obj().with("streams", Json::Arr(streams));
        let bidir = recv_sum.present && send_sum.present;
        let udp = recv_sum.udp || send_sum.udp;
        let parallel = self.parallel;
        let passes: Vec<(&PassSum, bool)> = match (recv_sum.present, send_sum.present) {
            (true, true) if client => vec![(&send_sum, true), (&recv_sum, false)],
            (true, true) => vec![(&recv_sum, false), (&send_sum, true)],
            (false, true) => vec![(&send_sum, true)],
            _ => vec![(&recv_sum, false)],
        };
        for (i, (sum, sender)) in passes.into_iter().enumerate() {
            let suffix = if bidir && i == 1 {
                "_bidir_reverse"
            } else {
                ""
            };
            if udp {
                end.push(
                    &format!("sum{suffix}"),
                    sum.udp_total(big_t, parallel, sender),
                );
            }
            end.push(
                &format!("sum_sent{suffix}"),
                sum.end_sent(big_t, parallel, sender, udp),
            );
            end.push(
                &format!("sum_received{suffix}"),
                sum.end_received(big_t, parallel, sender, udp),
            );
        }
        end.push(
            "cpu_utilization_percent",
            Json::obj()
                .with("host_total", cpu.0)
                .with("host_user", cpu.1)
                .with("host_system", cpu.2)
                .with("remote_total", 0)
                .with("remote_user", 0)
                .with("remote_system", 0),
        );
        if !udp {
            let key = if send_sum.present {
                "sender_tcp_congestion"
            } else {
                "receiver_tcp_congestion"
            };
            end.push(key, congestion.unwrap_or("unknown"));
        }
        end
    }

    /// The streams of the server's results document, in stream order, with
    /// `ids` (1, 3, 4, …).
    pub fn result_streams(&self, ids: &[i64]) -> Vec<Json> {
        self.tracks
            .iter()
            .zip(ids)
            .map(|(t, &id)| {
                let bytes = t.last.bytes.saturating_sub(t.base.bytes);
                let retransmits = match (t.kind.sender && !t.kind.udp, t.last.tcp) {
                    (true, Some(info)) => i64::from(
                        info.total_retrans
                            .saturating_sub(t.base.tcp.map_or(0, |b| b.total_retrans)),
                    ),
                    _ => -1,
                };
                let u = t.last.udp.unwrap_or_default();
                let b = t.base.udp.unwrap_or_default();
                let (jitter, errors, omitted_errors) = if t.kind.udp && !t.kind.sender {
                    (u.jitter, u.lost, b.lost)
                } else {
                    (0.0, 0, 0)
                };
                Json::obj()
                    .with("id", id)
                    .with("bytes", bytes)
                    .with("retransmits", retransmits)
                    .with("jitter", jitter)
                    .with("errors", errors)
                    .with("omitted_errors", omitted_errors)
                    .with("packets", u.packets)
                    .with("omitted_packets", b.packets)
                    .with("start_time", 0)
                    .with("end_time", secs(t.start, t.prev_at))
            })
            .collect()
    }

    /// Whether any stream is a sending TCP stream with retransmission counters.
    pub fn sender_has_retransmits(&self) -> i64 {
        if !self.tracks.iter().any(|t| t.kind.sender) {
            -1
        } else if self
            .tracks
            .iter()
            .any(|t| t.kind.sender && !t.kind.udp && t.last.tcp.is_some())
        {
            1
        } else {
            0
        }
    }
}

#[derive(Debug, Default)]
struct PassSum {
    present: bool,
    udp: bool,
    udp_recv: bool,
    bytes: u64,
    retransmits: Option<u64>,
    packets: u64,
    lost: u64,
    jitter: f64,
}

impl PassSum {
    fn interval(
        &self,
        (start, end, seconds): (f64, f64, f64),
        parallel: u32,
        omitted: bool,
        sender: bool,
    ) -> Json {
        let mut o = Json::obj()
            .with("start", start)
            .with("end", end)
            .with("seconds", seconds)
            .with("bytes", self.bytes)
            .with("bits_per_second", rate(self.bytes, seconds));
        if let Some(r) = self.retransmits {
            o.push("retransmits", r);
        }
        if self.udp_recv {
            o.push("jitter_ms", self.jitter / f64::from(parallel) * 1000.0);
            o.push("lost_packets", self.lost);
            o.push("packets", self.packets);
            o.push("lost_percent", pct(self.lost, self.packets));
        } else if self.udp {
            o.push("packets", self.packets);
        }
        o.with("omitted", omitted).with("sender", sender)
    }

    fn base(t: f64, bytes: u64) -> Json {
        Json::obj()
            .with("start", 0)
            .with("end", t)
            .with("seconds", t)
            .with("bytes", bytes)
            .with("bits_per_second", rate(bytes, t))
    }

    fn udp_total(&self, t: f64, parallel: u32, sender: bool) -> Json {
        let sent = if sender { self.bytes } else { 0 };
        Self::base(t, sent)
            .with("jitter_ms", self.jitter / f64::from(parallel) * 1000.0)
            .with("lost_packets", self.lost)
            .with("packets", self.packets)
            .with("lost_percent", pct(self.lost, self.packets))
            .with("sender", sender)
    }

    fn end_sent(&self, t: f64, _parallel: u32, sender: bool, udp: bool) -> Json {
        let sent = if sender { self.bytes } else { 0 };
        let mut o = Self::base(t, sent);
        if udp {
            let packets = if sender { self.packets } else { 0 };
            return o
                .with("jitter_ms", 0)
                .with("lost_packets", 0)
                .with("packets", packets)
                .with("lost_percent", 0)
                .with("sender", true);
        }
        if let (true, Some(r)) = (sender, self.retransmits) {
            o.push("retransmits", r);
        }
        o.with("sender", sender)
    }

    fn end_received(&self, t: f64, parallel: u32, sender: bool, udp: bool) -> Json {
        let received = if sender { 0 } else { self.bytes };
        let o = Self::base(t, received);
        if udp {
            let (jitter, lost, packets) = if sender {
                (0.0, 0, 0)
            } else {
                (
                    self.jitter / f64::from(parallel) * 1000.0,
                    self.lost,
                    self.packets,
                )
            };
            return o
                .with("jitter_ms", jitter)
                .with("lost_packets", lost)
                .with("packets", packets)
                .with("lost_percent", pct(lost, packets))
                .with("sender", false);
        }
        o.with("sender", sender)
    }
}

/// The server's results document (compact JSON is rendered by the caller).
pub fn results_document(
    stats: &Stats,
    ids: &[i64],
    cpu: (f64, f64, f64),
    congestion: Option<&str>,
    server_output: Option<Json>,
) -> Json {
    let mut doc = Json::obj()
        .with("cpu_util_total", cpu.0)
        .with("cpu_util_user", cpu.1)
        .with("cpu_util_system", cpu.2)
        .with("sender_has_retransmits", stats.sender_has_retransmits());
    if let Some(c) = congestion {
        doc.push("congestion_used", c);
    }
    if let Some(out) = server_output {
        doc.push("server_output_json", out);
    }
    doc.with("streams", Json::Arr(stats.result_streams(ids)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECV: StreamKind = StreamKind {
        sender: false,
        udp: false,
    };
    const SEND: StreamKind = StreamKind {
        sender: true,
        udp: false,
    };

    fn keys(j: &Json) -> Vec<&str> {
        match j {
            Json::Obj(m) => m.iter().map(|(k, _)| k.as_str()).collect(),
            _ => vec![],
        }
    }

    fn at(t0: Instant, s: f64) -> Instant {
        t0 + Duration::from_secs_f64(s)
    }

    fn sample(bytes: u64) -> Sample {
        Sample {
            bytes,
            ..Sample::default()
        }
    }

    #[test]
    fn tcp_receive_intervals_and_end() {
        let t0 = Instant::now();
        let mut st = Stats::new(&[(6, RECV)], 1, t0, false);
        let (iv, bps) = st
            .sample(at(t0, 1.000026), &[sample(2_462_580_736)])
            .unwrap();
        assert_eq!(keys(&iv), ["streams", "sum"]);
        let sum = iv.get("sum").unwrap();
        assert_eq!(
            sum.get("seconds"),
            Some(&Json::Num(f64::from(1.000026_f32)))
        );
        assert_eq!(sum.get("end"), Some(&Json::Num(1.000026)));
        assert!((bps - 19_700_133_928.304615).abs() < 1.0);
        // A short, empty last interval is dropped; a short one with bytes is kept.
        assert!(st.sample(at(t0, 1.05), &[sample(2_462_580_736)]).is_none());
        assert!(st.sample(at(t0, 1.06), &[sample(2_462_580_800)]).is_some());
        let end = st.end((53.2, 1.4, 51.7), Some("cubic"));
        assert_eq!(
            keys(&end),
            [
                "streams",
                "sum_sent",
                "sum_received",
                "cpu_utilization_percent",
                "receiver_tcp_congestion"
            ]
        );
        let recv = end.get("sum_received").unwrap();
        assert_eq!(recv.get("bytes"), Some(&Json::Int(2_462_580_800)));
        assert_eq!(
            end.get("sum_sent").unwrap().get("bytes"),
            Some(&Json::Int(0))
        );
    }

    #[test]
    fn bidir_sums_and_congestion_key() {
        let t0 = Instant::now();
        let mut st = Stats::new(&[(6, RECV), (9, SEND)], 1, t0, false);
        let tcp = TcpInfo {
            total_retrans: 2,
            snd_cwnd_bytes: 100,
            snd_wnd: 5,
            rtt: 10,
            rttvar: 1,
            pmtu: 1500,
            reord_seen: 0,
        };
        let (iv, _) = st
            .sample(
                at(t0, 1.0),
                &[
                    sample(100),
                    Sample {
                        bytes: 200,
                        tcp: Some(tcp),
                        udp: None,
                    },
                ],
            )
            .unwrap();
        assert_eq!(keys(&iv), ["streams", "sum", "sum_bidir_reverse"]);
        assert_eq!(
            iv.get("sum_bidir_reverse").unwrap().get("retransmits"),
            Some(&Json::Int(2))
        );
        let end = st.end((1.0, 0.5, 0.5), Some("cubic"));
        assert_eq!(
            keys(&end),
            [
                "streams",
                "sum_sent",
                "sum_received",
                "sum_sent_bidir_reverse",
                "sum_received_bidir_reverse",
                "cpu_utilization_percent",
                "sender_tcp_congestion"
            ]
        );
        let ids = [1, 3];
        let rs = st.result_streams(&ids);
        assert_eq!(rs[0].get("retransmits"), Some(&Json::Int(-1)));
        assert_eq!(rs[1].get("retransmits"), Some(&Json::Int(2)));
        assert_eq!(rs[1].get("bytes"), Some(&Json::Int(200)));
        assert_eq!(st.sender_has_retransmits(), 1);
    }

    #[test]
    fn omit_period_is_excluded() {
        let t0 = Instant::now();
        let mut st = Stats::new(&[(6, RECV)], 1, t0, true);
        let (iv, _) = st.sample(at(t0, 1.0), &[sample(1000)]).unwrap();
        assert_eq!(
            iv.get("sum").unwrap().get("omitted"),
            Some(&Json::Bool(true))
        );
        st.end_omit(at(t0, 1.0), &[sample(1000)]);
        let (iv, _) = st.sample(at(t0, 2.0), &[sample(1500)]).unwrap();
        let sum = iv.get("sum").unwrap();
        assert_eq!(sum.get("omitted"), Some(&Json::Bool(false)));
        assert_eq!(sum.get("start"), Some(&Json::Num(0.0)));
        assert_eq!(sum.get("bytes"), Some(&Json::Int(500)));
        let end = st.end((0.0, 0.0, 0.0), None);
        assert_eq!(
            end.get("sum_received").unwrap().get("bytes"),
            Some(&Json::Int(500))
        );
        assert_eq!(
            end.get("sum_received").unwrap().get("seconds"),
            Some(&Json::Num(1.0))
        );
    }

    #[test]
    fn udp_receive_end_matches_stock_shape() {
        let t0 = Instant::now();
        let kind = StreamKind {
            sender: false,
            udp: true,
        };
        let mut st = Stats::new(&[(6, kind)], 1, t0, false);
        let u = UdpSnapshot {
            packets: 8,
            lost: 1,
            out_of_order: 0,
            jitter: 1.2732467826455832e-05,
        };
        st.sample(
            at(t0, 2.000406),
            &[Sample {
                bytes: 262_144,
                tcp: None,
                udp: Some(u),
            }],
        )
        .unwrap();
        let end = st.end((0.0, 0.0, 0.0), None);
        assert_eq!(
            keys(&end),
            [
                "streams",
                "sum",
                "sum_sent",
                "sum_received",
                "cpu_utilization_percent"
            ]
        );
        let recv = end.get("sum_received").unwrap();
        assert_eq!(recv.get("bytes"), Some(&Json::Int(262_144)));
        assert_eq!(recv.get("packets"), Some(&Json::Int(8)));
        assert_eq!(recv.get("lost_percent"), Some(&Json::Num(12.5)));
        assert_eq!(
            end.get("sum_sent").unwrap().get("sender"),
            Some(&Json::Bool(true))
        );
        let stream = end
            .get("streams")
            .and_then(|s| match s {
                Json::Arr(a) => a.first(),
                _ => None,
            })
            .unwrap();
        let udp = stream.get("udp").unwrap();
        assert_eq!(udp.get("bytes"), Some(&Json::Int(0)));
        assert_eq!(udp.get("lost_percent"), Some(&Json::Num(0.0)));
    }

    /// A UDP client controls the sequence numbers the counters come from;
    /// numbers near 2^64 on several streams must not overflow the sums.
    #[test]
    fn huge_udp_sequence_numbers_do_not_overflow() {
        let t0 = Instant::now();
        let kind = StreamKind {
            sender: false,
            udp: true,
        };
        let mut st = Stats::new(&[(6, kind), (7, kind)], 2, t0, false);
        let huge = Sample {
            bytes: 100,
            tcp: None,
            udp: Some(UdpSnapshot {
                packets: u64::MAX,
                lost: u64::MAX - 1,
                out_of_order: 0,
                jitter: 0.0,
            }),
        };
        st.sample(at(t0, 1.0), &[huge, huge]).unwrap();
        let end = st.end((0.0, 0.0, 0.0), None);
        let recv = end.get("sum_received").unwrap();
        assert!(recv.get("packets").is_some());
    }
}
