//! The configuration the program runs with, as plain values: what
//! [`crate::cli`] produces from the command line and [`crate::app`] consumes.
//! No parsing, no validation and no I/O here (that is the command line's
//! job), and nothing from the layers above: the server and the dashboard
//! import their settings from here, not the other way round.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::protocol::policy::{AllowList, Policy};
use crate::protocol::probe_policy::{ProbeAllow, ProbeLimits};
use crate::protocol::probe_schedule::Schedule;
use crate::protocol::session::Limits;

/// The dashboard's port when no `--http` address is given.
pub const DEFAULT_HTTP_PORT: u16 = 8080;

/// The HTTPS listener's port when no `--https` address is given.
pub const DEFAULT_HTTPS_PORT: u16 = 8443;

/// A request's header must arrive within this time after the connection
/// (or its previous request) is ready; idle keep-alive connections close
/// after it too.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(20);

/// A dashboard client that takes nothing of a reply (or websocket message)
/// for this long is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the dashboard pings websocket clients (a client silent for
/// three pings is dropped).
pub const WS_PING: Duration = Duration::from_secs(20);

/// The validated configuration of a run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The iperf3 ports, consecutive, in order; `[0]` asks for one port of
    /// the kernel's choosing (the bound listener then names it).
    pub ports: Vec<u16>,
    /// Address for the iperf3 listeners; `None` = dual-stack `::` (or
    /// `0.0.0.0` where IPv6 is unavailable).
    pub bind: Option<IpAddr>,
    /// Dashboard address; `None` = the default (`[::]:8080` dual-stack, or
    /// `0.0.0.0:8080`).
    pub http: Option<SocketAddr>,
    /// The HTTPS listener (`--https`); `None` with `--no-https` (or in a
    /// build without the `https` feature).
    pub https: Option<HttpsConfig>,
    /// Where `port-<PORT>.json` files live.
    pub log_dir: PathBuf,
    /// Protocol timing limits.
    pub limits: Limits,
    /// Authentication, when required: where the key and users file are.
    pub auth: Option<AuthConfig>,
    /// The dashboard's settings (the clear token).
    pub http_settings: HttpSettings,
    /// Tests per port at the same time.
    pub max_tests_per_port: usize,
    /// What tests may do.
    pub policy: Policy,
    /// Re-create an idle listener after this long.
    pub idle_timeout: Option<Duration>,
    /// Copy test data as stock does (`--copy`) instead of moving it
    /// without copying.
    pub copy: bool,
    /// How sending TCP streams move bytes (`--send-method`).
    pub send_method: crate::send_method::SendSetting,
    /// How big logs grow and how many rotated copies are kept.
    pub retention: Retention,
    /// Where recorded tests are forwarded (`--forward`), and the queue's bounds.
    pub forward: ForwardConfig,
}

/// How big a log may grow before it is rotated when none is given: small
/// next to any SD card (six files of it, the live one and five rotated, are
/// under 400 MB per port), and big enough for about 7,000 ten-second tests
/// per file (40,000 per port with the copies), years of tests on a home
/// network, whose history still loads in seconds on a Pi.
pub const DEFAULT_MAX_LOG_SIZE: u64 = 64 * 1024 * 1024;

/// Rotated copies kept when none is given.
pub const DEFAULT_KEEP_ROTATED: u32 = 5;

/// What is kept of a log (`--max-log-size`, `--keep-rotated`): how big
/// it may grow and how many rotated copies are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// A log that would grow past this many bytes is rotated first (`None`:
    /// never).
    pub max_size: Option<u64>,
    /// Rotated copies kept; older ones are deleted.
    pub keep: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_size: Some(DEFAULT_MAX_LOG_SIZE),
            keep: DEFAULT_KEEP_ROTATED,
        }
    }
}

impl Retention {
    /// Whether a log of `size` bytes must be rotated before `adding` more.
    /// An empty log never is (an entry bigger than the limit still goes in).
    pub fn must_rotate(&self, size: u64, adding: u64) -> bool {
        self.max_size
            .is_some_and(|max| size > 0 && size.saturating_add(adding) > max)
    }
}

/// The HTTPS listener: where, and with which certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsConfig {
    /// `--https ADDR:PORT`; `None` = the default (`[::]:8443` dual-stack,
    /// or `0.0.0.0:8443`), which only warns when the port is taken.
    pub addr: Option<SocketAddr>,
    /// PEM certificate chain and private key (`--tls-cert`, `--tls-key`);
    /// `None` = a self-signed one kept in the log directory.
    pub cert: Option<(PathBuf, PathBuf)>,
}

/// Forwarding of recorded tests (`--forward URL`, repeatable).
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardConfig {
    /// Receivers, as typed: `http://host[:port]/path` (JSON POST) or
    /// `loki+http://host[:port]` (Loki's push API). Empty: no forwarding.
    pub urls: Vec<String>,
    /// The `host` member of what is sent; the machine's host name by default.
    pub host: Option<String>,
    /// Queued tests older than this are dropped unsent (`--forward-max-age`).
    pub max_age: Duration,
    /// Most tests waiting per receiver (`--forward-max-queue`).
    pub max_count: usize,
    /// Most bytes waiting per receiver (`--forward-max-bytes`).
    pub max_bytes: u64,
    /// The longest wait between two attempts (`--forward-retry-max`).
    pub retry_max: Duration,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        ForwardConfig {
            urls: Vec::new(),
            host: None,
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_count: 10_000,
            max_bytes: 256 * 1024 * 1024,
            retry_max: Duration::from_secs(300),
        }
    }
}

