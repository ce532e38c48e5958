//! `[[files]]`: local files and directories, pinned by their NAR hash and
//! placed at their destination by `copy-files`; and the generated base
//! files (`/etc/passwd`, `/etc/group`, the directories an image needs).

use std::collections::BTreeMap;
use std::path::Path;

use envbuild_store::{Store, StoreError, StorePath};

use super::{PinContext, PlanContext, Source, SourceError};
use crate::lock::{FilesPin, Lock, NarPin};
use crate::oci::PathOverride;
use crate::plan::{item_name, BaseFiles, Builder, Input, InputKind, Plan, StepId};
use crate::spec::Spec;

pub struct FilesSource;

/// The store item name of a `[[files]]` source.
fn input_name(src: &str) -> String {
    item_name(
        Path::new(src)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .as_deref()
            .unwrap_or("file"),
    )
}

impl Source for FilesSource {
    fn is_local(&self) -> bool {
        true
    }

    fn pin(&self, cx: &mut PinContext, lock: &mut Lock) -> Result<(), SourceError> {
        for f in &cx.spec.files {
            let (_item, nar) = add_local_cached(cx.store, &f.src_abs, &input_name(&f.src))?;
            lock.files.push(FilesPin {
                dst: f.dst.clone(),
                src: f.src.clone(),
                nar,
            });
        }
        Ok(())
    }

    fn plan(&self, cx: &mut PlanContext, lock: &Lock, plan: &mut Plan) -> Result<(), SourceError> {
        for f in &cx.spec.files {
            let pin = lock
                .files
                .iter()
                .find(|p| p.dst == f.dst && p.src == f.src)
                .ok_or_else(|| SourceError::LockMismatch {
                    what: format!("[[files]] {}", f.dst),
                    expected: f.src.clone(),
                    found: "nothing".into(),
                })?;
            let input = plan.add_input(Input {
                name: input_name(&f.src),
                what: format!("files {}", f.src),
                kind: InputKind::Local {
                    path: f.src_abs.clone(),
                    nar_sha256: pin.nar.nar_sha256.clone(),
                },
            });
            let step = plan.add_step(
                item_name(&format!("files{}", f.dst.replace('/', "-"))),
                Builder::CopyFiles {
                    dst: f.dst.clone(),
                    owner: f.owner,
                    mode: f.mode,
                },
                vec![input],
            );
            plan.components.push(step);
        }
        Ok(())
    }
}

/// Add a local file or tree to the store, reading it only when the hash
/// cache does not know it unchanged: its item and NAR pin.
pub fn add_local_cached(
    store: &mut Store,
    src: &Path,
    name: &str,
) -> Result<(StorePath, NarPin), SourceError> {
    let mut added = None;
    let value = store.cached_hash(src, "nar-sha256+size", |s| {
        let a = s.add_path(src, name)?;
        let v = format!("{}:{}", a.nar.to_hex(), a.nar.size);
        added = Some(a.path);
        Ok::<_, SourceError>(v)
    })?;
    let pin = |hex: &str, size: u64| NarPin {
        nar_sha256: hex.to_string(),
        nar_size: size,
    };
    let parsed = value.split_once(':').and_then(|(hex_part, size)| {
        let size: u64 = size.parse().ok()?;
        let mut sha = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut sha).ok()?;
        Some((hex_part, size, sha))
    });
    if let (Some(item), Some((hex_part, size, _))) = (&added, parsed) {
        return Ok((item.clone(), pin(hex_part, size)));
    }
    if let Some((hex_part, size, sha)) = parsed {
        let path = StorePath::source(name, &sha, &[], false).map_err(StoreError::from)?;
        if store.is_valid(&path)? {
            return Ok((path, pin(hex_part, size)));
        }
    }
    // Unknown, malformed in the cache, or collected since: add it again
    // (hashing it again too).
    let a = store.add_path(src, name)?;
    Ok((a.path, pin(&a.nar.to_hex(), a.nar.size)))
}

fn rel(image_path: &str) -> &str {
    image_path.trim_start_matches('/')
}

/// The base files step: `/etc/passwd`, `/etc/group`, `/tmp` (1777), the
/// user's home and the working directory: what a base image or `useradd`
/// would have made.
///
/// On a base image (`base`: its view's step) the base's own `/etc/passwd`
/// and `/etc/group` are kept, and lines are added for the names they lack.
pub fn plan_base_files(spec: &Spec, plan: &mut Plan, base: Option<StepId>) -> StepId {
    let img = &spec.image;
    let mut passwd = String::from("root:x:0:0:root:/root:/bin/sh\n");
    let mut group = String::from("root:x:0:\n");
    let mut dirs = vec!["/root".to_string(), "/tmp".to_string()];
    let mut overrides = BTreeMap::new();
    let dir_mode = |mode: u32, owner: Option<(u32, u32)>| PathOverride {
        mode: Some(mode),
        uid: owner.map(|o| o.0),
        gid: owner.map(|o| o.1),
    };
    overrides.insert("tmp".to_string(), dir_mode(0o1777, None));
    overrides.insert("root".to_string(), dir_mode(0o700, None));
    if let Some(u) = &img.user {
        passwd.push_str(&format!(
            "{}:x:{}:{}::{}:/bin/sh\n",
            u.name, u.uid, u.gid, u.home
        ));
        group.push_str(&format!("{}:x:{}:\n", u.name, u.gid));
        dirs.push(u.home.clone());
        overrides.insert(
            rel(&u.home).to_string(),
            dir_mode(0o755, Some((u.uid, u.gid))),
        );
    }
    if let Some(w) = &img.workdir {
        dirs.push(w.clone());
        if let Some(u) = img
            .user
            .as_ref()
            .filter(|u| w.starts_with(&format!("{}/", u.home)) || *w == u.home)
        {
            overrides.insert(rel(w).to_string(), dir_mode(0o755, Some((u.uid, u.gid))));
        }
    }
    dirs.sort();
    dirs.dedup();
    let step = plan.add_step(
        "base-files",
        Builder::BaseFiles(BaseFiles {
            passwd,
            group,
            dirs,
            overrides,
        }),
        base.map(crate::plan::Ref::Step).into_iter().collect(),
    );
    plan.components.push(step);
    step
}
