//! A PEP 691 (JSON simple API) index client, with each version's best wheel
//! for the target chosen as the page is read, PEP 658 metadata fetched per
//! file and cached on disk, and a pool of threads that fetch pages and
//! likely metadata ahead of the resolver.
//!
//! - **Pages** are kept under the cache directory (`pages-v1/`, an
//!   [`net::answers::AnswerCache`]) with their `ETag` / `Last-Modified`:
//!   the next lock asks with `If-None-Match` / `If-Modified-Since` and a 304
//!   reuses the kept body. A page within its `Cache-Control` max-age
//!   (at most `ENVBUILD_INDEX_MAX_AGE`, default 600 s) is reused without a
//!   request, as uv does, but only when it was received at or after the
//!   resolution's `exclude-newer` instant (so it lists every file uploaded
//!   up to it). A kept page is parsed by the same parser as the network's;
//!   one that does not parse is forgotten and fetched again.
//! - **Metadata** (PEP 658 files, or `METADATA` read out of the wheel) is
//!   kept by the wheel's sha256 (`metadata-v1/`): it never changes.
//! - **Prefetch.** When the resolver first meets a package (the root's
//!   requirements, then each chosen version's dependencies) a worker fetches
//!   its page and the metadata of the version most likely chosen (the
//!   newest final release in the range asked for, with a wheel for the
//!   target), then queues the pages of that version's own dependencies
//!   (markers evaluated for the target, without extras): the likely
//!   closure is fetched ahead while the resolver works. Each name is
//!   queued once, at most [`MAX_PREFETCH`] names per client; the workers
//!   (`prefetch_threads`, default 16) bound the requests in flight.
//! - **What the index answered** ([`IndexAnswers`]: pages as received,
//!   metadata by file URL, sdists) does not depend on the target, so one
//!   client can fetch for a provisional target while the base is still
//!   being resolved ([`super::Warmup`]) and the resolution's client, made
//!   for the real target with [`IndexClient::sharing`], finds those answers
//!   instead of asking again; only the reading of pages (which wheel fits)
//!   is the target's.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use pep440_rs::Version;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use pep508_rs::{MarkerEnvironment, VersionOrUrl};

use super::error::ResolveError;
use super::metadata::{parse_core_metadata, requires_python_allows, CoreMetadata};
use super::provider::Range;
use super::target::TagRanks;
use super::timestamp::Timestamp;
use crate::net;
use crate::net::answers::{AnswerCache, Origin};
use crate::python::sdist::{self, SdistError, SdistMetadata};
use crate::python::wheel::{normalize_name, WheelFilename};

/// The media type of PEP 691 JSON pages, version 1.
pub(super) const JSON_MEDIA_TYPE: &str = "application/vnd.pypi.simple.v1+json";

/// What [`IndexClient`] needs to know of the target and policy to choose a
/// wheel per version.
#[derive(Debug, Clone)]
pub(super) struct Selector {
    pub ranks: TagRanks,
    /// The target's full Python version, for `requires-python`.
    pub python: Version,
    pub exclude_newer: Option<Timestamp>,
}

/// One file on a project page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DistFile {
    pub filename: String,
    /// Absolute URL (relative URLs resolved against the page).
    pub url: String,
    pub sha256: Option<String>,
    pub size: Option<u64>,
    pub requires_python: Option<String>,
    /// `Some(reason)` when yanked (PEP 592); the reason may be empty.
    pub yanked: Option<String>,
    pub upload_time: Option<Timestamp>,
    /// PEP 658/714: `Some(sha256 if given)` when `{url}.metadata` exists.
    pub metadata: Option<Option<String>>,
}

/// Why a version has no usable wheel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Skip {
    /// Every wheel that fits the target is yanked (reason, maybe empty).
    Yanked(String),
    /// Every wheel that fits the target's tags excludes its Python
    /// (the `requires-python` of the best of them).
    RequiresPython(String),
    /// No wheel fits the target's tags: the files there are.
    NoWheel(Vec<String>),
}

/// One version on a project page, with the wheel chosen for the target.
#[derive(Debug, Clone)]
pub(super) struct VersionEntry {
    pub version: Version,
    /// The best non-yanked wheel for the target.
    pub wheel: Option<Arc<DistFile>>,
    /// The best wheel for the target, yanked or not (used for `==` pins).
    pub yanked_wheel: Option<Arc<DistFile>>,
    /// Why `wheel` is `None`.
    pub skip: Option<Skip>,
    /// Every wheel of this version that fits the target, best first.
    pub fitting: Vec<Arc<DistFile>>,
    /// The version's sdist (`.tar.gz` before `.zip`, not yanked, its
    /// `requires-python` admitting the target), used only when no wheel
    /// fits the target.
    pub sdist: Option<Arc<DistFile>>,
}

/// A project page, read for the target.
#[derive(Debug, Clone)]
pub(super) struct Project {
    /// Normalized name.
    pub name: String,
    /// Ascending.
    pub versions: Vec<VersionEntry>,
    /// Versions left out because all their files were uploaded after
    /// `exclude_newer` (or carry no upload time while it is set).
    pub hidden_newer: Vec<Version>,
}

impl Project {
    pub fn entry(&self, version: &Version) -> Option<&VersionEntry> {
        self.versions
            .binary_search_by(|e| e.version.cmp(version))
            .ok()
            .map(|i| &self.versions[i])
    }
}

// ---- PEP 691 JSON ----------------------------------------------------------

