//! The ndt7 speed test on the dashboard's port: `GET /ndt/v7/download` and
//! `GET /ndt/v7/upload` upgraded to websockets (subprotocol
//! [`SUBPROTOCOL`]), driving a [`Subtest`] on the real clock.
//!
//! Before the upgrade a request is refused at once when ndt7 is off (404),
//! the client is outside `--allow` (403), the subprotocol or the query is
//! wrong (400), or [`crate::config::Ndt7Settings::max_tests`] subtests run
//! already (503). Any Origin is accepted: ndt7 clients run on other sites.
//!
//! A session is two tasks: a reader that turns what the client sends into
//! small events (binary data is counted and dropped at once), and the
//! driver that sends (data for a download, measurements every 250 ms for
//! both) and ends the subtest. A finished subtest is recorded through the
//! hub; a client that breaks the protocol (binary data in a download, a
//! message over 2^24 bytes, bad frames) is dropped and nothing is recorded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::time::Instant;
use tracing::{debug, info, warn};
use warp::http::StatusCode;
use warp::ws::{Message, WebSocket, Ws};
use warp::{Filter, Rejection, Reply};

use super::handlers::{error_reply, BadQuery};
use super::{ConnInfo, Context};
use crate::ndt7::latency::valid_run;
use crate::ndt7::measurement::{endpoint, ConnectionInfo, Measurement, TcpInfo};
use crate::ndt7::record::{NameValue, Record, Summary, ERROR, OVERLAPPED, RUN};
use crate::ndt7::subtest::{Step, Subtest, Violation};
use crate::ndt7::{
    Kind, HARD_LIMIT, MAX_CLIENT_MEASUREMENT, MAX_MESSAGE_SIZE, MAX_QUERY, SUBPROTOCOL,
};

/// Events from the reader task; it waits when the driver falls behind.
const EVENT_QUEUE: usize = 64;

/// Measurements between two `progress` events on the dashboard (one a second).
const PROGRESS_EVERY: usize = 4;

/// GET /ndt/v7/download and GET /ndt/v7/upload (websocket, subprotocol
/// `net.measurementlab.ndt.v7`; the query string is the client's metadata)
pub fn routes(
    ctx: Context,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    let enabled = ctx.ndt7.enabled;
    let latency = super::latency::route(ctx.clone());
    let subtests = warp::path!("ndt" / "v7" / String)
        .and(warp::get())
        .and_then(move |test: String| async move {
            match (enabled, test.as_str()) {
                (true, "download") => Ok(Kind::Download),
                (true, "upload") => Ok(Kind::Upload),
                _ => Err(warp::reject::not_found()),
            }
        })
        .and(warp::header::optional::<String>("sec-websocket-protocol"))
        .and(warp::query::<Vec<(String, String)>>().or_else(|_| async {
            Err(warp::reject::custom(BadQuery(
                "bad query: ndt7 metadata must be URL-encoded name=value pairs".into(),
            )))
        }))
        .and(warp::ext::optional::<ConnInfo>())
        .and(super::ndt7_raw::upgrade())
        .and(warp::ws())
        .and(warp::any().map(move || ctx.clone()))
        .map(upgrade);
    latency.or(subtests).unify()
}

