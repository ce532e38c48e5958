//! The spec: a TOML file declaring an environment (reference:
//! docs/spec-reference.md).
//!
//! Parsing refuses unknown keys and wrong types; validation then checks what
//! types cannot say (paths exist, destinations are absolute, hashes are
//! hex, the system is supported), and every error points at the TOML span
//! of the offending key.

mod error;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use miette::NamedSource;
use serde::Deserialize;
use toml::Spanned;

pub use error::{InvalidSpec, SpecError};

use crate::python::wheel::WheelFilename;

/// The only system supported so far.
pub const SUPPORTED_SYSTEM: &str = "x86_64-linux";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpec {
    pub env: EnvSpec,
    #[serde(default)]
    pub base: Option<BaseSpec>,
    #[serde(default)]
    pub files: Vec<FileSpec>,
    #[serde(default)]
    pub wheels: Vec<WheelSpec>,
    #[serde(default)]
    pub python: Option<PythonSpec>,
    #[serde(default)]
    pub image: ImageSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EnvSpec {
    pub name: Spanned<String>,
    pub system: Spanned<String>,
    #[serde(default)]
    pub source_date_epoch: Option<Spanned<u64>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseSpec {
    pub debian: Spanned<DebianSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebianSpec {
    pub suite: String,
    pub packages: Vec<String>,
    #[serde(default)]
    pub component: Option<String>,
    #[serde(default)]
    pub mirror: Option<String>,
    #[serde(default)]
    pub keyring: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ModeSpec {
    Number(u32),
    Text(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    pub src: Spanned<String>,
    pub dst: Spanned<String>,
    #[serde(default)]
    pub mode: Option<Spanned<ModeSpec>>,
    #[serde(default)]
    pub owner: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WheelSpec {
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    #[serde(default)]
    pub sha256: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PythonSpec {
    /// PEP 508 requirements, resolved for the target at lock time.
    #[serde(default)]
    pub requirements: Vec<Spanned<String>>,
    /// A lock made elsewhere: a PEP 751 `pylock.toml`, or a pip
    /// `requirements.txt` with `--hash` on every requirement. Installed
    /// exactly; excludes `requirements`.
    #[serde(default)]
    pub lock: Option<Spanned<String>>,
    /// The package index (PEP 691); else configuration decides.
    #[serde(default)]
    pub index: Option<Spanned<String>>,
    /// The target interpreter's version, "3.11" by default.
    #[serde(default)]
    pub version: Option<Spanned<String>>,
    /// The target's glibc, e.g. "2.36"; by default the base's libc6, else 2.17.
    #[serde(default)]
    pub glibc: Option<Spanned<String>>,
    #[serde(default)]
    pub site_packages: Option<Spanned<String>>,
    #[serde(default)]
    pub scripts: Option<Spanned<String>>,
    #[serde(default)]
    pub shebang: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ImageSpec {
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    #[serde(default)]
    pub tag: Option<Spanned<String>>,
    #[serde(default)]
    pub user: Option<Spanned<UserSpec>>,
    #[serde(default)]
    pub workdir: Option<Spanned<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub ports: Vec<Spanned<PortSpec>>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub volumes: Vec<Spanned<String>>,
    #[serde(default)]
    pub compression: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    #[serde(default)]
    pub home: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PortSpec {
    Number(u32),
    Text(String),
}

/// A validated spec.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The spec file, absolute.
    pub path: PathBuf,
    /// The directory relative inputs are resolved against.
    pub dir: PathBuf,
    pub name: String,
    pub system: String,
    pub source_date_epoch: Option<u64>,
    pub debian: Option<DebianBase>,
    pub files: Vec<FileInput>,
    pub wheels: Vec<WheelInput>,
    pub python: PythonLayout,
    pub image: Image,
}

/// `[base] debian = {...}`: packages from a Debian suite (with their
/// Pre-Depends/Depends closure) as the bottom components of the rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebianBase {
    pub suite: String,
    pub component: String,
    /// Sorted, deduplicated.
    pub packages: Vec<String>,
    /// A mirror URL; else configuration decides (see debian::archive).
    pub mirror: Option<String>,
    /// Absolute path of the keyring; else configuration decides.
    pub keyring: Option<PathBuf>,
}

/// `[[files]]`: a local file or directory placed in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInput {
    /// As written in the spec (relative to the spec's directory).
    pub src: String,
    pub src_abs: PathBuf,
    /// Absolute path in the image, normalized (no trailing slash).
    pub dst: String,
    pub mode: Option<u32>,
    pub owner: Option<(u32, u32)>,
}

/// `[[wheels]]`: a wheel file by local path or by URL and sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WheelSource {
    Path { path: String, abs: PathBuf },
    Url { url: String, sha256: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelInput {
    pub filename: String,
    pub source: WheelSource,
}

/// Where wheels install, as image paths, and what to resolve for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonLayout {
    pub requirements: Vec<String>,
    /// `[python] lock`: (as written, absolute path).
    pub lock: Option<(String, PathBuf)>,
    pub index: Option<String>,
    pub version: (u32, u32),
    pub glibc: Option<(u32, u32)>,
    pub site_packages: String,
    pub scripts: String,
    pub shebang: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compression {
    Gzip(u32),
    Zstd(i32),
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// `name:tag`
    pub reference: String,
    pub user: Option<User>,
    pub workdir: Option<String>,
    pub env: BTreeMap<String, String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// `7860/tcp`
    pub ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub volumes: Vec<String>,
    pub compression: Compression,
}

/// Turns spans into located, labelled errors.
struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(
        &self,
        span: Option<Range<usize>>,
        message: impl Into<String>,
        label: impl Into<String>,
        help: Option<String>,
    ) -> SpecError {
        let (line, col) = match &span {
            Some(s) => {
                let before = &self.text[..s.start.min(self.text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before
                    .rsplit('\n')
                    .next()
                    .map(|l| l.chars().count())
                    .unwrap_or(0)
                    + 1;
                (line, col)
            }
            None => (1, 1),
        };
        SpecError::Invalid(Box::new(InvalidSpec {
            location: format!("{}:{line}:{col}", self.path.display()),
            message: message.into(),
            src: NamedSource::new(self.path.display().to_string(), self.text.to_string()),
            span: span.map(|s| (s.start, s.end.saturating_sub(s.start)).into()),
            label: label.into(),
            help,
        }))
    }

    fn at<T>(
        &self,
        s: &Spanned<T>,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> SpecError {
        self.err(Some(s.span()), message, label, None)
    }
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Normalize an absolute image path; `None` if relative or with `.`/`..`.
fn image_path(p: &str) -> Option<String> {
    if !p.starts_with('/') {
        return None;
    }
    let mut parts = Vec::new();
    for c in Path::new(p).components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => parts.push(n.to_str()?.to_string()),
            _ => return None,
        }
    }
    if p.split('/').any(|seg| seg == ".." || seg == ".") {
        return None;
    }
    Some(format!("/{}", parts.join("/")))
}

impl Spec {
    /// Read, parse and validate the spec at `path`.
    pub fn load(path: &Path) -> Result<Spec, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parse and validate spec text; `path` locates relative inputs.
    pub fn parse(path: &Path, text: &str) -> Result<Spec, SpecError> {
        let ctx = Ctx { path, text };
        let raw: RawSpec = toml::from_str(text)
            .map_err(|e| ctx.err(e.span(), e.message().trim().to_string(), "here", None))?;
        let abs = std::path::absolute(path).map_err(|source| SpecError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let dir = abs
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        validate(&ctx, raw, abs, dir)
    }
}

fn validate(ctx: &Ctx, raw: RawSpec, path: PathBuf, dir: PathBuf) -> Result<Spec, SpecError> {
    let name = raw.env.name.get_ref().clone();
    let name_ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if !name_ok {
        return Err(ctx.at(
            &raw.env.name,
            format!("env.name {name:?} is not a valid image name (expected lowercase letters, digits, '.', '_' or '-', starting with a letter or digit)"),
            "invalid name",
        ));
    }
    if raw.env.system.get_ref() != SUPPORTED_SYSTEM {
        return Err(ctx.at(
            &raw.env.system,
            format!(
                "env.system {:?} is not supported (expected {SUPPORTED_SYSTEM:?})",
                raw.env.system.get_ref()
            ),
            "unsupported system",
        ));
    }

    // Users first: file owners may name the image user.
    let user = match &raw.image.user {
        Some(u) => {
            let v = u.get_ref();
            let home = v
                .home
                .clone()
                .unwrap_or_else(|| format!("/home/{}", v.name));
            let valid = !v.name.is_empty()
                && v.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
                && v.name != "root";
            if !valid || v.uid == 0 {
                return Err(ctx.at(
                    u,
                    format!("image.user {:?} (uid {}) is not a valid non-root user (expected a name of letters, digits, '_' or '-' other than \"root\", and a uid other than 0)", v.name, v.uid),
                    "invalid user",
                ));
            }
            let home = image_path(&home).ok_or_else(|| {
                ctx.at(
                    u,
                    format!("image.user.home {home:?} is not an absolute path without '..'"),
                    "invalid home",
                )
            })?;
            Some(User {
                name: v.name.clone(),
                uid: v.uid,
                gid: v.gid,
                home,
            })
        }
        None => None,
    };

    let mut files = Vec::new();
    for f in &raw.files {
        let src = f.src.get_ref();
        let src_abs = dir.join(src);
        if !src_abs.exists() && std::fs::symlink_metadata(&src_abs).is_err() {
            return Err(ctx.at(
                &f.src,
                format!(
                    "files.src {src:?} does not exist (looked for {})",
                    src_abs.display()
                ),
                "missing",
            ));
        }
        let dst = image_path(f.dst.get_ref()).ok_or_else(|| {
            ctx.at(
                &f.dst,
                format!(
                    "files.dst {:?} must be an absolute image path without '.' or '..' components",
                    f.dst.get_ref()
                ),
                "expected an absolute path like /home/appuser/app",
            )
        })?;
        if dst == "/" {
            return Err(ctx.at(
                &f.dst,
                "files.dst \"/\" would replace the image root",
                "expected a path below /",
            ));
        }
        let mode = match &f.mode {
            None => None,
            Some(m) => {
                let v = match m.get_ref() {
                    ModeSpec::Number(n) => Some(*n),
                    ModeSpec::Text(t) => u32::from_str_radix(t.trim_start_matches("0o"), 8).ok(),
                };
                match v {
                    Some(v) if v <= 0o7777 => Some(v),
                    _ => {
                        return Err(ctx.at(
                            m,
                            "files.mode must be an octal mode up to 7777 (e.g. \"0755\" or 0o755)",
                            "invalid mode",
                        ))
                    }
                }
            }
        };
        let owner = match &f.owner {
            None => None,
            Some(o) => Some(resolve_owner(ctx, o, user.as_ref())?),
        };
        files.push(FileInput {
            src: src.clone(),
            src_abs,
            dst,
            mode,
            owner,
        });
    }

    let mut wheels = Vec::new();
    for w in &raw.wheels {
        let input = match (&w.path, &w.url) {
            (Some(p), None) => {
                if let Some(h) = &w.sha256 {
                    if !is_hex64(h.get_ref()) {
                        return Err(ctx.at(
                            h,
                            "wheels.sha256 must be 64 lowercase hex digits",
                            "invalid sha256",
                        ));
                    }
                }
                let abs = dir.join(p.get_ref());
                if !abs.is_file() {
                    return Err(ctx.at(
                        p,
                        format!(
                            "wheels.path {:?} is not a file (looked for {})",
                            p.get_ref(),
                            abs.display()
                        ),
                        "missing",
                    ));
                }
                let filename = file_name_of(p.get_ref());
                check_wheel_name(ctx, p, &filename)?;
                WheelInput {
                    filename,
                    source: WheelSource::Path {
                        path: p.get_ref().clone(),
                        abs,
                    },
                }
            }
            (None, Some(u)) => {
                let url = u.get_ref();
                if !(url.starts_with("http://")
                    || url.starts_with("https://")
                    || url.starts_with("file://"))
                {
                    return Err(ctx.at(
                        u,
                        format!("wheels.url {url:?} is not an http(s) or file URL"),
                        "invalid URL",
                    ));
                }
                let sha = w.sha256.as_ref().ok_or_else(|| {
                    ctx.at(
                        u,
                        "a wheel given by url needs sha256 = \"<64 hex digits>\"",
                        "no sha256 for this URL",
                    )
                })?;
                if !is_hex64(sha.get_ref()) {
                    return Err(ctx.at(
                        sha,
                        "wheels.sha256 must be 64 lowercase hex digits",
                        "invalid sha256",
                    ));
                }
                let filename = file_name_of(url.split(['?', '#']).next().unwrap_or(url));
                check_wheel_name(ctx, u, &filename)?;
                WheelInput {
                    filename,
                    source: WheelSource::Url {
                        url: url.clone(),
                        sha256: sha.get_ref().clone(),
                    },
                }
            }
            (Some(p), Some(_)) => {
                return Err(ctx.at(
                    p,
                    "a wheel has either path or url, not both",
                    "path and url",
                ))
            }
            (None, None) => {
                let span = w.sha256.as_ref().map(|s| s.span());
                return Err(ctx.err(
                    span,
                    "a [[wheels]] entry needs path = \"...\" or url = \"...\" with sha256",
                    "here",
                    None,
                ));
            }
        };
        wheels.push(input);
    }

    let debian = match &raw.base {
        None => None,
        Some(b) => {
            let d = b.debian.get_ref();
            let name_ok = |n: &str| {
                n.len() >= 2
                    && n.bytes().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || b"+-.".contains(&c)
                    })
            };
            if d.packages.is_empty() {
                return Err(ctx.at(
                    &b.debian,
                    "base.debian.packages is empty (expected at least one package name)",
                    "no packages",
                ));
            }
            if let Some(bad) = d.packages.iter().find(|p| !name_ok(p)) {
                return Err(ctx.at(&b.debian, format!("base.debian.packages: {bad:?} is not a Debian package name (lowercase letters, digits, + - .)"), "invalid package name"));
            }
            if !name_ok(&d.suite) {
                return Err(ctx.at(
                    &b.debian,
                    format!(
                        "base.debian.suite {:?} is not a suite name like \"bookworm\"",
                        d.suite
                    ),
                    "invalid suite",
                ));
            }
            if let Some(m) = &d.mirror {
                if !(m.starts_with("http://") || m.starts_with("https://")) {
                    return Err(ctx.at(
                        &b.debian,
                        format!("base.debian.mirror {m:?} is not an http(s) URL"),
                        "invalid mirror",
                    ));
                }
            }
            let mut packages = d.packages.clone();
            packages.sort();
            packages.dedup();
            Some(DebianBase {
                suite: d.suite.clone(),
                component: d.component.clone().unwrap_or_else(|| "main".into()),
                packages,
                mirror: d.mirror.clone(),
                keyring: d.keyring.as_ref().map(|k| dir.join(k)),
            })
        }
    };
    let python = python_layout(ctx, raw.python.as_ref(), &dir)?;
    let image = image_settings(ctx, &raw, &name, user)?;
    Ok(Spec {
        path,
        dir,
        name,
        system: raw.env.system.into_inner(),
        source_date_epoch: raw.env.source_date_epoch.map(|s| s.into_inner()),
        debian,
        files,
        wheels,
        python,
        image,
    })
}

fn file_name_of(s: &str) -> String {
    s.rsplit('/').next().unwrap_or(s).to_string()
}

fn check_wheel_name(ctx: &Ctx, at: &Spanned<String>, filename: &str) -> Result<(), SpecError> {
    WheelFilename::parse(filename).map(|_| ()).map_err(|e| {
        ctx.at(
            at,
            format!("{filename:?} is not a wheel file name: {e}"),
            "expected {name}-{version}-{python}-{abi}-{platform}.whl",
        )
    })
}

fn resolve_owner(
    ctx: &Ctx,
    o: &Spanned<String>,
    user: Option<&User>,
) -> Result<(u32, u32), SpecError> {
    let v = o.get_ref();
    if v == "root" {
        return Ok((0, 0));
    }
    if let Some(u) = user.filter(|u| &u.name == v) {
        return Ok((u.uid, u.gid));
    }
    if let Some((a, b)) = v.split_once(':') {
        if let (Ok(uid), Ok(gid)) = (a.parse(), b.parse()) {
            return Ok((uid, gid));
        }
    }
    Err(ctx.at(
        o,
        format!(
            "files.owner {v:?} is not \"root\", the image user{} or \"UID:GID\"",
            user.map(|u| format!(" ({:?})", u.name)).unwrap_or_default()
        ),
        "unknown owner",
    ))
}

fn python_layout(ctx: &Ctx, p: Option<&PythonSpec>, dir: &Path) -> Result<PythonLayout, SpecError> {
    let get =
        |v: Option<&Spanned<String>>, key: &str, default: String| -> Result<String, SpecError> {
            match v {
                None => Ok(default),
                Some(s) => image_path(s.get_ref()).ok_or_else(|| {
                    ctx.at(
                        s,
                        format!("python.{key} must be an absolute image path"),
                        "expected an absolute path",
                    )
                }),
            }
        };
    let site = get(
        p.and_then(|p| p.site_packages.as_ref()),
        "site-packages",
        "/usr/local/lib/python3.11/site-packages".into(),
    )?;
    // <prefix>/lib/pythonX.Y/site-packages → <prefix>
    let prefix = Path::new(&site)
        .ancestors()
        .nth(3)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/usr/local".into());
    let prefix = if prefix == "/" { String::new() } else { prefix };
    let scripts = get(
        p.and_then(|p| p.scripts.as_ref()),
        "scripts",
        format!("{prefix}/bin"),
    )?;
    let shebang = get(
        p.and_then(|p| p.shebang.as_ref()),
        "shebang",
        format!("{prefix}/bin/python3"),
    )?;
    let two = |v: Option<&Spanned<String>>, key: &str| -> Result<Option<(u32, u32)>, SpecError> {
        match v {
            None => Ok(None),
            Some(s) => {
                let parsed = s
                    .get_ref()
                    .split_once('.')
                    .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
                parsed.map(Some).ok_or_else(|| {
                    ctx.at(
                        s,
                        format!("python.{key} {:?} is not MAJOR.MINOR", s.get_ref()),
                        "expected e.g. \"3.11\"",
                    )
                })
            }
        }
    };
    let version = two(p.and_then(|p| p.version.as_ref()), "version")?.unwrap_or((3, 11));
    let glibc = two(p.and_then(|p| p.glibc.as_ref()), "glibc")?;
    let mut requirements = Vec::new();
    for r in p.map(|p| p.requirements.as_slice()).unwrap_or(&[]) {
        if let Err(e) = r.get_ref().parse::<pep508_rs::Requirement>() {
            return Err(ctx.at(
                r,
                format!(
                    "python.requirements: {:?} is not a PEP 508 requirement: {e}",
                    r.get_ref()
                ),
                "invalid requirement",
            ));
        }
        requirements.push(r.get_ref().clone());
    }
    let index = match p.and_then(|p| p.index.as_ref()) {
        None => None,
        Some(i) if i.get_ref().starts_with("http://") || i.get_ref().starts_with("https://") => {
            Some(i.get_ref().trim_end_matches('/').to_string())
        }
        Some(i) => {
            return Err(ctx.at(
                i,
                format!("python.index {:?} is not an http(s) URL", i.get_ref()),
                "invalid index",
            ))
        }
    };
    let lock = match p.and_then(|p| p.lock.as_ref()) {
        None => None,
        Some(l) => {
            if let Some(first) = p.and_then(|p| p.requirements.first()) {
                return Err(ctx.err(
                    Some(l.span()),
                    format!(
                        "python.lock and python.requirements exclude each other: the lock {:?} \
                         already says what to install, and requirements {:?} would be resolved \
                         besides it",
                        l.get_ref(),
                        first.get_ref()
                    ),
                    "either this lock",
                    Some("remove python.requirements, or remove python.lock".into()),
                ));
            }
            let abs = dir.join(l.get_ref());
            if !abs.is_file() {
                return Err(ctx.at(
                    l,
                    format!(
                        "python.lock {:?} does not exist (looked for {})",
                        l.get_ref(),
                        abs.display()
                    ),
                    "expected a pylock.toml or requirements.txt file",
                ));
            }
            Some((l.get_ref().clone(), abs))
        }
    };
    Ok(PythonLayout {
        requirements,
        lock,
        index,
        version,
        glibc,
        site_packages: site,
        scripts,
        shebang,
    })
}

fn image_settings(
    ctx: &Ctx,
    raw: &RawSpec,
    name: &str,
    user: Option<User>,
) -> Result<Image, SpecError> {
    let img = &raw.image;
    let image_name = img
        .name
        .as_ref()
        .map(|n| n.get_ref().clone())
        .unwrap_or_else(|| name.to_string());
    let tag = img
        .tag
        .as_ref()
        .map(|t| t.get_ref().clone())
        .unwrap_or_else(|| "latest".into());
    if let Some(t) = &img.tag {
        let ok = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !ok {
            return Err(ctx.at(t, format!("image.tag {tag:?} is not a valid tag (letters, digits, '.', '_', '-'; at most 128)"), "invalid tag"));
        }
    }
    let workdir = match &img.workdir {
        None => None,
        Some(w) => Some(image_path(w.get_ref()).ok_or_else(|| {
            ctx.at(
                w,
                format!("image.workdir {:?} must be an absolute path", w.get_ref()),
                "expected an absolute path",
            )
        })?),
    };
    let mut ports = Vec::new();
    for p in &img.ports {
        let parsed = match p.get_ref() {
            PortSpec::Number(n) => Some((*n, "tcp".to_string())),
            PortSpec::Text(t) => {
                let (num, proto) = t.split_once('/').unwrap_or((t, "tcp"));
                num.parse::<u32>().ok().map(|n| (n, proto.to_string()))
            }
        };
        match parsed {
            Some((n, proto)) if (1..=65535).contains(&n) && (proto == "tcp" || proto == "udp") => {
                ports.push(format!("{n}/{proto}"))
            }
            _ => {
                return Err(ctx.at(
                    p,
                    "image.ports entries must be a port 1-65535, optionally with /tcp or /udp",
                    "invalid port",
                ))
            }
        }
    }
    let mut volumes = Vec::new();
    for v in &img.volumes {
        volumes.push(image_path(v.get_ref()).ok_or_else(|| {
            ctx.at(
                v,
                format!(
                    "image.volumes entry {:?} must be an absolute path",
                    v.get_ref()
                ),
                "expected an absolute path",
            )
        })?);
    }
    for k in img.env.keys() {
        if k.is_empty() || k.contains('=') {
            return Err(ctx.err(
                None,
                format!("image.env key {k:?} is not a valid variable name"),
                "here",
                None,
            ));
        }
    }
    let compression = match &img.compression {
        None => Compression::Gzip(6),
        Some(c) => {
            let (algo, level) = c
                .get_ref()
                .split_once(':')
                .map(|(a, l)| (a, Some(l)))
                .unwrap_or((c.get_ref(), None));
            let bad = || {
                ctx.at(c, format!("image.compression {:?} is not one of \"gzip\", \"gzip:1-9\", \"zstd\", \"zstd:1-19\", \"none\"", c.get_ref()), "invalid compression")
            };
            match (algo, level) {
                ("gzip", None) => Compression::Gzip(6),
                ("gzip", Some(l)) => Compression::Gzip(
                    l.parse()
                        .ok()
                        .filter(|l| (1..=9).contains(l))
                        .ok_or_else(bad)?,
                ),
                ("zstd", None) => Compression::Zstd(3),
                ("zstd", Some(l)) => Compression::Zstd(
                    l.parse()
                        .ok()
                        .filter(|l| (1..=19).contains(l))
                        .ok_or_else(bad)?,
                ),
                ("none", None) => Compression::None,
                _ => return Err(bad()),
            }
        }
    };
    Ok(Image {
        reference: format!("{image_name}:{tag}"),
        user,
        workdir,
        env: img.env.clone(),
        entrypoint: img.entrypoint.clone(),
        cmd: img.cmd.clone(),
        ports,
        labels: img.labels.clone(),
        volumes,
        compression,
    })
}
