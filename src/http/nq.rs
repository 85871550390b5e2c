//! The responsiveness test's endpoints (IETF draft-ietf-ippm-responsiveness,
//! what Apple's `networkQuality`, Cloudflare's `mach rpm` and
//! goresponsiveness measure against): `GET /.well-known/nq`, the
//! configuration document naming the three URLs below on the listener
//! that served it; `GET /nq/small` (a few bytes); `GET /nq/large` (a large
//! body, slices of the shared ndt7 payload, so nothing is copied here);
//! `POST /nq/upload` (a body of any length read and dropped, then an
//! answer).
//!
//! The limits are ndt7's: clients outside `--allow` get 403; large
//! downloads and uploads running at once are capped
//! ([`crate::config::NqSettings::max_transfers`], one more gets 503); each
//! ends after [`MAX_BYTES`] or the time limit, whichever comes first
//! (a download's body then ends; an upload is answered 413 or 408 and its
//! connection closed). `--no-nq` answers 404 to all of them. Like ndt7 the
//! routes are meant for any client, outside the `Host` check; nothing they
//! do is recorded.

use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::{Buf, Bytes};
use futures_util::{Stream, StreamExt};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tracing::debug;
use warp::http::{header, StatusCode};
use warp::{Filter, Rejection, Reply};

use super::handlers::error_reply;
use super::{ConnInfo, Context};

/// The body of `/nq/small`.
pub const SMALL: &[u8] = b"webperf3";

/// The most a large download sends, or an upload reads: 64 GiB.
pub const MAX_BYTES: u64 = 64 << 30;

/// The size of one chunk of a large download: a slice of the payload.
const CHUNK: usize = 1 << 20;

