//! Who may start a test, decided per source address before the test takes
//! anything on its port: a per-source rate of tests (a token bucket), and
//! the bookkeeping of refusals (refused hosts, failed authentications, too
//! many tests), so that stderr gets one line per source and minute instead
//! of one per refused connection. Pure: the time is a parameter; the map of
//! sources is bounded, beyond it sources share one bucket and one tally.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Sources tracked one by one (by the rate limit, and by the refusals);
/// more share one entry. About 100 bytes each.
pub const MAX_SOURCES: usize = 4096;

/// How often refusals of one source are summarised.
pub const SUMMARY_PERIOD: Duration = Duration::from_secs(60);

/// Why a connection was refused before its test took the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The source is outside `--allow`.
    NotAllowed,
    /// The source started more tests than `--max-tests-per-minute` allows.
    TooManyTests,
    /// The client did not authenticate.
    NotAuthorized,
}

impl Refusal {
    /// The words stderr uses for it.
    pub fn text(self) -> &'static str {
        match self {
            Refusal::NotAllowed => "not in the allowed networks",
            Refusal::TooManyTests => "too many tests from this address",
            Refusal::NotAuthorized => "test not authorized",
        }
    }
}

/// Refusals of one source (or of all untracked sources) since `since`.
#[derive(Debug, Clone, Copy)]
struct Tally {
    since: Instant,
    count: u64,
    last: Refusal,
}

/// A summary line due: `count` more refusals from `source` (`None`: the
/// sources beyond [`MAX_SOURCES`]) in the last period, the latest for
/// `last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// The source, or `None` for the untracked ones together.
    pub source: Option<IpAddr>,
    /// Refusals not yet reported.
    pub count: u64,
    /// Why the latest was refused.
    pub last: Refusal,
}

/// A token bucket of tests.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The admission state shared by every port of the server.
#[derive(Debug, Default)]
pub struct Admission {
    buckets: HashMap<IpAddr, Bucket>,
    /// The bucket the sources beyond [`MAX_SOURCES`] share.
    shared_bucket: Option<Bucket>,
    tallies: HashMap<IpAddr, Tally>,
    /// Refusals of the sources beyond [`MAX_SOURCES`].
    others: Option<Tally>,
}

