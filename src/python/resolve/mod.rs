//! Resolving PEP 508 requirements into exact wheels for a **target** (not
//! the host) against a PEP 691 index.
//!
//! [`resolve`] takes requirement strings, the index URL (always from the
//! caller's configuration; nothing here knows an index by name) and a
//! [`Target`], and returns a [`Resolution`]: one [`Pinned`] wheel per
//! package, sorted by name, each with file name, URL, sha256 and size.
//!
//! Rules:
//!
//! - **Tags** (PEP 425, PEP 600): a wheel fits when one of the tags its
//!   file name expands to (`py2.py3` is two) is among [`Target::tags`],
//!   which lists them in pip's (`packaging.tags.sys_tags`) order of
//!   preference: `cp311-cp311-<platform>`, `cp311-abi3-<platform>`,
//!   `cp311-none-<platform>`, `cp310-abi3` … `cp32-abi3`, `py311-none`,
//!   `py3-none`, `py310-none` … `py30-none` on each platform, then
//!   `cp311-none-any`, `py311-none-any`, `py3-none-any`, … `py30-none-any`;
//!   platforms being `manylinux_2_Y` from the target's glibc down to 2.5
//!   (each legacy `manylinux2014`/`2010`/`1` alias right after its
//!   `manylinux_2_Y`), or `musllinux_1_Y` for musl, then `linux_<arch>`.
//!   Of a version's fitting wheels the one with the most preferred tag wins,
//!   then the highest build tag, then the file name.
//! - **Markers** are evaluated in the target's environment
//!   ([`Target::marker_environment`]: `sys_platform` linux, `os_name`
//!   posix, `platform_system` Linux, `platform_machine`, `python_version`,
//!   `python_full_version`, `implementation_name` cpython,
//!   `platform_python_implementation` CPython; the kernel's
//!   `platform_release`/`platform_version` are empty), never the host's.
//! - **Index** (PEP 691 JSON, `Accept: application/vnd.pypi.simple.v1+json`,
//!   `GET {index}/{normalized-name}/`): files with `hashes`,
//!   `requires-python`, `yanked`, `upload-time`, `size`,
//!   `core-metadata`/`dist-info-metadata`. An HTML-only index is an error.
//! - **Metadata is per file**: a version's dependencies are read from the
//!   `METADATA` of the very wheel chosen for the target (torch's
//!   Requires-Dist differs between its wheels): `{file_url}.metadata`
//!   (PEP 658/714) with its sha256 checked; otherwise the wheel's
//!   `*.dist-info/METADATA` read with HTTP Range requests (a few hundred
//!   KiB), or, when the server ignores ranges, from the whole wheel with its
//!   sha256 checked. Metadata is cached on disk under the caller's cache
//!   directory, keyed by the wheel's sha256 (`metadata-v1/<sha256>.metadata`).
//! - **Policy**: for each package the highest version in range that has a
//!   wheel fitting the target whose `requires-python` admits the target's
//!   Python, and that is not yanked (a yanked wheel is used only when the
//!   range is a single version, i.e. pinned with `==`). Files uploaded
//!   after `exclude_newer` (or with no upload time while it is set) do not
//!   exist. Pre-releases only when a requirement names one or the package
//!   has nothing else. The `Requires-Python` of the chosen wheel's metadata
//!   must admit the target too, else that version is unusable. Extras
//!   (PEP 685 names) are packages of their own that pin their base to the
//!   same version. Local versions (`+cu121`) match only specifiers that
//!   spell the local part. Direct URL requirements are refused.
//! - **Sdists** (when [`ResolveOptions::sdists`]): a version with no wheel
//!   fitting the target but a non-yanked sdist whose `requires-python`
//!   admits the target is usable through the sdist; wheels are always
//!   preferred within a version. The sdist is downloaded (sha256 checked,
//!   cached as `sdists-v1/<sha256>/<file>`) and its static metadata read
//!   (see [`crate::python::sdist::metadata`]); an sdist without static
//!   requirements makes its version unusable. After resolution each sdist's
//!   build requirements are resolved for the same target, wheels only, and
//!   returned in [`Pinned::sdist`].
//! - **Failures**: pubgrub's derivation tree in words, followed by notes on
//!   skipped versions (yanked, requires-python, no wheel, exclude-newer);
//!   an `==` pin of a version the index lacks names the nearest versions;
//!   every package whose wanted versions have no wheel for the target
//!   and no sdist (or any sdist, when sdists are off) is listed in one error: such a
//!   package is resolved as if it had a wheel (without dependencies) so
//!   that resolution goes on and finds them all.
//!
//! Pages are fetched by a few worker threads ahead of the resolver, with the
//! metadata of each page's likely wheel; the resolver itself is
//! single-threaded and deterministic: the same index contents give the same
//! result whatever the timing.

