//! pip's hash-checking requirements files as a lock: every requirement
//! pinned with `==` and carrying `--hash=sha256:...` (as `pip-compile
//! --generate-hashes` and `uv pip compile --generate-hashes` write them).
//!
//! Grammar (per logical line, after joining `\`-continued lines and
//! dropping comments: a `#` at the start or after whitespace):
//!
//! ```text
//! NAME[EXTRAS]==VERSION [; MARKER] (--hash=sha256:HEX | --hash sha256:HEX)+
//! --index-url URL | -i URL | --index-url=URL
//! --extra-index-url URL | --extra-index-url=URL
//! --find-links DIR | -f DIR | --find-links=DIR      (DIR: a path or file:// URL)
//! --no-binary ... | --only-binary ... | --pre | --trusted-host ... | ...
//! ```
//!
//! - A requirement whose marker is false for the target is skipped.
//! - Anything but a single `==`/`===` pin, a requirement without a sha256
//!   hash, a URL or path requirement, `-r`/`-c`/`-e` includes, is an error
//!   naming the line.
//! - Where wheels are looked for, in this order (the hashes decide which
//!   file is right, wherever it is found): each `--find-links` directory
//!   (relative to the file; only wheels named for the pinned version are
//!   hashed), then the index (the spec's `[python] index` wins; else the
//!   file's `--index-url`; else the configuration: `ENVBUILD_INDEX_URL`,
//!   `PIP_INDEX_URL`, `UV_INDEX_URL`, pip.conf, pip's default), then each
//!   `--extra-index-url` in file order. A `--find-links` that is an HTTP
//!   URL is an error naming the line (only local directories are read);
//!   other options are ignored.
//! - In each place the best wheel for the target (by [`Target::tags`])
//!   whose sha256 is one of the listed hashes is chosen; the first place
//!   that has one wins. None anywhere: an error naming the package, the
//!   version, every place asked and the hashes.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use pep508_rs::VersionOrUrl;

use crate::python::index_config::{self, NoIndex};
use crate::python::pylock::{ChosenWheel, Location};
use crate::python::resolve::{self, ResolveError, Target};
use crate::python::wheel::{normalize_name, WheelFilename};

#[derive(Debug, thiserror::Error)]
pub enum RequirementsError {
    #[error("{path}:{line}: {found:?}: expected {expected}")]
    Line {
        path: PathBuf,
        line: usize,
        found: String,
        expected: String,
    },
    #[error("{}:{}: no wheel of {}=={} for the target ({}) at {} has one of the listed hashes ({})",
        .0.path.display(), .0.line, .0.package, .0.version, .0.target, .0.index, .0.hashes)]
    NotFound(Box<NotFound>),
    #[error("--find-links {}: {source}", dir.display())]
    FindLinks {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: the wheels are not in the store and the index cannot be asked (offline)")]
    Offline { path: PathBuf },
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    NoIndex(#[from] NoIndex),
}

/// A requirement whose listed hashes match no wheel for the target.
#[derive(Debug)]
pub struct NotFound {
    pub path: PathBuf,
    pub line: usize,
    pub package: String,
    pub version: String,
    pub target: String,
    pub index: String,
    pub hashes: String,
}

/// One pinned requirement of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashedRequirement {
    /// 1-based line where it starts.
    pub line: usize,
    pub name: String,
    pub version: String,
    /// sha256 hashes, lowercase hex.
    pub hashes: Vec<String>,
}

/// What a requirements file says: its pinned requirements that apply to
/// `target`, its `--index-url`, if any, its `--extra-index-url`s and its
/// `--find-links` directories (absolute), in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub requirements: Vec<HashedRequirement>,
    pub index_url: Option<String>,
    pub extra_index_urls: Vec<String>,
    pub find_links: Vec<PathBuf>,
}

/// Options that take a value (as the next word when not written `=`) and
/// do not change which files are found.
const VALUE_OPTIONS: &[&str] = &[
    "--no-binary",
    "--only-binary",
    "--trusted-host",
    "--use-feature",
    "--config-settings",
    "--global-option",
];
const FLAG_OPTIONS: &[&str] = &["--pre", "--prefer-binary", "--no-index", "--require-hashes"];