/// Checks a subtest request and upgrades it, or refuses it.
fn upgrade(
    kind: Kind,
    protocol: Option<String>,
    query: Vec<(String, String)>,
    conn: Option<ConnInfo>,
    raw: Option<super::ndt7_raw::Upgrade>,
    ws: Ws,
    ctx: Context,
) -> warp::reply::Response {
    let (conn, client) = match super::latency::allowed_client(conn, &ctx) {
        Ok(allowed) => allowed,
        Err(refused) => return *refused,
    };
    let asked = protocol.as_deref().unwrap_or_default();
    if !asked.split(',').any(|p| p.trim() == SUBPROTOCOL) {
        return error_reply(
            StatusCode::BAD_REQUEST,
            format!("the websocket subprotocol {SUBPROTOCOL} is required"),
        );
    }
    let Some(metadata) = metadata(query) else {
        return error_reply(
            StatusCode::BAD_REQUEST,
            format!("the query string is longer than {MAX_QUERY} bytes"),
        );
    };
    let Ok(permit) = Arc::clone(&ctx.ndt7_slots).try_acquire_owned() else {
        debug!(client = %client, "ndt7: busy; refused");
        return error_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "busy: {} speed tests are running; try again shortly",
                ctx.ndt7.max_tests
            ),
        );
    };
    let sessions = ctx.sessions.clone();
    // Downloads write their messages straight to the socket.
    if let (Kind::Download, Some(raw)) = (kind, raw) {
        return super::ndt7_raw::switch(raw, SUBPROTOCOL, move |socket| {
            let session = run(Socket::Raw(socket), kind, conn, metadata, ctx, permit);
            sessions.track_future(session)
        });
    }
    let reply = ws
        .max_frame_size(MAX_MESSAGE_SIZE)
        .max_message_size(MAX_MESSAGE_SIZE)
        .on_upgrade(move |socket| {
            let session = run(
                Socket::Warp(Box::new(socket)),
                kind,
                conn,
                metadata,
                ctx,
                permit,
            );
            sessions.track_future(session)
        });
    warp::reply::with_header(reply, "sec-websocket-protocol", SUBPROTOCOL).into_response()
}

/// The query's pairs as metadata: the first of duplicate keys kept;
/// `None` if they add up to more than the spec's limit.
fn metadata(query: Vec<(String, String)>) -> Option<Vec<NameValue>> {
    let size: usize = query.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    if size > MAX_QUERY {
        return None;
    }
    let mut out: Vec<NameValue> = Vec::new();
    for (name, value) in query {
        if !out.iter().any(|nv| nv.name == name) {
            out.push(NameValue { name, value });
        }
    }
    Some(out)
}

/// What the client did, as the reader task saw it.
#[derive(Debug)]
enum Incoming {
    /// A binary message of this many bytes.
    Binary(usize),
    /// A (small) text message.
    Text(String),
    /// The client's close frame.
    Closed,
    /// The connection ended without a close frame.
    Gone(String),
    /// The client broke the protocol.
    Failed(Violation),
}

/// How a session ended.
#[derive(Debug)]
enum Outcome {
    /// The subtest ran its course (or the client closed it): recorded.
    Finished,
    /// The client went away or time ran out: recorded with the reason.
    Cut(String),
    /// The client broke the protocol: nothing recorded.
    Violated(Violation),
}

/// Turns a websocket read error into an event: the size limit and bad
/// frames break the protocol; a vanished peer does not. warp hides the
/// error's type, so its text (tungstenite's wording) tells.
fn classify(text: String) -> Incoming {
    if text.contains("Space limit exceeded") || text.contains("too long") {
        Incoming::Failed(Violation::TooLarge(MAX_MESSAGE_SIZE))
    } else if text.contains("without closing handshake")
        || text.contains("IO error")
        || text.contains("closed connection")
    {
        Incoming::Gone(text)
    } else {
        Incoming::Failed(Violation::Malformed(text))
    }
}

/// The reader task: every message the client sends becomes an event.
async fn read(mut rx: SplitStream<WebSocket>, out: mpsc::Sender<Incoming>) {
    while let Some(item) = rx.next().await {
        let event = match item {
            Ok(m) if m.is_binary() => Incoming::Binary(m.as_bytes().len()),
            Ok(m) if m.is_text() => {
                if m.as_bytes().len() > MAX_CLIENT_MEASUREMENT {
                    continue;
                }
                Incoming::Text(m.to_str().unwrap_or_default().to_owned())
            }
            Ok(m) if m.is_close() => Incoming::Closed,
            // Pings are answered by the websocket layer.
            Ok(_) => continue,
            Err(e) => classify(e.to_string()),
        };
        let last = matches!(event, Incoming::Closed | Incoming::Failed(_));
        if out.send(event).await.is_err() || last {
            return;
        }
    }
    let _ = out.send(Incoming::Gone("connection closed".into())).await;
}

/// The period of the download payload: a block of random bytes this long,
/// as large as `iperf3 -R`'s default block, so that copying it into the
/// socket reads memory the processor's caches hold.
pub(super) const BLOCK: usize = 128 * 1024;

