//! The lock: every input of a spec pinned by content hash, plus the fixed
//! SOURCE_DATE_EPOCH. Format (version 2): docs/lock-format.md.
//!
//! A lock sits beside its spec (`hello.toml` → `hello.lock`). It is typed:
//! one section per source kind, each built from one [`PinnedFile`] shape
//! (a file name, the sha256 of its bytes, its size) or, for local paths,
//! a [`NarPin`] (the NAR sha256 and size of a file or tree):
//!
//! ```text
//! lock       = version source-date-epoch [base-image] [debian]
//!              [shell-debian] [python] *files *wheels *models
//! base-image = request digest manifest(PinnedFile) config(PinnedFile)
//!              *layer(media-type PinnedFile)   ; bottom first, not sorted
//! debian     = request *package(name version arch PinnedFile)
//! python     = request [exclude-newer] *wheel(name version PinnedFile)
//!              *sdist(name version PinnedFile *build(PinnedFile))
//! files      = dst src NarPin
//! wheels     = PinnedFile source            ; a [[wheels]] entry
//! models     = name source (revision *file(PinnedFile) | PinnedFile | NarPin)
//! ```
//!
//! Every list is sorted, so the file is stable and diffs read as changes.
//! `realize` writes the lock when the spec's inputs changed; `realize
//! --locked` refuses to proceed when they did, naming each difference.
//! Version 1 locks (a flat list of `[[input]]` with kinds in id prefixes)
//! still read: [`v1`] turns them into this shape with the same pins.

pub mod v1;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The version this envbuild writes.
pub const LOCK_VERSION: u32 = 2;

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
    #[error("lock file {path} has version {found}; this envbuild reads versions 1 and {expected}")]
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

/// A file pinned by the sha256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PinnedFile {
    /// Where the file is found again: a mirror-relative path (a .deb's
    /// `Filename`), a file name looked up through the configured index, a
    /// path in a model repository.
    pub file: String,
    /// Lowercase hex.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
}

/// A local file or tree pinned by its NAR serialization (the exec bit of a
/// file matters, so local files are pinned this way too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct NarPin {
    /// Lowercase hex sha256 of the NAR serialization.
    pub nar_sha256: String,
    pub nar_size: u64,
}

/// A set of Debian packages: the base's, or the shell's extra ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DebianLock {
    /// The request these pins were resolved for (suite, component,
    /// packages); a spec asking for something else is resolved again.
    pub request: String,
    #[serde(default, rename = "package")]
    pub packages: Vec<DebPin>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DebPin {
    pub name: String,
    pub version: String,
    pub arch: String,
    #[serde(flatten)]
    pub file: PinnedFile,
}

/// Python distributions resolved for a request (`[python] requirements`
/// or `[python] lock`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PythonLock {
    /// The target and the requirements (or the lock file and its sha256)
    /// these pins were made for.
    pub request: String,
    /// The `--exclude-newer` instant (RFC 3339) the pins were resolved
    /// with; a re-lock resolves with it again unless given another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_newer: Option<String>,
    #[serde(default, rename = "wheel")]
    pub wheels: Vec<DistPin>,
    #[serde(default, rename = "sdist")]
    pub sdists: Vec<SdistPin>,
}

/// A wheel by name and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DistPin {
    pub name: String,
    pub version: String,
    #[serde(flatten)]
    pub file: PinnedFile,
}

/// An sdist (no wheel fits the target) and the wheels its build needs. The
/// wheel it builds is not pinned: it is a derivation's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SdistPin {
    pub name: String,
    pub version: String,
    #[serde(flatten)]
    pub file: PinnedFile,
    #[serde(default)]
    pub build: Vec<PinnedFile>,
}

/// A `[[files]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct FilesPin {
    /// Where it goes in the image (unique within a spec).
    pub dst: String,
    /// As the spec says it (relative to the spec).
    pub src: String,
    #[serde(flatten)]
    pub nar: NarPin,
}

/// A `[[wheels]]` entry (a wheel by path or URL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct WheelPin {
    /// The spec's path or URL.
    pub source: String,
    #[serde(flatten)]
    pub file: PinnedFile,
}

/// A `[models.NAME]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ModelPin {
    pub name: String,
    /// As requested: `HUB:ID@REVISION`, a URL, or a local path.
    pub source: String,
    #[serde(flatten)]
    pub content: ModelContent,
}

