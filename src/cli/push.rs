//! `envbuild push SPEC REF`: realize the spec as `realize` does (no export)
//! and push its image's blobs and exact manifest to the registry (the push
//! `realize --push` makes too); `envbuild pull`, `login` and `logout`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use envbuild::registry::{self, BlobOutcome, BlobPushed, CredentialPlaces, PushOptions, Reference};

use super::Global;

#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// The spec (TOML)
    pub spec: PathBuf,
    /// Where to push: HOST[:PORT]/REPO[:TAG][@sha256:DIGEST] (tag `latest` when neither is given)
    pub reference: String,
    /// Fail, naming what changed, if the spec no longer matches its lock
    #[arg(long)]
    pub locked: bool,
    /// Realize from what the store already has; never download (the push itself still talks to the registry)
    #[arg(long)]
    pub offline: bool,
    /// Speak plain HTTP to this registry (HOST or HOST:PORT); loopback registries always get plain HTTP
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registry: Vec<String>,
}

pub fn push(global: &Global, args: PushArgs) -> Result<ExitCode> {
    // The reference is checked before anything is built.
    let reference = Reference::parse(&args.reference)?;
    let started = Instant::now();
    let (spec, mut store, realized) =
        super::realize::load_and_realize(global, &args.spec, args.locked, args.offline, &[])?;
    super::realize::keep_roots(&mut store, &spec, &realized)?;
    let realized_in = started.elapsed();
    let pushed = push_realized(
        global,
        &store,
        &realized,
        &reference,
        &args.insecure_registry,
    )?;
    if global.json {
        let mut doc = pushed.json();
        let obj = doc.as_object_mut().expect("an object");
        obj.insert("built".into(), realized.built.into());
        obj.insert("reused".into(), realized.reused.into());
        obj.insert("lockWritten".into(), realized.lock_written.into());
        obj.insert("realizeSeconds".into(), realized_in.as_secs_f64().into());
        println!("{doc}");
    } else if !global.quiet {
        eprintln!("{} (realize {realized_in:.2?})", pushed.summary());
    }
    println!("{}", pushed.report.digest);
    Ok(ExitCode::SUCCESS)
}

/// A push done, and how long it took.
pub(super) struct Pushed {
    pub report: registry::PushReport,
    pub time: std::time::Duration,
}

impl Pushed {
    /// The push report `push --json` and `realize --push --json` print.
    pub fn json(&self) -> serde_json::Value {
        let r = &self.report;
        serde_json::json!({
            "reference": r.reference.to_string(),
            "registry": r.reference.registry,
            "repository": r.reference.repository,
            "tag": r.reference.tag,
            "digest": r.digest,
            "blobs": r.blobs.iter().map(|b| serde_json::json!({
                "digest": b.digest,
                "size": b.size,
                "kind": b.kind,
                "outcome": match b.outcome {
                    BlobOutcome::Uploaded => "uploaded",
                    BlobOutcome::Skipped => "skipped",
                    BlobOutcome::Mounted => "mounted",
                },
            })).collect::<Vec<_>>(),
            "uploaded": r.count(BlobOutcome::Uploaded),
            "skipped": r.count(BlobOutcome::Skipped),
            "mounted": r.count(BlobOutcome::Mounted),
            "bytesUploaded": r.bytes_uploaded(),
            "pushSeconds": self.time.as_secs_f64(),
        })
    }

    /// One line for stderr.
    pub fn summary(&self) -> String {
        let r = &self.report;
        format!(
            "pushed {} as {}: {} blobs uploaded ({} bytes), {} mounted, {} already there, in {:.2?}",
            r.digest,
            r.reference,
            r.count(BlobOutcome::Uploaded),
            r.bytes_uploaded(),
            r.count(BlobOutcome::Mounted),
            r.count(BlobOutcome::Skipped),
            self.time,
        )
    }
}

