//! Medians of the figures of some tests, kept apart by kind: what the
//! device view and the history chart draw. Each figure is the median with
//! the quartiles around it (a quiet spread, where min–max would be one
//! solid block); tests whose rate is not the path's capacity (a TCP test
//! paced by `-b`, a test that ended in an error) are counted but add no
//! rates. Holds the figures it is given until it is finished (four bytes
//! a figure), so its memory is bounded by the tests asked about. No I/O.

use std::collections::BTreeMap;

use serde::Serialize;

use super::compact::{widen, Record, NONE};
use super::kinds::Kind;

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
}

/// The round trip a test measured, ms (`NaN`: none). Today the smallest
/// RTT the box's TCP saw (ndt7); a result's measured idle latency, once
/// results carry one, is the figure to prefer here.
pub fn latency_ms(r: &Record) -> f32 {
    r.min_rtt()
}

/// Whether `r`'s rates say what the path can carry: not paced by a `-b`
/// target (every UDP test is), not ended by an error.
pub fn is_capacity(r: &Record) -> bool {
    !r.paced() && r.error == NONE
}

/// Figures gathered for one kind.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    tests: u64,
    download: Vec<f32>,
    upload: Vec<f32>,
    latency: Vec<f32>,
}

impl Samples {
    /// Counts `r`; its rates count when `rates` (see [`is_capacity`]).
    pub fn add(&mut self, r: &Record, rates: bool) {
        self.tests += 1;
        let keep = |to: &mut Vec<f32>, x: f32| {
            if x.is_finite() && x >= 0.0 {
                to.push(x);
            }
        };
        if rates {
            keep(&mut self.download, r.send_bps);
            keep(&mut self.upload, r.receive_bps);
        }
        keep(&mut self.latency, latency_ms(r));
    }

    /// Tests counted.
    pub fn tests(&self) -> u64 {
        self.tests
    }

    /// The medians and quartiles.
    pub fn finish(mut self) -> KindFigures {
        KindFigures {
            tests: self.tests,
            download_bps: quartiles(&mut self.download),
            upload_bps: quartiles(&mut self.upload),
            latency_ms: quartiles(&mut self.latency),
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
}
