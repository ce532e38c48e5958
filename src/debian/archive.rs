//! A Debian archive as a source: where the mirror is, the signed `InRelease`,
//! the `Packages` index checked against it, and the dependency closure of the
//! packages a spec names.
//!
//! - Mirror: the spec's `mirror`, else `ENVBUILD_DEBIAN_MIRROR`, else the
//!   host's apt sources (deb822 `/etc/apt/sources.list.d/*.sources`, then
//!   one-line `sources.list` files), the first `deb` entry that lists the
//!   suite. No host name is built in.
//! - `InRelease` is verified with `gpgv` against the archive keyring (the
//!   spec's `keyring`, else `ENVBUILD_DEBIAN_KEYRING`, else the host's
//!   `/usr/share/keyrings/debian-archive-keyring.gpg`), and only the signed
//!   text gpgv outputs is parsed. It is kept in the store's cache
//!   (`debian-release/`, an [`AnswerCache`]) with its validators, so a warm
//!   lock asks with `If-None-Match` / `If-Modified-Since` and a 304 costs
//!   no body; the kept copy is verified by gpgv again every time.
//! - `Packages.xz` (else `.gz`, else plain) is fetched as a fixed-output
//!   input with the sha256 and size the Release lists.
//! - The closure follows `Pre-Depends` and `Depends`: for each group, an
//!   alternative already chosen that satisfies it wins; else the first
//!   alternative that a real package (highest version satisfying the
//!   constraint) or, failing that, a provider (`Provides`, sorted by name)
//!   satisfies. Architecture `amd64` and `all` only.
//! - Each chosen .deb is pinned by its mirror-relative `Filename`, sha256 and
//!   size, so a lock works against any mirror.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::Command;

use envbuild_store::Store;

use super::control::{self, Paragraph};
use super::deb::Compression;
use super::relation::Relation;
use super::version::Version;
use crate::fetch::{self, FetchError, FetchOptions};
use crate::net::answers::{AnswerCache, Origin};

pub const DEFAULT_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
pub const ARCH: &str = "amd64";

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("no Debian mirror configured for suite {suite:?}: set [base] debian.mirror in the spec, ENVBUILD_DEBIAN_MIRROR, or an apt source (/etc/apt/sources.list.d/*.sources) that lists the suite")]
    NoMirror { suite: String },
    #[error("fetching {what} of suite {suite:?} from the mirror (is the mirror reachable?)")]
    Http {
        what: &'static str,
        suite: String,
        #[source]
        source: crate::net::NetError,
    },
    #[error("the signature of {url} does not verify against keyring {keyring}: {message}")]
    BadSignature {
        url: String,
        keyring: PathBuf,
        message: String,
    },
    #[error("cannot run gpgv to check {url}: {source}; install the Debian package gpgv")]
    NoGpgv {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the Release file of suite {suite:?} lists no {wanted} (expected one of Packages.xz, Packages.gz, Packages)")]
    NoIndex { suite: String, wanted: String },
    #[error("{0}")]
    Control(#[from] super::Error),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("package {name:?} is not in {suite}/{component} for {ARCH}{}", nearest.as_ref().map(|n| format!(" (did you mean {n}?)")).unwrap_or_default())]
    UnknownPackage {
        name: String,
        suite: String,
        component: String,
        nearest: Option<String>,
    },
    #[error(
        "{package} {version} depends on \"{dependency}\", which no package in {suite} satisfies"
    )]
    Unsatisfiable {
        package: String,
        version: String,
        dependency: String,
        suite: String,
    },
}

/// A .deb pinned for the lock (also kept as JSON in the lock's closure
/// cache).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PinnedDeb {
    pub name: String,
    pub version: String,
    /// Mirror-relative, e.g. `pool/main/p/python3.11/python3.11_3.11.2-6_amd64.deb`.
    pub filename: String,
    pub sha256: String,
    pub size: u64,
}

