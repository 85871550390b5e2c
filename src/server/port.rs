//! One iperf3 port: the accept loop and the routing of new connections.
//!
//! Stock iperf3 decides what a connection is by its own state; we route by
//! cookie instead. A connection arriving while some test on this port waits
//! for its data streams has its 37-byte cookie read: a matching cookie makes
//! it that test's stream; anything else is refused (`0xFF`) unless the port
//! has room for another test. When no test waits for streams, a connection is
//! a new test's control connection if there is room, and is otherwise told
//! "busy" (`0xFF`) at once, without reading from it.
//!
//! Who gets in is decided before anything is taken: a host outside
//! `--allow` is refused at accept, and a new test must pass the per-source
//! rate ([`crate::protocol::admission`]); with authentication required, a
//! test counts on the port only once its client authenticated. Refusals are
//! counted and summarised once a minute, not logged one by one.
//!
//! Nothing here queues without bound: every accepted connection takes one of
//! [`MAX_CONNECTIONS`] permits per port (a test's control connection, or a
//! connection whose cookie is being read) or is refused on the spot; the
//! last [`RESERVED_FOR_STREAMS`] are kept for the addresses tests wait for
//! streams from, and one address may have [`MAX_PENDING_PER_SOURCE`]
//! cookies being read. Cookies are read concurrently under a deadline and
//! routed in order per address, and refusals need no task.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::driver::run_test;
use super::listen::{self, ListenOpts};
use super::slot::{refuse, refuse_with_error, PortCtx, Reconfigure};
pub use super::slot::{
    PortSettings, MAX_CONNECTIONS, MAX_PENDING_PER_SOURCE, RESERVED_FOR_STREAMS,
};
use crate::hub::Hub;
use crate::protocol::admission::{Refusal, SUMMARY_PERIOD};
use crate::protocol::errors::ErrorCode;
use crate::protocol::wire::{Cookie, COOKIE_LEN};
use crate::shutdown::Shutdown;

/// How long a source's lane waits for its next connection before it ends.
const LANE_IDLE: Duration = Duration::from_secs(1);

/// A connection whose cookie was read, waiting to be routed.
struct Classified {
    conn: TcpStream,
    peer: SocketAddr,
    cookie: Cookie,
    permit: OwnedSemaphorePermit,
}

/// Runs one port until shutdown: accepts, routes, and spawns tests.
/// Diagnostics of the port (and of its tests) carry its number.
pub async fn run(
    listener: std::net::TcpListener,
    hub: Arc<Hub>,
    settings: PortSettings,
    shutdown: Shutdown,
    tasks: TaskTracker,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let span = tracing::info_span!("port", port = addr.port());
    serve(listener, addr, hub, settings, shutdown, tasks)
        .instrument(span)
        .await
}

