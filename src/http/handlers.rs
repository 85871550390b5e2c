//! The route handlers: async functions from what a filter extracted to a
//! reply, and [`recover`], the one place rejections become JSON errors.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::OwnedSemaphorePermit;
use tracing::{error, info, warn};
use warp::http::{header, HeaderValue, StatusCode};
use warp::reject::Reject;
use warp::{Rejection, Reply};

pub use super::models::error_reply;
use super::models::{table_row, ErrorBody, ResultsQuery, TableRow};
use super::{assets, compress, download, history, metrics, origin, ws, Context};
use crate::files::entry::{read_entry_text, EntryError};
use crate::history::ids::TestId;
use crate::hub::ResultFilter;

/// A query string that parsed but makes no sense (e.g. `since=nan`).
#[derive(Debug)]
pub struct BadQuery(pub String);
impl Reject for BadQuery {}

/// A cross-site request to a route that changes state or to the websocket.
#[derive(Debug)]
pub struct Forbidden(pub String);
impl Reject for Forbidden {}

/// A request for a host name this dashboard does not answer to.
#[derive(Debug)]
pub struct UnknownHost(pub String);
impl Reject for UnknownHost {}

/// Every slot of a bounded resource (exports) is taken.
#[derive(Debug)]
pub struct Busy(pub String);
impl Reject for Busy {}

/// A request to a protected route without the right token.
#[derive(Debug)]
pub struct Unauthorized(pub String);
impl Reject for Unauthorized {}

/// What the request names does not exist (an unknown test id).
#[derive(Debug)]
pub struct NotFound(pub String);
impl Reject for NotFound {}

/// Something on our side failed while building the answer.
#[derive(Debug)]
pub struct Internal(pub String);
impl Reject for Internal {}

/// `GET /`: the page.
pub async fn index(
    if_none_match: Option<String>,
    accept_encoding: Option<String>,
) -> Result<warp::reply::Response, Rejection> {
    assets::serve(
        assets::INDEX,
        if_none_match.as_deref(),
        accept_encoding.as_deref(),
    )
    .ok_or_else(warp::reject::not_found)
}

/// `GET /assets/<file>`: a static file of the page.
pub async fn asset(
    tail: warp::path::Tail,
    if_none_match: Option<String>,
    accept_encoding: Option<String>,
) -> Result<warp::reply::Response, Rejection> {
    let path = assets::asset_path(tail.as_str()).ok_or_else(warp::reject::not_found)?;
    assets::serve(&path, if_none_match.as_deref(), accept_encoding.as_deref())
        .ok_or_else(warp::reject::not_found)
}

/// `GET /api/status`: the hub's status, and `clear_protected` (whether
/// `POST /api/clear` needs a token).
pub async fn status(ctx: Context) -> Result<impl Reply, Infallible> {
    let mut body = serde_json::to_value(ctx.hub.status()).unwrap_or_default();
    if let Some(fields) = body.as_object_mut() {
        fields.insert("clear_protected".into(), ctx.clear_token.is_some().into());
        let forward = ctx.forward.as_ref().map(|f| f.status()).unwrap_or_default();
        fields.insert(
            "forward".into(),
            serde_json::to_value(forward).unwrap_or_default(),
        );
    }
    Ok(warp::reply::json(&body))
}

/// `GET /api/results?port=&name=&name_part=&since=&until=&protocol=&family=&limit=&before=`:
/// a page of results with `limit=`, else every test, streamed as an export
/// ([`download`]; beyond [`super::MAX_EXPORTS`] at once the answer is 503).
pub async fn results(
    query: ResultsQuery,
    accept_encoding: Option<String>,
    ctx: Context,
) -> Result<warp::reply::Response, Rejection> {
    let page = query
        .page()
        .map_err(|e| warp::reject::custom(BadQuery(e)))?;
    let hub = ctx.hub.clone();
    let Some(page) = page else {
        let filter = query
            .filter()
            .map_err(|e| warp::reject::custom(BadQuery(e)))?;
        let permit = export_slot(&ctx)?;
        let chunks = download::export(hub, filter, download::JsonArray::default(), permit);
        let mut response = warp::reply::stream(chunks).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return Ok(response);
    };
    // A page is quick, but it walks the history: off the reactor.
    let found = tokio::task::spawn_blocking(move || hub.with_store(|store, _| store.page(&page)))
        .await
        .map_err(|e| warp::reject::custom(Internal(format!("results failed: {e}"))))?
        .map_err(|e| warp::reject::custom(BadQuery(e.to_string())))?;
    Ok(compress::json(&found, accept_encoding.as_deref()))
}

/// A free export slot, or the 503 rejection.
fn export_slot(ctx: &Context) -> Result<OwnedSemaphorePermit, Rejection> {
    Arc::clone(&ctx.exports).try_acquire_owned().map_err(|_| {
        let msg = "too many exports at once; try again later";
        warp::reject::custom(Busy(msg.into()))
    })
}