/// What a model is pinned to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, rename_all = "kebab-case")]
pub enum ModelContent {
    /// A hub snapshot: the commit the revision resolved to, and its files
    /// (`file` is the path in the repository).
    Hub {
        revision: String,
        #[serde(default, rename = "file")]
        files: Vec<PinnedFile>,
    },
    /// One file by URL (`file` is its name).
    Url(PinnedFile),
    /// A local directory.
    Local(NarPin),
}

/// `[base] image`: the image the reference resolved to, pinned whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BaseImageLock {
    /// The spec's `[base] image` as written; a spec asking for another
    /// image is resolved again.
    pub request: String,
    /// What the reference named (`sha256:<hex>`): the linux/amd64 image
    /// manifest, or the index it was chosen from.
    pub digest: String,
    /// The image manifest (`file`: its digest, `sha256:<hex>`).
    pub manifest: PinnedFile,
    /// The image config.
    pub config: PinnedFile,
    /// What the base holds for `[python]` (read from its layers when a
    /// spec on it installs Python distributions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<BasePython>,
    /// The layers, bottom first, as the manifest lists them.
    #[serde(default, rename = "layer")]
    pub layers: Vec<LayerPin>,
}

/// The interpreter and C library a base image holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BasePython {
    /// `/usr/bin/python3.11`; absent when the base has no `python3.X`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    /// `MAJOR.MINOR` of glibc (libc6 in the dpkg status, else libc.so.6);
    /// absent when neither is found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glibc: Option<String>,
}

/// One layer of a base image: its compressed blob, kept as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LayerPin {
    /// As the manifest gives it (`application/vnd.oci.image.layer.v1.tar+gzip`, ...).
    pub media_type: String,
    /// `file` is the blob's digest, `sha256:<hex>`.
    #[serde(flatten)]
    pub file: PinnedFile,
}

/// A lock.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Lock {
    /// Every timestamp in the image (layer mtimes, `created`).
    pub source_date_epoch: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_image: Option<BaseImageLock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debian: Option<DebianLock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell_debian: Option<DebianLock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<PythonLock>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FilesPin>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wheels: Vec<WheelPin>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelPin>,
}

/// The file as written: the version first.
#[derive(Serialize)]
struct Versioned<'a> {
    version: u32,
    #[serde(flatten)]
    lock: &'a Lock,
}

/// A lock as read, with the format version it was read from.
#[derive(Debug, Clone)]
pub struct ReadLock {
    pub lock: Lock,
    pub version: u32,
}

/// The lock file that belongs to `spec`.
pub fn lock_path(spec: &Path) -> PathBuf {
    spec.with_extension("lock")
}

/// `name_version_arch.deb` (mirror-relative or not) → (version, arch).
/// The file name drops a version's epoch; a lock records the full version.
pub fn deb_version_arch(filename: &str) -> Option<(String, String)> {
    let base = filename.rsplit('/').next()?.strip_suffix(".deb")?;
    let mut parts = base.splitn(3, '_');
    let (_name, version, arch) = (parts.next()?, parts.next()?, parts.next()?);
    Some((version.replace("%3a", ":"), arch.to_string()))
}

impl Lock {
    /// Sort every section, so that equal pins give equal files.
    pub fn normalized(mut self) -> Lock {
        for d in [&mut self.debian, &mut self.shell_debian]
            .into_iter()
            .flatten()
        {
            d.packages.sort_by(|a, b| a.name.cmp(&b.name));
        }
        if let Some(p) = &mut self.python {
            p.wheels.sort_by(|a, b| a.file.file.cmp(&b.file.file));
            p.sdists.sort_by(|a, b| a.file.file.cmp(&b.file.file));
            for s in &mut p.sdists {
                s.build.sort();
            }
        }
        self.files.sort_by(|a, b| a.dst.cmp(&b.dst));
        self.wheels.sort_by(|a, b| a.file.file.cmp(&b.file.file));
        self.models.sort_by(|a, b| a.name.cmp(&b.name));
        for m in &mut self.models {
            if let ModelContent::Hub { files, .. } = &mut m.content {
                files.sort();
            }
        }
        self
    }

    /// The base's Debian packages, when this lock pinned them for exactly
    /// `request`: what lets the resolver reuse the lock.
    pub fn debian_for(&self, shell: bool, request: &str) -> Option<&DebianLock> {
        let d = if shell {
            &self.shell_debian
        } else {
            &self.debian
        };
        d.as_ref().filter(|d| d.request == request)
    }

