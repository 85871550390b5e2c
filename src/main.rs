//! The `webperf3` binary: parse the command line, start diagnostics, run,
//! map errors to exit codes.

use std::process::ExitCode;

fn main() -> ExitCode {
    let config = match webperf3::cli::parse() {
        Ok(config) => config,
        Err(code) => return code,
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
