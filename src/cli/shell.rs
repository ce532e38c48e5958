//! `envbuild run`, `envbuild shell`, `envbuild check` and `envbuild
//! closure`: the spec's closure outside the image.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use envbuild::check::{CheckGpu, Checked};
use envbuild::realize::Closure;
use envbuild::shell::{EnterOptions, HOOK_PATH};
use envbuild::spec::Spec;

use super::realize::load_and_realize_closure;
use super::Global;

/// Realize the closure (with the shell's components if `shell`) and
/// assemble (or find) its rootfs.
fn rootfs_of(
    global: &Global,
    spec: &std::path::Path,
    locked: bool,
    offline: bool,
    shell: bool,
) -> Result<(Spec, Closure, PathBuf)> {
    let (spec, store, closure) = load_and_realize_closure(global, spec, locked, offline, shell)?;
    // On a base image, its Env and WorkingDir apply as in the image.
    let spec = envbuild::realize::spec_over_base(&store, &spec, &closure)?;
    let cache = store.cache_dir("rootfs")?;
    let components: Vec<_> = closure
        .components
        .iter()
        .chain(&closure.shell_components)
        .cloned()
        .collect();
    let rootfs = envbuild::assemble::rootfs(&store, &components, &cache, global.show_progress())?;
    Ok((spec, closure, rootfs))
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// What `run` and `shell` share: the spec, how it is realized, and which
/// host variables pass in.
#[derive(Debug, clap::Args)]
pub struct EnterArgs {
    /// The spec (TOML)
    pub spec: PathBuf,
    /// Keep only HOME, USER, TERM and DISPLAY from the host environment
    #[arg(long)]
    pub pure: bool,
    /// Also keep this host variable (repeatable)
    #[arg(long = "keep", value_name = "VAR")]
    pub keep: Vec<String>,
    /// Fail if the spec no longer matches its lock
    #[arg(long)]
    pub locked: bool,
    /// Use only what the store already has
    #[arg(long)]
    pub offline: bool,
    /// Give the sandbox the host's NVIDIA GPUs: device nodes and driver
    /// libraries (automatic when the image sets NVIDIA_VISIBLE_DEVICES and
    /// the host has a GPU)
    #[arg(long)]
    pub gpus: bool,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub enter: EnterArgs,
    /// The command and its arguments
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// `envbuild run SPEC -- CMD`: the command in the image's closure (no
/// hook, no shell packages), its exit status passed through.
pub fn run(global: &Global, args: RunArgs) -> Result<ExitCode> {
    let e = args.enter;
    let (spec, _closure, rootfs) = rootfs_of(global, &e.spec, e.locked, e.offline, false)?;
    let code = envbuild::shell::run(
        &spec,
        &rootfs,
        &args.command,
        &EnterOptions {
            pure: e.pure,
            keep: e.keep,
            gpu: envbuild::shell::gpu_for(&spec, e.gpus)?,
            ..EnterOptions::default()
        },
    )?;
    Ok(exit(code))
}

#[derive(Debug, clap::Args)]
pub struct ShellArgs {
    #[command(flatten)]
    pub enter: EnterArgs,
    /// A command to run instead of an interactive shell (its exit status is the shell's)
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// `envbuild shell SPEC [-- CMD]`: the closure plus `[shell] packages`,
/// the `[shell] hook` on entry, then the command or an interactive shell.
pub fn shell(global: &Global, args: ShellArgs) -> Result<ExitCode> {
    let e = args.enter;
    let (spec, _closure, rootfs) = rootfs_of(global, &e.spec, e.locked, e.offline, true)?;
    let dev = envbuild::shell::dev_shell(&spec, &rootfs, &args.command)?;
    let opts = EnterOptions {
        pure: e.pure,
        keep: e.keep,
        extra_ro: dev
            .hook_file
            .as_ref()
            .map(|f| (f.path().to_path_buf(), HOOK_PATH.to_string()))
            .into_iter()
            .collect(),
        gpu: envbuild::shell::gpu_for(&spec, e.gpus)?,
        ..EnterOptions::default()
    };
    let code = envbuild::shell::run(&spec, &rootfs, &dev.command, &opts)?;
    Ok(exit(code))
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The spec (TOML)
    pub spec: PathBuf,
    /// Fail if the spec no longer matches its lock
    #[arg(long)]
    pub locked: bool,
    /// Use only what the store already has
    #[arg(long)]
    pub offline: bool,
    /// Run every check with the host's NVIDIA GPUs (checks with `gpu =
    /// true` get them in any case, and are skipped on a host without one)
    #[arg(long)]
    pub gpus: bool,
}

/// `envbuild check SPEC`: the built-in dist-info check and every
/// `[[checks]]` entry, in the image's closure; one line per check on stdout
/// (`PASS`/`FAIL`/`SKIP`, the name, the reason); exit status 1 if any
/// failed. A skipped check is not a pass: it is listed as such, and with
/// `--json` its status is "skipped".
pub fn check(global: &Global, args: CheckArgs) -> Result<ExitCode> {
    let (spec, closure, rootfs) = rootfs_of(global, &args.spec, args.locked, args.offline, false)?;
    let gpu = CheckGpu {
        host: if args.gpus {
            envbuild::shell::gpu_for(&spec, true)?
        } else if spec.checks.iter().any(|c| c.gpu)
            || envbuild::sandbox::gpu::image_wants_gpu(&spec.image.env)
        {
            envbuild::sandbox::gpu::Gpu::from_host()?
        } else {
            None
        },
        all: args.gpus || envbuild::sandbox::gpu::image_wants_gpu(&spec.image.env),
    };
    let mut results = vec![Checked::Ran(envbuild::check::dist_info_check(
        &spec,
        &rootfs,
        &closure.lock,
    ))];
    report_one(global, results.last().expect("one result"));
    for c in &spec.checks {
        if global.show_progress() {
            envbuild::progress::message(&format!("checking {} ...", c.name));
        }
        let r = envbuild::check::run_check(&spec, &rootfs, c, &gpu)?;
        report_one(global, &r);
        results.push(r);
    }
    let named = |want: &str| -> Vec<&str> {
        results
            .iter()
            .filter(|r| status_of(r) == want)
            .map(|r| match r {
                Checked::Ran(o) => o.name.as_str(),
                Checked::Skipped { name, .. } => name.as_str(),
            })
            .collect()
    };
    let (passed, failed, skipped) = (named("passed"), named("failed"), named("skipped"));
    if global.json {
        println!(
            "{}",
            serde_json::json!({
                "passed": failed.is_empty(),
                "skipped": skipped.len(),
                "checks": results.iter().map(|r| match r {
                    Checked::Ran(o) => serde_json::json!({
                        "name": o.name, "status": status_of(r), "passed": o.passed,
                        "reason": o.reason, "millis": o.millis,
                    }),
                    Checked::Skipped { name, reason } => serde_json::json!({
                        "name": name, "status": "skipped", "passed": false, "reason": reason,
                    }),
                }).collect::<Vec<_>>(),
            })
        );
    }
    if !global.quiet {
        let mut summary = format!("{} of {} checks passed", passed.len(), results.len());
        if !skipped.is_empty() {
            summary.push_str(&format!("; skipped: {}", skipped.join(", ")));
        }
        if !failed.is_empty() {
            summary.push_str(&format!("; failed: {}", failed.join(", ")));
        }
        eprintln!("{summary}");
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn status_of(r: &Checked) -> &'static str {
    match r {
        Checked::Ran(o) if o.passed => "passed",
        Checked::Ran(_) => "failed",
        Checked::Skipped { .. } => "skipped",
    }
}

fn report_one(global: &Global, r: &Checked) {
    if global.json {
        return;
    }
    match r {
        Checked::Ran(o) => println!(
            "{} {}: {} ({} ms)",
            if o.passed { "PASS" } else { "FAIL" },
            o.name,
            o.reason,
            o.millis
        ),
        Checked::Skipped { name, reason } => println!("SKIP {name}: {reason}"),
    }
}

#[derive(Debug, clap::Args)]
pub struct ClosureArgs {
    /// The spec (TOML)
    pub spec: PathBuf,
    /// List the shell's closure: the image's components, then the
    /// `[shell] packages` components marked `shell-only`
    #[arg(long)]
    pub shell: bool,
    /// Fail if the spec no longer matches its lock
    #[arg(long)]
    pub locked: bool,
    /// Use only what the store already has
    #[arg(long)]
    pub offline: bool,
}

/// `envbuild closure SPEC [--shell]`: realize the closure (no layers, no
/// image) and list its components' store paths in rootfs order, one per
/// line; a shell-only component's line ends with a tab and `shell-only`
/// (with `--json`, label, path and shellOnly).
pub fn closure(global: &Global, args: ClosureArgs) -> Result<ExitCode> {
    let (_spec, store, closure) =
        load_and_realize_closure(global, &args.spec, args.locked, args.offline, args.shell)?;
    let all = closure
        .components
        .iter()
        .map(|c| (c, false))
        .chain(closure.shell_components.iter().map(|c| (c, true)));
    if global.json {
        let items: Vec<_> = all
            .map(|(c, shell_only)| {
                serde_json::json!({
                    "label": c.label,
                    "path": store.physical_path(&c.item),
                    "shellOnly": shell_only,
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "components": items }));
    } else {
        for (c, shell_only) in all {
            if shell_only {
                println!("{}\tshell-only", store.physical_path(&c.item).display());
            } else {
                println!("{}", store.physical_path(&c.item).display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
