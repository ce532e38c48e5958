//! The built-in builders. Each takes its inputs as store items and writes
//! its output into an empty directory; the [`Realizer`] skips it when its
//! derivation was realized before.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use envbuild_store::nar::{self, writer::HashingWriter};
use envbuild_store::StorePath;

use super::{io_err, item_name, Component, Layer, RealizeError, Realizer};
use crate::assemble::{check_union, ComponentTree};
use crate::oci::{self, ImageConfig, LayerBlob, LayerSource, PathOverride};
use crate::plan::Derivation;
use crate::python::wheel::{install_wheel, InstallOptions, InstallScheme};
use crate::spec::{self, FileInput, Spec};

/// The PATH an image gets unless the spec sets one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub fn sha256_file(path: &Path) -> Result<String, RealizeError> {
    crate::io::sha256_file(path).map_err(io_err("reading", path))
}

pub(crate) fn rel(image_path: &str) -> &str {
    image_path.trim_start_matches('/')
}

pub(crate) fn mkdirs(path: &Path) -> Result<(), RealizeError> {
    fs::create_dir_all(path).map_err(io_err("creating", path))
}

fn write_file(path: &Path, data: &[u8]) -> Result<(), RealizeError> {
    if let Some(p) = path.parent() {
        mkdirs(p)?;
    }
    fs::write(path, data).map_err(io_err("writing", path))
}

/// `/etc/passwd`, `/etc/group`, `/tmp` (1777), the user's home and the
/// working directory: what a base image or `useradd` would have made.
pub fn base_files(r: &mut Realizer, spec: &Spec) -> Result<Component, RealizeError> {
    let img = &spec.image;
    let mut passwd = String::from("root:x:0:0:root:/root:/bin/sh\n");
    let mut group = String::from("root:x:0:\n");
    let mut dirs = vec!["/root".to_string(), "/tmp".to_string()];
    let mut overrides = BTreeMap::new();
    overrides.insert(
        "tmp".to_string(),
        PathOverride {
            mode: Some(0o1777),
            uid: None,
            gid: None,
        },
    );
    overrides.insert(
        "root".to_string(),
        PathOverride {
            mode: Some(0o700),
            uid: None,
            gid: None,
        },
    );
    if let Some(u) = &img.user {
        passwd.push_str(&format!(
            "{}:x:{}:{}::{}:/bin/sh\n",
            u.name, u.uid, u.gid, u.home
        ));
        group.push_str(&format!("{}:x:{}:\n", u.name, u.gid));
        dirs.push(u.home.clone());
        overrides.insert(
            rel(&u.home).to_string(),
            PathOverride {
                mode: Some(0o755),
                uid: Some(u.uid),
                gid: Some(u.gid),
            },
        );
    }
    if let Some(w) = &img.workdir {
        dirs.push(w.clone());
        if let Some(u) = img
            .user
            .as_ref()
            .filter(|u| w.starts_with(&format!("{}/", u.home)) || *w == u.home)
        {
            overrides.insert(
                rel(w).to_string(),
                PathOverride {
                    mode: Some(0o755),
                    uid: Some(u.uid),
                    gid: Some(u.gid),
                },
            );
        }
    }
    dirs.sort();
    dirs.dedup();
    let drv = Derivation::new("base-files", 1, "base-files")
        .arg("passwd", passwd.clone())
        .arg("group", group.clone())
        .arg("dirs", dirs.join(":"));
    let item = r.realize(&drv, &[], |_, out| {
        write_file(&out.join("etc/passwd"), passwd.as_bytes())?;
        write_file(&out.join("etc/group"), group.as_bytes())?;
        for d in &dirs {
            mkdirs(&out.join(rel(d)))?;
        }
        Ok(())
    })?;
    Ok(Component {
        subdir: "",
        label: "base-files".into(),
        item,
        overrides,
        own_layer: false,
    })
}

/// A wheel to install: its file name, sha256 (hex), size, and where its
/// bytes are.
#[derive(Debug, Clone)]
pub struct WheelInput {
    pub filename: String,
    pub sha256: String,
    pub size: u64,
    pub file: WheelFile,
}

#[derive(Debug, Clone)]
pub enum WheelFile {
    /// A store item: fetched from an index or URL, or built from an sdist.
    Item(StorePath),
    /// A file of the user's (`[[wheels]] path`, a pylock `path`): read in
    /// place, never copied into the store. When it is unpacked it must still
    /// have the locked sha256 (checked through the store's hash cache, so
    /// an unchanged file is not read twice).
    Local(PathBuf),
}

