//! The configuration the program runs with, as plain values: what
//! [`crate::cli`] produces from the command line and [`crate::app`] consumes.
//! No parsing, no validation and no I/O here (that is the command line's
//! job), and nothing from the layers above: the server and the dashboard
//! import their settings from here, not the other way round.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::protocol::policy::Policy;
use crate::protocol::session::Limits;
use crate::store::rotate::Retention;

/// The dashboard's port when no `--http` address is given.
pub const DEFAULT_HTTP_PORT: u16 = 8080;

/// A request's header must arrive within this time after the connection
/// (or its previous request) is ready; idle keep-alive connections close
/// after it too.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(20);

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
    /// How big logs grow and how many rotated copies are kept.
    pub retention: Retention,
}

/// What the dashboard's HTTP side is configured with.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// When set, `POST /api/clear` requires `Authorization: Bearer <token>`.
    pub clear_token: Option<String>,
    /// The deadline on a request's header ([`HEADER_TIMEOUT`]).
    pub header_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            clear_token: None,
            header_timeout: HEADER_TIMEOUT,
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
