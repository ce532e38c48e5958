//! Export: write a realized image where the user asked for it.
//!
//! - `oci-archive` (default): one tar that is both an OCI image layout and a
//!   docker archive (`docker load`, `podman load`, `skopeo`, `umoci`).
//! - `oci-dir`: the same layout as a directory, blobs hardlinked from the
//!   store.
//! - `rootfs`: the union of the components as a plain directory tree, with
//!   the image's modes (and owners, when run as root).
//!
//! Every format is written next to its destination and renamed into place,
//! so an interrupted export never leaves a half-written result under the
//! requested name.
//!
//! An export is recorded in the store's hash cache (kind `export:<format>`,
//! value the image item): when `out` still is exactly what an earlier export
//! of the same image wrote (nothing `lstat` reports about it, or anything
//! below it, changed), it is not written again. A no-op realize of a
//! multi-GB image then costs milliseconds.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use envbuild_store::Store;

use crate::assemble::Component;
use crate::oci::{self, OciError, PathOverride};
use crate::realize::Realized;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One tar: an OCI layout that is also a docker archive
    OciArchive,
    /// An OCI layout directory (blobs hardlinked from the store)
    OciDir,
    /// The same tar as oci-archive, for `docker load`
    Docker,
    /// The root file system as a directory
    Rootfs,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Oci(#[from] OciError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("output {path} already exists and is not empty (expected a new path, or an empty directory)")]
    Exists { path: PathBuf },
    #[error("output {path} is a directory (expected a file path for {format}; --format oci-dir or rootfs writes a directory)")]
    IsADirectory { path: PathBuf, format: &'static str },
    #[error("cannot write output {path}: {source}")]
    Unwritable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{format} cannot be written to standard output (expected a path; only oci-archive and docker stream)")]
    NotAStream { format: &'static str },
    #[error(transparent)]
    Store(#[from] envbuild_store::StoreError),
}

/// What [`export`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exported {
    Written,
    /// `out` already held this image, unchanged since it was written.
    AlreadyThere,
}

fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> ExportError + 'a {
    move |source| ExportError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn staging_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    out.with_file_name(format!(".{name}.envbuild-{}", std::process::id()))
}

fn check_free_dir(out: &Path) -> Result<(), ExportError> {
    match fs::read_dir(out) {
        Ok(mut rd) => {
            if rd.next().is_some() {
                return Err(ExportError::Exists { path: out.into() });
            }
            fs::remove_dir(out).map_err(io_err("replacing", out))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => Err(ExportError::Exists { path: out.into() }),
    }
}

impl Format {
    /// The name `--format` gives it.
    pub fn name(self) -> &'static str {
        match self {
            Format::OciArchive => "oci-archive",
            Format::OciDir => "oci-dir",
            Format::Docker => "docker",
            Format::Rootfs => "rootfs",
        }
    }

    fn is_archive(self) -> bool {
        matches!(self, Format::OciArchive | Format::Docker)
    }
}

/// Stream `realized` as one archive to `out` (standard output: `-o -`).
/// Only the archive formats stream; a directory format is refused.
pub fn export_to_writer(
    realized: &Realized,
    format: Format,
    out: &mut impl std::io::Write,
) -> Result<(), ExportError> {
    if !format.is_archive() {
        return Err(ExportError::NotAStream {
            format: format.name(),
        });
    }
    oci::write_oci_archive(&realized.image, out)?;
    out.flush().map_err(|source| ExportError::Unwritable {
        path: PathBuf::from("-"),
        source,
    })
}

/// Write `realized` to `out` in `format`, unless `out` already is that.
///
/// Errors name `out`, the path the user gave, never the staging path; a
/// failed export leaves nothing behind (neither a partial output nor the
/// staging file).
pub fn export(
    store: &mut Store,
    realized: &Realized,
    format: Format,
    out: &Path,
) -> Result<Exported, ExportError> {
    let kind = format!("export:{format:?}");
    let image = realized.image_item.basename();
    if store.known_hash(out, &kind)?.as_deref() == Some(image.as_str()) {
        return Ok(Exported::AlreadyThere);
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|source| ExportError::Unwritable {
            path: out.into(),
            source,
        })?;
    }
    if format.is_archive() && fs::symlink_metadata(out).is_ok_and(|m| m.is_dir()) {
        return Err(ExportError::IsADirectory {
            path: out.into(),
            format: format.name(),
        });
    }
    let staging = staging_path(out);
    let _ = envbuild_store::canonical::remove_tree(&staging);
    let _ = fs::remove_file(&staging);
    // Where the staging file or directory cannot be made, the output cannot
    // be written: say so about the output, not the staging name.
    let probe = if format.is_archive() {
        fs::File::create(&staging).map(drop)
    } else {
        fs::create_dir(&staging).and_then(|()| fs::remove_dir(&staging))
    };
    probe.map_err(|source| ExportError::Unwritable {
        path: out.into(),
        source,
    })?;
    let result = match format {
        Format::OciArchive | Format::Docker => {
            oci::write_oci_archive_file(&realized.image, &staging).map_err(ExportError::from)
        }
        Format::OciDir => {
            check_free_dir(out)?;
            oci::write_oci_dir(&realized.image, &staging).map_err(ExportError::from)
        }
        Format::Rootfs => {
            check_free_dir(out)?;
            write_rootfs(store, &realized.components, &staging)
        }
    };
    if let Err(e) = result {
        let _ = envbuild_store::canonical::remove_tree(&staging);
        let _ = fs::remove_file(&staging);
        return Err(e);
    }
    if let Err(source) = fs::rename(&staging, out) {
        let _ = envbuild_store::canonical::remove_tree(&staging);
        let _ = fs::remove_file(&staging);
        return Err(ExportError::Unwritable {
            path: out.into(),
            source,
        });
    }
    store.record_hash(out, &kind, &image)?;
    Ok(Exported::Written)
}

