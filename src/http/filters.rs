//! The routes, one function per route, each documented with its method and
//! path; [`routes`] combines them and maps rejections to JSON errors.

use std::convert::Infallible;
use std::net::IpAddr;

use warp::{Filter, Rejection, Reply};

use super::handlers;
use super::models::ResultsQuery;
use super::{ConnInfo, Context};

/// Every route of the dashboard, with errors as JSON. Only requests whose
/// `Host` names this box are served ([`super::origin`]).
pub fn routes(ctx: Context) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let pages = index().or(assets()).boxed();
    let api = status(ctx.clone())
        .or(results(ctx.clone()))
        .or(result_detail(ctx.clone()))
        .or(buckets(ctx.clone()))
        .or(super::devices::route(ctx.clone()))
        .or(latest(ctx.clone()))
        .or(clear(ctx.clone()))
        .with(warp::reply::with::header("cache-control", "no-store"))
        .boxed();
    let exports = table(ctx.clone())
        .or(csv(ctx.clone()))
        .or(metrics(ctx.clone()))
        .or(probe(ctx.clone()))
        .boxed();
    // ndt7 and the responsiveness endpoints are meant for any client:
    // beside `ours`, outside the Host and Origin checks.
    let ours = pages.or(api).or(exports).or(websocket(ctx.clone()));
    known_host(ctx.clone())
        .and(ours)
        .or(super::ndt7::routes(ctx.clone()))
        .or(super::nq::routes(ctx))
        .recover(handlers::recover)
}

/// GET /
pub fn index() -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path::end()
        .and(warp::get())
        .and(if_none_match())
        .and(super::compress::accept_encoding())
        .and_then(handlers::index)
}

/// GET /assets/{file}
pub fn assets() -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path("assets")
        .and(warp::get())
        .and(warp::path::tail())
        .and(if_none_match())
        .and(super::compress::accept_encoding())
        .and_then(handlers::asset)
}

/// GET /api/status
pub fn status(ctx: Context) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "status")
        .and(warp::get())
        .and(with(ctx))
        .and_then(handlers::status)
}

/// GET /api/results?port=&name=&name_part=&since=&until=&protocol=&family=&limit=&before=
pub fn results(ctx: Context) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "results")
        .and(warp::get())
        .and(warp::query::<ResultsQuery>())
        .and(super::compress::accept_encoding())
        .and(with(ctx))
        .and_then(handlers::results)
}

/// GET /api/results/{id}
pub fn result_detail(
    ctx: Context,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "results" / String)
        .and(warp::get())
        .and(with(ctx))
        .and_then(handlers::result_detail)
}

/// GET /api/history/buckets?buckets=N&port=&name=&name_part=&since=&until=&protocol=&family=
pub fn buckets(ctx: Context) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "history" / "buckets")
        .and(warp::get())
        .and(warp::query::<ResultsQuery>())
        .and(super::compress::accept_encoding())
        .and(with(ctx))
        .and_then(handlers::buckets)
}

/// GET /api/latest
pub fn latest(ctx: Context) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "latest")
        .and(warp::get())
        .and(with(ctx))
        .and_then(handlers::latest)
}

/// POST /api/clear (with `Authorization: Bearer <token>` when a clear token is set)
pub fn clear(ctx: Context) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "clear")
        .and(warp::post())
        .and(same_origin())
        .and(warp::header::optional::<String>("authorization"))
        .and(with(ctx))
        .and_then(handlers::clear)
}

/// GET /table
pub fn table(ctx: Context) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("table")
        .and(warp::get())
        .and(with(ctx))
        .and_then(handlers::table)
}

/// GET /csv
pub fn csv(ctx: Context) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("csv")
        .and(warp::get())
        .and(with(ctx))
        .and_then(handlers::csv)
}

/// GET /metrics
pub fn metrics(ctx: Context) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("metrics")
        .and(warp::get())
        .and(warp::header::optional::<String>("accept"))
        .and(with(ctx))
        .and_then(handlers::metrics)
}

/// GET /probe?target=HOST[:PORT]&reverse=&bidir=&udp=&bitrate=&duration=&streams=&length=
pub fn probe(ctx: Context) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("probe")
        .and(warp::get())
        .and(warp::query::<Vec<(String, String)>>())
        .and(warp::header::optional::<String>(
            "x-prometheus-scrape-timeout-seconds",
        ))
        .and(warp::header::optional::<String>("sec-fetch-site"))
        .and(warp::ext::optional::<ConnInfo>())
        .and(with(ctx))
        .and_then(super::probe::probe)
}

/// GET /ws (websocket upgrade)
pub fn websocket(ctx: Context) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("ws")
        .and(warp::get())
        .and(warp::ws())
        .and(same_origin())
        .and(peer())
        .and(with(ctx))
        .map(handlers::websocket)
}

/// Passes requests whose `Host` names this dashboard; others are refused
/// (421) before any route sees them.
fn known_host(ctx: Context) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("host")
        .and(with(ctx))
        .and_then(handlers::known_host)
        .untuple_one()
}

/// Passes requests with no `Origin` or the page's own; others are refused
/// (403).
fn same_origin() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("origin")
        .and(warp::header::optional::<String>("host"))
        .and_then(handlers::same_origin)
        .untuple_one()
}

/// The client's address, when the request came through the accept loop.
fn peer() -> impl Filter<Extract = (Option<IpAddr>,), Error = Infallible> + Clone {
    warp::ext::optional::<ConnInfo>()
        .map(|c: Option<ConnInfo>| c.map(|c| c.peer.ip().to_canonical()))
}

fn with(ctx: Context) -> impl Filter<Extract = (Context,), Error = Infallible> + Clone {
    warp::any().map(move || ctx.clone())
}

fn if_none_match() -> impl Filter<Extract = (Option<String>,), Error = Infallible> + Clone {
    warp::header::optional::<String>("if-none-match")
        .or_else(|_| async { Ok::<_, Infallible>((None,)) })
}