#[derive(Deserialize)]
struct JsonPage {
    #[serde(default)]
    meta: Option<JsonMeta>,
    files: Vec<JsonFile>,
}

#[derive(Deserialize)]
struct JsonMeta {
    #[serde(rename = "api-version")]
    api_version: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum BoolOrString {
    Bool(bool),
    Str(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum BoolOrHashes {
    Bool(bool),
    Hashes(HashMap<String, String>),
}

#[derive(Deserialize)]
struct JsonFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: HashMap<String, String>,
    #[serde(rename = "requires-python", default)]
    requires_python: Option<String>,
    #[serde(default)]
    yanked: Option<BoolOrString>,
    #[serde(rename = "core-metadata", default)]
    core_metadata: Option<BoolOrHashes>,
    #[serde(rename = "dist-info-metadata", default)]
    dist_info_metadata: Option<BoolOrHashes>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(rename = "upload-time", default)]
    upload_time: Option<String>,
}

/// The version in an sdist's name, `{name}-{version}.tar.gz` (or `.zip`),
/// where the name part normalizes to `project`.
fn sdist_version(filename: &str, project: &str) -> Option<Version> {
    let stem = filename
        .strip_suffix(".tar.gz")
        .or_else(|| filename.strip_suffix(".zip"))?;
    stem.match_indices('-').find_map(|(i, _)| {
        (normalize_name(&stem[..i]) == project)
            .then(|| Version::from_str(&stem[i + 1..]).ok())
            .flatten()
    })
}

/// `(number, rest)` of a build tag, for ordering (higher is preferred).
fn build_key(build: Option<&str>) -> (u64, String) {
    match build {
        None => (0, String::new()),
        Some(b) => {
            let digits: String = b.chars().take_while(char::is_ascii_digit).collect();
            (digits.parse().unwrap_or(0), b[digits.len()..].to_owned())
        }
    }
}

/// One file of a project page as read without a target.
pub(super) struct PageFile {
    version: Version,
    /// The wheel's tags (`None` for an sdist).
    wheel: Option<WheelFilename>,
    build: (u64, String),
    upload_time: Option<Timestamp>,
    /// The file, or why its URL does not resolve (an error only where the
    /// file is used: a hidden file may be broken).
    file: Result<Arc<DistFile>, String>,
}

/// A project page read once for every target: its wheels and sdists (other
/// files, and wheels of other projects, left out).
pub(super) struct PageFiles(Vec<PageFile>);

/// Read a PEP 691 page into a [`Project`], choosing each version's wheel.
pub(super) fn parse_project_page(
    project: &str,
    page_url: &reqwest::Url,
    body: &[u8],
    selector: &Selector,
) -> Result<Project, String> {
    select(
        project,
        &read_page_files(project, page_url, body)?,
        selector,
    )
}

/// The target-free part of reading a page: the JSON, each file's name,
/// version, URL and attributes.
pub(super) fn read_page_files(
    project: &str,
    page_url: &reqwest::Url,
    body: &[u8],
) -> Result<PageFiles, String> {
    let page: JsonPage =
        serde_json::from_slice(body).map_err(|e| format!("the JSON does not parse: {e}"))?;
    if let Some(v) = page.meta.as_ref().and_then(|m| m.api_version.as_deref()) {
        if !v.starts_with("1.") && v != "1" {
            return Err(format!("api-version {v} is not 1.x"));
        }
    }
    let mut out = Vec::with_capacity(page.files.len());
    for f in page.files {
        let (version, wheel, build) = if f.filename.ends_with(".whl") {
            let Ok(w) = WheelFilename::parse(&f.filename) else {
                continue;
            };
            if normalize_name(&w.name) != project {
                continue;
            }
            let Ok(v) = Version::from_str(&w.version) else {
                continue;
            };
            let build = build_key(w.build.as_deref());
            (v, Some(w), build)
        } else if let Some(v) = sdist_version(&f.filename, project) {
            (v, None, (0, String::new()))
        } else {
            // .egg, .exe, .msi, ...: never used.
            continue;
        };
        let upload_time = f
            .upload_time
            .as_deref()
            .and_then(|t| Timestamp::from_str(t).ok());
        let file = match page_url.join(&f.url) {
            Err(e) => Err(format!("file URL {:?} does not resolve: {e}", f.url)),
            Ok(url) => {
                let mut url = url.to_string();
                // PEP 503 pages carry the hash in the fragment; the URL is without.
                if let Some(i) = url.find('#') {
                    url.truncate(i);
                }
                let yanked = match f.yanked {
                    None | Some(BoolOrString::Bool(false)) => None,
                    Some(BoolOrString::Bool(true)) => Some(String::new()),
                    Some(BoolOrString::Str(reason)) => Some(reason),
                };
                let metadata = match f.core_metadata.or(f.dist_info_metadata) {
                    None | Some(BoolOrHashes::Bool(false)) => None,
                    Some(BoolOrHashes::Bool(true)) => Some(None),
                    Some(BoolOrHashes::Hashes(h)) => {
                        Some(h.get("sha256").map(|s| s.to_lowercase()))
                    }
                };
                Ok(Arc::new(DistFile {
                    filename: f.filename,
                    url,
                    sha256: f.hashes.get("sha256").map(|s| s.to_lowercase()),
                    size: f.size,
                    requires_python: f.requires_python.filter(|s| !s.trim().is_empty()),
                    yanked,
                    upload_time,
                    metadata,
                }))
            }
        };
        out.push(PageFile {
            version,
            wheel,
            build,
            upload_time,
            file,
        });
    }
    Ok(PageFiles(out))
}

/// The target's part: which files fit, each version's wheel.
fn select(project: &str, page: &PageFiles, selector: &Selector) -> Result<Project, String> {
    struct Candidate {
        file: Arc<DistFile>,
        rank: Option<usize>,
        build: (u64, String),
    }
    let mut by_version: BTreeMap<Version, Vec<Candidate>> = BTreeMap::new();
    let mut hidden: BTreeMap<Version, ()> = BTreeMap::new();
    for f in &page.0 {
        if let Some(cutoff) = selector.exclude_newer {
            if f.upload_time.is_none_or(|t| t > cutoff) {
                hidden.insert(f.version.clone(), ());
                continue;
            }
        }
        let file = f.file.clone()?;
        let rank = f
            .wheel
            .as_ref()
            .and_then(|w| selector.ranks.rank(&w.python, &w.abi, &w.platform));
        by_version
            .entry(f.version.clone())
            .or_default()
            .push(Candidate {
                file,
                rank,
                build: f.build.clone(),
            });
    }
    let mut versions = Vec::with_capacity(by_version.len());
    for (version, mut files) in by_version {
        hidden.remove(&version);
        // Best first: tag rank, then the highest build tag, then the name.
        files.sort_by(|a, b| {
            a.rank
                .cmp(&b.rank)
                .then_with(|| b.build.cmp(&a.build))
                .then_with(|| a.file.filename.cmp(&b.file.filename))
        });
        let fitting: Vec<&Candidate> = files.iter().filter(|c| c.rank.is_some()).collect();
        let sdist = files
            .iter()
            .filter(|c| c.rank.is_none() && !c.file.filename.ends_with(".whl"))
            .filter(|c| c.file.yanked.is_none())
            .filter(|c| {
                c.file
                    .requires_python
                    .as_deref()
                    .is_none_or(|s| requires_python_allows(s, &selector.python))
            })
            .min_by_key(|c| {
                (
                    !c.file.filename.ends_with(".tar.gz"),
                    c.file.filename.clone(),
                )
            })
            .map(|c| c.file.clone());
        let runnable: Vec<&Candidate> = fitting
            .iter()
            .copied()
            .filter(|c| {
                c.file
                    .requires_python
                    .as_deref()
                    .is_none_or(|s| requires_python_allows(s, &selector.python))
            })
            .collect();
        let wheel = runnable
            .iter()
            .find(|c| c.file.yanked.is_none())
            .map(|c| c.file.clone());
        let yanked_wheel = wheel
            .clone()
            .or_else(|| runnable.first().map(|c| c.file.clone()));
        let skip = if wheel.is_some() {
            None
        } else if let Some(y) = &yanked_wheel {
            Some(Skip::Yanked(y.yanked.clone().unwrap_or_default()))
        } else if let Some(first) = fitting.first() {
            Some(Skip::RequiresPython(
                first.file.requires_python.clone().unwrap_or_default(),
            ))
        } else {
            Some(Skip::NoWheel(
                files.iter().map(|c| c.file.filename.clone()).collect(),
            ))
        };
        let fitting = fitting.iter().map(|c| c.file.clone()).collect();
        versions.push(VersionEntry {
            version,
            wheel,
            yanked_wheel,
            skip,
            fitting,
            sdist,
        });
    }
    Ok(Project {
        name: project.to_owned(),
        versions,
        hidden_newer: hidden.into_keys().collect(),
    })
}

// ---- the client ------------------------------------------------------------

type Slot<T> = Arc<OnceLock<Result<Arc<T>, ResolveError>>>;

/// The most names one client prefetches (the resolver's own requests are
/// not counted).
pub(super) const MAX_PREFETCH: usize = 1024;

/// What one client asked the network and the cache, for `-v`.
#[derive(Debug, Default)]
pub(super) struct Counts {
    pub pages_fresh: std::sync::atomic::AtomicUsize,
    pub pages_not_modified: std::sync::atomic::AtomicUsize,
    pub pages_downloaded: std::sync::atomic::AtomicUsize,
    pub metadata_cached: std::sync::atomic::AtomicUsize,
    pub metadata_fetched: std::sync::atomic::AtomicUsize,
}

/// What one index answered, whatever the target: project pages as
/// received, wheel metadata by file URL, sdist metadata. Each is fetched
/// once however many clients share it.
pub(super) struct IndexAnswers {
    index: reqwest::Url,
    /// The index URL without credentials, for messages.
    index_display: String,
    http: net::Client,
    cache_dir: Option<PathBuf>,
    /// Project pages kept with their validators (under `cache_dir`).
    pages: Option<AnswerCache>,
    /// A kept page received before this instant (Unix seconds: just after
    /// `exclude_newer`) is not reused without asking.
    not_before: Option<u64>,
    counts: Counts,
    /// Normalized name → the page as the index (or the kept copy) gave it,
    /// read as far as no target is needed.
    raw_pages: Mutex<HashMap<String, Slot<RawPage>>>,
    metadata: Mutex<HashMap<String, Slot<CoreMetadata>>>,
    sdists: Mutex<HashMap<String, Slot<SdistMetadata>>>,
    /// Where sdists are kept when there is no cache directory.
    scratch: OnceLock<Result<tempfile::TempDir, String>>,
}

/// A project page as far as it is read without a target.
struct RawPage {
    /// After redirects, for messages.
    url: reqwest::Url,
    /// Its files, or why the page does not read.
    files: Result<PageFiles, String>,
    origin: Origin,
}

impl RawPage {
    fn read(
        project: &str,
        url: reqwest::Url,
        content_type: &str,
        body: &[u8],
        origin: Origin,
    ) -> RawPage {
        let files = if content_type.to_ascii_lowercase().contains("html") {
            Err(format!(
                "the index answered {content_type:?}; envbuild needs the PEP 691 JSON form ({JSON_MEDIA_TYPE})"
            ))
        } else {
            // Relative file URLs resolve against the page's final URL.
            read_page_files(project, &url, body)
        };
        RawPage { url, files, origin }
    }
}

struct Inner {
    answers: Arc<IndexAnswers>,
    selector: Selector,
    /// The target's markers, for prefetching dependencies.
    env: OnceLock<MarkerEnvironment>,
    /// The prefetch queue (`None` without workers, and once the client is
    /// dropped, which ends the workers).
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    /// Names queued for prefetch.
    queued: Mutex<std::collections::HashSet<String>>,
    /// The pages read for this client's target.
    projects: Mutex<HashMap<String, Slot<Project>>>,
    /// Set when the client is dropped: queued prefetches are skipped.
    closed: AtomicBool,
}

enum Job {
    /// A page, and the likely version's metadata in the range (any when
    /// `None`).
    Project(String, Option<Range>),
}

/// Fetches project pages and wheel metadata, each once, from one index,
/// and reads the pages for one target.
pub(super) struct IndexClient {
    inner: Arc<Inner>,
}

/// The URL with its credentials removed ([`net::redact`]).
pub(super) fn redact(url: &reqwest::Url) -> String {
    net::redact(url.as_str())
}

impl IndexAnswers {
    /// `index_url` is the simple API root (`…/simple/`); kept pages older
    /// than `exclude_newer` are asked for again.
    pub fn open(
        index_url: &str,
        cache_dir: Option<PathBuf>,
        exclude_newer: Option<Timestamp>,
    ) -> Result<Arc<IndexAnswers>, ResolveError> {
        let bad = |message: String| ResolveError::InvalidIndexUrl {
            url: net::redact(index_url),
            message: net::redact(&message),
        };
        let mut index = reqwest::Url::parse(index_url.trim()).map_err(|e| bad(e.to_string()))?;
        if !matches!(index.scheme(), "http" | "https") {
            return Err(bad("only http and https indexes are supported".into()));
        }
        if !index.path().ends_with('/') {
            let p = format!("{}/", index.path());
            index.set_path(&p);
        }
        let http = net::Client::from_env().map_err(|e| bad(e.chain_text()))?;
        if let Some(dir) = &cache_dir {
            fs::create_dir_all(dir.join("metadata-v1")).map_err(|e| ResolveError::Cache {
                path: dir.display().to_string(),
                message: e.to_string(),
            })?;
        }
        let pages =
            match &cache_dir {
                None => None,
                Some(dir) => Some(AnswerCache::new(dir.join("pages-v1")).map_err(|e| {
                    ResolveError::Cache {
                        path: dir.join("pages-v1").display().to_string(),
                        message: e.to_string(),
                    }
                })?),
            };
        let not_before = exclude_newer
            .map(|t| u64::try_from(t.as_micros().div_euclid(1_000_000) + 1).unwrap_or(0));
        Ok(Arc::new(IndexAnswers {
            index_display: redact(&index),
            index,
            http,
            cache_dir,
            pages,
            not_before,
            counts: Counts::default(),
            raw_pages: Mutex::new(HashMap::new()),
            metadata: Mutex::new(HashMap::new()),
            sdists: Mutex::new(HashMap::new()),
            scratch: OnceLock::new(),
        }))
    }

