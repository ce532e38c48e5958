//! `model-snapshot`: a model's files laid out as its hub's client expects
//! ([`crate::model::layout`]), as a component with a layer of its own, or
//! as a volume kept out of the image whose path realize prints for
//! mounting.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use envbuild_store::nar::{self, writer::HashingWriter};
use envbuild_store::StorePath;

use super::{mkdirs, override_tree, rel};
use crate::assemble::Component;
use crate::model::layout;
use crate::oci::PathOverride;
use crate::plan::{Derivation, ModelLayout, ModelSnapshot};
use crate::realize::{io_err, RealizeError, Realizer};

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

/// What a model snapshot became.
pub enum Snapshot {
    Component(Component),
    Volume(Volume),
}

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

/// Build the snapshot of `m` from its input items (one per file for a hub
/// snapshot, in the plan's file order).
pub fn model_snapshot(
    r: &mut Realizer,
    drv: &Derivation,
    m: &ModelSnapshot,
    items: &[StorePath],
) -> Result<Snapshot, RealizeError> {
    let dst_root = rel(&m.path).to_string();
    let item = r.realize(drv, &[], |store, out| match &m.layout {
        ModelLayout::Hub {
            hub,
            id,
            revision,
            commit,
            client_layout,
            files,
        } => {
            let plan = layout::plan(*hub, id, revision, commit, files, *client_layout);
            let by_path: BTreeMap<&String, &StorePath> = files.iter().zip(items).collect();
            let base = out.join(&dst_root);
            mkdirs(&base)?;
            for (src, dst) in &plan.files {
                place(&store.physical_path(by_path[src]), &base.join(dst))?;
            }
            for (dst, bytes) in &plan.generated {
                let p = base.join(dst);
                if let Some(d) = p.parent() {
                    mkdirs(d)?;
                }
                fs::write(&p, bytes).map_err(io_err("writing", &p))?;
            }
            Ok(())
        }
        ModelLayout::File { name } => place(
            &store.physical_path(&items[0]),
            &out.join(&dst_root).join(name),
        ),
        ModelLayout::Directory => {
            let dst = out.join(&dst_root);
            if let Some(p) = dst.parent() {
                mkdirs(p)?;
            }
            let mut sink = HashingWriter::new();
            nar::dump_and_copy(&store.physical_path(&items[0]), &mut sink, &dst)
                .map_err(envbuild_store::StoreError::from)?;
            Ok(())
        }
    })?;
    if m.volume {
        let source = r.store.physical_path(&item).join(&dst_root);
        return Ok(Snapshot::Volume(Volume {
            name: m.model.clone(),
            item,
            source,
            path: m.path.clone(),
        }));
    }
    let overrides = ownership(r, m, &item)?;
    Ok(Snapshot::Component(Component {
        label: format!("model {}", m.model),
        group_key: format!("model {}", m.model),
        item,
        subdir: "",
        overrides,
        own_layer: true,
        amends: Vec::new(),
    }))
}

/// Owners in the model's layer: the model's `owner` for the whole snapshot
/// and for the directories its client writes into (the cache root and what
/// lies between; for an explicit path, the directories below the image
/// user's home); the image user's home keeps the image user (so this layer
/// does not hand it back to root).
fn ownership(
    r: &Realizer,
    m: &ModelSnapshot,
    item: &StorePath,
) -> Result<BTreeMap<String, PathOverride>, RealizeError> {
    let mut overrides = BTreeMap::new();
    let user = m.user.as_ref();
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
    let cache_levels = m.cache_levels;
    for (level, a) in ancestors.iter().enumerate() {
        let below_home = user
            .map(|(home, _, _)| a.starts_with(&format!("{home}/")))
            .unwrap_or(false);
        if let Some((_, uid, gid)) = user.filter(|(home, _, _)| home == a) {
            overrides.insert(rel(a).to_string(), dir_as(*uid, *gid));
        } else if let Some((uid, gid)) = m.owner {
            if below_home || level < cache_levels {
                overrides.insert(rel(a).to_string(), dir_as(uid, gid));
            }
        }
    }
    if let Some((uid, gid)) = m.owner {
        let root = r.output_path(item);
        override_tree(&root, &m.path, &mut overrides, |_, _| PathOverride {
            mode: None,
            uid: Some(uid),
            gid: Some(gid),
        })?;
    }
    Ok(overrides)
}
