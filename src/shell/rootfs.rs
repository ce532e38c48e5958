//! Looking things up in an assembled rootfs (see
//! [`crate::assemble::rootfs`]) the way the sandbox will see them.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{io_err, ShellError};

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
