//! The command line: clap definitions, validated once into a ready-to-use
//! [`Config`]. Nothing here touches the network or the disk, and nothing is
//! printed: [`parse`] hands back a [`UsageError`] and `main` says it.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use thiserror::Error;

use crate::config::{
    AuthConfig, Config, ForwardConfig, HttpSettings, HttpsConfig, Ndt7Settings, NqSettings,
    Padding, ProbeSettings, DEFAULT_NQ_TRANSFERS,
};
use crate::config::{Retention, DEFAULT_KEEP_ROTATED, DEFAULT_MAX_LOG_SIZE};
use crate::forward::target::Target;
use crate::protocol::auth::DEFAULT_SKEW_SECS;
use crate::protocol::policy::DEFAULT_TESTS_PER_MINUTE;
use crate::protocol::policy::{AllowList, BitrateLimit, Policy};
use crate::protocol::probe_policy::{
    ProbeAllow, ProbeLimits, DEFAULT_MAX_BITRATE, DEFAULT_MAX_DURATION,
};
use crate::protocol::probe_schedule::Schedule;
use crate::protocol::session::Limits;
use crate::send_method::{SendMethod, SendSetting};

/// Command-line arguments as the user typed them.
#[derive(Debug, Parser)]
#[command(
    name = "webperf3",
    version,
    about = "iperf3-compatible test server with a live web dashboard",
    long_about = "Runs N iperf3 servers on consecutive ports and a web dashboard. \
Point stock clients at it (iperf3 -c HOST --extra-data NAME); every test is \
appended to <log-dir>/port-<PORT>.json in stock iperf3 --json --logfile format."
)]
pub struct Args {
    /// Number of iperf3 servers, on consecutive ports.
    #[arg(short = 'n', long = "servers", default_value_t = 4, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub servers: u16,

