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
    #[serde(default)]
    pub models: BTreeMap<String, Spanned<RawModelSpec>>,
    #[serde(default)]
    pub shell: Option<ShellSpec>,
    #[serde(default)]
    pub checks: Vec<CheckSpec>,
}

/// `[models.NAME]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModelSpec {
    pub source: Spanned<String>,
    #[serde(default)]
    pub revision: Option<Spanned<String>>,
    #[serde(default)]
    pub sha256: Option<Spanned<String>>,
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    #[serde(default)]
    pub layer: Option<Spanned<String>>,
    #[serde(default)]
    pub owner: Option<Spanned<String>>,
}

/// `[shell]`: what `envbuild shell` adds to the closure (never the image).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShellSpec {
    #[serde(default)]
    pub hook: Option<Spanned<String>>,
    #[serde(default)]
    pub packages: Vec<Spanned<String>>,
}

/// `[[checks]]`: a command run inside the closure by `envbuild check`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    pub command: Spanned<Vec<String>>,
    #[serde(default)]
    pub exit: Option<Spanned<i64>>,
    #[serde(default)]
    pub stdout: Option<Spanned<String>>,
    #[serde(default)]
    pub timeout: Option<Spanned<DurationSpec>>,
    #[serde(default)]
    pub serve: Option<Spanned<ServeSpec>>,
    #[serde(default)]
    pub gpu: bool,
}

/// `serve = { port = 7860, timeout = 120 }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSpec {
    pub port: i64,
    #[serde(default)]
    pub timeout: Option<DurationSpec>,
}

/// Seconds (a number) or text like "30s", "500ms", "2m", "1h".
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DurationSpec {
    Seconds(u64),
    Fractional(f64),
    Text(String),
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
    #[serde(default)]
    pub debian: Option<Spanned<DebianSpec>>,
    #[serde(default)]
    pub image: Option<Spanned<String>>,
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
    /// Compile the wheels' modules to bytecode at install, with the
    /// base's interpreter; true by default where the base has one.
    #[serde(default)]
    pub compile_bytecode: Option<Spanned<bool>>,
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
    pub env: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub ports: Vec<Spanned<PortSpec>>,
    #[serde(default)]
    pub labels: BTreeMap<Spanned<String>, Spanned<String>>,
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
    /// `[base] image`: an image whose layers are the bottom of the rootfs.
    pub base_image: Option<BaseImage>,
    pub files: Vec<FileInput>,
    pub wheels: Vec<WheelInput>,
    pub python: PythonLayout,
    pub image: Image,
    pub shell: ShellSettings,
    pub checks: Vec<Check>,
    /// `[models.NAME]`, sorted by name.
    pub models: Vec<ModelInput>,
}

/// Where a model snapshot comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A hub repository: `huggingface:org/repo` or `modelscope:owner/name`.
    Hub {
        hub: crate::model::Hub,
        id: String,
        /// As the spec says it, else the hub's default branch.
        revision: String,
    },
    /// One file by URL, verified by its sha256 (hex).
    Url { url: String, sha256: String },
    /// A local directory (hashed as NAR, like `[[files]]`).
    Local { path: String, abs: PathBuf },
}

/// Whether a model is part of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelLayer {
    /// In the image, in a layer of its own.
    Own,
    /// Kept out of the image: realize names the store path to mount.
    Volume,
}

/// `[models.NAME]`: a model snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInput {
    pub name: String,
    pub source: ModelSource,
    /// Absolute image path where the snapshot appears (for the Hugging
    /// Face cache layout: the repository's `models--org--name` folder).
    pub path: String,
    /// Whether `path` was derived from the hub client's cache layout (and
    /// so the snapshot is laid out as that client's cache).
    pub client_layout: bool,
    pub layer: ModelLayer,
    pub owner: Option<(u32, u32)>,
}

/// `[shell]`, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShellSettings {
    /// Shell code run on entry (before the command or the interactive shell).
    pub hook: Option<String>,
    /// Debian packages for the shell only; sorted, deduplicated.
    pub packages: Vec<String>,
}