/// The accept loop of [`run`], inside the port's span.
async fn serve(
    listener: std::net::TcpListener,
    addr: SocketAddr,
    hub: Arc<Hub>,
    settings: PortSettings,
    shutdown: Shutdown,
    tasks: TaskTracker,
) -> std::io::Result<()> {
    let default_buffers = listen::buffer_sizes(&listener);
    let mut listener = TcpListener::from_std(listener)?;
    let (reconf_tx, mut reconf_rx) = mpsc::channel::<Reconfigure>(4);
    let ctx = Arc::new(PortCtx::new(
        addr,
        settings,
        hub,
        shutdown.clone(),
        reconf_tx,
        default_buffers,
    ));
    let mut lanes = Lanes::default();
    let mut summaries = tokio::time::interval(SUMMARY_PERIOD);
    let mut accept_errors = 0u64;
    // The options the listener has now.
    let mut current = ListenOpts::default();
    let idle = ctx.settings.idle_timeout;
    let mut idle_since = tokio::time::Instant::now();
    loop {
        let idle_at = idle.map(|d| idle_since + d);
        tokio::select! {
            _ = shutdown.triggered() => return Ok(()),
            _ = async { tokio::time::sleep_until(idle_at.expect("guarded")).await }, if idle_at.is_some() => {
                // Stock re-creates an idle server's listener, in case it got
                // into a bad state; do the same when no test is running.
                idle_since = tokio::time::Instant::now();
                if ctx.is_idle() {
                    let fresh = listen::prepared(addr, ListenOpts::default());
                    let result = match fresh {
                        Ok(fresh) => replace_listener(&mut listener, addr, fresh).await,
                        Err(e) => Err(e),
                    };
                    current = ListenOpts::default();
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "could not re-create the idle listener");
                    }
                }
            }
            _ = summaries.tick() => ctx.report_refusals(),
            Some(req) = reconf_rx.recv() => {
                let result = rebind(&mut listener, &mut current, addr, req.opts).await;
                let _ = req.reply.send(result);
            }
            accepted = listener.accept() => {
                idle_since = tokio::time::Instant::now();
                let (conn, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of descriptors and the like: back off briefly
                        // instead of spinning; the listener stays. Said once
                        // per burst, not once per attempt.
                        if accept_errors == 0 {
                            tracing::warn!(error = %e, "accept failed");
                        }
                        accept_errors += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                accept_errors = 0;
                let source = peer.ip().to_canonical();
                if !ctx.settings.policy.allow.allows(source) {
                    // Refused before it takes anything: no slot, no task,
                    // no log entry; the client hears "not authorized".
                    ctx.refused(source, Refusal::NotAllowed, None);
                    refuse_with_error(conn, ErrorCode::AUTH_TEST);
                    continue;
                }
                let Some(permit) = ctx.try_permit(source) else {
                    refuse(conn);
                    continue;
                };
                if ctx.awaiting_streams() {
                    let Some(pending) = ctx.try_pending(source) else {
                        refuse(conn);
                        continue;
                    };
                    let (tx, rx) = oneshot::channel();
                    if !lanes.send(source, rx, &ctx, &tasks) {
                        refuse(conn);
                        continue;
                    }
                    let limit = ctx.settings.limits.read_start;
                    let shutdown = shutdown.clone();
                    tasks.spawn(async move {
                        let cookie = tokio::select! {
                            _ = shutdown.triggered() => None,
                            c = read_stream_cookie(conn, limit) => c,
                        };
                        drop(pending);
                        let _ = tx.send(cookie.map(|(cookie, conn)| Classified { conn, peer, cookie, permit }));
                    });
                } else {
                    new_test(conn, peer, None, permit, &ctx, &tasks);
                }
            }
        }
    }
}

/// The answer-to-be of one cookie read.
type Answer = oneshot::Receiver<Option<Classified>>;

/// Cookies are read concurrently, but the connections of one source are
/// routed in their accept order (stream roles and ids follow the order of
/// arrival), each source in a lane of its own: a silent connection holds
/// back only later connections from its own address, for at most the
/// read-start limit, never another client's streams.
#[derive(Default)]
struct Lanes {
    lanes: HashMap<IpAddr, mpsc::Sender<Answer>>,
}

impl Lanes {
    /// Queues `answer` in the lane of `source`, starting the lane if it
    /// has none (or its last one just ended); false if it cannot.
    fn send(
        &mut self,
        source: IpAddr,
        answer: Answer,
        ctx: &Arc<PortCtx>,
        tasks: &TaskTracker,
    ) -> bool {
        let answer = match self.lanes.get(&source) {
            Some(tx) => match tx.try_send(answer) {
                Ok(()) => return true,
                Err(mpsc::error::TrySendError::Full(_)) => return false,
                Err(mpsc::error::TrySendError::Closed(a)) => a,
            },
            None => answer,
        };
        self.lanes.retain(|_, tx| !tx.is_closed());
        let (tx, rx) = mpsc::channel(MAX_CONNECTIONS);
        let ok = tx.try_send(answer).is_ok();
        self.lanes.insert(source, tx);
        tasks.spawn(run_lane(rx, Arc::clone(ctx), tasks.clone()).in_current_span());
        ok
    }
}

/// Routes one source's connections in order; ends once its queue has been
/// empty for [`LANE_IDLE`].
async fn run_lane(mut rx: mpsc::Receiver<Answer>, ctx: Arc<PortCtx>, tasks: TaskTracker) {
    let shutdown = ctx.shutdown.clone();
    loop {
        let next = tokio::select! {
            _ = shutdown.triggered() => return,
            next = tokio::time::timeout(LANE_IDLE, rx.recv()) => next,
        };
        let answer = match next {
            Ok(Some(answer)) => answer,
            Ok(None) => return,
            Err(_) => {
                // Idle: take no more, route what slipped in meanwhile.
                rx.close();
                while let Ok(answer) = rx.try_recv() {
                    if let Ok(Some(c)) = answer.await {
                        route(c, &ctx, &tasks);
                    }
                }
                return;
            }
        };
        // A read ends within its deadline, so the head of the lane holds
        // the others back for a bounded time only.
        let classified = tokio::select! {
            _ = shutdown.triggered() => return,
            c = answer => c,
        };
        if let Ok(Some(c)) = classified {
            route(c, &ctx, &tasks);
        }
    }
}

