//! The dashboard's HTTP side: warp routes, the embedded frontend, the
//! websocket, CSV export and metrics.
//!
//! Laid out like warp's own examples: [`filters`] has one function per route
//! (method and path in its doc line), [`handlers`] the async functions that
//! answer, [`models`] the serde types of the API. Beside them: [`assets`] (the
//! embedded `web/` directory), [`export`] (CSV and Prometheus text, pure
//! functions) and [`ws`] (one websocket session). This module binds the
//! dashboard's socket and runs the server until shutdown, with bounds: at
//! most [`MAX_CONNECTIONS`] connections and [`MAX_WEBSOCKETS`] websocket
//! sessions at once, and a deadline on every request's header (which also
//! closes idle keep-alive connections).

pub mod assets;
pub mod export;
pub mod filters;
pub mod handlers;
pub mod history;
pub mod models;
pub mod ws;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;

use socket2::{Domain, Protocol, Socket, Type};
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::config::DEFAULT_HTTP_PORT;
use crate::hub::Hub;
use crate::shutdown::Shutdown;

pub use crate::config::{HttpSettings, HEADER_TIMEOUT};
pub use filters::routes;

/// How long shutdown waits for open HTTP connections and websocket sessions
/// before it stops waiting.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// HTTP connections served at once; one more is closed as soon as it is
/// accepted (a page needs a handful; this bounds the memory of many).
pub const MAX_CONNECTIONS: usize = 256;

/// Websocket sessions at once; one more is answered `503`.
pub const MAX_WEBSOCKETS: usize = 256;

/// What every handler needs: the hub, the shutdown token (websocket sessions
/// end on it) and the tracker of websocket sessions (shutdown waits for them).
#[derive(Clone)]
pub struct Context {
    /// The live state.
    pub hub: Arc<Hub>,
    /// Fires when the program shuts down.
    pub shutdown: Shutdown,
    /// Running websocket sessions.
    pub sessions: TaskTracker,
    /// The token `POST /api/clear` requires, if any.
    pub clear_token: Option<Arc<str>>,
    /// The deadline on a request's header.
    pub header_timeout: Duration,
}

impl Context {
    /// A context with a fresh session tracker.
    pub fn new(hub: Arc<Hub>, shutdown: Shutdown) -> Context {
        Context {
            hub,
            shutdown,
            sessions: TaskTracker::new(),
            clear_token: None,
            header_timeout: HEADER_TIMEOUT,
        }
    }

    /// The same context with the settings applied (an empty token is none).
    pub fn with_settings(mut self, settings: &HttpSettings) -> Context {
        self.clear_token = settings
            .clear_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(Arc::from);
        self.header_timeout = settings.header_timeout;
        self
    }
}

/// Serves the dashboard on an already-bound listener until `shutdown` fires
/// (no clear token).
pub async fn serve(listener: tokio::net::TcpListener, hub: Arc<Hub>, shutdown: Shutdown) {
    serve_with(listener, Context::new(hub, shutdown)).await;
}

/// Serves the routes over `ctx` on an already-bound listener until its
/// shutdown token fires. Then it stops accepting, closes websockets with a
/// "going away" frame and waits (a bounded time) for open requests and
/// sessions to finish.
pub async fn serve_with(listener: tokio::net::TcpListener, ctx: Context) {
    let shutdown = ctx.shutdown.clone();
    let sessions = ctx.sessions.clone();
    let header_timeout = ctx.header_timeout;
    let service = warp::service(routes(ctx));
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.triggered() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors and the like: back off, keep serving.
                warn!(error = %e, "dashboard: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Over the limit: closed at once, before anything is read or kept.
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            debug!(
                limit = MAX_CONNECTIONS,
                "dashboard: connection limit reached; closed"
            );
            continue;
        };
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(
                TokioIo::new(stream),
                TowerToHyperService::new(service.clone()),
            )
            .with_upgrades();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let mut conn = std::pin::pin!(conn);
            // Errors are the peer's (reset, bad request, slow header).
            tokio::select! {
                _ = conn.as_mut() => {}
                () = shutdown.triggered() => {
                    // Finish the request in flight, then close.
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
                }
            }
            drop(permit);
        });
    }
    connections.close();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, connections.wait()).await;
    sessions.close();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, sessions.wait()).await;
}

/// Binds the dashboard address: `addr`, or by default `[::]:8080`
/// dual-stack, falling back to `0.0.0.0:8080`.
///
/// The listener is non-blocking, ready for `tokio::net::TcpListener::from_std`.
/// An IPv6 address is bound with `IPV6_V6ONLY` off, so `[::]:PORT` also
/// accepts IPv4 clients.
pub fn bind(addr: Option<SocketAddr>) -> std::io::Result<std::net::TcpListener> {
    match addr {
        Some(addr) => bind_one(addr),
        None => bind_one(SocketAddr::from((Ipv6Addr::UNSPECIFIED, DEFAULT_HTTP_PORT)))
            .or_else(|_| bind_one(SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_HTTP_PORT)))),
    }
}

fn bind_one(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    // As std does on Unix: a restart may rebind while old connections linger
    // in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_an_ephemeral_port_on_loopback() {
        let l = bind(Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))).unwrap();
        assert_ne!(l.local_addr().unwrap().port(), 0);
    }

    #[test]
    fn ipv6_any_is_dual_stack() {
        let Ok(l) = bind(Some(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)))) else {
            return; // no IPv6 on this machine: nothing to check
        };
        let port = l.local_addr().unwrap().port();
        // An IPv4 client reaches the IPv6 listener.
        std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    }

    #[test]
    fn a_port_in_use_is_an_error() {
        let l = bind(Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))).unwrap();
        assert!(bind(Some(l.local_addr().unwrap())).is_err());
    }
}