/// The payload of download messages: a block of random bytes repeated to
/// the largest message's size (16 MiB), made once and shared by every
/// download; a message is a slice of it, so sending copies nothing here.
pub(super) fn payload() -> Bytes {
    static PAYLOAD: OnceLock<Bytes> = OnceLock::new();
    PAYLOAD
        .get_or_init(|| {
            // xorshift64*, seeded from the clock: not for secrets, only
            // so that no link compresses the data away.
            let mut x =
                u64::try_from(Utc::now().timestamp_nanos_opt().unwrap_or(1)).unwrap_or(1) | 1;
            let mut block = Vec::with_capacity(BLOCK);
            while block.len() < BLOCK {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                block.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
            }
            Bytes::from(block.repeat(MAX_MESSAGE_SIZE / BLOCK))
        })
        .clone()
}

/// A subtest id unique on the box: start time and a counter.
fn uuid(start: chrono::DateTime<Utc>) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "webperf3_{}_{:016X}",
        start.timestamp(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The reader of a switched download: the same events as [`read`].
async fn read_raw(rx: super::ndt7_raw::Rx, out: mpsc::Sender<Incoming>) {
    use super::ndt7_raw::Read;
    let done = out.clone();
    rx.forward(out, |read| match read {
        Read::Binary(n) => Some((Incoming::Binary(n), false)),
        Read::Text(t) if t.len() <= MAX_CLIENT_MEASUREMENT => Some((Incoming::Text(t), false)),
        Read::Text(_) | Read::Other => None,
        Read::Close => Some((Incoming::Closed, true)),
        Read::Failed(e) => Some((classify(e), true)),
    })
    .await;
    let _ = done.send(Incoming::Gone("connection closed".into())).await;
}

/// How a download's payload goes out with `sendfile`: on a plain
/// connection, when that is how `-R` tests send now.
fn sendfile(
    conn: &ConnInfo,
    ctx: &Context,
    payload: &[u8],
) -> Option<super::ndt7_sendfile::Sender> {
    use super::ndt7_sendfile::{payload_file, Sender};
    if conn.secure || (ctx.send_method)() != crate::send_method::SendMethod::Sendfile {
        return None;
    }
    let file = payload_file(payload)?;
    Sender::new(Arc::clone(&conn.socket), file, ctx.write_timeout)
}

/// A subtest's connection: warp's websocket, or one switched here.
enum Socket {
    Warp(Box<WebSocket>),
    Raw(super::ndt7_raw::Socket),
}

/// A subtest's writing side.
enum Tx {
    Warp(SplitSink<WebSocket, Message>),
    Raw(super::ndt7_raw::Tx),
}

impl Tx {
    /// How binary payloads go out: `sendfile` or `copy`.
    fn data_path(&self) -> &'static str {
        match self {
            Tx::Raw(tx) if tx.sends_from_file() => "sendfile",
            _ => "copy",
        }
    }

    async fn binary(&mut self, data: Bytes) -> Result<(), ()> {
        match self {
            Tx::Warp(tx) => tx.send(Message::binary(data)).await.map_err(drop),
            Tx::Raw(tx) => tx
                .binary(&data[..BLOCK.min(data.len())], data.len())
                .await
                .map_err(drop),
        }
    }

    async fn text(&mut self, text: String) -> Result<(), ()> {
        match self {
            Tx::Warp(tx) => tx.send(Message::text(text)).await.map_err(drop),
            Tx::Raw(tx) => tx.text(&text).await.map_err(drop),
        }
    }

    async fn close(&mut self) {
        let _ = match self {
            Tx::Warp(tx) => tx
                .send(Message::close_with(1000u16, "done"))
                .await
                .map_err(drop),
            Tx::Raw(tx) => tx.close(1000, "done").await.map_err(drop),
        };
    }
}

/// One subtest's sending side and state.
struct Driver {
    tx: Tx,
    events: mpsc::Receiver<Incoming>,
    sub: Subtest,
    t0: Instant,
    conn: ConnInfo,
    uuid: String,
    payload: Bytes,
    ctx: Context,
    /// `(elapsed, bytes)` at the last progress event.
    progress: (Duration, u64),
    measured: usize,
    /// The data phase is over (the closing handshake runs).
    closing: bool,
}

