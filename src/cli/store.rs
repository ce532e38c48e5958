//! `envbuild store ...`: direct access to the store (DESIGN.md section 3).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use envbuild_store::{nar, Store, StorePath};

use super::Global;

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Add a file or directory; prints the item's path
    Add {
        path: PathBuf,
        /// The item's name [default: the path's file name]
        #[arg(long)]
        name: Option<String>,
    },
    /// Print the NAR hash of any path (sha256-<base64>, as `nix hash path`)
    Hash {
        path: PathBuf,
        /// Print nix-base32 instead (as `nix hash path --base32`)
        #[arg(long)]
        base32: bool,
    },
    /// Write the NAR serialization of any path to stdout
    Dump { path: PathBuf },
    /// Re-hash every item; exit 1 naming each one that does not match
    Verify,
    /// Remove every item that no root reaches (dead roots first: a spec's
    /// roots die with its file)
    Gc(GcArgs),
    /// Manage the roots that keep items alive
    #[command(subcommand)]
    Root(RootCommand),
    /// Print the items a path refers to, transitively (itself included)
    Closure {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Print what the store records about items
    PathInfo {
        #[arg(required = true)]
        paths: Vec<String>,
    },
}

impl StoreCommand {
    /// The path or item the command works on, for `--json` error reports.
    pub fn input(&self) -> Option<String> {
        match self {
            StoreCommand::Add { path, .. }
            | StoreCommand::Hash { path, .. }
            | StoreCommand::Dump { path } => Some(path.display().to_string()),
            StoreCommand::Closure { paths } | StoreCommand::PathInfo { paths } => {
                Some(paths.join(" "))
            }
            StoreCommand::Root(RootCommand::Add { path, .. }) => Some(path.clone()),
            StoreCommand::Root(RootCommand::Remove { name }) => Some(name.clone()),
            StoreCommand::Verify | StoreCommand::Gc(_) | StoreCommand::Root(RootCommand::List) => {
                None
            }
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// Say what would be removed; remove nothing
    #[arg(long)]
    dry_run: bool,
    /// Keep the fetched inputs (.debs, wheels, sdists, model files) of live
    /// specs, so they still realize --offline
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    keep_fetched: bool,
    /// Remove only unreachable items registered at least this long ago (e.g. 30d, 12h)
    #[arg(long, value_name = "DURATION", value_parser = parse_age)]
    older_than: Option<std::time::Duration>,
    /// Remove unreachable items, the oldest first, only until the store is
    /// at most SIZE (NAR bytes; e.g. 50G, 500M)
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_size: Option<u64>,
}

fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    envbuild::spec::parse_duration(&envbuild::spec::DurationSpec::Text(s.into())).ok_or_else(|| {
        format!("{s:?} is not a duration (expected a number with s, m, h or d, e.g. 30d)")
    })
}

/// `50G`, `1.5GiB`, `500M`, `1024`: bytes, with binary K/M/G/T suffixes.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| {
        format!("{s:?} is not a size (expected e.g. 50G, 500M or a number of bytes)")
    })?;
    let unit = unit
        .trim()
        .trim_end_matches(['B', 'b'])
        .trim_end_matches('i');
    let scale: u64 = match unit.to_ascii_uppercase().as_str() {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(format!("{s:?} has an unknown unit (expected K, M, G or T)")),
    };
    let bytes = n * scale as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("{s:?} is too large"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_take_binary_suffixes_and_refuse_unknown_units() {
        assert_eq!(super::parse_size("1024"), Ok(1024));
        assert_eq!(super::parse_size("50G"), Ok(50 << 30));
        assert_eq!(super::parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(super::parse_size("500m"), Ok(500 << 20));
        assert!(super::parse_size("5X").is_err());
        assert!(super::parse_size("G").is_err());
        assert_eq!(super::parse_age("30d").unwrap().as_secs(), 30 * 86400);
        assert!(super::parse_age("soon").is_err());
    }
}

#[derive(Debug, Subcommand)]
pub enum RootCommand {
    /// Keep an item (and its closure) alive
    Add {
        path: String,
        /// The root's name [default: the item's basename]
        #[arg(long)]
        name: Option<String>,
        /// Keep it alive only while this symlink points at the item
        #[arg(long)]
        link: Option<PathBuf>,
    },
    /// Stop keeping a root alive
    Remove { name: String },
    /// List the roots
    List,
}

/// `1.4 GiB`, `512 B`.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn default_name(path: &Path) -> Result<String> {
    let abs =
        std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))?;
    let name = abs
        .file_name()
        .with_context(|| format!("{} has no file name; pass --name NAME", path.display()))?;
    Ok(name.to_string_lossy().into_owned())
}

