//! Argument parsing and dispatch (DESIGN.md section 8).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{ArgAction, Parser, Subcommand};
use envbuild::progress;

mod cache;
mod export;
mod init;
mod plan;
mod push;
mod realize;
mod shell;
mod store;

/// Reproducible ML environments: declared once, pinned by hash, built into a
/// Nix-compatible store.
#[derive(Debug, Parser)]
#[command(name = "envbuild", version, about, max_term_width = 100)]
pub struct Cli {
    /// The store's physical root [default: $XDG_DATA_HOME/envbuild/store]
    #[arg(long, global = true, env = "ENVBUILD_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Print machine-readable JSON where a command supports it
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only results and errors (no progress, no logs)
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Say more: -v info, -vv debug, -vvv trace (logs on stderr; ENVBUILD_LOG=FILTER
    /// picks them instead, e.g. ENVBUILD_LOG=envbuild::net=debug)
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
    /// How progress is shown on stderr: tty (live display), plain (a line per finished
    /// step, a summary every 10 s), none, or auto (tty on a terminal, else plain)
    #[arg(
        long,
        global = true,
        env = "ENVBUILD_PROGRESS",
        value_enum,
        default_value = "auto",
        value_name = "MODE"
    )]
    pub progress: ProgressArg,
    #[command(subcommand)]
    pub command: Command,
}

/// `--progress`: BuildKit's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressArg {
    /// tty on a terminal, else plain
    Auto,
    /// The live display
    Tty,
    /// One line per finished step and a summary every 10 s
    Plain,
    /// Nothing
    None,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a first spec from a Dockerfile or a requirements file, with a report of what was translated
    Init(init::InitArgs),
    /// Pin every input of a spec by hash, writing SPEC.lock beside it
    Lock(realize::LockArgs),
    /// Dry run: what a realize would fetch and build, and what the store has
    Plan(plan::PlanArgs),
    /// Build a spec into the store and export the image (last stdout line: the manifest digest)
    Realize(realize::RealizeArgs),
    /// Realize a spec and push its image to a registry (last stdout line: the manifest digest)
    Push(push::PushArgs),
    /// Fetch an image's layers into the store, verified (last stdout line: the digest the reference resolved to)
    Pull(push::PullArgs),
    /// Check credentials against a registry and store them where push reads them
    Login(push::LoginArgs),
    /// Remove a registry's stored credentials
    Logout(push::LogoutArgs),
    /// Run a command inside the spec's closure (user and mount namespaces)
    Run(shell::RunArgs),
    /// A shell (or one command) inside the spec's closure plus its [shell] packages
    Shell(shell::ShellArgs),
    /// Run the spec's [[checks]] and the built-in dist-info check inside the closure
    Check(shell::CheckArgs),
    /// Realize a spec's closure and list its components' store paths, in rootfs order
    Closure(shell::ClosureArgs),
    /// Write what a spec pins in another tool's format
    #[command(subcommand)]
    Export(export::ExportCommand),
    /// Binary caches in Nix's layout: push a closure, make signing keys, pull items
    #[command(subcommand)]
    Cache(cache::CacheCommand),
    /// Work with the hash-addressed store directly
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Print a completion script for SHELL to standard output
    ///
    /// e.g. `envbuild completions bash > ~/.local/share/bash-completion/completions/envbuild`
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print envbuild's manual page (roff) to standard output
    ///
    /// e.g. `envbuild man > ~/.local/share/man/man1/envbuild.1`
    Man,
}

impl Command {
    /// What the command was given to work on (a spec or a path), for
    /// `--json` error reports.
    pub fn input(&self) -> Option<String> {
        let path = match self {
            Command::Init(a) => return a.input(),
            Command::Lock(a) => &a.spec,
            Command::Plan(a) => &a.spec,
            Command::Realize(a) => &a.spec,
            Command::Run(a) => &a.enter.spec,
            Command::Shell(a) => &a.enter.spec,
            Command::Check(a) => &a.spec,
            Command::Closure(a) => &a.spec,
            Command::Push(a) => &a.spec,
            Command::Pull(a) => return Some(a.reference.clone()),
            Command::Login(a) => return Some(shown_registry(&a.registry)),
            Command::Logout(a) => return Some(shown_registry(&a.registry)),
            Command::Export(cmd) => return cmd.input(),
            Command::Store(cmd) => return cmd.input(),
            Command::Cache(cmd) => return cmd.input(),
            Command::Completions { .. } | Command::Man => return None,
        };
        Some(path.display().to_string())
    }
}

