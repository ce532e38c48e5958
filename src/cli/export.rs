//! `envbuild export pylock SPEC [-o FILE]`: the spec's pinned wheels as a
//! PEP 751 lock file, for pip/uv or another machine.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use envbuild::python::pylock;
use envbuild::realize::{self, RealizeOptions};
use envbuild::sources::python::lockfile;
use envbuild::spec::Spec;

use super::Global;

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Write the spec's wheels as a PEP 751 pylock.toml (from its lock, made first if needed)
    Pylock(PylockArgs),
}

impl ExportCommand {
    /// The spec the command works on, for `--json` error reports.
    pub fn input(&self) -> Option<String> {
        match self {
            ExportCommand::Pylock(a) => Some(a.spec.display().to_string()),
        }
    }
}

#[derive(Debug, Args)]
pub struct PylockArgs {
    /// The spec (TOML)
    pub spec: PathBuf,
    /// Where to write it (by convention pylock.toml or pylock.NAME.toml) [default: stdout]
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn run(global: &Global, cmd: ExportCommand) -> Result<ExitCode> {
    match cmd {
        ExportCommand::Pylock(args) => export_pylock(global, args),
    }
}

fn export_pylock(global: &Global, args: PylockArgs) -> Result<ExitCode> {
    let spec = Spec::load(&args.spec)?;
    let mut store = global.open_store()?;
    let opts = RealizeOptions {
        progress: global.show_progress(),
        ..RealizeOptions::default()
    };
    let (lock, _changed) = realize::lock(&mut store, &spec, &opts)?;
    let (target, wheels) = lockfile::export_wheels(&spec, &lock)?;
    let out_dir = match &args.output {
        Some(o) => std::fs::canonicalize(envbuild::io::parent_dir(o))
            .with_context(|| format!("the directory of {} does not exist", o.display()))?,
        None => std::env::current_dir().context("the current directory")?,
    };
    let text = pylock::write(&target, &wheels, &out_dir);
    match &args.output {
        None => std::io::stdout().write_all(text.as_bytes())?,
        Some(o) => {
            envbuild::io::write_atomically(o, text.as_bytes())
                .with_context(|| format!("writing {}", o.display()))?;
            if global.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "pylock": o,
                        "wheels": wheels.len(),
                        "target": target.to_string(),
                    })
                );
            } else if !global.quiet {
                eprintln!(
                    "wrote {} ({} wheels for {target})",
                    o.display(),
                    wheels.len()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