/// `GET /api/results/{id}`: the test, its log entry exactly as logged, and
/// the verdict on what limited it ([`history`]; beyond
/// [`history::MAX_DETAILS`] at once the answer is 503).
pub async fn result_detail(id: String, ctx: Context) -> Result<warp::reply::Response, Rejection> {
    let unknown = || warp::reject::custom(NotFound(format!("no test has the id {id:?}")));
    let parsed = TestId::parse(&id).ok_or_else(unknown)?;
    let Ok(permit) = Arc::clone(&ctx.details).try_acquire_owned() else {
        let msg = "too many test details asked for at once; try again later";
        return Err(warp::reject::custom(Busy(msg.into())));
    };
    let hub = ctx.hub.clone();
    let found = tokio::task::spawn_blocking(move || {
        let (result, file, offset) = hub.open_entry(&parsed)?;
        let run = result.send_bps.is_some() && result.receive_bps.is_some();
        Some(file.and_then(|f| {
            let entry = read_entry_text(&f, offset)?;
            let ndt7 = run && result.protocol == crate::analysis::ndt7::PROTOCOL;
            let upload = ndt7
                .then(|| crate::files::ndt7_log::upload_entry(&f, offset, &entry))
                .flatten();
            history::run_detail(&result, entry, upload)
        }))
    })
    .await
    .map_err(|e| warp::reject::custom(Internal(format!("reading the entry failed: {e}"))))?;
    let parts = found.ok_or_else(unknown)?.map_err(|e| match e {
        EntryError::Gone => warp::reject::custom(NotFound(format!("test {id}: {e}"))),
        e => warp::reject::custom(Internal(format!("test {id}: {e}"))),
    })?;
    let length = parts.iter().map(Vec::len).sum::<usize>();
    // The slot is held until the body is sent or dropped.
    let chunks = futures_util::stream::iter(parts).map(move |part| {
        let _held = &permit;
        Ok::<_, std::io::Error>(part)
    });
    let mut response = warp::reply::stream(chunks).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    Ok(response)
}

/// `GET /api/history/buckets?buckets=N&port=&name=&name_part=&since=&until=&protocol=&family=`.
pub async fn buckets(
    query: ResultsQuery,
    accept_encoding: Option<String>,
    ctx: Context,
) -> Result<impl Reply, Rejection> {
    let (filter, n) = query
        .buckets()
        .map_err(|e| warp::reject::custom(BadQuery(e)))?;
    let hub = ctx.hub.clone();
    let buckets = tokio::task::spawn_blocking(move || hub.with_store(|s, _| s.buckets(&filter, n)))
        .await
        .map_err(|e| warp::reject::custom(Internal(format!("buckets failed: {e}"))))?;
    Ok(compress::json(
        &serde_json::json!({ "buckets": buckets }),
        accept_encoding.as_deref(),
    ))
}

/// `GET /api/latest`.
pub async fn latest(ctx: Context) -> Result<impl Reply, Infallible> {
    Ok(warp::reply::json(&ctx.hub.latest()))
}

/// `GET /table`.
pub async fn table(ctx: Context) -> Result<impl Reply, Infallible> {
    let rows: Vec<Option<TableRow>> = ctx
        .hub
        .latest()
        .iter()
        .map(|r| r.as_ref().map(table_row))
        .collect();
    Ok(warp::reply::json(&rows))
}

