//! One test's log entry, built up the way stock builds it: `start` grows as
//! the test progresses (so a failed test's entry stops where it got to),
//! `intervals` are appended by the statistics, `end` is set at `TEST_END`.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::json::Json;
use crate::protocol::params::TestParams;

/// The reporting interval, seconds (stock's default; clients cannot change
/// it): the session's interval timer.
pub const INTERVAL_SECS: u32 = crate::protocol::session::INTERVAL.as_secs() as u32;

/// The `version` we write: our own name, in stock's `"<name> <version>"` shape.
pub fn version_string() -> String {
    format!("webperf3 {}", env!("CARGO_PKG_VERSION"))
}

/// An address as the log writes it: numeric, IPv4-mapped IPv6 as plain IPv4.
pub fn host_text(addr: &SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => a.ip().to_string(),
        },
    }
}

/// Stock's `timestamp.time`: `Sat, 21 Nov 2026 23:40:11 GMT`.
pub fn http_date(at: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = at.into();
    dt.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// A log entry under construction.
#[derive(Debug, Clone)]
pub struct TestLog {
    connected: Vec<Json>,
    start: Vec<(String, Json)>,
    /// Interval objects, in order.
    pub intervals: Vec<Json>,
    /// The `end` object (empty until the test ends).
    pub end: Json,
}

impl Default for TestLog {
    fn default() -> Self {
        TestLog::new()
    }
}

impl TestLog {
    /// An entry for a control connection just accepted.
    pub fn new() -> TestLog {
        let start = vec![
            ("version".to_string(), Json::from(version_string())),
            (
                "system_info".to_string(),
                Json::from(crate::sys::system_info()),
            ),
        ];
        TestLog {
            connected: Vec::new(),
            start,
            intervals: Vec::new(),
            end: Json::obj(),
        }
    }

    fn push(&mut self, key: &str, value: impl Into<Json>) {
        self.start.push((key.to_string(), value.into()));
    }

    /// What stock adds once the parameters are in: the first
    /// `target_bitrate`, the TCP buffer sizes, the timestamp, the client's
    /// address, the cookie, MSS, the second `target_bitrate` and `fq_rate`.
    pub fn on_params(
        &mut self,
        p: &TestParams,
        tcp_buffers: Option<(u32, u32, u32)>,
        accepted_at: SystemTime,
        client: &SocketAddr,
        cookie: &str,
    ) {
        if p.bandwidth > 0 {
            self.push("target_bitrate", p.bandwidth);
        }
        if let Some((requested, snd, rcv)) = tcp_buffers {
            self.push("sock_bufsize", requested);
            self.push("sndbuf_actual", snd);
            self.push("rcvbuf_actual", rcv);
        }
        self.push_timestamp(accepted_at);
        self.push(
            "accepted_connection",
            Json::obj()
                .with("host", host_text(client))
                .with("port", client.port()),
        );
        self.push("cookie", cookie);
        if tcp_buffers.is_some() {
            if p.mss > 0 {
                self.push("tcp_mss", p.mss);
            } else {
                self.push("tcp_mss_default", 0);
            }
        }
        self.push("target_bitrate", p.bandwidth);
        self.push("fq_rate", p.fqrate);
    }

    /// What stock's client adds once connected to `host` (as asked for)
    /// on `port`: the requested rate, the timestamp, `connecting_to`, the
    /// cookie.
    pub fn on_connecting(
        &mut self,
        p: &TestParams,
        at: SystemTime,
        (host, port): (&str, u16),
        cookie: &str,
    ) {
        if p.bandwidth > 0 {
            self.push("target_bitrate", p.bandwidth);
        }
        self.push_timestamp(at);
        self.push(
            "connecting_to",
            Json::obj().with("host", host).with("port", port),
        );
        self.push("cookie", cookie);
        self.push("tcp_mss_default", 0);
    }

    fn push_timestamp(&mut self, at: SystemTime) {
        let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        self.push(
            "timestamp",
            Json::obj()
                .with("time", http_date(at))
                .with("timesecs", since.as_secs())
                .with(
                    "timemillisecs",
                    u64::try_from(since.as_millis()).unwrap_or(u64::MAX),
                ),
        );
    }

    /// The UDP buffer sizes, added when the first UDP stream is set up.
    pub fn on_udp_buffers(&mut self, requested: u32, snd: u32, rcv: u32) {
        self.push("sock_bufsize", requested);
        self.push("sndbuf_actual", snd);
        self.push("rcvbuf_actual", rcv);
    }

    /// One accepted data stream.
    pub fn on_stream(&mut self, socket: i64, local: &SocketAddr, remote: &SocketAddr) {
        self.connected.push(
            Json::obj()
                .with("socket", socket)
                .with("local_host", host_text(local))
                .with("local_port", local.port())
                .with("remote_host", host_text(remote))
                .with("remote_port", remote.port()),
        );
    }

    /// `test_start`, added when the test starts.
    pub fn on_test_start(&mut self, p: &TestParams) {
        let ts = Json::obj()
            .with("protocol", p.protocol.name())
            .with("num_streams", p.parallel)
            .with("blksize", p.len)
            .with("omit", p.omit)
            .with("duration", p.time)
            .with("bytes", p.num)
            .with("blocks", p.blockcount)
            .with("reverse", i64::from(p.reverse))
            .with("tos", i64::from(p.tos))
            .with("target_bitrate", p.bandwidth)
            .with("bidir", i64::from(p.bidirectional))
            .with("fqrate", p.fqrate)
            .with("interval", INTERVAL_SECS)
            .with("gso", i64::from(p.gso))
            .with("gro", i64::from(p.gro));
        self.push("test_start", ts);
    }

    /// `start`, `intervals` and `end` as they stand: what the client gets in
    /// `server_output_json`.
    pub fn body(&self) -> Json {
        let mut start = vec![("connected".to_string(), Json::Arr(self.connected.clone()))];
        start.extend(self.start.iter().cloned());
        Json::obj()
            .with("start", Json::Obj(start))
            .with("intervals", Json::Arr(self.intervals.clone()))
            .with("end", self.end.clone())
    }

    /// The whole entry: the body, then `error`, `title`, `extra_data` as stock
    /// orders them, then our own `webperf3` key.
    pub fn entry(
        &self,
        error: Option<&str>,
        title: Option<&str>,
        extra_data: Option<&str>,
        webperf3: Json,
    ) -> Json {
        let mut entry = self.body();
        if let Some(e) = error {
            entry.push("error", e);
        }
        if let Some(t) = title {
            entry.push("title", t);
        }
        if let Some(x) = extra_data {
            entry.push("extra_data", x);
        }
        entry.push("webperf3", webperf3);
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_print_as_ipv4() {
        let a: SocketAddr = "[::ffff:192.168.1.23]:5201".parse().unwrap();
        assert_eq!(host_text(&a), "192.168.1.23");
        let b: SocketAddr = "[::1]:5201".parse().unwrap();
        assert_eq!(host_text(&b), "::1");
    }

    #[test]
    fn date_format() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_795_304_411);
        assert_eq!(http_date(t), "Sat, 21 Nov 2026 23:40:11 GMT");
    }

    #[test]
    fn failed_entry_stops_where_it_got_to() {
        let log = TestLog::new();
        let e = log.entry(
            Some("error - unable to receive cookie at server: "),
            None,
            None,
            Json::obj(),
        );
        let Json::Obj(members) = &e else { panic!() };
        let keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["start", "intervals", "end", "error", "webperf3"]);
        let Some(Json::Obj(start)) = e.get("start") else {
            panic!()
        };
        let keys: Vec<&str> = start.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["connected", "version", "system_info"]);
    }
}
