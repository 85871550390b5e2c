//! One `POST` to a receiver over plain HTTP/1.1 (hyper's connection API, a
//! connection per request), with a deadline on the whole exchange.

use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use thiserror::Error;

use super::target::Target;

/// The whole exchange (connect, send, the answer's header) must fit in this.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a delivery attempt failed.
#[derive(Debug, Error)]
pub enum SendError {
    /// The receiver could not be reached or the connection broke.
    #[error("cannot reach {0}")]
    Connect(String, #[source] std::io::Error),
    /// The HTTP exchange failed.
    #[error("HTTP error")]
    Http(#[from] hyper::Error),
    /// The request could not be built (a bad header value).
    #[error("bad request: {0}")]
    Request(#[from] hyper::http::Error),
    /// No answer within [`SEND_TIMEOUT`].
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The receiver answered, but not 2xx.
    #[error("answered {0}")]
    Status(u16),
}

/// POSTs `body` to `target` with the idempotency `key`; `Ok` only on 2xx.
pub async fn post(target: &Target, key: &str, body: Vec<u8>) -> Result<(), SendError> {
    match tokio::time::timeout(SEND_TIMEOUT, exchange(target, key, body)).await {
        Ok(result) => result,
        Err(_) => Err(SendError::Timeout(SEND_TIMEOUT)),
    }
}

async fn exchange(target: &Target, key: &str, body: Vec<u8>) -> Result<(), SendError> {
    let stream = tokio::net::TcpStream::connect(&target.authority)
        .await
        .map_err(|e| SendError::Connect(target.authority.clone(), e))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let connection = tokio::spawn(connection);
    let request = Request::post(target.path.as_str())
        .header(HOST, target.authority.as_str())
        .header(CONTENT_TYPE, "application/json")
        .header("idempotency-key", key)
        .body(Full::new(Bytes::from(body)))?;
    let answer = sender.send_request(request).await;
    // The answer's body is not needed; the connection is not reused.
    connection.abort();
    let status = answer?.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(SendError::Status(status.as_u16()))
    }
}
