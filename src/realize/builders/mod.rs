//! The built-in builders. Each takes its inputs as store items and writes
//! its output into an empty directory; the [`Realizer`] skips it when its
//! derivation was realized before.

pub mod base_image;
pub mod debian_bytecode;
pub mod model;
pub mod sdist;
pub mod wheel;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use envbuild_store::nar::{self, writer::HashingWriter};
use envbuild_store::StorePath;

use super::{io_err, RealizeError, Realizer};
use crate::assemble::{check_union, Component, ComponentTree, Layer};
use crate::oci::{self, LayerBlob, LayerSource, PathOverride};
use crate::plan::{item_name, BaseFiles, Derivation, ImagePlan};

pub fn sha256_file(path: &Path) -> Result<String, RealizeError> {
    crate::io::sha256_file(path).map_err(io_err("reading", path))
}

pub(crate) fn rel(image_path: &str) -> &str {
    image_path.trim_start_matches('/')
}

pub(crate) fn mkdirs(path: &Path) -> Result<(), RealizeError> {
    fs::create_dir_all(path).map_err(io_err("creating", path))
}

pub(crate) fn write_file(path: &Path, data: &[u8]) -> Result<(), RealizeError> {
    if let Some(p) = path.parent() {
        mkdirs(p)?;
    }
    fs::write(path, data).map_err(io_err("writing", path))
}

/// `base-files`: `/etc/passwd`, `/etc/group` and the image's directories.
///
/// On a base image (`base`: its view's tree) the base's `/etc/passwd` and
/// `/etc/group` are kept with lines added for the names they lack (root,
/// the image user); a file that lacks nothing is not written.
pub fn base_files(
    r: &mut Realizer,
    drv: &Derivation,
    b: &BaseFiles,
    base: Option<&Path>,
) -> Result<Component, RealizeError> {
    let mut files: Vec<(&str, Option<String>)> = Vec::new();
    let mut amends = Vec::new();
    for (rel_path, ours) in [("etc/passwd", &b.passwd), ("etc/group", &b.group)] {
        let text = match base {
            None => Some(ours.clone()),
            Some(tree) => match extend_names(tree, rel_path, ours)? {
                Extended::Absent => Some(ours.clone()),
                Extended::Complete => None,
                Extended::Added(t) => {
                    amends.push(rel_path.to_string());
                    Some(t)
                }
            },
        };
        files.push((rel_path, text));
    }
    let item = r.realize(drv, &[], |_, out| {
        for (rel_path, text) in &files {
            if let Some(t) = text {
                write_file(&out.join(rel_path), t.as_bytes())?;
            }
        }
        mkdirs(out)?;
        for d in &b.dirs {
            mkdirs(&out.join(rel(d)))?;
        }
        Ok(())
    })?;
    Ok(Component {
        subdir: "",
        label: "base-files".into(),
        group_key: "base-files".into(),
        item,
        overrides: b.overrides.clone(),
        own_layer: false,
        amends,
    })
}

/// What a base image's `/etc/passwd` or `/etc/group` needs.
enum Extended {
    /// The base has none (or not as a regular file): ours is written.
    Absent,
    /// It names everyone ours does.
    Complete,
    /// The base's lines, then ours for the names it lacks.
    Added(String),
}

fn extend_names(tree: &Path, rel_path: &str, ours: &str) -> Result<Extended, RealizeError> {
    // Never read through a link of the base.
    let mut p = tree.to_path_buf();
    for c in rel_path.split('/') {
        p.push(c);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => return Ok(Extended::Absent),
            Ok(_) => {}
            Err(_) => return Ok(Extended::Absent),
        }
    }
    if !p.is_file() {
        return Ok(Extended::Absent);
    }
    let theirs = fs::read_to_string(&p).map_err(io_err("reading", &p))?;
    let name = |l: &str| l.split(':').next().unwrap_or("").to_string();
    let have: std::collections::BTreeSet<String> = theirs.lines().map(name).collect();
    let missing: Vec<&str> = ours.lines().filter(|l| !have.contains(&name(l))).collect();
    if missing.is_empty() {
        return Ok(Extended::Complete);
    }
    let mut text = theirs;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    for l in missing {
        text.push_str(l);
        text.push('\n');
    }
    Ok(Extended::Added(text))
}

