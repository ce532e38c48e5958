//! Assembly: the rootfs is the ordered union of components (store items
//! holding FHS trees). This module checks that union and groups components
//! into layers.
//!
//! Union rule: directories merge; two components may place the same file
//! only with identical bytes and the same executable bit, and the same
//! symlink only with the same target (every nvidia wheel ships the same
//! `nvidia/__init__.py`). Anything else is an error naming the path and both
//! components.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub mod grouping;
pub mod rootfs;

pub use grouping::{group_layers, GroupInput};
pub use rootfs::rootfs;

use envbuild_store::{Store, StorePath};

use crate::io::read_full;
use crate::oci::{LayerBlob, PathOverride};

/// A component: a store item with an FHS tree, and the ownership/mode
/// overrides the spec gives its paths (applied in layers, never to the
/// store's files).
#[derive(Debug, Clone)]
pub struct Component {
    pub label: String,
    /// What stays the same when the component's version changes (a
    /// package's name, a destination): layer grouping cuts by it, so a
    /// version bump moves no group boundary (see [`grouping`]).
    pub group_key: String,
    pub item: StorePath,
    /// Where the FHS tree starts inside the item ("" for the item itself).
    pub subdir: &'static str,
    pub overrides: BTreeMap<String, PathOverride>,
    /// Gets a layer of its own even past the layer budget.
    pub own_layer: bool,
    /// Tree-relative paths this component places over an earlier
    /// component's (the base image's `/etc/passwd` extended by
    /// `base-files`): the union rule lets it, and the rootfs takes this one.
    pub amends: Vec<String>,
}

impl Component {
    /// The component's FHS tree on disk.
    pub fn tree(&self, store: &Store) -> PathBuf {
        let item = store.physical_path(&self.item);
        if self.subdir.is_empty() {
            item
        } else {
            item.join(self.subdir)
        }
    }
}

/// A realized layer.
#[derive(Debug, Clone)]
pub struct Layer {
    pub item: StorePath,
    pub blob: LayerBlob,
    pub blob_path: PathBuf,
    /// The labels of the components it holds.
    pub components: Vec<String>,
}

