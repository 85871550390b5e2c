//! The `curl` command as an HTTPS and HTTP/2 client: one request, its
//! status, the HTTP version it spoke and the bytes it moved, as curl's
//! `--write-out` reports them.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::process::run_bounded;
use super::tools;

/// The `curl` binary, or a failure saying how to install it.
pub fn require() -> PathBuf {
    tools::require("curl", &["curl"], "curl")
}

/// What one curl run reported.
#[derive(Debug)]
pub struct Fetched {
    /// curl's exit code (28: `--max-time` passed).
    pub exit: Option<i32>,
    /// The HTTP status.
    pub status: u16,
    /// `1.1` or `2`.
    pub version: String,
    /// Bytes of the response body.
    pub downloaded: u64,
    /// Bytes of the request body.
    pub uploaded: u64,
    /// The body (when not sent to /dev/null).
    pub body: String,
}

const MARK: &str = "\n--curl--";

/// Runs curl with `args` (the URL among them), silent, bounded by
/// `limit`, its body kept unless `args` sends it elsewhere (`-o`).
pub fn fetch(args: &[&str], limit: Duration) -> Fetched {
    let format =
        format!("{MARK}%{{http_code}} %{{http_version}} %{{size_download}} %{{size_upload}}");
    let out = run_bounded(
        Command::new(require())
            .args(["-s", "-S", "-w", &format])
            .args(args),
        limit,
    )
    .unwrap_or_else(|e| panic!("curl {args:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = stdout
        .rsplit_once(MARK)
        .unwrap_or_else(|| panic!("curl {args:?} wrote no report: {stdout} {:?}", out.stderr));
    let mut fields = tail.split_whitespace();
    let mut next = || fields.next().unwrap_or_default().to_string();
    Fetched {
        exit: out.status.code(),
        status: next().parse().unwrap_or(0),
        version: next(),
        downloaded: next().parse().unwrap_or(0),
        uploaded: next().parse().unwrap_or(0),
        body: body.to_string(),
    }
}
