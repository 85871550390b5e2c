//! One subtest (download or upload) as a state machine on a simulated
//! clock: the driver asks [`Subtest::step`] what to do at the time elapsed
//! since the handshake, tells it what was sent, received and measured, and
//! sleeps until [`Subtest::wake_at`] when there is nothing to send.
//!
//! The subtest keeps the measurements it recorded (at most
//! [`MAX_MEASUREMENTS`] per side) and decides when it ends: at
//! [`DURATION`], at [`MAX_BYTES`], or, for a peer that does not close, at
//! [`HARD_LIMIT`]. A peer that breaks the protocol is a [`Violation`]: the
//! connection is closed and nothing is logged as a success.

use std::time::Duration;

use super::measurement::Measurement;
use super::size::MessageSize;
use super::{
    Kind, DURATION, HARD_LIMIT, MAX_BYTES, MAX_CLIENT_MEASUREMENT, MAX_MEASUREMENTS,
    MEASUREMENT_INTERVAL,
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
    /// JSON object and fewer than [`MAX_MEASUREMENTS`] are kept; ignored
    /// otherwise (the spec lets servers discard them).
    pub fn text_received(&mut self, text: &str) {
        if text.len() > MAX_CLIENT_MEASUREMENT || self.client.len() >= MAX_MEASUREMENTS {
            return;
        }
        if let Ok(value @ serde_json::Value::Object(_)) = serde_json::from_str(text) {
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
