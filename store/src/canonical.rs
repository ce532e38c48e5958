//! How items look on disk: read-only, mtime 1 (the Unix epoch + 1 s), no
//! extended attributes and no setuid/setgid/sticky bits. Only what a NAR
//! records exists: files are 0444 or 0555, directories 0555, symlinks as is.
//! Ownership in an image comes from the spec at assembly time, never from here.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rustix::fs::{AtFlags, Timespec, Timestamps, CWD};

use crate::error::NarError;

/// The modification time of every item in the store, as in Nix.
pub const MTIME: i64 = 1;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NarError + '_ {
    move |source| NarError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn stamps() -> Timestamps {
    let t = Timespec {
        tv_sec: MTIME,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Create a new, private file to fill.
pub(crate) fn create_file(path: &Path) -> Result<File, NarError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))
}

/// Make a filled file canonical: 0444 or 0555, mtime 1.
pub(crate) fn finish_file(file: File, path: &Path, executable: bool) -> Result<(), NarError> {
    let mode = if executable { 0o555 } else { 0o444 };
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io(path))?;
    rustix::fs::futimens(&file, &stamps()).map_err(|e| io(path)(e.into()))?;
    Ok(())
}

/// Make a filled directory canonical: 0555, mtime 1.
pub(crate) fn finish_dir(path: &Path) -> Result<(), NarError> {
    fs::set_permissions(path, fs::Permissions::from_mode(0o555)).map_err(io(path))?;
    set_mtime(path)
}

/// Set mtime (and atime) to 1 without following a symlink.
pub(crate) fn set_mtime(path: &Path) -> Result<(), NarError> {
    rustix::fs::utimensat(CWD, path, &stamps(), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| io(path)(e.into()))
}

/// Remove a file or a tree whose directories may be read-only (an item, a
/// scratch output, a rootfs of hardlinked items). Removing a directory's
/// entries needs write permission on it, which root's `CAP_DAC_OVERRIDE`
/// grants regardless and an ordinary user does not have on a 0555
/// directory: each directory is made owner-writable first (files keep
/// their modes, so a hardlinked item's inode is not touched). Nothing at
/// `path` is not an error.
pub fn remove_tree(path: &Path) -> std::io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.is_dir() {
        make_dirs_writable(path)?;
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}

fn make_dirs_writable(dir: &Path) -> std::io::Result<()> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            make_dirs_writable(&entry.path())?;
        }
    }
    Ok(())
}
