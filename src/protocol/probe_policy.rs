//! What the box may probe, and how: the targets `--probe-allow` names
//! (networks, or exact `host:port` pairs; none means probes are off), a
//! `GET /probe` query turned into a client's parameters within the
//! maximum duration, bitrate and streams, and whether a busy target is
//! tried again within the scrape's timeout. No sockets, no clock reads.

use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use super::params::{Protocol, TestParams, MAX_TCP_LEN, MAX_UDP_LEN, MIN_UDP_LEN};
use super::policy::{parse_rate, AllowList};

/// The port of a target that names none (stock's default).
pub const DEFAULT_PORT: u16 = 5201;
/// A probe's duration when the query names none, seconds.
pub const DEFAULT_DURATION: u32 = 5;
/// The longest probe by default (`--probe-max-duration`), seconds.
pub const DEFAULT_MAX_DURATION: u32 = 30;
/// The highest total bitrate of a probe by default
/// (`--probe-max-bitrate`), bits/s.
pub const DEFAULT_MAX_BITRATE: u64 = 1_000_000_000;
/// Most streams per direction a probe may ask for.
pub const MAX_STREAMS: u32 = 8;
/// Prometheus' default scrape timeout, when a request does not say its own.
pub const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time kept back from the scrape timeout for connecting, the results
/// exchange and the answer.
pub const SCRAPE_SLACK: Duration = Duration::from_secs(2);
/// The wait before a busy target is tried again.
pub const BUSY_RETRY: Duration = Duration::from_secs(1);

/// A probe's target: a host name or address, and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host as written (an IPv6 address without its brackets).
    pub host: String,
    /// The port.
    pub port: u16,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Target {
    /// `HOST`, `HOST:PORT`, `[V6]:PORT` or a bare IPv6 address; the port
    /// defaults to `default_port` (`None`: a port is required).
    pub fn parse(s: &str, default_port: Option<u16>) -> Result<Target, String> {
        let s = s.trim();
        let bad = || format!("bad target {s:?} (expected HOST or HOST:PORT)");
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None if after.is_empty() => (host, None),
                None => return Err(bad()),
            }
        } else if s.parse::<std::net::Ipv6Addr>().is_ok() {
            (s, None)
        } else {
            match s.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            }
        };
        let valid_host = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b));
        if !valid_host {
            return Err(bad());
        }
        let port = match port {
            Some(p) => p.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(bad)?,
            None => default_port.ok_or_else(|| format!("{s:?} names no port"))?,
        };
        Ok(Target {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

/// The targets the box may probe (`--probe-allow`): none by default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProbeAllow {
    /// Networks, one address or prefix each (never empty lists).
    nets: Vec<AllowList>,
    /// Exact `host:port` pairs.
    exact: Vec<Target>,
}

impl FromStr for ProbeAllow {
    type Err = String;

    /// A comma-separated list of networks (`192.0.2.0/24`, `2001:db8::1`)
    /// and `host:port` pairs.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = ProbeAllow::default();
        out.add(s)?;
        Ok(out)
    }
}

impl ProbeAllow {
    /// Adds the entries of one more `--probe-allow`.
    pub fn add(&mut self, s: &str) -> Result<(), String> {
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if let Ok(net) = part.parse::<AllowList>() {
                self.nets.push(net);
            } else {
                let target = Target::parse(part, None).map_err(|e| {
                    format!("{e}; --probe-allow takes networks and HOST:PORT pairs")
                })?;
                self.exact.push(target);
            }
        }
        Ok(())
    }

    /// Whether nothing is allowed: probes are off.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty() && self.exact.is_empty()
    }

    /// Whether `target` may be probed once resolved to `ip`: the pair is
    /// listed as written, or the address is in a listed network.
    pub fn allows(&self, target: &Target, ip: IpAddr) -> bool {
        self.exact.contains(target) || self.nets.iter().any(|n| n.allows(ip))
    }
}

/// The bounds of what a probe may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeLimits {
    /// The longest probe, seconds (`--probe-max-duration`).
    pub max_duration: u32,
    /// The highest total bitrate over a direction's streams, bits/s
    /// (`--probe-max-bitrate`).
    pub max_bitrate: u64,
}

