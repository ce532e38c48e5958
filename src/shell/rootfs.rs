//! The rootfs of a closure, assembled from its components by hardlinks
//! into the store (copies across file systems), cached by closure hash.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use envbuild_store::Store;
use sha2::{Digest, Sha256};

use super::{io_err, ShellError};
use crate::assemble::Component;

/// Bumped when the way a rootfs is assembled changes, so an old cache
/// entry is not taken for a new one.
const ASSEMBLY_VERSION: &[u8] = b"envbuild rootfs v2\n";

/// Assemble (or find) the rootfs of `components` under `cache`.
///
/// The key is the hash of the components' store paths in order: the same
/// closure is assembled once, and entering it again costs one lookup.
pub fn rootfs(
    store: &Store,
    components: &[Component],
    cache: &Path,
    progress: bool,
) -> Result<PathBuf, ShellError> {
    let mut h = Sha256::new();
    h.update(ASSEMBLY_VERSION);
    for c in components {
        h.update(c.item.basename().as_bytes());
        h.update(b"\n");
    }
    let key = hex::encode(h.finalize());
    let dir = cache.join(&key[..32]);
    if dir.is_dir() {
        return Ok(dir);
    }
    fs::create_dir_all(cache).map_err(io_err("creating", cache))?;
    let tmp = cache.join(format!(".tmp-{}-{}", &key[..16], std::process::id()));
    let _ = envbuild_store::canonical::remove_tree(&tmp);
    fs::create_dir(&tmp).map_err(io_err("creating", &tmp))?;
    if progress {
        eprintln!(
            "assembling the rootfs of {} components under {}",
            components.len(),
            dir.display()
        );
    }
    let result = (|| {
        for c in components {
            link_tree(&c.tree(store), &tmp)?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = envbuild_store::canonical::remove_tree(&tmp);
        return Err(e);
    }
    match fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        // Another process assembled the same closure meanwhile.
        Err(_) if dir.is_dir() => {
            let _ = envbuild_store::canonical::remove_tree(&tmp);
            Ok(dir)
        }
        Err(e) => Err(io_err("moving into place", &dir)(e)),
    }
}

/// Merge the tree at `src` into `dst`: directories created, files
/// hardlinked (copied across file systems), symlinks recreated. The union
/// was checked when the closure was realized, so an existing path is the
/// same content and is kept.
fn link_tree(src: &Path, dst: &Path) -> Result<(), ShellError> {
    for entry in walkdir::WalkDir::new(src)
        .follow_root_links(false)
        .min_depth(1)
    {
        let entry = entry.map_err(|e| ShellError::Io {
            what: "reading",
            path: src.to_path_buf(),
            source: e.into(),
        })?;
        let rel = entry.path().strip_prefix(src).unwrap_or(entry.path());
        let target = dst.join(rel);
        if fs::symlink_metadata(&target).is_ok() {
            continue;
        }
        let ft = entry.file_type();
        if ft.is_dir() {
            fs::create_dir(&target).map_err(io_err("creating", &target))?;
        } else if ft.is_symlink() {
            let t = fs::read_link(entry.path()).map_err(io_err("reading", entry.path()))?;
            std::os::unix::fs::symlink(t, &target).map_err(io_err("creating", &target))?;
        } else if fs::hard_link(entry.path(), &target).is_err() {
            fs::copy(entry.path(), &target).map_err(io_err("copying to", &target))?;
        }
    }
    Ok(())
}

/// Check that `command` resolves inside the rootfs (following symlinks
/// within it), the way `execvp` would look it up in `path`.
pub fn find_command(rootfs: &Path, command: &str, path: &str) -> Result<(), ShellError> {
    let exists = |p: &str| resolve_in(rootfs, p, 0).is_some_and(|r| r.is_file());
    let searched: Vec<String> = if command.contains('/') {
        vec![command.to_string()]
    } else {
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| format!("{d}/{command}"))
            .collect()
    };
    if searched.iter().any(|p| p.starts_with('/') && exists(p))
        || (command.contains('/') && !command.starts_with('/'))
    {
        return Ok(());
    }
    Err(ShellError::NotInClosure {
        command: command.to_string(),
        searched: if command.contains('/') {
            command.to_string()
        } else {
            path.to_string()
        },
    })
}

