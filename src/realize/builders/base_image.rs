//! `unpack-base-image`: the rootfs view of a base image, and what the image
//! takes from it.
//!
//! The manifest input must list exactly the config and layers the step
//! pins. Each layer blob is decompressed (by its media type) and unpacked
//! through [`crate::debian::deb::unpack_tar`] (the one safe tar routine:
//! no `..`, no absolute paths, nothing written through a link) into a
//! scratch directory while the uncompressed stream is hashed: the hash
//! must be the config's `rootfs.diff_ids` entry. Then the layer is merged
//! onto the view, as a container runtime applies it: in each directory an
//! opaque marker (`.wh..wh..opq`) first empties what lower layers put
//! there, a whiteout `.wh.NAME` removes `NAME`, and the layer's entries
//! replace what is at their paths (a directory merges into a directory).
//! Every name comes from reading a directory, so it is one path
//! component; the view's directories are checked not to be links before
//! anything is written under them.
//!
//! The output item holds `tree/` (the view) and `base.json`: the config's
//! `config` object (what the image inherits) and each layer's diff ID and
//! uncompressed size.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::Path;

use envbuild_store::StorePath;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{mkdirs, write_file};
use crate::assemble::Component;
use crate::lock::LayerPin;
use crate::oci::BaseRuntime;
use crate::plan::Derivation;
use crate::realize::{io_err, RealizeError, Realizer};

/// What `base.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaseMeta {
    /// The base config's `config` object.
    pub runtime: BaseRuntime,
    /// One per layer, bottom first.
    pub layers: Vec<BaseLayerMeta>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaseLayerMeta {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
    pub diff_id: String,
    pub tar_size: u64,
}

#[derive(Deserialize)]
struct ManifestJson {
    config: Desc,
    layers: Vec<Desc>,
}

#[derive(Deserialize)]
struct Desc {
    digest: String,
}

#[derive(Deserialize)]
struct ConfigJson {
    #[serde(default)]
    config: Option<BaseRuntime>,
    rootfs: RootFsJson,
}

#[derive(Deserialize)]
struct RootFsJson {
    #[serde(default)]
    diff_ids: Vec<String>,
}

/// What the step is asked to unpack.
pub struct BaseImageStep<'a> {
    pub image: &'a str,
    pub manifest: &'a str,
    pub config: &'a str,
    pub layers: &'a [LayerPin],
}

