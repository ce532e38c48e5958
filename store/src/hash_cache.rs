//! A cache of hashes of files and trees outside the store, keyed by what
//! `lstat` says about them, so that an unchanged input is not read again.
//!
//! A path's *fingerprint* is the sha256 of one line per entry (the path
//! itself, and for a directory every entry below it, in bytewise order):
//! relative path, device, inode, mode, size, mtime and ctime in
//! nanoseconds. Any change to any of these (a rewrite in place changes ctime
//! even when size and mtime are restored) gives another fingerprint, and
//! the cached value is not used.
//!
//! A value is recorded only when the fingerprint taken before computing it
//! equals the one taken after (nothing changed meanwhile), and when no entry
//! was modified within [`RACY_WINDOW_NS`] of that moment: a write in the same
//! clock tick as the fingerprint could leave mtime and ctime unchanged
//! (git's "racy clean" problem). Such a path is simply hashed again next time.
//!
//! A path the caller has just written itself (an export) is recorded
//! without the one-second wait: [`Store::record_hash`](crate::Store::record_hash)
//! only waits [`OWN_WRITE_WINDOW_NS`], so that the kernel's coarse clock,
//! which stamps mtime and ctime and advances by one tick (1 to 10 ms), has
//! moved on: any later write, even of the same size, gets a later ctime
//! than the one recorded.
//!
//! The store stays generic: the cache maps (absolute path, kind) to an
//! opaque string; the caller says what `kind` is (e.g. `sha256`).

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::StoreError;

/// Entries modified this recently are not cached (1 s: far above any file
/// system's timestamp granularity on Linux).
pub const RACY_WINDOW_NS: i128 = 1_000_000_000;

/// How long after its newest timestamp a path written by the caller itself
/// is recorded (50 ms: five ticks of the coarsest kernel clock, HZ=100).
pub const OWN_WRITE_WINDOW_NS: i128 = 50_000_000;

/// What `lstat` says about a path (and everything below it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// sha256 (hex) of the entry lines.
    pub digest: String,
    /// The newest mtime or ctime of any entry, in ns since the epoch.
    pub newest_ns: i128,
}

fn line(h: &mut Sha256, rel: &[u8], m: &fs::Metadata, newest: &mut i128) {
    let mtime = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
    let ctime = i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec());
    *newest = (*newest).max(mtime).max(ctime);
    h.update(rel);
    h.update(
        format!(
            "\0{} {} {:o} {} {mtime} {ctime}\n",
            m.dev(),
            m.ino(),
            m.mode(),
            m.size()
        )
        .as_bytes(),
    );
}

fn walk(
    h: &mut Sha256,
    dir: &Path,
    rel: &mut Vec<u8>,
    newest: &mut i128,
) -> Result<(), StoreError> {
    let mut entries = fs::read_dir(dir)
        .map_err(StoreError::io(dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::io(dir))?;
    entries.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in entries {
        let p = dir.join(&name);
        let m = fs::symlink_metadata(&p).map_err(StoreError::io(&p))?;
        let len = rel.len();
        rel.push(b'/');
        rel.extend_from_slice(name.as_bytes());
        line(h, rel, &m, newest);
        if m.is_dir() {
            walk(h, &p, rel, newest)?;
        }
        rel.truncate(len);
    }
    Ok(())
}

/// The fingerprint of `path` (a file, symlink or directory tree).
pub fn fingerprint(path: &Path) -> Result<Fingerprint, StoreError> {
    let m = fs::symlink_metadata(path).map_err(StoreError::io(path))?;
    let mut h = Sha256::new();
    let mut newest = i128::MIN;
    line(&mut h, b"", &m, &mut newest);
    if m.is_dir() {
        walk(&mut h, path, &mut Vec::new(), &mut newest)?;
    }
    Ok(Fingerprint {
        digest: hex::encode(h.finalize()),
        newest_ns: newest,
    })
}

pub(crate) fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}