/// Parse `text` (the file at `path`) for `target`.
pub fn parse(path: &Path, text: &str, target: &Target) -> Result<Parsed, RequirementsError> {
    let env = target.marker_environment();
    let mut requirements = Vec::new();
    let mut index_url = None;
    let mut extra_index_urls = Vec::new();
    let mut find_links = Vec::new();
    let mut logical = String::new();
    let mut start = 0;
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        if logical.is_empty() {
            start = i + 1;
        }
        let raw = lines[i];
        i += 1;
        let (content, continued) = match raw.trim_end().strip_suffix('\\') {
            Some(c) => (c, true),
            None => (raw, false),
        };
        logical.push_str(content);
        logical.push(' ');
        if continued && i < lines.len() {
            continue;
        }
        let line = std::mem::take(&mut logical);
        let line = strip_comment(&line).trim().to_string();
        if line.is_empty() {
            continue;
        }
        let bad = |expected: &str| RequirementsError::Line {
            path: path.to_path_buf(),
            line: start,
            found: line.clone(),
            expected: expected.to_string(),
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        if line.starts_with('-') {
            let (opt, inline) = match words[0].split_once('=') {
                Some((o, v)) => (o, Some(v)),
                None => (words[0], None),
            };
            let value = inline.or(words.get(1).copied());
            match opt {
                "--index-url" | "-i" => {
                    index_url = Some(
                        value
                            .ok_or_else(|| bad("--index-url URL"))?
                            .trim_end_matches('/')
                            .to_string(),
                    )
                }
                "--extra-index-url" => extra_index_urls.push(
                    value
                        .ok_or_else(|| bad("--extra-index-url URL"))?
                        .trim_end_matches('/')
                        .to_string(),
                ),
                "--find-links" | "-f" => {
                    let v = value.ok_or_else(|| bad("--find-links DIR"))?;
                    let dir = match v.strip_prefix("file://") {
                        Some(p) => PathBuf::from(p),
                        None if v.contains("://") => {
                            return Err(bad(
                                "--find-links with a local directory (a path or file:// URL; \
                                 pages on a server are not read)",
                            ))
                        }
                        None => PathBuf::from(v),
                    };
                    let base = path.parent().unwrap_or(Path::new("."));
                    find_links.push(base.join(dir));
                }
                o if VALUE_OPTIONS.contains(&o) || FLAG_OPTIONS.contains(&o) => {}
                _ => {
                    return Err(bad(
                        "a pinned requirement with --hash, or --index-url (includes with -r/-c \
                         and editable -e requirements are not supported in a lock)",
                    ))
                }
            }
            continue;
        }
        // The requirement is everything before the first option.
        let opt_at = line.find(" --").unwrap_or(line.len());
        let (req_text, opts) = line.split_at(opt_at);
        let mut hashes = Vec::new();
        let mut ws = opts.split_whitespace().peekable();
        while let Some(w) = ws.next() {
            let value = if let Some(v) = w.strip_prefix("--hash=") {
                v.to_string()
            } else if w == "--hash" {
                ws.next().unwrap_or_default().to_string()
            } else {
                return Err(bad("only --hash=sha256:HEX options after a requirement"));
            };
            match value.split_once(':') {
                Some(("sha256", h))
                    if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) =>
                {
                    hashes.push(h.to_ascii_lowercase())
                }
                Some((algo, _)) if algo != "sha256" => {} // other algorithms: not checked here
                _ => return Err(bad("--hash=sha256:<64 hex digits>")),
            }
        }
        let req =
            crate::python::pep508::parse_requirement::<pep508_rs::VerbatimUrl>(req_text.trim())
                .map_err(|e| bad(&format!("a PEP 508 requirement ({e})")))?;
        if !req.marker.evaluate(&env, &[]) {
            continue;
        }
        let version = match &req.version_or_url {
            Some(VersionOrUrl::VersionSpecifier(s)) if s.len() == 1 => {
                let s = s.iter().next().expect("one specifier");
                match s.operator() {
                    pep440_rs::Operator::Equal | pep440_rs::Operator::ExactEqual => {
                        s.version().to_string()
                    }
                    _ => return Err(bad("an exact pin NAME==VERSION")),
                }
            }
            _ => return Err(bad("an exact pin NAME==VERSION (no ranges, URLs or paths)")),
        };
        if hashes.is_empty() {
            return Err(bad(
                "at least one --hash=sha256:HEX (pip's hash-checking mode)",
            ));
        }
        requirements.push(HashedRequirement {
            line: start,
            name: normalize_name(req.name.as_ref()),
            version,
            hashes,
        });
    }
    Ok(Parsed {
        requirements,
        index_url,
        extra_index_urls,
        find_links,
    })
}