/// `GET /csv`: streamed from the store ([`download`]); beyond
/// [`super::MAX_EXPORTS`] at once the answer is 503.
pub async fn csv(ctx: Context) -> Result<warp::reply::Response, Rejection> {
    let permit = export_slot(&ctx)?;
    let chunks = download::export(
        ctx.hub.clone(),
        ResultFilter::default(),
        download::Csv,
        permit,
    );
    let mut response = warp::reply::stream(chunks).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=iperf3_log.csv"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Refuses a `Host` this dashboard does not answer to ([`origin`]).
pub async fn known_host(host: Option<String>, ctx: Context) -> Result<(), Rejection> {
    if ctx.hosts.accepts(host.as_deref()) {
        return Ok(());
    }
    warn!(host = ?host, "dashboard: request for an unknown host name refused");
    let msg = "unknown host name; start the server with --http-host NAME to serve it";
    Err(warp::reject::custom(UnknownHost(msg.into())))
}

/// Refuses a browser's cross-site request (its `Origin` is not the page's
/// own); scripts send no `Origin`.
pub async fn same_origin(origin: Option<String>, host: Option<String>) -> Result<(), Rejection> {
    if origin::same_origin(origin.as_deref(), host.as_deref()) {
        return Ok(());
    }
    warn!(origin = ?origin, "dashboard: cross-site request refused");
    let msg = format!(
        "cross-site request refused (Origin {})",
        origin.unwrap_or_default()
    );
    Err(warp::reject::custom(Forbidden(msg)))
}

/// `POST /api/clear` (the filter has refused cross-site requests). With a
/// clear token set, the request must carry `Authorization: Bearer <token>`;
/// anything else is answered 401.
pub async fn clear(authorization: Option<String>, ctx: Context) -> Result<impl Reply, Rejection> {
    if let Some(token) = &ctx.clear_token {
        let given = authorization.as_deref().and_then(bearer);
        if !given.is_some_and(|given| same_secret(given.as_bytes(), token.as_bytes())) {
            warn!("dashboard: clear refused without the right token");
            let msg = if given.is_some() {
                "wrong clear token"
            } else {
                "clearing needs the clear token (Authorization: Bearer <token>)"
            };
            return Err(warp::reject::custom(Unauthorized(msg.into())));
        }
    }
    // Clearing appends to every log file: keep that off the reactor.
    let hub = ctx.hub.clone();
    let latest = tokio::task::spawn_blocking(move || hub.clear())
        .await
        .map_err(|e| warp::reject::custom(Internal(format!("clear failed: {e}"))))?;
    info!("dashboard: table cleared");
    Ok(warp::reply::json(&latest))
}

/// The credentials of an `Authorization: Bearer <token>` header.
fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Compares a given secret with the expected one in time that depends only
/// on the expected one's length, not on where they first differ.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= e ^ given.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// `GET /metrics`: Prometheus text, or OpenMetrics when the `Accept`
/// header asks for it.
pub async fn metrics(accept: Option<String>, ctx: Context) -> Result<impl Reply, Infallible> {
    let openmetrics = metrics::wants_openmetrics(accept.as_deref());
    let forward = ctx.forward.as_ref().map(|f| f.status()).unwrap_or_default();
    let text = ctx.metrics.render(&ctx.hub.status(), &forward, openmetrics);
    let content_type = if openmetrics {
        metrics::OPENMETRICS_CONTENT_TYPE
    } else {
        metrics::TEXT_CONTENT_TYPE
    };
    Ok(warp::reply::with_header(
        text,
        header::CONTENT_TYPE,
        content_type,
    ))
}

/// `GET /ws` (the filter has refused cross-site requests): upgrades and
/// runs the session as a task that shutdown waits for. Frames larger than
/// [`ws::MAX_CLIENT_MESSAGE`] are refused from their header. A session past
/// the bounds makes room by ending an older one ([`super::sessions`]).
pub fn websocket(
    upgrade: warp::ws::Ws,
    source: Option<IpAddr>,
    ctx: Context,
) -> warp::reply::Response {
    upgrade
        .max_message_size(ws::MAX_CLIENT_MESSAGE)
        .max_frame_size(ws::MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| {
            let admitted = ctx.websockets.admit(source);
            let session = ws::session(
                socket,
                ctx.hub.clone(),
                ctx.shutdown.clone(),
                admitted,
                ctx.ws_ping,
            );
            ctx.sessions.track_future(session)
        })
        .into_response()
}

/// Turns every rejection into a JSON error `{"error": "...", "status": N}`.
pub async fn recover(err: Rejection) -> Result<impl Reply, Infallible> {
    let (status, message) = if err.is_not_found() {
        (StatusCode::NOT_FOUND, "not found".to_string())
    } else if let Some(NotFound(msg)) = err.find() {
        (StatusCode::NOT_FOUND, msg.clone())
    } else if let Some(BadQuery(msg)) = err.find() {
        (StatusCode::BAD_REQUEST, msg.clone())
    } else if err.find::<warp::reject::InvalidQuery>().is_some() {
        let msg = "bad query: expected port=<1..65535>, name=<text>, name_part=<text>, \
                   since=<unix seconds>, \
                   until=<unix seconds>, protocol=<TCP|UDP|ndt7>, family=<4|6>, \
                   limit=<N>, before=<id>, buckets=<N>";
        (StatusCode::BAD_REQUEST, msg.to_string())
    } else if let Some(Forbidden(msg)) = err.find() {
        (StatusCode::FORBIDDEN, msg.clone())
    } else if let Some(UnknownHost(msg)) = err.find() {
        (StatusCode::MISDIRECTED_REQUEST, msg.clone())
    } else if let Some(Busy(msg)) = err.find() {
        (StatusCode::SERVICE_UNAVAILABLE, msg.clone())
    } else if let Some(Unauthorized(msg)) = err.find() {
        (StatusCode::UNAUTHORIZED, msg.clone())
    } else if let Some(e) = err.find::<warp::reject::MissingHeader>() {
        (StatusCode::BAD_REQUEST, e.to_string())
    } else if let Some(e) = err.find::<warp::reject::InvalidHeader>() {
        (StatusCode::BAD_REQUEST, e.to_string())
    } else if err.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed".to_string(),
        )
    } else if let Some(Internal(msg)) = err.find() {
        error!("{msg}");
        (StatusCode::INTERNAL_SERVER_ERROR, msg.clone())
    } else {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("unhandled: {err:?}"),
        )
    };
    let body = ErrorBody {
        error: message,
        status: status.as_u16(),
    };
    let mut response = warp::reply::with_status(warp::reply::json(&body), status).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"webperf3\""),
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::{bearer, same_secret};

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer(""), None);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3cre", b"s3cret"));
        assert!(!same_secret(b"s3cretX", b"s3cret"));
        assert!(!same_secret(b"S3cret", b"s3cret"));
        assert!(!same_secret(b"", b"s3cret"));
        // A longer guess that starts with the secret, and a NUL-padded one.
        assert!(!same_secret(b"s3cret\0", b"s3cret"));
    }
}