    /// Whether these are the answers of `index_url` as of `exclude_newer`
    /// (what a client sharing them must ask of).
    pub fn serve(
        &self,
        index_url: &str,
        cache_dir: Option<&Path>,
        exclude_newer: Option<Timestamp>,
    ) -> bool {
        let same_index = reqwest::Url::parse(index_url.trim())
            .map(|mut u| {
                if !u.path().ends_with('/') {
                    let p = format!("{}/", u.path());
                    u.set_path(&p);
                }
                u == self.index
            })
            .unwrap_or(false);
        let not_before = exclude_newer
            .map(|t| u64::try_from(t.as_micros().div_euclid(1_000_000) + 1).unwrap_or(0));
        same_index && self.cache_dir.as_deref() == cache_dir && self.not_before == not_before
    }
}

impl IndexClient {
    /// `index_url` is the simple API root (`…/simple/`); `workers` threads
    /// fetch ahead of the resolver (0 for none).
    pub fn new(
        index_url: &str,
        selector: Selector,
        cache_dir: Option<PathBuf>,
        workers: usize,
    ) -> Result<IndexClient, ResolveError> {
        let answers = IndexAnswers::open(index_url, cache_dir, selector.exclude_newer)?;
        Ok(IndexClient::sharing(answers, selector, workers))
    }

