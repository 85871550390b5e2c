//! What latency figures mean for a person: the bufferbloat grade of a
//! test (from how much its round trips grew under load) and what the link
//! is good for (video calls, streaming, online games). Pure arithmetic on
//! figures already measured; no I/O.
//!
//! Sources (named in `docs/verdict.md`):
//! - the grade uses the thresholds of Waveform's bufferbloat test: an
//!   increase of loaded over idle latency below 5 ms is A+, below 30 ms A,
//!   below 60 ms B, below 200 ms C, below 400 ms D, else F;
//! - "good for" is Cloudflare's AIM (Aggregated Internet Measurement)
//!   scoring as its speed test publishes it: points per measurement,
//!   summed per experience, the sum classed bad, poor, average, good or
//!   great.

use serde::Serialize;

/// Waveform's grades, best first, with the increase (ms) each stays below.
const GRADES: [(&str, f64); 5] = [
    ("A+", 5.0),
    ("A", 30.0),
    ("B", 60.0),
    ("C", 200.0),
    ("D", 400.0),
];

/// The grade of an increase of loaded over idle latency, ms:
/// `"A+"`, `"A"`, `"B"`, `"C"`, `"D"` or `"F"`. A negative increase
/// (loaded faster than idle, within noise) is no increase.
pub fn grade(increase_ms: f64) -> &'static str {
    GRADES
        .iter()
        .find(|(_, below)| increase_ms < *below)
        .map_or("F", |(g, _)| g)
}

/// How much loaded latency grew over `base` (the idle latency, else the
/// test's minimum RTT): the worse of the two loaded figures less `base`,
/// never below zero; `None` without a base or a loaded figure.
pub fn increase(base: Option<f64>, down: Option<f64>, up: Option<f64>) -> Option<f64> {
    let loaded = match (down, up) {
        (Some(d), Some(u)) => d.max(u),
        (d, u) => d.or(u)?,
    };
    Some((loaded - base?).max(0.0))
}

/// A step function: `value` below `steps[i]` scores `points[i]`; at or
/// above every step, the last of `points` (one more than `steps`).
fn threshold(value: f64, steps: &[f64], points: &[i32]) -> i32 {
    let i = steps.iter().take_while(|s| value >= **s).count();
    points[i.min(points.len() - 1)]
}

/// AIM points of a latency or a loaded increase, ms.
fn latency_points(ms: f64) -> i32 {
    threshold(
        ms,
        &[10.0, 20.0, 50.0, 100.0, 500.0],
        &[20, 10, 5, 0, -10, -20],
    )
}

/// AIM points of jitter, ms.
fn jitter_points(ms: f64) -> i32 {
    threshold(ms, &[10.0, 20.0, 100.0, 500.0], &[10, 5, 0, -10, -20])
}

/// AIM points of a download rate, bits/s.
fn download_points(bps: f64) -> i32 {
    threshold(bps, &[1e6, 1e7, 5e7, 1e8], &[0, 5, 10, 20, 30])
}

/// AIM points of packet loss, a ratio (0..1). A test that measures no
/// loss (TCP) scores it 0, as AIM does for a missing loss figure.
fn loss_points(ratio: Option<f64>) -> i32 {
    ratio.map_or(0, |r| {
        threshold(r, &[0.01, 0.05, 0.25, 0.5], &[10, 5, 0, -10, -20])
    })
}

/// AIM's class of a sum of points, given the experience's four steps.
fn class(points: i32, steps: [i32; 4]) -> &'static str {
    const NAMES: [&str; 5] = ["bad", "poor", "average", "good", "great"];
    let i = steps.iter().take_while(|s| points.max(0) >= **s).count();
    NAMES[i]
}

/// What a link is good for, per AIM experience: `"bad"`, `"poor"`,
/// `"average"`, `"good"` or `"great"`; `None` where an input is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GoodFor {
    /// AIM's "real-time communication": idle latency, jitter, loss, loaded increase.
    pub video_calls: Option<&'static str>,
    /// AIM's "streaming": idle latency, loss, download rate, loaded increase.
    pub streaming: Option<&'static str>,
    /// AIM's "gaming": idle latency, loss, loaded increase.
    pub gaming: Option<&'static str>,
}