impl Driver {
    /// Runs the subtest until it ends (the caller bounds it by the hard limit).
    async fn drive(&mut self) -> Outcome {
        loop {
            // What the client sent meanwhile.
            while let Ok(event) = self.events.try_recv() {
                if let Some(outcome) = self.incoming(event) {
                    return outcome;
                }
            }
            let now = self.t0.elapsed();
            match self.sub.step(now) {
                Step::Measure => {
                    if self.measure(now, true).await.is_err() {
                        return Outcome::Cut("the client went away".into());
                    }
                }
                Step::Send(n) => {
                    let data = self.payload.slice(..n.min(self.payload.len()));
                    if self.tx.binary(data).await.is_err() {
                        return Outcome::Cut("the client went away".into());
                    }
                    self.sub.sent(n);
                }
                Step::Wait => {
                    let wake = self.t0 + self.sub.wake_at();
                    tokio::select! {
                        event = self.events.recv() => {
                            let event = event.unwrap_or(Incoming::Gone("reader ended".into()));
                            if let Some(outcome) = self.incoming(event) {
                                return outcome;
                            }
                        }
                        () = tokio::time::sleep_until(wake) => {}
                    }
                }
                Step::Finish => return self.finish(now).await,
                Step::Abort => return Outcome::Cut("the subtest passed its time limit".into()),
            }
        }
    }

    /// Handles one event; `Some` when it ends the subtest.
    fn incoming(&mut self, event: Incoming) -> Option<Outcome> {
        match event {
            Incoming::Binary(len) => self.sub.binary_received(len).err().map(Outcome::Violated),
            Incoming::Text(text) => {
                self.sub.text_received(&text);
                None
            }
            Incoming::Closed => Some(Outcome::Finished),
            Incoming::Gone(why) => {
                debug!(error = %why, "ndt7: connection ended");
                Some(Outcome::Cut("the client went away".into()))
            }
            Incoming::Failed(v) => Some(Outcome::Violated(v)),
        }
    }

    /// Takes a measurement at `elapsed`, records it, and sends it if `send`.
    async fn measure(&mut self, elapsed: Duration, send: bool) -> Result<(), ()> {
        let tcp = crate::sys::kernel_tcp_info(&*self.conn.socket)
            .map(|(k, _)| TcpInfo::from_kernel(&k, self.t0.elapsed()));
        // Every measurement carries it (the spec since v0.9.0).
        let connection = Some(ConnectionInfo {
            client: endpoint(self.conn.peer),
            server: endpoint(self.conn.local),
            uuid: self.uuid.clone(),
        });
        let bytes = self.sub.bytes();
        let m = Measurement::server(self.sub.kind(), elapsed, bytes, tcp, connection);
        let text = serde_json::to_string(&m).map_err(drop)?;
        self.sub.measured(elapsed, m);
        self.measured += 1;
        if self.measured % PROGRESS_EVERY == 0 {
            let (then, before) = self.progress;
            let secs = (elapsed.saturating_sub(then)).as_secs_f64();
            if secs > 0.0 {
                let bps = bytes.saturating_sub(before) as f64 * 8.0 / secs;
                let port = self.conn.local.port();
                self.ctx.hub.progress(port, bps, elapsed.as_secs_f64());
            }
            self.progress = (elapsed, bytes);
        }
        if send {
            self.tx.text(text).await?;
        }
        Ok(())
    }

    /// The data phase is over: a last measurement, then the closing
    /// handshake (the caller's hard limit bounds the wait for the client).
    async fn finish(&mut self, now: Duration) -> Outcome {
        self.closing = true;
        if self.measure(now, true).await.is_err() {
            return Outcome::Finished;
        }
        self.tx.close().await;
        // The client answers with its close; data still in flight is
        // counted (an upload) until then.
        while let Some(event) = self.events.recv().await {
            match self.incoming(event) {
                Some(Outcome::Violated(v)) => return Outcome::Violated(v),
                Some(_) => break,
                None => {}
            }
        }
        Outcome::Finished
    }
}

