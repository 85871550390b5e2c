//! Server-side policies on what tests may do: the maximum duration, a total
//! bitrate cap, UDP allowed or not, and the client networks allowed at all.
//! Pure decisions; the driver applies them.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::str::FromStr;

use thiserror::Error;

use super::errors::ErrorCode;
use super::params::{ParamError, Protocol, TestParams};

/// Tests one source may start per minute unless `--max-tests-per-minute`
/// says otherwise: a burst of 60, then one a second; someone running
/// default (10 s) tests back to back starts six a minute.
pub const DEFAULT_TESTS_PER_MINUTE: u32 = 60;

/// Limits the server puts on tests (all off by default, as stock).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    /// Longest test allowed, seconds (`--server-max-duration`): `time + omit`
    /// above it, or a test without a time limit (`-n`/`-k`), is refused (37).
    pub max_duration: Option<u32>,
    /// Total bitrate cap (`--server-bitrate-limit R[/N]`): refused at start
    /// when the requested rates add up to more (27), cut when the average
    /// over the last N seconds exceeds it (27).
    pub bitrate_limit: Option<BitrateLimit>,
    /// Refuse UDP tests (`--no-udp`).
    pub no_udp: bool,
    /// Client networks allowed (`--allow`); empty = everyone.
    pub allow: AllowList,
    /// Tests one source address may start per minute
    /// (`--max-tests-per-minute`; see [`super::admission`]); 0 = no limit.
    pub tests_per_minute: u32,
}

/// A total bitrate cap averaged over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitrateLimit {
    /// Bits per second, all streams and directions together.
    pub bps: u64,
    /// Seconds over which the average is taken.
    pub window_secs: u32,
}

impl FromStr for BitrateLimit {
    type Err = String;

    /// `100M`, `1G/10`, `500000`: a rate with an optional K/M/G suffix
    /// (powers of 1000, as iperf3's `-b`), then an optional `/seconds`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (rate, window) = match s.split_once('/') {
            Some((r, w)) => (
                r,
                w.parse::<u32>()
                    .map_err(|_| format!("bad averaging window in {s:?}"))?,
            ),
            None => (s, 5),
        };
        if window == 0 {
            return Err(format!(
                "averaging window must be at least 1 second in {s:?}"
            ));
        }
        Ok(BitrateLimit {
            bps: parse_rate(rate).ok_or_else(|| format!("bad rate {rate:?}"))?,
            window_secs: window,
        })
    }
}

/// A rate like iperf3's `-b`: a number with an optional `k`, `m`, `g` or `t`
/// suffix (powers of 1000).
pub fn parse_rate(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, mult) = match s.chars().last()?.to_ascii_lowercase() {
        'k' => (&s[..s.len() - 1], 1e3),
        'm' => (&s[..s.len() - 1], 1e6),
        'g' => (&s[..s.len() - 1], 1e9),
        't' => (&s[..s.len() - 1], 1e12),
        _ => (s, 1.0),
    };
    let v: f64 = digits.parse().ok()?;
    let bps = v * mult;
    (bps.is_finite() && bps >= 1.0 && bps < u64::MAX as f64).then_some(bps as u64)
}

impl Policy {
    /// Checks accepted parameters against the policy.
    pub fn check(&self, p: &TestParams) -> Result<(), ParamError> {
        if self.no_udp && p.protocol == Protocol::Udp {
            return Err(ParamError {
                code: ErrorCode::PROTOCOL,
                detail: "UDP tests are disabled on this server".into(),
            });
        }
        if let Some(max) = self.max_duration {
            if p.time == 0 || u64::from(p.time) + u64::from(p.omit) > u64::from(max) {
                return Err(ParamError {
                    code: ErrorCode::MAX_DURATION,
                    detail: format!(
                        "test of {} s (+{} s omit) exceeds the maximum of {max} s",
                        p.time, p.omit
                    ),
                });
            }
        }
        if let Some(limit) = self.bitrate_limit {
            let per_stream = p.bandwidth.max(p.fqrate);
            let streams = u64::from(p.stream_count());
            // An unlimited test (no -b) could exceed any cap; stock lets it
            // start and cuts it while running, and so do we.
            if per_stream > 0 && per_stream.saturating_mul(streams) > limit.bps {
                return Err(ParamError {
                    code: ErrorCode::TOTAL_RATE,
                    detail: format!(
                        "{} streams × {per_stream} bit/s exceed {} bit/s",
                        streams, limit.bps
                    ),
                });
            }
        }
        Ok(())
    }
}

/// The average of the last few interval rates, against a cap.
#[derive(Debug, Clone, Default)]
pub struct RateWindow {
    samples: VecDeque<(u64, f64)>,
}

impl RateWindow {
    /// Adds one interval (`bytes` over `seconds`, all streams) and says
    /// whether the average over the last `limit.window_secs` seconds is above
    /// the cap. The average is judged only once the window is full.
    pub fn exceeded(&mut self, bytes: u64, seconds: f64, limit: BitrateLimit) -> bool {
        self.samples.push_back((bytes, seconds));
        let window = f64::from(limit.window_secs);
        while self.samples.len() > 1
            && self.samples.iter().skip(1).map(|s| s.1).sum::<f64>() >= window
        {
            self.samples.pop_front();
        }
        let (total, secs) = self
            .samples
            .iter()
            .fold((0u64, 0.0), |(b, s), x| (b + x.0, s + x.1));
        secs >= window * 0.999 && total as f64 * 8.0 / secs > limit.bps as f64
    }
}