struct Hashing<R> {
    inner: R,
    hash: Sha256,
    len: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// Realize the base image's view: items are the manifest, the config and
/// the layer blobs, in that order.
pub fn unpack_base_image(
    r: &mut Realizer,
    drv: &Derivation,
    step: &BaseImageStep,
    items: &[StorePath],
) -> Result<Component, RealizeError> {
    let bad = |what: String| RealizeError::BadItem {
        item: step.image.to_string(),
        builder: "unpack-base-image",
        what,
    };
    let item = r.realize(drv, &[], |store, out| {
        let manifest_path = store.physical_path(&items[0]);
        let manifest: ManifestJson = serde_json::from_slice(
            &fs::read(&manifest_path).map_err(io_err("reading", &manifest_path))?,
        )
        .map_err(|e| bad(format!("manifest {}: not an image manifest: {e}", step.manifest)))?;
        let listed: Vec<&str> = manifest.layers.iter().map(|l| l.digest.as_str()).collect();
        let pinned: Vec<&str> = step.layers.iter().map(|l| l.file.file.as_str()).collect();
        if manifest.config.digest != step.config || listed != pinned {
            return Err(bad(format!(
                "manifest {}: expected config {} and layers [{}] (the lock's), found config {} and layers [{}]",
                step.manifest,
                step.config,
                pinned.join(", "),
                manifest.config.digest,
                listed.join(", ")
            )));
        }
        let config_path = store.physical_path(&items[1]);
        let config: ConfigJson = serde_json::from_slice(
            &fs::read(&config_path).map_err(io_err("reading", &config_path))?,
        )
        .map_err(|e| bad(format!("config {}: not an image config: {e}", step.config)))?;
        if config.rootfs.diff_ids.len() != step.layers.len() {
            return Err(bad(format!(
                "config {}: expected {} rootfs.diff_ids (one per layer), found {}",
                step.config,
                step.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        let tree = out.join("tree");
        mkdirs(&tree)?;
        let scratch = out.with_extension("layers");
        let _ = envbuild_store::canonical::remove_tree(&scratch);
        mkdirs(&scratch)?;
        let mut metas = Vec::new();
        let result = (|| {
            for (i, (layer, blob_item)) in step.layers.iter().zip(&items[2..]).enumerate() {
                let blob = store.physical_path(blob_item);
                let dir = scratch.join(i.to_string());
                let label = format!("base image {} layer {}", step.image, layer.file.file);
                let file = File::open(&blob).map_err(io_err("reading", &blob))?;
                let reader = BufReader::with_capacity(1 << 16, file);
                let decoded: Box<dyn Read> = match layer.media_type.as_str() {
                    t if t.ends_with("+gzip") || t.ends_with(".tar.gzip") => {
                        Box::new(flate2::read::MultiGzDecoder::new(reader))
                    }
                    t if t.ends_with("+zstd") => Box::new(
                        zstd::stream::read::Decoder::new(reader)
                            .map_err(io_err("reading", &blob))?,
                    ),
                    _ => Box::new(reader),
                };
                let mut hashing = Hashing {
                    inner: decoded,
                    hash: Sha256::new(),
                    len: 0,
                };
                crate::debian::deb::unpack_tar(&label, "layer.tar", &mut hashing, &dir)
                    .map_err(|e| bad(e.to_string()))?;
                io::copy(&mut hashing, &mut io::sink()).map_err(io_err("reading", &blob))?;
                let diff_id = format!("sha256:{}", hex::encode(hashing.hash.finalize()));
                let expected = &config.rootfs.diff_ids[i];
                if diff_id != *expected {
                    return Err(bad(format!(
                        "layer {}: expected the uncompressed diff ID {expected} (the config's), found {diff_id}",
                        layer.file.file
                    )));
                }
                writable_dirs(&dir)?;
                merge_layer(&dir, &tree)?;
                let _ = envbuild_store::canonical::remove_tree(&dir);
                metas.push(BaseLayerMeta {
                    digest: layer.file.file.clone(),
                    size: layer.file.size,
                    media_type: layer.media_type.clone(),
                    diff_id,
                    tar_size: hashing.len,
                });
            }
            Ok(())
        })();
        let _ = envbuild_store::canonical::remove_tree(&scratch);
        result?;
        let meta = BaseMeta {
            runtime: config.config.unwrap_or_default(),
            layers: metas,
        };
        write_file(
            &out.join("base.json"),
            &serde_json::to_vec_pretty(&meta).expect("serializes"),
        )
    })?;
    Ok(Component {
        // Named by what it is, not where it was read from: the label is in
        // the image's history, which must not depend on the location.
        label: format!("base image {}", step.manifest),
        // The base's own layers are kept as they are, never regrouped.
        group_key: "base image".into(),
        item,
        subdir: "tree",
        overrides: BTreeMap::new(),
        own_layer: false,
        amends: Vec::new(),
    })
}

/// The `base.json` of a realized `unpack-base-image` item.
pub fn base_meta(
    store: &envbuild_store::Store,
    item: &StorePath,
) -> Result<BaseMeta, RealizeError> {
    let path = store.physical_path(item).join("base.json");
    serde_json::from_slice(&fs::read(&path).map_err(io_err("reading", &path))?).map_err(|e| {
        RealizeError::BadItem {
            item: item.basename(),
            builder: "unpack-base-image",
            what: format!("its base.json is not valid: {e}"),
        }
    })
}

/// Give every directory under `dir` (unpacked modes) its owner's write
/// and search bits, so that the merge can move entries out of it.
fn writable_dirs(dir: &Path) -> Result<(), RealizeError> {
    use std::os::unix::fs::PermissionsExt;
    for e in walkdir::WalkDir::new(dir).follow_links(false) {
        let e = e.map_err(|e| RealizeError::Io {
            what: "reading",
            path: dir.to_path_buf(),
            source: e.into(),
        })?;
        if e.file_type().is_dir() {
            fs::set_permissions(e.path(), fs::Permissions::from_mode(0o755))
                .map_err(io_err("setting the mode of", e.path()))?;
        }
    }
    Ok(())
}

const OPAQUE: &str = ".wh..wh..opq";
const WHITEOUT: &str = ".wh.";

fn remove_any(path: &Path) -> Result<(), RealizeError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            envbuild_store::canonical::remove_tree(path).map_err(io_err("removing", path))
        }
        Ok(_) => fs::remove_file(path).map_err(io_err("removing", path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("reading", path)(e)),
    }
}

/// Apply the unpacked layer `src` onto the view `dst` (a real directory).
fn merge_layer(src: &Path, dst: &Path) -> Result<(), RealizeError> {
    let mut names: Vec<std::ffi::OsString> = fs::read_dir(src)
        .map_err(io_err("reading", src))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(io_err("reading", src))?;
    names.sort();
    // Whiteouts first: they hide what lower layers put here.
    if names.iter().any(|n| n == OPAQUE) {
        for e in fs::read_dir(dst).map_err(io_err("reading", dst))? {
            let e = e.map_err(io_err("reading", dst))?;
            remove_any(&e.path())?;
        }
    }
    for n in &names {
        let s = n.to_string_lossy();
        if let Some(hidden) = s.strip_prefix(WHITEOUT) {
            if !hidden.is_empty() && hidden != "." && hidden != ".." && !s.starts_with(".wh..wh.") {
                remove_any(&dst.join(hidden))?;
            }
        }
    }
    for n in &names {
        if n.to_string_lossy().starts_with(WHITEOUT) {
            continue;
        }
        let from = src.join(n);
        let to = dst.join(n);
        let meta = fs::symlink_metadata(&from).map_err(io_err("reading", &from))?;
        if meta.is_dir() {
            match fs::symlink_metadata(&to) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    fs::remove_file(&to).map_err(io_err("replacing", &to))?;
                    fs::create_dir(&to).map_err(io_err("creating", &to))?;
                }
                Err(_) => fs::create_dir(&to).map_err(io_err("creating", &to))?,
            }
            merge_layer(&from, &to)?;
        } else {
            remove_any(&to)?;
            fs::rename(&from, &to).map_err(io_err("moving into place", &to))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, text: &str) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn whiteouts_and_opaque_directories_hide_lower_layers() {
        let t = tempfile::tempdir().unwrap();
        let view = t.path().join("view");
        let lower = t.path().join("lower");
        let upper = t.path().join("upper");
        write(&lower.join("etc/gone"), "x");
        write(&lower.join("etc/kept"), "k");
        write(&lower.join("opt/a/old"), "o");
        write(&lower.join("lib/thing"), "l");
        write(&upper.join("etc/.wh.gone"), "");
        write(&upper.join("opt/a/.wh..wh..opq"), "");
        write(&upper.join("opt/a/new"), "n");
        write(&upper.join("etc/kept"), "k2");
        write(&upper.join(".wh.lib"), "");
        fs::create_dir(&view).unwrap();
        merge_layer(&lower, &view).unwrap();
        merge_layer(&upper, &view).unwrap();
        assert!(!view.join("etc/gone").exists());
        assert!(!view.join("etc/.wh.gone").exists());
        assert_eq!(fs::read_to_string(view.join("etc/kept")).unwrap(), "k2");
        assert!(!view.join("opt/a/old").exists());
        assert!(view.join("opt/a/new").exists());
        assert!(!view.join("opt/a/.wh..wh..opq").exists());
        assert!(!view.join("lib").exists());
    }

    #[test]
    fn a_directory_replaces_a_link_instead_of_being_written_through_it() {
        let t = tempfile::tempdir().unwrap();
        let view = t.path().join("view");
        let outside = t.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::create_dir(&view).unwrap();
        std::os::unix::fs::symlink(&outside, view.join("lib")).unwrap();
        let upper = t.path().join("upper");
        write(&upper.join("lib/evil"), "e");
        merge_layer(&upper, &view).unwrap();
        assert!(!outside.join("evil").exists());
        assert!(fs::symlink_metadata(view.join("lib")).unwrap().is_dir());
        assert!(view.join("lib/evil").exists());
    }
}
