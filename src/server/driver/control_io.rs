//! The control connection's timed reads and writes: the buffered reader
//! that turns bytes into session events, a send bounded by a deadline, and
//! the closing half-close and drain. No protocol decisions: framing limits
//! come from [`crate::protocol::wire`], what to read from the session.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::protocol::session::{Event, Expect};
use crate::protocol::wire::{self, Cookie, COOKIE_LEN, MAX_PARAMS_LEN, MAX_RESULTS_LEN};

/// How long a closing connection is drained for our last bytes to land.
const DRAIN: Duration = Duration::from_secs(2);

/// The control connection's read side with its buffer: "not enough bytes
/// yet" is simply waiting for more; reads are cancel-safe.
pub struct ControlReader {
    /// The read half of the control connection.
    rd: OwnedReadHalf,
    /// Bytes read and not yet parsed.
    buf: Vec<u8>,
    /// The peer closed its side (or a read failed).
    eof: bool,
}

impl ControlReader {
    /// A reader over `rd`.
    pub fn new(rd: OwnedReadHalf) -> ControlReader {
        ControlReader {
            rd,
            buf: Vec::with_capacity(512),
            eof: false,
        }
    }

    fn parse(&mut self, expect: Expect) -> Option<Event> {
        let frame = |buf: &[u8], max| match wire::decode_frame(buf, max) {
            Ok(Some((body, used))) => Some(Ok((body.to_vec(), used))),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        };
        let (event, used) = match expect {
            Expect::Cookie if self.buf.len() >= COOKIE_LEN => {
                let mut raw = [0u8; COOKIE_LEN];
                raw.copy_from_slice(&self.buf[..COOKIE_LEN]);
                (Event::Cookie(Cookie(raw)), COOKIE_LEN)
            }
            Expect::StateByte if !self.buf.is_empty() => (Event::StateByte(self.buf[0]), 1),
            Expect::Params | Expect::Results => {
                let max = if expect == Expect::Params {
                    MAX_PARAMS_LEN
                } else {
                    MAX_RESULTS_LEN
                };
                match frame(&self.buf, max)? {
                    Ok((body, used)) if expect == Expect::Params => (Event::Params(body), used),
                    Ok((body, used)) => (Event::ClientResults(body), used),
                    Err(e) => return Some(Event::ReadFailed(Some(e.to_string()))),
                }
            }
            _ => return None,
        };
        self.buf.drain(..used);
        Some(event)
    }

    /// The next event for what the session expects. With `report_start`,
    /// the first bytes of an incomplete message are reported as
    /// [`Event::ReadStarted`] (once: the session then stops asking).
    pub async fn next(&mut self, expect: Expect, report_start: bool) -> Event {
        loop {
            if let Some(event) = self.parse(expect) {
                return event;
            }
            if report_start && !self.buf.is_empty() {
                return Event::ReadStarted;
            }
            if self.eof {
                return match expect {
                    Expect::Cookie if self.buf.is_empty() => Event::ReadFailed(None),
                    Expect::Cookie | Expect::Params | Expect::Results => {
                        Event::ReadFailed(Some(String::new()))
                    }
                    _ => Event::Eof,
                };
            }
            match self.rd.read_buf(&mut self.buf).await {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) => {
                    self.eof = true;
                    if matches!(expect, Expect::Params | Expect::Results) {
                        return Event::ReadFailed(Some(crate::sys::os_error_text(&e)));
                    }
                }
            }
        }
    }

    /// Reads state bytes until EOF or `limit`: a client told why its test
    /// ends gets a moment to read it and hang up first.
    pub async fn await_goodbye(&mut self, limit: Duration) {
        let goodbye = async { while self.next(Expect::StateByte, false).await != Event::Eof {} };
        let _ = tokio::time::timeout(limit, goodbye).await;
    }
}

/// Writes `bytes` within `limit`; whether they all went out.
pub async fn send(writer: &mut OwnedWriteHalf, bytes: &[u8], limit: Duration) -> bool {
    matches!(
        tokio::time::timeout(limit, writer.write_all(bytes)).await,
        Ok(Ok(()))
    )
}

/// Half-closes the control connection and drains what the client still
/// sends (for a bounded time), so our last bytes reach it before any reset.
pub async fn close(mut writer: OwnedWriteHalf, mut reader: ControlReader) {
    let _ = writer.shutdown().await;
    let mut sink = [0u8; 1024];
    let drain = async {
        while let Ok(n) = reader.rd.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN, drain).await;
}
