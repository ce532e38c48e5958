//! `envbuild cache push | keygen | pull`: binary caches in Nix's layout
//! (docs/binary-cache.md).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use envbuild::cache::{self, Backend, CacheConfig, Compression, Substituters};
use envbuild_store::signing::SecretKey;
use envbuild_store::StorePath;

use super::Global;

#[derive(Debug, clap::Subcommand)]
pub enum CacheCommand {
    /// Write items, or everything a spec's image needs, and their realisations to a binary cache
    ///
    /// Each TARGET is a store item (its physical path, /nix/store/<hash>-<name> or the
    /// basename) or a spec, which is realized first: its image, layers, components and
    /// inputs are pushed. The closure of every target goes, signed with --key; what the
    /// cache already has is skipped.
    Push {
        /// file:///DIR, http://HOST/PATH or https://HOST/PATH (written with PUT), or
        /// oci://HOST[:PORT]/REPO (a repository of an OCI registry)
        dest: String,
        /// Store items or specs
        #[arg(required = true, value_name = "TARGET")]
        targets: Vec<String>,
        /// The secret key to sign with (as `envbuild cache keygen` or
        /// `nix-store --generate-binary-cache-key` writes it)
        #[arg(long, env = "ENVBUILD_SECRET_KEY_FILE", value_name = "FILE")]
        key: PathBuf,
        /// How NAR files are compressed
        #[arg(long, value_enum, default_value = "zstd")]
        compression: CompressionArg,
    },
    /// Make an ed25519 signing key pair: NAME.secret and NAME.public (Nix's format)
    Keygen {
        /// The key's name, e.g. ci.example-1 (signatures carry it)
        name: String,
        /// Where to write the two files
        #[arg(long, default_value = ".", value_name = "DIR")]
        dir: PathBuf,
    },
    /// Substitute store items (and their closures) from binary caches into the store
    Pull {
        /// Store items: /nix/store/<hash>-<name> or the basename
        #[arg(required = true)]
        paths: Vec<String>,
        /// Ask this binary cache (repeatable; before the configuration's substituters)
        #[arg(long = "substituter", value_name = "URL")]
        substituters: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompressionArg {
    Zstd,
    Xz,
    None,
}

impl CacheCommand {
    pub fn input(&self) -> Option<String> {
        match self {
            CacheCommand::Push { targets, .. } => Some(targets.join(" ")),
            CacheCommand::Keygen { name, .. } => Some(name.clone()),
            CacheCommand::Pull { paths, .. } => Some(paths.join(" ")),
        }
    }
}

pub fn run(global: &Global, cmd: CacheCommand) -> Result<ExitCode> {
    match cmd {
        CacheCommand::Push {
            dest,
            targets,
            key,
            compression,
        } => push(global, &dest, &targets, &key, compression),
        CacheCommand::Keygen { name, dir } => keygen(global, &name, &dir),
        CacheCommand::Pull {
            paths,
            substituters,
        } => pull(global, &paths, &substituters),
    }
}

fn read_secret_key(path: &std::path::Path) -> Result<SecretKey> {
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.by_ref().take(64 * 1024).read_to_string(&mut text))
        .with_context(|| format!("cannot read the secret key {}", path.display()))?;
    SecretKey::parse(&text).with_context(|| format!("secret key {}", path.display()))
}

fn push(
    global: &Global,
    dest: &str,
    targets: &[String],
    key: &std::path::Path,
    compression: CompressionArg,
) -> Result<ExitCode> {
    let started = Instant::now();
    let key = read_secret_key(key)?;
    let backend = Backend::open(dest)?;
    let mut items: Vec<StorePath> = Vec::new();
    let mut store = global.open_store()?;
    for t in targets {
        if let Ok(p) = store.parse_item(t) {
            if store.is_valid(&p)? {
                items.push(p);
                continue;
            }
        }
        let path = std::path::Path::new(t);
        if !path.is_file() {
            anyhow::bail!(
                "{t} is neither a valid item of the store at {} nor a spec file",
                store.root().display()
            );
        }
        drop(store);
        let (spec, s, realized) =
            super::realize::load_and_realize(global, path, false, false, &[])?;
        store = s;
        super::realize::keep_roots(&mut store, &spec, &realized)?;
        envbuild::progress::finish();
        items.push(realized.image_item.clone());
        items.extend(realized.layers.iter().map(|l| l.item.clone()));
        items.extend(realized.components.iter().map(|c| c.item.clone()));
        items.extend(realized.inputs.iter().cloned());
        // Outputs of steps outside the image's closure (the union check).
        items.extend(realized.step_outputs.iter().cloned());
    }
    items.sort();
    items.dedup();
    let compression = match compression {
        CompressionArg::Zstd => Compression::Zstd,
        CompressionArg::Xz => Compression::Xz,
        CompressionArg::None => Compression::None,
    };
    let verbose = global.verbose >= 1 && !global.quiet;
    let report = cache::push(
        &mut store,
        &backend,
        &items,
        &key,
        compression,
        |what, p| {
            if verbose {
                eprintln!("  {what:<7} {p}");
            }
        },
    )?;
    if global.json {
        println!(
            "{}",
            serde_json::json!({
                "cache": backend.url(),
                "pushed": report.pushed,
                "skipped": report.skipped,
                "realisationsPushed": report.realisations_pushed,
                "realisationsSkipped": report.realisations_skipped,
                "narBytes": report.nar_bytes,
                "fileBytes": report.file_bytes,
                "seconds": started.elapsed().as_secs_f64(),
            })
        );
    } else if !global.quiet {
        eprintln!(
            "{}: {} items pushed ({} NAR bytes, {} compressed), {} already there; {} realisations pushed, {} already there; in {:.2?}",
            backend.url(),
            report.pushed.len(),
            report.nar_bytes,
            report.file_bytes,
            report.skipped.len(),
            report.realisations_pushed,
            report.realisations_skipped,
            started.elapsed()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn keygen(global: &Global, name: &str, dir: &std::path::Path) -> Result<ExitCode> {
    if name.is_empty() || name.contains(':') || name.contains('/') || name.trim() != name {
        anyhow::bail!("key name {name:?} is not usable (expected a name without ':', '/' or spaces, e.g. ci.example-1)");
    }
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .context("cannot read random bytes from /dev/urandom")?;
    let sk = SecretKey::from_seed(name, seed);
    let secret = dir.join(format!("{name}.secret"));
    let public = dir.join(format!("{name}.public"));
    for p in [&secret, &public] {
        if p.exists() {
            anyhow::bail!("{} exists already: not overwriting a key", p.display());
        }
    }
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&secret)
            .with_context(|| format!("cannot create {}", secret.display()))?;
        f.write_all(sk.render().as_bytes())
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write {}", secret.display()))?;
    }
    envbuild::io::write_atomically(&public, sk.public().render().as_bytes())
        .with_context(|| format!("cannot write {}", public.display()))?;
    if global.json {
        println!(
            "{}",
            serde_json::json!({
                "name": name, "secretKeyFile": secret, "publicKeyFile": public,
                "publicKey": sk.public().render(),
            })
        );
    } else {
        if !global.quiet {
            eprintln!(
                "wrote {} (keep it secret) and {}; trust the key with ENVBUILD_TRUSTED_PUBLIC_KEYS or trusted-public-keys in the configuration:",
                secret.display(),
                public.display()
            );
        }
        println!("{}", sk.public().render());
    }
    Ok(ExitCode::SUCCESS)
}

fn pull(global: &Global, paths: &[String], extra: &[String]) -> Result<ExitCode> {
    let config = CacheConfig::from_env()?;
    let subst = Substituters::new(extra, &config, false)?;
    let mut store = global.open_store()?;
    let mut pulled = Vec::new();
    for p in paths {
        let item = store.parse_item(p)?;
        subst.substitute_path(&mut store, &item)?;
        pulled.push(item);
    }
    if global.json {
        println!(
            "{}",
            serde_json::json!({
                "paths": pulled.iter().map(|p| store.physical_path(p)).collect::<Vec<_>>(),
            })
        );
    } else {
        for p in &pulled {
            println!("{}", store.physical_path(p).display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