fn sources_files() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        files.sort();
        v.extend(
            files
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "sources"))
                .cloned(),
        );
        v.push(PathBuf::from("/etc/apt/sources.list"));
        v.extend(
            files
                .into_iter()
                .filter(|p| p.extension().is_some_and(|e| e == "list")),
        );
    } else {
        v.push(PathBuf::from("/etc/apt/sources.list"));
    }
    v
}

/// The mirror URIs apt sources give for `suite`, in file order.
pub fn mirrors_from_apt_sources(files: &[PathBuf], suite: &str) -> Vec<String> {
    let mut out = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        if f.extension().is_some_and(|e| e == "sources") {
            let Ok(paras) = control::parse(&f.display().to_string(), &text) else {
                continue;
            };
            for p in paras {
                let types = p.get("Types").unwrap_or("");
                let enabled = p.get("Enabled").is_none_or(|e| e.trim() != "no");
                let suites = p.get("Suites").unwrap_or("");
                if enabled
                    && types.split_whitespace().any(|t| t == "deb")
                    && suites.split_whitespace().any(|s| s == suite)
                {
                    out.extend(
                        p.get("URIs")
                            .unwrap_or("")
                            .split_whitespace()
                            .map(str::to_string),
                    );
                }
            }
        } else {
            for line in text.lines() {
                let line = line.split('#').next().unwrap_or("").trim();
                let mut words = line.split_whitespace().peekable();
                if words.next() != Some("deb") {
                    continue;
                }
                if words.peek().is_some_and(|w| w.starts_with('[')) {
                    for w in words.by_ref() {
                        if w.ends_with(']') {
                            break;
                        }
                    }
                }
                if let (Some(uri), Some(s)) = (words.next(), words.next()) {
                    if s == suite {
                        out.push(uri.to_string());
                    }
                }
            }
        }
    }
    out
}

/// Where to fetch `suite` from (see the module doc for the order).
pub fn mirror_for(spec_mirror: Option<&str>, suite: &str) -> Result<String, ArchiveError> {
    if let Some(m) = spec_mirror {
        return Ok(m.trim_end_matches('/').to_string());
    }
    if let Some(m) = std::env::var("ENVBUILD_DEBIAN_MIRROR")
        .ok()
        .filter(|m| !m.is_empty())
    {
        return Ok(m.trim_end_matches('/').to_string());
    }
    mirrors_from_apt_sources(&sources_files(), suite)
        .into_iter()
        .next()
        .map(|m| m.trim_end_matches('/').to_string())
        .ok_or(ArchiveError::NoMirror {
            suite: suite.into(),
        })
}

/// The keyring to verify with.
pub fn keyring_for(spec_keyring: Option<&Path>) -> PathBuf {
    spec_keyring
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("ENVBUILD_DEBIAN_KEYRING").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_KEYRING))
}

/// A verified Release: its fields and the sha256/size of each index file.
#[derive(Debug, Clone)]
pub struct Release {
    pub fields: Paragraph,
    pub sha256: BTreeMap<String, (String, u64)>,
}

/// Fetch and verify `dists/<suite>/InRelease`.
pub fn fetch_release(
    mirror: &str,
    suite: &str,
    keyring: &Path,
    scratch: &Path,
) -> Result<Release, ArchiveError> {
    fetch_release_cached(mirror, suite, keyring, scratch, None)
}

/// [`fetch_release`] through `cache`: the kept `InRelease` is asked for
/// again with its validators (a 304 costs no body) and, like one just
/// downloaded, verified by gpgv before anything in it is read; a kept copy
/// that does not verify is forgotten and fetched again.
pub fn fetch_release_cached(
    mirror: &str,
    suite: &str,
    keyring: &Path,
    scratch: &Path,
    cache: Option<&AnswerCache>,
) -> Result<Release, ArchiveError> {
    let url = format!("{mirror}/dists/{suite}/InRelease");
    let http_err = |source| ArchiveError::Http {
        what: "InRelease",
        suite: suite.to_string(),
        source,
    };
    let client = crate::net::Client::from_env().map_err(http_err)?;
    let Some(cache) = cache else {
        let signed = client.get(&url, None, None).map_err(http_err)?.body;
        return verify_release(&url, &signed, keyring, scratch);
    };
    let answer = cache
        .get(&client, &url, None, None, None)
        .map_err(http_err)?;
    match verify_release(&url, &answer.body, keyring, scratch) {
        Err(e) if answer.origin != Origin::Downloaded => {
            tracing::debug!(url = %crate::net::redact(&url), error = %e, "kept InRelease does not verify; fetching it again");
            cache.forget(&url, None);
            let answer = cache
                .get(&client, &url, None, None, None)
                .map_err(http_err)?;
            verify_release(&url, &answer.body, keyring, scratch)
        }
        r => r,
    }
}

