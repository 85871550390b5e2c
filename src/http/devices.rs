//! `GET /api/devices`: each name's tests side by side, or one device with
//! its per-day series (`?name=`, `&days=`). The figures are the store's
//! ([`crate::history::devices`]); this is the route's query and answer.
//! Worked out on the blocking pool, at most [`AT_ONCE`] at a time (others
//! wait their turn), so the memory the medians take is bounded however
//! many ask.

use serde::Deserialize;
use tokio::sync::Semaphore;
use warp::{Filter, Rejection, Reply};

use super::compress;
use super::handlers::{BadQuery, Internal};
use super::Context;
use crate::history::devices::{Which, MAX_DAYS};

/// Device answers worked out at once.
pub const AT_ONCE: usize = 2;

/// Days of a device's series when the query names no number.
pub const DEFAULT_DAYS: u32 = 30;

static SLOTS: Semaphore = Semaphore::const_new(AT_ONCE);

/// The query of `GET /api/devices`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicesQuery {
    /// One device, by its exact name.
    pub name: Option<String>,
    /// Days of its series (with `name=`), 1 to [`MAX_DAYS`].
    pub days: Option<u32>,
}

impl DevicesQuery {
    /// What the query asks for; `Err` names what is wrong with it.
    pub fn which(&self) -> Result<Which, String> {
        match (&self.name, self.days) {
            (None, Some(_)) => Err("days= needs name=".into()),
            (None, None) => Ok(Which::All),
            (Some(name), days) => match days.unwrap_or(DEFAULT_DAYS) {
                d @ 1..=MAX_DAYS => Ok(Which::One(name.clone(), d)),
                d => Err(format!("days must be 1 to {MAX_DAYS}, not {d}")),
            },
        }
    }
}

/// GET /api/devices?name=&days=
pub fn route(ctx: Context) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "devices")
        .and(warp::get())
        .and(warp::query::<DevicesQuery>())
        .and(compress::accept_encoding())
        .and(warp::any().map(move || ctx.clone()))
        .and_then(devices)
}

/// Every name's figures, or the one asked for (404 if it has no test).
async fn devices(
    query: DevicesQuery,
    accept_encoding: Option<String>,
    ctx: Context,
) -> Result<warp::reply::Response, Rejection> {
    let which = query
        .which()
        .map_err(|e| warp::reject::custom(BadQuery(e)))?;
    let _slot = SLOTS
        .acquire()
        .await
        .map_err(|e| warp::reject::custom(Internal(format!("devices: {e}"))))?;
    let hub = ctx.hub.clone();
    let asked = which.clone();
    let now = chrono::Utc::now().timestamp();
    let mut found =
        tokio::task::spawn_blocking(move || hub.with_store(|store, _| store.devices(&asked, now)))
            .await
            .map_err(|e| warp::reject::custom(Internal(format!("devices failed: {e}"))))?;
    Ok(match which {
        Which::All => compress::json(&found, accept_encoding.as_deref()),
        Which::One(name, _) => match found.pop() {
            Some(device) => compress::json(&device, accept_encoding.as_deref()),
            None => super::handlers::error_reply(
                warp::http::StatusCode::NOT_FOUND,
                format!("no test is named {name:?}"),
            ),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_checked() {
        let q = |name: Option<&str>, days| DevicesQuery {
            name: name.map(str::to_string),
            days,
        };
        assert_eq!(q(None, None).which(), Ok(Which::All));
        assert_eq!(
            q(Some("a"), None).which(),
            Ok(Which::One("a".into(), DEFAULT_DAYS))
        );
        assert!(q(None, Some(3)).which().is_err());
        assert!(q(Some("a"), Some(0)).which().is_err());
        assert!(q(Some("a"), Some(MAX_DAYS + 1)).which().is_err());
    }
}
