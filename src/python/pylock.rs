//! PEP 751 lock files (`pylock.toml`): reading one to install exactly what it
//! says for a target, and writing one from envbuild's pins.
//!
//! Grammar (the parts that matter here; other keys, `[tool]` included, are
//! ignored as the PEP asks of installers for unknown keys):
//!
//! ```text
//! lock-version     = "1.0"                 # major version 1 only
//! environments     = [MARKER, ...]         # optional: the target must match one
//! requires-python  = SPECIFIERS            # optional: must admit the target
//! created-by       = "tool"
//! [[packages]]
//! name             = "name"                # required
//! version          = "1.0"                 # optional
//! marker           = MARKER                # optional: installed only where true
//! requires-python  = SPECIFIERS            # optional
//! wheels           = [{ name?, url? | path?, size?, upload-time?, hashes = { sha256 = HEX } }]
//! sdist | vcs | directory | archive = {...}  # refused: nothing here builds them
//! ```
//!
//! For each package whose marker holds for the target the best wheel by the
//! target's tag order ([`Target::tags`]) is chosen; a wheel's file name is
//! its `name`, else the last segment of its `url` or `path`. A package left
//! with no fitting wheel is an error naming it (and saying when it has only
//! an sdist, a VCS, directory or archive source). Each chosen wheel needs a
//! `sha256` hash; a relative `path` is relative to the lock file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use pep440_rs::Version;
use serde::Deserialize;

use crate::python::resolve::Target;
use crate::python::wheel::{normalize_name, WheelFilename};

#[derive(Debug, thiserror::Error)]
pub enum PylockError {
    #[error("reading the lock file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a PEP 751 lock file: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: lock-version {found:?} is not supported (expected \"1.x\")")]
    Version { path: PathBuf, found: String },
    #[error("{path}: {what} {found:?} is not a valid {expected}: {message}")]
    Field {
        path: PathBuf,
        what: String,
        expected: &'static str,
        found: String,
        message: String,
    },
    #[error("{path} was locked for {expected}, which the target ({target}) is not")]
    WrongTarget {
        path: PathBuf,
        expected: String,
        target: String,
    },
    #[error(
        "{path}: package {package} has no wheel for the target ({target}); it has {found}. \
         envbuild installs wheels only (building sdists comes later)"
    )]
    NoWheel {
        path: PathBuf,
        package: String,
        target: String,
        found: String,
    },
    #[error("{path}: package {package}'s wheel {file} has no sha256 hash (found: {found})")]
    NoSha256 {
        path: PathBuf,
        package: String,
        file: String,
        found: String,
    },
    #[error("{path}: package {package}'s wheel {file} has neither url nor path (expected one: where the file is fetched from)")]
    NoLocation {
        path: PathBuf,
        package: String,
        file: String,
    },
    #[error(
        "{path}: package {package} is listed twice for the target (versions {first} and {second})"
    )]
    Duplicate {
        path: PathBuf,
        package: String,
        first: String,
        second: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawLock {
    lock_version: String,
    #[serde(default)]
    environments: Option<Vec<String>>,
    #[serde(default)]
    requires_python: Option<String>,
    #[serde(default)]
    packages: Vec<RawPackage>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawPackage {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    marker: Option<String>,
    #[serde(default)]
    requires_python: Option<String>,
    #[serde(default)]
    wheels: Vec<RawFile>,
    #[serde(default)]
    sdist: Option<toml::Value>,
    #[serde(default)]
    vcs: Option<toml::Value>,
    #[serde(default)]
    directory: Option<toml::Value>,
    #[serde(default)]
    archive: Option<toml::Value>,
}

#[derive(Debug, Clone, Deserialize)]
struct RawFile {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    hashes: BTreeMap<String, String>,
}

/// Where a chosen wheel is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Url(String),
    /// Absolute (a relative `path` is resolved against the lock file).
    Path(PathBuf),
}

/// One wheel the lock file says to install on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChosenWheel {
    /// Normalized package name.
    pub package: String,
    pub filename: String,
    pub location: Location,
    /// sha256 (lowercase hex).
    pub sha256: String,
    pub size: Option<u64>,
}

