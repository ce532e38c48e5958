//! `[models.NAME]`: pinning model snapshots (lock time) and the
//! `model-snapshot` builder (realize time).
//!
//! Lock entries (docs/lock-format.md):
//! - hub source: `model:NAME` (source `HUB:ID@REVISION` as requested, hash
//!   `revision:<commit>` it resolved to, size = number of files) and one
//!   `model-file:NAME/PATH` per file (source PATH, `sha256:` and size);
//! - URL: `model:NAME` with the URL, `sha256:` and size;
//! - local directory: `model:NAME` with the path, `nar-sha256:` and NAR size.
//!
//! Every file is a fixed-output fetch (parallel, resumed with Range,
//! verified; once per store). The snapshot becomes one component laid out
//! as the hub's client expects ([`crate::model::layout`]) with a layer of
//! its own, or, with `layer = "volume"`, a store item kept out of the image
//! whose path realize prints for mounting.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use envbuild_store::nar::{self, writer::HashingWriter};
use envbuild_store::{Store, StorePath};

use super::{io_err, item_name, Component, RealizeError, RealizeOptions, Realizer};
use crate::fetch::{self, FetchError, FetchOptions};
use crate::lock::{Lock, LockedInput};
use crate::model::{self, layout, Endpoint, Hub, ModelError};
use crate::oci::PathOverride;
use crate::plan::Derivation;
use crate::spec::{ModelInput, ModelLayer, ModelSource, Spec};

/// What a model's pinned inputs are in the store.
#[derive(Debug, Clone)]
pub enum PinnedContent {
    /// A hub snapshot: the commit and (repository path, file item).
    Hub {
        commit: String,
        files: Vec<(String, StorePath)>,
    },
    /// One file by URL: (file name, item).
    File { name: String, item: StorePath },
    /// A local directory.
    Dir { item: StorePath },
}

#[derive(Debug, Clone)]
pub struct PinnedModel {
    pub name: String,
    pub content: PinnedContent,
}

/// A model kept out of the image: mount `source` at `path`.
#[derive(Debug, Clone)]
pub struct Volume {
    pub name: String,
    pub item: StorePath,
    /// The snapshot directory on this machine (inside the store item).
    pub source: PathBuf,
    /// Where the image expects it.
    pub path: String,
}

/// One file of a hub snapshot as the lock pins it.
struct PinnedFile {
    path: String,
    sha256: String,
    size: u64,
}

fn model_id(name: &str) -> String {
    format!("model:{name}")
}

fn file_id(name: &str, path: &str) -> String {
    format!("model-file:{name}/{path}")
}

/// Pin every `[models.NAME]`: from the lock when it was made for the same
/// request, else resolved against the hub; then fetch what the store lacks
/// (unless `opts.lock_only`).
pub(crate) fn pin_models(
    store: &mut Store,
    spec: &Spec,
    old: Option<&Lock>,
    opts: &RealizeOptions,
    fetch_opts: &FetchOptions,
    inputs: &mut Vec<LockedInput>,
) -> Result<Vec<PinnedModel>, RealizeError> {
    let mut out = Vec::new();
    for m in &spec.models {
        let content = match &m.source {
            ModelSource::Hub { hub, id, revision } => {
                pin_hub(store, m, *hub, id, revision, old, opts, fetch_opts, inputs)?
            }
            ModelSource::Url { url, sha256 } => {
                let name = url
                    .split(['?', '#'])
                    .next()
                    .unwrap_or(url)
                    .rsplit('/')
                    .next()
                    .unwrap_or("model")
                    .to_string();
                let fetched = fetch::fetch(store, url, sha256, &item_name(&name), fetch_opts)
                    .map_err(|e| fetch_error(&m.name, &name, url, None, e))?;
                inputs.push(LockedInput {
                    id: model_id(&m.name),
                    source: url.clone(),
                    hash: format!("sha256:{sha256}"),
                    size: fetched.size,
                });
                PinnedContent::File {
                    name,
                    item: fetched.item,
                }
            }
            ModelSource::Local { path, abs } => {
                let base = abs
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "model".into());
                let added = store.add_path(abs, &item_name(&format!("model-{base}")))?;
                inputs.push(LockedInput {
                    id: model_id(&m.name),
                    source: path.clone(),
                    hash: format!("nar-sha256:{}", added.nar.to_hex()),
                    size: added.nar.size,
                });
                PinnedContent::Dir { item: added.path }
            }
        };
        out.push(PinnedModel {
            name: m.name.clone(),
            content,
        });
    }
    Ok(out)
}