/// The figures AIM scores.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Inputs {
    /// Idle latency, ms.
    pub latency_ms: Option<f64>,
    /// Variation of the idle round trips, ms.
    pub jitter_ms: Option<f64>,
    /// Loss, a ratio (0..1), where measured.
    pub loss: Option<f64>,
    /// Download rate, bits/s.
    pub download_bps: Option<f64>,
    /// Increase of loaded over idle latency, ms.
    pub increase_ms: Option<f64>,
}

/// AIM's classes for `inputs`; `None` without idle latency and a loaded
/// increase (every experience needs both).
pub fn good_for(inputs: &Inputs) -> Option<GoodFor> {
    let base = latency_points(inputs.latency_ms?) + loss_points(inputs.loss);
    let base = base + latency_points(inputs.increase_ms?);
    Some(GoodFor {
        video_calls: inputs
            .jitter_ms
            .map(|j| class(base + jitter_points(j), [5, 15, 25, 40])),
        streaming: inputs
            .download_bps
            .map(|d| class(base + download_points(d), [15, 20, 40, 60])),
        gaming: Some(class(base, [5, 15, 25, 30])),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grades_follow_waveforms_thresholds() {
        for (ms, g) in [
            (0.0, "A+"),
            (4.9, "A+"),
            (5.0, "A"),
            (29.9, "A"),
            (30.0, "B"),
            (59.9, "B"),
            (60.0, "C"),
            (199.0, "C"),
            (200.0, "D"),
            (399.9, "D"),
            (400.0, "F"),
            (5000.0, "F"),
        ] {
            assert_eq!(grade(ms), g, "{ms}");
        }
    }

    #[test]
    fn the_increase_takes_the_worse_direction_and_needs_a_base() {
        assert_eq!(increase(Some(10.0), Some(50.0), Some(200.0)), Some(190.0));
        assert_eq!(increase(Some(10.0), None, Some(12.0)), Some(2.0));
        assert_eq!(increase(Some(10.0), Some(8.0), None), Some(0.0));
        assert_eq!(increase(None, Some(8.0), None), None);
        assert_eq!(increase(Some(1.0), None, None), None);
    }

    #[test]
    fn aim_classes_a_good_and_a_bloated_link() {
        // 10 ms idle, 2 ms jitter, 100 Mbit/s, +3 ms under load.
        let good = good_for(&Inputs {
            latency_ms: Some(10.0),
            jitter_ms: Some(2.0),
            loss: None,
            download_bps: Some(100e6),
            increase_ms: Some(3.0),
        })
        .unwrap();
        // latency 10 → 10 points, increase 3 → 20: base 30.
        assert_eq!(good.gaming, Some("great"));
        assert_eq!(good.video_calls, Some("great"));
        assert_eq!(good.streaming, Some("great"));
        // 30 ms idle, +250 ms under load, 10 Mbit/s: 5 - 10 = -5 → 0.
        let bloated = good_for(&Inputs {
            latency_ms: Some(30.0),
            jitter_ms: Some(30.0),
            loss: Some(0.0),
            download_bps: Some(5e6),
            increase_ms: Some(250.0),
        })
        .unwrap();
        // Loss 0 scores 10: base 5 (gaming: poor); jitter 30 → 0; download 5 Mbit/s → 5.
        assert_eq!(bloated.gaming, Some("poor"));
        assert_eq!(bloated.video_calls, Some("poor"));
        assert_eq!(bloated.streaming, Some("bad"));
        assert_eq!(good_for(&Inputs::default()), None);
        let partial = good_for(&Inputs {
            latency_ms: Some(1.0),
            increase_ms: Some(1.0),
            ..Inputs::default()
        })
        .unwrap();
        assert_eq!((partial.video_calls, partial.streaming), (None, None));
    }

    #[test]
    fn aim_steps_are_inclusive_at_their_value() {
        assert_eq!(latency_points(9.99), 20);
        assert_eq!(latency_points(10.0), 10);
        assert_eq!(latency_points(500.0), -20);
        assert_eq!(jitter_points(500.0), -20);
        assert_eq!(download_points(0.0), 0);
        assert_eq!(download_points(1e8), 30);
        assert_eq!(class(-30, [5, 15, 25, 30]), "bad");
        assert_eq!(class(30, [5, 15, 25, 30]), "great");
    }
}
