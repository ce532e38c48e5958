//! Entering the closure outside an image: `envbuild run SPEC -- CMD`.
//!
//! The rootfs is assembled from the realized components by hardlinks into
//! the store (copies when the cache is on another file system), cached under
//! the hash of the component list, so a second entry costs one directory
//! lookup. It is entered with bubblewrap: user, mount and PID namespaces,
//! the rootfs mounted read-only (its files are the store's own inodes), a
//! fresh `/tmp`, `/proc` and `/dev`, the working directory bound read-write
//! at the same path, the spec's user and environment.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use envbuild_store::Store;
use sha2::{Digest, Sha256};

use crate::realize::Component;
use crate::spec::Spec;

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start bubblewrap ({program}): {source}; install it (Debian package `bubblewrap`) or set ENVBUILD_BWRAP to its path")]
    NoBwrap {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no command given: use `envbuild run SPEC -- CMD [ARGS...]`")]
    NoCommand,
    #[error("command {command:?} is not in the closure (looked in {searched}); add the component that provides it to the spec")]
    NotInClosure { command: String, searched: String },
}

fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> ShellError + 'a {
    move |source| ShellError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Mount points bubblewrap needs in every rootfs.
const MOUNT_POINTS: [&str; 4] = ["proc", "dev", "sys", "tmp"];

/// Assemble (or find) the rootfs of `components` under `cache`.
pub fn rootfs(
    store: &Store,
    components: &[Component],
    cache: &Path,
) -> Result<PathBuf, ShellError> {
    let mut h = Sha256::new();
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
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir(&tmp).map_err(io_err("creating", &tmp))?;
    let result = (|| {
        for c in components {
            link_tree(&c.tree(store), &tmp)?;
        }
        for m in MOUNT_POINTS {
            let p = tmp.join(m);
            if fs::symlink_metadata(&p).is_err() {
                fs::create_dir(&p).map_err(io_err("creating", &p))?;
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    match fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        // Another process assembled the same closure meanwhile.
        Err(_) if dir.is_dir() => {
            let _ = fs::remove_dir_all(&tmp);
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
fn find_command(rootfs: &Path, command: &str, path: &str) -> Result<(), ShellError> {
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
fn resolve_in(rootfs: &Path, image_path: &str, depth: u32) -> Option<PathBuf> {
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

/// How to enter.
#[derive(Debug, Clone, Default)]
pub struct EnterOptions {
    /// Keep only HOME, USER, TERM and DISPLAY from the host (plus `keep`).
    pub pure: bool,
    pub keep: Vec<String>,
}

/// Host variables that would point into the host's file system.
const HOST_ONLY: [&str; 6] = [
    "PATH",
    "LD_LIBRARY_PATH",
    "LD_PRELOAD",
    "PYTHONPATH",
    "PYTHONHOME",
    "VIRTUAL_ENV",
];

/// Run `cmd` inside `rootfs` as the spec's user with the spec's environment;
/// returns the command's exit code.
pub fn run(
    spec: &Spec,
    rootfs: &Path,
    cmd: &[String],
    opts: &EnterOptions,
) -> Result<i32, ShellError> {
    if cmd.is_empty() {
        return Err(ShellError::NoCommand);
    }
    let path_var = spec
        .image
        .env
        .get("PATH")
        .map(String::as_str)
        .unwrap_or(crate::realize::builders::DEFAULT_PATH);
    find_command(rootfs, &cmd[0], path_var)?;
    let program = std::env::var("ENVBUILD_BWRAP").unwrap_or_else(|_| "bwrap".into());
    let mut c = Command::new(&program);
    let (uid, gid) = spec
        .image
        .user
        .as_ref()
        .map(|u| (u.uid, u.gid))
        .unwrap_or((0, 0));
    c.args([
        "--unshare-user",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--die-with-parent",
    ]);
    c.args(["--uid", &uid.to_string(), "--gid", &gid.to_string()]);
    c.arg("--ro-bind").arg(rootfs).arg("/");
    c.args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);
    let cwd = std::env::current_dir().map_err(io_err("reading", Path::new(".")))?;
    if cwd != Path::new("/") {
        c.arg("--bind").arg(&cwd).arg(&cwd).arg("--chdir").arg(&cwd);
    } else if let Some(w) = &spec.image.workdir {
        c.args(["--chdir", w]);
    }
    c.arg("--clearenv");
    for (k, v) in std::env::vars() {
        let kept = if opts.pure {
            ["HOME", "USER", "TERM", "DISPLAY"].contains(&k.as_str()) || opts.keep.contains(&k)
        } else {
            !HOST_ONLY.contains(&k.as_str()) || opts.keep.contains(&k)
        };
        if kept {
            c.args(["--setenv", &k, &v]);
        }
    }
    if !spec.image.env.contains_key("PATH") {
        c.args(["--setenv", "PATH", crate::realize::builders::DEFAULT_PATH]);
    }
    for (k, v) in &spec.image.env {
        c.args(["--setenv", k, v]);
    }
    c.arg("--").args(cmd);
    let status = c
        .status()
        .map_err(|source| ShellError::NoBwrap { program, source })?;
    Ok(status.code().unwrap_or(128 + 9))
}