/// Install one wheel into a component of its own. The step is keyed by the
/// wheel's sha256, not by where the file came from: a wheel installed once
/// from a mirror, a URL or a local file is not installed again.
pub fn unpack_wheel(
    r: &mut Realizer,
    spec: &Spec,
    wheel: &WheelInput,
) -> Result<Component, RealizeError> {
    let filename = wheel.filename.as_str();
    let layout = &spec.python;
    let prefix = Path::new(&layout.site_packages)
        .ancestors()
        .nth(3)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/usr/local".into());
    let py = Path::new(&layout.site_packages)
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "python3".into());
    let scheme = InstallScheme {
        purelib: rel(&layout.site_packages).to_string(),
        platlib: rel(&layout.site_packages).to_string(),
        scripts: rel(&layout.scripts).to_string(),
        data: rel(&prefix).to_string(),
        headers: format!("{}/include/{py}", rel(&prefix))
            .trim_start_matches('/')
            .to_string(),
    };
    let drv = Derivation::new(
        "unpack-wheel",
        2,
        item_name(filename.trim_end_matches(".whl")),
    )
    .arg("filename", filename)
    .arg("sha256", wheel.sha256.clone())
    .arg("purelib", scheme.purelib.clone())
    .arg("platlib", scheme.platlib.clone())
    .arg("scripts", scheme.scripts.clone())
    .arg("data", scheme.data.clone())
    .arg("headers", scheme.headers.clone())
    .arg("shebang", layout.shebang.clone());
    let item = r.realize_written(&drv, &[], |store, out| {
        let source = match &wheel.file {
            WheelFile::Item(item) => store.physical_path(item),
            WheelFile::Local(path) => {
                let found = store.cached_hash(path, "sha256", |_| sha256_file(path))?;
                if found != wheel.sha256 {
                    return Err(RealizeError::InputChanged {
                        path: path.clone(),
                        expected: wheel.sha256.clone(),
                        found,
                    });
                }
                path.clone()
            }
        };
        // The installer reads the distribution's name from the file name.
        let named_dir = out.with_file_name("wheel");
        mkdirs(&named_dir)?;
        let named = named_dir.join(filename);
        std::os::unix::fs::symlink(&source, &named).map_err(io_err("linking", &named))?;
        let opts = InstallOptions {
            scheme: scheme.clone(),
            interpreter: layout.shebang.clone(),
            installer: "envbuild".into(),
        };
        Ok(install_wheel(&named, out, &opts)?.tree)
    })?;
    Ok(Component {
        subdir: "",
        label: format!("wheel {filename}"),
        item,
        overrides: BTreeMap::new(),
        own_layer: false,
    })
}

/// Place a local file or directory at its destination.
pub fn copy_files(
    r: &mut Realizer,
    f: &FileInput,
    input: &StorePath,
) -> Result<Component, RealizeError> {
    let drv = Derivation::new(
        "copy-files",
        1,
        item_name(&format!("files{}", f.dst.replace('/', "-"))),
    )
    .arg("dst", f.dst.clone())
    .input(input.clone());
    let item = r.realize(&drv, &[], |store, out| {
        let dst = out.join(rel(&f.dst));
        if let Some(p) = dst.parent() {
            mkdirs(p)?;
        }
        let mut sink = HashingWriter::new();
        nar::dump_and_copy(&store.physical_path(input), &mut sink, &dst)
            .map_err(envbuild_store::StoreError::from)?;
        Ok(())
    })?;
    // Ownership and mode from the spec, for every path the entry places.
    let mut overrides = BTreeMap::new();
    if f.owner.is_some() || f.mode.is_some() {
        let root = r.store.physical_path(&item);
        override_tree(&root, &f.dst, &mut overrides, |is_dst, is_symlink| {
            PathOverride {
                mode: if is_dst && !is_symlink { f.mode } else { None },
                uid: f.owner.map(|o| o.0),
                gid: f.owner.map(|o| o.1),
            }
        })?;
    }
    Ok(Component {
        subdir: "",
        label: format!("files {}", f.dst),
        item,
        overrides,
        own_layer: true,
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

pub fn compression(c: &spec::Compression) -> oci::Compression {
    match c {
        spec::Compression::Gzip(level) => oci::Compression::Gzip { level: *level },
        spec::Compression::Zstd(level) => oci::Compression::Zstd { level: *level },
        spec::Compression::None => oci::Compression::None,
    }
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
    spec: &Spec,
    layers: &[Layer],
    epoch: u64,
) -> Result<(oci::Image, StorePath), RealizeError> {
    let img = &spec.image;
    let mut env = Vec::new();
    if !img.env.contains_key("PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    env.extend(img.env.iter().map(|(k, v)| format!("{k}={v}")));
    let config = ImageConfig {
        user: img.user.as_ref().map(|u| u.name.clone()),
        env,
        entrypoint: img.entrypoint.clone(),
        cmd: img.cmd.clone(),
        working_dir: img.workdir.clone(),
        exposed_ports: img.ports.iter().cloned().collect(),
        labels: img.labels.clone(),
        volumes: img.volumes.iter().cloned().collect(),
        history: layers
            .iter()
            .map(|l| oci::HistoryEntry {
                created_by: format!("envbuild: {}", l.components.join(", ")),
                comment: None,
                empty_layer: false,
            })
            .collect(),
        ..ImageConfig::default()
    };
    let pairs: Vec<(LayerBlob, std::path::PathBuf)> = layers
        .iter()
        .map(|l| (l.blob.clone(), l.blob_path.clone()))
        .collect();
    let image = oci::build_image(&config, &pairs, &img.reference, epoch)?;
    let refs: Vec<StorePath> = layers.iter().map(|l| l.item.clone()).collect();
    let mut drv = Derivation::new(
        "image",
        1,
        format!("image-{}", item_name(&img.reference.replace(':', "-"))),
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
    filename: &str,
    deb: &StorePath,
) -> Result<Component, RealizeError> {
    let base = filename
        .rsplit('/')
        .next()
        .unwrap_or(filename)
        .trim_end_matches(".deb");
    let drv = Derivation::new("unpack-deb", 1, item_name(base))
        .arg("filename", filename)
        .input(deb.clone());
    let item = r.realize(&drv, &[], |store, out| {
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
        item,
        subdir: "tree",
        overrides,
        own_layer: false,
    })
}
