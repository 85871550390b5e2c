//! ndt7 downloads on the upgraded connection itself. warp's websocket
//! copies every message into a buffer of its own before writing it, and
//! shifts what is left of that buffer after each partial write: for 16 MiB
//! messages that is several copies of each byte. Here the upgrade is
//! answered directly, and each binary message is written as its frame
//! header and then the payload slice, straight from the shared buffer to
//! the socket. What the client sends (measurements, its close) is still
//! read by tungstenite, on the read half, with the same size limits.
//!
//! The route checks are ndt7.rs's: this module only switches protocols
//! and frames.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::StreamExt;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{handshake::derive_accept_key, Message};
use tokio_tungstenite::WebSocketStream;
use warp::http::{header, StatusCode};
use warp::{Filter, Reply};

use super::ndt7_sendfile::{Sender, Sent};
use crate::ndt7::MAX_MESSAGE_SIZE;

/// The upgraded connection.
type Io = TokioIo<Upgraded>;

/// What a websocket request needs to be switched here: its key and the
/// connection's upgrade.
pub struct Upgrade {
    key: String,
    on_upgrade: OnUpgrade,
}

/// The request's key and upgrade, when it has both (taken before warp's
/// websocket filter, which removes the upgrade).
pub fn upgrade(
) -> impl Filter<Extract = (Option<Upgrade>,), Error = std::convert::Infallible> + Clone {
    warp::header::optional::<String>("sec-websocket-key")
        .or_else(|_| async { Ok::<_, std::convert::Infallible>((None,)) })
        .and(warp::ext::optional::<OnUpgrade>())
        .map(|key: Option<String>, on_upgrade: Option<OnUpgrade>| {
            Some(Upgrade {
                key: key?,
                on_upgrade: on_upgrade?,
            })
        })
}

/// Answers 101 with `protocol`, and runs `session` on the connection once
/// it is switched (spawned; a failed switch is the client's and ends it).
pub fn switch<F, Fut>(up: Upgrade, protocol: &'static str, session: F) -> warp::reply::Response
where
    F: FnOnce(Socket) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let accept = derive_accept_key(up.key.as_bytes());
    tokio::spawn(async move {
        if let Ok(upgraded) = up.on_upgrade.await {
            session(Socket(TokioIo::new(upgraded))).await;
        }
    });
    let reply = warp::reply::with_status(warp::reply(), StatusCode::SWITCHING_PROTOCOLS);
    let reply = warp::reply::with_header(reply, header::CONNECTION, "upgrade");
    let reply = warp::reply::with_header(reply, header::UPGRADE, "websocket");
    let reply = warp::reply::with_header(reply, header::SEC_WEBSOCKET_ACCEPT, accept);
    warp::reply::with_header(reply, header::SEC_WEBSOCKET_PROTOCOL, protocol).into_response()
}

/// A switched connection.
pub struct Socket(Io);

impl Socket {
    /// Its writing side (binary payloads through `sendfile` if given) and
    /// what reads the client's messages.
    pub async fn split(self, sendfile: Option<Sender>) -> (Tx, Rx) {
        let (read, write) = tokio::io::split(self.0);
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE_SIZE))
            .max_frame_size(Some(MAX_MESSAGE_SIZE));
        let rx = WebSocketStream::from_raw_socket(ReadOnly(read), Role::Server, Some(config)).await;
        (Tx { write, sendfile }, Rx(rx))
    }
}

/// The writing side: whole frames, one at a time.
pub struct Tx {
    write: WriteHalf<Io>,
    /// Where binary payloads go instead, when they are sent from a file.
    sendfile: Option<Sender>,
}

/// Opcodes of the frames the server sends.
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;

/// The header of a final, unmasked frame of `opcode` carrying `len` bytes
/// (RFC 6455 section 5.2): its bytes and how many of them are used.
pub fn frame_header(opcode: u8, len: usize) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = 0x80 | opcode;
    let used = if len < 126 {
        h[1] = len as u8;
        2
    } else if let Ok(short) = u16::try_from(len) {
        h[1] = 126;
        h[2..4].copy_from_slice(&short.to_be_bytes());
        4
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    (h, used)
}

impl Tx {
    /// Whether binary payloads go through `sendfile` (still).
    pub fn sends_from_file(&self) -> bool {
        self.sendfile.is_some()
    }

    /// A binary message of `len` bytes: `block` over and over (what the
    /// file holds from its start, if payloads go through `sendfile`). The
    /// header is written, then the payload, many blocks per write from the
    /// one block; if the kernel refuses `sendfile`, the rest and later
    /// messages are written.
    pub async fn binary(&mut self, block: &[u8], len: usize) -> std::io::Result<()> {
        let (h, used) = frame_header(BINARY, len);
        self.write.write_all(&h[..used]).await?;
        let mut done = 0;
        if let Some(sender) = &self.sendfile {
            match sender.send(len).await? {
                Sent::All => return Ok(()),
                Sent::Refused(n) => {
                    tracing::debug!("ndt7: sendfile refused; writing");
                    self.sendfile = None;
                    done = n;
                }
            }
        }
        while done < len {
            let slices = repeated(block, done, len);
            match self.write.write_vectored(&slices).await? {
                0 => return Err(std::io::ErrorKind::WriteZero.into()),
                n => done += n,
            }
        }
        Ok(())
    }

