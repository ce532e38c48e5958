//! The `envbuild` command line. Errors become one report at this edge; every
//! layer below returns its own typed error.

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let (json, input) = (args.json, args.command.input());
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            if json {
                cli::report_json(&err, input);
            } else {
                cli::report(&err);
            }
            ExitCode::FAILURE
        }
    }
}
