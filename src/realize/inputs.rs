//! Materializing a plan's inputs: fixed-output files the store lacks are
//! located (the lock names files; where they are comes from the user's
//! configuration now) and fetched in parallel, each verified by its
//! sha256; local paths are found in the store by their NAR hash, or added.
//!
//! With `defer`, a fixed-output file whose store path is known without its
//! bytes (from a trusted realisation of a substituter, or recorded when
//! one was seen before) is left [`InputItem::Deferred`]: the steps using it
//! can be looked up by their derivation hashes, and a step a substituter
//! serves never needs it. Only when a step has to be built are its
//! deferred inputs materialized (see `Execution::run` in
//! [`super`]). A dry run defers the same way, so `envbuild plan` lists
//! under "will fetch" only the files of steps no substituter serves.

use std::collections::BTreeMap;
use std::path::PathBuf;

use envbuild_store::{Store, StoreError, StorePath};

use super::RealizeError;
use crate::fetch::{self, FetchError, FetchOptions};
use crate::plan::{InputId, InputKind, Origin, Plan};
use crate::python::pylock::Location;
use crate::python::resolve::Target;
use crate::sources::{self, SourceError};

/// What an input is on this machine.
#[derive(Debug, Clone)]
pub enum InputItem {
    Item(StorePath),
    /// A local wheel, read where it lies.
    InPlace(PathBuf),
    /// A fixed-output file not in the store whose item is known to be this
    /// (a signed realisation said so): enough to compute the derivation
    /// hashes of the steps using it, not to build them.
    Deferred(StorePath),
}

/// The cache directory (in the store's) of fixed-output keys whose items
/// a trusted realisation named: one file per key, holding the basename.
const DEFERRED_RECORD: &str = "deferred-inputs";

fn record_file(store: &Store, key: &str) -> Option<PathBuf> {
    let dir = store.cache_dir(DEFERRED_RECORD).ok()?;
    Some(dir.join(key.replace(':', "-")))
}

/// The item a trusted realisation named for `key` before (a hint: a wrong
/// one only makes the steps using it miss their realisations and build).
fn recorded(store: &Store, key: &str) -> Option<StorePath> {
    let text = std::fs::read_to_string(record_file(store, key)?).ok()?;
    StorePath::from_basename(text.trim()).ok()
}

fn record(store: &Store, key: &str, item: &StorePath) {
    // A record that cannot be written only costs a lookup next time.
    if let Some(f) = record_file(store, key) {
        let _ = crate::io::write_atomically(&f, item.basename().as_bytes());
    }
}

/// A fetch a dry run found missing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlannedFetch {
    pub what: String,
    pub file: String,
    pub sha256: String,
    pub size: u64,
}

/// What materializing found or did.
#[derive(Debug, Default)]
pub struct Materialized {
    /// Per input: `None` when not needed, or (dry run) not in the store.
    pub items: Vec<Option<InputItem>>,
    /// Files not in the store: fetched now, or (dry run) to fetch.
    pub fetched: Vec<PlannedFetch>,
    /// Local paths not in the store: added now, or (dry run) to add.
    pub added: Vec<String>,
}

fn fetch_key(sha256: &str) -> String {
    format!("fetch:sha256:{sha256}")
}

