//! What is sent where, with no I/O: a `--forward` URL parsed into a
//! [`Target`], the JSON document queued for each recorded test, the body a
//! target gets (as queued, or Loki's push format), and the back-off between
//! attempts (its randomness is a parameter).

use std::time::Duration;

use serde_json::{json, Value};
use thiserror::Error;

use crate::analysis::test_result::TestResult;

/// Why a `--forward` URL cannot be used.
#[derive(Debug, Error, PartialEq)]
pub enum TargetError {
    /// The scheme is neither `http://` nor `loki+http://`.
    #[error("--forward {0}: the URL must start with http:// or loki+http:// (https: put a TLS proxy on the receiving side)")]
    Scheme(String),
    /// No host after the scheme, a bad port, or user information in the URL.
    #[error("--forward {0}: expected http://HOST[:PORT][/PATH]")]
    Authority(String),
}

/// How the receiver wants the test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The queued document as it is, `POST`ed as JSON.
    Json,
    /// Loki's push API (`/loki/api/v1/push`), one stream entry per test.
    Loki,
}

/// One receiver, from a `--forward` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL as typed (shown in the status and as a metrics label).
    pub url: String,
    /// JSON or Loki.
    pub kind: Kind,
    /// `host:port` to connect to and send as `Host`.
    pub authority: String,
    /// The request path (with query), starting with `/`.
    pub path: String,
}

/// The Loki push API's path.
pub const LOKI_PATH: &str = "/loki/api/v1/push";

impl Target {
    /// Parses `http://host[:port][/path]` or `loki+http://host[:port][/prefix]`.
    pub fn parse(url: &str) -> Result<Target, TargetError> {
        let (kind, rest) = if let Some(rest) = url.strip_prefix("http://") {
            (Kind::Json, rest)
        } else if let Some(rest) = url.strip_prefix("loki+http://") {
            (Kind::Loki, rest)
        } else {
            return Err(TargetError::Scheme(url.to_string()));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let bad = || TargetError::Authority(url.to_string());
        if authority.is_empty() || authority.contains('@') {
            return Err(bad());
        }
        // `[v6]:port`, `host:port` or a bare host (port 80).
        let has_port = match authority.rfind(':') {
            Some(i) if !authority[i..].contains(']') => {
                authority[i + 1..].parse::<u16>().map_err(|_| bad())?;
                true
            }
            _ => false,
        };
        let authority = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let path = match kind {
            Kind::Json if path.is_empty() => "/".to_string(),
            Kind::Json => path.to_string(),
            Kind::Loki => format!("{}{LOKI_PATH}", path.trim_end_matches('/')),
        };
        Ok(Target {
            url: url.to_string(),
            kind,
            authority,
            path,
        })
    }

    /// The directory name of this target's queue: stable for the same URL
    /// across restarts (FNV-1a of the URL, so any URL makes a safe name).
    pub fn queue_name(&self) -> String {
        format!("{:016x}", fnv1a(self.url.as_bytes()))
    }

    /// The request body for a queued `document`.
    pub fn body(&self, document: &Value) -> Vec<u8> {
        match self.kind {
            Kind::Json => serde_json::to_vec(document).unwrap_or_default(),
            Kind::Loki => serde_json::to_vec(&loki_push(document)).unwrap_or_default(),
        }
    }
}

/// FNV-1a, 64 bits.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The document queued for one recorded test:
/// `{"host", "id", "result", "entry"}`. A result without an id (a store that
/// does not name tests) gets one from its port, start time and entry.
pub fn document(host: &str, result: &TestResult, entry: &Value) -> Value {
    let id = if result.id.is_empty() {
        let text = serde_json::to_vec(entry).unwrap_or_default();
        format!("{}-{}-{:016x}", result.port, result.timestamp, fnv1a(&text))
    } else {
        result.id.clone()
    };
    json!({"host": host, "id": id, "result": result, "entry": entry})
}

/// The `Idempotency-Key` of a queued document: `<host>/<id>`.
pub fn idempotency_key(document: &Value) -> String {
    let text = |k: &str| document.get(k).and_then(Value::as_str).unwrap_or("");
    format!("{}/{}", text("host"), text("id"))
}

/// Loki's push body for one queued document: one stream labelled
/// `{job="webperf3", host, port, protocol}` holding one line, the result
/// object, at the test's start time.
pub fn loki_push(document: &Value) -> Value {
    let result = document.get("result").cloned().unwrap_or(Value::Null);
    let host = document.get("host").and_then(Value::as_str).unwrap_or("");
    let port = result.get("port").and_then(Value::as_u64).unwrap_or(0);
    let protocol = result.get("protocol").and_then(Value::as_str).unwrap_or("");
    let seconds = result.get("timestamp").and_then(Value::as_i64).unwrap_or(0);
    let nanos = i128::from(seconds) * 1_000_000_000;
    json!({"streams": [{
        "stream": {"job": "webperf3", "host": host, "port": port.to_string(), "protocol": protocol},
        "values": [[nanos.to_string(), result.to_string()]],
    }]})
}

/// Whether an answer `status` refuses the test for good, so that sending
/// it again cannot help: a 4xx other than 408 (timeout) and 429 (too many
/// requests), e.g. Loki's 400 for a line it will not take. Anything else
/// that is not 2xx is retried.
pub fn refused_for_good(status: u16) -> bool {
    (400..500).contains(&status) && status != 408 && status != 429
}

/// The first wait after a failure.
pub const BACKOFF_BASE: Duration = Duration::from_millis(500);

/// How long to wait after `failures` failed attempts in a row: doubling from
/// [`BACKOFF_BASE`] up to `cap`, the upper half of it random ("equal
/// jitter", `unit` in `[0, 1)`), so that boxes that lost the same receiver do
/// not all come back at the same moment.
pub fn backoff(failures: u32, cap: Duration, unit: f64) -> Duration {
    let full = BACKOFF_BASE
        .saturating_mul(1u32 << failures.min(30))
        .min(cap);
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    full / 2 + (full / 2).mul_f64(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("http://collector.lan:8000/ingest?x=1").unwrap();
        assert_eq!(t.kind, Kind::Json);
        assert_eq!(t.authority, "collector.lan:8000");
        assert_eq!(t.path, "/ingest?x=1");
        let t = Target::parse("http://10.0.0.1").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("10.0.0.1:80", "/")
        );
        let t = Target::parse("loki+http://[fd00::1]:3100").unwrap();
        assert_eq!(t.kind, Kind::Loki);
        assert_eq!(t.authority, "[fd00::1]:3100");
        assert_eq!(t.path, LOKI_PATH);
        let t = Target::parse("loki+http://[fd00::1]").unwrap();
        assert_eq!(t.authority, "[fd00::1]:80");
        assert!(matches!(
            Target::parse("https://x"),
            Err(TargetError::Scheme(_))
        ));
        assert!(matches!(
            Target::parse("http://u:p@x/"),
            Err(TargetError::Authority(_))
        ));
        assert!(matches!(
            Target::parse("http://x:99999/"),
            Err(TargetError::Authority(_))
        ));
        assert!(matches!(
            Target::parse("http:///"),
            Err(TargetError::Authority(_))
        ));
        assert_ne!(
            Target::parse("http://a/").unwrap().queue_name(),
            Target::parse("http://b/").unwrap().queue_name()
        );
    }

