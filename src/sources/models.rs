//! `[models.NAME]`: model snapshots from a hub (Hugging Face, ModelScope;
//! endpoints from configuration), a URL with sha256, or a local directory.
//!
//! A hub model is pinned by the commit its revision resolved to and every
//! file's sha256 and size (published by the hub, else hashed at lock time
//! and kept in the store); each file is a fixed-output fetch, and
//! `model-snapshot` lays them out as the hub's client expects
//! ([`crate::model::layout`]) in a layer of their own, or as a volume kept
//! out of the image.

use std::collections::BTreeMap;

use super::{files::add_local_cached, PinContext, PlanContext, Source, SourceError};
use crate::fetch::{self, FetchError};
use crate::lock::{Lock, ModelContent, ModelPin, PinnedFile};
use crate::model::{self, layout, Endpoint, Hub, ModelError};
use crate::plan::{
    item_name, Builder, Input, InputKind, ModelLayout, ModelSnapshot, Origin, Plan, Ref,
};
use crate::spec::{ModelInput, ModelLayer, ModelSource};

pub struct ModelsSource;

/// The request a hub model is pinned for: `HUB:ID@REVISION`.
fn hub_request(hub: Hub, id: &str, revision: &str) -> String {
    format!("{}:{id}@{revision}", hub.prefix())
}

/// What the lock records as a model's source.
fn source_of(m: &ModelInput) -> String {
    match &m.source {
        ModelSource::Hub { hub, id, revision } => hub_request(*hub, id, revision),
        ModelSource::Url { url, .. } => url.clone(),
        ModelSource::Local { path, .. } => path.clone(),
    }
}

/// A URL model's file name.
fn url_file_name(url: &str) -> String {
    url.split(['?', '#'])
        .next()
        .unwrap_or(url)
        .rsplit('/')
        .next()
        .unwrap_or("model")
        .to_string()
}

fn local_item_name(abs: &std::path::Path) -> String {
    let base = abs
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    item_name(&format!("model-{base}"))
}

impl Source for ModelsSource {
    fn pin(&self, cx: &mut PinContext, lock: &mut Lock) -> Result<(), SourceError> {
        for m in &cx.spec.models {
            let source = source_of(m);
            let content = match &m.source {
                ModelSource::Hub { hub, id, revision } => {
                    match cx.old.and_then(|l| l.model_for(&m.name, &source)) {
                        Some(
                            p @ ModelPin {
                                content: ModelContent::Hub { .. },
                                ..
                            },
                        ) => p.content.clone(),
                        _ => pin_hub(cx, m, *hub, id, revision)?,
                    }
                }
                ModelSource::Url { url, sha256 } => {
                    let name = url_file_name(url);
                    let locked = match cx.old.and_then(|l| l.model_for(&m.name, &source)) {
                        Some(ModelPin {
                            content: ModelContent::Url(f),
                            ..
                        }) if f.sha256 == *sha256 => Some(f.size),
                        _ => None,
                    };
                    let size = match locked {
                        Some(size) => size,
                        None => {
                            fetch::fetch(cx.store, url, sha256, &item_name(&name), &cx.fetch)
                                .map_err(|e| fetch_error(&m.name, &name, url, None, e))?
                                .size
                        }
                    };
                    ModelContent::Url(PinnedFile {
                        file: name,
                        sha256: sha256.clone(),
                        size,
                    })
                }
                ModelSource::Local { abs, .. } => {
                    let (_item, nar) = add_local_cached(cx.store, abs, &local_item_name(abs))?;
                    ModelContent::Local(nar)
                }
            };
            lock.models.push(ModelPin {
                name: m.name.clone(),
                source,
                content,
            });
        }
        Ok(())
    }