    /// First iperf3 port; 0 (with --servers 1) takes any free port, named
    /// in the start-up line.
    #[arg(
        short = 'p',
        long = "port",
        default_value_t = 5201,
        value_name = "PORT"
    )]
    pub port: u16,

    /// Address the iperf3 listeners bind [default: :: dual-stack, 0.0.0.0 where IPv6 is off].
    #[arg(short = 'B', long = "bind", value_name = "ADDR")]
    pub bind: Option<IpAddr>,

    /// Dashboard address [default: 0.0.0.0:8080, also reachable over IPv6 where it is on].
    #[arg(long = "http", value_name = "ADDR:PORT")]
    pub http: Option<SocketAddr>,

    /// A host name the dashboard answers to (repeatable), besides IP
    /// addresses, localhost and the machine's own names; a request for any
    /// other name (DNS rebinding) is refused.
    #[arg(long = "http-host", value_name = "NAME")]
    pub http_hosts: Vec<String>,

    /// HTTPS address (HTTP/1.1 and HTTP/2) serving what the dashboard serves;
    /// 0 as the port takes any free port, named in the start-up line
    /// [default: 0.0.0.0:8443, also IPv6; a taken port only warns].
    #[arg(long = "https", value_name = "ADDR:PORT")]
    pub https: Option<SocketAddr>,

    /// Turn off the HTTPS listener.
    #[arg(long = "no-https", conflicts_with_all = ["https", "tls_cert", "tls_key"])]
    pub no_https: bool,

    /// PEM certificate chain for HTTPS [default: a self-signed one made at
    /// first start, tls-cert.pem in the log directory].
    #[arg(long = "tls-cert", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long = "tls-key", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Turn off the responsiveness endpoints (/.well-known/nq, /nq/...).
    #[arg(long = "no-nq")]
    pub no_nq: bool,

    /// Large downloads and uploads of the responsiveness endpoints at the
    /// same time; one more is refused (HTTP 503).
    #[arg(long = "nq-max-transfers", value_name = "N",
          default_value_t = DEFAULT_NQ_TRANSFERS as u16,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub nq_max_transfers: u16,

    /// Directory of the per-port logs; created if missing [default: ~/iperf3-logs].
    #[arg(short = 'd', long = "log-dir", value_name = "DIR")]
    pub log_dir: Option<PathBuf>,

    /// Rotate a port's log, and ndt7.json, before it grows past SIZE bytes
    /// (K, M, G suffixes, powers of 1024) [default: 64M].
    #[arg(long = "max-log-size", value_name = "SIZE", value_parser = parse_log_size)]
    pub max_log_size: Option<u64>,

    /// Rotated copies of each log kept (port-P.json.1 .. .N, ndt7.json.1 ..
    /// .N); older ones are deleted.
    #[arg(long = "keep-rotated", value_name = "N", default_value_t = DEFAULT_KEEP_ROTATED)]
    pub keep_rotated: u32,

    /// Seconds without any data from the client (while the server receives)
    /// before a test is ended with "idle timeout for receiving data".
    #[arg(long = "rcv-timeout", default_value_t = 120.0, value_name = "SECONDS")]
    pub rcv_timeout: f64,

    /// Seconds a client has to start sending its cookie, parameters or
    /// results; the whole message (and the data streams' connecting) may
    /// take three times as long. Then the connection is dropped and the
    /// port is free again.
    #[arg(long = "ctrl-timeout", default_value_t = 10.0, value_name = "SECONDS")]
    pub ctrl_timeout: f64,

    /// Require this token to clear the dashboard's table (POST /api/clear
    /// with "Authorization: Bearer TOKEN"; the page asks for it). Prefer the
    /// environment variable: command lines are visible to every local user.
    #[arg(
        long = "clear-token",
        env = "WEBPERF3_CLEAR_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub clear_token: Option<String>,

    /// Tests that may run at the same time on one port. 1 is stock's
    /// behaviour: a second client is told the server is busy. Overlapping
    /// tests share the link; their results are marked as overlapped.
    #[arg(long = "max-tests-per-port", default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub max_tests_per_port: u16,

    /// Refuse tests longer than this (time + omit), and tests without a time
    /// limit (-n/-k), with stock's error 37.
    #[arg(long = "server-max-duration", value_name = "SECONDS",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub server_max_duration: Option<u32>,

    /// Cap on the total rate of a test, e.g. 500M or 1G/10 (averaged over N
    /// seconds, default 5): refused at start or cut with stock's error 27.
    #[arg(long = "server-bitrate-limit", value_name = "RATE[/SECONDS]")]
    pub server_bitrate_limit: Option<BitrateLimit>,

    /// Refuse UDP tests.
    #[arg(long = "no-udp")]
    pub no_udp: bool,

    /// Only these client networks may run tests, e.g. 192.168.0.0/16,fd00::/8
    /// (others get "test authorization failed") [default: everyone].
    #[arg(long = "allow", value_name = "NETWORKS")]
    pub allow: Option<AllowList>,

    /// Tests one client address may start per minute, across all ports (a
    /// burst of N, then one every 60/N seconds); more are told the server
    /// is busy. 0 = no limit.
    #[arg(long = "max-tests-per-minute", default_value_t = DEFAULT_TESTS_PER_MINUTE, value_name = "N")]
    pub max_tests_per_minute: u32,

    /// Re-create an idle port's listener after this many seconds without a
    /// connection (stock's --idle-timeout).
    #[arg(long = "idle-timeout", value_name = "SECONDS",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub idle_timeout: Option<u32>,

    /// Require authentication: the RSA private key (PEM) that decrypts the
    /// credentials of clients run with --username and --rsa-public-key-path.
    #[arg(
        long = "rsa-private-key-path",
        value_name = "FILE",
        requires = "authorized_users_path",
        help_heading = "Authentication"
    )]
    pub rsa_private_key_path: Option<PathBuf>,

    /// Users allowed to test, one `username,sha256hex` line each, the hash
    /// being SHA-256 of `{username}password` (stock iperf3's format).
    #[arg(
        long = "authorized-users-path",
        value_name = "FILE",
        requires = "rsa_private_key_path",
        help_heading = "Authentication"
    )]
    pub authorized_users_path: Option<PathBuf>,

    /// Largest difference allowed between a client's clock and ours [default: 10].
    #[arg(
        long = "time-skew-threshold",
        value_name = "SECONDS",
        requires = "rsa_private_key_path",
        help_heading = "Authentication"
    )]
    pub time_skew_threshold: Option<u32>,

    /// Accept PKCS#1 v1.5 padding, as iperf3 3.7-3.16 clients send, instead
    /// of OAEP (3.17+). Weaker (padding-oracle attacks), so opt-in.
    #[arg(
        long = "use-pkcs1-padding",
        requires = "rsa_private_key_path",
        help_heading = "Authentication"
    )]
    pub use_pkcs1_padding: bool,

    /// Turn off the ndt7 speed test on the dashboard's port (/ndt/v7/...).
    #[arg(long = "no-ndt7")]
    pub no_ndt7: bool,

    /// ndt7 subtests that may run at the same time; one more is refused
    /// (HTTP 503, the page retries). Each may hold one 16 MiB message.
    #[arg(long = "ndt7-max-tests", default_value_t = 2, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=16))]
    pub ndt7_max_tests: u16,

    /// Let GET /probe?target=HOST[:PORT] test these targets: networks
    /// (192.0.2.0/24, 2001:db8::/32) and HOST:PORT pairs, comma-separated,
    /// repeatable [default: none, /probe is off]. Who may ask is --allow.
    #[arg(long = "probe-allow", value_name = "TARGETS", help_heading = "Probes")]
    pub probe_allow: Vec<String>,

    /// The longest probe, seconds.
    #[arg(long = "probe-max-duration", value_name = "SECONDS",
          default_value_t = DEFAULT_MAX_DURATION, help_heading = "Probes",
          value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub probe_max_duration: u32,

    /// The highest total bitrate of a probe's streams (per direction),
    /// e.g. 500M [default: 1G].
    #[arg(long = "probe-max-bitrate", value_name = "RATE", help_heading = "Probes",
          value_parser = parse_probe_rate)]
    pub probe_max_bitrate: Option<u64>,

    /// Probe a target on a schedule: TARGET,every=DURATION[,OPTION=VALUE...]
    /// with the options of GET /probe, e.g.
    /// iperf.example.net:5201,every=15m,reverse=1 (every at least 60s).
    /// Repeatable; the target must be inside --probe-allow. Each probe is
    /// recorded in <log-dir>/probes.json.
    #[arg(long = "probe-every", value_name = "SPEC", help_heading = "Probes")]
    pub probe_every: Vec<String>,

    /// Copy test data between the kernel and the server as stock iperf3
    /// does (unless a client asks otherwise with -Z or --skip-rx-copy),
    /// instead of sending and receiving without copying.
    #[arg(long = "copy")]
    pub copy: bool,

    /// How TCP tests that the server sends (-R, --bidir) move their data:
    /// auto (measured at start-up: whichever of copy and sendfile costs
    /// this machine less CPU per byte), copy (write from memory, as stock
    /// iperf3) or sendfile (from an in-memory file). A method other than
    /// auto is used for every test, whatever the client asks.
    #[arg(long = "send-method", value_name = "METHOD", default_value = "auto",
          value_parser = ["auto", "copy", "sendfile"])]
    pub send_method: String,

    /// Send each recorded test to this receiver: http://HOST[:PORT]/PATH
    /// (JSON POST) or loki+http://HOST:3100 (Loki's push API). Repeatable.
    /// Unsent tests wait in <log-dir>/forward/ across restarts.
    #[arg(long = "forward", value_name = "URL", help_heading = "Forwarding")]
    pub forward: Vec<String>,

    /// The "host" forwarded tests name [default: this machine's host name].
    #[arg(
        long = "forward-host",
        value_name = "NAME",
        help_heading = "Forwarding"
    )]
    pub forward_host: Option<String>,

    /// Drop queued tests older than this, e.g. 7d, 12h, 30m, 90s.
    #[arg(long = "forward-max-age", value_name = "AGE", default_value = "7d",
          value_parser = parse_age, help_heading = "Forwarding")]
    pub forward_max_age: Duration,

    /// Most tests waiting per receiver; beyond it the oldest are dropped.
    #[arg(long = "forward-max-queue", value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..), help_heading = "Forwarding")]
    pub forward_max_queue: u32,

    /// Most bytes waiting per receiver, e.g. 256M; beyond it the oldest are dropped.
    #[arg(long = "forward-max-bytes", value_name = "SIZE", default_value = "256M",
          value_parser = parse_size, help_heading = "Forwarding")]
    pub forward_max_bytes: u64,

    /// Longest wait between two attempts to reach a receiver, seconds.
    #[arg(
        long = "forward-retry-max",
        value_name = "SECONDS",
        default_value_t = 300.0,
        help_heading = "Forwarding"
    )]
    pub forward_retry_max: f64,
}

