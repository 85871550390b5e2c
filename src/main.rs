//! The `webperf3` binary: parse the command line, start diagnostics, run,
//! map errors to exit codes (2 for usage, 1 for a run that failed).

use std::process::ExitCode;

use webperf3::cli::{self, UsageError};

fn main() -> ExitCode {
    let config = match cli::parse() {
        Ok(config) => config,
        Err(err) => {
            match &err {
                // Help, version and clap's usage errors, formatted by clap.
                UsageError::Clap(clap_err) => {
                    let _ = clap_err.print();
                }
                UsageError::Invalid(msg) => eprintln!("webperf3: error: {msg}"),
            }
            return ExitCode::from(err.exit_code());
        }
    };
    webperf3::diagnostics::init();
    match webperf3::app::run_main(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("webperf3: error: {err:#}");
            ExitCode::from(1)
        }
    }
}