pub fn run(global: &Global, cmd: StoreCommand) -> Result<ExitCode> {
    let stdout = std::io::stdout();
    match cmd {
        StoreCommand::Add { path, name } => {
            let name = match name {
                Some(n) => n,
                None => default_name(&path)?,
            };
            let mut store = global.open_store()?;
            let added = store.add_path(&path, &name)?;
            if global.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "path": added.physical,
                        "storePath": added.path.to_absolute(),
                        "narHash": added.nar.to_sri(),
                        "narSize": added.nar.size,
                        "copied": added.copied,
                    })
                );
            } else {
                if global.verbose >= 1 {
                    eprintln!(
                        "{} {}",
                        if added.copied {
                            "added"
                        } else {
                            "already valid:"
                        },
                        added.path.to_absolute()
                    );
                }
                println!("{}", added.physical.display());
            }
        }
        StoreCommand::Hash { path, base32 } => {
            let h = nar::hash_path(&path)?;
            if global.json {
                println!(
                    "{}",
                    serde_json::json!({"path": path, "narHash": h.to_sri(), "narSize": h.size})
                );
            } else if base32 {
                println!("{}", h.to_nix_base32());
            } else {
                println!("{}", h.to_sri());
            }
        }
        StoreCommand::Dump { path } => {
            let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
            nar::dump(&path, &mut out)?;
            out.flush().context("cannot write to stdout")?;
        }
        StoreCommand::Verify => {
            let store = global.open_store()?;
            let pb = envbuild::progress::counter("verifying", 0);
            let report = store.verify(|i, n, p| {
                pb.set(i as u64, n as u64, p.basename().to_string());
            })?;
            drop(pb);
            if global.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "checked": report.checked,
                        "problems": report.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                        "unregistered": report.unregistered,
                    })
                );
            } else {
                for p in &report.problems {
                    eprintln!("error: {p}");
                }
                if !global.quiet {
                    eprintln!(
                        "checked {} items: {} problems{}",
                        report.checked,
                        report.problems.len(),
                        if report.unregistered.is_empty() {
                            String::new()
                        } else {
                            format!(
                                ", {} unregistered leftovers of interrupted adds (removed by `envbuild store gc`)",
                                report.unregistered.len()
                            )
                        }
                    );
                }
            }
            if !report.problems.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
        StoreCommand::Gc(args) => {
            let mut store = global.open_store()?;
            let inputs_roots =
                |r: &envbuild_store::Root| envbuild::realize::roots::is_inputs_root(r);
            let opts = envbuild_store::GcOptions {
                dry_run: args.dry_run,
                ignore_root: (!args.keep_fetched).then_some(&inputs_roots as _),
                older_than: args.older_than,
                max_size: args.max_size,
            };
            let r = store.gc_with(&opts)?;
            if global.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "dryRun": args.dry_run,
                        "removed": r.removed.iter().map(|p| p.basename()).collect::<Vec<_>>(),
                        "bytesFreed": r.bytes_freed,
                        "bytesLeft": r.bytes_left,
                        "garbageRemoved": r.garbage_removed,
                        "keptGarbage": r.kept_garbage,
                        "live": r.live,
                        "tempRoots": r.temp_roots,
                        "deadRoots": r.dead_roots,
                    })
                );
            } else {
                for p in &r.removed {
                    println!("{}", store.physical_path(p).display());
                }
                if !global.quiet {
                    for root in &r.dead_roots {
                        eprintln!("dead root {root}");
                    }
                    eprintln!(
                        "{} {} items ({} of NAR), {} leftovers, {} dead roots; {} items kept alive ({} in use by running processes){}; {} left",
                        if args.dry_run { "would remove" } else { "removed" },
                        r.removed.len(),
                        human_bytes(r.bytes_freed),
                        r.garbage_removed,
                        r.dead_roots.len(),
                        r.live,
                        r.temp_roots,
                        if r.kept_garbage > 0 {
                            format!(", {} unreachable items kept by --older-than/--max-size", r.kept_garbage)
                        } else {
                            String::new()
                        },
                        human_bytes(r.bytes_left),
                    );
                }
            }
        }
        StoreCommand::Root(cmd) => {
            let mut store = global.open_store()?;
            match cmd {
                RootCommand::Add { path, name, link } => {
                    let item = store.parse_item(&path)?;
                    let name = name.unwrap_or_else(|| item.basename());
                    let link = match link {
                        Some(l) => Some(
                            std::path::absolute(&l)
                                .with_context(|| format!("cannot resolve {}", l.display()))?,
                        ),
                        None => None,
                    };
                    store.add_root(&name, &item, link.as_deref())?;
                    if global.json {
                        println!(
                            "{}",
                            serde_json::json!({
                                "name": name,
                                "path": store.physical_path(&item),
                                "link": link,
                            })
                        );
                    }
                }
                RootCommand::Remove { name } => {
                    store.remove_root(&name)?;
                    if global.json {
                        println!("{}", serde_json::json!({ "removed": name }));
                    }
                }
                RootCommand::List if global.json => {
                    let roots: Vec<_> = store
                        .roots()?
                        .into_iter()
                        .map(|r| {
                            serde_json::json!({
                                "name": r.name,
                                "path": store.physical_path(&r.path),
                                "link": r.link,
                                "guard": r.guard,
                            })
                        })
                        .collect();
                    println!("{}", serde_json::Value::Array(roots));
                }
                RootCommand::List => {
                    for r in store.roots()? {
                        let phys = store.physical_path(&r.path);
                        match (&r.link, &r.guard) {
                            (Some(l), _) => {
                                println!("{}\t{}\t{}", r.name, phys.display(), l.display())
                            }
                            (None, Some(g)) => println!(
                                "{}\t{}\twhile {} exists",
                                r.name,
                                phys.display(),
                                g.display()
                            ),
                            (None, None) => println!("{}\t{}", r.name, phys.display()),
                        }
                    }
                }
            }
        }
        StoreCommand::Closure { paths } => {
            let store = global.open_store()?;
            let items = parse_items(&store, &paths)?;
            let closure = store.closure(&items)?;
            if global.json {
                let v: Vec<_> = closure
                    .iter()
                    .map(|p| {
                        serde_json::json!({
                            "path": p.to_absolute(),
                            "physicalPath": store.physical_path(p),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                for p in closure {
                    println!("{}", store.physical_path(&p).display());
                }
            }
        }
        StoreCommand::PathInfo { paths } => {
            let store = global.open_store()?;
            let items = parse_items(&store, &paths)?;
            let mut infos = Vec::new();
            for p in &items {
                infos.push(store.path_info(p)?);
            }
            if global.json {
                let v: Vec<_> = infos
                    .iter()
                    .map(|i| {
                        serde_json::json!({
                            "path": i.path.to_absolute(),
                            "physicalPath": store.physical_path(&i.path),
                            "narHash": sri_of(&i.nar_hash),
                            "narSize": i.nar_size,
                            "references": i.references.iter().map(StorePath::to_absolute).collect::<Vec<_>>(),
                            "deriver": i.deriver,
                            "ca": i.ca,
                            "registrationTime": i.registration_time,
                            "valid": true,
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                for i in &infos {
                    println!("{}", store.physical_path(&i.path).display());
                    println!("  store path: {}", i.path.to_absolute());
                    println!("  nar hash:   {}", i.nar_hash);
                    println!("  nar size:   {}", i.nar_size);
                    if let Some(ca) = &i.ca {
                        println!("  ca:         {ca}");
                    }
                    if let Some(d) = &i.deriver {
                        println!("  deriver:    {d}");
                    }
                    for r in &i.references {
                        println!("  reference:  {}", store.physical_path(r).display());
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_items(store: &Store, paths: &[String]) -> Result<Vec<StorePath>> {
    paths.iter().map(|p| Ok(store.parse_item(p)?)).collect()
}

/// `sha256:<nix-base32>` → `sha256-<base64>`.
fn sri_of(nix: &str) -> String {
    use base64::Engine;
    let Some(b32) = nix.strip_prefix("sha256:") else {
        return nix.to_string();
    };
    match envbuild_store::nixbase32::decode(b32) {
        Ok(bytes) => format!(
            "sha256-{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        ),
        Err(_) => nix.to_string(),
    }
}
