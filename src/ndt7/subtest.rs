//! One subtest (download or upload) as a state machine on a simulated
//! clock: the driver asks [`Subtest::step`] what to do at the time elapsed
//! since the handshake, tells it what was sent, received and measured, and
//! sleeps until [`Subtest::wake_at`] when there is nothing to send.
//!
//! The subtest keeps the measurements it recorded (at most
//! [`MAX_MEASUREMENTS`] per side; the client's also bounded by nesting,
//! [`MAX_CLIENT_DEPTH`], and by the bytes they take in the log,
//! [`MAX_CLIENT_LOGGED`]) and decides when it ends: at
//! [`DURATION`], at [`MAX_BYTES`], or, for a peer that does not close, at
//! [`HARD_LIMIT`]. A peer that breaks the protocol is a [`Violation`]: the
//! connection is closed and nothing is logged as a success.

use std::time::Duration;

use super::measurement::Measurement;
use super::record::{client_logged_len, depth};
use super::size::MessageSize;
use super::{
    Kind, DURATION, HARD_LIMIT, MAX_BYTES, MAX_CLIENT_DEPTH, MAX_CLIENT_LOGGED,
    MAX_CLIENT_MEASUREMENT, MAX_MEASUREMENTS, MEASUREMENT_INTERVAL,
};

/// What the driver should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Take a measurement (TCP_INFO), send it and hand it to
    /// [`Subtest::measured`].
    Measure,
    /// Download: send one binary message of this many bytes.
    Send(usize),
    /// Upload: nothing to send; wait for the client until [`Subtest::wake_at`].
    Wait,
    /// The subtest is over: take a last measurement, close the websocket
    /// and wait for the peer's close until [`HARD_LIMIT`].
    Finish,
    /// [`HARD_LIMIT`] passed: drop the connection.
    Abort,
}

/// How a client broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// The client sent a binary message during the download.
    #[error("the client sent binary data during the download")]
    BinaryInDownload,
    /// A message or frame was bigger than the spec's maximum.
    #[error("a message larger than {0} bytes")]
    TooLarge(usize),
    /// The websocket stream was not valid (bad frame, bad UTF-8 ...).
    #[error("malformed websocket data: {0}")]
    Malformed(String),
}

/// One running subtest.
#[derive(Debug)]
pub struct Subtest {
    kind: Kind,
    size: MessageSize,
    received: u64,
    next_measurement: Duration,
    finishing: bool,
    server: Vec<Measurement>,
    client: Vec<serde_json::Value>,
    /// Bytes the kept client measurements take in the log.
    client_logged: usize,
}

impl Subtest {
    /// A subtest of `kind` that began (handshake done) at elapsed zero.
    pub fn new(kind: Kind) -> Subtest {
        Subtest {
            kind,
            size: MessageSize::default(),
            received: 0,
            next_measurement: Duration::ZERO,
            finishing: false,
            server: Vec::new(),
            client: Vec::new(),
            client_logged: 0,
        }
    }

    /// Download or upload.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Application bytes moved so far (sent for a download, received for an upload).
    pub fn bytes(&self) -> u64 {
        match self.kind {
            Kind::Download => self.size.total(),
            Kind::Upload => self.received,
        }
    }

    /// What to do at `elapsed`.
    pub fn step(&mut self, elapsed: Duration) -> Step {
        if elapsed >= HARD_LIMIT {
            return Step::Abort;
        }
        if self.finishing || elapsed >= DURATION || self.bytes() >= MAX_BYTES {
            self.finishing = true;
            return Step::Finish;
        }
        if elapsed >= self.next_measurement {
            return Step::Measure;
        }
        match self.kind {
            Kind::Download => Step::Send(self.size.current()),
            Kind::Upload => Step::Wait,
        }
    }

    /// When the driver must ask again even if nothing arrives.
    pub fn wake_at(&self) -> Duration {
        if self.finishing {
            HARD_LIMIT
        } else {
            self.next_measurement.min(DURATION)
        }
    }

    /// A binary message of `len` bytes was sent (download).
    pub fn sent(&mut self, len: usize) {
        self.size.sent(len);
    }

    /// A binary message of `len` bytes arrived.
    pub fn binary_received(&mut self, len: usize) -> Result<(), Violation> {
        match self.kind {
            Kind::Download => Err(Violation::BinaryInDownload),
            Kind::Upload => {
                self.received = self.received.saturating_add(len as u64);
                Ok(())
            }
        }
    }