/// `#` starts a comment at the start of a line or after whitespace.
fn strip_comment(line: &str) -> &str {
    let b = line.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'#' && (i == 0 || b[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

/// The wheels `text` pins for `target`, found through the index (see the
/// module documentation for which index), sorted by package name.
pub fn select(
    path: &Path,
    text: &str,
    target: &Target,
    spec_index: Option<&str>,
    offline: bool,
) -> Result<Vec<ChosenWheel>, RequirementsError> {
    let parsed = parse(path, text, target)?;
    let mut chosen: Vec<Option<ChosenWheel>> = vec![None; parsed.requirements.len()];
    let mut asked = Vec::new();
    for dir in &parsed.find_links {
        asked.push(dir.display().to_string());
        for (slot, r) in chosen.iter_mut().zip(&parsed.requirements) {
            if slot.is_none() {
                *slot = find_in_directory(dir, r, target)?;
            }
        }
    }
    if chosen.iter().any(Option::is_none) {
        if offline {
            return Err(RequirementsError::Offline {
                path: path.to_path_buf(),
            });
        }
        let index = match (spec_index, &parsed.index_url) {
            (Some(i), _) => i.to_string(),
            (None, Some(i)) => i.clone(),
            (None, None) => index_config::index_url(None)?.0,
        };
        for index in std::iter::once(&index).chain(&parsed.extra_index_urls) {
            let missing: Vec<usize> = (0..chosen.len()).filter(|&i| chosen[i].is_none()).collect();
            if missing.is_empty() {
                break;
            }
            let wanted: Vec<(String, String, Vec<String>)> = missing
                .iter()
                .map(|&i| &parsed.requirements[i])
                .map(|r| (r.name.clone(), r.version.clone(), r.hashes.clone()))
                .collect();
            let (display, found) = resolve::find_hashed_wheels(index, target, &wanted)?;
            asked.push(display);
            for (&i, f) in missing.iter().zip(found) {
                chosen[i] = f.map(|w| ChosenWheel {
                    package: parsed.requirements[i].name.clone(),
                    filename: w.filename,
                    location: Location::Url(w.url),
                    sha256: w.sha256,
                    size: w.size,
                });
            }
        }
    }
    let mut out = Vec::new();
    for (r, c) in parsed.requirements.iter().zip(chosen) {
        let Some(c) = c else {
            return Err(RequirementsError::NotFound(Box::new(NotFound {
                path: path.to_path_buf(),
                line: r.line,
                package: r.name.clone(),
                version: r.version.clone(),
                target: target.to_string(),
                index: asked.join(", "),
                hashes: r.hashes.join(", "),
            })));
        };
        out.push(c);
    }
    out.sort_by(|a, b| a.package.cmp(&b.package));
    Ok(out)
}

/// The best wheel for `target` in the directory `dir` of `r`'s name and
/// version whose sha256 is one of `r`'s hashes. Only wheels named for that
/// name and version are read.
fn find_in_directory(
    dir: &Path,
    r: &HashedRequirement,
    target: &Target,
) -> Result<Option<ChosenWheel>, RequirementsError> {
    let io = |source| RequirementsError::FindLinks {
        dir: dir.to_path_buf(),
        source,
    };
    let wanted_version = pep440_rs::Version::from_str(&r.version).ok();
    let mut best: Option<(usize, ChosenWheel)> = None;
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let filename = entry.file_name().to_string_lossy().into_owned();
        let Ok(w) = WheelFilename::parse(&filename) else {
            continue;
        };
        let same_version = pep440_rs::Version::from_str(&w.version).ok() == wanted_version;
        if normalize_name(&w.name) != r.name || !same_version {
            continue;
        }
        let Some(rank) = target.wheel_rank(&w.python, &w.abi, &w.platform) else {
            continue;
        };
        if best.as_ref().is_some_and(|(b, _)| *b <= rank) {
            continue;
        }
        let file = entry.path();
        let sha256 = crate::io::sha256_file(&file).map_err(io)?;
        if !r.hashes.contains(&sha256) {
            continue;
        }
        let size = entry.metadata().map_err(io)?.len();
        best = Some((
            rank,
            ChosenWheel {
                package: r.name.clone(),
                filename,
                location: Location::Path(file),
                sha256,
                size: Some(size),
            },
        ));
    }
    Ok(best.map(|(_, c)| c))
}