/// `copy-files`: a local file or directory at its destination, with the
/// owner and mode the spec gives every path it places.
pub fn copy_files(
    r: &mut Realizer,
    drv: &Derivation,
    dst: &str,
    owner: Option<(u32, u32)>,
    mode: Option<u32>,
    input: &StorePath,
) -> Result<Component, RealizeError> {
    let item = r.realize(drv, &[], |store, out| {
        let target = out.join(rel(dst));
        if let Some(p) = target.parent() {
            mkdirs(p)?;
        }
        let mut sink = HashingWriter::new();
        nar::dump_and_copy(&store.physical_path(input), &mut sink, &target)
            .map_err(envbuild_store::StoreError::from)?;
        Ok(())
    })?;
    let mut overrides = BTreeMap::new();
    if owner.is_some() || mode.is_some() {
        let root = r.output_path(&item);
        override_tree(&root, dst, &mut overrides, |is_dst, is_symlink| {
            PathOverride {
                mode: if is_dst && !is_symlink { mode } else { None },
                uid: owner.map(|o| o.0),
                gid: owner.map(|o| o.1),
            }
        })?;
    }
    Ok(Component {
        subdir: "",
        label: format!("files {dst}"),
        group_key: format!("files {dst}"),
        item,
        overrides,
        own_layer: true,
        amends: Vec::new(),
    })
}

/// Give every path at and below `dst` (an image path) in the tree `root` an
/// override: `make(is_dst, is_symlink)`. Keys are tree-relative paths.
pub(crate) fn override_tree(
    root: &Path,
    dst: &str,
    overrides: &mut BTreeMap<String, PathOverride>,
    make: impl Fn(bool, bool) -> PathOverride,
) -> Result<(), RealizeError> {
    let base = root.join(rel(dst));
    for entry in walkdir::WalkDir::new(&base).follow_root_links(false) {
        let entry = entry.map_err(|e| RealizeError::Io {
            what: "reading",
            path: base.clone(),
            source: e.into(),
        })?;
        let p = entry
            .path()
            .strip_prefix(root)
            .unwrap_or(entry.path())
            .to_string_lossy()
            .into_owned();
        overrides.insert(p, make(entry.depth() == 0, entry.path_is_symlink()));
    }
    Ok(())
}

/// Check the union of all components once per set of components.
pub fn union_check(r: &mut Realizer, components: &[Component]) -> Result<(), RealizeError> {
    let mut drv = Derivation::new("union-check", 1, "rootfs-union-check");
    for c in components {
        drv = drv
            .input(c.item.clone())
            .arg(&format!("label:{}", c.item.basename()), c.label.clone());
    }
    let trees: Vec<ComponentTree> = components
        .iter()
        .map(|c| ComponentTree {
            amends: c.amends.clone(),
            label: c.label.clone(),
            root: c.tree(r.store),
        })
        .collect();
    r.realize(&drv, &[], |_, out| {
        check_union(&trees)?;
        write_file(out, b"ok\n")
    })?;
    Ok(())
}

/// One layer blob from one or more components.
pub fn layer(
    r: &mut Realizer,
    members: &[&Component],
    mtime: u64,
    compression: oci::Compression,
) -> Result<Layer, RealizeError> {
    let mut overrides: BTreeMap<String, PathOverride> = BTreeMap::new();
    for m in members {
        overrides.extend(m.overrides.iter().map(|(k, v)| (k.clone(), *v)));
    }
    let overrides_json = serde_json::to_string(&overrides).expect("overrides serialize");
    let mut drv = Derivation::new(
        "layer",
        1,
        format!("layer-{}", item_name(&members[0].label)),
    )
    .arg("compression", compression.identity())
    .arg("mtime", mtime.to_string())
    .arg("overrides", overrides_json);
    for m in members {
        drv = drv.input(m.item.clone());
    }
    let sources: Vec<LayerSource> = members
        .iter()
        .map(|m| LayerSource {
            root: m.tree(r.store),
            prefix: String::new(),
            label: m.label.clone(),
        })
        .collect();
    let item = r.realize(&drv, &[], |_, out| {
        mkdirs(out)?;
        let blob = oci::write_layer(&sources, &overrides, mtime, compression, &out.join("blob"))?;
        let json = serde_json::to_vec_pretty(&blob).expect("a layer blob serializes");
        write_file(&out.join("layer.json"), &json)
    })?;
    let dir = r.output_path(&item);
    let meta = dir.join("layer.json");
    let blob: LayerBlob = serde_json::from_slice(
        &fs::read(&meta).map_err(io_err("reading", &meta))?,
    )
    .map_err(|e| RealizeError::BadItem {
        item: item.basename(),
        builder: "layer",
        what: format!("its layer.json is not valid: {e}"),
    })?;
    let blob_path = r.store.physical_path(&item).join("blob");
    Ok(Layer {
        item,
        blob,
        blob_path,
        components: members.iter().map(|m| m.label.clone()).collect(),
    })
}

