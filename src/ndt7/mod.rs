//! M-Lab's ndt7 speed test (ndt-server's `spec/ndt7-protocol.md`), the parts
//! with no sockets and no clock reads: how big the download's binary
//! messages are ([`size`]), when a subtest measures and ends ([`subtest`],
//! time is a parameter), the measurement messages ([`measurement`]) and the
//! result document of `spec/data-format.md` ([`record`]), and the latency
//! of a speed-test run measured beside its subtests ([`latency`]).
//!
//! The websocket glue that drives these is `crate::http::ndt7`; the log file
//! of finished subtests is `crate::store::ndt7_log`.

pub mod latency;
pub mod measurement;
pub mod record;
pub mod size;
pub mod subtest;

use std::time::Duration;

/// The websocket subprotocol a client must ask for (and the server answers).
pub const SUBPROTOCOL: &str = "net.measurementlab.ndt.v7";

/// The download route.
pub const DOWNLOAD_PATH: &str = "/ndt/v7/download";

/// The upload route.
pub const UPLOAD_PATH: &str = "/ndt/v7/upload";

/// Smallest binary message the spec allows, bytes (2^10).
pub const MIN_MESSAGE_SIZE: usize = 1 << 10;

/// The first binary message size the server sends, bytes (2^13).
pub const INITIAL_MESSAGE_SIZE: usize = 1 << 13;

/// Largest websocket message either side may send, bytes (2^24); a bigger
/// one from a client ends the subtest as a failure.
pub const MAX_MESSAGE_SIZE: usize = 1 << 24;

/// How long a subtest runs, counted from the end of the handshake.
pub const DURATION: Duration = Duration::from_secs(10);

/// After this long a subtest's connection is closed whatever the peer does
/// (the spec allows closing after 13 s; the slack is for the closing
/// handshake of a slow peer).
pub const HARD_LIMIT: Duration = Duration::from_secs(15);

/// How often the server sends (and records) a measurement message.
pub const MEASUREMENT_INTERVAL: Duration = Duration::from_millis(250);

/// Measurements kept per side and subtest: one per interval over the hard
/// limit. More from a client are dropped (the spec allows discarding them).
pub const MAX_MEASUREMENTS: usize = 60;

/// A client text message longer than this is not kept as a measurement.
pub const MAX_CLIENT_MEASUREMENT: usize = 8 * 1024;

/// A client measurement nested deeper than this (the object itself is one
/// level) is not kept: M-Lab's clients send two levels. It keeps every
/// logged document far inside what JSON readers accept (serde_json: 128).
pub const MAX_CLIENT_DEPTH: usize = 8;

/// Bytes the kept client measurements of one subtest may take in the
/// logged document, counted as it prints them (indentation included); one
/// that does not fit is not kept. Sixty of M-Lab's take about 12 KiB.
pub const MAX_CLIENT_LOGGED: usize = 128 * 1024;

/// Bytes a subtest may move: it ends (normally) when they are reached, so
/// no client keeps the box busy beyond a bounded amount of traffic.
pub const MAX_BYTES: u64 = 64 << 30;

/// The query string a client may send, bytes (the spec's limit).
pub const MAX_QUERY: usize = 4096;

/// Which of the two subtests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The server sends.
    Download,
    /// The client sends.
    Upload,
}

impl Kind {
    /// `"download"` or `"upload"`, as in the measurement's `Test` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Download => "download",
            Kind::Upload => "upload",
        }
    }
}