    fn plan(&self, cx: &mut PlanContext, lock: &Lock, plan: &mut Plan) -> Result<(), SourceError> {
        let spec = cx.spec;
        for m in &spec.models {
            let pin = lock.model_for(&m.name, &source_of(m)).ok_or_else(|| {
                SourceError::LockMismatch {
                    what: format!("[models.{}]", m.name),
                    expected: source_of(m),
                    found: "nothing".into(),
                }
            })?;
            let (layout, inputs) = match (&m.source, &pin.content) {
                (
                    ModelSource::Hub { hub, id, revision },
                    ModelContent::Hub {
                        revision: commit,
                        files,
                    },
                ) => {
                    let mut by_sha: BTreeMap<&str, Ref> = BTreeMap::new();
                    let mut inputs = Vec::new();
                    for f in files {
                        let r = *by_sha.entry(&f.sha256).or_insert_with(|| {
                            plan.add_input(Input {
                                name: item_name(f.file.rsplit('/').next().unwrap_or(&f.file)),
                                what: format!("model {} file {}", m.name, f.file),
                                kind: InputKind::Fetch {
                                    file: f.file.clone(),
                                    sha256: f.sha256.clone(),
                                    size: f.size,
                                    origin: Origin::Hub {
                                        model: m.name.clone(),
                                        hub: *hub,
                                        id: id.clone(),
                                        revision: download_revision(*hub, commit, revision),
                                        path: f.file.clone(),
                                    },
                                },
                            })
                        });
                        inputs.push(r);
                    }
                    let layout = ModelLayout::Hub {
                        hub: *hub,
                        id: id.clone(),
                        revision: revision.clone(),
                        commit: commit.clone(),
                        client_layout: m.client_layout,
                        files: files.iter().map(|f| f.file.clone()).collect(),
                    };
                    (layout, inputs)
                }
                (ModelSource::Url { url, .. }, ModelContent::Url(f)) => {
                    let input = plan.add_input(Input {
                        name: item_name(&f.file),
                        what: format!("model {} {}", m.name, f.file),
                        kind: InputKind::Fetch {
                            file: f.file.clone(),
                            sha256: f.sha256.clone(),
                            size: f.size,
                            origin: Origin::Url(url.clone()),
                        },
                    });
                    (
                        ModelLayout::File {
                            name: f.file.clone(),
                        },
                        vec![input],
                    )
                }
                (ModelSource::Local { abs, .. }, ModelContent::Local(nar)) => {
                    let input = plan.add_input(Input {
                        name: local_item_name(abs),
                        what: format!("model {} {}", m.name, abs.display()),
                        kind: InputKind::Local {
                            path: abs.clone(),
                            nar_sha256: nar.nar_sha256.clone(),
                        },
                    });
                    (ModelLayout::Directory, vec![input])
                }
                _ => {
                    return Err(SourceError::LockMismatch {
                        what: format!("[models.{}]", m.name),
                        expected: source_of(m),
                        found: pin.source.clone(),
                    })
                }
            };
            let cache_levels = match &m.source {
                ModelSource::Hub { hub, .. } if m.client_layout => layout::cache_depth(*hub),
                _ => 0,
            };
            let volume = m.layer == ModelLayer::Volume;
            let step = plan.add_step(
                item_name(&format!("model-{}", m.name)),
                Builder::ModelSnapshot(ModelSnapshot {
                    model: m.name.clone(),
                    path: m.path.clone(),
                    layout,
                    owner: m.owner,
                    user: spec
                        .image
                        .user
                        .as_ref()
                        .map(|u| (u.home.clone(), u.uid, u.gid)),
                    cache_levels,
                    volume,
                }),
                inputs,
            );
            if volume {
                plan.volumes.push(step);
            } else {
                plan.components.push(step);
            }
        }
        Ok(())
    }
}

/// List a hub model at its revision and pin every file; files whose sha256
/// the hub does not publish are downloaded and hashed now (and kept in the
/// store, so realize does not download them again).
fn pin_hub(
    cx: &mut PinContext,
    m: &ModelInput,
    hub: Hub,
    id: &str,
    revision: &str,
) -> Result<ModelContent, SourceError> {
    let name = &m.name;
    if cx.fetch.offline {
        return Err(FetchError::Offline {
            url: format!(
                "the {} listing of {id}@{revision} (no lock for [models.{name}])",
                hub.display()
            ),
        }
        .into());
    }
    let ep = hub.endpoint(name)?;
    if cx.fetch.progress {
        crate::progress::message(&format!(
            "model {name}: listing {id}@{revision} from {} ({})",
            ep.url, ep.var
        ));
    }
    let listing = hub.list(name, &ep, id, revision)?;
    let mut files = Vec::new();
    for f in listing.files {
        let sha256 = match f.sha256 {
            Some(s) => s,
            None => {
                if cx.fetch.progress {
                    crate::progress::message(&format!(
                        "model {name}: hashing {} ({} bytes)",
                        f.path, f.size
                    ));
                }
                let url = hub.file_url(&ep, id, &listing.commit, &f.path);
                let scratch = cx.store.scratch("model-file")?;
                let dest = scratch.path().join("file");
                let (sha, _size) =
                    model::download_hashed(hub, name, &ep, &f.path, f.size, &url, &dest)?;
                fetch::fetch(
                    cx.store,
                    &format!("file://{}", dest.display()),
                    &sha,
                    &item_name(f.path.rsplit('/').next().unwrap_or(&f.path)),
                    &cx.fetch,
                )?;
                sha
            }
        };
        files.push(PinnedFile {
            file: f.path,
            sha256,
            size: f.size,
        });
    }
    Ok(ModelContent::Hub {
        revision: listing.commit,
        files,
    })
}

/// The revision files are downloaded at: Hugging Face resolves any commit,
/// so the pinned one; ModelScope downloads by branch or tag name, so the
/// requested one (each file is verified against the pinned sha256 anyway).
pub fn download_revision(hub: Hub, commit: &str, revision: &str) -> String {
    match hub {
        Hub::HuggingFace => commit.to_string(),
        Hub::ModelScope => revision.to_string(),
    }
}

/// What a failed fetch of one model file means for the model.
pub fn fetch_error(
    model: &str,
    file: &str,
    url: &str,
    endpoint: Option<(&Endpoint, Hub)>,
    e: FetchError,
) -> SourceError {
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