    /// A text message arrived: kept as a client measurement if it is a small
    /// JSON object at most [`MAX_CLIENT_DEPTH`] deep, fewer than
    /// [`MAX_MEASUREMENTS`] are kept, and it fits in what is left of
    /// [`MAX_CLIENT_LOGGED`]; ignored otherwise (the spec lets servers
    /// discard them).
    pub fn text_received(&mut self, text: &str) {
        if text.len() > MAX_CLIENT_MEASUREMENT || self.client.len() >= MAX_MEASUREMENTS {
            return;
        }
        let Ok(value @ serde_json::Value::Object(_)) = serde_json::from_str(text) else {
            return;
        };
        if depth(&value) > MAX_CLIENT_DEPTH {
            return;
        }
        let logged = self.client_logged + client_logged_len(&value);
        if logged <= MAX_CLIENT_LOGGED {
            self.client_logged = logged;
            self.client.push(value);
        }
    }

    /// A measurement was taken at `elapsed` (and sent): it is recorded, and
    /// the next one is due an interval later.
    pub fn measured(&mut self, elapsed: Duration, measurement: Measurement) {
        self.next_measurement = elapsed + MEASUREMENT_INTERVAL;
        if self.server.len() >= MAX_MEASUREMENTS {
            // Keep the first ones and the latest (the summary of them all).
            self.server.pop();
        }
        self.server.push(measurement);
    }