/// Map a fetch failure of one model file to what it means for the model.
fn fetch_error(
    model: &str,
    file: &str,
    url: &str,
    endpoint: Option<(&Endpoint, Hub)>,
    e: FetchError,
) -> RealizeError {
    match e {
        FetchError::HashMismatch {
            expected,
            found,
            size,
            ..
        } => ModelError::Changed {
            model: model.to_string(),
            file: file.to_string(),
            change: Box::new(crate::model::error::Change {
                url: url.to_string(),
                expected,
                found,
                size,
            }),
        }
        .into(),
        FetchError::Net { source, .. } if endpoint.is_some() && source.is_unreachable() => {
            let (ep, hub) = endpoint.expect("checked");
            let message = source.chain_text();
            ModelError::Unreachable {
                model: model.to_string(),
                hub: hub.display(),
                endpoint: ep.url.clone(),
                var: ep.var,
                message: format!("downloading {file}: {message}"),
            }
            .into()
        }
        other => ModelError::Fetch {
            model: model.to_string(),
            file: file.to_string(),
            source: Box::new(other),
        }
        .into(),
    }
}

#[allow(clippy::too_many_arguments)]
fn pin_hub(
    store: &mut Store,
    m: &ModelInput,
    hub: Hub,
    id: &str,
    revision: &str,
    old: Option<&Lock>,
    opts: &RealizeOptions,
    fetch_opts: &FetchOptions,
    inputs: &mut Vec<LockedInput>,
) -> Result<PinnedContent, RealizeError> {
    let name = &m.name;
    let request = format!("{}:{id}@{revision}", hub.prefix());
    let locked = old.and_then(|l| {
        let e = l
            .inputs
            .iter()
            .find(|i| i.id == model_id(name) && i.source == request)?;
        let commit = e.hash.strip_prefix("revision:")?.to_string();
        let prefix = format!("model-file:{name}/");
        let files = l
            .inputs
            .iter()
            .filter_map(|i| {
                let path = i.id.strip_prefix(&prefix)?;
                Some((path.to_string(), i.hash.clone(), i.size))
            })
            .collect::<Vec<_>>();
        Some((commit, files))
    });
    let mut endpoint: Option<Endpoint> = None;
    let (commit, files) = match locked {
        Some((commit, files)) => {
            let mut pinned = Vec::new();
            for (path, hash, size) in files {
                let sha = hash
                    .strip_prefix("sha256:")
                    .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                    .ok_or_else(|| ModelError::BadLock {
                        model: name.clone(),
                        file: path.clone(),
                        hash: hash.clone(),
                    })?;
                pinned.push(PinnedFile {
                    path,
                    sha256: sha.to_string(),
                    size,
                });
            }
            (commit, pinned)
        }
        None => {
            if fetch_opts.offline {
                return Err(FetchError::Offline {
                    url: format!(
                        "the {} listing of {id}@{revision} (no lock for [models.{name}])",
                        hub.display()
                    ),
                }
                .into());
            }
            let ep = hub.endpoint(name)?;
            if opts.progress {
                eprintln!(
                    "model {name}: listing {id}@{revision} from {} ({})",
                    ep.url, ep.var
                );
            }
            let listing = hub.list(name, &ep, id, revision)?;
            let mut pinned = Vec::new();
            for f in listing.files {
                let sha256 = match f.sha256 {
                    Some(s) => s,
                    None => {
                        // Not published by the hub: hash it now, and keep
                        // it, so realize does not download it again.
                        if opts.progress {
                            eprintln!("model {name}: hashing {} ({} bytes)", f.path, f.size);
                        }
                        let url = hub.file_url(&ep, id, &listing.commit, &f.path);
                        let scratch = store.scratch("model-file")?;
                        let dest = scratch.path().join("file");
                        let (sha, _size) =
                            model::download_hashed(hub, name, &ep, &f.path, f.size, &url, &dest)?;
                        fetch::fetch(
                            store,
                            &format!("file://{}", dest.display()),
                            &sha,
                            &item_name(f.path.rsplit('/').next().unwrap_or(&f.path)),
                            fetch_opts,
                        )?;
                        sha
                    }
                };
                pinned.push(PinnedFile {
                    path: f.path,
                    sha256,
                    size: f.size,
                });
            }
            endpoint = Some(ep);
            (listing.commit, pinned)
        }
    };
    inputs.push(LockedInput {
        id: model_id(name),
        source: request,
        hash: format!("revision:{commit}"),
        size: files.len() as u64,
    });
    for f in &files {
        inputs.push(LockedInput {
            id: file_id(name, &f.path),
            source: f.path.clone(),
            hash: format!("sha256:{}", f.sha256),
            size: f.size,
        });
    }
    if opts.lock_only {
        return Ok(PinnedContent::Hub {
            commit,
            files: Vec::new(),
        });
    }
    // Fetch what the store lacks, each distinct file once, in parallel.
    let mut jobs: Vec<&PinnedFile> = Vec::new();
    for f in &files {
        if !jobs.iter().any(|j| j.sha256 == f.sha256) {
            jobs.push(f);
        }
    }
    let missing: Vec<&&PinnedFile> = jobs
        .iter()
        .filter(|f| {
            store
                .realisation(&format!("fetch:sha256:{}", f.sha256), "out")
                .ok()
                .flatten()
                .is_none()
        })
        .collect();
    if !missing.is_empty() && !fetch_opts.offline && endpoint.is_none() {
        endpoint = Some(hub.endpoint(name)?);
    }
    if opts.progress && !missing.is_empty() {
        let bytes: u64 = missing.iter().map(|f| f.size).sum();
        eprintln!(
            "model {name}: fetching {} files ({bytes} bytes) from {}",
            missing.len(),
            endpoint
                .as_ref()
                .map(|e| e.url.as_str())
                .unwrap_or("the store")
        );
    }
    let ep = endpoint.as_ref();
    let url_of = |f: &PinnedFile| match ep {
        Some(ep) => hub.file_url(
            ep,
            id,
            &commit_for_download(hub, &commit, revision),
            &f.path,
        ),
        None => format!("{}:{id}@{commit}/{}", hub.prefix(), f.path),
    };
    let mut r = Realizer::new(store, opts.progress);
    let fetched = r.in_parallel(&jobs, |r, f| {
        let url = url_of(f);
        let name_in_store = item_name(f.path.rsplit('/').next().unwrap_or(&f.path));
        fetch::fetch_sized(
            r.store,
            &url,
            &f.sha256,
            Some(f.size),
            &name_in_store,
            fetch_opts,
        )
        .map_err(|e| fetch_error(name, &f.path, &url, ep.map(|e| (e, hub)), e))
    })?;
    let by_sha: BTreeMap<&str, StorePath> = jobs
        .iter()
        .zip(fetched)
        .map(|(f, x)| (f.sha256.as_str(), x.item))
        .collect();
    Ok(PinnedContent::Hub {
        commit: commit.clone(),
        files: files
            .iter()
            .map(|f| (f.path.clone(), by_sha[f.sha256.as_str()].clone()))
            .collect(),
    })
}