/// A `[[checks]]` entry, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub command: Vec<String>,
    /// The expected exit status (default 0).
    pub exit: i32,
    /// A regular expression stdout must match (anywhere).
    pub stdout: Option<String>,
    /// How long the command may run (default 60 s).
    pub timeout: std::time::Duration,
    /// Start the image's entrypoint + cmd first and wait for this port.
    pub serve: Option<Serve>,
    /// Needs a GPU: run with the host's, skipped (and said so) without one.
    pub gpu: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serve {
    pub port: u16,
    /// How long to wait for the port (default 120 s).
    pub timeout: std::time::Duration,
}

/// The default timeout of a check's command.
pub const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// The default wait for a served port.
pub const SERVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Parse a duration: seconds as a number, or a number with ms, s, m, h or d.
pub fn parse_duration(d: &DurationSpec) -> Option<std::time::Duration> {
    use std::time::Duration;
    match d {
        DurationSpec::Seconds(s) => Some(Duration::from_secs(*s)),
        DurationSpec::Fractional(f) if f.is_finite() && *f >= 0.0 && *f < 1e9 => {
            Some(Duration::from_secs_f64(*f))
        }
        DurationSpec::Fractional(_) => None,
        DurationSpec::Text(t) => {
            let t = t.trim();
            let split = t
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(t.len());
            let (num, unit) = t.split_at(split);
            let n: f64 = num.parse().ok()?;
            let secs = match unit.trim() {
                "" | "s" => n,
                "ms" => n / 1000.0,
                "m" | "min" => n * 60.0,
                "h" => n * 3600.0,
                "d" => n * 86400.0,
                _ => return None,
            };
            (secs.is_finite() && secs < 1e9).then(|| Duration::from_secs_f64(secs))
        }
    }
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

/// `[base] image = "..."`: a base image, as written (the reference is read
/// when pinning: see [`crate::registry::pull::ImageSource`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseImage {
    /// As the spec writes it: `HOST[:PORT]/REPO[:TAG][@sha256:HEX]`,
    /// `oci-layout:DIR[@sha256:HEX]` or `oci-archive:PATH[@sha256:HEX]`.
    pub request: String,
    /// The directory relative `oci-layout:`/`oci-archive:` paths are read
    /// against (the spec's).
    pub dir: PathBuf,
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
    /// `[python] compile-bytecode`: `None` when the spec does not say
    /// (compiled where the base has an interpreter).
    pub compile_bytecode: Option<bool>,
    /// Which of the layout's settings the spec names (the others are
    /// defaults, which a base image's interpreter may replace).
    pub named: PythonNamed,
}

/// The `[python]` settings a spec names itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PythonNamed {
    pub version: bool,
    pub site_packages: bool,
    pub scripts: bool,
    pub shebang: bool,
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

/// Text checks at the spec boundary: values that end up in `/etc/passwd`,
/// environment blocks, shebang lines or image references must not carry
/// characters that change what those files mean.
impl Ctx<'_> {
    /// An error if `value` (the value of `key`, at `span`) holds a
    /// character that `bad` picks; `expected` says what is allowed.
    fn refuse_chars(
        &self,
        span: Range<usize>,
        key: &str,
        value: &str,
        bad: impl Fn(char) -> bool,
        expected: &str,
    ) -> Result<(), SpecError> {
        match value.chars().find(|&c| bad(c)) {
            None => Ok(()),
            Some(c) => Err(self.err(
                Some(span),
                format!("{key} {value:?} contains the character {c:?} (expected {expected})"),
                format!("{c:?} not allowed here"),
                None,
            )),
        }
    }
}

/// Characters that would split or end a line of `/etc/passwd` or
/// `/etc/group`, or a field in them.
fn breaks_passwd(c: char) -> bool {
    matches!(c, '\0' | '\n' | '\r' | ':')
}

/// The largest SOURCE_DATE_EPOCH whose RFC 3339 date has a four-digit year:
/// 9999-12-31T23:59:59Z.
pub const MAX_SOURCE_DATE_EPOCH: u64 = 253_402_300_799;