/// `7d`, `12h`, `30m`, `90s` or plain seconds.
fn parse_age(text: &str) -> Result<Duration, String> {
    let units = [('s', 1), ('m', 60), ('h', 3600), ('d', 86_400)];
    scaled(text, &units, "a duration such as 7d or 12h").map(Duration::from_secs)
}

/// `256M`, `1G`, `500K` (powers of 1024) or plain bytes.
fn parse_size(text: &str) -> Result<u64, String> {
    let units = [('b', 1), ('k', 1 << 10), ('m', 1 << 20), ('g', 1 << 30)];
    scaled(text, &units, "a size such as 256M")
}

/// A positive whole number with an optional one-letter unit (any case)
/// from `units` (the first is the default), multiplied out.
fn scaled(text: &str, units: &[(char, u64)], what: &str) -> Result<u64, String> {
    let t = text.trim();
    let (number, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_lowercase()),
        _ => (t, units[0].0),
    };
    let Some(&(_, scale)) = units.iter().find(|(u, _)| *u == unit) else {
        let known: Vec<String> = units.iter().map(|(u, _)| u.to_string()).collect();
        return Err(format!(
            "unknown unit in {text:?}: use {}",
            known.join(", ")
        ));
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("expected {what}, not {text:?}"))?;
    match n.checked_mul(scale) {
        Some(v) if v > 0 => Ok(v),
        _ => Err(format!("{text:?} is too large or zero")),
    }
}