/// Verify a signed `InRelease` with gpgv and parse what it signs.
fn verify_release(
    url: &str,
    signed: &[u8],
    keyring: &Path,
    scratch: &Path,
) -> Result<Release, ArchiveError> {
    let url = crate::net::redact(url);
    let input = scratch.join("InRelease");
    let body = scratch.join("Release");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ArchiveError::Io { path, source }
    };
    std::fs::write(&input, signed).map_err(io(&input))?;
    let out = Command::new("gpgv")
        .arg("--keyring")
        .arg(keyring)
        .arg("--output")
        .arg(&body)
        .arg(&input)
        .output()
        .map_err(|source| ArchiveError::NoGpgv {
            url: url.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(ArchiveError::BadSignature {
            url,
            keyring: keyring.to_path_buf(),
            message: String::from_utf8_lossy(&out.stderr)
                .trim()
                .replace('\n', "; "),
        });
    }
    let text = std::fs::read_to_string(&body).map_err(io(&body))?;
    parse_release(&url, &text)
}

/// Parse the text of a verified Release (`label` names it in errors): its
/// fields and the `SHA256` list of index files.
pub fn parse_release(label: &str, text: &str) -> Result<Release, ArchiveError> {
    let fields = control::parse_one(label, text)?;
    let mut sha256 = BTreeMap::new();
    if let Some(f) = fields.field("SHA256") {
        for line in f.lines() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            if let [hash, size, name] = parts[..] {
                if let Ok(size) = size.parse() {
                    sha256.insert(name.to_string(), (hash.to_string(), size));
                }
            }
        }
    }
    Ok(Release { fields, sha256 })
}

/// The binary package index of one component, newest version per name.
pub struct PackageIndex {
    pub suite: String,
    pub component: String,
    pub packages: BTreeMap<String, Vec<Paragraph>>,
    /// virtual name → providers (package name, provided version)
    pub provides: BTreeMap<String, Vec<(String, Option<Version>)>>,
}

/// Fetch `Packages` for `suite/component` (verified against `release`) into
/// the store and parse it.
pub fn fetch_index(
    store: &mut Store,
    mirror: &str,
    suite: &str,
    component: &str,
    release: &Release,
    opts: &FetchOptions,
) -> Result<PackageIndex, ArchiveError> {
    let base = format!("{component}/binary-{ARCH}/Packages");
    let (name, compression) = [(".xz", "xz"), (".gz", "gz"), ("", "none")]
        .iter()
        .map(|(ext, c)| (format!("{base}{ext}"), *c))
        .find(|(n, _)| release.sha256.contains_key(n))
        .ok_or_else(|| ArchiveError::NoIndex {
            suite: suite.into(),
            wanted: base.clone(),
        })?;
    let (sha, size) = &release.sha256[&name];
    let url = format!("{mirror}/dists/{suite}/{name}");
    let item_name = format!(
        "Packages-{suite}-{component}-{ARCH}{}",
        if compression == "none" {
            String::new()
        } else {
            format!(".{compression}")
        }
    );
    let fetched = fetch::fetch_sized(store, &url, sha, Some(*size), &item_name, opts)?;
    let url = crate::net::redact(&url);
    let path = store.physical_path(&fetched.item);
    let file = std::fs::File::open(&path).map_err(|source| ArchiveError::Io {
        path: path.clone(),
        source,
    })?;
    let compression = match compression {
        "xz" => Compression::Xz,
        "gz" => Compression::Gzip,
        _ => Compression::None,
    };
    let reader = compression
        .decoder(file)
        .map_err(|source| ArchiveError::Io {
            path: path.clone(),
            source,
        })?;
    parse_index(
        suite,
        component,
        &url,
        BufReader::with_capacity(
            1 << 20,
            crate::io::AtMost::new(
                reader,
                MAX_PACKAGES_INDEX,
                "the decompressed Packages index",
            ),
        ),
    )
}