mod error;
mod index;
mod metadata;
mod provider;
mod target;
mod timestamp;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::str::FromStr;

use pep440_rs::{Operator, Version};
use pep508_rs::{Requirement, VerbatimUrl, VersionOrUrl};
use pubgrub::PubGrubError;

pub use crate::python::sdist::{BuildSystem, MetadataSource};
pub use error::{NoWheel, ResolveError};
pub use target::{Arch, Implementation, Libc, Target, WheelTag};
pub use timestamp::{Timestamp, TimestampError};

use index::{IndexClient, Selector};
use provider::{explain, nearest_versions, root_version, tree_packages, Pkg, Provider};

/// The resolver's readers of what an index serves, as the resolver calls
/// them, for the fuzz targets (`fuzz/`); not an API of their own.
#[doc(hidden)]
pub mod parsers {
    use std::str::FromStr;

    use pep440_rs::Version;

    use super::index::{self, MemberError, Selector};
    use super::metadata;
    use super::Target;

    /// One version of a read project page: the version and the file name
    /// of the wheel chosen for the target, if any.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct PageVersion {
        pub version: String,
        pub wheel: Option<String>,
        pub sdist: Option<String>,
    }

    /// Read a PEP 691 page of `project` served at `page_url` for `target`
    /// (no `exclude-newer`).
    pub fn project_page(
        project: &str,
        page_url: &str,
        body: &[u8],
        target: &Target,
    ) -> Result<Vec<PageVersion>, String> {
        let page_url = reqwest::Url::parse(page_url).map_err(|e| e.to_string())?;
        let python =
            Version::from_str(&target.python_full_version_string()).map_err(|e| e.to_string())?;
        let selector = Selector {
            ranks: target.tag_ranks(),
            python,
            exclude_newer: None,
        };
        let page = index::parse_project_page(project, &page_url, body, &selector)?;
        Ok(page
            .versions
            .iter()
            .map(|v| PageVersion {
                version: v.version.to_string(),
                wheel: v.wheel.as_ref().map(|f| f.filename.clone()),
                sdist: v.sdist.as_ref().map(|f| f.filename.clone()),
            })
            .collect())
    }

    /// Read a wheel's `METADATA` as the resolver does: name, version and
    /// each `Requires-Dist`, as text.
    pub fn core_metadata(text: &str) -> Result<(String, String, Vec<String>), String> {
        let m = metadata::parse_core_metadata(text)?;
        Ok((
            m.name,
            m.version.to_string(),
            m.requires_dist.iter().map(ToString::to_string).collect(),
        ))
    }

    /// The bytes of the `*.dist-info/METADATA` member of the wheel `zip`.
    pub fn wheel_metadata_member(zip: &[u8], project: &str) -> Result<Vec<u8>, String> {
        index::read_metadata_member(std::io::Cursor::new(zip), project).map_err(|e| match e {
            MemberError::Io(e) => e.to_string(),
            MemberError::Bad(m) => m,
        })
    }
}