impl Args {
    /// Checks what clap cannot and fills in the defaults.
    pub fn into_config(self) -> Result<Config, String> {
        // One kernel-chosen port is fine; "consecutive free ports" is not
        // something the kernel can be asked for.
        if self.port == 0 && self.servers != 1 {
            return Err(format!(
                "--port 0 (any free port) needs --servers 1, not {}",
                self.servers
            ));
        }
        let last = u32::from(self.port) + u32::from(self.servers) - 1;
        if last > 65535 {
            return Err(format!(
                "ports {}..{} do not fit in 1..65535 (--port {} --servers {})",
                self.port, last, self.port, self.servers
            ));
        }
        if !(self.rcv_timeout.is_finite() && self.rcv_timeout >= 0.1) {
            return Err(format!(
                "--rcv-timeout must be at least 0.1 seconds, not {}",
                self.rcv_timeout
            ));
        }
        if !(self.ctrl_timeout.is_finite() && (0.1..=3600.0).contains(&self.ctrl_timeout)) {
            return Err(format!(
                "--ctrl-timeout must be between 0.1 and 3600 seconds, not {}",
                self.ctrl_timeout
            ));
        }
        if self
            .clear_token
            .as_deref()
            .is_some_and(|t| t.is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(
                "--clear-token must be non-empty, without spaces or control characters".into(),
            );
        }
        if let Some(bad) = self.http_hosts.iter().find(|h| {
            h.is_empty()
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        }) {
            return Err(format!(
                "--http-host takes a host name (letters, digits, '.', '-'), not {bad:?}"
            ));
        }
        for url in &self.forward {
            Target::parse(url).map_err(|e| e.to_string())?;
        }
        if !(self.forward_retry_max.is_finite()
            && (0.1..=86_400.0).contains(&self.forward_retry_max))
        {
            return Err(format!(
                "--forward-retry-max must be between 0.1 and 86400 seconds, not {}",
                self.forward_retry_max
            ));
        }
        let forward = ForwardConfig {
            urls: self.forward,
            host: self.forward_host,
            max_age: self.forward_max_age,
            max_count: self.forward_max_queue as usize,
            max_bytes: self.forward_max_bytes,
            retry_max: Duration::from_secs_f64(self.forward_retry_max),
        };
        let https = https_config(self.no_https, self.https, self.tls_cert.zip(self.tls_key))?;
        let ports = (0..self.servers).map(|i| self.port + i).collect();
        let log_dir = match self.log_dir {
            Some(dir) => dir,
            None => default_log_dir()?,
        };
        let ctrl = Duration::from_secs_f64(self.ctrl_timeout);
        let limits = Limits {
            read_start: ctrl,
            read_total: ctrl * 3,
            streams: ctrl * 3,
            rcv_timeout: Duration::from_secs_f64(self.rcv_timeout),
            ..Default::default()
        };
        // clap already insists on both paths together.
        let auth = match (self.rsa_private_key_path, self.authorized_users_path) {
            (Some(key_path), Some(users_path)) => Some(AuthConfig {
                key_path,
                users_path,
                padding: if self.use_pkcs1_padding {
                    Padding::Pkcs1
                } else {
                    Padding::Oaep
                },
                skew: self
                    .time_skew_threshold
                    .map_or(DEFAULT_SKEW_SECS, u64::from),
            }),
            _ => None,
        };
        let mut probe_allow = ProbeAllow::default();
        for list in &self.probe_allow {
            probe_allow
                .add(list)
                .map_err(|e| format!("--probe-allow: {e}"))?;
        }
        let probe_limits = ProbeLimits {
            max_duration: self.probe_max_duration,
            max_bitrate: self.probe_max_bitrate.unwrap_or(DEFAULT_MAX_BITRATE),
        };
        let every = probe_schedules(&self.probe_every, &probe_allow, probe_limits)?;
        let policy = Policy {
            max_duration: self.server_max_duration,
            bitrate_limit: self.server_bitrate_limit,
            no_udp: self.no_udp,
            allow: self.allow.unwrap_or_default(),
            tests_per_minute: self.max_tests_per_minute,
        };
        Ok(Config {
            ports,
            bind: self.bind,
            http: self.http,
            https,
            log_dir,
            limits,
            auth,
            http_settings: HttpSettings {
                clear_token: self.clear_token,
                hosts: self.http_hosts,
                ndt7: Ndt7Settings {
                    enabled: !self.no_ndt7,
                    max_tests: usize::from(self.ndt7_max_tests),
                    allow: policy.allow.clone(),
                },
                probe: ProbeSettings {
                    allow: probe_allow,
                    limits: probe_limits,
                    every,
                    box_name: String::new(),
                },
                nq: NqSettings {
                    enabled: !self.no_nq,
                    max_transfers: usize::from(self.nq_max_transfers),
                    ..NqSettings::default()
                },
                ..Default::default()
            },
            max_tests_per_port: usize::from(self.max_tests_per_port),
            policy,
            idle_timeout: self.idle_timeout.map(|s| Duration::from_secs(u64::from(s))),
            copy: self.copy,
            send_method: match self.send_method.as_str() {
                "copy" => SendSetting::Forced(SendMethod::Copy),
                "sendfile" => SendSetting::Forced(SendMethod::Sendfile),
                _ => SendSetting::Auto,
            },
            forward,
            retention: Retention {
                max_size: Some(self.max_log_size.unwrap_or(DEFAULT_MAX_LOG_SIZE)),
                keep: self.keep_rotated,
            },
        })
    }
}