    /// A client for `selector`'s target over answers another client may
    /// have fetched (or be fetching) already; `answers` must have been
    /// opened with `selector.exclude_newer` ([`IndexAnswers::serve`]).
    pub fn sharing(answers: Arc<IndexAnswers>, selector: Selector, workers: usize) -> IndexClient {
        let inner = Arc::new(Inner {
            answers,
            selector,
            env: OnceLock::new(),
            jobs: Mutex::new(None),
            queued: Mutex::new(Default::default()),
            projects: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
        });
        if workers > 0 {
            let (tx, rx) = mpsc::channel::<Job>();
            let rx = Arc::new(Mutex::new(rx));
            for _ in 0..workers {
                let rx = rx.clone();
                // Workers hold the inner part weakly between jobs, so that
                // dropping the client drops the sender and ends them.
                let inner = Arc::downgrade(&inner);
                std::thread::spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Some(inner) = inner.upgrade() else { return };
                    match job {
                        Ok(Job::Project(..)) if inner.closed.load(Ordering::Relaxed) => {}
                        Ok(Job::Project(name, range)) => inner.prefetch(&name, range.as_ref()),
                        Err(_) => return,
                    }
                });
            }
            *inner.jobs.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        }
        IndexClient { inner }
    }

    /// What this client's index answered so far (for another client).
    pub fn answers(&self) -> Arc<IndexAnswers> {
        self.inner.answers.clone()
    }

    /// The target's markers: prefetching then follows the likely
    /// versions' dependencies.
    pub fn set_environment(&self, env: MarkerEnvironment) {
        let _ = self.inner.env.set(env);
    }

    /// What was fetched and what came from the cache.
    pub fn counts(&self) -> &Counts {
        &self.inner.answers.counts
    }

    pub fn index_display(&self) -> &str {
        &self.inner.answers.index_display
    }

    /// The project page of a normalized name, fetched once.
    pub fn project(&self, name: &str) -> Result<Arc<Project>, ResolveError> {
        self.inner.project(name)
    }

    /// The metadata of one wheel, fetched once (and cached on disk).
    pub fn metadata(
        &self,
        project: &str,
        file: &DistFile,
    ) -> Result<Arc<CoreMetadata>, ResolveError> {
        self.inner.answers.metadata(project, file)
    }

    /// The static metadata of an sdist, read from the sdist itself
    /// (downloaded once, sha256 checked, kept under the cache directory
    /// keyed by its sha256).
    pub fn sdist_metadata(
        &self,
        project: &str,
        file: &DistFile,
    ) -> Result<Arc<SdistMetadata>, ResolveError> {
        self.inner.answers.sdist_metadata(project, file)
    }

    /// Ask the workers to fetch a project page, and the metadata of its
    /// most likely wheel, if nobody has yet.
    pub fn prefetch(&self, name: &str) {
        self.inner.queue(name, None);
    }

    /// [`Self::prefetch`], the likely wheel the newest final release in
    /// `range`.
    pub fn prefetch_in(&self, name: &str, range: &Range) {
        self.inner.queue(name, Some(range));
    }

    /// The size of a file, by a HEAD request, for indexes that do not give
    /// `size`.
    pub fn content_length(&self, project: &str, url: &str) -> Result<u64, ResolveError> {
        self.inner
            .answers
            .http
            .content_length(url)
            .map_err(|e| net_error(project, e))?
            .filter(|&l| l > 0)
            .ok_or_else(|| ResolveError::BadResponse {
                package: project.to_owned(),
                url: net::redact(url),
                expected: "a Content-Length".into(),
                found: "none".into(),
            })
    }
}

