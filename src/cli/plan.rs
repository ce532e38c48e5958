//! `envbuild plan SPEC [--json] [--shell]`: a dry run, like `nix build
//! --dry-run`: what is already in the store, what would be fetched (with
//! sizes) and what would be built, and the layer grouping.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use envbuild::realize::{self, RealizeOptions};
use envbuild::spec::Spec;

use super::Global;

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The spec (TOML)
    pub spec: PathBuf,
    /// Plan the shell's closure too (`[shell] packages`)
    #[arg(long)]
    pub shell: bool,
    /// Use only what the store already has to pin (a spec that changed
    /// since its lock is then an error)
    #[arg(long)]
    pub offline: bool,
    /// Ask this binary cache which steps it would serve (repeatable; before
    /// ENVBUILD_SUBSTITUTERS / the configuration's substituters)
    #[arg(long = "substituter", value_name = "URL")]
    pub substituters: Vec<String>,
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub fn plan(global: &Global, args: PlanArgs) -> Result<ExitCode> {
    let spec = Spec::load(&args.spec)?;
    let mut store = global.open_store()?;
    let opts = RealizeOptions {
        offline: args.offline,
        shell: args.shell,
        progress: global.show_progress(),
        substituters: super::realize::substituters(&args.substituters, args.offline)?,
        ..RealizeOptions::default()
    };
    let dry = realize::dry_run(&mut store, &spec, &opts)?;
    envbuild::progress::finish();
    let fetch_bytes: u64 = dry.fetch.iter().map(|f| f.size).sum();
    if global.json {
        println!(
            "{}",
            serde_json::json!({
                "spec": spec.path,
                "nothingToDo": dry.is_empty(),
                "fetch": dry.fetch,
                "fetchBytes": fetch_bytes,
                "add": dry.add,
                "build": dry.build,
                "present": dry.present,
                "layers": dry.layers,
                "lockChanges": dry.lock_changes,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    for c in &dry.lock_changes {
        println!("lock: {c}");
    }
    if dry.is_empty() {
        println!("nothing to do: {} steps are in the store", dry.present);
    }
    if !dry.fetch.is_empty() {
        println!(
            "will fetch {} files ({}):",
            dry.fetch.len(),
            human(fetch_bytes)
        );
        for f in &dry.fetch {
            println!("  {} ({})", f.what, human(f.size));
        }
    }
    if !dry.add.is_empty() {
        println!("will add {} local paths:", dry.add.len());
        for a in &dry.add {
            println!("  {a}");
        }
    }
    if !dry.build.is_empty() {
        let served = dry.build.iter().filter(|b| b.substituter.is_some()).count();
        if served > 0 {
            println!(
                "will substitute {served} steps (their inputs' steps may be substituted too):"
            );
            for b in &dry.build {
                if let Some(s) = &b.substituter {
                    println!("  {} ({}) from {s}", b.name, b.builder);
                }
            }
        }
        if served < dry.build.len() {
            println!("will build {} steps:", dry.build.len() - served);
            for b in dry.build.iter().filter(|b| b.substituter.is_none()) {
                println!("  {} ({})", b.name, b.builder);
            }
        }
    }
    if !dry.is_empty() {
        println!("already in the store: {} steps", dry.present);
    }
    if let Some(layers) = &dry.layers {
        if global.verbose >= 1 {
            println!("layers ({}):", layers.len());
            for (i, l) in layers.iter().enumerate() {
                println!("  {:>3}: {}", i + 1, l.join(", "));
            }
        } else {
            println!("{} layers (-v lists them)", layers.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}