impl Default for ProbeLimits {
    fn default() -> Self {
        ProbeLimits {
            max_duration: DEFAULT_MAX_DURATION,
            max_bitrate: DEFAULT_MAX_BITRATE,
        }
    }
}

/// A probe asked for: where, and the client's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeRequest {
    /// The target.
    pub target: Target,
    /// The test's parameters.
    pub params: TestParams,
}

/// The value of a query flag: `1`/`true` sets it, `0`/`false`/empty not.
fn flag(key: &str, v: &str) -> Result<bool, String> {
    match v {
        "1" | "true" => Ok(true),
        "0" | "false" | "" => Ok(false),
        _ => Err(format!("{key}={v:?}: expected 1 or 0")),
    }
}

fn number(key: &str, v: &str, min: u32, max: u32) -> Result<u32, String> {
    v.parse::<u32>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("{key}={v:?}: expected a whole number from {min} to {max}"))
}

/// Turns a `GET /probe` query into a probe within `limits`; the error says
/// what is wrong. Unknown keys are ignored (Prometheus may add its own).
pub fn probe_request(
    query: &[(String, String)],
    limits: ProbeLimits,
) -> Result<ProbeRequest, String> {
    let get = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let target = Target::parse(
        get("target").ok_or("the target parameter is required")?,
        Some(DEFAULT_PORT),
    )?;
    let udp = flag("udp", get("udp").unwrap_or(""))?;
    let reverse = flag("reverse", get("reverse").unwrap_or(""))?;
    let bidirectional = flag("bidir", get("bidir").unwrap_or(""))?;
    if reverse && bidirectional {
        return Err("reverse and bidir cannot be combined".into());
    }
    let max_duration = limits.max_duration;
    let time = match get("duration") {
        Some(v) => number("duration", v, 1, max_duration)?,
        None => DEFAULT_DURATION.min(max_duration),
    };
    let parallel = match get("streams") {
        Some(v) => number("streams", v, 1, MAX_STREAMS)?,
        None => 1,
    };
    let protocol = if udp { Protocol::Udp } else { Protocol::Tcp };
    let mut params = TestParams {
        time,
        parallel,
        reverse,
        bidirectional,
        client_version: Some(format!("webperf3 {}", env!("CARGO_PKG_VERSION"))),
        ..TestParams::client_default(protocol)
    };
    if let Some(v) = get("length") {
        let (min, max) = match protocol {
            Protocol::Tcp => (1, MAX_TCP_LEN),
            Protocol::Udp => (MIN_UDP_LEN, MAX_UDP_LEN),
        };
        params.len = number("length", v, min, max)?;
    }
    let per_stream_max = limits.max_bitrate / u64::from(parallel);
    if per_stream_max == 0 {
        // A rate of 0 would mean unlimited to the client.
        return Err(format!(
            "the maximum of {} bit/s is below one bit/s per stream over {parallel} streams",
            limits.max_bitrate
        ));
    }
    params.bandwidth = match get("bitrate") {
        Some(v) => {
            let bps = parse_rate(v).ok_or_else(|| format!("bitrate={v:?}: expected e.g. 100M"))?;
            if bps > per_stream_max {
                return Err(format!(
                    "bitrate {bps} bit/s per stream over {parallel} streams is over the maximum of {} bit/s",
                    limits.max_bitrate
                ));
            }
            bps
        }
        // Never unlimited: TCP at the maximum, UDP at stock's default.
        None if udp => params.bandwidth.min(per_stream_max),
        None => per_stream_max,
    };
    Ok(ProbeRequest { target, params })
}

/// Whether a browser sent the request from another site's page (its
/// `Sec-Fetch-Site` header): an `<img src=…/probe?…>` on any page a person
/// on the LAN opens would otherwise start a probe. Prometheus and other
/// scrapers send no such header; a probe URL typed into the address bar
/// says `none`.
pub fn from_another_site(sec_fetch_site: Option<&str>) -> bool {
    matches!(sec_fetch_site, Some(site) if site != "same-origin" && site != "none")
}

/// Until when a probe answering a scrape may run: the scrape's timeout
/// (`X-Prometheus-Scrape-Timeout-Seconds`, else Prometheus' default) from
/// `now`, less [`SCRAPE_SLACK`].
pub fn scrape_deadline(timeout_header: Option<&str>, now: Instant) -> Instant {
    let timeout = timeout_header
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|t| t.is_finite() && *t > 0.0 && *t < 86_400.0)
        .map_or(DEFAULT_SCRAPE_TIMEOUT, Duration::from_secs_f64);
    now + timeout.saturating_sub(SCRAPE_SLACK)
}

