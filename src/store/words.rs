//! Figures in the words a person reads: rates, shares, times.

/// A bit rate: `850 kbit/s`, `49.9 Mbit/s`, `9.41 Gbit/s` (a whole number
/// loses its `.0`: `50 Mbit/s`).
pub fn rate(bps: f64) -> String {
    let (value, unit, decimals) = if bps >= 1e9 {
        (bps / 1e9, "Gbit/s", 2)
    } else if bps >= 1e6 {
        (bps / 1e6, "Mbit/s", 1)
    } else if bps >= 1e3 {
        (bps / 1e3, "kbit/s", 1)
    } else {
        (bps, "bit/s", 0)
    };
    format!("{} {unit}", trimmed(value, decimals))
}

/// A bit rate to three significant digits, as a headline gives it:
/// `941 Mbit/s`, `52.6 Mbit/s`, `9.41 Gbit/s`, `1 Gbit/s`.
pub fn short_rate(bps: f64) -> String {
    let (value, unit) = if bps >= 1e9 {
        (bps / 1e9, "Gbit/s")
    } else if bps >= 1e6 {
        (bps / 1e6, "Mbit/s")
    } else if bps >= 1e3 {
        (bps / 1e3, "kbit/s")
    } else {
        (bps, "bit/s")
    };
    let decimals = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    format!("{} {unit}", trimmed(value, decimals))
}

/// A share as a whole percentage: `94 %`.
pub fn whole_percent(share: f64) -> String {
    format!("{:.0} %", share * 100.0)
}

/// A share as a percentage with one decimal: `99.8 %`.
pub fn percent(share: f64) -> String {
    format!("{} %", trimmed(share * 100.0, 1))
}

/// Microseconds as seconds: `1.75 s`.
pub fn seconds(us: f64) -> String {
    format!("{} s", trimmed(us / 1e6, 2))
}

/// Microseconds as milliseconds: `0.004 ms`, `12.3 ms`.
pub fn millis(us: f64) -> String {
    let ms = us / 1e3;
    let decimals = if ms < 1.0 { 3 } else { 1 };
    format!("{} ms", trimmed(ms, decimals))
}

/// `n` `what`, with an `s` unless `n` is 1.
pub fn plural(n: f64, what: &str) -> String {
    let s = if n == 1.0 { "" } else { "s" };
    format!("{} {what}{s}", trimmed(n, 1))
}

/// `value` with at most `decimals` decimals and no trailing zeros.
fn trimmed(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_as_words() {
        assert_eq!(rate(49_900_000.0), "49.9 Mbit/s");
        assert_eq!(rate(50_000_000.0), "50 Mbit/s");
        assert_eq!(rate(9_412_345_678.0), "9.41 Gbit/s");
        assert_eq!(rate(850_000.0), "850 kbit/s");
        assert_eq!(rate(12.0), "12 bit/s");
        assert_eq!(percent(0.998), "99.8 %");
        assert_eq!(percent(1.0), "100 %");
        assert_eq!(seconds(1_752_000.0), "1.75 s");
        assert_eq!(millis(4.0), "0.004 ms");
        assert_eq!(millis(12_345.0), "12.3 ms");
        assert_eq!(plural(1.0, "core"), "1 core");
        assert_eq!(plural(4.0, "stream"), "4 streams");
        assert_eq!(short_rate(941_234_567.0), "941 Mbit/s");
        assert_eq!(short_rate(52_640_000.0), "52.6 Mbit/s");
        assert_eq!(short_rate(1e9), "1 Gbit/s");
        assert_eq!(short_rate(9_412_345_678.0), "9.41 Gbit/s");
        assert_eq!(whole_percent(0.9412), "94 %");
    }
}