/// Networks allowed to run tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllowList {
    nets: Vec<(IpAddr, u8)>,
}

/// A network that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("bad network {0:?} (expected e.g. 192.168.0.0/16, 10.1.2.3 or fd00::/8)")]
pub struct BadNetwork(pub String);

impl FromStr for AllowList {
    type Err = BadNetwork;

    /// A comma-separated list of addresses or `address/prefix` networks.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut nets = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || BadNetwork(part.to_string());
            let (addr, prefix) = match part.split_once('/') {
                Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
                None => (part, None),
            };
            let ip: IpAddr = addr.parse().map_err(|_| bad())?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let prefix = prefix.unwrap_or(max);
            if prefix > max {
                return Err(bad());
            }
            nets.push((ip, prefix));
        }
        Ok(AllowList { nets })
    }
}

impl AllowList {
    /// Whether the list is empty (everyone allowed).
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` may run tests (IPv4-mapped IPv6 counts as IPv4).
    pub fn allows(&self, ip: IpAddr) -> bool {
        if self.nets.is_empty() {
            return true;
        }
        let ip = ip.to_canonical();
        self.nets.iter().any(|&(net, prefix)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(s: &str) -> TestParams {
        TestParams::decode(s.as_bytes()).unwrap()
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("100M"), Some(100_000_000));
        assert_eq!(parse_rate("1.5g"), Some(1_500_000_000));
        assert_eq!(parse_rate("500"), Some(500));
        assert_eq!(parse_rate("0"), None);
        assert_eq!(parse_rate("x"), None);
        assert_eq!(
            "1G/10".parse(),
            Ok(BitrateLimit {
                bps: 1_000_000_000,
                window_secs: 10
            })
        );
        assert_eq!("1G".parse::<BitrateLimit>().unwrap().window_secs, 5);
        assert!("1G/0".parse::<BitrateLimit>().is_err());
    }

    #[test]
    fn max_duration() {
        let p = Policy {
            max_duration: Some(30),
            ..Policy::default()
        };
        assert!(p.check(&params(r#"{"time":30}"#)).is_ok());
        assert_eq!(
            p.check(&params(r#"{"time":30,"omit":1}"#))
                .unwrap_err()
                .code,
            ErrorCode::MAX_DURATION
        );
        assert_eq!(
            p.check(&params(r#"{"time":0,"num":1000}"#))
                .unwrap_err()
                .code,
            ErrorCode::MAX_DURATION
        );
    }

    #[test]
    fn bitrate_at_start() {
        let limit = BitrateLimit {
            bps: 100_000_000,
            window_secs: 5,
        };
        let p = Policy {
            bitrate_limit: Some(limit),
            ..Policy::default()
        };
        assert!(p
            .check(&params(r#"{"bandwidth":50000000,"parallel":2}"#))
            .is_ok());
        let err = p
            .check(&params(
                r#"{"bandwidth":50000000,"parallel":2,"bidirectional":true}"#,
            ))
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::TOTAL_RATE);
        assert!(
            p.check(&params("{}")).is_ok(),
            "unlimited tests are judged while running"
        );
    }

    #[test]
    fn bitrate_while_running() {
        let limit = BitrateLimit {
            bps: 8_000,
            window_secs: 3,
        };
        let mut w = RateWindow::default();
        assert!(!w.exceeded(2000, 1.0, limit), "window not full yet");
        assert!(!w.exceeded(2000, 1.0, limit));
        assert!(w.exceeded(2000, 1.0, limit), "16 kbit/s over 3 s");
        let mut w = RateWindow::default();
        for _ in 0..10 {
            assert!(!w.exceeded(900, 1.0, limit));
        }
    }

    #[test]
    fn no_udp() {
        let p = Policy {
            no_udp: true,
            ..Policy::default()
        };
        assert_eq!(
            p.check(&params(r#"{"udp":true}"#)).unwrap_err().code,
            ErrorCode::PROTOCOL
        );
        assert!(p.check(&params(r#"{"tcp":true}"#)).is_ok());
    }

    #[test]
    fn allow_list() {
        let a: AllowList = "192.168.0.0/16, 10.1.2.3,fd00::/8".parse().unwrap();
        assert!(a.allows("192.168.7.9".parse().unwrap()));
        assert!(a.allows("::ffff:192.168.7.9".parse().unwrap()));
        assert!(a.allows("10.1.2.3".parse().unwrap()));
        assert!(!a.allows("10.1.2.4".parse().unwrap()));
        assert!(a.allows("fd12::1".parse().unwrap()));
        assert!(!a.allows("::1".parse().unwrap()));
        assert!(AllowList::default().allows("8.8.8.8".parse().unwrap()));
        let all: AllowList = "0.0.0.0/0".parse().unwrap();
        assert!(all.allows("1.2.3.4".parse().unwrap()));
        assert!("300.1.1.1".parse::<AllowList>().is_err());
        assert!("10.0.0.0/33".parse::<AllowList>().is_err());
    }
}