/// A registry as `login` was given it; one written with user information
/// is never echoed.
fn shown_registry(r: &str) -> String {
    if r.contains('@') {
        "(user information given; not shown)".into()
    } else {
        envbuild::net::redact(r)
    }
}

/// Settings every command sees.
pub struct Global {
    pub store: Option<PathBuf>,
    pub json: bool,
    pub quiet: bool,
    /// How many `-v`.
    pub verbose: u8,
    pub progress: progress::Mode,
}

impl Global {
    pub fn open_store(&self) -> Result<envbuild_store::Store> {
        let root = match &self.store {
            Some(r) => r.clone(),
            None => envbuild_store::default_root().context(
                "no store given: pass --store DIR or set ENVBUILD_STORE (neither XDG_DATA_HOME nor HOME is set)",
            )?,
        };
        Ok(envbuild_store::Store::open(&root)?)
    }

    /// Whether to report progress on stderr (through [`progress`]).
    pub fn show_progress(&self) -> bool {
        self.progress != progress::Mode::None
    }
}

/// The progress mode `--progress` (or `ENVBUILD_PROGRESS`) and `-q` ask for.
fn progress_mode(arg: ProgressArg, quiet: bool) -> progress::Mode {
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    match arg {
        _ if quiet => progress::Mode::None,
        ProgressArg::None => progress::Mode::None,
        ProgressArg::Tty => progress::Mode::Tty,
        ProgressArg::Plain => progress::Mode::Plain,
        ProgressArg::Auto if terminal => progress::Mode::Tty,
        ProgressArg::Auto => progress::Mode::Plain,
    }
}

/// Logs (`tracing`) on stderr, above the progress display: `ENVBUILD_LOG`
/// (an env filter) when set, else warnings, and with `-v`/`-vv`/`-vvv`
/// envbuild's info/debug/trace events; `-q`: none.
fn init_logging(verbose: u8, quiet: bool) -> Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("ENVBUILD_LOG") {
        Ok(f) if !f.trim().is_empty() => EnvFilter::try_new(&f).with_context(|| {
            format!("ENVBUILD_LOG={f:?} is not a log filter (e.g. `debug`, `envbuild::net=debug`)")
        })?,
        _ => EnvFilter::new(match (quiet, verbose) {
            (true, _) => "off",
            (false, 0) => "warn",
            (false, 1) => "warn,envbuild=info,envbuild_store=info",
            (false, 2) => "warn,envbuild=debug,envbuild_store=debug",
            (false, _) => "debug,envbuild=trace,envbuild_store=trace",
        }),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LogWriter::default)
        .with_target(true)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

/// One log event, written to stderr in one piece when it is complete, with
/// the progress display out of the way.
#[derive(Default)]
struct LogWriter(Vec<u8>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            let buf = std::mem::take(&mut self.0);
            progress::suspend(|| {
                let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), &buf);
            });
        }
    }
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    init_logging(cli.verbose, cli.quiet)?;
    let mode = progress_mode(cli.progress, cli.quiet);
    progress::install(mode);
    let global = Global {
        store: cli.store,
        json: cli.json,
        quiet: cli.quiet,
        verbose: cli.verbose,
        progress: mode,
    };
    let result = dispatch(&global, cli.command);
    // Every line of the display finished before the error or the result.
    progress::finish();
    result
}

