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
//! Nothing here queues without bound: every accepted connection takes one of
//! [`MAX_CONNECTIONS`] permits per port (a test's control connection, or a
//! connection whose cookie is being read) or is refused on the spot, cookies
//! are read concurrently under a deadline, and refusals need no task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::driver::run_test;
use super::listen::{self, ListenOpts};
use super::slot::{refuse, PortCtx, Reconfigure};
pub use super::slot::{PortSettings, MAX_CONNECTIONS};
use crate::hub::Hub;
use crate::protocol::wire::{Cookie, COOKIE_LEN};
use crate::shutdown::Shutdown;

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
    // Cookies are read concurrently, but connections are routed in accept
    // order: stream roles (and ids) follow the order of arrival. Each entry
    // is the answer-to-be of one cookie read.
    let (order_tx, mut order_rx) =
        mpsc::channel::<oneshot::Receiver<Option<Classified>>>(MAX_CONNECTIONS);
    let ctx = Arc::new(PortCtx::new(
        addr,
        settings,
        hub,
        shutdown.clone(),
        reconf_tx,
        default_buffers,
    ));
    let router = {
        let (ctx, tasks) = (Arc::clone(&ctx), tasks.clone());
        let shutdown = shutdown.clone();
        async move {
            loop {
                let next = tokio::select! {
                    _ = shutdown.triggered() => return,
                    next = order_rx.recv() => next,
                };
                let Some(answer) = next else { return };
                // A read ends within its deadline, so the head of the line
                // holds the others back for a bounded time only.
                let classified = tokio::select! {
                    _ = shutdown.triggered() => return,
                    c = answer => c,
                };
                if let Ok(Some(c)) = classified {
                    route(c, &ctx, &tasks);
                }
            }
        }
    };
    tasks.spawn(router.in_current_span());
    let mut accept_errors = 0u64;
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
                    if let Err(e) = rebind(&mut listener, addr, ListenOpts::default()).await {
                        tracing::warn!(error = %e, "could not re-create the idle listener");
                    }
                }
            }
            Some(req) = reconf_rx.recv() => {
                let result = rebind(&mut listener, addr, req.opts).await;
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
                let Some(permit) = ctx.try_permit() else {
                    refuse(conn);
                    continue;
                };
                if ctx.awaiting_streams() {
                    let (tx, rx) = oneshot::channel();
                    if order_tx.try_send(rx).is_err() {
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
                        let _ = tx.send(cookie.map(|(cookie, conn)| Classified { conn, peer, cookie, permit }));
                    });
                } else if let Some(slot) = ctx.try_slot() {
                    let ctx = Arc::clone(&ctx);
                    tasks.spawn(run_test(conn, peer, None, slot, permit, ctx));
                } else {
                    refuse(conn);
                }
            }
        }
    }
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
    match ctx.try_slot() {
        Some(slot) => {
            let fut = run_test(conn, peer, Some(cookie), slot, permit, Arc::clone(ctx));
            tasks.spawn(fut);
        }
        None => refuse(conn),
    }
}

/// Re-creates the listener with `opts` (stock does the same: options such as
/// the window must be on the listening socket before the handshake).
async fn rebind(
    listener: &mut TcpListener,
    addr: SocketAddr,
    opts: ListenOpts,
) -> std::io::Result<(u32, u32)> {
    // The old socket must be closed before the new one can bind the port.
    let placeholder = TcpListener::bind((addr.ip(), 0)).await?;
    drop(std::mem::replace(listener, placeholder));
    let mut last_err = None;
    for _ in 0..50 {
        match listen::tcp_listener(addr, opts) {
            Ok(l) => {
                let sizes = listen::buffer_sizes(&l);
                *listener = TcpListener::from_std(l)?;
                return Ok(sizes);
            }
            Err(e) => last_err = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(last_err.unwrap_or_else(|| std::io::Error::other("rebind failed")))
}