fn write_rootfs(store: &Store, components: &[Component], dest: &Path) -> Result<(), ExportError> {
    fs::create_dir(dest).map_err(io_err("creating", dest))?;
    let is_root = rustix::process::geteuid().is_root();
    let mut overrides: BTreeMap<String, PathOverride> = BTreeMap::new();
    for c in components {
        overrides.extend(c.overrides.iter().map(|(k, v)| (k.clone(), *v)));
    }
    for c in components {
        let root = c.tree(store);
        for entry in walkdir::WalkDir::new(&root)
            .follow_root_links(false)
            .min_depth(1)
        {
            let entry = entry.map_err(|e| ExportError::Io {
                what: "reading",
                path: root.clone(),
                source: e.into(),
            })?;
            let rel = entry.path().strip_prefix(&root).unwrap_or(entry.path());
            let target = dest.join(rel);
            let ft = entry.file_type();
            if ft.is_dir() {
                if !target.is_dir() {
                    fs::create_dir(&target).map_err(io_err("creating", &target))?;
                }
                fs::set_permissions(&target, fs::Permissions::from_mode(0o755))
                    .map_err(io_err("writing", &target))?;
            } else if ft.is_symlink() {
                if fs::symlink_metadata(&target).is_err() {
                    let t = fs::read_link(entry.path()).map_err(io_err("reading", entry.path()))?;
                    std::os::unix::fs::symlink(t, &target).map_err(io_err("creating", &target))?;
                }
            } else if fs::symlink_metadata(&target).is_err() {
                fs::copy(entry.path(), &target).map_err(io_err("copying to", &target))?;
                let exec = entry
                    .metadata()
                    .map(|m| m.permissions().mode() & 0o100 != 0)
                    .unwrap_or(false);
                let mode = if exec { 0o755 } else { 0o644 };
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                    .map_err(io_err("writing", &target))?;
            }
        }
    }
    for (path, o) in &overrides {
        let target = dest.join(path.trim_start_matches('/'));
        if fs::symlink_metadata(&target).is_err() {
            continue;
        }
        if let Some(mode) = o.mode {
            fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                .map_err(io_err("writing", &target))?;
        }
        if is_root && (o.uid.is_some() || o.gid.is_some()) {
            std::os::unix::fs::lchown(&target, o.uid, o.gid)
                .map_err(io_err("changing the owner of", &target))?;
        }
    }
    Ok(())
}