/// Find or make every needed input. `urls`: where resolving said files are
/// (sha256 → URL), tried before the index is asked. With `dry_run`,
/// nothing is fetched or added. A file the store lacks is asked of the
/// substituters `subst` (by its fetch key) before it is fetched; with
/// `defer`, only its item's name is (see the module's documentation).
#[allow(clippy::too_many_arguments)]
pub fn materialize(
    store: &mut Store,
    plan: &Plan,
    needed: &[bool],
    urls: &BTreeMap<String, String>,
    opts: &FetchOptions,
    dry_run: bool,
    subst: Option<&crate::cache::Substituters>,
    defer: bool,
) -> Result<Materialized, RealizeError> {
    let mut out = Materialized {
        items: vec![None; plan.inputs.len()],
        ..Materialized::default()
    };
    let mut missing: Vec<InputId> = Vec::new();
    for (i, input) in plan.inputs.iter().enumerate() {
        if !needed[i] {
            continue;
        }
        match &input.kind {
            InputKind::Fetch {
                file,
                sha256,
                size,
                origin,
            } => {
                let key = fetch_key(sha256);
                let mut found = store.realisation(&key, "out")?;
                // A base image's layers go into the image as they are:
                // never deferred.
                let deferrable = defer && !matches!(origin, Origin::BaseImage { .. });
                if let (None, true) = (&found, deferrable) {
                    let named = recorded(store, &key).or_else(|| {
                        let what = format!("{} ({file})", input.what);
                        let p = subst?.realisation_path(&key, &what)?;
                        // A dry run writes nothing, not even this hint.
                        if !dry_run {
                            record(store, &key, &p);
                        }
                        Some(p)
                    });
                    if let Some(p) = named {
                        if store.is_valid(&p)? {
                            found = Some(p);
                        } else {
                            tracing::debug!(input = %input.what, item = %p, "deferred");
                            out.items[i] = Some(InputItem::Deferred(p));
                            continue;
                        }
                    }
                }
                if let (None, false, Some(subst)) = (&found, dry_run, subst) {
                    let what = format!("{} ({file})", input.what);
                    found = subst.realisation(store, &key, &what)?;
                }
                match found {
                    Some(item) => out.items[i] = Some(InputItem::Item(item)),
                    None => {
                        if !missing.iter().any(|&m| same_fetch(plan, m, i)) {
                            out.fetched.push(PlannedFetch {
                                what: input.what.clone(),
                                file: file.clone(),
                                sha256: sha256.clone(),
                                size: *size,
                            });
                        }
                        missing.push(i);
                    }
                }
            }
            InputKind::Local { path, nar_sha256 } => {
                let mut sha = [0u8; 32];
                let known = hex::decode_to_slice(nar_sha256, &mut sha).is_ok();
                let item =
                    StorePath::source(&input.name, &sha, &[], false).map_err(StoreError::from)?;
                if known && store.is_valid(&item)? {
                    out.items[i] = Some(InputItem::Item(item));
                } else if dry_run {
                    out.added.push(path.display().to_string());
                    if known && subst.is_some() {
                        // Its identity is known from the lock: the steps
                        // using it can be looked up in the substituters.
                        out.items[i] = Some(InputItem::Item(item));
                    }
                } else {
                    let (item, nar) = sources::files::add_local_cached(store, path, &input.name)?;
                    if nar.nar_sha256 != *nar_sha256 {
                        return Err(RealizeError::InputChanged {
                            path: path.clone(),
                            expected: nar_sha256.clone(),
                            found: nar.nar_sha256,
                        });
                    }
                    out.added.push(path.display().to_string());
                    out.items[i] = Some(InputItem::Item(item));
                }
            }
            InputKind::InPlace { path, .. } => {
                out.items[i] = Some(InputItem::InPlace(path.clone()))
            }
        }
    }
    if dry_run || missing.is_empty() {
        return Ok(out);
    }
    if opts.offline {
        let first = &out.fetched[0];
        return Err(FetchError::Offline {
            url: format!(
                "{} ({} of {} files to fetch)",
                first.what,
                1,
                out.fetched.len()
            ),
        }
        .into());
    }
    let bytes: u64 = out.fetched.iter().map(|f| f.size).sum();
    if opts.progress {
        crate::progress::plan_fetch(out.fetched.len(), bytes);
    }
    tracing::info!(
        files = out.fetched.len(),
        bytes,
        "fetching the files the store lacks"
    );
    // One job per distinct file.
    let mut jobs: Vec<(InputId, String)> = Vec::new();
    let located = locate(plan, &missing, urls)?;
    for &i in &missing {
        if !jobs.iter().any(|(j, _)| same_fetch(plan, *j, i)) {
            jobs.push((i, located.get(&i).cloned().unwrap_or_default()));
        }
    }
    let fetched = crate::workers::on_store_workers(store.root(), &jobs, None, |st, (i, url)| {
        let input = &plan.inputs[*i];
        let InputKind::Fetch { sha256, size, .. } = &input.kind else {
            unreachable!("only fetch inputs are located")
        };
        if let InputKind::Fetch {
            origin: Origin::BaseImage { source, kind },
            ..
        } = &input.kind
        {
            // From the registry or layout the base image names, by digest.
            return crate::registry::pull::fetch(
                st,
                source,
                *kind,
                sha256,
                *size,
                &input.name,
                opts,
            )
            .map_err(RealizeError::from);
        }
        // Capped at the pinned size: a longer body is refused as it passes it.
        fetch::fetch_sized(st, url, sha256, Some(*size), &input.name, opts).map_err(
            |e| match &input.kind {
                InputKind::Fetch {
                    origin:
                        Origin::Hub {
                            model, hub, path, ..
                        },
                    ..
                } => {
                    let ep = hub.endpoint(model).ok();
                    RealizeError::from(sources::models::fetch_error(
                        model,
                        path,
                        url,
                        ep.as_ref().map(|e| (e, *hub)),
                        e,
                    ))
                }
                _ => e.into(),
            },
        )
    })?;
    for &i in &missing {
        let (_, f) = jobs
            .iter()
            .zip(&fetched)
            .find(|((j, _), _)| same_fetch(plan, *j, i))
            .expect("every missing file has a job");
        out.items[i] = Some(InputItem::Item(f.item.clone()));
    }
    Ok(out)
}