/// What the dashboard's HTTP side is configured with.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// When set, `POST /api/clear` requires `Authorization: Bearer <token>`.
    pub clear_token: Option<String>,
    /// The deadline on a request's header ([`HEADER_TIMEOUT`]).
    pub header_timeout: Duration,
    /// The deadline on a write that makes no progress ([`WRITE_TIMEOUT`]).
    pub write_timeout: Duration,
    /// How often websocket clients are pinged ([`WS_PING`]).
    pub ws_ping: Duration,
    /// Host names the dashboard answers to besides IP literals, `localhost`
    /// and the machine's own names (`--http-host`).
    pub hosts: Vec<String>,
    /// The ndt7 speed test on the dashboard's port.
    pub ndt7: Ndt7Settings,
    /// `GET /probe`: the targets allowed (none: off) and the limits.
    pub probe: ProbeSettings,
    /// The responsiveness endpoints (`/.well-known/nq`, `/nq/...`).
    pub nq: NqSettings,
}

/// Large downloads and uploads of the responsiveness endpoints running at
/// once by default (an RPM client opens a dozen or more).
pub const DEFAULT_NQ_TRANSFERS: usize = 32;

/// The longest large download or upload of the responsiveness endpoints
/// (an RPM client's test takes about 20 seconds).
pub const NQ_MAX_TIME: Duration = Duration::from_secs(30);

/// The responsiveness endpoints' settings; who may use them is `--allow`,
/// as for ndt7.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NqSettings {
    /// Whether they are served (`--no-nq` turns them off: 404).
    pub enabled: bool,
    /// Large downloads and uploads at once; one more is answered 503.
    pub max_transfers: usize,
    /// The longest a large download or an upload may last.
    pub max_time: Duration,
}

impl Default for NqSettings {
    fn default() -> Self {
        NqSettings {
            enabled: true,
            max_transfers: DEFAULT_NQ_TRANSFERS,
            max_time: NQ_MAX_TIME,
        }
    }
}

/// What `GET /probe` may do (`--probe-allow`, `--probe-max-duration`,
/// `--probe-max-bitrate`); who may ask is `--allow`, as for ndt7. The
/// schedules of `--probe-every`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProbeSettings {
    /// The targets allowed; none turns probes off.
    pub allow: ProbeAllow,
    /// The longest probe and its highest total bitrate.
    pub limits: ProbeLimits,
    /// `--probe-every`: probes the box runs on its own schedule.
    pub every: Vec<Schedule>,
    /// The box's name (as forwarding names it), which spreads the
    /// schedules of a mesh apart.
    pub box_name: String,
}

/// ndt7 subtests running at once by default.
pub const DEFAULT_NDT7_TESTS: usize = 2;

/// The ndt7 speed test's settings.
#[derive(Debug, Clone)]
pub struct Ndt7Settings {
    /// Whether `/ndt/v7/*` is served (`--no-ndt7` turns it off: 404).
    pub enabled: bool,
    /// Subtests at once; one more is answered 503 before the upgrade.
    pub max_tests: usize,
    /// Client networks allowed (`--allow`, as for the iperf3 ports).
    pub allow: AllowList,
}

impl Default for Ndt7Settings {
    fn default() -> Self {
        Ndt7Settings {
            enabled: true,
            max_tests: DEFAULT_NDT7_TESTS,
            allow: AllowList::default(),
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            clear_token: None,
            header_timeout: HEADER_TIMEOUT,
            write_timeout: WRITE_TIMEOUT,
            ws_ping: WS_PING,
            hosts: Vec::new(),
            ndt7: Ndt7Settings::default(),
            probe: ProbeSettings::default(),
            nq: NqSettings::default(),
        }
    }
}

/// RSA padding of the `authtoken`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// OAEP with SHA-1 and MGF1-SHA-1: what 3.17+ clients send.
    Oaep,
    /// PKCS#1 v1.5: what 3.7–3.16 clients send. Opt-in: it is the padding
    /// Bleichenbacher-style oracle attacks work against.
    Pkcs1,
}

/// Where the key and users file are and how to check tokens (from the
/// command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// PEM RSA private key (`--rsa-private-key-path`).
    pub key_path: PathBuf,
    /// Authorized users (`--authorized-users-path`).
    pub users_path: PathBuf,
    /// Padding the clients use.
    pub padding: Padding,
    /// Largest allowed clock difference, seconds (`--time-skew-threshold`).
    pub skew: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        let r = Retention {
            max_size: Some(100),
            keep: 2,
        };
        assert!(!r.must_rotate(0, 500));
        assert!(!r.must_rotate(50, 50));
        assert!(r.must_rotate(50, 51));
        let never = Retention {
            max_size: None,
            keep: 2,
        };
        assert!(!never.must_rotate(u64::MAX, 1));
    }
}
