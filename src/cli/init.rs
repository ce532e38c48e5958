//! `envbuild init --from-dockerfile FILE | --from-requirements FILE`: write
//! a first spec and report, line by line, what became of the input.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{ArgGroup, Args};

use envbuild::init::{self, InitOptions, Outcome, Translation};

use super::Global;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("from").required(true).args(["from_dockerfile", "from_requirements"])))]
pub struct InitArgs {
    /// Translate a Dockerfile (its directory is the build context)
    #[arg(long, value_name = "FILE")]
    pub from_dockerfile: Option<PathBuf>,
    /// Make a Python spec from a requirements file (a hash-checked one becomes [python] lock)
    #[arg(long, value_name = "FILE")]
    pub from_requirements: Option<PathBuf>,
    /// Where to write the spec ("-": standard output) [default: envbuild.toml beside the input]
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The spec's [env] name [default: the input's directory name]
    #[arg(long)]
    pub name: Option<String>,
    /// Replace an existing spec at the output path
    #[arg(long)]
    pub force: bool,
}

impl InitArgs {
    pub fn input(&self) -> Option<String> {
        self.from_dockerfile
            .as_ref()
            .or(self.from_requirements.as_ref())
            .map(|p| p.display().to_string())
    }
}

pub fn init(global: &Global, args: InitArgs) -> Result<ExitCode> {
    let input = args
        .from_dockerfile
        .as_deref()
        .or(args.from_requirements.as_deref())
        .expect("clap requires one of them");
    let to_stdout = args.output.as_deref() == Some(Path::new("-"));
    let output = match &args.output {
        Some(o) if !to_stdout => o.clone(),
        _ => envbuild::io::parent_dir(input).join("envbuild.toml"),
    };
    if !to_stdout && !args.force && output.exists() {
        bail!(
            "{} exists: pass --force to replace it, or -o to write elsewhere",
            output.display()
        );
    }
    let spec_dir = envbuild::io::parent_dir(&output).to_path_buf();
    let opts = InitOptions {
        name: args.name.clone(),
        spec_dir,
    };
    let translation = match &args.from_dockerfile {
        Some(d) => init::from_dockerfile(d, &opts)?,
        None => init::from_requirements(input, &opts)?,
    };
    let text = translation.draft.render();
    // The spec must load (its [[files]] sources aside: those are the
    // user's to create, and the report says which are missing).
    let loads = envbuild::spec::Spec::parse(&output, &text);
    if to_stdout {
        print!("{text}");
    } else {
        envbuild::io::write_atomically(&output, text.as_bytes())
            .with_context(|| format!("cannot write the spec to {}", output.display()))?;
    }
    report(global, &translation, &output, to_stdout, loads.err())
}

fn report(
    global: &Global,
    t: &Translation,
    output: &Path,
    to_stdout: bool,
    load_error: Option<envbuild::spec::SpecError>,
) -> Result<ExitCode> {
    let count = |o: Outcome| t.notes.iter().filter(|n| n.outcome == o).count();
    if global.json && !to_stdout {
        println!(
            "{}",
            serde_json::json!({
                "spec": output,
                "notes": t.notes,
                "translated": count(Outcome::Translated),
                "check": count(Outcome::Check),
                "notTranslated": count(Outcome::NotTranslated),
                "loads": load_error.is_none(),
                "loadError": load_error.as_ref().map(|e| e.to_string()),
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    if !global.quiet {
        for line in t.report_lines() {
            eprintln!("{line}");
        }
        eprintln!(
            "{} translated, {} to check, {} not translated",
            count(Outcome::Translated),
            count(Outcome::Check),
            count(Outcome::NotTranslated)
        );
        if let Some(e) = &load_error {
            eprintln!("the spec does not load yet: {e}");
        }
    }
    if !to_stdout {
        println!("{}", output.display());
    }
    Ok(ExitCode::SUCCESS)
}