/// How to resolve: where, for what, and with which cut-off.
#[derive(Debug, Clone)]
pub struct ResolveOptions {
    /// The simple API root, from configuration.
    pub index_url: String,
    pub target: Target,
    /// Where wheel metadata is cached (created if missing); `None` for no
    /// disk cache.
    pub cache_dir: Option<PathBuf>,
    /// Ignore files uploaded after this instant.
    pub exclude_newer: Option<Timestamp>,
    /// Threads fetching pages and metadata ahead of the resolver (0: none).
    pub prefetch_threads: usize,
    /// Use a version's sdist when it has no wheel for the target (off for
    /// build requirements, which must be wheels).
    pub sdists: bool,
    /// Normalized name → the version to choose when the requirements allow
    /// it (an old lock's pins: minimal-change locking); else the newest.
    pub preferences: BTreeMap<String, Version>,
    /// Pages and metadata fetched already, for another target, by a
    /// [`Warmup`]: used when it asked the same index with the same cache
    /// and `exclude_newer`.
    pub warmup: Option<Warmup>,
}

/// Index work begun before the target is known (while the Debian base is
/// still being resolved, which fixes the target's glibc): the pages of the
/// root requirements, the metadata of their likely versions, and so on down
/// the likely closure, as the resolver's own prefetch does, for a
/// provisional target. What the index answers does not depend on the
/// target, so a [`resolve`] given this warm-up (in
/// [`ResolveOptions::warmup`]) takes those answers instead of asking again;
/// it reads them for the real target, so a wrong guess costs requests,
/// never the result. Dropping it (or resolving with it) stops its queue.
#[derive(Clone)]
pub struct Warmup {
    client: std::sync::Arc<IndexClient>,
}

impl std::fmt::Debug for Warmup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warmup")
            .field("index", &self.client.index_display())
            .finish()
    }
}

impl Warmup {
    /// Start fetching for `requirements` as `options` (its target the
    /// provisional one) would resolve them; returns at once.
    pub fn start<S: AsRef<str>>(
        requirements: &[S],
        options: &ResolveOptions,
    ) -> Result<Warmup, ResolveError> {
        let reqs = requirements
            .iter()
            .map(|r| parse_requirement(r.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let (selector, python) = selector(options);
        let client = IndexClient::new(
            &options.index_url,
            selector,
            options.cache_dir.clone(),
            options.prefetch_threads,
        )?;
        let provider = Provider::new(
            &client,
            options.target.marker_environment(),
            python,
            reqs,
            options.sdists,
            &options.preferences,
        );
        client.set_environment(provider.env().clone());
        // Queues the root requirements' pages (and, through the workers,
        // what their likely versions need).
        provider.root_constraints()?;
        drop(provider);
        Ok(Warmup {
            client: std::sync::Arc::new(client),
        })
    }
}

/// How `options` choose a wheel per version, and the target's Python.
fn selector(options: &ResolveOptions) -> (Selector, Version) {
    let python = Version::from_str(&options.target.python_full_version_string())
        .expect("a numeric version parses");
    let selector = Selector {
        ranks: options.target.tag_ranks(),
        python: python.clone(),
        exclude_newer: options.exclude_newer,
    };
    (selector, python)
}

impl ResolveOptions {
    pub fn new(index_url: impl Into<String>, target: Target) -> Self {
        ResolveOptions {
            index_url: index_url.into(),
            target,
            cache_dir: None,
            exclude_newer: None,
            prefetch_threads: 16,
            sdists: true,
            preferences: BTreeMap::new(),
            warmup: None,
        }
    }
}

/// One resolved package: the exact wheel chosen for the target.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pinned {
    /// Normalized (PEP 503) name.
    pub name: String,
    pub version: String,
    pub filename: String,
    /// Where the index said the file is (absolute).
    pub url: String,
    pub sha256: String,
    pub size: u64,
    /// The file's `requires-python` (from the index, else its metadata).
    pub requires_python: Option<String>,
    /// Normalized names of the packages this one pulls in on the target
    /// (with the extras below), sorted.
    pub dependencies: Vec<String>,
    /// Extras of this package that the resolution activated, sorted.
    pub extras: Vec<String>,
    /// Set when the file is an sdist (no wheel fits the target): how its
    /// requirements were read and what its build needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdist: Option<SdistBuild>,
}

/// The build of a resolved sdist.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SdistBuild {
    /// Where its requirements came from (PKG-INFO, pyproject.toml,
    /// egg-info, distutils).
    pub metadata_source: MetadataSource,
    /// `[build-system]` (or the PEP 517 default).
    pub build_system: BuildSystem,
    /// The build requirements resolved as wheels for the same target,
    /// sorted by name.
    pub build_wheels: Vec<Pinned>,
}

