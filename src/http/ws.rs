//! One websocket client of `GET /ws`: a `status` message on connect, then
//! every hub event as a JSON text message, until the client leaves or the
//! server shuts down (then it gets a close frame).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast::error::RecvError;
use tracing::debug;
use warp::ws::{Message, WebSocket};

use crate::hub::{Event, Hub};
use crate::shutdown::Shutdown;

/// A client that does not take a message within this time is dropped, so a
/// stalled peer cannot pin a task (or shutdown) forever.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Close code "going away" (RFC 6455 §7.4.1).
const GOING_AWAY: u16 = 1001;

/// Runs one websocket session to its end.
pub async fn session(socket: WebSocket, hub: Arc<Hub>, shutdown: Shutdown) {
    let (mut tx, mut rx) = socket.split();
    // Subscribe before taking the snapshot: an event in between is then both
    // in the snapshot and sent after it, never lost.
    let mut events = hub.subscribe();
    let hello = Event::Status(hub.status());
    if send(&mut tx, &hello).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            () = shutdown.triggered() => {
                let bye = Message::close_with(GOING_AWAY, "server shutting down");
                let _ = tokio::time::timeout(Duration::from_secs(1), tx.send(bye)).await;
                break;
            }
            event = events.recv() => match event {
                Ok(event) => {
                    if send(&mut tx, &event).await.is_err() {
                        break;
                    }
                }
                // A slow client skips ahead; it reloads everything on reconnect.
                Err(RecvError::Lagged(skipped)) => {
                    debug!(skipped, "dashboard: a slow websocket client skipped events");
                    continue;
                }
                Err(RecvError::Closed) => break,
            },
            incoming = rx.next() => match incoming {
                Some(Ok(msg)) if msg.is_close() => break,
                // Pings are answered by the websocket layer; text is ignored.
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), tx.close()).await;
}

async fn send<S>(tx: &mut S, event: &Event) -> Result<(), ()>
where
    S: futures_util::Sink<Message> + Unpin,
{
    let text = serde_json::to_string(event).map_err(|_| ())?;
    match tokio::time::timeout(SEND_TIMEOUT, tx.send(Message::text(text))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(()),
        Err(_) => {
            debug!("dashboard: a websocket client took no message for {SEND_TIMEOUT:?}; dropped");
            Err(())
        }
    }
}
