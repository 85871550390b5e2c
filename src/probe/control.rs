//! The probe's control connection: what the client machine expects, cut
//! out of the bytes read so far (cancel-safe: reads only append to a
//! buffer), and the writes it asks for.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::protocol::client::{Event, Expect};
use crate::protocol::wire::{decode_frame, encode_frame, State, MAX_RESULTS_LEN};

/// Most bytes read ahead of what the machine expects: a results document
/// and its prefix.
const MAX_BUFFERED: usize = MAX_RESULTS_LEN + 4;

/// The control connection with what was read and not yet used.
pub struct Control {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The results' first bytes were reported.
    results_started: bool,
}

impl Control {
    /// Wraps a connected control connection.
    pub fn new(stream: TcpStream) -> Control {
        let _ = stream.set_nodelay(true);
        Control {
            stream,
            buf: Vec::new(),
            results_started: false,
        }
    }

    /// The next event in what was read, for what the machine expects.
    pub fn next_event(&mut self, expect: Expect) -> Option<Event> {
        match expect {
            Expect::Nothing => None,
            Expect::StateByte => {
                let b = *self.buf.first()?;
                self.buf.drain(..1);
                Some(Event::StateByte(b))
            }
            Expect::ErrorPayload => {
                let payload: [u8; 8] = self.buf.get(..8)?.try_into().ok()?;
                self.buf.drain(..8);
                Some(Event::ErrorPayload(payload))
            }
            Expect::Results => match decode_frame(&self.buf, MAX_RESULTS_LEN) {
                Ok(Some((body, used))) => {
                    let body = body.to_vec();
                    self.buf.drain(..used);
                    Some(Event::ServerResults(body))
                }
                Ok(None) if !self.buf.is_empty() && !self.results_started => {
                    self.results_started = true;
                    Some(Event::ReadStarted)
                }
                Ok(None) => None,
                Err(e) => Some(Event::ReadFailed(e.to_string())),
            },
        }
    }

    /// What EOF on the control connection means: EOF, but for a 3.7–3.18
    /// server's authentication failure, which sends `SERVER_ERROR` with its
    /// code and no errno before closing.
    pub fn at_eof(&mut self, expect: Expect) -> Event {
        match self.buf.get(..4) {
            Some(&[a, b, c, d]) if expect == Expect::ErrorPayload => {
                self.buf.clear();
                Event::ErrorPayload([a, b, c, d, 0, 0, 0, 0])
            }
            _ => Event::Eof,
        }
    }

    /// Reads more bytes; `Ok(0)` at EOF. Cancel-safe.
    pub async fn read_more(&mut self) -> io::Result<usize> {
        if self.buf.len() >= MAX_BUFFERED {
            return Err(io::Error::other(
                "the server sent more than a results document",
            ));
        }
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Sends raw bytes (the cookie).
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Sends one state byte.
    pub async fn send_state(&mut self, s: State) -> io::Result<()> {
        self.stream.write_all(&[s.byte()]).await
    }

    /// Sends a length-prefixed document.
    pub async fn send_document(&mut self, body: &[u8]) -> io::Result<()> {
        self.stream.write_all(&encode_frame(body)).await
    }

    /// Closes our side, after what was written.
    pub async fn close(mut self) {
        let _ = self.stream.shutdown().await;
    }
}
