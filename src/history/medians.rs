//! Medians of the figures of some tests, kept apart by kind: what the
//! device view and the history chart draw. Each figure is the median with
//! the quartiles around it (a quiet spread, where min–max would be one
//! solid block); tests whose rate is not the path's capacity (a TCP test
//! paced by `-b`, a test that ended in an error) are counted but add no
//! rates. Each figure keeps at most [`KEEP`] values: past that, a steady
//! sample of them (every second, then every fourth, ... value, in the
//! order given), so a chart of a million tests costs bounded memory and
//! time; below it the figures are exact. No I/O.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::history::compact::{widen, Record, NONE};
use crate::history::kinds::Kind;

/// A median and the quartiles around it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quartiles {
    /// The median.
    pub median: f64,
    /// The first quartile.
    pub low: f64,
    /// The third quartile.
    pub high: f64,
}

/// The figures of the tests of one kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindFigures {
    /// Tests of the kind.
    pub tests: u64,
    /// What the box sent (the device downloaded), bits/s.
    pub download_bps: Option<Quartiles>,
    /// What the box received (the device uploaded), bits/s.
    pub upload_bps: Option<Quartiles>,
    /// Round-trip time, ms (see [`latency_ms`]).
    pub latency_ms: Option<Quartiles>,
    /// Round-trip time under load, ms (see [`loaded_latency_ms`]).
    pub loaded_latency_ms: Option<Quartiles>,
}

/// The round trip a test measured with the line idle, ms (`NaN`: none):
/// a speed-test run's idle latency, else the smallest RTT the box's TCP
/// saw.
pub fn latency_ms(r: &Record) -> f32 {
    let [idle, _, _] = r.latencies_ms();
    if idle.is_nan() {
        r.min_rtt()
    } else {
        idle
    }
}

/// The round trip a test measured under load, ms (`NaN`: none): the worse
/// of its latency down and up, where it has them.
pub fn loaded_latency_ms(r: &Record) -> f32 {
    let [_, down, up] = r.latencies_ms();
    // `max` of a number and NaN is the number.
    down.max(up)
}

/// Whether `r`'s rates say what the path can carry: not paced by a `-b`
/// target (every UDP test is), not ended by an error.
pub fn is_capacity(r: &Record) -> bool {
    !r.paced() && r.error == NONE
}

/// The most values one figure of one kind keeps (then a steady sample).
pub const KEEP: usize = 512;

/// The values of one figure: all of them up to [`KEEP`], then every
/// `stride`-th.
#[derive(Debug, Default, Clone)]
struct Sampled {
    values: Vec<f32>,
    /// Values to pass over before the next one kept.
    skip: u64,
    /// Every how many values one is kept (0 and 1: all).
    stride: u64,
}

impl Sampled {
    fn push(&mut self, x: f32) {
        if !(x.is_finite() && x >= 0.0) {
            return;
        }
        if self.skip > 0 {
            self.skip -= 1;
            return;
        }
        if self.values.len() >= KEEP {
            // Keep every second value, and from now on every second one.
            let mut i = 0;
            self.values.retain(|_| {
                i += 1;
                i % 2 == 1
            });
            self.stride = self.stride.max(1) * 2;
        }
        self.values.push(x);
        self.skip = self.stride.max(1) - 1;
    }
}

/// Figures gathered for one kind.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    tests: u64,
    download: Sampled,
    upload: Sampled,
    latency: Sampled,
    loaded_latency: Sampled,
}

impl Samples {
    /// Counts `r`; its rates count when `rates` (see [`is_capacity`]).
    pub fn add(&mut self, r: &Record, rates: bool) {
        self.tests += 1;
        if rates {
            self.download.push(r.send_bps);
            self.upload.push(r.receive_bps);
        }
        self.latency.push(latency_ms(r));
        self.loaded_latency.push(loaded_latency_ms(r));
    }

    /// Tests counted.
    pub fn tests(&self) -> u64 {
        self.tests
    }

    /// The medians and quartiles.
    pub fn finish(mut self) -> KindFigures {
        KindFigures {
            tests: self.tests,
            download_bps: quartiles(&mut self.download.values),
            upload_bps: quartiles(&mut self.upload.values),
            latency_ms: quartiles(&mut self.latency.values),
            loaded_latency_ms: quartiles(&mut self.loaded_latency.values),
        }
    }
}

/// Figures gathered per kind.
#[derive(Debug, Default, Clone)]
pub struct ByKind([Samples; 4]);

impl ByKind {
    /// Counts `r` of kind `kind`: TCP and ndt7 rates only when they are a
    /// capacity's; UDP and probe rates always (they are what those tests
    /// are about, kept apart).
    pub fn add(&mut self, r: &Record, kind: Kind) {
        let rates = match kind {
            Kind::Tcp | Kind::Ndt7 => is_capacity(r),
            Kind::Udp | Kind::Probe => r.error == NONE,
        };
        self.0[kind as usize].add(r, rates);
    }

    /// The figures of each kind that had tests, by its name.
    pub fn finish(self) -> BTreeMap<&'static str, KindFigures> {
        Kind::ALL
            .into_iter()
            .zip(self.0)
            .filter(|(_, s)| s.tests > 0)
            .map(|(k, s)| (k.name(), s.finish()))
            .collect()
    }
}

/// The median of `values` (the mean of the middle two for an even
/// count), `None` for none. Reorders `values`.
pub fn median(values: &mut [f32]) -> Option<f64> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let (_, &mut upper, _) = values.select_nth_unstable_by(n / 2, f32::total_cmp);
    let upper = f64::from(upper);
    if n % 2 == 1 {
        return Some(shown(upper));
    }
    let lower = values[..n / 2]
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    Some((f64::from(lower) + upper) / 2.0)
}

/// The median and quartiles (nearest rank) of `values`; `None` for none.
fn quartiles(values: &mut [f32]) -> Option<Quartiles> {
    let median = median(values)?;
    let n = values.len();
    let mut rank = |q: usize| {
        let k = ((n - 1) * q) / 4;
        let (_, &mut x, _) = values.select_nth_unstable_by(k, f32::total_cmp);
        shown(f64::from(x))
    };
    let (low, high) = (rank(1), rank(3));
    Some(Quartiles { median, low, high })
}

/// A value that came from an f32, as its shortest decimal.
fn shown(x: f64) -> f64 {
    // Exact: the value is an f32's.
    #[allow(clippy::cast_possible_truncation)]
    widen(x as f32).unwrap_or(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_quartiles() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        let mut v: Vec<f32> = (1..=9).rev().map(|x| x as f32).collect();
        let q = quartiles(&mut v).unwrap();
        assert_eq!((q.low, q.median, q.high), (3.0, 5.0, 7.0));
        assert_eq!(quartiles(&mut [941.2]).unwrap().median, 941.2);
    }

    #[test]
    fn many_values_keep_a_steady_sample() {
        let mut s = Sampled::default();
        for x in 0..KEEP {
            s.push(x as f32);
        }
        assert_eq!(s.values.len(), KEEP, "all of them, exact");
        for x in KEEP..100_000 {
            s.push(x as f32);
        }
        assert!(s.values.len() <= KEEP, "{}", s.values.len());
        assert!(s.values.len() >= KEEP / 2, "{}", s.values.len());
        // Spread over the whole run: the median is near the middle.
        let m = median(&mut s.values).unwrap();
        assert!((m - 50_000.0).abs() < 1_000.0, "{m}");
        s.push(f32::NAN);
        s.push(-1.0);
        assert!(s.values.iter().all(|x| *x >= 0.0));
    }
}