    /// The recorded measurements: the server's and the client's.
    pub fn into_measurements(self) -> (Vec<Measurement>, Vec<serde_json::Value>) {
        (self.server, self.client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn measure(s: &mut Subtest, at: Duration) {
        let m = Measurement::server(s.kind(), at, s.bytes(), None, None);
        s.measured(at, m);
    }

    #[test]
    fn a_download_measures_every_quarter_second_and_ends_at_ten() {
        let mut s = Subtest::new(Kind::Download);
        assert_eq!(s.step(ms(0)), Step::Measure);
        measure(&mut s, ms(0));
        assert_eq!(s.step(ms(1)), Step::Send(1 << 13));
        s.sent(1 << 13);
        assert_eq!(s.wake_at(), ms(250));
        assert_eq!(s.step(ms(249)), Step::Send(1 << 13));
        assert_eq!(s.step(ms(250)), Step::Measure);
        measure(&mut s, ms(260));
        assert_eq!(s.wake_at(), ms(510));
        assert_eq!(s.step(ms(9_999)), Step::Measure);
        assert_eq!(s.step(ms(10_000)), Step::Finish);
        // Once finishing, it stays so until the hard limit.
        assert_eq!(s.step(ms(12_000)), Step::Finish);
        assert_eq!(s.wake_at(), HARD_LIMIT);
        assert_eq!(s.step(ms(15_000)), Step::Abort);
    }

    #[test]
    fn an_upload_waits_and_counts() {
        let mut s = Subtest::new(Kind::Upload);
        measure(&mut s, ms(0));
        assert_eq!(s.step(ms(10)), Step::Wait);
        s.binary_received(1000).unwrap();
        s.binary_received(24).unwrap();
        assert_eq!(s.bytes(), 1024);
        assert_eq!(s.step(ms(10_001)), Step::Finish);
    }

    #[test]
    fn the_byte_cap_ends_a_subtest() {
        let mut s = Subtest::new(Kind::Upload);
        measure(&mut s, ms(0));
        s.binary_received(usize::try_from(MAX_BYTES).unwrap())
            .unwrap();
        assert_eq!(s.step(ms(20)), Step::Finish);
    }

    #[test]
    fn binary_data_in_a_download_is_a_violation() {
        let mut s = Subtest::new(Kind::Download);
        assert_eq!(s.binary_received(1), Err(Violation::BinaryInDownload));
    }

    #[test]
    fn measurements_are_bounded_and_keep_the_latest() {
        let mut s = Subtest::new(Kind::Upload);
        for i in 0..1000 {
            measure(&mut s, ms(i));
            s.text_received(r#"{"AppInfo":{"NumBytes":1}}"#);
        }
        s.text_received("not json");
        let (server, client) = s.into_measurements();
        assert_eq!(server.len(), MAX_MEASUREMENTS);
        assert_eq!(
            server.last().unwrap().app_info.unwrap().elapsed_time,
            999_000
        );
        assert_eq!(client.len(), MAX_MEASUREMENTS);
    }

    /// The logged document of an upload that measured every interval and
    /// got `texts` from its client (each sent until no more is kept), with
    /// the largest query the spec allows as its metadata.
    fn logged_len(texts: &[String]) -> usize {
        use crate::ndt7::measurement::{ConnectionInfo, TcpInfo};
        use crate::ndt7::record::{NameValue, Record, Summary};
        let mut s = Subtest::new(Kind::Upload);
        for i in 0..MAX_MEASUREMENTS as u64 {
            let connection = ConnectionInfo {
                client: "[2001:db8::1234:5678:9abc:def0]:65535".into(),
                server: "[2001:db8::1]:8080".into(),
                uuid: "webperf3-1700000000-123456789".into(),
            };
            let tcp = TcpInfo {
                bytes_acked: i64::MAX,
                ..TcpInfo::default()
            };
            let m = Measurement::server(Kind::Upload, ms(i), u64::MAX, Some(tcp), Some(connection));
            s.measured(ms(i), m);
        }
        for _ in 0..MAX_MEASUREMENTS + 10 {
            texts.iter().for_each(|t| s.text_received(t));
        }
        let (server, client) = s.into_measurements();
        // Distinct names of three bytes, control characters as values:
        // the most a query of the spec's size prints to.
        let metadata = (0..crate::ndt7::MAX_QUERY / 8)
            .map(|i| NameValue {
                name: format!("{i:03x}"),
                value: "\u{1}".into(),
            })
            .collect();
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let record = Record::new(
            Kind::Upload,
            "[2001:db8::1234]:40000".parse().unwrap(),
            "[2001:db8::1]:8080".parse().unwrap(),
            (at, at),
            Summary {
                start_time: String::new(),
                end_time: String::new(),
                uuid: "u".into(),
                client_metadata: metadata,
                server_metadata: vec![],
                server_measurements: server,
                client_measurements: client,
                latency: None,
            },
        );
        record.to_text().len()
    }

    /// A client text of at most [`MAX_CLIENT_MEASUREMENT`] bytes: `open`
    /// around a list of `fill` as long as fits, closed again.
    fn hostile(open: &str, fill: &str) -> String {
        let close: String = open
            .chars()
            .rev()
            .filter_map(|c| match c {
                '[' => Some(']'),
                '{' => Some('}'),
                _ => None,
            })
            .collect();
        let room = MAX_CLIENT_MEASUREMENT - open.len() - close.len() - 2;
        let n = room / (fill.len() + 1);
        format!("{open}[{}]{close}", vec![fill; n].join(","))
    }

    #[test]
    fn what_a_client_sends_logs_a_bounded_entry() {
        const BOUND: usize = 384 * 1024;
        let deep = format!("{{\"a\":{}", "[".repeat(120));
        let shapes = [
            // Deep: every element indented by hundreds of spaces.
            hostile(&deep, "0"),
            // As deep as is kept, then wide.
            hostile("{\"a\":[[[[[[", "0"),
            hostile("{\"a\":[[[[[[", "{}"),
            // Characters printed as six.
            hostile("{\"a\":", "\"\\u0001\\u0001\""),
        ];
        for shape in &shapes {
            let len = logged_len(std::slice::from_ref(shape));
            assert!(len <= BOUND, "{len} bytes logged for {}", &shape[..40]);
        }
        assert!(logged_len(&shapes) <= BOUND);
        // What M-Lab's clients send is kept whole.
        let mlab = r#"{"AppInfo":{"ElapsedTime":10000000,"NumBytes":1250000000},"Origin":"client","Test":"upload"}"#;
        let mut s = Subtest::new(Kind::Upload);
        (0..MAX_MEASUREMENTS).for_each(|_| s.text_received(mlab));
        assert_eq!(s.into_measurements().1.len(), MAX_MEASUREMENTS);
    }

    #[test]
    fn big_or_non_object_client_text_is_not_kept() {
        let mut s = Subtest::new(Kind::Upload);
        s.text_received("[1,2]");
        s.text_received(&format!(
            "{{\"x\":\"{}\"}}",
            "a".repeat(MAX_CLIENT_MEASUREMENT)
        ));
        assert!(s.into_measurements().1.is_empty());
    }
}
