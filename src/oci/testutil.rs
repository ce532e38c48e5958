//! Test helpers: store-like trees and external tools.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

/// A temporary directory made writable again before it is removed (store
/// items are read-only, which an unprivileged test could not delete).
pub(crate) struct Tmp {
    dir: tempfile::TempDir,
}

impl Tmp {
    pub(crate) fn new() -> Self {
        Tmp {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub(crate) fn join(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = Command::new("chmod")
            .args(["-R", "u+w"])
            .arg(self.dir.path())
            .status();
    }
}

/// Runs a command, panics with its stderr unless it succeeds, returns stdout.
pub(crate) fn run(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command; panics clearly if the program is not installed.
pub(crate) fn output(cmd: &mut Command) -> Output {
    match cmd.output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "required tool {:?} is not installed (the oci tests need skopeo, umoci, podman, \
             zstd, gzip, GNU tar and gcc with static libc)",
            cmd.get_program()
        ),
        Err(e) => panic!("running {cmd:?}: {e}"),
    }
}

/// Writes `files` (path, contents, executable) and `links` (path, target)
/// under `root`, then makes the tree store-like: files 0444/0555, dirs
/// 0555, mtime 1. `dirs` are extra (possibly empty) directories.
pub(crate) fn store_tree(
    root: &Path,
    files: &[(&str, &[u8], bool)],
    links: &[(&str, &str)],
    dirs: &[&str],
) {
    fs::create_dir_all(root).unwrap();
    for d in dirs {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    for (p, data, exec) in files {
        let path = root.join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, data).unwrap();
        let mode = if *exec { 0o555 } else { 0o444 };
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }
    for (p, target) in links {
        let path = root.join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, &path).unwrap();
    }
    finish_store_like(root);
}

/// mtime 1 everywhere (links included), directories 0555.
pub(crate) fn finish_store_like(root: &Path) {
    run(Command::new("find")
        .arg(root)
        .args(["-exec", "touch", "-h", "-d", "@1", "{}", "+"]));
    run(Command::new("find")
        .arg(root)
        .args(["-type", "d", "-exec", "chmod", "0555", "{}", "+"]));
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(<[u8; 32]>::from(Sha256::digest(bytes)))
}

/// Lists a tar with the `tar` crate: (path bytes, type, mode, uid, gid,
/// mtime, link target, contents).
pub(crate) struct TarEntry {
    pub path: String,
    pub kind: tar::EntryType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub uname: Vec<u8>,
    pub link: Option<String>,
    pub data: Vec<u8>,
}

pub(crate) fn read_tar(bytes: &[u8]) -> Vec<TarEntry> {
    use std::io::Read;
    let mut archive = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        let h = e.header();
        out.push(TarEntry {
            path: String::from_utf8(e.path_bytes().into_owned()).unwrap(),
            kind: h.entry_type(),
            mode: h.mode().unwrap(),
            uid: h.uid().unwrap(),
            gid: h.gid().unwrap(),
            mtime: h.mtime().unwrap(),
            uname: h.username_bytes().unwrap_or_default().to_vec(),
            link: e
                .link_name_bytes()
                .map(|l| String::from_utf8(l.into_owned()).unwrap()),
            data,
        });
    }
    out
}