/// The smallest `--max-log-size`: a few entries.
const MIN_LOG_SIZE: u64 = 64 * 1024;

/// A `--max-log-size`: a size as [`parse_size`] reads it, at least
/// [`MIN_LOG_SIZE`].
/// The `--probe-every` specs, each within the limits and, where its host
/// is an address, inside `--probe-allow` (names are checked when they
/// resolve, at every run).
fn probe_schedules(
    specs: &[String],
    allow: &ProbeAllow,
    limits: ProbeLimits,
) -> Result<Vec<Schedule>, String> {
    if !specs.is_empty() && allow.is_empty() {
        return Err("--probe-every needs --probe-allow naming its targets".into());
    }
    specs
        .iter()
        .map(|spec| {
            let s = Schedule::parse(spec, limits).map_err(|e| format!("--probe-every: {e}"))?;
            let target = &s.request.target;
            match target.host.parse::<IpAddr>() {
                Ok(ip) if !allow.allows(target, ip) => Err(format!(
                    "--probe-every: the target {target} is not in --probe-allow"
                )),
                _ => Ok(s),
            }
        })
        .collect()
}

/// A probe's bitrate limit: a rate as `-b` takes it.
/// The HTTPS listener the flags ask for: none with `--no-https`; in a
/// build without TLS, none by default and an error when asked for.
fn https_config(
    off: bool,
    addr: Option<SocketAddr>,
    cert: Option<(PathBuf, PathBuf)>,
) -> Result<Option<HttpsConfig>, String> {
    if off {
        return Ok(None);
    }
    if !cfg!(feature = "https") {
        if addr.is_some() || cert.is_some() {
            return Err(
                "--https, --tls-cert and --tls-key need a build with the `https` feature; \
                 this one serves plain HTTP only"
                    .into(),
            );
        }
        return Ok(None);
    }
    Ok(Some(HttpsConfig { addr, cert }))
}

fn parse_probe_rate(text: &str) -> Result<u64, String> {
    crate::protocol::policy::parse_rate(text)
        .ok_or_else(|| format!("bad rate {text:?} (expected e.g. 500M or 1G)"))
}

fn parse_log_size(text: &str) -> Result<u64, String> {
    let size = parse_size(text)?;
    if size < MIN_LOG_SIZE {
        return Err(format!("{text:?} is too small (at least 64K)"));
    }
    Ok(size)
}

fn default_log_dir() -> Result<PathBuf, String> {
    match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => Ok(PathBuf::from(home).join("iperf3-logs")),
        _ => Err("HOME is not set; give the log directory with --log-dir".into()),
    }
}