/// Resolve an absolute image path inside `rootfs`, following symlinks
/// relative to the rootfs (never to the host).
pub fn resolve_in(rootfs: &Path, image_path: &str, depth: u32) -> Option<PathBuf> {
    if depth > 40 {
        return None;
    }
    let mut cur = rootfs.to_path_buf();
    let parts: Vec<&str> = image_path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    for (i, part) in parts.iter().enumerate() {
        if *part == ".." {
            if cur != rootfs {
                cur.pop();
            }
            continue;
        }
        let next = cur.join(part);
        match fs::read_link(&next) {
            Ok(target) => {
                let rest = parts[i + 1..].join("/");
                let t = target.to_string_lossy();
                let base = if t.starts_with('/') {
                    t.to_string()
                } else {
                    let here = cur
                        .strip_prefix(rootfs)
                        .ok()?
                        .to_string_lossy()
                        .into_owned();
                    format!("/{here}/{t}")
                };
                return resolve_in(rootfs, &format!("{base}/{rest}"), depth + 1);
            }
            Err(_) => cur = next,
        }
    }
    cur.exists().then_some(cur)
}

/// A writable copy of the image user's home, made once per rootfs beside
/// it (`<rootfs>.home`) and reused: the rootfs itself is read-only (its
/// files are the store's own inodes), but programs write under their home
/// (ModelScope indexes its modules into `MODELSCOPE_CACHE`, tools write
/// `~/.cache`), as they may in the image. Files are copied, never
/// hardlinked, so that nothing done inside can reach a store item. `None`
/// when the rootfs has no such directory.
pub fn writable_home(rootfs: &Path, home: &str) -> Result<Option<PathBuf>, ShellError> {
    let Some(src) = resolve_in(rootfs, home, 0).filter(|p| p.is_dir()) else {
        return Ok(None);
    };
    let mut name = rootfs.file_name().unwrap_or_default().to_os_string();
    name.push(".home");
    let dir = rootfs.with_file_name(name);
    if dir.is_dir() {
        return Ok(Some(dir));
    }
    let tmp = rootfs.with_file_name(format!(
        ".tmp-home-{}-{}",
        rootfs.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = envbuild_store::canonical::remove_tree(&tmp);
    let copied = (|| {
        fs::create_dir(&tmp).map_err(io_err("creating", &tmp))?;
        for entry in walkdir::WalkDir::new(&src)
            .follow_root_links(false)
            .min_depth(1)
        {
            let entry = entry.map_err(|e| ShellError::Io {
                what: "reading",
                path: src.clone(),
                source: e.into(),
            })?;
            let rel = entry.path().strip_prefix(&src).unwrap_or(entry.path());
            let target = tmp.join(rel);
            let ft = entry.file_type();
            if ft.is_dir() {
                fs::create_dir(&target).map_err(io_err("creating", &target))?;
            } else if ft.is_symlink() {
                let t = fs::read_link(entry.path()).map_err(io_err("reading", entry.path()))?;
                std::os::unix::fs::symlink(t, &target).map_err(io_err("creating", &target))?;
            } else {
                fs::copy(entry.path(), &target).map_err(io_err("copying to", &target))?;
                let exec = fs::metadata(&target)
                    .map_err(io_err("reading", &target))?
                    .permissions()
                    .mode()
                    & 0o111
                    != 0;
                let mode = if exec { 0o755 } else { 0o644 };
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                    .map_err(io_err("setting the mode of", &target))?;
            }
        }
        Ok(())
    })();
    if let Err(e) = copied {
        let _ = envbuild_store::canonical::remove_tree(&tmp);
        return Err(e);
    }
    match fs::rename(&tmp, &dir) {
        Ok(()) => Ok(Some(dir)),
        Err(_) if dir.is_dir() => {
            let _ = envbuild_store::canonical::remove_tree(&tmp);
            Ok(Some(dir))
        }
        Err(e) => Err(io_err("moving into place", &dir)(e)),
    }
}