/// The image config and manifest, kept as an item that refers to its layers
/// (so a root on it keeps the whole image alive).
pub fn image(
    r: &mut Realizer,
    plan: &ImagePlan,
    layers: &[Layer],
    epoch: u64,
) -> Result<(oci::Image, StorePath), RealizeError> {
    let mut config = plan.config.clone();
    config.history = layers
        .iter()
        .map(|l| oci::HistoryEntry {
            created_by: format!("envbuild: {}", l.components.join(", ")),
            comment: None,
            empty_layer: false,
        })
        .collect();
    let pairs: Vec<(LayerBlob, std::path::PathBuf)> = layers
        .iter()
        .map(|l| (l.blob.clone(), l.blob_path.clone()))
        .collect();
    let image = oci::build_image(&config, &pairs, &plan.reference, epoch)?;
    let refs: Vec<StorePath> = layers.iter().map(|l| l.item.clone()).collect();
    let mut drv = Derivation::new(
        "image",
        1,
        format!("image-{}", item_name(&plan.reference.replace(':', "-"))),
    )
    .arg("manifest", image.manifest.digest.clone());
    for l in &refs {
        drv = drv.input(l.clone());
    }
    let item = r.realize(&drv, &refs, |_, out| {
        write_file(&out.join("config.json"), &image.config_json)?;
        write_file(&out.join("manifest.json"), &image.manifest_json)?;
        write_file(&out.join("index.json"), &image.index_json())
    })?;
    Ok((image, item))
}

/// What `unpack-deb` records beside the tree: ownership and special bits
/// the tree on disk cannot hold (the store is owned by one user and drops
/// setuid), applied in the layer instead.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct DebMeta {
    package: String,
    version: String,
    owners: Vec<(String, u32, u32, u32)>,
    skipped: Vec<String>,
}

/// Unpack one .deb (data only; maintainer scripts are not run) into a
/// component whose tree is `tree/` in the item.
pub fn unpack_deb(
    r: &mut Realizer,
    drv: &Derivation,
    filename: &str,
    deb: &StorePath,
) -> Result<Component, RealizeError> {
    let item = r.realize(drv, &[], |store, out| {
        let tree = out.join("tree");
        mkdirs(&tree)?;
        let x = crate::debian::deb::extract(&store.physical_path(deb), &tree).map_err(|e| {
            RealizeError::BadItem {
                item: filename.to_string(),
                builder: "unpack-deb",
                what: e.to_string(),
            }
        })?;
        let meta = DebMeta {
            package: x.control.control.get("Package").unwrap_or("").to_string(),
            version: x.control.control.get("Version").unwrap_or("").to_string(),
            owners: x
                .owners
                .iter()
                .map(|o| {
                    (
                        o.path.to_string_lossy().into_owned(),
                        o.uid as u32,
                        o.gid as u32,
                        o.mode & 0o7777,
                    )
                })
                .collect(),
            skipped: x
                .skipped
                .iter()
                .map(|s| format!("{}: {}", s.path.display(), s.note))
                .collect(),
        };
        write_file(
            &out.join("deb.json"),
            &serde_json::to_vec_pretty(&meta).expect("serializes"),
        )
    })?;
    let meta_path = r.output_path(&item).join("deb.json");
    let meta: DebMeta =
        serde_json::from_slice(&fs::read(&meta_path).map_err(io_err("reading", &meta_path))?)
            .map_err(|e| RealizeError::BadItem {
                item: item.basename(),
                builder: "unpack-deb",
                what: format!("its deb.json is not valid: {e}"),
            })?;
    let overrides = meta
        .owners
        .iter()
        .map(|(p, uid, gid, mode)| {
            (
                p.trim_start_matches("./").to_string(),
                PathOverride {
                    mode: Some(*mode),
                    uid: Some(*uid),
                    gid: Some(*gid),
                },
            )
        })
        .collect();
    Ok(Component {
        label: format!("deb {} {}", meta.package, meta.version),
        group_key: format!("deb {}", meta.package),
        item,
        subdir: "tree",
        overrides,
        own_layer: false,
        amends: Vec::new(),
    })
}