/// Runs one subtest on an upgraded connection and records it.
async fn run(
    socket: Socket,
    kind: Kind,
    conn: ConnInfo,
    metadata: Vec<NameValue>,
    ctx: Context,
    permit: OwnedSemaphorePermit,
) {
    // Made before the clock starts (the first download pays for it).
    let payload = match kind {
        Kind::Download => payload(),
        Kind::Upload => Bytes::new(),
    };
    let start = Utc::now();
    let t0 = Instant::now();
    let running = ctx.overlaps.start();
    let client = conn.peer.ip().to_canonical();
    // The run this subtest belongs to moves data from now on.
    let run = metadata
        .iter()
        .find(|nv| nv.name == RUN && valid_run(&nv.value))
        .map(|nv| nv.value.clone());
    if let Some(run) = &run {
        let now = ctx.latency.now();
        if let Err(e) = ctx.latency.runs().subtest_started(run, kind, now) {
            debug!(error = %e, "ndt7: the subtest's run is not followed");
        }
    }
    let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
    let (tx, reader) = match socket {
        Socket::Warp(socket) => {
            let (tx, rx) = (*socket).split();
            (Tx::Warp(tx), tokio::spawn(read(rx, events_tx)))
        }
        Socket::Raw(socket) => {
            let (tx, rx) = socket.split(sendfile(&conn, &ctx, &payload)).await;
            (Tx::Raw(tx), tokio::spawn(read_raw(rx, events_tx)))
        }
    };
    let mut driver = Driver {
        tx,
        events,
        sub: Subtest::new(kind),
        t0,
        uuid: uuid(start),
        payload,
        conn,
        ctx: ctx.clone(),
        progress: (Duration::ZERO, 0),
        measured: 0,
        closing: false,
    };
    let shutdown = ctx.shutdown.clone();
    let outcome = tokio::select! {
        outcome = tokio::time::timeout_at(t0 + HARD_LIMIT, driver.drive()) => {
            outcome.unwrap_or_else(|_| if driver.closing {
                Outcome::Finished
            } else {
                Outcome::Cut("the subtest passed its time limit".into())
            })
        }
        () = shutdown.triggered() => Outcome::Cut("the server shut down".into()),
    };
    reader.abort();
    let latency = run.as_ref().and_then(|run| {
        let now = ctx.latency.now();
        ctx.latency.runs().subtest_ended(run, kind, now)
    });
    let mut server_metadata = Vec::new();
    match &outcome {
        Outcome::Violated(v) => {
            warn!(client = %client, test = kind.as_str(), error = %v, "ndt7: subtest dropped");
            return;
        }
        Outcome::Cut(why) => {
            // The last figures the kernel has, recorded (not sent).
            let now = t0.elapsed();
            let _ = driver.measure(now, false).await;
            server_metadata.push(NameValue {
                name: ERROR.into(),
                value: why.clone(),
            });
        }
        Outcome::Finished => {}
    }
    server_metadata.push(NameValue {
        name: OVERLAPPED.into(),
        value: running.overlapped().to_string(),
    });
    drop(running);
    let data_path = driver.tx.data_path();
    let Driver {
        tx,
        sub,
        conn,
        uuid,
        ..
    } = driver;
    drop(tx);
    drop(permit);
    let (server_measurements, client_measurements) = sub.into_measurements();
    let record = Record::new(
        kind,
        conn.peer,
        conn.local,
        (start, Utc::now()),
        Summary {
            start_time: String::new(),
            end_time: String::new(),
            uuid,
            client_metadata: metadata,
            server_metadata,
            server_measurements,
            client_measurements,
            latency,
        },
    );
    if let Some(f) = record.figures() {
        info!(
            client = %client,
            test = kind.as_str(),
            bps = f.bps.unwrap_or_default(),
            name = ?f.name,
            data_path,
            "ndt7: subtest recorded"
        );
    }
    let hub = Arc::clone(&ctx.hub);
    let _ = tokio::task::spawn_blocking(move || hub.record_ndt7(&record)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_keeps_the_first_of_duplicate_keys_and_is_bounded() {
        let m = metadata(vec![
            ("name".into(), "a".into()),
            ("name".into(), "b".into()),
            ("client".into(), String::new()),
        ])
        .unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].value, "a");
        assert!(metadata(vec![("x".into(), "y".repeat(MAX_QUERY))]).is_none());
    }

    #[test]
    fn the_payload_is_the_largest_message_and_not_constant() {
        let p = payload();
        assert_eq!(p.len(), MAX_MESSAGE_SIZE);
        assert_ne!(p[..8], p[8..16]);
        // The block repeats, so any message is the first block over again.
        assert!(p.chunks(BLOCK).all(|b| b == &p[..BLOCK]));
    }
}