impl Admission {
    /// Whether `source` may start one more test at `now` (and counts it),
    /// allowing each source `per_minute` tests a minute: in a burst, then
    /// one every `60 / per_minute` seconds. 0 = no limit.
    pub fn try_start(&mut self, now: Instant, source: IpAddr, per_minute: u32) -> bool {
        if per_minute == 0 {
            return true;
        }
        let source = source.to_canonical();
        let full = f64::from(per_minute);
        let rate = full / 60.0;
        let refill = |b: &mut Bucket| {
            let secs = now.saturating_duration_since(b.at).as_secs_f64();
            b.tokens = (b.tokens + secs * rate).min(full);
            b.at = now;
        };
        if !self.buckets.contains_key(&source) && self.buckets.len() >= MAX_SOURCES {
            // A full bucket is the same as none: forget those first.
            self.buckets.retain(|_, b| {
                refill(b);
                b.tokens < full
            });
        }
        let fresh = Bucket {
            tokens: full,
            at: now,
        };
        let bucket = if self.buckets.len() < MAX_SOURCES || self.buckets.contains_key(&source) {
            self.buckets.entry(source).or_insert(fresh)
        } else {
            self.shared_bucket.get_or_insert(fresh)
        };
        refill(bucket);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Notes a refusal of `source` at `now`; whether to report it at once
    /// (the first from its source in a period: the others are counted for
    /// [`Admission::summaries`]).
    pub fn refused(&mut self, now: Instant, source: IpAddr, why: Refusal) -> bool {
        let source = source.to_canonical();
        if let Some(t) = self.tallies.get_mut(&source) {
            t.count += 1;
            t.last = why;
            return false;
        }
        if self.tallies.len() >= MAX_SOURCES {
            let t = self.others.get_or_insert(Tally {
                since: now,
                count: 0,
                last: why,
            });
            t.count += 1;
            t.last = why;
            return false;
        }
        let first = Tally {
            since: now,
            count: 0,
            last: why,
        };
        self.tallies.insert(source, first);
        true
    }

    /// The summaries due at `now`: for each source whose period is over,
    /// the refusals not reported yet. A source that was quiet for a whole
    /// period is forgotten (its next refusal is reported at once again).
    pub fn summaries(&mut self, now: Instant) -> Vec<Summary> {
        let due = |t: &Tally| now.saturating_duration_since(t.since) >= SUMMARY_PERIOD;
        let mut out = Vec::new();
        self.tallies.retain(|&source, t| {
            if !due(t) {
                return true;
            }
            if t.count == 0 {
                return false;
            }
            out.push(Summary {
                source: Some(source),
                count: t.count,
                last: t.last,
            });
            *t = Tally {
                since: now,
                count: 0,
                last: t.last,
            };
            true
        });
        if let Some(t) = self.others.take_if(|t| due(t)) {
            out.push(Summary {
                source: None,
                count: t.count,
                last: t.last,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rate_is_per_source_with_a_burst_then_a_steady_pace() {
        let t0 = Instant::now();
        let mut a = Admission::default();
        for _ in 0..3 {
            assert!(a.try_start(t0, ip("10.0.0.1"), 3));
        }
        assert!(!a.try_start(t0, ip("10.0.0.1"), 3), "a fourth at once");
        assert!(
            a.try_start(t0, ip("::ffff:10.0.0.2"), 3),
            "another source is not held back"
        );
        // One test every 20 s after the burst.
        assert!(!a.try_start(t0 + Duration::from_secs(19), ip("10.0.0.1"), 3));
        assert!(a.try_start(t0 + Duration::from_secs(20), ip("10.0.0.1"), 3));
        assert!(!a.try_start(t0 + Duration::from_secs(21), ip("::ffff:10.0.0.1"), 3));
        // A minute of rest gives the whole burst back, and no more.
        let later = t0 + Duration::from_secs(600);
        for _ in 0..3 {
            assert!(a.try_start(later, ip("10.0.0.1"), 3));
        }
        assert!(!a.try_start(later, ip("10.0.0.1"), 3));
    }

    #[test]
    fn no_limit_when_zero() {
        let t0 = Instant::now();
        let mut a = Admission::default();
        assert!((0..10_000).all(|_| a.try_start(t0, ip("10.0.0.1"), 0)));
        assert!(a.buckets.is_empty());
    }

    #[test]
    fn sources_are_bounded() {
        let t0 = Instant::now();
        let mut a = Admission::default();
        for i in 0..(MAX_SOURCES as u32 + 100) {
            let src = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            assert!(a.try_start(t0, src, 1) || i >= MAX_SOURCES as u32);
            a.refused(t0, src, Refusal::NotAllowed);
        }
        assert_eq!(a.buckets.len(), MAX_SOURCES);
        assert_eq!(a.tallies.len(), MAX_SOURCES);
        // Beyond the map, sources share one bucket of one test a minute
        // (spent by the first of the hundred above).
        let extra = |i: u32| IpAddr::from(std::net::Ipv4Addr::from(0x0b00_0000 + i));
        assert!(!a.try_start(t0, extra(1), 1));
        // Later, full buckets are forgotten to make room.
        let later = t0 + Duration::from_secs(120);
        assert!(a.try_start(later, extra(3), 1));
        assert!(a.buckets.len() <= MAX_SOURCES);
        let sums = a.summaries(later);
        assert!(sums.contains(&Summary {
            source: None,
            count: 100,
            last: Refusal::NotAllowed
        }));
    }

    #[test]
    fn refusals_are_reported_once_then_summarised_per_period() {
        let t0 = Instant::now();
        let mut a = Admission::default();
        let src = ip("192.168.1.9");
        assert!(a.refused(t0, src, Refusal::NotAllowed), "the first is told");
        for _ in 0..999 {
            assert!(!a.refused(t0, src, Refusal::NotAllowed));
        }
        assert!(a.refused(t0, ip("192.168.1.10"), Refusal::NotAuthorized));
        assert!(a.summaries(t0 + Duration::from_secs(59)).is_empty());
        let at = t0 + SUMMARY_PERIOD;
        assert_eq!(
            a.summaries(at),
            vec![Summary {
                source: Some(src),
                count: 999,
                last: Refusal::NotAllowed
            }]
        );
        // Still refused in the next period: counted, summarised again.
        assert!(!a.refused(at, src, Refusal::TooManyTests));
        assert_eq!(a.summaries(at + SUMMARY_PERIOD)[0].count, 1);
        // A quiet period and the source is forgotten.
        assert!(a.summaries(at + SUMMARY_PERIOD * 2).is_empty());
        assert!(a.tallies.is_empty());
        assert!(a.refused(at + SUMMARY_PERIOD * 2, src, Refusal::NotAllowed));
    }
}
