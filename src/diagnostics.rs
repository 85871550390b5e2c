//! Where diagnostics go: `tracing` events to standard error, at the level
//! `WEBPERF3_LOG` (or `RUST_LOG`) names (`error`, `warn`, `info`, `debug`,
//! `trace`, `off`); `info` when neither is set. The start-up line is not a
//! diagnostic: it is printed as it always was, for scripts that wait on it.

use std::io::IsTerminal;

use tracing_subscriber::filter::LevelFilter;

/// The level a `WEBPERF3_LOG`/`RUST_LOG` value names; `None` for anything
/// else (a per-module filter such as `webperf3=debug` takes its last level).
pub fn level_from(text: &str) -> Option<LevelFilter> {
    let last = text.rsplit([',', '=']).next()?.trim();
    last.parse().ok()
}

/// Installs the standard-error subscriber. Called once, by `main`; a second
/// call (or one from a test that installed its own) changes nothing.
pub fn init() {
    let level = ["WEBPERF3_LOG", "RUST_LOG"]
        .iter()
        .find_map(|var| std::env::var(var).ok())
        .and_then(|v| level_from(&v))
        .unwrap_or(LevelFilter::INFO);
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_max_level(level)
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_read_from_plain_and_per_module_filters() {
        assert_eq!(level_from("debug"), Some(LevelFilter::DEBUG));
        assert_eq!(level_from("WARN"), Some(LevelFilter::WARN));
        assert_eq!(level_from("off"), Some(LevelFilter::OFF));
        assert_eq!(level_from("webperf3=trace"), Some(LevelFilter::TRACE));
        assert_eq!(level_from("loud"), None);
    }
}
