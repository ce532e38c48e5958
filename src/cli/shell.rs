//! `envbuild run`, `envbuild shell`, `envbuild check` and `envbuild
//! closure`: the spec's closure outside the image.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
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
    let cache = store.cache_dir("rootfs")?;
    let components: Vec<_> = closure
        .components
        .iter()
        .chain(&closure.shell_components)
        .cloned()
        .collect();
    let rootfs = envbuild::shell::rootfs(&store, &components, &cache, global.show_progress())?;
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
}

/// `envbuild check SPEC`: the built-in dist-info check and every
/// `[[checks]]` entry, in the image's closure; one line per check on stdout
/// (`PASS`/`FAIL`, the name, the reason); exit status 1 if any failed.
pub fn check(global: &Global, args: CheckArgs) -> Result<ExitCode> {
    let (spec, closure, rootfs) = rootfs_of(global, &args.spec, args.locked, args.offline, false)?;
    let mut outcomes = vec![envbuild::check::dist_info_check(
        &spec,
        &rootfs,
        &closure.lock,
    )];
    report_one(global, outcomes.last().expect("one outcome"));
    for c in &spec.checks {
        if global.show_progress() {
            eprintln!("checking {} ...", c.name);
        }
        let o = envbuild::check::run_check(&spec, &rootfs, c)?;
        report_one(global, &o);
        outcomes.push(o);
    }
    let failed = outcomes.iter().filter(|o| !o.passed).count();
    if global.json {
        println!(
            "{}",
            serde_json::json!({
                "passed": failed == 0,
                "checks": outcomes.iter().map(|o| serde_json::json!({
                    "name": o.name, "passed": o.passed, "reason": o.reason, "millis": o.millis,
                })).collect::<Vec<_>>(),
            })
        );
    }
    if !global.quiet {
        eprintln!(
            "{} of {} checks passed{}",
            outcomes.len() - failed,
            outcomes.len(),
            if failed > 0 {
                format!(
                    "; failed: {}",
                    outcomes
                        .iter()
                        .filter(|o| !o.passed)
                        .map(|o| o.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                String::new()
            }
        );
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn report_one(global: &Global, o: &envbuild::check::Outcome) {
    if global.json {
        return;
    }
    println!(
        "{} {}: {} ({} ms)",
        if o.passed { "PASS" } else { "FAIL" },
        o.name,
        o.reason,
        o.millis
    );
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
