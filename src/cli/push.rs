//! `envbuild push SPEC REF`: realize the spec as `realize` does (no export)
//! and push its image's blobs and exact manifest to the registry.

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
        insecure: args.insecure_registry.clone(),
        credentials: CredentialPlaces::from_env(),
        progress: Some(&progress),
        // gc may empty it: it only holds hints for mounts.
        records: Some(store.cache_dir("registry-pushes")?),
    };
    if verbose {
        eprintln!(
            "pushing {} ({} blobs) to {reference}",
            realized.image.digest(),
            realized.image.layers.len() + 1
        );
    }
    let push_started = Instant::now();
    let report = registry::push(&client, &realized.image, &reference, &opts)?;
    let push_time = push_started.elapsed();
    let uploaded = report.count(BlobOutcome::Uploaded);
    let skipped = report.count(BlobOutcome::Skipped);
    let mounted = report.count(BlobOutcome::Mounted);
    if global.json {
        println!(
            "{}",
            serde_json::json!({
                "reference": report.reference.to_string(),
                "registry": report.reference.registry,
                "repository": report.reference.repository,
                "tag": report.reference.tag,
                "digest": report.digest,
                "blobs": report.blobs.iter().map(|b| serde_json::json!({
                    "digest": b.digest,
                    "size": b.size,
                    "kind": b.kind,
                    "outcome": match b.outcome {
                        BlobOutcome::Uploaded => "uploaded",
                        BlobOutcome::Skipped => "skipped",
                        BlobOutcome::Mounted => "mounted",
                    },
                })).collect::<Vec<_>>(),
                "uploaded": uploaded,
                "skipped": skipped,
                "mounted": mounted,
                "bytesUploaded": report.bytes_uploaded(),
                "built": realized.built,
                "reused": realized.reused,
                "lockWritten": realized.lock_written,
                "realizeSeconds": realized_in.as_secs_f64(),
                "pushSeconds": push_time.as_secs_f64(),
            })
        );
    } else if !global.quiet {
        eprintln!(
            "pushed {} as {}: {uploaded} blobs uploaded ({} bytes), {mounted} mounted, {skipped} already there, in {:.2?} (realize {:.2?})",
            report.digest,
            report.reference,
            report.bytes_uploaded(),
            push_time,
            realized_in
        );
    }
    println!("{}", report.digest);
    Ok(ExitCode::SUCCESS)
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