/// The result of [`resolve`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Resolution {
    /// Sorted by name.
    pub packages: Vec<Pinned>,
}

impl Resolution {
    pub fn get(&self, name: &str) -> Option<&Pinned> {
        self.packages.iter().find(|p| p.name == name)
    }
}

fn parse_requirement(text: &str) -> Result<Requirement<VerbatimUrl>, ResolveError> {
    let req = crate::python::pep508::parse_requirement::<VerbatimUrl>(text).map_err(|e| {
        ResolveError::InvalidRequirement {
            requirement: text.to_owned(),
            message: e.to_string(),
        }
    })?;
    if matches!(req.version_or_url, Some(VersionOrUrl::Url(_))) {
        return Err(ResolveError::UnsupportedRequirement {
            requirement: text.to_owned(),
        });
    }
    Ok(req)
}

/// Resolve `requirements` (PEP 508 strings) for `options.target` against
/// `options.index_url`. See the module documentation for the rules.
pub fn resolve<S: AsRef<str>>(
    requirements: &[S],
    options: &ResolveOptions,
) -> Result<Resolution, ResolveError> {
    let target = &options.target;
    let reqs = requirements
        .iter()
        .map(|r| parse_requirement(r.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    let (selector, python) = selector(options);
    let warm = options.warmup.as_ref().map(|w| {
        // Its queue stops; what it has in flight lands in the shared answers.
        w.client.close();
        w.client.answers()
    });
    let client = match warm.filter(|a| {
        a.serve(
            &options.index_url,
            options.cache_dir.as_deref(),
            options.exclude_newer,
        )
    }) {
        Some(answers) => IndexClient::sharing(answers, selector, options.prefetch_threads),
        None => IndexClient::new(
            &options.index_url,
            selector,
            options.cache_dir.clone(),
            options.prefetch_threads,
        )?,
    };
    let index = client.index_display().to_owned();
    let provider = Provider::new(
        &client,
        target.marker_environment(),
        python,
        reqs.clone(),
        options.sdists,
        &options.preferences,
    );

    // Pins of versions that do not exist are reported with their nearest
    // neighbours before anything else.
    let active: Vec<&Requirement<VerbatimUrl>> = reqs
        .iter()
        .filter(|r| r.marker.evaluate(provider.env(), &[]))
        .collect();
    // The root's pages and likely metadata first, then (through the
    // target's markers) what they depend on.
    client.set_environment(provider.env().clone());
    let _ = provider.root_constraints();
    for r in &active {
        let Some(VersionOrUrl::VersionSpecifier(specs)) = &r.version_or_url else {
            continue;
        };
        for s in specs.iter() {
            if !matches!(s.operator(), Operator::Equal | Operator::ExactEqual) {
                continue;
            }
            let name = r.name.to_string();
            let project = client.project(&name)?;
            let exists =
                project.entry(s.version()).is_some() || project.hidden_newer.contains(s.version());
            if !exists {
                return Err(ResolveError::NonexistentVersion {
                    nearest: nearest_versions(&project, s.version()),
                    package: name,
                    requested: s.version().to_string(),
                    index,
                });
            }
        }
    }

    let target_text = target.to_string();
    let solution = match pubgrub::resolve(&provider, Pkg::Root, root_version()) {
        Ok(s) => s,
        Err(PubGrubError::NoSolution(tree)) => {
            let mut explanation = explain(&tree);
            let notes = provider.notes(&tree_packages(&tree));
            if !notes.is_empty() {
                explanation.push_str("\nNotes:");
                for n in notes {
                    explanation.push_str("\n  - ");
                    explanation.push_str(&n);
                }
            }
            return Err(ResolveError::NoSolution {
                target: target_text,
                index,
                explanation,
            });
        }
        Err(PubGrubError::ErrorChoosingVersion { source, .. })
        | Err(PubGrubError::ErrorRetrievingDependencies { source, .. })
        | Err(PubGrubError::ErrorInShouldCancel(source)) => return Err(source),
    };

    // Packages with no wheel for the target, all of them at once.
    let mut no_wheel: Vec<NoWheel> = solution
        .iter()
        .filter_map(|(p, v)| match p {
            Pkg::Base(name) => provider.phantom(name, v),
            _ => None,
        })
        .collect();
    if !no_wheel.is_empty() {
        no_wheel.sort_by(|a, b| a.package.cmp(&b.package));
        return Err(ResolveError::NoUsableWheel {
            target: target_text,
            index,
            packages: no_wheel,
        });
    }

    let mut extras: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut dependencies: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (p, v) in &solution {
        if let Some(name) = p.name() {
            if let Pkg::Extra(_, e) = p {
                extras.entry(name).or_default().insert(e.clone());
            }
            dependencies
                .entry(name)
                .or_default()
                .extend(provider.dependency_names(p, v));
        }
    }
    let mut packages = Vec::new();
    let mut build_cache: BTreeMap<String, Vec<Pinned>> = BTreeMap::new();
    for (p, v) in &solution {
        let Pkg::Base(name) = p else { continue };
        let file = provider
            .chosen(name, v)
            .expect("every chosen version has its wheel recorded");
        let sha256 = file
            .sha256
            .clone()
            .ok_or_else(|| ResolveError::MissingHash {
                package: name.clone(),
                filename: file.filename.clone(),
                index: index.clone(),
            })?;
        let size = match file.size {
            Some(s) => s,
            None => client.content_length(name, &file.url)?,
        };
        let requires_python = match &file.requires_python {
            Some(r) => Some(r.clone()),
            None => client
                .metadata(name, &file)
                .ok()
                .and_then(|m| m.requires_python.clone()),
        };
        let sdist = if crate::python::sdist::is_sdist(&file.filename) {
            let meta = client.sdist_metadata(name, &file)?;
            let key = meta.build_system.requires.join("\n");
            let build_wheels = match build_cache.get(&key) {
                Some(w) => w.clone(),
                None => {
                    let bo = ResolveOptions {
                        sdists: false,
                        ..options.clone()
                    };
                    let w = resolve(&meta.build_system.requires, &bo)
                        .map_err(|e| ResolveError::Sdist {
                            package: name.clone(),
                            message: format!(
                                "{}: its build requirements [{}] do not resolve to wheels: {e}",
                                file.filename,
                                meta.build_system.requires.join(", ")
                            ),
                        })?
                        .packages;
                    build_cache.insert(key, w.clone());
                    w
                }
            };
            Some(SdistBuild {
                metadata_source: meta.source,
                build_system: meta.build_system.clone(),
                build_wheels,
            })
        } else {
            None
        };
        packages.push(Pinned {
            sdist,
            name: name.clone(),
            version: v.to_string(),
            filename: file.filename.clone(),
            url: file.url.clone(),
            sha256,
            size,
            requires_python,
            dependencies: dependencies
                .get(name.as_str())
                .map(|d| d.iter().cloned().collect())
                .unwrap_or_default(),
            extras: extras
                .get(name.as_str())
                .map(|d| d.iter().cloned().collect())
                .unwrap_or_default(),
        });
    }
    packages.sort_by(|a, b| a.name.cmp(&b.name));
    let c = client.counts();
    let n = |a: &std::sync::atomic::AtomicUsize| a.load(std::sync::atomic::Ordering::Relaxed);
    tracing::info!(
        packages = packages.len(),
        pages_downloaded = n(&c.pages_downloaded),
        pages_not_modified = n(&c.pages_not_modified),
        pages_fresh = n(&c.pages_fresh),
        metadata_fetched = n(&c.metadata_fetched),
        metadata_cached = n(&c.metadata_cached),
        "resolved against {index}"
    );
    Ok(Resolution { packages })
}

/// Find pinned wheel (and sdist) files again through an index (any
/// mirror): for each file name, the URL the index gives it now. Used at fetch time, when the
/// lock names files rather than URLs; no resolution happens. A file the
/// index no longer lists as that version's wheel for `target` is an error
/// naming it.
pub fn locate_wheels(
    index_url: &str,
    target: &Target,
    filenames: &[String],
) -> Result<BTreeMap<String, String>, ResolveError> {
    let python =
        Version::from_str(&target.python_full_version_string()).expect("a numeric version parses");
    let selector = Selector {
        ranks: target.tag_ranks(),
        python,
        exclude_newer: None,
    };
    let client = IndexClient::new(index_url, selector, None, 4)?;
    let mut parsed = Vec::new();
    for f in filenames {
        let gone = || ResolveError::LockedFileGone {
            file: f.clone(),
            package: String::new(),
            version: String::new(),
            index: client.index_display().to_owned(),
        };
        let (name, version) = if crate::python::sdist::is_sdist(f) {
            crate::python::sdist::parse_filename(f).ok_or_else(gone)?
        } else {
            let w = crate::python::wheel::WheelFilename::parse(f).map_err(|_| gone())?;
            (crate::python::wheel::normalize_name(&w.name), w.version)
        };
        client.prefetch(&name);
        parsed.push((f, name, version));
    }
    let mut out = BTreeMap::new();
    for (f, name, version) in parsed {
        let project = client.project(&name)?;
        let v = Version::from_str(&version).ok();
        let entry = v.as_ref().and_then(|v| project.entry(v));
        let file = entry.and_then(|e| {
            if crate::python::sdist::is_sdist(f) {
                e.sdist.as_ref()
            } else {
                e.wheel.as_ref().or(e.yanked_wheel.as_ref())
            }
        });
        match file {
            Some(w) if &w.filename == f => {
                out.insert(f.clone(), w.url.clone());
            }
            _ => {
                return Err(ResolveError::LockedFileGone {
                    file: f.clone(),
                    package: name,
                    version,
                    index: client.index_display().to_owned(),
                })
            }
        }
    }
    Ok(out)
}

/// A wheel the index lists, as [`find_hashed_wheels`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexWheel {
    pub filename: String,
    pub url: String,
    pub sha256: String,
    pub size: Option<u64>,
}

/// For each `(name, version, sha256 hashes)`, the best wheel (by the
/// target's tag order) of that exact version that fits `target` and whose
/// sha256 the index gives as one of `hashes`; `None` when there is none
/// (also when the index does not know the project).
/// What a hash-checked requirements file needs: no resolution happens.
pub fn find_hashed_wheels(
    index_url: &str,
    target: &Target,
    wanted: &[(String, String, Vec<String>)],
) -> Result<(String, Vec<Option<IndexWheel>>), ResolveError> {
    let python =
        Version::from_str(&target.python_full_version_string()).expect("a numeric version parses");
    let selector = Selector {
        ranks: target.tag_ranks(),
        python,
        exclude_newer: None,
    };
    let client = IndexClient::new(index_url, selector, None, 4)?;
    for (name, _, _) in wanted {
        client.prefetch(&crate::python::wheel::normalize_name(name));
    }
    let mut out = Vec::new();
    for (name, version, hashes) in wanted {
        // A project this index does not have: not found here (another
        // index may have it).
        let project = match client.project(&crate::python::wheel::normalize_name(name)) {
            Ok(p) => p,
            Err(ResolveError::NotFound { .. }) => {
                out.push(None);
                continue;
            }
            Err(e) => return Err(e),
        };
        let entry = Version::from_str(version)
            .ok()
            .and_then(|v| project.entry(&v).cloned());
        let found = entry.and_then(|e| {
            e.fitting.iter().find_map(|f| {
                let sha = f.sha256.as_ref()?;
                hashes.iter().any(|h| h == sha).then(|| IndexWheel {
                    filename: f.filename.clone(),
                    url: f.url.clone(),
                    sha256: sha.clone(),
                    size: f.size,
                })
            })
        });
        out.push(found);
    }
    Ok((client.index_display().to_owned(), out))
}
