//! The dashboard's accept loop: the plain listener (HTTP/1.1) and, when
//! there is one, the HTTPS listener (TLS, then HTTP/1.1 or HTTP/2 as ALPN
//! chose) serve the same routes under the same bounds: at most
//! [`super::MAX_CONNECTIONS`] connections between them, the header
//! deadline (on the TLS handshake too), the write deadline, and each
//! request carrying its connection ([`ConnInfo`]: the peer `--allow`
//! checks, the socket ndt7 reads `TCP_INFO` of, whether it is TLS).
//!
//! HTTP/2 requests name their host in the URI, not in a `Host` header: one
//! is added from the URI, so the `Host` and `Origin` checks see the same
//! thing over both versions.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};
use warp::http::{header, HeaderValue, Request};

use super::deadline::WriteDeadline;
use super::{routes, ConnInfo, Context, MAX_CONNECTIONS, SHUTDOWN_GRACE};

/// The HTTPS listener: a bound socket and its TLS settings.
#[cfg(feature = "https")]
pub struct TlsListener {
    /// The bound socket.
    pub listener: TcpListener,
    /// The TLS side (certificate, ALPN).
    pub acceptor: tokio_rustls::TlsAcceptor,
}

#[cfg(feature = "https")]
impl TlsListener {
    /// A listener serving TLS with `config`.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> TlsListener {
        TlsListener {
            listener,
            acceptor: tokio_rustls::TlsAcceptor::from(config),
        }
    }
}

/// A build without the `https` feature has no HTTPS listener.
#[cfg(not(feature = "https"))]
pub enum TlsListener {}

#[cfg(feature = "https")]
type Acceptor = tokio_rustls::TlsAcceptor;
#[cfg(not(feature = "https"))]
type Acceptor = std::convert::Infallible;

/// The HTTP/2 streams one connection may have open at once.
#[cfg(feature = "https")]
const MAX_STREAMS: u32 = 64;

/// How often an HTTP/2 connection is pinged; one that does not answer
/// within the same time is closed.
#[cfg(feature = "https")]
const H2_PING: Duration = Duration::from_secs(20);

/// The next connection on the HTTPS listener; never, without one.
async fn accept_tls(
    https: Option<&TlsListener>,
) -> std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr, Acceptor)> {
    match https {
        #[cfg(feature = "https")]
        Some(l) => {
            let (stream, peer) = l.listener.accept().await?;
            Ok((stream, peer, l.acceptor.clone()))
        }
        #[cfg(not(feature = "https"))]
        Some(never) => match *never {},
        None => std::future::pending().await,
    }
}

/// Serves the routes over `ctx` on `http` (and `https`) until the shutdown
/// token fires. Then it stops accepting, closes websockets with a "going
/// away" frame and waits (a bounded time) for open requests and sessions
/// to finish.
pub async fn serve_all(http: TcpListener, https: Option<TlsListener>, ctx: Context) {
    let shutdown = ctx.shutdown.clone();
    let sessions = ctx.sessions.clone();
    let header_timeout = ctx.header_timeout;
    let write_timeout = ctx.write_timeout;
    let service = warp::service(routes(ctx));
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.triggered() => break,
            accepted = http.accept() => accepted.map(|(s, p)| (s, p, None)),
            accepted = accept_tls(https.as_ref()) => accepted.map(|(s, p, a)| (s, p, Some(a))),
        };
        let (stream, peer, tls) = match accepted {
            Ok(accepted) => accepted,
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
        // Each request carries its connection (ndt7 reads TCP_INFO of it).
        let info = match (stream.local_addr(), stream.as_fd().try_clone_to_owned()) {
            (Ok(local), Ok(socket)) => Some(ConnInfo {
                peer,
                local,
                socket: Arc::new(socket),
                secure: tls.is_some(),
            }),
            _ => None,
        };
        let inner = TowerToHyperService::new(service.clone());
        let with_info = hyper::service::service_fn(move |mut req: Request<_>| {
            if let Some(info) = &info {
                req.extensions_mut().insert(info.clone());
            }
            host_from_uri(&mut req);
            hyper::service::Service::call(&inner, req)
        });
        let io = WriteDeadline::new(stream, write_timeout);
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            // Errors are the peer's (reset, bad request, slow header).
            match tls {
                None => {
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(header_timeout)
                        .serve_connection(TokioIo::new(io), with_info)
                        .with_upgrades();
                    let mut conn = std::pin::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        () = shutdown.triggered() => {
                            // Finish the request in flight, then close.
                            conn.as_mut().graceful_shutdown();
                            let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
                        }
                    }
                }
                #[cfg(not(feature = "https"))]
                Some(never) => match never {},
                #[cfg(feature = "https")]
                Some(acceptor) => {
                    let handshake = tokio::select! {
                        done = tokio::time::timeout(header_timeout, acceptor.accept(io)) => done,
                        () = shutdown.triggered() => return,
                    };
                    let Ok(Ok(io)) = handshake else {
                        debug!(client = %peer, "https: no TLS handshake");
                        return;
                    };
                    let mut builder = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    );
                    builder
                        .http1()
                        .timer(TokioTimer::new())
                        .header_read_timeout(header_timeout);
                    builder
                        .http2()
                        .timer(TokioTimer::new())
                        .max_concurrent_streams(MAX_STREAMS)
                        .keep_alive_interval(H2_PING)
                        .keep_alive_timeout(H2_PING);
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), with_info);
                    let mut conn = std::pin::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        () = shutdown.triggered() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
                        }
                    }
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

/// Gives a request without `Host` (HTTP/2) the authority of its URI.
fn host_from_uri<B>(req: &mut Request<B>) {
    if req.headers().contains_key(header::HOST) {
        return;
    }
    let Some(value) = req
        .uri()
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    else {
        return;
    };
    req.headers_mut().insert(header::HOST, value);
}
