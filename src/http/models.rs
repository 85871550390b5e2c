//! The serde types of the HTTP API that are not the hub's own: query strings,
//! error bodies and the `/table` rows. Result objects and status are
//! [`crate::hub::TestResult`] and [`crate::hub::Status`].

use serde::{Deserialize, Serialize};

use crate::history::ids::TestId;
use crate::history::kinds::Kind;
use crate::history::query::Page;
use crate::hub::{ResultFilter, TestResult};

/// The query of `GET /api/results` and `GET /api/history/buckets`: the
/// filters `port=`, `name=` (exact), `name_part=` (any part of a name,
/// any case), `since=`, `until=` (unix seconds),
/// `protocol=` (TCP, UDP, ndt7), `family=` (4, 6), `kind=` (tcp, udp,
/// ndt7, probe); `limit=` and `before=`
/// (an id) for a page of results; `buckets=` for the buckets.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultsQuery {
    /// Only this port.
    pub port: Option<u16>,
    /// Only this exact name.
    pub name: Option<String>,
    /// Only names holding this text (any case).
    pub name_part: Option<String>,
    /// Only tests started at or after this time.
    pub since: Option<f64>,
    /// Only tests started at or before this time.
    pub until: Option<f64>,
    /// Only this protocol.
    pub protocol: Option<String>,
    /// Only clients of this address family.
    pub family: Option<u8>,
    /// Only tests of this kind: `tcp`, `udp`, `ndt7`, `probe`.
    pub kind: Option<String>,
    /// The most recent this many.
    pub limit: Option<usize>,
    /// Only tests before this one.
    pub before: Option<String>,
    /// How many spans of time (buckets route only).
    pub buckets: Option<usize>,
}

/// The most results one page may ask for.
pub const MAX_LIMIT: usize = 10_000;

/// The most buckets one request may ask for.
pub const MAX_BUCKETS: usize = 2_000;

/// Buckets when the query names no number.
pub const DEFAULT_BUCKETS: usize = 100;

impl ResultsQuery {
    /// The filter of this query; `Err` names what is wrong with it.
    pub fn filter(&self) -> Result<ResultFilter, String> {
        for (what, value) in [("since", self.since), ("until", self.until)] {
            if value.is_some_and(|v| !v.is_finite()) {
                return Err(format!(
                    "{what} must be a number of unix seconds, not {}",
                    value.unwrap_or_default()
                ));
            }
        }
        if let Some(p) = &self.protocol {
            if !["tcp", "udp", "ndt7"].contains(&p.to_ascii_lowercase().as_str()) {
                return Err("protocol must be TCP, UDP or ndt7".into());
            }
        }
        if self.family.is_some_and(|f| f != 4 && f != 6) {
            return Err("family must be 4 or 6".into());
        }
        let kind = match &self.kind {
            Some(k) => Some(Kind::parse(k).ok_or("kind must be tcp, udp, ndt7 or probe")?),
            None => None,
        };
        Ok(ResultFilter {
            port: self.port,
            name: self.name.clone(),
            name_part: self.name_part.clone(),
            since: self.since,
            until: self.until,
            protocol: self.protocol.clone(),
            family: self.family,
            kind,
        })
    }

    /// The page `limit=` and `before=` ask for (`None`: every test);
    /// `Err` names what is wrong with the query.
    pub fn page(&self) -> Result<Option<Page>, String> {
        let filter = self.filter()?;
        if self.buckets.is_some() {
            return Err("buckets= is for /api/history/buckets".into());
        }
        let before = match &self.before {
            Some(id) => {
                Some(TestId::parse(id).ok_or_else(|| format!("before: {id:?} is not a test id"))?)
            }
            None => None,
        };
        match self.limit {
            None if before.is_some() => Err("before= needs limit=".into()),
            None => Ok(None),
            Some(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(Some(Page {
                filter,
                limit,
                before,
            })),
            Some(limit) => Err(format!("limit must be 1 to {MAX_LIMIT}, not {limit}")),
        }
    }

    /// The filter and number of buckets; `Err` names what is wrong.
    pub fn buckets(&self) -> Result<(ResultFilter, usize), String> {
        let filter = self.filter()?;
        if self.limit.is_some() || self.before.is_some() {
            return Err("limit= and before= are for /api/results".into());
        }
        match self.buckets.unwrap_or(DEFAULT_BUCKETS) {
            n @ 1..=MAX_BUCKETS => Ok((filter, n)),
            n => Err(format!("buckets must be 1 to {MAX_BUCKETS}, not {n}")),
        }
    }
}

/// The body of every error answer: `{"error": "...", "status": 404}`.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
    /// The HTTP status code, repeated for scripts that only see the body.
    pub status: u16,
}

/// One `/table` row: `[timestamp, send_bps, receive_bps, name]`.
pub type TableRow = (i64, Option<f64>, Option<f64>, Option<String>);

/// The `/table` row of a port's latest result.
pub fn table_row(result: &TestResult) -> TableRow {
    (
        result.timestamp,
        result.send_bps,
        result.receive_bps,
        result.name.clone(),
    )
}

/// A JSON error `{"error": "...", "status": N}` with that status.
pub fn error_reply(
    status: warp::http::StatusCode,
    message: impl Into<String>,
) -> warp::reply::Response {
    let body = ErrorBody {
        error: message.into(),
        status: status.as_u16(),
    };
    warp::Reply::into_response(warp::reply::with_status(warp::reply::json(&body), status))
}