    /// A text message, header and text in one write.
    pub async fn text(&mut self, text: &str) -> std::io::Result<()> {
        self.small(TEXT, text.as_bytes()).await
    }

    /// A close frame with `code` and `reason` (at most 123 bytes).
    pub async fn close(&mut self, code: u16, reason: &str) -> std::io::Result<()> {
        let mut body = code.to_be_bytes().to_vec();
        body.extend(reason.bytes().take(123));
        self.small(CLOSE, &body).await?;
        self.write.flush().await
    }

    async fn small(&mut self, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        let (h, used) = frame_header(opcode, payload.len());
        let mut frame = Vec::with_capacity(used + payload.len());
        frame.extend_from_slice(&h[..used]);
        frame.extend_from_slice(payload);
        self.write.write_all(&frame).await
    }
}

/// How many slices of the block one write hands the kernel: 4 MiB of
/// 128 KiB blocks.
const SLICES: usize = 32;

/// Bytes `from..len` of `block` repeated, as at most [`SLICES`] slices.
fn repeated(block: &[u8], from: usize, len: usize) -> Vec<IoSlice<'_>> {
    let mut slices = Vec::with_capacity(SLICES);
    let mut at = from;
    while at < len && slices.len() < SLICES && !block.is_empty() {
        let start = at % block.len();
        let end = block.len().min(start + (len - at));
        slices.push(IoSlice::new(&block[start..end]));
        at += end - start;
    }
    slices
}

/// The reading side: the client's messages, parsed by tungstenite.
pub struct Rx(WebSocketStream<ReadOnly>);

/// What the client sent, as ndt7.rs sorts it.
pub enum Read {
    /// A binary message of this many bytes.
    Binary(usize),
    /// A text message.
    Text(String),
    /// The close frame.
    Close,
    /// Pings and pongs.
    Other,
    /// A read error, in tungstenite's words.
    Failed(String),
}

impl Rx {
    /// Sends each message the client sends to `out` as `map` turns it into
    /// an event, until `map` says it was the last or `out` is gone.
    pub async fn forward<T>(
        mut self,
        out: mpsc::Sender<T>,
        map: impl Fn(Read) -> Option<(T, bool)>,
    ) {
        while let Some(item) = self.0.next().await {
            let read = match item {
                Ok(Message::Binary(b)) => Read::Binary(b.len()),
                Ok(Message::Text(t)) => Read::Text(t.as_str().to_owned()),
                Ok(Message::Close(_)) => Read::Close,
                Ok(_) => Read::Other,
                Err(e) => Read::Failed(e.to_string()),
            };
            let failed = matches!(read, Read::Failed(_));
            let Some((event, last)) = map(read) else {
                continue;
            };
            if out.send(event).await.is_err() || last || failed {
                return;
            }
        }
    }
}

/// The read half as tungstenite's stream: what tungstenite would write
/// (its answers to pings and to a close) is dropped; the server's frames
/// go through [`Tx`] only.
pub struct ReadOnly(ReadHalf<Io>);

impl AsyncRead for ReadOnly {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ReadOnly {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_headers_use_the_shortest_length_form() {
        assert_eq!(
            frame_header(BINARY, 5),
            ([0x82, 5, 0, 0, 0, 0, 0, 0, 0, 0], 2)
        );
        let (h, used) = frame_header(TEXT, 300);
        assert_eq!((&h[..used], used), (&[0x81, 126, 1, 44][..], 4));
        let (h, used) = frame_header(BINARY, 1 << 24);
        assert_eq!(&h[..used], &[0x82, 127, 0, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(frame_header(CLOSE, 125).0[1], 125);
        assert_eq!(frame_header(CLOSE, 126).0[1], 126);
        assert_eq!(frame_header(BINARY, 65_536).0[1], 127);
    }

    #[test]
    fn a_repeated_block_is_sliced_from_where_a_write_left_off() {
        let block = [1, 2, 3, 4];
        let flat = |s: Vec<IoSlice<'_>>| s.iter().flat_map(|s| s.to_vec()).collect::<Vec<u8>>();
        assert_eq!(
            flat(repeated(&block, 0, 10)),
            [1, 2, 3, 4, 1, 2, 3, 4, 1, 2]
        );
        assert_eq!(flat(repeated(&block, 3, 10)), [4, 1, 2, 3, 4, 1, 2]);
        assert_eq!(flat(repeated(&block, 5, 6)), [2]);
        assert!(repeated(&block, 10, 10).is_empty());
        // One write hands over at most SLICES blocks.
        let many = repeated(&block, 1, 1000);
        assert_eq!(many.len(), SLICES);
        assert_eq!(
            many.iter().map(|s| s.len()).sum::<usize>(),
            3 + 4 * (SLICES - 1)
        );
    }
}