/// Push a realized image to `reference`: the one push `envbuild push` and
/// `envbuild realize --push` share.
pub(super) fn push_realized(
    global: &Global,
    store: &envbuild_store::Store,
    realized: &envbuild::realize::Realized,
    reference: &Reference,
    insecure: &[String],
) -> Result<Pushed> {
    let client = envbuild::net::Client::from_env()?;
    let verbose = global.verbose >= 1 && !global.quiet;
    let progress = move |b: &BlobPushed| {
        if verbose {
            eprintln!(
                "  {} {} {} ({} bytes)",
                match b.outcome {
                    BlobOutcome::Uploaded => "uploaded",
                    BlobOutcome::Skipped => "present ",
                    BlobOutcome::Mounted => "mounted ",
                },
                b.kind,
                b.digest,
                b.size
            );
        }
    };
    let opts = PushOptions {
        insecure: insecure.to_vec(),
        credentials: CredentialPlaces::from_env(),
        progress: Some(&progress),
        // gc may empty it: it only holds hints for mounts.
        records: Some(store.cache_dir("registry-pushes")?),
        chunk_size: registry::upload::chunk_size_from_env()?,
    };
    if verbose {
        eprintln!(
            "pushing {} ({} blobs) to {reference}",
            realized.image.digest(),
            realized.image.layers.len() + 1
        );
    }
    let started = Instant::now();
    let report = registry::push(&client, &realized.image, reference, &opts)?;
    Ok(Pushed {
        report,
        time: started.elapsed(),
    })
}

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// The registry: HOST[:PORT]
    pub registry: String,
    /// The user name [default: asked for on the terminal]
    #[arg(short, long)]
    pub username: Option<String>,
    /// Read the password (or token) from standard input, up to its end; one final newline is dropped
    #[arg(long)]
    pub password_stdin: bool,
    /// Speak plain HTTP to this registry (HOST or HOST:PORT); loopback registries get plain HTTP
    /// when they do not speak TLS
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registry: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct LogoutArgs {
    /// The registry: HOST[:PORT]
    pub registry: String,
}