/// Layers in an image at most (DESIGN.md section 5).
pub const LAYER_BUDGET: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    #[error("components {first} and {second} both place {path} in the rootfs, with different contents ({first}: {first_has}; {second}: {second_has})")]
    Conflict {
        path: String,
        first: String,
        second: String,
        first_has: String,
        second_has: String,
    },
    #[error("assembling the rootfs: {what} {path}: {source}")]
    Rootfs {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {path} of component {component}: {source}")]
    Io {
        component: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A component as assembly sees it.
#[derive(Debug, Clone)]
pub struct ComponentTree {
    pub label: String,
    pub root: PathBuf,
    /// Paths it may place over an earlier component's (see
    /// [`Component::amends`]).
    pub amends: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir,
    File { executable: bool, size: u64 },
    Symlink(PathBuf),
}

fn describe(n: &Node) -> String {
    match n {
        Node::Dir => "a directory".into(),
        Node::File { executable, size } => format!(
            "a {}file of {size} bytes",
            if *executable { "executable " } else { "" }
        ),
        Node::Symlink(t) => format!("a symlink to {}", t.display()),
    }
}

fn same_bytes(a: &Path, b: &Path) -> std::io::Result<bool> {
    let (mut fa, mut fb) = (File::open(a)?, File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

/// Check that the ordered union of `components` is well defined.
pub fn check_union(components: &[ComponentTree]) -> Result<(), AssembleError> {
    // image path → (component index, node, physical path)
    let mut seen: BTreeMap<String, (usize, Node, PathBuf)> = BTreeMap::new();
    for (ci, c) in components.iter().enumerate() {
        let io = |path: &Path, source| AssembleError::Io {
            component: c.label.clone(),
            path: path.to_path_buf(),
            source,
        };
        for entry in walkdir::WalkDir::new(&c.root)
            .follow_root_links(false)
            .min_depth(1)
        {
            let entry = entry.map_err(|e| {
                let p = e
                    .path()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| c.root.clone());
                io(&p, e.into())
            })?;
            let rel = entry
                .path()
                .strip_prefix(&c.root)
                .expect("walkdir yields paths under its root");
            let image_path = format!("/{}", rel.to_string_lossy());
            let meta = entry
                .path()
                .symlink_metadata()
                .map_err(|e| io(entry.path(), e))?;
            let node = if meta.is_dir() {
                Node::Dir
            } else if meta.file_type().is_symlink() {
                Node::Symlink(std::fs::read_link(entry.path()).map_err(|e| io(entry.path(), e))?)
            } else {
                Node::File {
                    executable: meta.permissions().mode() & 0o100 != 0,
                    size: meta.len(),
                }
            };
            match seen.get(&image_path) {
                None => {
                    seen.insert(image_path, (ci, node, entry.path().to_path_buf()));
                }
                Some(_) if c.amends.iter().any(|a| *a == rel.to_string_lossy()) => {
                    seen.insert(image_path, (ci, node, entry.path().to_path_buf()));
                }
                Some((pi, prev, prev_path)) => {
                    let fine = match (prev, &node) {
                        (Node::Dir, Node::Dir) => true,
                        (Node::File { .. }, Node::File { .. }) if prev == &node => {
                            same_bytes(prev_path, entry.path()).map_err(|e| io(entry.path(), e))?
                        }
                        (Node::Symlink(a), Node::Symlink(b)) => a == b,
                        _ => false,
                    };
                    if !fine {
                        let different_bytes = prev == &node;
                        return Err(AssembleError::Conflict {
                            path: image_path,
                            first: components[*pi].label.clone(),
                            second: c.label.clone(),
                            first_has: describe(prev),
                            second_has: if different_bytes {
                                format!("{} with different bytes", describe(&node))
                            } else {
                                describe(&node)
                            },
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comp(dir: &Path, label: &str, files: &[(&str, &[u8], u32)]) -> ComponentTree {
        let root = dir.join(label);
        for (p, data, mode) in files {
            let f = root.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(&f, data).unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(*mode)).unwrap();
        }
        ComponentTree {
            label: label.into(),
            root,
            amends: Vec::new(),
        }
    }

    #[test]
    fn identical_files_in_two_components_are_fine() {
        let t = tempfile::tempdir().unwrap();
        let a = comp(
            t.path(),
            "nvidia-a",
            &[
                ("sp/nvidia/__init__.py", b"", 0o644),
                ("sp/nvidia/a/x", b"a", 0o644),
            ],
        );
        let b = comp(
            t.path(),
            "nvidia-b",
            &[
                ("sp/nvidia/__init__.py", b"", 0o644),
                ("sp/nvidia/b/x", b"b", 0o644),
            ],
        );
        check_union(&[a, b]).unwrap();
    }

    #[test]
    fn different_bytes_at_one_path_name_both_components() {
        let t = tempfile::tempdir().unwrap();
        let a = comp(t.path(), "first", &[("etc/conf", b"one", 0o644)]);
        let b = comp(t.path(), "second", &[("etc/conf", b"two", 0o644)]);
        let err = check_union(&[a, b]).unwrap_err().to_string();
        assert!(
            err.contains("/etc/conf") && err.contains("first") && err.contains("second"),
            "{err}"
        );
        assert!(err.contains("different bytes"), "{err}");
    }

    #[test]
    fn file_against_directory_and_exec_bit_are_conflicts() {
        let t = tempfile::tempdir().unwrap();
        let a = comp(
            t.path(),
            "a",
            &[("x/y", b"1", 0o644), ("bin/t", b"#!", 0o755)],
        );
        let b = comp(t.path(), "b", &[("x", b"1", 0o644)]);
        assert!(check_union(&[a.clone(), b]).is_err());
        let c = comp(t.path(), "c", &[("bin/t", b"#!", 0o644)]);
        assert!(check_union(&[a, c]).is_err());
    }
}

/// One directory, one owner and mode in the image: a directory that several
/// components contain is written in each of their layers, and the last
/// layer's entry wins when the image is unpacked. So the first override a
/// component gives a directory (base-files making `/home/appuser` the
/// user's, `/tmp` 1777) is copied to every later component that has the
/// same directory without an override of its own; otherwise an app file
/// under the home would hand the home back to root. `trees[i]` is
/// component i's FHS tree on disk; `overrides[i]` its overrides, keyed by
/// tree-relative path.
pub fn share_directory_overrides<O: Clone>(
    trees: &[PathBuf],
    overrides: &mut [BTreeMap<String, O>],
) {
    let mut first: BTreeMap<String, (usize, O)> = BTreeMap::new();
    for (i, (tree, ovr)) in trees.iter().zip(overrides.iter()).enumerate() {
        for (path, o) in ovr {
            if !first.contains_key(path) && tree.join(path).is_dir() {
                first.insert(path.clone(), (i, o.clone()));
            }
        }
    }
    for (path, (owner, o)) in &first {
        for (i, (tree, ovr)) in trees.iter().zip(overrides.iter_mut()).enumerate() {
            if i != *owner && !ovr.contains_key(path) {
                let p = tree.join(path);
                if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                    ovr.insert(path.clone(), o.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod share_tests {
    use super::*;

    #[test]
    fn a_later_component_inherits_the_first_override_of_a_shared_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("base");
        let app = tmp.path().join("app");
        let other = tmp.path().join("other");
        std::fs::create_dir_all(base.join("home/appuser")).unwrap();
        std::fs::create_dir_all(app.join("home/appuser/app")).unwrap();
        std::fs::create_dir_all(other.join("usr/bin")).unwrap();
        let trees = vec![base, app, other];
        let mut ovr: Vec<BTreeMap<String, u32>> = vec![
            BTreeMap::from([("home/appuser".to_string(), 1001)]),
            BTreeMap::from([("home/appuser/app".to_string(), 7)]),
            BTreeMap::new(),
        ];
        share_directory_overrides(&trees, &mut ovr);
        assert_eq!(
            ovr[1].get("home/appuser"),
            Some(&1001),
            "the app's copy of the home"
        );
        assert_eq!(
            ovr[1].get("home/appuser/app"),
            Some(&7),
            "its own override kept"
        );
        assert!(
            ovr[2].is_empty(),
            "a component without the directory gets nothing"
        );
        assert!(!ovr[0].contains_key("home/appuser/app"));
    }
}