/// Starts a test on a new control connection if its source is admitted and
/// the port has room; otherwise refuses it at once. With authentication
/// required, the test counts on the port only once its client
/// authenticated: a client that cannot does not keep others out.
fn new_test(
    conn: TcpStream,
    peer: SocketAddr,
    cookie: Option<Cookie>,
    permit: OwnedSemaphorePermit,
    ctx: &Arc<PortCtx>,
    tasks: &TaskTracker,
) {
    let slot = if ctx.settings.auth.is_some() {
        ctx.uncounted_slot()
    } else {
        match ctx.try_slot() {
            Some(slot) => slot,
            None => return refuse(conn),
        }
    };
    let source = peer.ip().to_canonical();
    if let Err(why) = ctx.admit(source) {
        ctx.refused(source, why, None);
        return match why {
            Refusal::NotAllowed => refuse_with_error(conn, ErrorCode::AUTH_TEST),
            // "Busy, try again later" is what a stock client says.
            _ => refuse(conn),
        };
    }
    tasks.spawn(run_test(conn, peer, cookie, slot, permit, Arc::clone(ctx)));
}

/// Reads the 37-byte cookie of a connection that arrived while a test
/// waits for its streams. A stock client sends it in one write right after
/// connecting, so the whole cookie must arrive within `limit` (the read-start
/// limit): a silent connection cannot hold later streams back for longer.
async fn read_stream_cookie(mut conn: TcpStream, limit: Duration) -> Option<(Cookie, TcpStream)> {
    let mut raw = [0u8; COOKIE_LEN];
    match tokio::time::timeout(limit, conn.read_exact(&mut raw)).await {
        Ok(Ok(_)) => Some((Cookie(raw), conn)),
        _ => None,
    }
}

/// Routes a connection whose cookie was read: to the test that waits for
/// streams with this cookie, else to a new test if the port has room, else
/// away with `0xFF`.
fn route(c: Classified, ctx: &Arc<PortCtx>, tasks: &TaskTracker) {
    let Classified {
        conn,
        peer,
        cookie,
        permit,
    } = c;
    if let Some(tx) = ctx.stream_route(&cookie) {
        // The test takes exactly as many streams as it asked for; one more
        // with its cookie (or one arriving as it ends) is refused.
        if let Err(e) = tx.try_send((conn, peer)) {
            let (conn, _) = e.into_inner();
            refuse(conn);
        }
        return;
    }
    new_test(conn, peer, Some(cookie), permit, ctx, tasks);
}

/// Re-creates the listener with `opts` (stock does the same: options such as
/// the window must be on the listening socket before the handshake), or
/// leaves it when it already has them. The new socket gets its options
/// before the old listener is let go, so options the kernel refuses (a bad
/// `-M`) never take the port offline; otherwise the port is without a
/// listener only between one close and one bind.
async fn rebind(
    listener: &mut TcpListener,
    current: &mut ListenOpts,
    addr: SocketAddr,
    opts: ListenOpts,
) -> std::io::Result<(u32, u32)> {
    if opts == *current {
        return Ok(listen::buffer_sizes(&*listener));
    }
    let fresh = listen::prepared(addr, opts)?;
    replace_listener(listener, addr, fresh).await?;
    *current = opts;
    Ok(listen::buffer_sizes(&*listener))
}

/// Closes the listener and binds `fresh` in its place; if that fails, the
/// port goes back to a listener without options.
async fn replace_listener(
    listener: &mut TcpListener,
    addr: SocketAddr,
    fresh: socket2::Socket,
) -> std::io::Result<()> {
    // The old socket must be closed before the new one can bind the port;
    // a placeholder on another port holds its place meanwhile.
    let placeholder = TcpListener::bind((addr.ip(), 0)).await?;
    drop(std::mem::replace(listener, placeholder));
    let error = match listen::bind_prepared(fresh, addr) {
        Ok(l) => {
            *listener = TcpListener::from_std(l)?;
            return Ok(());
        }
        Err(e) => e,
    };
    let mut last_err = error;
    for _ in 0..50 {
        match listen::tcp_listener(addr, ListenOpts::default()) {
            Ok(l) => {
                *listener = TcpListener::from_std(l)?;
                return Err(last_err);
            }
            Err(e) => last_err = e,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(last_err)
}