/// `envbuild login REGISTRY`: check the credentials against the registry,
/// then store them where lookup reads first (see
/// [`envbuild::registry::login`]).
pub fn login(global: &Global, args: LoginArgs) -> Result<ExitCode> {
    let reference = Reference::registry_only(&args.registry)?;
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdin());
    let username = match args.username {
        Some(u) => u,
        None if terminal && !args.password_stdin => prompt("Username: ", true)?,
        None => anyhow::bail!(
            "login {}: no user name (expected --username USER; standard input is not a terminal to ask on)",
            reference.registry
        ),
    };
    let password = if args.password_stdin {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(std::io::stdin().lock(), 1 << 16),
            &mut buf,
        )?;
        let mut text = String::from_utf8(buf).map_err(|_| {
            anyhow::anyhow!(
                "login {}: the password on standard input is not UTF-8 text",
                reference.registry
            )
        })?;
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        text
    } else if terminal {
        prompt("Password: ", false)?
    } else {
        anyhow::bail!(
            "login {}: no password (expected --password-stdin with the password on standard input; standard input is not a terminal to ask on)",
            reference.registry
        )
    };
    if username.is_empty() || password.is_empty() {
        anyhow::bail!(
            "login {}: expected a user name and a password, found an empty {}",
            reference.registry,
            if username.is_empty() {
                "user name"
            } else {
                "password"
            }
        );
    }
    if username.contains(':') {
        anyhow::bail!(
            "login {}: the user name may not contain ':' (it separates the password in basic authentication)",
            reference.registry
        );
    }
    let creds = registry::Credentials {
        username,
        password,
        source: "the credentials given to login".into(),
    };
    let client = envbuild::net::Client::from_env()?;
    let asked = registry::login::verify(&client, &reference, &creds, &args.insecure_registry)?;
    let places = CredentialPlaces::from_env();
    let named = std::env::var_os("REGISTRY_AUTH_FILE").is_some_and(|v| !v.is_empty());
    let place = registry::login::store(&places, named, &reference.registry, &creds)?;
    if global.json {
        println!(
            "{}",
            serde_json::json!({
                "registry": reference.registry,
                "username": creds.username,
                "verified": asked,
                "storedIn": place.to_string(),
            })
        );
    } else if !global.quiet {
        eprintln!(
            "login succeeded for {}{}: credentials of {} stored in {place}",
            reference.registry,
            if asked {
                ""
            } else {
                " (it asks for no credentials)"
            },
            creds.username,
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `envbuild logout REGISTRY`: remove its credentials from every place
/// lookup reads.
pub fn logout(global: &Global, args: LogoutArgs) -> Result<ExitCode> {
    let reference = Reference::registry_only(&args.registry)?;
    let places = CredentialPlaces::from_env();
    let removed = registry::login::remove(&places, &reference.registry)?;
    if global.json {
        println!(
            "{}",
            serde_json::json!({
                "registry": reference.registry,
                "removedFrom": removed.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            })
        );
    } else if !global.quiet {
        if removed.is_empty() {
            eprintln!("no credentials for {} were stored", reference.registry);
        } else {
            let list: Vec<String> = removed.iter().map(|p| p.to_string()).collect();
            eprintln!(
                "removed the credentials for {} from {}",
                reference.registry,
                list.join(", ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Ask on the terminal (stderr); without echo for a password.
fn prompt(question: &str, echo: bool) -> Result<String> {
    use std::io::{BufRead, Write};
    let stdin = std::io::stdin();
    eprint!("{question}");
    std::io::stderr().flush()?;
    let saved = if echo {
        None
    } else {
        let t = rustix::termios::tcgetattr(&stdin)?;
        let mut quiet = t.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &quiet)?;
        Some(t)
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(t) = saved {
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &t);
        eprintln!();
    }
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// The image: HOST[:PORT]/REPO[:TAG][@sha256:DIGEST], oci-layout:DIR or oci-archive:PATH
    pub reference: String,
}

/// `envbuild pull REF`: resolve the image for linux/amd64 and fetch its
/// manifest, config and layers into the store, each verified by digest;
/// the last stdout line is the digest the reference resolved to.
pub fn pull(global: &Global, args: PullArgs) -> Result<ExitCode> {
    let cwd = std::env::current_dir()?;
    let source = envbuild::registry::pull::ImageSource::parse(&args.reference, &cwd)?;
    let mut store = global.open_store()?;
    let opts = envbuild::fetch::FetchOptions {
        progress: global.show_progress(),
        ..Default::default()
    };
    let (resolved, items) = envbuild::registry::pull::pull(&mut store, &source, &opts)?;
    if global.json {
        println!(
            "{}",
            serde_json::json!({
                "image": source.shown(),
                "digest": resolved.digest,
                "manifest": resolved.manifest.digest,
                "config": resolved.config.digest,
                "layers": resolved.layers.iter().zip(&items[2..]).map(|(l, f)| serde_json::json!({
                    "digest": l.digest,
                    "size": l.size,
                    "mediaType": l.media_type,
                    "path": store.physical_path(&f.item).display().to_string(),
                })).collect::<Vec<_>>(),
                "downloaded": items.iter().filter(|f| f.downloaded).count(),
            })
        );
    } else if !global.quiet {
        let bytes: u64 = resolved.layers.iter().map(|l| l.size).sum();
        eprintln!(
            "pulled {} (linux/amd64 manifest {}): {} layers, {bytes} bytes, {} blobs downloaded now",
            source.shown(),
            resolved.manifest.digest,
            resolved.layers.len(),
            items.iter().filter(|f| f.downloaded).count()
        );
    }
    println!("{}", resolved.digest);
    Ok(ExitCode::SUCCESS)
}
