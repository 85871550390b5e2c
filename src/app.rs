//! Wires the pieces together: binds (in [`run_main`]), then runs the iperf3
//! ports and the dashboard until a signal arrives.

use crate::cli::Config;

/// Runs the program for `config` until SIGINT/SIGTERM.
pub fn run_main(config: Config) -> anyhow::Result<()> {
    let _ = config;
    todo!()
}