/// Why the command line gave no configuration.
#[derive(Debug, Error)]
pub enum UsageError {
    /// clap's own outcome: `--help` or `--version` (exit 0), or a flag or
    /// value it rejects (exit 2); it formats and prints it itself.
    #[error(transparent)]
    Clap(#[from] clap::Error),
    /// Values clap accepts that do not make a configuration together
    /// (ports past 65535, `--port 0` with several servers, a bad timeout).
    #[error("{0}")]
    Invalid(String),
}

impl UsageError {
    /// The exit code: clap's for its own outcomes, 2 for an invalid
    /// combination.
    pub fn exit_code(&self) -> u8 {
        match self {
            UsageError::Clap(err) => u8::try_from(err.exit_code()).unwrap_or(2),
            UsageError::Invalid(_) => 2,
        }
    }
}

/// Parses and validates `std::env::args`.
pub fn parse() -> Result<Config, UsageError> {
    Args::try_parse()?
        .into_config()
        .map_err(UsageError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Config, String> {
        let argv = std::iter::once("webperf3").chain(args.iter().copied());
        Args::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .into_config()
    }

    #[test]
    fn defaults() {
        let c = config(&["-d", "/tmp/x"]).unwrap();
        assert_eq!(c.ports, vec![5201, 5202, 5203, 5204]);
        assert!(c.bind.is_none());
        assert!(c.http.is_none());
        assert!(c.auth.is_none());
    }

    #[test]
    fn forward_flags() {
        let c = config(&["-d", "x"]).unwrap();
        assert_eq!(c.forward, ForwardConfig::default());
        let c = config(&[
            "-d",
            "x",
            "--forward",
            "http://a:8000/in",
            "--forward=loki+http://l:3100",
            "--forward-max-age",
            "12h",
            "--forward-max-bytes",
            "1G",
            "--forward-max-queue",
            "5",
        ])
        .unwrap();
        assert_eq!(c.forward.urls, ["http://a:8000/in", "loki+http://l:3100"]);
        assert_eq!(c.forward.max_age, Duration::from_secs(12 * 3600));
        assert_eq!(c.forward.max_bytes, 1 << 30);
        assert_eq!(c.forward.max_count, 5);
        assert!(config(&["-d", "x", "--forward", "https://a/"]).is_err());
        assert!(config(&["-d", "x", "--forward-max-age", "0d"]).is_err());
        assert!(config(&["-d", "x", "--forward-max-age", "3w"]).is_err());
        assert!(config(&["-d", "x", "--forward-max-bytes", "12Q"]).is_err());
        assert_eq!(parse_age("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_size("500K").unwrap(), 500 << 10);
    }

    #[test]
    fn auth_flags() {
        let c = config(&[
            "-d",
            "x",
            "--rsa-private-key-path",
            "k.pem",
            "--authorized-users-path",
            "u.csv",
        ])
        .unwrap();
        let a = c.auth.unwrap();
        assert_eq!(a.key_path, PathBuf::from("k.pem"));
        assert_eq!(a.users_path, PathBuf::from("u.csv"));
        assert_eq!((a.padding, a.skew), (Padding::Oaep, 10));
        let c = config(&[
            "-d",
            "x",
            "--rsa-private-key-path=k",
            "--authorized-users-path=u",
            "--use-pkcs1-padding",
            "--time-skew-threshold",
            "30",
        ])
        .unwrap();
        let a = c.auth.unwrap();
        assert_eq!((a.padding, a.skew), (Padding::Pkcs1, 30));
    }

    #[test]
    fn auth_paths_come_together() {
        for args in [
            &["--rsa-private-key-path", "k"][..],
            &["--authorized-users-path", "u"],
            &["--use-pkcs1-padding"],
            &["--time-skew-threshold", "5"],
        ] {
            let mut argv = vec!["-d", "x"];
            argv.extend_from_slice(args);
            let err = config(&argv).unwrap_err();
            assert!(err.contains("required"), "{args:?}: {err}");
        }
        assert!(config(&["-d", "x", "--time-skew-threshold", "-1"]).is_err());
    }

    #[test]
    fn timeouts() {
        let c = config(&["-d", "x"]).unwrap();
        assert_eq!(c.limits, Limits::default());
        let c = config(&["-d", "x", "--ctrl-timeout", "2", "--rcv-timeout", "5"]).unwrap();
        assert_eq!(c.limits.read_start, Duration::from_secs(2));
        assert_eq!(c.limits.read_total, Duration::from_secs(6));
        assert_eq!(c.limits.streams, Duration::from_secs(6));
        assert_eq!(c.limits.rcv_timeout, Duration::from_secs(5));
        for bad in ["0", "-1", "nan", "inf", "3601"] {
            let arg = format!("--ctrl-timeout={bad}");
            let err = config(&["-d", "x", &arg]).unwrap_err();
            assert!(err.contains("ctrl-timeout"), "{bad}: {err}");
        }
    }

    #[test]
    fn clear_token() {
        let c = config(&["-d", "x", "--clear-token", "s3cret"]).unwrap();
        assert_eq!(c.http_settings.clear_token.as_deref(), Some("s3cret"));
        for bad in ["--clear-token=", "--clear-token=a b"] {
            let err = config(&["-d", "x", bad]).unwrap_err();
            assert!(err.contains("clear-token"), "{bad}: {err}");
        }
    }

    #[test]
    fn http_hosts() {
        let c = config(&["-d", "x", "--http-host", "pi.lan", "--http-host", "speed"]).unwrap();
        assert_eq!(c.http_settings.hosts, ["pi.lan", "speed"]);
        assert!(config(&["-d", "x"]).unwrap().http_settings.hosts.is_empty());
        for bad in ["--http-host=", "--http-host=pi:8080", "--http-host=a/b"] {
            let err = config(&["-d", "x", bad]).unwrap_err();
            assert!(err.contains("http-host"), "{bad}: {err}");
        }
    }

    #[test]
    fn policy_flags() {
        let c = config(&[
            "-d",
            "x",
            "--max-tests-per-port",
            "3",
            "--server-max-duration",
            "60",
            "--server-bitrate-limit",
            "1G/10",
            "--no-udp",
            "--allow",
            "10.0.0.0/8,::1",
            "--max-tests-per-minute",
            "7",
            "--idle-timeout",
            "30",
        ])
        .unwrap();
        assert_eq!(c.max_tests_per_port, 3);
        assert_eq!(c.policy.max_duration, Some(60));
        assert_eq!(
            c.policy.bitrate_limit.map(|b| (b.bps, b.window_secs)),
            Some((1_000_000_000, 10))
        );
        assert!(c.policy.no_udp);
        assert_eq!(c.policy.tests_per_minute, 7);
        assert_eq!(
            config(&["-d", "x"]).unwrap().policy.tests_per_minute,
            DEFAULT_TESTS_PER_MINUTE
        );
        assert!(c.policy.allow.allows("10.9.8.7".parse().unwrap()));
        assert!(!c.policy.allow.allows("192.168.1.1".parse().unwrap()));
        assert_eq!(c.idle_timeout, Some(Duration::from_secs(30)));
        assert!(config(&["-d", "x", "--allow", "nonsense"]).is_err());
        assert!(config(&["-d", "x", "--server-bitrate-limit", "fast"]).is_err());
        assert!(config(&["-d", "x", "--max-tests-per-port", "0"]).is_err());
    }

    #[test]
    fn retention_flags() {
        let c = config(&["-d", "x"]).unwrap();
        assert_eq!(c.retention, Retention::default());
        assert_eq!(c.retention.max_size, Some(64 << 20));
        let c = config(&["-d", "x", "--max-log-size", "2G", "--keep-rotated", "0"]).unwrap();
        assert_eq!(c.retention.max_size, Some(2 << 30));
        assert_eq!(c.retention.keep, 0);
        assert_eq!(parse_log_size("100k"), Ok(100 << 10));
        assert_eq!(parse_log_size("1048576"), Ok(1 << 20));
        for bad in ["", "M", "1T", "-1M", "1.5M", "9999999999999G", "1K"] {
            assert!(parse_log_size(bad).is_err(), "{bad}");
            let arg = format!("--max-log-size={bad}");
            assert!(config(&["-d", "x", &arg]).is_err(), "{bad}");
        }
        assert!(config(&["-d", "x", "--keep-rotated", "-1"]).is_err());
    }

    #[test]
    fn port_range_must_fit() {
        assert!(config(&["-p", "65534", "-n", "2", "-d", "x"]).is_ok());
        let err = config(&["-p", "65535", "-n", "2", "-d", "x"]).unwrap_err();
        assert!(err.contains("do not fit"), "{err}");
        assert!(config(&["-n", "0"]).is_err());
    }

    #[test]
    fn port_0_means_one_free_port() {
        let c = config(&["-p", "0", "-n", "1", "-d", "x"]).unwrap();
        assert_eq!(c.ports, vec![0]);
        let err = config(&["-p", "0", "-d", "x"]).unwrap_err();
        assert!(
            err.contains("--port 0") && err.contains("--servers 1"),
            "{err}"
        );
    }

    #[test]
    fn probes_are_off_until_targets_are_allowed() {
        let c = config(&["-d", "x"]).unwrap();
        assert!(c.http_settings.probe.allow.is_empty());
        assert_eq!(c.http_settings.probe.limits, ProbeLimits::default());
        let c = config(&[
            "-d",
            "x",
            "--probe-allow",
            "192.0.2.0/24",
            "--probe-allow",
            "pi.lan:5201",
            "--probe-max-duration",
            "10",
            "--probe-max-bitrate",
            "500M",
        ])
        .unwrap();
        let p = &c.http_settings.probe;
        let t = |s| crate::protocol::probe_policy::Target::parse(s, None).unwrap();
        assert!(p.allow.allows(&t("a:1"), "192.0.2.7".parse().unwrap()));
        assert!(p
            .allow
            .allows(&t("pi.lan:5201"), "10.0.0.1".parse().unwrap()));
        assert_eq!(p.limits.max_duration, 10);
        assert_eq!(p.limits.max_bitrate, 500_000_000);
        assert!(config(&["-d", "x", "--probe-allow", "pi.lan"]).is_err());
        // Schedules: within --probe-allow, which they need.
        let every = |spec| {
            config(&[
                "-d",
                "x",
                "--probe-allow",
                "10.0.0.0/8",
                "--probe-every",
                spec,
            ])
        };
        let c = every("10.1.2.3:5202,every=15m,reverse=1").unwrap();
        let s = &c.http_settings.probe.every;
        assert_eq!((s.len(), s[0].every.as_secs()), (1, 900));
        assert!(s[0].request.params.reverse);
        assert!(every("192.0.2.1,every=15m").is_err());
        assert!(every("10.1.2.3,every=5s").is_err());
        assert!(every("iperf.example.net,every=1h").is_ok());
        assert!(config(&["-d", "x", "--probe-every", "10.1.2.3,every=1h"]).is_err());
        assert!(config(&["-d", "x", "--probe-max-bitrate", "fast"]).is_err());
    }

    #[test]
    #[cfg(not(feature = "https"))]
    fn a_build_without_https_serves_plain_http_only() {
        let c = config(&["-d", "x"]).unwrap();
        assert!(c.https.is_none());
        assert!(c.http_settings.nq.enabled);
        assert!(config(&["-d", "x", "--https", "127.0.0.1:0"]).is_err());
    }

    #[test]
    #[cfg(feature = "https")]
    fn https_and_the_responsiveness_endpoints_are_on_by_default() {
        let c = config(&["-d", "x"]).unwrap();
        let https = c.https.expect("HTTPS on by default");
        assert_eq!((https.addr, https.cert), (None, None));
        assert!(c.http_settings.nq.enabled);
        assert_eq!(c.http_settings.nq.max_transfers, 32);
        let c = config(&[
            "-d",
            "x",
            "--https",
            "127.0.0.1:0",
            "--tls-cert",
            "c",
            "--tls-key",
            "k",
        ]);
        let https = c.unwrap().https.unwrap();
        assert_eq!(https.addr, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(https.cert, Some(("c".into(), "k".into())));
        let c = config(&[
            "-d",
            "x",
            "--no-https",
            "--no-nq",
            "--nq-max-transfers",
            "4",
        ])
        .unwrap();
        assert!(c.https.is_none());
        assert!(!c.http_settings.nq.enabled);
        assert_eq!(c.http_settings.nq.max_transfers, 4);
        assert!(config(&["-d", "x", "--tls-cert", "c"]).is_err());
        assert!(config(&["-d", "x", "--no-https", "--https", "[::]:1"]).is_err());
        assert!(config(&["-d", "x", "--nq-max-transfers", "0"]).is_err());
    }

    #[test]
    fn ndt7_is_on_by_default_bounded_and_fenced_like_iperf3() {
        let c = config(&["-d", "x"]).unwrap();
        assert!(c.http_settings.ndt7.enabled);
        assert_eq!(c.http_settings.ndt7.max_tests, 2);
        let c = config(&[
            "-d",
            "x",
            "--no-ndt7",
            "--ndt7-max-tests",
            "3",
            "--allow",
            "10.0.0.0/8",
        ])
        .unwrap();
        assert!(!c.http_settings.ndt7.enabled);
        assert_eq!(c.http_settings.ndt7.max_tests, 3);
        assert!(!c
            .http_settings
            .ndt7
            .allow
            .allows("192.0.2.1".parse().unwrap()));
        assert!(config(&["-d", "x", "--ndt7-max-tests", "0"]).is_err());
        assert!(config(&["-d", "x", "--ndt7-max-tests", "17"]).is_err());
    }
}