/// The file name a wheel entry stands for.
fn file_name(f: &RawFile) -> Option<String> {
    if let Some(n) = &f.name {
        return Some(n.clone());
    }
    let loc = f.url.as_deref().or(f.path.as_deref())?;
    let last = loc.split(['?', '#']).next()?.rsplit('/').next()?;
    Some(percent_decode(last))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        // Bytes, not a slice of `s`: the two after a '%' may be inside a
        // multi-byte character.
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn field_err(
    path: &Path,
    what: String,
    expected: &'static str,
    found: &str,
    message: impl ToString,
) -> PylockError {
    PylockError::Field {
        path: path.to_path_buf(),
        what,
        expected,
        found: found.to_string(),
        message: message.to_string(),
    }
}

fn admits(path: &Path, what: String, spec: &str, python: &Version) -> Result<bool, PylockError> {
    let s = crate::python::pep508::parse_specifiers(spec)
        .map_err(|e| field_err(path, what, "version specifier set", spec, e))?;
    Ok(s.contains(python))
}

fn marker_holds(
    path: &Path,
    what: String,
    marker: &str,
    env: &pep508_rs::MarkerEnvironment,
) -> Result<bool, PylockError> {
    let m = crate::python::pep508::parse_marker(marker)
        .map_err(|e| field_err(path, what, "PEP 508 marker", marker, e))?;
    Ok(m.evaluate(env, &[]))
}

/// Read `path` and choose the wheels to install on `target`, sorted by
/// package name.
pub fn select(path: &Path, target: &Target) -> Result<Vec<ChosenWheel>, PylockError> {
    let text = crate::io::read_regular_to_string(path).map_err(|source| PylockError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    select_text(path, &text, target)
}

/// [`select`] on text already read.
pub fn select_text(
    path: &Path,
    text: &str,
    target: &Target,
) -> Result<Vec<ChosenWheel>, PylockError> {
    let raw: RawLock = toml::from_str(text).map_err(|e| PylockError::Syntax {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if raw.lock_version.split('.').next() != Some("1") {
        return Err(PylockError::Version {
            path: path.to_path_buf(),
            found: raw.lock_version,
        });
    }
    let env = target.marker_environment();
    let python =
        Version::from_str(&target.python_full_version_string()).expect("a numeric version parses");
    if let Some(envs) = &raw.environments {
        let mut any = envs.is_empty();
        for (i, m) in envs.iter().enumerate() {
            any |= marker_holds(path, format!("environments[{i}]"), m, &env)?;
        }
        if !any {
            return Err(PylockError::WrongTarget {
                path: path.to_path_buf(),
                expected: format!("environments {envs:?}"),
                target: target.to_string(),
            });
        }
    }
    if let Some(rp) = &raw.requires_python {
        if !admits(path, "requires-python".into(), rp, &python)? {
            return Err(PylockError::WrongTarget {
                path: path.to_path_buf(),
                expected: format!("requires-python {rp:?}"),
                target: target.to_string(),
            });
        }
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut chosen: BTreeMap<String, (String, ChosenWheel)> = BTreeMap::new();
    for p in &raw.packages {
        let pkg = normalize_name(&p.name);
        if let Some(m) = &p.marker {
            if !marker_holds(path, format!("packages {} marker", p.name), m, &env)? {
                continue;
            }
        }
        if let Some(rp) = &p.requires_python {
            if !admits(
                path,
                format!("packages {} requires-python", p.name),
                rp,
                &python,
            )? {
                return Err(PylockError::WrongTarget {
                    path: path.to_path_buf(),
                    expected: format!("{} (requires-python {rp:?})", p.name),
                    target: target.to_string(),
                });
            }
        }
        let mut best: Option<(usize, String, &RawFile)> = None;
        for f in &p.wheels {
            let Some(name) = file_name(f) else { continue };
            let Ok(w) = WheelFilename::parse(&name) else {
                continue;
            };
            let Some(rank) = target.wheel_rank(&w.python, &w.abi, &w.platform) else {
                continue;
            };
            if best
                .as_ref()
                .is_none_or(|(r, n, _)| (rank, &name) < (*r, n))
            {
                best = Some((rank, name, f));
            }
        }
        let Some((_, filename, f)) = best else {
            let mut found = Vec::new();
            if !p.wheels.is_empty() {
                let names: Vec<String> = p.wheels.iter().filter_map(file_name).collect();
                found.push(format!(
                    "wheels for other targets only ({})",
                    names.join(", ")
                ));
            }
            for (key, v) in [
                ("an sdist", &p.sdist),
                ("a VCS source", &p.vcs),
                ("a local directory", &p.directory),
                ("an archive", &p.archive),
            ] {
                if v.is_some() {
                    found.push(key.to_string());
                }
            }
            if found.is_empty() {
                found.push("no files at all".into());
            }
            return Err(PylockError::NoWheel {
                path: path.to_path_buf(),
                package: p.name.clone(),
                target: target.to_string(),
                found: found.join(" and "),
            });
        };
        let sha256 = f
            .hashes
            .get("sha256")
            .map(|h| h.to_ascii_lowercase())
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| PylockError::NoSha256 {
                path: path.to_path_buf(),
                package: p.name.clone(),
                file: filename.clone(),
                found: if f.hashes.is_empty() {
                    "no hashes".into()
                } else {
                    f.hashes
                        .iter()
                        .map(|(k, v)| format!("{k} = {v:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            })?;
        let location = match (&f.url, &f.path) {
            (_, Some(p)) => Location::Path(dir.join(p)),
            (Some(u), None) => Location::Url(u.clone()),
            (None, None) => {
                return Err(PylockError::NoLocation {
                    path: path.to_path_buf(),
                    package: p.name.clone(),
                    file: filename,
                })
            }
        };
        let version = p.version.clone().unwrap_or_default();
        let c = ChosenWheel {
            package: pkg.clone(),
            filename,
            location,
            sha256,
            size: f.size,
        };
        if let Some((first, _)) = chosen.get(&pkg) {
            return Err(PylockError::Duplicate {
                path: path.to_path_buf(),
                package: p.name.clone(),
                first: first.clone(),
                second: version,
            });
        }
        chosen.insert(pkg, (version, c));
    }
    Ok(chosen.into_values().map(|(_, c)| c).collect())
}

/// One wheel to write into a pylock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportWheel {
    pub filename: String,
    pub location: Location,
    pub sha256: String,
    pub size: u64,
}

fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A PEP 751 lock for `target` holding `wheels` (one per package), sorted by
/// package name; paths are written relative to `out_dir` when they are
/// below it, else absolute.
pub fn write(target: &Target, wheels: &[ExportWheel], out_dir: &Path) -> String {
    let (maj, min) = target.python_version;
    let mut by_pkg: BTreeMap<String, (String, &ExportWheel)> = BTreeMap::new();
    for w in wheels {
        let (name, version) = match WheelFilename::parse(&w.filename) {
            Ok(f) => (normalize_name(&f.name), f.version),
            Err(_) => (w.filename.clone(), String::new()),
        };
        by_pkg.insert(name, (version, w));
    }
    let mut s = String::new();
    s.push_str("# PEP 751 lock file written by envbuild export pylock.\n");
    s.push_str("lock-version = \"1.0\"\n");
    let env = format!(
        "sys_platform == 'linux' and platform_machine == '{}' and python_version == '{maj}.{min}'",
        target.arch.as_str()
    );
    s.push_str(&format!("environments = [{}]\n", q(&env)));
    s.push_str(&format!(
        "requires-python = {}\n",
        q(&format!("=={maj}.{min}.*"))
    ));
    s.push_str("created-by = \"envbuild\"\n");
    for (name, (version, w)) in by_pkg {
        s.push_str("\n[[packages]]\n");
        s.push_str(&format!("name = {}\n", q(&name)));
        if !version.is_empty() {
            s.push_str(&format!("version = {}\n", q(&version)));
        }
        let loc = match &w.location {
            Location::Url(u) => format!("url = {}", q(u)),
            Location::Path(p) => {
                let shown = p
                    .strip_prefix(out_dir)
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|_| p.clone());
                format!("path = {}", q(&shown.to_string_lossy()))
            }
        };
        s.push_str(&format!(
            "wheels = [{{ name = {}, {loc}, size = {}, hashes = {{ sha256 = {} }} }}]\n",
            q(&w.filename),
            w.size,
            q(&w.sha256)
        ));
    }
    s
}