/// Whether two inputs are the same fixed-output file.
fn same_fetch(plan: &Plan, a: InputId, b: InputId) -> bool {
    match (&plan.inputs[a].kind, &plan.inputs[b].kind) {
        (InputKind::Fetch { sha256: x, .. }, InputKind::Fetch { sha256: y, .. }) => x == y,
        _ => false,
    }
}

/// The URL of every missing input, from its origin and the configuration.
fn locate(
    plan: &Plan,
    missing: &[InputId],
    urls: &BTreeMap<String, String>,
) -> Result<BTreeMap<InputId, String>, RealizeError> {
    let mut out = BTreeMap::new();
    // Files to look up through an index, grouped by (index, target), and
    // through a requirements file, by file.
    let mut by_index: Vec<(Option<String>, Target, Vec<InputId>)> = Vec::new();
    let mut by_requirements: BTreeMap<PathBuf, (Option<String>, Target, Vec<InputId>)> =
        BTreeMap::new();
    let mut mirrors: BTreeMap<(Option<String>, String), String> = BTreeMap::new();
    for &i in missing {
        let InputKind::Fetch { sha256, origin, .. } = &plan.inputs[i].kind else {
            continue;
        };
        if let (Some(u), false) = (urls.get(sha256), matches!(origin, Origin::Url(_))) {
            out.insert(i, u.clone());
            continue;
        }
        match origin {
            Origin::Url(u) => {
                out.insert(i, u.clone());
            }
            Origin::DebianMirror {
                mirror,
                suite,
                file,
            } => {
                let key = (mirror.clone(), suite.clone());
                let m = match mirrors.get(&key) {
                    Some(m) => m.clone(),
                    None => {
                        let m = crate::debian::archive::mirror_for(mirror.as_deref(), suite)
                            .map_err(SourceError::from)?;
                        mirrors.insert(key, m.clone());
                        m
                    }
                };
                out.insert(i, format!("{m}/{file}"));
            }
            Origin::PythonIndex { index, target } => {
                match by_index
                    .iter_mut()
                    .find(|(x, t, _)| x == index && t == target)
                {
                    Some((_, _, ids)) => ids.push(i),
                    None => by_index.push((index.clone(), target.clone(), vec![i])),
                }
            }
            Origin::RequirementsFile {
                path,
                index,
                target,
            } => {
                by_requirements
                    .entry(path.clone())
                    .or_insert_with(|| (index.clone(), target.clone(), Vec::new()))
                    .2
                    .push(i);
            }
            // Fetched through the registry client, not by URL.
            Origin::BaseImage { .. } => {}
            Origin::Hub {
                model,
                hub,
                id,
                revision,
                path,
            } => {
                let ep = hub.endpoint(model).map_err(SourceError::from)?;
                out.insert(i, hub.file_url(&ep, id, revision, path));
            }
        }
    }
    let file_of = |i: InputId| match &plan.inputs[i].kind {
        InputKind::Fetch { file, .. } => file.clone(),
        _ => unreachable!("only fetch inputs are located"),
    };
    for (index, target, ids) in by_index {
        let (index, _from) =
            crate::python::index_config::index_url(index.as_deref()).map_err(SourceError::from)?;
        let mut names: Vec<String> = ids.iter().map(|&i| file_of(i)).collect();
        names.sort();
        names.dedup();
        let found = crate::python::resolve::locate_wheels(&index, &target, &names)
            .map_err(SourceError::from)?;
        for i in ids {
            let f = file_of(i);
            let url = found
                .get(&f)
                .cloned()
                .unwrap_or_else(|| format!("(no index URL for {f})"));
            out.insert(i, url);
        }
    }
    for (path, (index, target, ids)) in by_requirements {
        let found = sources::python::lockfile::locate_in_requirements_file(
            &path,
            &target,
            index.as_deref(),
        )?;
        for i in ids {
            let f = file_of(i);
            let url = match found.get(&f) {
                Some(Location::Url(u)) => u.clone(),
                Some(Location::Path(p)) => format!("file://{}", p.display()),
                None => format!("(no location for {f} in {})", path.display()),
            };
            out.insert(i, url);
        }
    }
    Ok(out)
}
