//! The dashboard's HTTP side: warp routes, the embedded frontend, the
//! websocket, CSV export and metrics.
//!
//! Laid out like warp's own examples: [`filters`] has one function per route
//! (method and path in its doc line), [`handlers`] the async functions that
//! answer, [`models`] the serde types of the API. Beside them: [`assets`] (the
//! embedded `web/` directory), [`export`] (CSV and Prometheus text, pure
//! functions) and [`ws`] (one websocket session). This module binds the
//! dashboard's socket and runs the server until shutdown.

pub mod assets;
pub mod export;
pub mod filters;
pub mod handlers;
pub mod models;
pub mod ws;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::DEFAULT_HTTP_PORT;
use crate::hub::Hub;

pub use filters::routes;

/// How long shutdown waits for open HTTP connections and websocket sessions
/// before it stops waiting.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// What every handler needs: the hub, the shutdown token (websocket sessions
/// end on it) and the tracker of websocket sessions (shutdown waits for them).
#[derive(Clone)]
pub struct Context {
    /// The live state.
    pub hub: Arc<Hub>,
    /// Fires when the program shuts down.
    pub shutdown: CancellationToken,
    /// Running websocket sessions.
    pub sessions: TaskTracker,
}

impl Context {
    /// A context with a fresh session tracker.
    pub fn new(hub: Arc<Hub>, shutdown: CancellationToken) -> Context {
        Context {
            hub,
            shutdown,
            sessions: TaskTracker::new(),
        }
    }
}

/// Serves the dashboard on an already-bound listener until `shutdown` fires.
/// Then it stops accepting, closes websockets with a "going away" frame and
/// waits (a bounded time) for open requests and sessions to finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    hub: Arc<Hub>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let ctx = Context::new(hub, shutdown.clone());
    let sessions = ctx.sessions.clone();
    let server = warp::serve(routes(ctx))
        .incoming(listener)
        .graceful(shutdown.clone().cancelled_owned())
        .run();
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        () = server => {}
        () = deadline => {}
    }
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
