//! `GET /ndt/v7/latency?run=<id>`: the latency websocket of a speed-test
//! run, the driver of [`Pinger`] on the real clock, and the runs the
//! box knows ([`Runs`], shared with the ndt7 subtests, which set a run's
//! phase and take its samples into their documents).
//!
//! Refused before the upgrade when ndt7 is off (404), the client is
//! outside `--allow` (403), the run id is missing or malformed (400),
//! `--ndt7-max-tests` latency sockets are open (503) or the run has one
//! (409). A socket lasts at most [`SOCKET_LIMIT`].

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::debug;
use warp::http::StatusCode;
use warp::ws::{Message, WebSocket, Ws};
use warp::{Filter, Rejection, Reply};

use super::handlers::error_reply;
use super::{ConnInfo, Context};
use crate::locks::lock;
use crate::ndt7::latency::{valid_run, Pinger, Refused, Runs, MAX_ECHO, SOCKET_LIMIT};
use crate::ndt7::SUBPROTOCOL;

/// The runs and the latency sockets' slots.
#[derive(Debug)]
pub struct Latency {
    runs: Mutex<Runs>,
    slots: Arc<Semaphore>,
    origin: Instant,
}

impl Latency {
    /// At most `max` latency sockets at once.
    pub fn new(max: usize) -> Latency {
        Latency {
            runs: Mutex::default(),
            slots: Arc::new(Semaphore::new(max)),
            origin: Instant::now(),
        }
    }

    /// The time on the runs' clock (monotonic).
    pub fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// The runs, locked.
    pub fn runs(&self) -> MutexGuard<'_, Runs> {
        lock(&self.runs)
    }
}

/// The query of the latency route.
#[derive(Debug, serde::Deserialize)]
struct Query {
    run: Option<String>,
}

/// GET /ndt/v7/latency?run=<id> (websocket)
pub fn route(
    ctx: Context,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    let enabled = ctx.ndt7.enabled;
    warp::path!("ndt" / "v7" / "latency")
        .and(warp::get())
        .and_then(move || async move {
            if enabled {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one()
        .and(warp::header::optional::<String>("sec-websocket-protocol"))
        .and(
            warp::query::<Query>()
                .or(warp::any().map(|| Query { run: None }))
                .unify(),
        )
        .and(warp::ext::optional::<ConnInfo>())
        .and(warp::ws())
        .and(warp::any().map(move || ctx.clone()))
        .map(upgrade)
}

/// The connection and client of an ndt7 or latency request, or the refusal: no
/// connection details, or a client outside `--allow`.
pub(super) fn allowed_client(
    conn: Option<ConnInfo>,
    ctx: &Context,
) -> Result<(ConnInfo, std::net::IpAddr), Box<warp::reply::Response>> {
    let Some(conn) = conn else {
        return Err(Box::new(error_reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no connection details",
        )));
    };
    let client = conn.peer.ip().to_canonical();
    if !ctx.ndt7.allow.allows(client) {
        debug!(client = %client, "ndt7: client not allowed");
        return Err(Box::new(error_reply(
            StatusCode::FORBIDDEN,
            format!("client {client} is not in the allowed networks"),
        )));
    }
    Ok((conn, client))
}

/// Checks a latency request and upgrades it, or refuses it.
fn upgrade(
    protocol: Option<String>,
    query: Query,
    conn: Option<ConnInfo>,
    ws: Ws,
    ctx: Context,
) -> warp::reply::Response {
    if let Err(refused) = allowed_client(conn, &ctx) {
        return *refused;
    }
    let Some(run) = query.run.filter(|r| valid_run(r)) else {
        return error_reply(
            StatusCode::BAD_REQUEST,
            "run= must name the run: 8 to 64 letters, digits or '-'",
        );
    };
    let Ok(permit) = Arc::clone(&ctx.latency.slots).try_acquire_owned() else {
        return error_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy: too many latency measurements at once; try again shortly",
        );
    };
    let now = ctx.latency.now();
    if let Err(e) = ctx.latency.runs().open_socket(&run, now) {
        let status = match e {
            Refused::Twice => StatusCode::CONFLICT,
            Refused::Full => StatusCode::SERVICE_UNAVAILABLE,
        };
        return error_reply(status, e.to_string());
    }
    let sessions = ctx.sessions.clone();
    let asked = protocol.unwrap_or_default();
    let reply = ws
        .max_frame_size(MAX_ECHO)
        .max_message_size(MAX_ECHO)
        .on_upgrade(move |socket| sessions.track_future(session(socket, run, ctx, permit)));
    if asked.split(',').any(|p| p.trim() == SUBPROTOCOL) {
        warp::reply::with_header(reply, "sec-websocket-protocol", SUBPROTOCOL).into_response()
    } else {
        reply.into_response()
    }
}

/// Runs one latency socket until the page closes it, it breaks the
/// protocol, time runs out or the server shuts down.
async fn session(socket: WebSocket, run: String, ctx: Context, permit: OwnedSemaphorePermit) {
    let latency = Arc::clone(&ctx.latency);
    let (mut tx, mut rx) = socket.split();
    let mut pinger = Pinger::new(latency.now());
    let end = tokio::time::Instant::now() + SOCKET_LIMIT;
    let shutdown = ctx.shutdown.clone();
    loop {
        let now = latency.now();
        let phase = latency.runs().phase(&run);
        if let Some(frame) = pinger.frame(now, phase) {
            if tx.send(Message::text(frame)).await.is_err() {
                break;
            }
        }
        let wake = tokio::time::Instant::now() + pinger.due().saturating_sub(latency.now());
        tokio::select! {
            item = rx.next() => match item {
                Some(Ok(m)) if m.is_text() => {
                    let text = m.to_str().unwrap_or_default();
                    match pinger.echoed(text, latency.now()) {
                        Ok(Some(sample)) => latency.runs().add(&run, sample, latency.now()),
                        Ok(None) => {}
                        Err(e) => {
                            debug!(error = %e, "latency: socket dropped");
                            break;
                        }
                    }
                }
                Some(Ok(m)) if m.is_close() => break,
                // Pings are answered by the websocket layer.
                Some(Ok(m)) if m.is_ping() || m.is_pong() => {}
                Some(Ok(_)) => {
                    debug!("latency: binary data; socket dropped");
                    break;
                }
                Some(Err(e)) => {
                    debug!(error = %e, "latency: socket ended");
                    break;
                }
                None => break,
            },
            () = tokio::time::sleep_until(wake) => {}
            () = tokio::time::sleep_until(end) => {
                let _ = tx.send(Message::close_with(1000u16, "time limit")).await;
                break;
            }
            () = shutdown.triggered() => break,
        }
    }
    latency.runs().close_socket(&run, latency.now());
    drop(permit);
}
