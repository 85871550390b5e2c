//! One websocket client of `GET /ws`: a `status` message on connect, then
//! every hub event as a JSON text message, until the client leaves, goes
//! silent, is displaced by a newer session (see [`super::sessions`]) or the
//! server shuts down (then it gets a close frame).
//!
//! A peer must keep answering: the session pings every `ping` interval and
//! drops a client that sent nothing at all (not even a pong) for
//! [`SILENT_PINGS`] intervals.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tracing::debug;
use warp::ws::{Message, WebSocket};

use super::sessions::Admitted;
use crate::hub::{Event, Hub};
use crate::shutdown::Shutdown;

/// A client that does not take a message within this time is dropped, so a
/// stalled peer cannot pin a task (or shutdown) forever.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the server pings a client, by default.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);

/// Ping intervals without a frame from the client before it is dropped.
pub const SILENT_PINGS: u32 = 3;

/// Largest message (and frame) a client may send; a larger frame is refused
/// from its header, before any of it is buffered.
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// Close code "going away" (RFC 6455 §7.4.1).
const GOING_AWAY: u16 = 1001;

/// Close code "policy violation" (RFC 6455 §7.4.1): displaced or silent.
const POLICY: u16 = 1008;

/// Runs one websocket session to its end.
pub async fn session(
    socket: WebSocket,
    hub: Arc<Hub>,
    shutdown: Shutdown,
    admitted: Admitted,
    ping: Duration,
) {
    let (mut tx, mut rx) = socket.split();
    // Subscribe before taking the snapshot: an event in between is then both
    // in the snapshot and sent after it, never lost.
    let mut events = hub.subscribe();
    let hello = Event::Status(hub.status());
    if send(&mut tx, Some(&hello)).await.is_err() {
        return;
    }
    let mut heard = Instant::now();
    let mut pings = tokio::time::interval_at(Instant::now() + ping, ping);
    let bye = loop {
        tokio::select! {
            () = shutdown.triggered() => break Some((GOING_AWAY, "server shutting down")),
            () = admitted.stop.cancelled() => {
                debug!("dashboard: a websocket session made room for a newer one");
                break Some((POLICY, "too many live connections"));
            }
            _ = pings.tick() => {
                if heard.elapsed() >= ping * SILENT_PINGS {
                    debug!("dashboard: a silent websocket client dropped");
                    break None;
                }
                if send(&mut tx, None).await.is_err() {
                    break None;
                }
            }
            event = events.recv() => match event {
                Ok(event) => {
                    if send(&mut tx, Some(&event)).await.is_err() {
                        break None;
                    }
                }
                // A slow client skips ahead; it reloads everything on reconnect.
                Err(RecvError::Lagged(skipped)) => {
                    debug!(skipped, "dashboard: a slow websocket client skipped events");
                    continue;
                }
                Err(RecvError::Closed) => break None,
            },
            incoming = rx.next() => match incoming {
                Some(Ok(msg)) if msg.is_close() => break None,
                // Pings are answered by the websocket layer; pongs and text
                // only show the client is there.
                Some(Ok(_)) => heard = Instant::now(),
                Some(Err(_)) | None => break None,
            },
        }
    };
    if let Some((code, reason)) = bye {
        let bye = Message::close_with(code, reason);
        let _ = tokio::time::timeout(Duration::from_secs(1), tx.send(bye)).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), tx.close()).await;
}

/// Sends `event` as JSON text, or a ping when there is none.
async fn send<S>(tx: &mut S, event: Option<&Event>) -> Result<(), ()>
where
    S: futures_util::Sink<Message> + Unpin,
{
    let msg = match event {
        Some(event) => Message::text(serde_json::to_string(event).map_err(|_| ())?),
        None => Message::ping(Vec::new()),
    };
    match tokio::time::timeout(SEND_TIMEOUT, tx.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(()),
        Err(_) => {
            debug!("dashboard: a websocket client took no message for {SEND_TIMEOUT:?}; dropped");
            Err(())
        }
    }
}