    #[test]
    fn loki_body() {
        let result = TestResult {
            id: "5201-1700000000-0".into(),
            name: Some("alice".into()),
            ..crate::history::results_store::tests::result(5201, 1_700_000_000)
        };
        let doc = document("pi1", &result, &json!({"start": {}}));
        assert_eq!(idempotency_key(&doc), "pi1/5201-1700000000-0");
        let body: Value =
            serde_json::from_slice(&Target::parse("loki+http://l:3100").unwrap().body(&doc))
                .unwrap();
        let stream = &body["streams"][0];
        assert_eq!(
            stream["stream"],
            json!({"job": "webperf3", "host": "pi1", "port": "5201", "protocol": "TCP"})
        );
        assert_eq!(stream["values"][0][0], "1700000000000000000");
        let line: Value = serde_json::from_str(stream["values"][0][1].as_str().unwrap()).unwrap();
        assert_eq!(line["name"], "alice");
        assert_eq!(line["receive_bps"], 1e9);
    }

    #[test]
    fn a_missing_id_is_derived_stably() {
        let result = crate::history::results_store::tests::result(5202, 42);
        let a = document("h", &result, &json!({"a": 1}));
        let b = document("h", &result, &json!({"a": 1}));
        let c = document("h", &result, &json!({"a": 2}));
        assert_eq!(a["id"], b["id"]);
        assert_ne!(a["id"], c["id"]);
        assert!(a["id"].as_str().unwrap().starts_with("5202-42-"));
    }

    #[test]
    fn only_a_4xx_other_than_408_and_429_is_for_good() {
        for status in [400, 401, 403, 404, 413, 422, 499] {
            assert!(refused_for_good(status), "{status}");
        }
        for status in [200, 301, 399, 408, 429, 500, 502, 503] {
            assert!(!refused_for_good(status), "{status}");
        }
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter_in_the_upper_half() {
        let cap = Duration::from_secs(60);
        assert_eq!(backoff(0, cap, 0.0), Duration::from_millis(250));
        assert_eq!(backoff(0, cap, 1.0), Duration::from_millis(500));
        assert_eq!(backoff(3, cap, 0.0), Duration::from_secs(2));
        assert_eq!(backoff(20, cap, 0.0), Duration::from_secs(30));
        assert_eq!(backoff(u32::MAX, cap, 0.999), backoff(40, cap, 0.999));
        assert!(backoff(40, cap, 0.999) <= cap);
        assert_eq!(backoff(2, cap, f64::NAN), Duration::from_secs(1));
    }
}
