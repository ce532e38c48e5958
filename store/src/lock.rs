//! Advisory file locks (`flock`), released when dropped or when the holding
//! process dies, so a lock left by a killed process never blocks anyone.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

use crate::error::StoreError;

/// A held lock on a file; unlocked on drop.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    Shared,
    Exclusive,
}

impl FileLock {
    fn open(path: &Path) -> Result<File, StoreError> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|source| StoreError::Lock {
                path: path.to_path_buf(),
                source,
            })
    }

    /// Block until the lock is held.
    pub fn acquire(path: &Path, kind: LockKind) -> Result<FileLock, StoreError> {
        let file = Self::open(path)?;
        let op = match kind {
            LockKind::Shared => FlockOperation::LockShared,
            LockKind::Exclusive => FlockOperation::LockExclusive,
        };
        loop {
            match rustix::fs::flock(&file, op) {
                Ok(()) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    return Err(StoreError::Lock {
                        path: path.to_path_buf(),
                        source: e.into(),
                    })
                }
            }
        }
        Ok(FileLock {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Take the lock only if nobody holds it.
    pub fn try_acquire(path: &Path, kind: LockKind) -> Result<Option<FileLock>, StoreError> {
        let file = Self::open(path)?;
        let op = match kind {
            LockKind::Shared => FlockOperation::NonBlockingLockShared,
            LockKind::Exclusive => FlockOperation::NonBlockingLockExclusive,
        };
        match rustix::fs::flock(&file, op) {
            Ok(()) => Ok(Some(FileLock {
                file,
                path: path.to_path_buf(),
            })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(StoreError::Lock {
                path: path.to_path_buf(),
                source: e.into(),
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = rustix::fs::flock(&self.file, FlockOperation::Unlock);
    }
}