/// GET /.well-known/nq, GET /nq/small, GET /nq/large and POST /nq/upload
/// (PUT too: clients differ)
pub fn routes(
    ctx: Context,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    let enabled = ctx.nq.enabled;
    let on = warp::any()
        .and_then(move || async move {
            if enabled {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one();
    let with = move || {
        let ctx = ctx.clone();
        warp::ext::optional::<ConnInfo>().map(move |conn| (conn, ctx.clone()))
    };
    let config = warp::path!(".well-known" / "nq")
        .and(warp::get())
        .and(warp::host::optional())
        .and(with())
        .map(|host, (conn, ctx)| config(host, conn, &ctx));
    let small = warp::path!("nq" / "small")
        .and(warp::get())
        .and(with())
        .map(|(conn, ctx)| small(conn, &ctx));
    let large = warp::path!("nq" / "large")
        .and(warp::get())
        .and(with())
        .map(|(conn, ctx)| large(conn, &ctx));
    let upload = warp::path!("nq" / "upload")
        .and(warp::post().or(warp::put()).unify())
        .and(with())
        .and(warp::body::stream())
        .then(|(conn, ctx), body| upload(conn, ctx, body));
    on.and(
        config
            .or(small)
            .unify()
            .or(large)
            .unify()
            .or(upload)
            .unify(),
    )
    .map(|reply: warp::reply::Response| {
        warp::reply::with_header(reply, header::CACHE_CONTROL, "no-store").into_response()
    })
}

/// The refusal of a request whose connection's client is outside
/// `--allow`; `None` when it may be served.
fn refusal(conn: Option<&ConnInfo>, ctx: &Context) -> Option<warp::reply::Response> {
    let Some(conn) = conn else {
        return Some(error_reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no connection details",
        ));
    };
    let client = conn.peer.ip().to_canonical();
    if ctx.ndt7.allow.allows(client) {
        return None;
    }
    debug!(client = %client, "nq: client not allowed");
    Some(error_reply(
        StatusCode::FORBIDDEN,
        format!("client {client} is not in the allowed networks"),
    ))
}

/// The 503 of a transfer that finds no free slot.
fn busy(ctx: &Context) -> warp::reply::Response {
    error_reply(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "busy: {} transfers are running; try again shortly",
            ctx.nq.max_transfers
        ),
    )
}

/// The configuration document for the listener `conn` arrived on, with the
/// host the request named (its address when it named none).
fn config(
    host: Option<warp::host::Authority>,
    conn: Option<ConnInfo>,
    ctx: &Context,
) -> warp::reply::Response {
    if let Some(refused) = refusal(conn.as_ref(), ctx) {
        return refused;
    }
    let Some(conn) = conn else {
        return error_reply(StatusCode::INTERNAL_SERVER_ERROR, "no connection details");
    };
    let base = base_url(conn.secure, host.as_ref(), conn.local);
    warp::reply::json(&document(&base)).into_response()
}

/// `scheme://host:port` of the listener: the host as the request named it
/// (else the listener's address), its port (else the listener's).
pub fn base_url(
    secure: bool,
    host: Option<&warp::host::Authority>,
    local: std::net::SocketAddr,
) -> String {
    let scheme = if secure { "https" } else { "http" };
    let local_host = match local.ip().to_canonical() {
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let name = host.map_or(local_host, |h| h.host().to_string());
    let port = host.and_then(|h| h.port_u16()).unwrap_or(local.port());
    format!("{scheme}://{name}:{port}")
}

/// The configuration document: both key sets (RPM clients read one or
/// the other) naming the same URLs under `base`.
pub fn document(base: &str) -> serde_json::Value {
    let (small, large, upload) = (
        format!("{base}/nq/small"),
        format!("{base}/nq/large"),
        format!("{base}/nq/upload"),
    );
    serde_json::json!({
        "version": 1,
        "urls": {
            "small_https_download_url": small,
            "large_https_download_url": large,
            "https_upload_url": upload,
            "small_download_url": small,
            "large_download_url": large,
            "upload_url": upload,
        }
    })
}

fn small(conn: Option<ConnInfo>, ctx: &Context) -> warp::reply::Response {
    if let Some(refused) = refusal(conn.as_ref(), ctx) {
        return refused;
    }
    let reply = warp::reply::Response::new(SMALL.into());
    warp::reply::with_header(reply, header::CONTENT_TYPE, "application/octet-stream")
        .into_response()
}

fn large(conn: Option<ConnInfo>, ctx: &Context) -> warp::reply::Response {
    if let Some(refused) = refusal(conn.as_ref(), ctx) {
        return refused;
    }
    let Ok(permit) = Arc::clone(&ctx.nq_slots).try_acquire_owned() else {
        return busy(ctx);
    };
    let body = Large::new(
        super::ndt7::payload(),
        Instant::now() + ctx.nq.max_time,
        permit,
    );
    let reply = warp::reply::stream(body);
    warp::reply::with_header(reply, header::CONTENT_TYPE, "application/octet-stream")
        .into_response()
}

/// A large download's body: slices of the payload, round and round, until
/// [`MAX_BYTES`] or `until`; it holds its transfer slot while it lasts.
pub struct Large {
    payload: Bytes,
    at: usize,
    sent: u64,
    until: Instant,
    _slot: OwnedSemaphorePermit,
}

impl Large {
    /// A body of `payload`'s bytes sent until `until`, holding `slot`.
    pub fn new(payload: Bytes, until: Instant, slot: OwnedSemaphorePermit) -> Large {
        Large {
            payload,
            at: 0,
            sent: 0,
            until,
            _slot: slot,
        }
    }
}

impl Stream for Large {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(self: Pin<&mut Self>, _: &mut std::task::Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.sent >= MAX_BYTES || Instant::now() >= this.until || this.payload.is_empty() {
            return Poll::Ready(None);
        }
        if this.at >= this.payload.len() {
            this.at = 0;
        }
        let left = usize::try_from(MAX_BYTES - this.sent).unwrap_or(usize::MAX);
        let end = (this.at + CHUNK.min(left)).min(this.payload.len());
        let chunk = this.payload.slice(this.at..end);
        this.at = end;
        this.sent += chunk.len() as u64;
        Poll::Ready(Some(Ok(chunk)))
    }
}

/// How an upload's body ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Drained {
    /// The client sent all of it: this many bytes.
    Whole(u64),
    /// It passed [`MAX_BYTES`].
    TooLarge,
    /// It was still coming at the time limit.
    TooSlow,
    /// The connection failed under it.
    Broken,
}

/// Reads `body` to its end and drops it, counting, until [`MAX_BYTES`] or
/// `until`.
pub async fn drain<S, B, E>(body: S, until: Instant) -> Drained
where
    S: Stream<Item = Result<B, E>>,
    B: Buf,
{
    let mut body = std::pin::pin!(body);
    let mut read: u64 = 0;
    loop {
        match tokio::time::timeout_at(until, body.next()).await {
            Err(_) => return Drained::TooSlow,
            Ok(None) => return Drained::Whole(read),
            Ok(Some(Err(_))) => return Drained::Broken,
            Ok(Some(Ok(chunk))) => {
                read = read.saturating_add(chunk.remaining() as u64);
                if read > MAX_BYTES {
                    return Drained::TooLarge;
                }
            }
        }
    }
}

async fn upload<S, B>(conn: Option<ConnInfo>, ctx: Context, body: S) -> warp::reply::Response
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    if let Some(refused) = refusal(conn.as_ref(), &ctx) {
        return refused;
    }
    let Ok(_slot) = Arc::clone(&ctx.nq_slots).try_acquire_owned() else {
        return busy(&ctx);
    };
    match drain(body, Instant::now() + ctx.nq.max_time).await {
        Drained::Whole(bytes) => {
            warp::reply::json(&serde_json::json!({ "bytes": bytes })).into_response()
        }
        Drained::TooLarge => error_reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("an upload may send at most {MAX_BYTES} bytes"),
        ),
        Drained::TooSlow => error_reply(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "an upload may last at most {} seconds",
                ctx.nq.max_time.as_secs()
            ),
        ),
        Drained::Broken => error_reply(StatusCode::BAD_REQUEST, "the upload broke off"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::sync::Semaphore;

    fn permit(slots: &Arc<Semaphore>) -> OwnedSemaphorePermit {
        Arc::clone(slots).try_acquire_owned().unwrap()
    }

    #[test]
    fn the_document_names_every_url_under_the_listener() {
        let local: std::net::SocketAddr = "[::ffff:10.0.0.2]:8443".parse().unwrap();
        let named: warp::host::Authority = "pi.lan:9443".parse().unwrap();
        assert_eq!(base_url(true, Some(&named), local), "https://pi.lan:9443");
        let bare: warp::host::Authority = "pi.lan".parse().unwrap();
        assert_eq!(base_url(true, Some(&bare), local), "https://pi.lan:8443");
        assert_eq!(base_url(false, None, local), "http://10.0.0.2:8443");
        let v6: std::net::SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(base_url(false, None, v6), "http://[::1]:80");
        let doc = document("https://h:1");
        assert_eq!(doc["version"], 1);
        assert_eq!(
            doc["urls"]["large_https_download_url"],
            "https://h:1/nq/large"
        );
        assert_eq!(doc["urls"]["upload_url"], "https://h:1/nq/upload");
        assert_eq!(doc["urls"].as_object().unwrap().len(), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn a_large_download_ends_at_its_time_limit_and_frees_its_slot() {
        let slots = Arc::new(Semaphore::new(1));
        let payload = Bytes::from(vec![7u8; 3 * CHUNK + 5]);
        let mut body = Large::new(
            payload,
            Instant::now() + Duration::from_secs(2),
            permit(&slots),
        );
        let mut sent = 0;
        for _ in 0..10 {
            sent += body.next().await.unwrap().unwrap().len();
        }
        // Round the payload more than twice: chunks never cross its end.
        assert_eq!(sent, 8 * CHUNK + 10);
        assert_eq!(slots.available_permits(), 0);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(body.next().await.is_none());
        drop(body);
        assert_eq!(slots.available_permits(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_upload_is_counted_and_a_trickle_cut_at_the_time_limit() {
        let chunks = futures_util::stream::iter(
            [3usize, 4, 5].map(|n| Ok::<_, std::io::Error>(Bytes::from(vec![0; n]))),
        );
        let until = Instant::now() + Duration::from_secs(5);
        assert_eq!(drain(chunks, until).await, Drained::Whole(12));
        // A body that never ends: one byte a second.
        let trickle = futures_util::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Some((Ok::<_, std::io::Error>(Bytes::from_static(b"x")), ()))
        });
        let started = Instant::now();
        assert_eq!(drain(trickle, until).await, Drained::TooSlow);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        let broken = futures_util::stream::iter([Err::<Bytes, _>(std::io::Error::other("x"))]);
        assert_eq!(drain(broken, until).await, Drained::Broken);
    }
}