/// Why `name` is not an OCI image name (distribution's reference grammar:
/// an optional `host[:port]/`, then `/`-separated path components of
/// lowercase letters and digits joined by `.`, `_`, `__` or dashes; at most
/// 255 characters in all), or `None`.
pub(crate) fn oci_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".into());
    }
    if name.len() > 255 {
        return Some(format!(
            "it is {} characters long (at most 255)",
            name.len()
        ));
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    let is_domain = parts.len() > 1
        && (parts[0].contains(['.', ':'])
            || parts[0] == "localhost"
            || parts[0].chars().any(|c| c.is_ascii_uppercase()));
    if is_domain {
        let domain = parts.remove(0);
        let (host, port) = match domain.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        };
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if !host.split('.').all(label_ok)
            || port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Some(format!(
                "its registry {domain:?} is not a host name with an optional :port"
            ));
        }
    }
    let component =
        regex::Regex::new(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$").expect("a valid pattern");
    parts.iter().find(|p| !component.is_match(p)).map(|p| {
        format!(
            "its path component {p:?} is not lowercase letters and digits joined by '.', '_', '__' or '-'"
        )
    })
}

/// Whether `tag` is an OCI tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub(crate) fn oci_tag_ok(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

pub(crate) fn is_hex64(s: &str) -> bool {
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
        if std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
            let mut candidates: Vec<PathBuf> = std::fs::read_dir(path)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
                .collect();
            candidates.sort();
            return Err(SpecError::IsADirectory {
                path: path.to_path_buf(),
                candidates,
            });
        }
        let text = crate::io::read_regular_to_string(path).map_err(|source| SpecError::Read {
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

    if let Some(e) = &raw.env.source_date_epoch {
        if *e.get_ref() > MAX_SOURCE_DATE_EPOCH {
            return Err(ctx.at(
                e,
                format!(
                    "env.source-date-epoch {} is after 9999-12-31T23:59:59Z (expected at most {MAX_SOURCE_DATE_EPOCH}, so that every timestamp has an RFC 3339 four-digit year)",
                    e.get_ref()
                ),
                "out of range",
            ));
        }
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
            ctx.refuse_chars(
                u.span(),
                "image.user.home",
                &home,
                breaks_passwd,
                "a path that fits in /etc/passwd: no NUL, newline or ':'",
            )?;
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
        if let Ok(md) = std::fs::metadata(&src_abs) {
            if !md.is_file() && !md.is_dir() {
                return Err(ctx.at(
                    &f.src,
                    format!(
                        "files.src {src:?} is {}, expected a regular file or directory (looked at {})",
                        crate::io::file_type_name(md.file_type()),
                        src_abs.display()
                    ),
                    "not a file or directory",
                ));
            }
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
            Some(o) => Some(resolve_owner(ctx, "files.owner", o, user.as_ref())?),
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

    let mut base_image = None;
    if let Some(b) = &raw.base {
        match (&b.debian, &b.image) {
            (Some(_), Some(i)) => {
                return Err(ctx.at(
                    i,
                    "[base] has both debian and image: a base is either Debian packages or an image, not both (expected one of them)",
                    "debian and image",
                ))
            }
            (None, None) => {
                return Err(ctx.err(
                    None,
                    "[base] is empty (expected debian = {...} or image = \"REF\")",
                    "here",
                    None,
                ))
            }
            (None, Some(i)) => {
                let r = i.get_ref();
                if r.is_empty() || r.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(ctx.at(
                        i,
                        format!("base.image {r:?} is not an image reference (expected HOST[:PORT]/REPO[:TAG][@sha256:HEX], oci-layout:DIR or oci-archive:PATH)"),
                        "invalid image reference",
                    ));
                }
                base_image = Some(BaseImage {
                    request: r.clone(),
                    dir: dir.clone(),
                });
            }
            (Some(_), None) => {}
        }
    }
    let debian = match raw.base.as_ref().and_then(|b| b.debian.as_ref()) {
        None => None,
        Some(debian_span) => {
            let b = BaseSpecDebian {
                debian: debian_span,
            };
            let d = b.debian.get_ref();
            let name_ok = |n: &str| {
                n.len() >= 2
                    && n.bytes().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || b"+-.".contains(&c)
                    })
            };
            if d.packages.is_empty() {
                return Err(ctx.at(
                    b.debian,
                    "base.debian.packages is empty (expected at least one package name)",
                    "no packages",
                ));
            }
            if let Some(bad) = d.packages.iter().find(|p| !name_ok(p)) {
                return Err(ctx.at(b.debian, format!("base.debian.packages: {bad:?} is not a Debian package name (lowercase letters, digits, + - .)"), "invalid package name"));
            }
            if !name_ok(&d.suite) {
                return Err(ctx.at(
                    b.debian,
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
                        b.debian,
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
    if let Some(b) = raw
        .python
        .as_ref()
        .and_then(|p| p.compile_bytecode.as_ref())
    {
        if *b.get_ref() && debian.is_none() && base_image.is_none() {
            return Err(ctx.at(
                b,
                "python.compile-bytecode = true needs an interpreter to compile with, and this spec has no [base] (expected [base] debian with python3.X, or [base] image with Python)",
                "no base to compile in",
            ));
        }
    }
    let image = image_settings(ctx, &raw, &name, user)?;
    let models = models(ctx, &raw, &dir, &image)?;
    let shell = shell_settings(ctx, raw.shell.as_ref(), debian.is_some())?;
    let checks = checks(ctx, &raw.checks, &image)?;
    Ok(Spec {
        path,
        dir,
        name,
        system: raw.env.system.into_inner(),
        source_date_epoch: raw.env.source_date_epoch.map(|s| s.into_inner()),
        debian,
        base_image,
        files,
        wheels,
        python,
        image,
        shell,
        checks,
        models,
    })
}

/// `[base] debian`, borrowed for validation.
struct BaseSpecDebian<'a> {
    debian: &'a Spanned<DebianSpec>,
}

/// `[models.NAME]` entries, validated, with their image paths.
fn models(
    ctx: &Ctx,
    raw: &RawSpec,
    dir: &Path,
    image: &Image,
) -> Result<Vec<ModelInput>, SpecError> {
    use crate::model::{layout, Hub};
    let mut out = Vec::new();
    for (name, m) in &raw.models {
        let key = |k: &str| format!("models.{name}.{k}");
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !name_ok {
            return Err(ctx.at(
                m,
                format!("[models.{name}]: {name:?} is not a model name (expected letters, digits, '.', '_' or '-')"),
                "invalid model name",
            ));
        }
        let v = m.get_ref();
        let src = v.source.get_ref();
        let hub_of = |s: &str| -> Option<(Hub, String)> {
            let (k, id) = s.split_once(':')?;
            let hub = Hub::from_prefix(k)?;
            Some((hub, id.to_string()))
        };
        let source = if let Some((hub, id)) = hub_of(src) {
            if !hub.valid_id(&id) {
                return Err(ctx.at(
                    &v.source,
                    format!(
                        "{} {src:?} is not a {} repository id (expected {})",
                        key("source"),
                        hub.display(),
                        hub.id_shape()
                    ),
                    "invalid repository id",
                ));
            }
            if let Some(s) = &v.sha256 {
                return Err(ctx.at(
                    s,
                    format!("{} applies to a URL source only (the hub publishes each file's sha256; the lock pins them)", key("sha256")),
                    "not for a hub source",
                ));
            }
            let revision = match &v.revision {
                Some(r) => {
                    let t = r.get_ref();
                    let ok = !t.is_empty()
                        && !t.contains("..")
                        && t.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b));
                    if !ok {
                        return Err(ctx.at(
                            r,
                            format!("{} {t:?} is not a branch, tag or commit (letters, digits, '.', '_', '-', '/')", key("revision")),
                            "invalid revision",
                        ));
                    }
                    // A revision names a ref file in the hub's cache layout
                    // (`refs/<revision>`): it must be a relative path of
                    // names, as git ref names are.
                    if t.starts_with('/')
                        || t.split('/').any(|c| c.is_empty() || c == "." || c == "..")
                    {
                        return Err(ctx.at(
                            r,
                            format!("{} {t:?} is a path, not a branch, tag or commit (expected no leading or trailing '/', no empty, '.' or '..' components)", key("revision")),
                            "invalid revision",
                        ));
                    }
                    t.clone()
                }
                None => hub.default_revision().to_string(),
            };
            ModelSource::Hub { hub, id, revision }
        } else if src.contains("://") {
            if !(src.starts_with("http://") || src.starts_with("https://")) {
                return Err(ctx.at(
                    &v.source,
                    format!("{} {src:?} is not an http(s) URL, \"huggingface:ORG/REPO\", \"modelscope:OWNER/NAME\" or a local directory", key("source")),
                    "unsupported source",
                ));
            }
            let sha = v.sha256.as_ref().ok_or_else(|| {
                ctx.at(
                    &v.source,
                    format!(
                        "{}: a model given by URL needs sha256 = \"<64 hex digits>\"",
                        key("source")
                    ),
                    "no sha256 for this URL",
                )
            })?;
            if !is_hex64(sha.get_ref()) {
                return Err(ctx.at(
                    sha,
                    format!("{} must be 64 lowercase hex digits", key("sha256")),
                    "invalid sha256",
                ));
            }
            if let Some(r) = &v.revision {
                return Err(ctx.at(
                    r,
                    format!("{} applies to hub sources only", key("revision")),
                    "not for a URL",
                ));
            }
            let file = file_name_of(src.split(['?', '#']).next().unwrap_or(src));
            if file.is_empty() || file == "." || file == ".." {
                return Err(ctx.at(
                    &v.source,
                    format!("{} {src:?} does not end in a file name", key("source")),
                    "expected a URL of a file",
                ));
            }
            ModelSource::Url {
                url: src.clone(),
                sha256: sha.get_ref().clone(),
            }
        } else {
            if let Some((k, _)) = src.split_once(':') {
                if !k.contains('/') && !k.is_empty() {
                    return Err(ctx.at(
                        &v.source,
                        format!("{} {src:?}: unknown hub {k:?} (expected \"huggingface:ORG/REPO\", \"modelscope:OWNER/NAME\", an http(s) URL with sha256, or a local directory)", key("source")),
                        "unknown hub",
                    ));
                }
            }
            let abs = dir.join(src);
            if !abs.is_dir() {
                return Err(ctx.at(
                    &v.source,
                    format!(
                        "{} {src:?} is not a directory (looked for {}; expected \"huggingface:ORG/REPO\", \"modelscope:OWNER/NAME\", an http(s) URL with sha256, or a local directory)",
                        key("source"),
                        abs.display()
                    ),
                    "missing",
                ));
            }
            for (k, s) in [("revision", &v.revision), ("sha256", &v.sha256)] {
                if let Some(s) = s {
                    return Err(ctx.at(s, format!("{} does not apply to a local directory (its NAR hash is pinned in the lock)", key(k)), "not for a local directory"));
                }
            }
            ModelSource::Local {
                path: src.clone(),
                abs,
            }
        };
        let (path, client_layout) = match (&v.path, &source) {
            (Some(p), _) => {
                let path = image_path(p.get_ref()).filter(|p| p != "/").ok_or_else(|| {
                    ctx.at(
                        p,
                        format!("{} {:?} must be an absolute image path below / without '.' or '..' components", key("path"), p.get_ref()),
                        "expected an absolute path",
                    )
                })?;
                (path, false)
            }
            (None, ModelSource::Hub { hub, id, .. }) => (
                layout::default_path(*hub, id, &image.env, image.user.as_ref().map(|u| u.home.as_str())),
                true,
            ),
            (None, _) => {
                return Err(ctx.at(
                    &v.source,
                    format!("{}: a model from a URL or a local directory needs path = \"/absolute/image/path\" (where the snapshot appears in the image)", key("path")),
                    "no path for this source",
                ))
            }
        };
        let layer = match &v.layer {
            None => ModelLayer::Own,
            Some(l) => match l.get_ref().as_str() {
                "own" => ModelLayer::Own,
                "volume" => ModelLayer::Volume,
                other => {
                    return Err(ctx.at(
                        l,
                        format!("{} {other:?} is not \"own\" or \"volume\"", key("layer")),
                        "invalid layer",
                    ))
                }
            },
        };
        let owner = match &v.owner {
            None => None,
            Some(o) => Some(resolve_owner(ctx, &key("owner"), o, image.user.as_ref())?),
        };
        out.push(ModelInput {
            name: name.clone(),
            source,
            path,
            client_layout,
            layer,
            owner,
        });
    }
    Ok(out)
}

fn debian_name_ok(n: &str) -> bool {
    n.len() >= 2
        && n.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+-.".contains(&c))
}

fn shell_settings(
    ctx: &Ctx,
    raw: Option<&ShellSpec>,
    has_debian_base: bool,
) -> Result<ShellSettings, SpecError> {
    let Some(raw) = raw else {
        return Ok(ShellSettings::default());
    };
    let mut packages = Vec::new();
    for p in &raw.packages {
        if !debian_name_ok(p.get_ref()) {
            return Err(ctx.at(
                p,
                format!(
                    "shell.packages: {:?} is not a Debian package name (lowercase letters, digits, + - .)",
                    p.get_ref()
                ),
                "invalid package name",
            ));
        }
        if !has_debian_base {
            return Err(ctx.at(
                p,
                "shell.packages come from the archive of [base] debian, and this spec has no [base] debian",
                "no Debian archive to take this from",
            ));
        }
        packages.push(p.get_ref().clone());
    }
    packages.sort();
    packages.dedup();
    Ok(ShellSettings {
        hook: raw.hook.as_ref().map(|h| h.get_ref().clone()),
        packages,
    })
}

fn checks(ctx: &Ctx, raw: &[CheckSpec], image: &Image) -> Result<Vec<Check>, SpecError> {
    let mut out: Vec<Check> = Vec::new();
    for c in raw {
        let command = c.command.get_ref().clone();
        if command.is_empty() || command[0].is_empty() {
            return Err(ctx.at(
                &c.command,
                "checks.command is empty (expected a program and its arguments, e.g. [\"python3\", \"-c\", \"import numpy\"])",
                "empty command",
            ));
        }
        let name = c
            .name
            .as_ref()
            .map(|n| n.get_ref().clone())
            .unwrap_or_else(|| command.join(" "));
        if out.iter().any(|o| o.name == name) {
            let span = c
                .name
                .as_ref()
                .map(|n| n.span())
                .unwrap_or(c.command.span());
            return Err(ctx.err(
                Some(span),
                format!("checks: two checks are named {name:?} (expected unique names; set name = \"...\")"),
                "duplicate name",
                None,
            ));
        }
        let exit = match &c.exit {
            None => 0,
            Some(e) => match i32::try_from(*e.get_ref()) {
                Ok(v) if (0..=255).contains(&v) => v,
                _ => {
                    return Err(ctx.at(
                        e,
                        format!(
                            "checks.exit {} is not an exit status (expected 0-255)",
                            e.get_ref()
                        ),
                        "invalid exit status",
                    ))
                }
            },
        };
        if let Some(p) = &c.stdout {
            if let Err(e) = regex::Regex::new(p.get_ref()) {
                return Err(ctx.at(
                    p,
                    format!(
                        "checks.stdout {:?} is not a regular expression: {e}",
                        p.get_ref()
                    ),
                    "invalid pattern",
                ));
            }
        }
        let duration = |d: &Spanned<DurationSpec>, key: &str| {
            parse_duration(d.get_ref()).ok_or_else(|| {
                ctx.at(
                    d,
                    format!("checks.{key} is not a duration (expected seconds, or a number with ms, s, m or h such as \"30s\")"),
                    "invalid duration",
                )
            })
        };
        let timeout = match &c.timeout {
            None => CHECK_TIMEOUT,
            Some(t) => duration(t, "timeout")?,
        };
        let serve = match &c.serve {
            None => None,
            Some(s) => {
                let v = s.get_ref();
                let port = u16::try_from(v.port)
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| {
                        ctx.at(
                            s,
                            format!(
                                "checks.serve.port {} is not a TCP port (expected 1-65535)",
                                v.port
                            ),
                            "invalid port",
                        )
                    })?;
                if image.entrypoint.is_none() && image.cmd.is_none() {
                    return Err(ctx.at(
                        s,
                        "checks.serve starts the image's entrypoint and cmd, and [image] sets neither",
                        "nothing to serve",
                    ));
                }
                let timeout = match &v.timeout {
                    None => SERVE_TIMEOUT,
                    Some(t) => parse_duration(t).ok_or_else(|| {
                        ctx.at(
                            s,
                            "checks.serve.timeout is not a duration (expected seconds, or a number with ms, s, m or h such as \"120s\")",
                            "invalid duration",
                        )
                    })?,
                };
                Some(Serve { port, timeout })
            }
        };
        out.push(Check {
            name,
            command,
            exit,
            stdout: c.stdout.as_ref().map(|p| p.get_ref().clone()),
            timeout,
            serve,
            gpu: c.gpu,
        });
    }
    Ok(out)
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
    key: &str,
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
            "{key} {v:?} is not \"root\", the image user{} or \"UID:GID\"",
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
    if let Some(s) = p.and_then(|p| p.shebang.as_ref()) {
        ctx.refuse_chars(
            s.span(),
            "python.shebang",
            s.get_ref(),
            |c| matches!(c, '\0' | '\n' | '\r'),
            "one line: no NUL or newline",
        )?;
    }
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
        if let Err(e) =
            crate::python::pep508::parse_requirement::<pep508_rs::VerbatimUrl>(r.get_ref())
        {
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
        compile_bytecode: p
            .and_then(|p| p.compile_bytecode.as_ref())
            .map(|b| *b.get_ref()),
        named: PythonNamed {
            version: p.is_some_and(|p| p.version.is_some()),
            site_packages: p.is_some_and(|p| p.site_packages.is_some()),
            scripts: p.is_some_and(|p| p.scripts.is_some()),
            shebang: p.is_some_and(|p| p.shebang.is_some()),
        },
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
        if !oci_tag_ok(&tag) {
            return Err(ctx.at(t, format!("image.tag {tag:?} is not a valid tag (letters, digits, '_', then also '.' or '-'; at most 128)"), "invalid tag"));
        }
    }
    if let Some(problem) = oci_name_problem(&image_name) {
        let (key, span) = match &img.name {
            Some(n) => ("image.name", n.span()),
            None => ("env.name (the default image name)", raw.env.name.span()),
        };
        return Err(ctx.err(
            Some(span),
            format!("{key} {image_name:?} is not an OCI image name: {problem}"),
            "invalid image name",
            None,
        ));
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
    let mut env = BTreeMap::new();
    for (k, v) in &img.env {
        let name = k.get_ref();
        if name.is_empty() {
            return Err(ctx.at(k, "image.env has an empty variable name", "empty name"));
        }
        ctx.refuse_chars(
            k.span(),
            "image.env name",
            name,
            |c| c == '=' || c == '\0',
            "a variable name: no '=' or NUL",
        )?;
        ctx.refuse_chars(
            v.span(),
            &format!("image.env.{name}"),
            v.get_ref(),
            |c| c == '\0',
            "a value without NUL",
        )?;
        env.insert(name.clone(), v.get_ref().clone());
    }
    let mut labels = BTreeMap::new();
    for (k, v) in &img.labels {
        let key = k.get_ref();
        if key.is_empty() {
            return Err(ctx.at(k, "image.labels has an empty key", "empty key"));
        }
        ctx.refuse_chars(
            k.span(),
            "image.labels key",
            key,
            |c| c == '=' || c.is_control() || c.is_whitespace(),
            "a label key like \"org.opencontainers.image.source\": no '=', whitespace or control characters",
        )?;
        ctx.refuse_chars(
            v.span(),
            &format!("image.labels.{key}"),
            v.get_ref(),
            |c| c == '\0',
            "a value without NUL",
        )?;
        labels.insert(key.clone(), v.get_ref().clone());
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
        env,
        entrypoint: img.entrypoint.clone(),
        cmd: img.cmd.clone(),
        ports,
        labels,
        volumes,
        compression,
    })
}

#[cfg(test)]
mod shell_and_check_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations() {
        let d = |s: &str| parse_duration(&DurationSpec::Text(s.into()));
        assert_eq!(d("30s"), Some(Duration::from_secs(30)));
        assert_eq!(d("30"), Some(Duration::from_secs(30)));
        assert_eq!(d("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(d("2m"), Some(Duration::from_secs(120)));
        assert_eq!(d("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(d("soon"), None);
        assert_eq!(d("3 days"), None);
        assert_eq!(
            parse_duration(&DurationSpec::Seconds(7)),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_duration(&DurationSpec::Fractional(0.25)),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_duration(&DurationSpec::Fractional(-1.0)), None);
    }

    #[test]
    fn checks_and_shell_parse_with_defaults() {
        let text = r#"
[env]
name = "t"
system = "x86_64-linux"

[image]
cmd = ["serve"]

[shell]
hook = "echo hi"

[[checks]]
command = ["python3", "-c", "import torch"]

[[checks]]
name = "port"
command = ["curl", "localhost:7860"]
exit = 0
stdout = "ok"
timeout = "30s"
serve = { port = 7860, timeout = 120 }
gpu = true
"#;
        let s = Spec::parse(Path::new("/nonexistent/t.toml"), text).unwrap();
        assert_eq!(s.shell.hook.as_deref(), Some("echo hi"));
        assert!(s.shell.packages.is_empty());
        assert_eq!(s.checks.len(), 2);
        assert_eq!(s.checks[0].name, "python3 -c import torch");
        assert_eq!(s.checks[0].exit, 0);
        assert_eq!(s.checks[0].timeout, CHECK_TIMEOUT);
        assert_eq!(
            s.checks[1].serve,
            Some(Serve {
                port: 7860,
                timeout: Duration::from_secs(120)
            })
        );
        assert_eq!(s.checks[1].timeout, Duration::from_secs(30));
        assert!(!s.checks[0].gpu);
        assert!(s.checks[1].gpu);
    }

    #[test]
    fn compile_bytecode_is_a_bool_and_needs_a_base_when_asked_for() {
        let head = "[env]\nname = \"t\"\nsystem = \"x86_64-linux\"\n";
        let parse =
            |extra: &str| Spec::parse(Path::new("/nonexistent/t.toml"), &format!("{head}{extra}"));
        assert_eq!(parse("").unwrap().python.compile_bytecode, None);
        let off = parse("[python]\ncompile-bytecode = false\n").unwrap();
        assert_eq!(off.python.compile_bytecode, Some(false));
        let on = parse("[base]\ndebian = { suite = \"bookworm\", packages = [\"python3.11\"] }\n[python]\ncompile-bytecode = true\n").unwrap();
        assert_eq!(on.python.compile_bytecode, Some(true));
        let e = parse("[python]\ncompile-bytecode = true\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("compile-bytecode = true needs an interpreter"),
            "{e}"
        );
        assert!(parse("[python]\ncompile-bytecode = \"yes\"\n").is_err());
    }

    #[test]
    fn serve_without_anything_to_serve_is_refused() {
        let text = "[env]\nname = \"t\"\nsystem = \"x86_64-linux\"\n\n[[checks]]\ncommand = [\"x\"]\nserve = { port = 80 }\n";
        let e = Spec::parse(Path::new("/nonexistent/t.toml"), text).unwrap_err();
        assert!(
            e.to_string()
                .contains("checks.serve starts the image's entrypoint and cmd"),
            "{e}"
        );
    }
}
