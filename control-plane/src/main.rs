use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    match portcullis::cli::Cli::parse().run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The whole cause chain on one line, without anyhow's backtrace.
            eprintln!("portcullis: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
