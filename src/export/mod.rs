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
//! requested name. The staging path (`.<name>.envbuild-<pid>`) is held
//! under an exclusive `flock` from its creation to its rename, so an export
//! to the same destination removes what a killed one left there (its lock
//! released by the kernel, its pid gone) and leaves a live one's alone.
//!
//! An export is recorded in the store's hash cache (kind `export:<format>`,
//! value the image item): when `out` still is exactly what an earlier export
//! of the same image wrote (nothing `lstat` reports about it, or anything
//! below it, changed), it is not written again. A no-op realize of a
//! multi-GB image then costs milliseconds.

use std::collections::BTreeMap;
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use envbuild_store::Store;
use rustix::fs::{FlockOperation, Mode, OFlags};

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

fn staging_prefix(out: &Path) -> String {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.envbuild-")
}

fn staging_path(out: &Path) -> PathBuf {
    out.with_file_name(format!("{}{}", staging_prefix(out), std::process::id()))
}

/// Create the staging file or directory and take an exclusive `flock` on
/// it, held (by the returned descriptor) until the export returns; the
/// lock stays with the inode when it is renamed into place.
fn create_locked(path: &Path, dir: bool) -> Result<OwnedFd, ExportError> {
    if dir {
        fs::create_dir(path).map_err(io_err("creating", path))?;
    } else {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io_err("creating", path))?;
    }
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err("opening", path)(e.into()))?;
    rustix::fs::flock(&fd, FlockOperation::LockExclusive)
        .map_err(|e| io_err("locking", path)(e.into()))?;
    Ok(fd)
}

/// Whether a process with this pid exists (in this pid namespace).
fn process_exists(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

/// Remove the staging paths of killed exports to `out`: those whose pid is
/// ours (a dead process had it before us) or no longer exists, and whose
/// `flock` nobody holds. A live writer holds its lock from just after it
/// creates its staging path; in that instant its pid exists, so it is
/// never removed. Best effort: what cannot be read or removed stays.
fn remove_stale_staging(out: &Path) {
    let prefix = staging_prefix(out);
    let dir = crate::io::parent_dir(out);
    let Ok(listing) = fs::read_dir(dir) else {
        return;
    };
    for entry in listing.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && process_exists(pid) {
            continue;
        }
        let path = entry.path();
        let Ok(fd) = rustix::fs::open(
            &path,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        ) else {
            continue;
        };
        if rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive).is_ok() {
            let _ = envbuild_store::canonical::remove_tree(&path);
        }
    }
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
    remove_stale_staging(out);
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
    // Ours alone (a process that had our pid before us is dead).
    let _ = envbuild_store::canonical::remove_tree(&staging);
    if matches!(format, Format::OciDir | Format::Rootfs) {
        check_free_dir(out)?;
    }
    // Where the staging file or directory cannot be made, the output cannot
    // be written: say so about the output, not the staging name.
    let _lock = create_locked(&staging, matches!(format, Format::OciDir | Format::Rootfs))
        .map_err(|e| match e {
            ExportError::Io { source, .. } => ExportError::Unwritable {
                path: out.into(),
                source,
            },
            e => e,
        })?;
    let result = match format {
        Format::OciArchive | Format::Docker => {
            oci::write_oci_archive_file(&realized.image, &staging).map_err(ExportError::from)
        }
        Format::OciDir => oci::write_oci_dir(&realized.image, &staging).map_err(ExportError::from),
        Format::Rootfs => write_rootfs(store, &realized.components, &staging),
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
    // The rename itself made durable (the archive's bytes were synced
    // before it); a directory that cannot be synced is no reason to fail.
    let _ = crate::io::sync_dir(crate::io::parent_dir(out));
    store.record_hash(out, &kind, &image)?;
    Ok(Exported::Written)
}

/// Write the rootfs into `dest`, an empty directory.
fn write_rootfs(store: &Store, components: &[Component], dest: &Path) -> Result<(), ExportError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A pid that no longer exists: a child that exited and was reaped.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn a_killed_exports_staging_is_removed_and_a_live_ones_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("image.tar");
        let staged = |pid: u32| tmp.path().join(format!(".image.tar.envbuild-{pid}"));
        let mut live = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();

        // Killed while writing an archive, and while writing a directory
        // (oci-dir, rootfs: read-only entries inside).
        let killed_file = staged(dead_pid());
        fs::write(&killed_file, b"half an archive").unwrap();
        let killed_dir = staged(dead_pid());
        fs::create_dir_all(killed_dir.join("blobs/sha256")).unwrap();
        fs::write(killed_dir.join("blobs/sha256/x"), b"half a blob").unwrap();
        fs::set_permissions(
            killed_dir.join("blobs/sha256"),
            fs::Permissions::from_mode(0o555),
        )
        .unwrap();
        // Left by a dead process that had our pid.
        let ours = staging_path(&out);
        fs::write(&ours, b"x").unwrap();
        // A live writer, locked; the same between creating and locking.
        let live_locked = staged(live.id());
        let _held = create_locked(&live_locked, false).unwrap();
        let mut creating = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let live_unlocked = staged(creating.id());
        fs::write(&live_unlocked, b"").unwrap();
        // A pid this namespace does not know, but a live lock (a writer in
        // another pid namespace sharing the directory).
        let foreign = staged(dead_pid());
        let _foreign_lock = create_locked(&foreign, false).unwrap();
        // Not staging paths of this output.
        let unrelated = [
            tmp.path().join(".image.tar.envbuild-12x"),
            tmp.path().join(".image.tar.envbuild-"),
            tmp.path()
                .join(format!(".other.tar.envbuild-{}", dead_pid())),
            tmp.path().join("image.tar"),
        ];
        for p in &unrelated {
            fs::write(p, b"keep").unwrap();
        }

        remove_stale_staging(&out);

        for child in [&mut live, &mut creating] {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        for gone in [&killed_file, &killed_dir, &ours] {
            assert!(!gone.exists(), "{} was not removed", gone.display());
        }
        for kept in [&live_locked, &live_unlocked, &foreign]
            .into_iter()
            .chain(&unrelated)
        {
            assert!(kept.exists(), "{} was removed", kept.display());
        }
    }
}