fn net_error(package: &str, source: net::NetError) -> ResolveError {
    ResolveError::Net {
        package: package.to_owned(),
        source: Arc::new(source),
    }
}

impl IndexClient {
    /// Stop prefetching: queued names are skipped and the workers end
    /// (what they have in flight completes).
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Relaxed);
        // The only sender: the workers' `recv` ends.
        self.inner
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }
}

impl Drop for IndexClient {
    fn drop(&mut self) {
        self.close();
    }
}

fn slot<T>(map: &Mutex<HashMap<String, Slot<T>>>, key: &str) -> Slot<T> {
    let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
    m.entry(key.to_owned()).or_default().clone()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Inner {
    /// Queue a prefetch of `name`, once per name and client.
    fn queue(&self, name: &str, range: Option<&Range>) {
        if self.closed.load(Ordering::Relaxed) {
            return;
        }
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = jobs.as_ref() else { return };
        {
            let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
            if queued.len() >= MAX_PREFETCH || !queued.insert(name.to_owned()) {
                return;
            }
        }
        if self
            .projects
            .lock()
            .map(|m| m.contains_key(name))
            .unwrap_or(true)
        {
            return;
        }
        let _ = tx.send(Job::Project(name.to_owned(), range.cloned()));
    }

    fn prefetch(&self, name: &str, range: Option<&Range>) {
        let Ok(project) = self.project(name) else {
            return;
        };
        // The likely choice: the newest final release in the range with a
        // wheel (a pin's own version even when it is a pre-release).
        let pinned = range.and_then(|r| r.as_singleton());
        let likely = project
            .versions
            .iter()
            .rev()
            .filter(|e| range.is_none_or(|r| r.contains(&e.version)))
            .find(|e| e.wheel.is_some() && (pinned.is_some() || !e.version.any_prerelease()))
            .and_then(|e| e.wheel.clone());
        let Some(file) = likely else { return };
        let Ok(meta) = self.answers.metadata(name, &file) else {
            return;
        };
        let Some(env) = self.env.get() else { return };
        for req in &meta.requires_dist {
            if !req.marker.evaluate(env, &[]) {
                continue;
            }
            let dep = req.name.to_string();
            if dep == name {
                continue;
            }
            let range = match &req.version_or_url {
                None => Range::full(),
                Some(VersionOrUrl::VersionSpecifier(s)) => Range::from(s.clone()),
                Some(VersionOrUrl::Url(_)) => continue,
            };
            self.queue(&dep, Some(&range));
        }
    }

    fn project(&self, name: &str) -> Result<Arc<Project>, ResolveError> {
        let slot = slot(&self.projects, name);
        slot.get_or_init(|| self.read_project(name).map(Arc::new))
            .clone()
    }

    /// The page of `name` read for this client's target.
    fn read_project(&self, name: &str) -> Result<Project, ResolveError> {
        let page = self.answers.raw_page(name)?;
        match self.read_page(name, &page) {
            Err(e) if page.origin != Origin::Downloaded => {
                // A kept copy that does not read is not trusted: ask afresh.
                tracing::debug!(package = name, error = %e, "kept page does not parse; fetching it again");
                let page = self.answers.fetch_page(name, true)?;
                self.read_page(name, &page)
            }
            r => r,
        }
    }

    fn read_page(&self, name: &str, page: &RawPage) -> Result<Project, ResolveError> {
        let bad = |message: String| ResolveError::BadIndexPage {
            package: name.to_owned(),
            url: redact(&page.url),
            message,
        };
        let files = page.files.as_ref().map_err(|m| bad(m.clone()))?;
        select(name, files, &self.selector).map_err(bad)
    }
}

impl IndexAnswers {
    /// GET a whole answer (a page, a metadata file, an sdist of at most
    /// `limit` bytes): (the URL after redirects, Content-Type, body).
    fn get_bytes(
        &self,
        package: &str,
        url: &str,
        accept: Option<&str>,
        limit: Option<u64>,
    ) -> Result<(reqwest::Url, String, Vec<u8>), ResolveError> {
        match self.http.get(url, accept, limit) {
            Ok(doc) => Ok((doc.url, doc.content_type.unwrap_or_default(), doc.body)),
            Err(e) => Err(self.net_failure(package, url, e)),
        }
    }

    fn net_failure(&self, package: &str, url: &str, e: net::NetError) -> ResolveError {
        if e.status() == Some(404) {
            ResolveError::NotFound {
                package: package.to_owned(),
                index: self.index_display.clone(),
                url: net::redact(url),
            }
        } else {
            net_error(package, e)
        }
    }

    fn raw_page(&self, name: &str) -> Result<Arc<RawPage>, ResolveError> {
        let slot = slot(&self.raw_pages, name);
        slot.get_or_init(|| self.fetch_page(name, false).map(Arc::new))
            .clone()
    }

    /// The page of `name` from the index, or kept (`again`: the kept copy
    /// forgotten first).
    fn fetch_page(&self, name: &str, again: bool) -> Result<RawPage, ResolveError> {
        let url =
            self.index
                .join(&format!("{name}/"))
                .map_err(|e| ResolveError::InvalidIndexUrl {
                    url: self.index_display.clone(),
                    message: e.to_string(),
                })?;
        let Some(pages) = &self.pages else {
            let (final_url, content_type, body) =
                self.get_bytes(name, url.as_str(), Some(JSON_MEDIA_TYPE), None)?;
            self.counts.pages_downloaded.fetch_add(1, Ordering::Relaxed);
            return Ok(RawPage::read(
                name,
                final_url,
                &content_type,
                &body,
                Origin::Downloaded,
            ));
        };
        if again {
            pages.forget(url.as_str(), Some(JSON_MEDIA_TYPE));
        }
        let answer = pages
            .get(
                &self.http,
                url.as_str(),
                Some(JSON_MEDIA_TYPE),
                None,
                self.not_before,
            )
            .map_err(|e| self.net_failure(name, url.as_str(), e))?;
        let counter = match answer.origin {
            Origin::Fresh => &self.counts.pages_fresh,
            Origin::NotModified => &self.counts.pages_not_modified,
            Origin::Downloaded => &self.counts.pages_downloaded,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let content_type = answer.content_type.unwrap_or_default();
        Ok(RawPage::read(
            name,
            answer.url,
            &content_type,
            &answer.body,
            answer.origin,
        ))
    }

    fn metadata(&self, project: &str, file: &DistFile) -> Result<Arc<CoreMetadata>, ResolveError> {
        let slot = slot(&self.metadata, &file.url);
        slot.get_or_init(|| self.fetch_metadata(project, file).map(Arc::new))
            .clone()
    }

    fn cache_path(&self, file: &DistFile) -> Option<PathBuf> {
        let dir = self.cache_dir.as_ref()?;
        let sha = file.sha256.as_ref()?;
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(dir.join("metadata-v1").join(format!("{sha}.metadata")))
    }

    fn fetch_metadata(&self, project: &str, file: &DistFile) -> Result<CoreMetadata, ResolveError> {
        let bad = |message: String| ResolveError::BadMetadata {
            package: project.to_owned(),
            filename: file.filename.clone(),
            url: net::redact(&file.url),
            message,
        };
        let cache = self.cache_path(file);
        let cached = cache.as_ref().and_then(|p| fs::read(p).ok());
        let counter = if cached.is_some() {
            &self.counts.metadata_cached
        } else {
            &self.counts.metadata_fetched
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let text = match cached {
            Some(bytes) => bytes,
            None => {
                let bytes = if let Some(hash) = &file.metadata {
                    let url = format!("{}.metadata", file.url);
                    let (_, _, bytes) = self.get_bytes(project, &url, None, None)?;
                    if let Some(expected) = hash {
                        let found = sha256_hex(&bytes);
                        if &found != expected {
                            return Err(ResolveError::HashMismatch {
                                package: project.to_owned(),
                                url: net::redact(&url),
                                expected: expected.clone(),
                                found,
                            });
                        }
                    }
                    bytes
                } else {
                    self.metadata_from_wheel(project, file)?
                };
                if let Some(path) = &cache {
                    crate::io::write_atomically(path, &bytes).map_err(|e| ResolveError::Cache {
                        path: path.display().to_string(),
                        message: e.to_string(),
                    })?;
                }
                bytes
            }
        };
        let text = String::from_utf8_lossy(&text);
        let meta = parse_core_metadata(&text).map_err(bad)?;
        if normalize_name(&meta.name) != project {
            return Err(bad(format!(
                "its Name is {:?}, expected {project:?}",
                meta.name
            )));
        }
        Ok(meta)
    }

    fn sdist_metadata(
        &self,
        project: &str,
        file: &DistFile,
    ) -> Result<Arc<SdistMetadata>, ResolveError> {
        let slot = slot(&self.sdists, &file.url);
        slot.get_or_init(|| self.fetch_sdist_metadata(project, file).map(Arc::new))
            .clone()
    }

    fn fetch_sdist_metadata(
        &self,
        project: &str,
        file: &DistFile,
    ) -> Result<SdistMetadata, ResolveError> {
        let sdist_err = |e: SdistError| ResolveError::Sdist {
            package: project.to_owned(),
            message: e.to_string(),
        };
        let path = self.sdist_file(project, file)?;
        let files = sdist::metadata_files(&path, &file.filename).map_err(sdist_err)?;
        let meta = sdist::read_metadata(&file.filename, &files).map_err(sdist_err)?;
        if normalize_name(&meta.name) != project {
            return Err(self.bad_wheel(
                project,
                file,
                format!("its PKG-INFO Name is {:?}, expected {project:?}", meta.name),
            ));
        }
        Ok(meta)
    }

    /// The sdist on disk: `{cache}/sdists-v1/{sha256}/{filename}`, else in
    /// a scratch directory of this client; downloaded and verified once.
    fn sdist_file(&self, project: &str, file: &DistFile) -> Result<PathBuf, ResolveError> {
        let cache_err = |path: &Path, e: String| ResolveError::Cache {
            path: path.display().to_string(),
            message: e,
        };
        let sha = file
            .sha256
            .clone()
            .filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| ResolveError::MissingHash {
                package: project.to_owned(),
                filename: file.filename.clone(),
                index: self.index_display.clone(),
            })?;
        let root = match &self.cache_dir {
            Some(d) => d.join("sdists-v1"),
            None => self
                .scratch
                .get_or_init(|| tempfile::tempdir().map_err(|e| e.to_string()))
                .as_ref()
                .map_err(|e| cache_err(&std::env::temp_dir(), e.clone()))?
                .path()
                .to_path_buf(),
        };
        let dir = root.join(&sha);
        let path = dir.join(&file.filename);
        if path.is_file() {
            return Ok(path);
        }
        fs::create_dir_all(&dir).map_err(|e| cache_err(&dir, e.to_string()))?;
        let (_, _, bytes) = self.get_bytes(project, &file.url, None, file.size)?;
        let found = sha256_hex(&bytes);
        if found != sha {
            return Err(ResolveError::HashMismatch {
                package: project.to_owned(),
                url: net::redact(&file.url),
                expected: sha,
                found,
            });
        }
        crate::io::write_atomically(&path, &bytes).map_err(|e| cache_err(&path, e.to_string()))?;
        Ok(path)
    }

    /// `METADATA` out of the wheel itself: by HTTP Range requests when the
    /// server honours them, else by downloading the wheel (sha256 checked).
    fn metadata_from_wheel(&self, project: &str, file: &DistFile) -> Result<Vec<u8>, ResolveError> {
        let len = match file.size {
            Some(s) => Some(s),
            None => self.http.content_length(&file.url).ok().flatten(),
        };
        if let Some(len) = len.filter(|&l| l > 22) {
            let reader = RangeReader::new(&self.http, &file.url, len);
            match read_metadata_member(reader, project) {
                Ok(bytes) => return Ok(bytes),
                Err(MemberError::Io(e)) if e.kind() == io::ErrorKind::Unsupported => {}
                Err(MemberError::Io(e)) => {
                    return Err(match e.downcast::<net::NetError>() {
                        Ok(net) => net_error(project, net),
                        Err(e) => ResolveError::Http {
                            package: project.to_owned(),
                            url: net::redact(&file.url),
                            message: format!("reading the wheel by ranges: {e}"),
                        },
                    })
                }
                Err(MemberError::Bad(m)) => return Err(self.bad_wheel(project, file, m)),
            }
        }
        // Whole download, verified.
        let cache_err = |e: io::Error| ResolveError::Cache {
            path: std::env::temp_dir().display().to_string(),
            message: e.to_string(),
        };
        let mut tmp = net::HashingFile::new(tempfile::tempfile().map_err(cache_err)?);
        self.http
            .download(
                &file.url,
                &mut tmp,
                &net::Download {
                    size: file.size,
                    progress: None,
                    headers: None,
                },
            )
            .map_err(|e| net_error(project, e))?;
        let (found, _, mut tmp) = tmp.finish().map_err(cache_err)?;
        if let Some(expected) = &file.sha256 {
            if &found != expected {
                return Err(ResolveError::HashMismatch {
                    package: project.to_owned(),
                    url: net::redact(&file.url),
                    expected: expected.clone(),
                    found,
                });
            }
        }
        tmp.seek(SeekFrom::Start(0)).map_err(cache_err)?;
        read_metadata_member(tmp, project).map_err(|e| match e {
            MemberError::Io(e) => self.bad_wheel(project, file, e.to_string()),
            MemberError::Bad(m) => self.bad_wheel(project, file, m),
        })
    }

    fn bad_wheel(&self, project: &str, file: &DistFile, message: String) -> ResolveError {
        ResolveError::BadMetadata {
            package: project.to_owned(),
            filename: file.filename.clone(),
            url: net::redact(&file.url),
            message,
        }
    }
}

pub(super) enum MemberError {
    Io(io::Error),
    Bad(String),
}

/// The largest `METADATA` read out of a wheel.
const MAX_METADATA: u64 = 16 << 20;

/// The bytes of the wheel's top-level `*.dist-info/METADATA` (the one whose
/// name matches the project when there are several).
pub(super) fn read_metadata_member<R: Read + Seek>(
    reader: R,
    project: &str,
) -> Result<Vec<u8>, MemberError> {
    let mut zip = zip::ZipArchive::new(reader).map_err(|e| match e {
        zip::result::ZipError::Io(e) => MemberError::Io(e),
        e => MemberError::Bad(format!("not a zip archive: {e}")),
    })?;
    let candidates: Vec<String> = zip
        .file_names()
        .filter(|n| {
            n.split_once('/')
                .is_some_and(|(dir, rest)| rest == "METADATA" && dir.ends_with(".dist-info"))
        })
        .map(str::to_owned)
        .collect();
    let chosen = candidates
        .iter()
        .find(|n| {
            let dir = n
                .trim_end_matches("/METADATA")
                .trim_end_matches(".dist-info");
            let name = dir.rsplit_once('-').map_or(dir, |(n, _)| n);
            normalize_name(name) == project
        })
        .or(candidates.first())
        .ok_or_else(|| MemberError::Bad("it has no *.dist-info/METADATA".into()))?
        .clone();
    let member = zip.by_name(&chosen).map_err(|e| match e {
        zip::result::ZipError::Io(e) => MemberError::Io(e),
        e => MemberError::Bad(format!("{chosen}: {e}")),
    })?;
    let mut out = Vec::new();
    member
        .take(MAX_METADATA)
        .read_to_end(&mut out)
        .map_err(MemberError::Io)?;
    Ok(out)
}

/// Random access to a remote file by HTTP Range requests, in chunks kept in
/// memory. A server that answers a range with the whole file (200) makes
/// reads fail with [`io::ErrorKind::Unsupported`].
struct RangeReader<'a> {
    http: &'a net::Client,
    url: &'a str,
    len: u64,
    pos: u64,
    /// start → bytes
    chunks: BTreeMap<u64, Vec<u8>>,
}

const CHUNK: u64 = 512 * 1024;

impl<'a> RangeReader<'a> {
    fn new(http: &'a net::Client, url: &'a str, len: u64) -> Self {
        RangeReader {
            http,
            url,
            len,
            pos: 0,
            chunks: BTreeMap::new(),
        }
    }

    fn fetch(&mut self, pos: u64) -> io::Result<()> {
        // A full chunk around `pos`, shifted back from the end of the file
        // so the first read (the end of central directory) gets the
        // central directory with it.
        let start = pos.min(self.len.saturating_sub(CHUNK));
        let end = (start + CHUNK).min(self.len);
        let bytes = self
            .http
            .get_range(self.url, start, end)
            .map_err(io::Error::other)?
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::Unsupported, "the server ignores Range")
            })?;
        self.chunks.insert(start, bytes);
        Ok(())
    }

    fn find(&self, pos: u64) -> Option<(u64, &Vec<u8>)> {
        self.chunks
            .range(..=pos)
            .rev()
            .find(|(s, b)| pos < **s + b.len() as u64)
            .map(|(s, b)| (*s, b))
    }
}

impl Read for RangeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        if self.find(self.pos).is_none() {
            self.fetch(self.pos)?;
        }
        let pos = self.pos;
        let (start, bytes) = self
            .find(pos)
            .ok_or_else(|| io::Error::other("range fetch did not cover the position"))?;
        let off = (pos - start) as usize;
        let n = buf.len().min(bytes.len() - off);
        buf[..n].copy_from_slice(&bytes[off..off + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for RangeReader<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos =
            new.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before start"))?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdist_versions() {
        assert_eq!(
            sdist_version("foo-bar-1.0.tar.gz", "foo-bar"),
            Some(Version::from_str("1.0").unwrap())
        );
        assert_eq!(
            sdist_version("Foo_Bar-2.0rc1.zip", "foo-bar"),
            Some(Version::from_str("2.0rc1").unwrap())
        );
        assert_eq!(sdist_version("foo-1.0.tar.bz2", "foo"), None);
        assert_eq!(sdist_version("other-1.0.tar.gz", "foo"), None);
    }

    #[test]
    fn build_tags_order() {
        assert!(build_key(Some("2")) > build_key(Some("1local")));
        assert!(build_key(Some("1")) > build_key(None));
    }
}
