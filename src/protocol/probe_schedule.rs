//! `--probe-every SPEC`: probes on a schedule, without Prometheus. A spec
//! is `TARGET,every=DURATION` followed by the options of `GET /probe`
//! (`reverse=1`, `udp=1`, `bitrate=100M`, `duration=5`, ...), e.g.
//! `pi-office.lan:5201,every=15m,reverse=1`. Each schedule starts at an
//! offset within its interval drawn from the box's name and the spec, so
//! the boxes of a mesh do not all test at once; a busy target is tried
//! again a few times before the interval's turn is given up. No sockets,
//! no clock reads.

use std::time::{Duration, Instant};

use super::probe_policy::{probe_request, ProbeLimits, ProbeRequest};

/// The shortest interval a schedule may have.
pub const MIN_INTERVAL: Duration = Duration::from_secs(60);
/// Tries of a busy target per turn, the first included.
pub const BUSY_TRIES: u32 = 4;
/// The wait before a busy target is tried again: doubled each time.
pub const BUSY_BACKOFF: Duration = Duration::from_secs(5);

/// One `--probe-every`.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// The spec as given (for messages).
    pub spec: String,
    /// What to probe, as `GET /probe` would.
    pub request: ProbeRequest,
    /// The time between probes.
    pub every: Duration,
}

/// A duration such as `90s`, `15m`, `2h` or `1d` (a bare number is
/// seconds).
pub fn parse_interval(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let n: u64 = digits.parse().ok()?;
    let secs = match unit {
        's' => n,
        'm' => n.checked_mul(60)?,
        'h' => n.checked_mul(3600)?,
        'd' => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

impl Schedule {
    /// Parses a spec within the probe limits.
    pub fn parse(spec: &str, limits: ProbeLimits) -> Result<Schedule, String> {
        let mut parts = spec.split(',').map(str::trim);
        let target = parts
            .next()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| format!("{spec:?}: expected TARGET,every=DURATION[,option=value...]"))?;
        let mut query = vec![("target".to_string(), target.to_string())];
        let mut every = None;
        for part in parts.filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("{spec:?}: {part:?} is not option=value"))?;
            if k == "every" {
                every = Some(parse_interval(v).ok_or_else(|| {
                    format!("{spec:?}: every={v:?}: expected e.g. 90s, 15m or 1h")
                })?);
            } else if [
                "reverse", "bidir", "udp", "bitrate", "duration", "streams", "length",
            ]
            .contains(&k)
            {
                query.push((k.to_string(), v.to_string()));
            } else {
                return Err(format!("{spec:?}: unknown option {k:?}"));
            }
        }
        let every = every.ok_or_else(|| format!("{spec:?}: every=DURATION is required"))?;
        if every < MIN_INTERVAL {
            return Err(format!(
                "{spec:?}: every={}s is shorter than the minimum of {}s",
                every.as_secs(),
                MIN_INTERVAL.as_secs()
            ));
        }
        let request = probe_request(&query, limits).map_err(|e| format!("{spec:?}: {e}"))?;
        Ok(Schedule {
            spec: spec.to_string(),
            request,
            every,
        })
    }

    /// Where in its interval this schedule runs on the box named `box_name`:
    /// a fixed share of the interval, drawn from both (FNV-1a), so a
    /// restart keeps it and different boxes or targets spread apart.
    pub fn offset(&self, box_name: &str) -> Duration {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in box_name.bytes().chain([0]).chain(self.spec.bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let every_ms = u64::try_from(self.every.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        Duration::from_millis(h % every_ms)
    }

    /// The first run of a schedule started at `start`.
    pub fn first(&self, start: Instant, box_name: &str) -> Instant {
        start + self.offset(box_name)
    }

    /// The run after one due at `due`, handled at `now`: one interval
    /// later, skipping turns missed entirely.
    pub fn next(&self, due: Instant, now: Instant) -> Instant {
        let mut next = due + self.every;
        while next <= now {
            next += self.every;
        }
        next
    }

    /// When to try a busy target again, after `tries` tries of this turn
    /// (due at `due`); `None` gives the turn up (no more tries, or the next
    /// turn would come first).
    pub fn retry_busy(&self, tries: u32, due: Instant, now: Instant) -> Option<Instant> {
        if tries >= BUSY_TRIES {
            return None;
        }
        let at = now + BUSY_BACKOFF * 2u32.saturating_pow(tries.saturating_sub(1));
        (at < due + self.every / 2).then_some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::params::Protocol;

    fn s(spec: &str) -> Result<Schedule, String> {
        Schedule::parse(spec, ProbeLimits::default())
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_interval("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_interval("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_interval("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_interval("1d"), Some(Duration::from_secs(86_400)));
        for bad in ["", "m", "5x", "-1m", "1.5h"] {
            assert_eq!(parse_interval(bad), None, "{bad}");
        }
    }

    #[test]
    fn specs_are_a_target_an_interval_and_probe_options() {
        let sc = s("pi-office.lan:5202,every=15m,reverse=1,udp=1,bitrate=10M").unwrap();
        assert_eq!(sc.every, Duration::from_secs(900));
        assert_eq!(sc.request.target.to_string(), "pi-office.lan:5202");
        let p = &sc.request.params;
        assert!(p.reverse && p.protocol == Protocol::Udp && p.bandwidth == 10_000_000);
        let err = |spec| s(spec).unwrap_err();
        assert!(err("pi.lan").contains("every=DURATION is required"));
        assert!(err("pi.lan,every=30s").contains("shorter than the minimum"));
        assert!(err("pi.lan,every=1m,color=red").contains("unknown option"));
        assert!(err("pi.lan,every=1m,reverse").contains("not option=value"));
        assert!(err("pi.lan,every=1m,duration=99").contains("from 1 to 30"));
        assert!(err(",every=1m").contains("expected TARGET"));
    }

    #[test]
    fn boxes_and_targets_spread_over_the_interval_and_keep_their_place() {
        let a = s("a.lan,every=10m").unwrap();
        let b = s("b.lan,every=10m").unwrap();
        assert!(a.offset("pi1") < a.every);
        assert_eq!(a.offset("pi1"), a.offset("pi1"));
        let offsets = [
            a.offset("pi1"),
            a.offset("pi2"),
            b.offset("pi1"),
            b.offset("pi2"),
        ];
        for (i, x) in offsets.iter().enumerate() {
            for y in &offsets[i + 1..] {
                assert_ne!(x, y);
            }
        }
    }

    #[test]
    fn turns_follow_the_interval_and_busy_targets_are_retried_within_half() {
        let t0 = Instant::now();
        let at = |x: u64| t0 + Duration::from_secs(x);
        let sc = s("a.lan,every=10m").unwrap();
        let first = sc.first(t0, "pi1");
        assert_eq!(first, t0 + sc.offset("pi1"));
        assert_eq!(sc.next(at(0), at(5)), at(600));
        // A box that slept through two turns skips them.
        assert_eq!(sc.next(at(0), at(1300)), at(1800));
        assert_eq!(sc.retry_busy(1, at(0), at(6)), Some(at(11)));
        assert_eq!(sc.retry_busy(2, at(0), at(20)), Some(at(30)));
        assert_eq!(sc.retry_busy(3, at(0), at(40)), Some(at(60)));
        assert_eq!(sc.retry_busy(4, at(0), at(70)), None);
        assert_eq!(sc.retry_busy(1, at(0), at(296)), None);
    }
}