/// The revision files are downloaded at: Hugging Face resolves any commit,
/// so the pinned one; ModelScope downloads by branch or tag name, so the
/// requested one (each file is verified against the pinned sha256 anyway).
fn commit_for_download(hub: Hub, commit: &str, revision: &str) -> String {
    match hub {
        Hub::HuggingFace => commit.to_string(),
        Hub::ModelScope => revision.to_string(),
    }
}

/// What writes a snapshot into the builder's output directory.
type BuildFn = dyn Fn(&mut Store, &Path) -> Result<(), RealizeError>;

use super::builders::{mkdirs, rel};

/// Place a store file at `dst`: a hard link when the store allows it (same
/// file system, same bytes, no copy of a multi-GB model), else a copy.
fn place(src: &Path, dst: &Path) -> Result<(), RealizeError> {
    if let Some(p) = dst.parent() {
        mkdirs(p)?;
    }
    if fs::hard_link(src, dst).is_ok() {
        return Ok(());
    }
    fs::copy(src, dst).map_err(io_err("copying to", dst))?;
    Ok(())
}

/// The `model-snapshot` component of one model, or its volume.
pub(crate) fn model_snapshot(
    r: &mut Realizer,
    spec: &Spec,
    m: &ModelInput,
    pinned: &PinnedModel,
) -> Result<(Option<Component>, Option<Volume>), RealizeError> {
    let mut drv = Derivation::new("model-snapshot", 1, item_name(&format!("model-{}", m.name)))
        .arg("path", m.path.clone());
    let dst_root = rel(&m.path).to_string();
    let build: Box<BuildFn> = match (&m.source, &pinned.content) {
        (ModelSource::Hub { hub, id, revision }, PinnedContent::Hub { commit, files }) => {
            let paths: Vec<String> = files.iter().map(|(p, _)| p.clone()).collect();
            let plan = layout::plan(*hub, id, revision, commit, &paths, m.client_layout);
            let items: BTreeMap<String, StorePath> = files.iter().cloned().collect();
            drv = drv
                .arg(
                    "layout",
                    format!(
                        "{}{}",
                        hub.prefix(),
                        if m.client_layout { "-cache" } else { "" }
                    ),
                )
                .arg("id", id.clone())
                .arg("revision", revision.clone())
                .arg("commit", commit.clone())
                .arg(
                    "files",
                    serde_json::to_string(
                        &plan
                            .files
                            .iter()
                            .map(|(src, dst)| (dst.clone(), items[src].basename()))
                            .collect::<BTreeMap<_, _>>(),
                    )
                    .expect("serializes"),
                );
            for (_, item) in files {
                drv = drv.input(item.clone());
            }
            let dst_root = dst_root.clone();
            Box::new(move |store: &mut Store, out: &Path| {
                let base = out.join(&dst_root);
                mkdirs(&base)?;
                for (src, dst) in &plan.files {
                    place(&store.physical_path(&items[src]), &base.join(dst))?;
                }
                for (dst, bytes) in &plan.generated {
                    let p = base.join(dst);
                    if let Some(d) = p.parent() {
                        mkdirs(d)?;
                    }
                    fs::write(&p, bytes).map_err(io_err("writing", &p))?;
                }
                Ok(())
            })
        }
        (ModelSource::Url { .. }, PinnedContent::File { name, item }) => {
            drv = drv
                .arg("layout", "file")
                .arg("file", name.clone())
                .input(item.clone());
            let (name, item, dst_root) = (name.clone(), item.clone(), dst_root.clone());
            Box::new(move |store: &mut Store, out: &Path| {
                place(
                    &store.physical_path(&item),
                    &out.join(&dst_root).join(&name),
                )
            })
        }
        (ModelSource::Local { .. }, PinnedContent::Dir { item }) => {
            drv = drv.arg("layout", "directory").input(item.clone());
            let (item, dst_root) = (item.clone(), dst_root.clone());
            Box::new(move |store: &mut Store, out: &Path| {
                let dst = out.join(&dst_root);
                if let Some(p) = dst.parent() {
                    mkdirs(p)?;
                }
                let mut sink = HashingWriter::new();
                nar::dump_and_copy(&store.physical_path(&item), &mut sink, &dst)
                    .map_err(envbuild_store::StoreError::from)?;
                Ok(())
            })
        }
        _ => {
            return Err(RealizeError::BadItem {
                item: m.name.clone(),
                builder: "model-snapshot",
                what: "its pinned inputs do not match its source".into(),
            })
        }
    };
    let item = r.realize(&drv, &[], |store, out| build(store, out))?;
    if m.layer == ModelLayer::Volume {
        let source = r.store.physical_path(&item).join(&dst_root);
        return Ok((
            None,
            Some(Volume {
                name: m.name.clone(),
                item,
                source,
                path: m.path.clone(),
            }),
        ));
    }
    let overrides = ownership(r.store, spec, m, &item)?;
    Ok((
        Some(Component {
            label: format!("model {}", m.name),
            item,
            subdir: "",
            overrides,
            own_layer: true,
        }),
        None,
    ))
}