fn dispatch(global: &Global, command: Command) -> Result<ExitCode> {
    match command {
        Command::Init(args) => init::init(global, args),
        Command::Lock(args) => realize::lock(global, args),
        Command::Plan(args) => plan::plan(global, args),
        Command::Realize(args) => realize::realize(global, args),
        Command::Push(args) => push::push(global, args),
        Command::Pull(args) => push::pull(global, args),
        Command::Login(args) => push::login(global, args),
        Command::Logout(args) => push::logout(global, args),
        Command::Run(args) => shell::run(global, args),
        Command::Shell(args) => shell::shell(global, args),
        Command::Check(args) => shell::check(global, args),
        Command::Closure(args) => shell::closure(global, args),
        Command::Export(cmd) => export::run(global, cmd),
        Command::Store(cmd) => store::run(global, cmd),
        Command::Cache(cmd) => cache::run(global, cmd),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "envbuild", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd)
                .render(&mut std::io::stdout())
                .context("writing the manual page to standard output")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The message of `err` and each cause that adds something the message does
/// not already say, as one line.
fn one_paragraph(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}

/// Which layer failed (the innermost typed error in the chain: a realize
/// that failed on a missing lock is a "lock" error, one that failed on a
/// download a "net" error) and what the user can do about it, where a
/// layer says.
fn classify(err: &anyhow::Error) -> (&'static str, Option<String>) {
    let mut found = ("error", None);
    for cause in err.chain().flat_map(unwrap_transparent) {
        let kind = if let Some(e) = cause.downcast_ref::<envbuild::spec::SpecError>() {
            found.1 = e.hint().or(found.1);
            "spec"
        } else if let Some(e) = cause.downcast_ref::<envbuild::lock::LockError>() {
            if matches!(e, envbuild::lock::LockError::Missing { .. }) {
                found.1 = Some("run `envbuild lock SPEC` first".to_string());
            }
            "lock"
        } else if cause.is::<envbuild::init::InitError>() {
            "init"
        } else if cause.is::<envbuild::realize::RealizeError>() {
            "realize"
        } else if cause.is::<envbuild::export::ExportError>() {
            "export"
        } else if cause.is::<envbuild::check::CheckError>() {
            "check"
        } else if cause.is::<envbuild::shell::ShellError>() {
            "shell"
        } else if cause.is::<envbuild::sandbox::SandboxError>() {
            "sandbox"
        } else if cause.is::<envbuild::registry::RegistryError>() {
            "registry"
        } else if cause.is::<envbuild::cache::CacheError>() {
            "cache"
        } else if cause.is::<envbuild::net::NetError>() {
            "net"
        } else if cause.is::<envbuild_store::StoreError>() {
            "store"
        } else {
            continue;
        };
        found.0 = kind;
    }
    found
}

/// `cause`, then the errors a `#[error(transparent)]` variant of it wraps
/// (the chain skips them: their `source()` is the inner error's source).
fn unwrap_transparent<'a>(
    cause: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    use envbuild::realize::RealizeError as R;
    let inner: Option<&(dyn std::error::Error + 'static)> = match cause.downcast_ref::<R>() {
        Some(R::Lock(e)) => Some(e),
        Some(R::Source(e)) => Some(e),
        Some(R::Store(e)) => Some(e),
        Some(R::Fetch(e)) => Some(e),
        Some(R::Wheel(e)) => Some(e),
        Some(R::Sdist(e)) => Some(e),
        Some(R::Assemble(e)) => Some(e),
        Some(R::Oci(e)) => Some(e),
        Some(R::Model(e)) => Some(e),
        _ => None,
    };
    let mut out = vec![cause];
    out.extend(inner);
    out
}

/// `--json`: the error as one JSON object on standard output,
/// `{"error": {"kind", "message", "input", "hint"}}`.
pub fn report_json(err: &anyhow::Error, input: Option<String>) {
    let (kind, hint) = classify(err);
    println!(
        "{}",
        serde_json::json!({
            "error": {"kind": kind, "message": one_paragraph(err), "input": input, "hint": hint},
        })
    );
}

/// Print an error as one paragraph: the message, then each cause that adds
/// something the message does not already say.
pub fn report(err: &anyhow::Error) {
    if let Some(envbuild::spec::SpecError::Invalid(spec_err)) = err.downcast_ref() {
        // The located message, then the TOML snippet with the key marked.
        let mut snippet = String::new();
        let handler =
            miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor());
        let _ = handler.render_report(&mut snippet, spec_err.as_ref());
        eprintln!("error: {spec_err}");
        for line in snippet.lines().skip(1).filter(|l| !l.trim().is_empty()) {
            eprintln!("{line}");
        }
        return;
    }
    eprintln!("error: {}", one_paragraph(err));
}
