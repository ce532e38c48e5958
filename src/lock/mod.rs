//! The lock file: every input of a spec pinned by content hash, plus the
//! fixed SOURCE_DATE_EPOCH. Format: docs/lock-format.md.
//!
//! A lock sits beside its spec (`hello.toml` → `hello.lock`). `realize`
//! writes it when the spec's inputs changed; `realize --locked` refuses to
//! proceed when they did, naming each difference.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const LOCK_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot read lock file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("lock file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("lock file {path} has version {found}; this envbuild reads version {expected}")]
    Version {
        path: PathBuf,
        expected: u32,
        found: u32,
    },
    #[error("cannot write lock file {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "--locked: {spec} has no lock file (expected {lock}); run `envbuild lock {spec}` first"
    )]
    Missing { spec: PathBuf, lock: PathBuf },
    #[error("--locked: the spec {spec} no longer matches {lock}: {}; run `envbuild lock {spec}` to update it", changes.join("; "))]
    Changed {
        spec: PathBuf,
        lock: PathBuf,
        changes: Vec<String>,
    },
}

/// A lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Lock {
    pub version: u32,
    /// Every timestamp in the image (layer mtimes, `created`).
    pub source_date_epoch: u64,
    #[serde(default, rename = "input")]
    pub inputs: Vec<LockedInput>,
}

/// One pinned input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LockedInput {
    /// What in the spec this pins, e.g. `files:/home/appuser/app` or
    /// `wheel:hello_greeter-1.0-py3-none-any.whl`.
    pub id: String,
    /// Where it comes from: a path relative to the spec, or a URL.
    pub source: String,
    /// `sha256:<hex>` of a file's bytes, or `nar-sha256:<hex>` of a path's
    /// NAR serialization (directories).
    pub hash: String,
    /// Size in bytes of what `hash` covers.
    pub size: u64,
}

/// A file a lock pins for a request (see [`Lock::pins_for`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockedPin<'a> {
    /// The id after the prefix (`pypi:<file>` → the file name, `deb:<name>`
    /// → the package name).
    pub key: &'a str,
    pub source: &'a str,
    /// Lowercase hex.
    pub sha256: &'a str,
    pub size: u64,
}

/// The lock file that belongs to `spec`.
pub fn lock_path(spec: &Path) -> PathBuf {
    spec.with_extension("lock")
}

impl Lock {
    /// The files this lock pins under `prefix` (e.g. `pypi:`), when its
    /// `request_id` entry (e.g. `python:request`) was made from exactly
    /// `request`: what lets a resolver reuse the lock instead of asking an
    /// index or archive again. `None` when the request differs or is absent.
    pub fn pins_for(
        &self,
        request_id: &str,
        request: &str,
        prefix: &str,
    ) -> Option<Vec<LockedPin<'_>>> {
        self.inputs
            .iter()
            .any(|i| i.id == request_id && i.source == request)
            .then(|| {
                self.inputs
                    .iter()
                    .filter_map(|i| {
                        Some(LockedPin {
                            key: i.id.strip_prefix(prefix)?,
                            source: &i.source,
                            sha256: i.hash.strip_prefix("sha256:")?,
                            size: i.size,
                        })
                    })
                    .collect()
            })
    }

    pub fn new(source_date_epoch: u64, mut inputs: Vec<LockedInput>) -> Lock {
        inputs.sort_by(|a, b| a.id.cmp(&b.id));
        Lock {
            version: LOCK_VERSION,
            source_date_epoch,
            inputs,
        }
    }

    /// Read a lock; `Ok(None)` when there is none.
    pub fn read(path: &Path) -> Result<Option<Lock>, LockError> {
        let text = match crate::io::read_regular_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(LockError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let lock: Lock = toml::from_str(&text).map_err(|e| LockError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        if lock.version != LOCK_VERSION {
            return Err(LockError::Version {
                path: path.to_path_buf(),
                expected: LOCK_VERSION,
                found: lock.version,
            });
        }
        Ok(Some(lock))
    }

    pub fn to_toml(&self) -> String {
        let body = toml::to_string(self).expect("a lock serializes");
        format!("# envbuild lock file: written by envbuild, do not edit by hand.\n# Format: docs/lock-format.md\n{body}")
    }

    /// Write atomically (temporary file + rename).
    pub fn write(&self, path: &Path) -> Result<(), LockError> {
        let err = |source| LockError::Write {
            path: path.to_path_buf(),
            source,
        };
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
        std::io::Write::write_all(&mut tmp, self.to_toml().as_bytes()).map_err(err)?;
        tmp.as_file().sync_all().map_err(err)?;
        tmp.persist(path).map_err(|e| err(e.error))?;
        Ok(())
    }

    /// Human-readable differences from `self` (the lock) to `current`.
    pub fn differences(&self, current: &Lock) -> Vec<String> {
        let mut out = Vec::new();
        for new in &current.inputs {
            match self.inputs.iter().find(|o| o.id == new.id) {
                None => out.push(format!("{} ({}) is not in the lock", new.id, new.source)),
                Some(old)
                    if old.hash != new.hash || old.size != new.size || old.source != new.source =>
                {
                    out.push(format!(
                        "{} ({}): the lock has {} ({} bytes), found {} ({} bytes)",
                        new.id, new.source, old.hash, old.size, new.hash, new.size
                    ))
                }
                Some(_) => {}
            }
        }
        for old in &self.inputs {
            if !current.inputs.iter().any(|n| n.id == old.id) {
                out.push(format!(
                    "{} ({}) is in the lock but no longer in the spec",
                    old.id, old.source
                ));
            }
        }
        if self.source_date_epoch != current.source_date_epoch {
            out.push(format!(
                "source-date-epoch: the lock has {}, the spec says {}",
                self.source_date_epoch, current.source_date_epoch
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(id: &str, source: &str, hash: &str, size: u64) -> LockedInput {
        LockedInput {
            id: id.into(),
            source: source.into(),
            hash: hash.into(),
            size,
        }
    }

    #[test]
    fn pins_for_gives_the_prefixed_pins_only_for_the_same_request() {
        let lock = Lock::new(
            1,
            vec![
                input("python:request", "cp311: numpy==1.24.4", "sha256:aa", 1),
                input("pypi:numpy-1.24.4.whl", "numpy-1.24.4.whl", "sha256:bb", 7),
                input("pypi:odd.whl", "odd.whl", "nar-sha256:cc", 3),
                input("deb:libc6", "pool/libc6.deb", "sha256:dd", 9),
            ],
        );
        let pins = lock
            .pins_for("python:request", "cp311: numpy==1.24.4", "pypi:")
            .unwrap();
        assert_eq!(
            pins,
            [LockedPin {
                key: "numpy-1.24.4.whl",
                source: "numpy-1.24.4.whl",
                sha256: "bb",
                size: 7
            }]
        );
        assert!(lock
            .pins_for("python:request", "cp311: numpy==1.25.0", "pypi:")
            .is_none());
        assert!(lock
            .pins_for("debian:request", "bookworm", "deb:")
            .is_none());
    }
}