    /// The Python pins, when made for exactly `request`.
    pub fn python_for(&self, request: &str) -> Option<&PythonLock> {
        self.python.as_ref().filter(|p| p.request == request)
    }

    /// A `[models.NAME]` pin, when made for exactly `source`.
    pub fn model_for(&self, name: &str, source: &str) -> Option<&ModelPin> {
        self.models
            .iter()
            .find(|m| m.name == name && m.source == source)
    }

    /// Every .deb file the base pins (not the shell's).
    pub fn base_deb_files(&self) -> impl Iterator<Item = &str> {
        self.debian
            .iter()
            .flat_map(|d| &d.packages)
            .map(|p| p.file.file.as_str())
    }

    /// Read a lock; `Ok(None)` when there is none.
    pub fn read(path: &Path) -> Result<Option<Lock>, LockError> {
        Ok(Self::read_versioned(path)?.map(|r| r.lock))
    }

    /// Read a lock of either version, telling which it was.
    pub fn read_versioned(path: &Path) -> Result<Option<ReadLock>, LockError> {
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
        Self::parse(path, &text).map(Some)
    }

    /// Parse a lock file's text (`path` is for messages).
    pub fn parse(path: &Path, text: &str) -> Result<ReadLock, LockError> {
        let bad = |e: toml::de::Error| LockError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim().replace('\n', " "),
        };
        let mut table: toml::Table = toml::from_str(text).map_err(bad)?;
        let version = match table.remove("version") {
            Some(toml::Value::Integer(v)) => v,
            Some(other) => {
                return Err(LockError::Parse {
                    path: path.to_path_buf(),
                    message: format!("`version` must be an integer, found {other}"),
                })
            }
            None => {
                return Err(LockError::Parse {
                    path: path.to_path_buf(),
                    message: "missing `version`".into(),
                })
            }
        };
        let lock = match version {
            1 => v1::read(table).map_err(|message| LockError::Parse {
                path: path.to_path_buf(),
                message,
            })?,
            2 => Lock::deserialize(table).map_err(bad)?.normalized(),
            found => {
                return Err(LockError::Version {
                    path: path.to_path_buf(),
                    expected: LOCK_VERSION,
                    found: u32::try_from(found).unwrap_or(u32::MAX),
                })
            }
        };
        Ok(ReadLock {
            lock,
            version: version as u32,
        })
    }

    pub fn to_toml(&self) -> String {
        let body = toml::to_string(&Versioned {
            version: LOCK_VERSION,
            lock: self,
        })
        .expect("a lock serializes");
        format!("# envbuild lock file: written by envbuild, do not edit by hand.\n# Format: docs/lock-format.md\n{body}")
    }

    /// Write atomically (temporary file + rename), with the mode the
    /// user's umask gives a new file, like any source file.
    pub fn write(&self, path: &Path) -> Result<(), LockError> {
        crate::io::write_atomically(path, self.to_toml().as_bytes()).map_err(|source| {
            LockError::Write {
                path: path.to_path_buf(),
                source,
            }
        })
    }

    /// Every pin as (what it pins, what it is pinned to): the lock flat,
    /// for differences and counts.
    pub fn entries(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let file = |f: &PinnedFile| format!("{} sha256:{} ({} bytes)", f.file, f.sha256, f.size);
        let nar = |n: &NarPin| format!("nar-sha256:{} ({} bytes)", n.nar_sha256, n.nar_size);
        if let Some(b) = &self.base_image {
            out.insert("base-image request".into(), b.request.clone());
            out.insert("base-image digest".into(), b.digest.clone());
            out.insert("base-image manifest".into(), file(&b.manifest));
            out.insert("base-image config".into(), file(&b.config));
            if let Some(p) = &b.python {
                out.insert(
                    "base-image python".into(),
                    format!(
                        "interpreter {} glibc {}",
                        p.interpreter.as_deref().unwrap_or("none"),
                        p.glibc.as_deref().unwrap_or("unknown")
                    ),
                );
            }
            for (i, l) in b.layers.iter().enumerate() {
                out.insert(
                    format!("base-image layer {}", i + 1),
                    format!("{} {}", l.media_type, file(&l.file)),
                );
            }
        }
        for (section, d) in [
            ("debian", &self.debian),
            ("shell-debian", &self.shell_debian),
        ] {
            if let Some(d) = d {
                out.insert(format!("{section} request"), d.request.clone());
                for p in &d.packages {
                    out.insert(
                        format!("{section} package {}", p.name),
                        format!("{} {}", p.version, file(&p.file)),
                    );
                }
            }
        }
        if let Some(p) = &self.python {
            out.insert("python request".into(), p.request.clone());
            if let Some(t) = &p.exclude_newer {
                out.insert("python exclude-newer".into(), t.clone());
            }
            for w in &p.wheels {
                out.insert(format!("python wheel {}", w.name), file(&w.file));
            }
            for s in &p.sdists {
                out.insert(format!("python sdist {}", s.name), file(&s.file));
                for b in &s.build {
                    out.insert(
                        format!("python sdist {} build requirement {}", s.name, b.file),
                        file(b),
                    );
                }
            }
        }
        for f in &self.files {
            out.insert(
                format!("files {}", f.dst),
                format!("{} {}", f.src, nar(&f.nar)),
            );
        }
        for w in &self.wheels {
            out.insert(
                format!("wheels {}", w.file.file),
                format!("{} {}", w.source, file(&w.file)),
            );
        }
        for m in &self.models {
            let what = format!("models.{}", m.name);
            match &m.content {
                ModelContent::Hub { revision, files } => {
                    out.insert(what.clone(), format!("{} revision {revision}", m.source));
                    for f in files {
                        out.insert(format!("{what} file {}", f.file), file(f));
                    }
                }
                ModelContent::Url(f) => {
                    out.insert(what, format!("{} {}", m.source, file(f)));
                }
                ModelContent::Local(n) => {
                    out.insert(what, format!("{} {}", m.source, nar(n)));
                }
            }
        }
        out
    }

    /// How many files and trees this lock pins.
    pub fn pin_count(&self) -> usize {
        self.entries()
            .keys()
            .filter(|k| !k.ends_with(" request") && !k.ends_with(" exclude-newer"))
            .count()
    }

    /// Human-readable differences from `self` (the lock) to `current`.
    pub fn differences(&self, current: &Lock) -> Vec<String> {
        let (old, new) = (self.entries(), current.entries());
        let mut out = Vec::new();
        for (k, v) in &new {
            match old.get(k) {
                None => out.push(format!("{k} ({v}) is not in the lock")),
                Some(o) if o != v => out.push(format!("{k}: the lock has {o}, found {v}")),
                Some(_) => {}
            }
        }
        for (k, v) in &old {
            if !new.contains_key(k) {
                out.push(format!(
                    "{k} ({v}) is in the lock but no longer in the spec"
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

    fn pinned(file: &str, sha: &str, size: u64) -> PinnedFile {
        PinnedFile {
            file: file.into(),
            sha256: sha.into(),
            size,
        }
    }

    fn sample() -> Lock {
        Lock {
            source_date_epoch: 1700000000,
            debian: Some(DebianLock {
                request: "bookworm/main: python3".into(),
                packages: vec![DebPin {
                    name: "libc6".into(),
                    version: "2.36-9+deb12u14".into(),
                    arch: "amd64".into(),
                    file: pinned("pool/main/g/glibc/libc6_2.36-9+deb12u14_amd64.deb", "aa", 9),
                }],
            }),
            shell_debian: None,
            base_image: None,
            python: Some(PythonLock {
                request: "cp311 x86_64 glibc 2.36: crcmod==1.7; numpy==1.24.4".into(),
                exclude_newer: None,
                wheels: vec![DistPin {
                    name: "numpy".into(),
                    version: "1.24.4".into(),
                    file: pinned(
                        "numpy-1.24.4-cp311-cp311-manylinux_2_17_x86_64.whl",
                        "bb",
                        7,
                    ),
                }],
                sdists: vec![SdistPin {
                    name: "crcmod".into(),
                    version: "1.7".into(),
                    file: pinned("crcmod-1.7.tar.gz", "cc", 5),
                    build: vec![pinned("setuptools-80.9.0-py3-none-any.whl", "dd", 3)],
                }],
            }),
            files: vec![FilesPin {
                dst: "/home/appuser/app".into(),
                src: "app".into(),
                nar: NarPin {
                    nar_sha256: "ee".into(),
                    nar_size: 1072,
                },
            }],
            wheels: vec![WheelPin {
                source: "wheels/hello-1.0-py3-none-any.whl".into(),
                file: pinned("hello-1.0-py3-none-any.whl", "ff", 11),
            }],
            models: vec![
                ModelPin {
                    name: "hub".into(),
                    source: "modelscope:iic/x@v1".into(),
                    content: ModelContent::Hub {
                        revision: "abc".into(),
                        files: vec![pinned("config.json", "11", 2)],
                    },
                },
                ModelPin {
                    name: "local".into(),
                    source: "model".into(),
                    content: ModelContent::Local(NarPin {
                        nar_sha256: "22".into(),
                        nar_size: 3,
                    }),
                },
                ModelPin {
                    name: "url".into(),
                    source: "http://127.0.0.1/m.bin".into(),
                    content: ModelContent::Url(pinned("m.bin", "33", 4)),
                },
            ],
        }
    }

    #[test]
    fn version_2_round_trips_every_section() {
        let lock = sample();
        let text = lock.to_toml();
        assert!(text.contains("\nversion = 2\n"), "{text}");
        let back = Lock::parse(Path::new("x.lock"), &text).unwrap();
        assert_eq!(back.version, 2);
        assert_eq!(back.lock, lock);
        // Stable: written again, the same bytes.
        assert_eq!(back.lock.to_toml(), text);
    }

    #[test]
    fn version_2_is_readable_tables_per_kind() {
        let text = sample().to_toml();
        for header in [
            "[debian]",
            "[[debian.package]]",
            "[python]",
            "[[python.wheel]]",
            "[[python.sdist]]",
            "[[python.sdist.build]]",
            "[[files]]",
            "[[wheels]]",
            "[[models]]",
            "[[models.file]]",
        ] {
            assert!(text.contains(header), "{header} missing in:\n{text}");
        }
    }

    #[test]
    fn unknown_versions_are_refused_naming_the_version() {
        let e = Lock::parse(Path::new("x.lock"), "version = 7\nsource-date-epoch = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("version 7"), "{e}");
    }

    #[test]
    fn a_base_image_round_trips_with_its_layers_in_manifest_order() {
        let digest = |c: &str| format!("sha256:{}", c.repeat(64));
        let file = |c: &str, size| PinnedFile {
            file: digest(c),
            sha256: c.repeat(64),
            size,
        };
        let lock = Lock {
            source_date_epoch: 1,
            base_image: Some(BaseImageLock {
                request: "127.0.0.1:5000/base:1".into(),
                digest: digest("a"),
                manifest: file("a", 700),
                config: file("b", 600),
                python: Some(BasePython {
                    interpreter: Some("/usr/bin/python3.11".into()),
                    glibc: Some("2.36".into()),
                }),
                // Not sorted: the order is the image's.
                layers: ["e", "c", "d"]
                    .iter()
                    .map(|c| LayerPin {
                        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                        file: file(c, 10),
                    })
                    .collect(),
            }),
            ..Lock::default()
        }
        .normalized();
        let text = lock.to_toml();
        let read = Lock::parse(Path::new("x.lock"), &text).unwrap().lock;
        assert_eq!(read, lock, "{text}");
        let layers: Vec<&str> = read
            .base_image
            .as_ref()
            .unwrap()
            .layers
            .iter()
            .map(|l| &l.file.sha256[..1])
            .collect();
        assert_eq!(layers, ["e", "c", "d"]);
        let mut moved = read.clone();
        moved.base_image.as_mut().unwrap().manifest.sha256 = "f".repeat(64);
        let d = read.differences(&moved);
        assert!(
            d.len() == 1 && d[0].contains("base-image manifest"),
            "{d:?}"
        );
    }

    #[test]
    fn differences_name_the_pin_and_both_hashes() {
        let old = sample();
        let mut new = sample();
        new.python.as_mut().unwrap().wheels[0].file.sha256 = "99".into();
        new.files.clear();
        let d = old.differences(&new);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].contains("python wheel numpy") && d[0].contains("sha256:bb"));
        assert!(d[0].contains("sha256:99"));
        assert!(d[1].contains("files /home/appuser/app") && d[1].contains("no longer"));
    }

    #[test]
    fn deb_file_names_give_version_and_arch() {
        assert_eq!(
            deb_version_arch("pool/main/g/glibc/libc6_2.36-9+deb12u14_amd64.deb"),
            Some(("2.36-9+deb12u14".into(), "amd64".into()))
        );
        assert_eq!(deb_version_arch("not-a-deb.txt"), None);
    }
}