/// The most text a decompressed `Packages` index may hold. Debian's
/// largest (bookworm main, amd64) is about 90 MiB; the index is verified
/// against the signed Release, but its decompressed size is not.
const MAX_PACKAGES_INDEX: u64 = 1 << 30;

/// Read a `Packages` index of `suite/component` (`label` names it in
/// errors): the paragraphs of this architecture and `all`, newest version
/// first per name, and who provides each virtual name.
pub fn parse_index(
    suite: &str,
    component: &str,
    label: &str,
    reader: impl std::io::BufRead,
) -> Result<PackageIndex, ArchiveError> {
    let mut index = PackageIndex {
        suite: suite.into(),
        component: component.into(),
        packages: BTreeMap::new(),
        provides: BTreeMap::new(),
    };
    for p in control::read_paragraphs(label, reader) {
        let p = p?;
        let arch = p.get("Architecture").unwrap_or("");
        if arch != ARCH && arch != "all" {
            continue;
        }
        let Some(name) = p.get("Package").map(str::to_string) else {
            continue;
        };
        for dep in p.relations("Provides")? {
            for r in dep.alternatives {
                let v = r.constraint.map(|c| c.version);
                index
                    .provides
                    .entry(r.name)
                    .or_default()
                    .push((name.clone(), v));
            }
        }
        index.packages.entry(name).or_default().push(p);
    }
    for versions in index.packages.values_mut() {
        versions.sort_by(|a, b| {
            let va = a.version("Version").ok().flatten();
            let vb = b.version("Version").ok().flatten();
            vb.cmp(&va)
        });
    }
    for providers in index.provides.values_mut() {
        providers.sort_by(|a, b| a.0.cmp(&b.0));
        providers.dedup();
    }
    Ok(index)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

fn version_of(p: &Paragraph) -> Result<Version, ArchiveError> {
    Ok(p.version("Version")?
        .unwrap_or_else(|| Version::parse("0").expect("0 is a version")))
}

impl PackageIndex {
    /// The newest version of `name` satisfying `r`'s constraint.
    fn candidate(&self, r: &Relation) -> Result<Option<&Paragraph>, ArchiveError> {
        if let Some(versions) = self.packages.get(&r.name) {
            for p in versions {
                if r.satisfied_by(&version_of(p)?) {
                    return Ok(Some(p));
                }
            }
        }
        Ok(None)
    }

    /// A provider of `r` (a virtual package), if any.
    fn provider(&self, r: &Relation) -> Option<&str> {
        let providers = self.provides.get(&r.name)?;
        providers
            .iter()
            .find(|(_, v)| match (&r.constraint, v) {
                (None, _) => true,
                (Some(c), Some(v)) => super::relation::satisfies(v, c.op, &c.version),
                (Some(_), None) => false,
            })
            .map(|(n, _)| n.as_str())
    }

    /// The package name closest to `name` (edit distance at most 3).
    fn nearest(&self, name: &str) -> Option<String> {
        self.packages
            .keys()
            .map(|k| (edit_distance(k, name), k))
            .filter(|(d, _)| *d <= 3)
            .min()
            .map(|(_, k)| k.clone())
    }

    /// The closure of `roots` under Pre-Depends and Depends, each package
    /// at the index's newest version.
    pub fn closure(&self, roots: &[String]) -> Result<Vec<PinnedDeb>, ArchiveError> {
        self.closure_preferring(roots, &BTreeMap::new())
    }

    /// [`PackageIndex::closure`], a package whose `prefer`red file (name →
    /// `Filename`, an earlier lock's pin) the index still offers kept at
    /// that version: a re-lock moves only what the new request needs.
    pub fn closure_preferring(
        &self,
        roots: &[String],
        prefer: &BTreeMap<String, String>,
    ) -> Result<Vec<PinnedDeb>, ArchiveError> {
        let mut chosen: BTreeMap<String, &Paragraph> = BTreeMap::new();
        let mut queue: VecDeque<String> = VecDeque::new();
        for r in roots {
            if !self.packages.contains_key(r) {
                return Err(ArchiveError::UnknownPackage {
                    name: r.clone(),
                    suite: self.suite.clone(),
                    component: self.component.clone(),
                    nearest: self.nearest(r),
                });
            }
            queue.push_back(r.clone());
        }
        let mut provided: BTreeSet<String> = BTreeSet::new();
        while let Some(name) = queue.pop_front() {
            if chosen.contains_key(&name) {
                continue;
            }
            let versions = &self.packages[&name];
            let p = prefer
                .get(&name)
                .and_then(|file| versions.iter().find(|v| v.get("Filename") == Some(file)))
                .unwrap_or(&versions[0]);
            chosen.insert(name.clone(), p);
            for dep in p.relations("Provides")? {
                provided.extend(dep.alternatives.into_iter().map(|r| r.name));
            }
            let mut deps = p.relations("Pre-Depends")?;
            deps.extend(p.relations("Depends")?);
            'group: for group in deps {
                // Already satisfied by something chosen or queued?
                for r in &group.alternatives {
                    if let Some(c) = chosen.get(&r.name) {
                        if r.satisfied_by(&version_of(c)?) {
                            continue 'group;
                        }
                    }
                    if queue.contains(&r.name)
                        || (r.constraint.is_none() && provided.contains(&r.name))
                    {
                        continue 'group;
                    }
                }
                for r in &group.alternatives {
                    if self.candidate(r)?.is_some() {
                        queue.push_back(r.name.clone());
                        continue 'group;
                    }
                    if let Some(prov) = self.provider(r) {
                        queue.push_back(prov.to_string());
                        continue 'group;
                    }
                }
                return Err(ArchiveError::Unsatisfiable {
                    package: name.clone(),
                    version: p.get("Version").unwrap_or("?").into(),
                    dependency: group.to_string(),
                    suite: self.suite.clone(),
                });
            }
        }
        chosen
            .into_iter()
            .map(|(name, p)| {
                Ok(PinnedDeb {
                    version: p.require("Version")?.to_string(),
                    filename: p.require("Filename")?.to_string(),
                    sha256: p.require("SHA256")?.to_string(),
                    size: p.require("Size")?.parse().unwrap_or(0),
                    name,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(text: &str) -> PackageIndex {
        parse_index("test", "main", "Packages", text.as_bytes()).unwrap()
    }

    const PACKAGES: &str = "\
Package: app
Version: 1.0
Architecture: amd64
Pre-Depends: libc6 (>= 2.36)
Depends: python3 (>= 3.11) | python3-alt, mail-transport-agent, libfoo
Filename: pool/a/app.deb
SHA256: aa
Size: 1

Package: libc6
Version: 2.36-9
Architecture: amd64
Filename: pool/l/libc6_2.36.deb
SHA256: bb
Size: 2

Package: libc6
Version: 2.31-1
Architecture: amd64
Filename: pool/l/libc6_2.31.deb
SHA256: b0
Size: 2

Package: python3
Version: 3.11.2-1
Architecture: amd64
Depends: libc6
Filename: pool/p/python3.deb
SHA256: cc
Size: 3

Package: exim4
Version: 4.96
Architecture: amd64
Provides: mail-transport-agent
Filename: pool/e/exim4.deb
SHA256: dd
Size: 4

Package: postfix
Version: 3.7
Architecture: amd64
Provides: mail-transport-agent
Filename: pool/p/postfix.deb
SHA256: ee
Size: 5

Package: libfoo
Version: 1
Architecture: all
Depends: app
Filename: pool/l/libfoo.deb
SHA256: ff
Size: 6
";

    #[test]
    fn closure_follows_versions_alternatives_provides_and_cycles() {
        let idx = index(PACKAGES);
        let got = idx.closure(&["app".into()]).unwrap();
        let names: Vec<(&str, &str)> = got
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("app", "1.0"),
                ("exim4", "4.96"),
                ("libc6", "2.36-9"),
                ("libfoo", "1"),
                ("python3", "3.11.2-1")
            ]
        );
        assert_eq!(got[2].filename, "pool/l/libc6_2.36.deb");
    }

    #[test]
    fn a_preferred_pin_the_index_still_offers_is_kept() {
        let two = PACKAGES.replace(
            "Package: app\n",
            "Package: libc6\nVersion: 2.37-1\nArchitecture: amd64\nFilename: pool/l/libc6_2.37.deb\nSHA256: 99\nSize: 9\n\nPackage: app\n",
        );
        let idx = index(&two);
        let newest = idx.closure(&["app".into()]).unwrap();
        let libc = |c: &[PinnedDeb]| {
            c.iter()
                .find(|p| p.name == "libc6")
                .unwrap()
                .version
                .clone()
        };
        assert_eq!(libc(&newest), "2.37-1");
        let prefer: BTreeMap<String, String> = [
            ("libc6".to_string(), "pool/l/libc6_2.36.deb".to_string()),
            // A pin the index no longer offers is not kept.
            ("python3".to_string(), "pool/p/python3_3.9.deb".to_string()),
        ]
        .into();
        let kept = idx.closure_preferring(&["app".into()], &prefer).unwrap();
        assert_eq!(libc(&kept), "2.36-9");
        let python = kept.iter().find(|p| p.name == "python3").unwrap();
        assert_eq!(python.version, "3.11.2-1");
    }

    #[test]
    fn unknown_packages_and_unsatisfiable_dependencies_are_named() {
        let idx = index(PACKAGES);
        let err = idx.closure(&["pythn3".into()]).unwrap_err().to_string();
        assert!(
            err.contains("\"pythn3\"") && err.contains("python3"),
            "{err}"
        );
        let broken = PACKAGES.replace("libc6 (>= 2.36)", "libc6 (>= 2.99)");
        let err = index(&broken)
            .closure(&["app".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("app 1.0") && err.contains("libc6 (>= 2.99)"),
            "{err}"
        );
    }

    #[test]
    fn release_lists_the_sha256_and_size_of_each_index_file() {
        let text = "Suite: stable\nSHA256:\n aa 12 main/binary-amd64/Packages\n bb x main/bad-size\n cc 3\n";
        let r = parse_release("Release", text).unwrap();
        assert_eq!(r.fields.get("Suite"), Some("stable"));
        assert_eq!(
            r.sha256.into_iter().collect::<Vec<_>>(),
            [(
                "main/binary-amd64/Packages".to_string(),
                ("aa".to_string(), 12)
            )]
        );
    }

    #[test]
    fn apt_sources_in_both_formats_give_the_mirror_for_the_suite() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a.sources");
        std::fs::write(&a, "Types: deb\nURIs: http://127.0.0.1:9/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://127.0.0.1:9/security\nSuites: bookworm-security\nComponents: main\n").unwrap();
        let b = t.path().join("b.list");
        std::fs::write(
            &b,
            "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://127.0.0.2:9/debian trixie main\n",
        )
        .unwrap();
        let files = vec![a, b];
        assert_eq!(
            mirrors_from_apt_sources(&files, "bookworm"),
            vec!["http://127.0.0.1:9/debian"]
        );
        assert_eq!(
            mirrors_from_apt_sources(&files, "bookworm-security"),
            vec!["http://127.0.0.1:9/security"]
        );
        assert_eq!(
            mirrors_from_apt_sources(&files, "trixie"),
            vec!["http://127.0.0.2:9/debian"]
        );
        assert!(mirrors_from_apt_sources(&files, "sid").is_empty());
    }
}
