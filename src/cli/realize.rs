//! `envbuild lock` and `envbuild realize` (and the closure they share with
//! `run`, `shell`, `check` and `closure`, in `shell.rs`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use envbuild::export::{self, Format};
use envbuild::progress;
use envbuild::realize::{self, RealizeOptions};
use envbuild::spec::Spec;

use super::Global;

#[derive(Debug, clap::Args)]
pub struct LockArgs {
    /// The spec (TOML); the lock is written beside it as SPEC.lock
    pub spec: PathBuf,
    /// Resolve Python requirements as if the index held nothing uploaded after DATE
    /// (YYYY-MM-DD or RFC 3339), so a lock can be reproduced later
    #[arg(long, value_name = "DATE")]
    pub exclude_newer: Option<String>,
    /// Resolve every Python package afresh (as of now, or --exclude-newer), not
    /// keeping the old lock's versions
    #[arg(long, conflicts_with = "upgrade_package")]
    pub upgrade: bool,
    /// Move this package (and what its new constraints force) to the newest
    /// version allowed; every other pin stays (repeatable)
    #[arg(long, value_name = "NAME")]
    pub upgrade_package: Vec<String>,
}

/// `--exclude-newer`: an RFC 3339 instant, or a bare date `YYYY-MM-DD`
/// meaning the whole of that day (UTC) is included, as uv 0.13 includes it
/// (uv takes the day in the host's local time zone; envbuild in UTC, so a
/// lock does not depend on the host's zone): files uploaded up to the last
/// microsecond of the day count, the next midnight's do not.
pub(crate) fn parse_date(s: &str) -> Result<envbuild::python::resolve::Timestamp> {
    let t: envbuild::python::resolve::Timestamp = s.parse().map_err(|e| {
        anyhow::anyhow!(
            "--exclude-newer {s:?} is not a date (expected YYYY-MM-DD or RFC 3339): {e}"
        )
    })?;
    if s.trim().len() == 10 {
        // The end of that day: the next midnight, exclusive.
        return Ok(envbuild::python::resolve::Timestamp::from_micros(
            t.as_micros() + 86_400_000_000 - 1,
        ));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_bare_date_includes_the_whole_day() {
        let d = super::parse_date("2025-12-02").unwrap();
        assert_eq!(d.to_string(), "2025-12-02T23:59:59.999999Z");
        let t = super::parse_date("2025-12-02T01:57:45Z").unwrap();
        assert_eq!(t.to_string(), "2025-12-02T01:57:45Z");
        assert!(super::parse_date("2025-13-02").is_err());
    }
}

/// `--format`: [`Format`] as the command line spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// One tar: an OCI layout that is also a docker archive
    OciArchive,
    /// An OCI layout directory (blobs hardlinked from the store)
    OciDir,
    /// The same tar as oci-archive, for `docker load`
    Docker,
    /// The root file system as a directory
    Rootfs,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::OciArchive => Format::OciArchive,
            FormatArg::OciDir => Format::OciDir,
            FormatArg::Docker => Format::Docker,
            FormatArg::Rootfs => Format::Rootfs,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct RealizeArgs {
    /// The spec (TOML)
    pub spec: PathBuf,
    /// Where to write the result [default: ./<name>.tar, ./<name>-oci or ./<name>-rootfs];
    /// `-` streams the archive to standard output (the digest then goes to stderr)
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// What to write
    #[arg(long, value_enum, default_value = "oci-archive")]
    pub format: FormatArg,
    /// Fail, naming what changed, if the spec no longer matches its lock
    #[arg(long)]
    pub locked: bool,
    /// Use only what the store already has (and file:// substituters); never download
    #[arg(long)]
    pub offline: bool,
    /// Ask this binary cache for steps' outputs and inputs before building or fetching them
    /// (repeatable; before ENVBUILD_SUBSTITUTERS / the configuration's substituters)
    #[arg(long = "substituter", value_name = "URL")]
    pub substituters: Vec<String>,
    /// Then push the image to HOST[:PORT]/REPO[:TAG][@sha256:DIGEST], as `envbuild push` does
    #[arg(long, value_name = "REF")]
    pub push: Option<String>,
    /// With --push: speak plain HTTP to this registry (HOST or HOST:PORT)
    #[arg(long = "insecure-registry", value_name = "HOST", requires = "push")]
    pub insecure_registry: Vec<String>,
}

pub fn lock(global: &Global, args: LockArgs) -> Result<ExitCode> {
    let spec = Spec::load(&args.spec)?;
    let mut store = global.open_store()?;
    let opts = RealizeOptions {
        progress: global.show_progress(),
        exclude_newer: args.exclude_newer.as_deref().map(parse_date).transpose()?,
        upgrade: if args.upgrade {
            envbuild::sources::Upgrade::All
        } else if !args.upgrade_package.is_empty() {
            envbuild::sources::Upgrade::Packages(
                args.upgrade_package
                    .iter()
                    .map(|n| envbuild::python::wheel::normalize_name(n))
                    .collect(),
            )
        } else {
            envbuild::sources::Upgrade::Nothing
        },
        ..RealizeOptions::default()
    };
    let (lock, changed) = realize::lock(&mut store, &spec, &opts)?;
    progress::finish();
    let path = envbuild::lock::lock_path(&spec.path);
    if global.json {
        println!(
            "{}",
            serde_json::json!({
                "lock": path,
                "written": changed,
                "pins": lock.pin_count(),
                "sourceDateEpoch": lock.source_date_epoch,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    if !global.quiet {
        eprintln!(
            "{} {} ({} pins, source-date-epoch {})",
            if changed { "wrote" } else { "unchanged:" },
            path.display(),
            lock.pin_count(),
            lock.source_date_epoch
        );
    }
    println!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// The substituters `extra` (`--substituter`) and the user's configuration
/// name (`ENVBUILD_SUBSTITUTERS`, the config file), with the trusted keys;
/// `None` when there are none. `--offline`: only `file://` ones.
pub(super) fn substituters(
    extra: &[String],
    offline: bool,
) -> Result<Option<std::sync::Arc<envbuild::cache::Substituters>>> {
    let config = envbuild::cache::CacheConfig::from_env()?;
    let s = envbuild::cache::Substituters::new(extra, &config, offline)?;
    Ok((!s.is_empty()).then(|| std::sync::Arc::new(s)))
}

/// Load the spec and realize it (up to the image; no export).
fn options(
    global: &Global,
    locked: bool,
    offline: bool,
    extra: &[String],
) -> Result<RealizeOptions> {
    Ok(RealizeOptions {
        locked,
        offline,
        progress: global.show_progress(),
        substituters: substituters(extra, offline)?,
        ..RealizeOptions::default()
    })
}

pub(super) fn load_and_realize(
    global: &Global,
    spec: &std::path::Path,
    locked: bool,
    offline: bool,
    extra_substituters: &[String],
) -> Result<(Spec, envbuild_store::Store, realize::Realized)> {
    let spec = Spec::load(spec)?;
    let mut store = global.open_store()?;
    let opts = options(global, locked, offline, extra_substituters)?;
    let realized = realize::realize(&mut store, &spec, &opts)?;
    Ok((spec, store, realized))
}

/// The spec's closure only (no layers, no image): what `run`, `shell`,
/// `check` and `closure` need; with `shell`, the shell-only components too.
pub(super) fn load_and_realize_closure(
    global: &Global,
    spec: &std::path::Path,
    locked: bool,
    offline: bool,
    shell: bool,
) -> Result<(Spec, envbuild_store::Store, realize::Closure)> {
    let spec = Spec::load(spec)?;
    let mut store = global.open_store()?;
    let opts = RealizeOptions {
        shell,
        ..options(global, locked, offline, &[])?
    };
    let closure = realize::realize_closure(&mut store, &spec, &opts)?;
    // What follows (a sandboxed command, a list) is not progress.
    progress::finish();
    Ok((spec, store, closure))
}

/// Keep what was realized for this spec (and its inputs) alive across gc
/// while the spec file exists.
pub(super) fn keep_roots(
    store: &mut envbuild_store::Store,
    spec: &Spec,
    realized: &realize::Realized,
) -> Result<()> {
    Ok(realize::roots::keep(
        store, &spec.path, &spec.name, realized,
    )?)
}

pub fn realize(global: &Global, args: RealizeArgs) -> Result<ExitCode> {
    // A reference to push to is checked before anything is built.
    let push_to = args
        .push
        .as_deref()
        .map(envbuild::registry::Reference::parse)
        .transpose()?;
    let started = Instant::now();
    let (spec, mut store, realized) = load_and_realize(
        global,
        &args.spec,
        args.locked,
        args.offline,
        &args.substituters,
    )?;
    let format = Format::from(args.format);
    let out = args.output.unwrap_or_else(|| {
        PathBuf::from(match format {
            Format::OciArchive | Format::Docker => format!("{}.tar", spec.name),
            Format::OciDir => format!("{}-oci", spec.name),
            Format::Rootfs => format!("{}-rootfs", spec.name),
        })
    });
    // `-o -`: the archive is standard output, so everything else that
    // would go there (the report, volume lines, the digest) goes to stderr.
    let streaming = out.as_os_str() == "-";
    let step = global.show_progress().then(|| {
        progress::plan_steps(1);
        progress::step("export", &out.display().to_string())
    });
    let exported = if streaming {
        let stdout = std::io::stdout().lock();
        let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout);
        export::export_to_writer(&realized, format, &mut w)?;
        export::Exported::Written
    } else {
        export::export(&mut store, &realized, format, &out)?
    };
    if let Some(step) = step {
        step.done();
    }
    progress::finish();
    let say = |line: String| {
        if streaming {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    keep_roots(&mut store, &spec, &realized)?;
    let pushed = match &push_to {
        Some(reference) => Some(super::push::push_realized(
            global,
            &store,
            &realized,
            reference,
            &args.insecure_registry,
        )?),
        None => None,
    };
    if global.json {
        let mut doc = serde_json::json!({
            "output": out,
            "format": format!("{format:?}"),
            "reference": realized.image.reference,
            "components": realized.components.iter().map(|c| serde_json::json!({
                "label": c.label, "path": store.physical_path(&c.item),
            })).collect::<Vec<_>>(),
            "layers": realized.layers.iter().map(|l| serde_json::json!({
                "digest": l.blob.digest, "diffId": l.blob.diff_id, "size": l.blob.size,
                "components": l.components,
            })).collect::<Vec<_>>(),
            "built": realized.built,
            "reused": realized.reused,
            "substituted": realized.substituted,
            "lockWritten": realized.lock_written,
            "outputWritten": exported == export::Exported::Written,
            "volumes": realized.volumes.iter().map(|v| serde_json::json!({
                "name": v.name, "source": v.source, "path": v.path,
            })).collect::<Vec<_>>(),
        });
        if let Some(p) = &pushed {
            doc.as_object_mut()
                .expect("an object")
                .insert("push".into(), p.json());
        }
        say(doc.to_string());
    } else if !global.quiet {
        eprintln!(
            "{} -> {} ({} layers; {} steps built, {} reused{}{}{}) in {:.2?}",
            realized.image.reference,
            out.display(),
            realized.layers.len(),
            realized.built,
            realized.reused,
            if realized.substituted > 0 {
                format!(", {} substituted", realized.substituted)
            } else {
                String::new()
            },
            if realized.lock_written {
                "; lock written"
            } else {
                ""
            },
            if exported == export::Exported::AlreadyThere {
                "; output already up to date"
            } else {
                ""
            },
            started.elapsed()
        );
        if let Some(p) = &pushed {
            eprintln!("{}", p.summary());
        }
        if global.verbose >= 1 {
            for l in &realized.layers {
                eprintln!(
                    "  {} {:>10} {}",
                    l.blob.digest,
                    l.blob.size,
                    l.components.join(", ")
                );
            }
        }
    }
    if !global.json {
        // Models kept out of the image: where to mount each from.
        for v in &realized.volumes {
            say(format!(
                "volume {}: mount {} at {}",
                v.name,
                v.source.display(),
                v.path
            ));
        }
    }
    say(realized.image.digest().to_string());
    Ok(ExitCode::SUCCESS)
}