/// Owners in the model's layer: the model's `owner` for the whole snapshot
/// and for the directories its client writes into (the cache root and what
/// lies between; for an explicit path, the directories below the image
/// user's home); the image user's home keeps the image user (so this layer
/// does not hand it back to root).
fn ownership(
    store: &Store,
    spec: &Spec,
    m: &ModelInput,
    item: &StorePath,
) -> Result<BTreeMap<String, PathOverride>, RealizeError> {
    let mut overrides = BTreeMap::new();
    let user = spec.image.user.as_ref();
    let dir_as = |uid: u32, gid: u32| PathOverride {
        mode: Some(0o755),
        uid: Some(uid),
        gid: Some(gid),
    };
    let ancestors: Vec<&str> = {
        let mut v = Vec::new();
        let mut p = m.path.as_str();
        while let Some(i) = p.rfind('/') {
            p = &p[..i];
            if p.is_empty() {
                break;
            }
            v.push(p);
        }
        v
    };
    let cache_levels = match &m.source {
        ModelSource::Hub { hub, .. } if m.client_layout => layout::cache_depth(*hub),
        _ => 0,
    };
    for (level, a) in ancestors.iter().enumerate() {
        let below_home = user
            .map(|u| a.starts_with(&format!("{}/", u.home)))
            .unwrap_or(false);
        if let Some(u) = user.filter(|u| u.home == *a) {
            overrides.insert(rel(a).to_string(), dir_as(u.uid, u.gid));
        } else if let Some((uid, gid)) = m.owner {
            if below_home || level < cache_levels {
                overrides.insert(rel(a).to_string(), dir_as(uid, gid));
            }
        }
    }
    if let Some((uid, gid)) = m.owner {
        let root = store.physical_path(item);
        super::builders::override_tree(&root, &m.path, &mut overrides, |_, _| PathOverride {
            mode: None,
            uid: Some(uid),
            gid: Some(gid),
        })?;
    }
    Ok(overrides)
}

/// The components (and volumes) of every model, in spec order.
pub(crate) fn components(
    r: &mut Realizer,
    spec: &Spec,
    pinned: &[PinnedModel],
) -> Result<(Vec<Component>, Vec<Volume>), RealizeError> {
    let mut components = Vec::new();
    let mut volumes = Vec::new();
    for (m, p) in spec.models.iter().zip(pinned) {
        let (c, v) = model_snapshot(r, spec, m, p)?;
        components.extend(c);
        volumes.extend(v);
    }
    Ok((components, volumes))
}
