//! The serde types of the HTTP API that are not the hub's own: query strings,
//! error bodies and the `/table` rows. Result objects and status are
//! [`crate::hub::TestResult`] and [`crate::hub::Status`].

use serde::{Deserialize, Serialize};

use crate::hub::{ResultFilter, TestResult};

/// The query of `GET /api/results`: `port=`, `name=`, `since=` (unix seconds).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultsQuery {
    /// Only this port.
    pub port: Option<u16>,
    /// Only this exact name.
    pub name: Option<String>,
    /// Only tests started at or after this time.
    pub since: Option<f64>,
}

impl ResultsQuery {
    /// The hub filter for this query; `Err` names what is wrong with it.
    pub fn into_filter(self) -> Result<ResultFilter, String> {
        if let Some(since) = self.since {
            if !since.is_finite() {
                return Err(format!(
                    "since must be a number of unix seconds, not {since}"
                ));
            }
        }
        Ok(ResultFilter {
            port: self.port,
            name: self.name,
            since: self.since,
        })
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