/// Whether a probe of `seconds` fits before `deadline` if started at
/// `now`.
pub fn fits(seconds: u32, now: Instant, deadline: Instant) -> bool {
    now + Duration::from_secs(u64::from(seconds)) <= deadline
}

/// The latest a probe of `seconds` may start and still answer before
/// `deadline`: how long a scrape may wait for the box's one probe slot
/// (targets of one box scraped at about the same time take turns instead
/// of failing).
pub fn latest_start(seconds: u32, deadline: Instant) -> Instant {
    let run = Duration::from_secs(u64::from(seconds));
    deadline.checked_sub(run).unwrap_or(deadline)
}

/// When to try a busy target again: after [`BUSY_RETRY`], if the probe
/// still fits before `deadline`; `None` gives up.
pub fn retry_busy(seconds: u32, now: Instant, deadline: Instant) -> Option<Instant> {
    let at = now + BUSY_RETRY;
    fits(seconds, at, deadline).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Vec<(String, String)> {
        s.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    fn t(host: &str, port: u16) -> Target {
        Target {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn targets_are_parsed_with_their_port() {
        let d = Some(DEFAULT_PORT);
        assert_eq!(Target::parse("Pi.lan", d), Ok(t("pi.lan", 5201)));
        assert_eq!(Target::parse("pi.lan:5202", d), Ok(t("pi.lan", 5202)));
        assert_eq!(Target::parse("192.0.2.1:9", d), Ok(t("192.0.2.1", 9)));
        assert_eq!(Target::parse("[2001:db8::1]:7", d), Ok(t("2001:db8::1", 7)));
        assert_eq!(Target::parse("2001:db8::1", d), Ok(t("2001:db8::1", 5201)));
        assert_eq!(t("2001:db8::1", 7).to_string(), "[2001:db8::1]:7");
        for bad in [
            "",
            "a b",
            "host:0",
            "host:x",
            "[::1",
            "h/../x",
            "host:99999",
        ] {
            assert!(Target::parse(bad, d).is_err(), "{bad}");
        }
        assert!(Target::parse("pi.lan", None).is_err());
    }

    #[test]
    fn nothing_is_allowed_until_listed() {
        let none = ProbeAllow::default();
        assert!(none.is_empty());
        assert!(!none.allows(&t("192.0.2.1", 5201), "192.0.2.1".parse().unwrap()));

        let mut allow: ProbeAllow = "192.0.2.0/24, iperf.example:5201".parse().unwrap();
        allow.add("2001:db8::/32").unwrap();
        assert!(!allow.is_empty());
        assert!(allow.allows(&t("a.lan", 5201), "192.0.2.9".parse().unwrap()));
        assert!(allow.allows(&t("x", 1), "2001:db8::5".parse().unwrap()));
        assert!(!allow.allows(&t("b.lan", 5201), "198.51.100.1".parse().unwrap()));
        // A pair is allowed as written, wherever it resolves; on its port only.
        assert!(allow.allows(&t("iperf.example", 5201), "203.0.113.5".parse().unwrap()));
        assert!(!allow.allows(&t("iperf.example", 5202), "203.0.113.5".parse().unwrap()));
        let e = "pi.lan".parse::<ProbeAllow>().unwrap_err();
        assert!(e.contains("names no port"), "{e}");
    }

    #[test]
    fn a_query_becomes_parameters_within_the_limits() {
        let l = ProbeLimits::default();
        let r = probe_request(&q("target=pi.lan&module=x"), l).unwrap();
        assert_eq!(r.target, t("pi.lan", 5201));
        let p = &r.params;
        assert_eq!((p.protocol, p.time, p.parallel), (Protocol::Tcp, 5, 1));
        assert_eq!(p.bandwidth, DEFAULT_MAX_BITRATE);
        assert!(!p.reverse && !p.bidirectional);

        let r = probe_request(
            &q("target=pi.lan:5202&udp=1&reverse=1&bitrate=10M&duration=3&streams=2&length=1200"),
            l,
        )
        .unwrap();
        let p = &r.params;
        assert_eq!(p.protocol, Protocol::Udp);
        assert_eq!(
            (p.time, p.parallel, p.len, p.bandwidth),
            (3, 2, 1200, 10_000_000)
        );
        assert!(p.reverse);
        assert_eq!(TestParams::decode(&p.encode()).as_ref(), Ok(p));

        // Split over streams, the total stays within the maximum.
        let r = probe_request(&q("target=a&streams=4"), l).unwrap();
        assert_eq!(r.params.bandwidth, DEFAULT_MAX_BITRATE / 4);
        let r = probe_request(&q("target=a&udp=1"), l).unwrap();
        assert_eq!(r.params.bandwidth, 1 << 20);
    }

    #[test]
    fn a_query_over_the_limits_is_refused_with_the_reason() {
        let l = ProbeLimits {
            max_duration: 10,
            max_bitrate: 100_000_000,
        };
        let err = |s: &str| probe_request(&q(s), l).unwrap_err();
        assert!(err("udp=1").contains("target parameter is required"));
        assert!(err("target=a&duration=11").contains("from 1 to 10"));
        assert!(err("target=a&duration=0").contains("from 1 to 10"));
        assert!(err("target=a&streams=9").contains("from 1 to 8"));
        assert!(err("target=a&bitrate=200M").contains("over the maximum"));
        assert!(err("target=a&bitrate=60M&streams=2").contains("over the maximum"));
        assert!(err("target=a&reverse=1&bidir=1").contains("cannot be combined"));
        assert!(err("target=a&udp=yes").contains("expected 1 or 0"));
        assert!(err("target=a&udp=1&length=8").contains("from 16 to 65507"));
        assert!(err("target=a&bitrate=fast").contains("expected e.g. 100M"));
        assert_eq!(probe_request(&q("target=a"), l).unwrap().params.time, 5);
    }

    #[test]
    fn a_maximum_too_small_to_share_is_refused_not_unlimited() {
        // 0 bit/s is iperf3's "unlimited": a stream's share may never be 0.
        let l = ProbeLimits {
            max_duration: 10,
            max_bitrate: 4,
        };
        for query in ["target=a&streams=8", "target=a&streams=8&udp=1"] {
            let err = probe_request(&q(query), l).unwrap_err();
            assert!(err.contains("below one bit/s per stream"), "{query}: {err}");
        }
        let r = probe_request(&q("target=a&streams=4"), l).unwrap();
        assert_eq!(r.params.bandwidth, 1);
    }

    #[test]
    fn busy_targets_are_retried_within_the_scrape_timeout() {
        let now = Instant::now();
        let s = |x: f64| now + Duration::from_secs_f64(x);
        assert_eq!(scrape_deadline(Some("15"), now), s(13.0));
        assert_eq!(scrape_deadline(Some("2.5"), now), s(0.5));
        assert_eq!(scrape_deadline(Some("1"), now), now);
        assert_eq!(scrape_deadline(None, now), s(8.0));
        assert_eq!(scrape_deadline(Some("nonsense"), now), s(8.0));
        let deadline = scrape_deadline(Some("15"), now);
        assert!(fits(5, now, deadline));
        assert!(!fits(14, now, deadline));
        assert_eq!(retry_busy(5, now, deadline), Some(s(1.0)));
        assert_eq!(retry_busy(5, s(7.0), deadline), Some(s(8.0)));
        assert_eq!(retry_busy(5, s(7.5), deadline), None);
    }

    #[test]
    fn only_requests_from_another_sites_page_are_cross_site() {
        assert!(!from_another_site(None));
        assert!(!from_another_site(Some("none")));
        assert!(!from_another_site(Some("same-origin")));
        assert!(from_another_site(Some("cross-site")));
        assert!(from_another_site(Some("same-site")));
    }

    #[test]
    fn a_scrape_waits_for_the_slot_only_while_its_probe_still_fits() {
        let now = Instant::now();
        let deadline = scrape_deadline(Some("10"), now);
        let latest = latest_start(1, deadline);
        assert_eq!(latest, now + Duration::from_secs(7));
        assert!(fits(1, latest, deadline));
        assert!(!fits(1, latest + Duration::from_millis(1), deadline));
    }
}
