//! The rootfs of a closure, assembled from its components by hardlinks
//! into the store (copies across file systems), cached by closure hash:
//! what sdist builds and `run`/`shell`/`check` enter.

use std::fs;
use std::path::{Path, PathBuf};

use envbuild_store::Store;
use sha2::{Digest, Sha256};

use super::{AssembleError, Component};

fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> AssembleError + 'a {
    move |source| AssembleError::Rootfs {
        what,
        path: path.to_path_buf(),
        source,
    }
}

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
) -> Result<PathBuf, AssembleError> {
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
    // Unique per process and call: workers of one realize may assemble the
    // same closure at once (each wheel's bytecode compile enters the base).
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = cache.join(format!(".tmp-{}-{}-{call}", &key[..16], std::process::id()));
    let _ = envbuild_store::canonical::remove_tree(&tmp);
    fs::create_dir(&tmp).map_err(io_err("creating", &tmp))?;
    if progress {
        crate::progress::message(&format!(
            "assembling the rootfs of {} components under {}",
            components.len(),
            dir.display()
        ));
    }
    let result = (|| {
        for c in components {
            for a in &c.amends {
                let t = tmp.join(a);
                if fs::symlink_metadata(&t).is_ok_and(|m| !m.is_dir()) {
                    fs::remove_file(&t).map_err(io_err("replacing", &t))?;
                }
            }
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
fn link_tree(src: &Path, dst: &Path) -> Result<(), AssembleError> {
    for entry in walkdir::WalkDir::new(src)
        .follow_root_links(false)
        .min_depth(1)
    {
        let entry = entry.map_err(|e| AssembleError::Rootfs {
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
