//! Realize: spec + lock → store items → image.
//!
//! 1. Pin the inputs (local files are added to the store, wheels fetched as
//!    fixed-output inputs) and check or write the lock.
//! 2. Realize the components (base files, copied files, installed wheels),
//!    the union check, one layer per component (grouped past the budget)
//!    and the image, each as a derivation whose realisation is looked up
//!    first: an unchanged step is never redone.
//!
//! The builders live in [`builders`]; what a component is, in
//! [`crate::assemble`].

pub mod builders;
pub mod models;
pub mod python_lock;
pub mod sdist;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use envbuild_store::nar::WrittenTree;
use envbuild_store::{Store, StoreError, StorePath};

use crate::assemble::{self, AssembleError, LAYER_BUDGET};
use crate::debian::archive::{self, ArchiveError, PinnedDeb};
use crate::fetch::{self, FetchError, FetchOptions};
use crate::lock::{lock_path, Lock, LockError, LockedInput};
use crate::oci::{self, LayerBlob, OciError, PathOverride};
use crate::plan::Derivation;
use crate::python::index_config::NoIndex;
use crate::python::resolve::{self, Arch, ResolveError, ResolveOptions, Target};
use crate::python::wheel::WheelError;
use crate::spec::{DebianBase, Spec, WheelSource};
use builders::{WheelFile, WheelInput};

#[derive(Debug, thiserror::Error)]
pub enum RealizeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    NoIndex(#[from] NoIndex),
    #[error(transparent)]
    Wheel(#[from] WheelError),
    #[error(transparent)]
    Pylock(#[from] crate::python::pylock::PylockError),
    #[error(transparent)]
    Requirements(#[from] crate::python::requirements_txt::RequirementsError),
    #[error(transparent)]
    Sdist(#[from] crate::python::sdist::SdistError),
    #[error(transparent)]
    Assemble(#[from] AssembleError),
    #[error(transparent)]
    Oci(#[from] OciError),
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} changed since it was pinned: sha256 {expected} expected, {found} found (run `envbuild lock` to pin the new file)",
        path.display()
    )]
    InputChanged {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("item {item} was built by {builder} but {what}")]
    BadItem {
        item: String,
        builder: &'static str,
        what: String,
    },
}

pub(crate) fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> RealizeError + 'a {
    move |source| RealizeError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone, Default)]
pub struct RealizeOptions {
    /// Fail instead of writing the lock when the spec's inputs changed.
    pub locked: bool,
    /// Never download.
    pub offline: bool,
    /// Draw progress bars on stderr.
    pub progress: bool,
    /// Resolve as if the index held nothing uploaded after this instant.
    pub exclude_newer: Option<resolve::Timestamp>,
    /// Pin only: do not download what the index already describes by hash
    /// and size (resolved wheels, .debs). Set by `envbuild lock`.
    pub lock_only: bool,
    /// Also realize the shell-only components (`[shell] packages`).
    pub shell: bool,
}

/// A component: a store item with an FHS tree, and the ownership/mode
/// overrides the spec gives its paths.
#[derive(Debug, Clone)]
pub struct Component {
    pub label: String,
    pub item: StorePath,
    /// Where the FHS tree starts inside the item ("" for the item itself).
    pub subdir: &'static str,
    pub overrides: BTreeMap<String, PathOverride>,
    /// Gets a layer of its own even past the layer budget.
    pub own_layer: bool,
}

impl Component {
    /// The component's FHS tree on disk.
    pub fn tree(&self, store: &Store) -> PathBuf {
        let item = store.physical_path(&self.item);
        if self.subdir.is_empty() {
            item
        } else {
            item.join(self.subdir)
        }
    }
}

/// A realized layer.
#[derive(Debug, Clone)]
pub struct Layer {
    pub item: StorePath,
    pub blob: LayerBlob,
    pub blob_path: PathBuf,
    pub components: Vec<String>,
}

/// What a realize produced.
#[derive(Debug)]
pub struct Realized {
    pub lock: Lock,
    pub lock_written: bool,
    pub components: Vec<Component>,
    pub layers: Vec<Layer>,
    pub image: oci::Image,
    pub image_item: StorePath,
    /// Models kept out of the image (`layer = "volume"`).
    pub volumes: Vec<models::Volume>,
    /// Steps built now / found already realized.
    pub built: usize,
    pub reused: usize,
}

/// Drives derivations against the store.
pub struct Realizer<'s> {
    pub store: &'s mut Store,
    pub built: usize,
    pub reused: usize,
    pub progress: bool,
    /// Outputs built and hashed but not yet in the store, when steps run
    /// batched (see [`Realizer::in_parallel_batched`]).
    batch: Option<Vec<PendingOutput>>,
}

/// A built output waiting for its batch's commit.
struct PendingOutput {
    /// Holds the output (and the gc lock) until the commit.
    scratch: envbuild_store::Scratch,
    prepared: envbuild_store::PreparedOutput,
    drv_hash: String,
}

impl<'s> Realizer<'s> {
    pub fn new(store: &'s mut Store, progress: bool) -> Self {
        Realizer {
            store,
            built: 0,
            reused: 0,
            progress,
            batch: None,
        }
    }

    /// Run `step` for every job in parallel (see [`on_store_workers`]);
    /// step counts are added to this realizer's. Each output is in the
    /// store when its step returns.
    pub fn in_parallel<J: Sync, T: Send>(
        &mut self,
        jobs: &[J],
        step: impl Fn(&mut Realizer, &J) -> Result<T, RealizeError> + Sync,
    ) -> Result<Vec<T>, RealizeError> {
        self.run_workers(jobs, None, false, step)
    }

    /// Like [`Realizer::in_parallel`], but jobs start largest `cost` first,
    /// and the outputs are committed to the store together when every step
    /// is done: one `syncfs` and one registration for the batch instead of
    /// one each, while a write-behind thread keeps the disk busy. Until
    /// this returns, a step finds the files of an output it realized at
    /// [`Realizer::output_path`], not at the item's physical path.
    pub fn in_parallel_batched<J: Sync, T: Send>(
        &mut self,
        jobs: &[J],
        cost: impl Fn(&J) -> u64,
        step: impl Fn(&mut Realizer, &J) -> Result<T, RealizeError> + Sync,
    ) -> Result<Vec<T>, RealizeError> {
        let mut order: Vec<usize> = (0..jobs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(cost(&jobs[i])));
        self.run_workers(jobs, Some(&order), true, step)
    }

    fn run_workers<J: Sync, T: Send>(
        &mut self,
        jobs: &[J],
        order: Option<&[usize]>,
        batched: bool,
        step: impl Fn(&mut Realizer, &J) -> Result<T, RealizeError> + Sync,
    ) -> Result<Vec<T>, RealizeError> {
        let built = std::sync::atomic::AtomicUsize::new(0);
        let reused = std::sync::atomic::AtomicUsize::new(0);
        let pending = std::sync::Mutex::new(Vec::new());
        let progress = self.progress;
        let root = self.store.root().to_path_buf();
        let write_behind = batched.then(|| self.store.write_behind());
        let out = on_store_workers(&root, jobs, order, |store, job| {
            let mut r = Realizer::new(store, progress);
            if batched {
                r.batch = Some(Vec::new());
            }
            let result = step(&mut r, job);
            built.fetch_add(r.built, std::sync::atomic::Ordering::Relaxed);
            reused.fetch_add(r.reused, std::sync::atomic::Ordering::Relaxed);
            if let Some(b) = r.batch.take() {
                pending.lock().expect("pending lock").extend(b);
            }
            result
        });
        drop(write_behind);
        let out = out?;
        self.commit(pending.into_inner().expect("pending lock"))?;
        self.built += built.into_inner();
        self.reused += reused.into_inner();
        Ok(out)
    }

    /// Where the files of `item`, realized by this realizer or before, are
    /// now: still in their scratch directory while a batch is pending,
    /// else in the store.
    pub fn output_path(&self, item: &StorePath) -> PathBuf {
        self.batch
            .iter()
            .flatten()
            .find(|p| p.prepared.path() == item)
            .map(|p| p.prepared.location().to_path_buf())
            .unwrap_or_else(|| self.store.physical_path(item))
    }

    /// Move a batch of built outputs into the store and record their
    /// realisations.
    fn commit(&mut self, pending: Vec<PendingOutput>) -> Result<(), RealizeError> {
        let mut scratches = Vec::with_capacity(pending.len());
        let mut prepared = Vec::with_capacity(pending.len());
        let mut hashes = Vec::with_capacity(pending.len());
        for p in pending {
            scratches.push(p.scratch);
            prepared.push(p.prepared);
            hashes.push(p.drv_hash);
        }
        let added = self.store.commit_outputs(prepared)?;
        for (hash, a) in hashes.iter().zip(&added) {
            self.store.add_realisation(hash, "out", &a.path)?;
        }
        drop(scratches);
        Ok(())
    }

    /// The output of `drv`: its realisation if there is one, else built by
    /// `build` into an empty directory `out` and added to the store (or,
    /// batched, hashed and left for the batch's commit).
    pub fn realize(
        &mut self,
        drv: &Derivation,
        references: &[StorePath],
        build: impl FnOnce(&mut Store, &Path) -> Result<(), RealizeError>,
    ) -> Result<StorePath, RealizeError> {
        self.realize_output(drv, references, |store, out| {
            build(store, out).map(|()| None)
        })
    }

    /// [`Realizer::realize`] for a builder that writes its output at `out`
    /// (which does not exist yet) with the store's
    /// [`TreeWriter`](envbuild_store::nar::TreeWriter): the tree's NAR hash
    /// was computed as it was written, so it is not read back.
    pub fn realize_written(
        &mut self,
        drv: &Derivation,
        references: &[StorePath],
        build: impl FnOnce(&mut Store, &Path) -> Result<WrittenTree, RealizeError>,
    ) -> Result<StorePath, RealizeError> {
        self.realize_output(drv, references, |store, out| build(store, out).map(Some))
    }

    fn realize_output(
        &mut self,
        drv: &Derivation,
        references: &[StorePath],
        build: impl FnOnce(&mut Store, &Path) -> Result<Option<WrittenTree>, RealizeError>,
    ) -> Result<StorePath, RealizeError> {
        let hash = drv.hash();
        if let Some(item) = self.store.realisation(&hash, "out")? {
            self.reused += 1;
            return Ok(item);
        }
        if self.progress {
            eprintln!("building {} ({})", drv.name, drv.builder);
        }
        let scratch = self.store.scratch(&drv.name)?;
        let out = scratch.path().join("out");
        let written = build(self.store, &out)?;
        self.built += 1;
        // The output is ours alone: moved into the store, not copied.
        let prepared = match written {
            Some(tree) => {
                self.store
                    .prepare_written_output(tree, &drv.name, references, Some(&hash))?
            }
            None => self
                .store
                .prepare_scratch_output(&out, &drv.name, references, Some(&hash))?,
        };
        let path = prepared.path().clone();
        if let Some(batch) = &mut self.batch {
            batch.push(PendingOutput {
                scratch,
                prepared,
                drv_hash: hash,
            });
            return Ok(path);
        }
        self.store.commit_outputs(vec![prepared])?;
        self.store.add_realisation(&hash, "out", &path)?;
        Ok(path)
    }
}

/// A store item name made from free text.
pub(crate) fn item_name(s: &str) -> String {
    let mut n: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+-._?=".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    n = n.trim_start_matches(['.', '-']).to_string();
    n.truncate(200);
    if n.is_empty() {
        "item".into()
    } else {
        n
    }
}

fn now_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Pinned inputs: their lock entries and store items.
struct Pinned {
    lock: Lock,
    /// (mirror-relative file name, item), sorted by package name.
    debs: Vec<(String, StorePath)>,
    /// The same for `[shell] packages` (fetched only for a shell).
    shell_debs: Vec<(String, StorePath)>,
    /// Wheels from `[python] requirements` or `[python] lock`, sorted by name.
    resolved: Vec<WheelInput>,
    /// Sdists from `[python] requirements` (no wheel fits the target).
    sdists: Vec<sdist::PinnedSdist>,
    files: Vec<StorePath>,
    /// `[[wheels]]`, in spec order.
    wheels: Vec<WheelInput>,
    models: Vec<models::PinnedModel>,
}

/// What `[python] requirements` pin: (wheel file name, item) and sdists.
type PinnedPython = (Vec<WheelInput>, Vec<sdist::PinnedSdist>);

/// A wheel as the lock pins it: file name, sha256 (hex), size.
type LockedWheel = (String, String, u64);

/// One pinned file to fetch.
struct FetchJob {
    url: String,
    sha256: String,
    name: String,
}

/// Run `step` for every job on up to four workers, each with its own store
/// handle (a SQLite connection is not shared between threads), starting
/// jobs in `order` (default: job order); results in job order. After a failure the remaining jobs are skipped and the first
/// failure in job order is returned.
fn on_store_workers<J: Sync, T: Send>(
    root: &Path,
    jobs: &[J],
    order: Option<&[usize]>,
    step: impl Fn(&mut Store, &J) -> Result<T, RealizeError> + Sync,
) -> Result<Vec<T>, RealizeError> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let workers = jobs.len().clamp(1, 4);
    let stores = (0..workers)
        .map(|_| Store::open(root))
        .collect::<Result<Vec<_>, _>>()?;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<Result<T, RealizeError>>>> =
        std::sync::Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for mut store in stores {
            let (next, results, step) = (&next, &results, &step);
            s.spawn(move || loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= jobs.len() {
                    return;
                }
                let i = order.map_or(n, |o| o[n]);
                let out = step(&mut store, &jobs[i]);
                if out.is_err() {
                    next.store(jobs.len(), std::sync::atomic::Ordering::Relaxed);
                }
                results.lock().expect("results lock")[i] = Some(out);
            });
        }
    });
    let mut out = Vec::with_capacity(jobs.len());
    for r in results
        .into_inner()
        .expect("results lock")
        .into_iter()
        .flatten()
    {
        out.push(r?);
    }
    if out.len() != jobs.len() {
        return Err(RealizeError::BadItem {
            item: "parallel step".into(),
            builder: "realize",
            what: "stopped after an earlier step failed".into(),
        });
    }
    Ok(out)
}

/// Fetch `jobs` in parallel; results in job order.
fn fetch_parallel(
    store: &Store,
    jobs: &[FetchJob],
    opts: &FetchOptions,
) -> Result<Vec<fetch::Fetched>, RealizeError> {
    on_store_workers(store.root(), jobs, None, |st, j| {
        Ok(fetch::fetch(st, &j.url, &j.sha256, &j.name, opts)?)
    })
}

/// The target's glibc: the spec's, else the base's libc6 (from the
/// fetched .debs, or the `deb:` lock entries when pinning only), else 2.17
/// (manylinux2014).
fn target_glibc(spec: &Spec, debs: &[(String, StorePath)], inputs: &[LockedInput]) -> (u32, u32) {
    glibc_of(
        spec,
        debs.iter().map(|(f, _)| f.as_str()).chain(
            inputs
                .iter()
                .filter(|i| i.id.starts_with("deb:"))
                .map(|i| i.source.as_str()),
        ),
    )
}

/// [`target_glibc`] from the base's .deb file names.
pub(crate) fn glibc_of<'a>(spec: &Spec, deb_files: impl Iterator<Item = &'a str>) -> (u32, u32) {
    if let Some(g) = spec.python.glibc {
        return g;
    }
    deb_files
        .filter_map(|f| f.rsplit('/').next()?.strip_prefix("libc6_"))
        .filter_map(|v| {
            let (maj, rest) = v.split_once('.')?;
            let min: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            Some((maj.parse().ok()?, min.parse().ok()?))
        })
        .next()
        .unwrap_or((2, 17))
}

/// The wheels `[python] requirements` resolve to: from the lock when it was
/// made for the same request and target, else resolved against the index.
/// The lock names files, not URLs: a missing file is found again through
/// whatever index the configuration names at fetch time.
fn pin_python(
    store: &mut Store,
    spec: &Spec,
    glibc: (u32, u32),
    old: Option<&Lock>,
    opts: &RealizeOptions,
    fetch_opts: &FetchOptions,
    inputs: &mut Vec<LockedInput>,
) -> Result<PinnedPython, RealizeError> {
    let py = &spec.python;
    let request = format!(
        "cp{}{} x86_64 glibc {}.{}: {}",
        py.version.0,
        py.version.1,
        glibc.0,
        glibc.1,
        py.requirements.join("; ")
    );
    let request_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(request.as_bytes()));
    let locked: Option<Vec<LockedWheel>> = old
        .and_then(|l| l.pins_for("python:request", &request, "pypi:"))
        .map(|pins| {
            pins.iter()
                .map(|p| (p.source.to_string(), p.sha256.to_string(), p.size))
                .collect()
        });
    let target = Target::cpython_glibc(py.version, Arch::X86_64, glibc);
    let resolve_now = || -> Result<Vec<resolve::Pinned>, RealizeError> {
        if fetch_opts.offline {
            return Err(FetchError::Offline {
                url: "the package index (no lock for these requirements)".into(),
            }
            .into());
        }
        let (index, _from) = crate::python::index_config::index_url(py.index.as_deref())?;
        let mut ro = ResolveOptions::new(index, target.clone());
        ro.exclude_newer = opts.exclude_newer;
        ro.cache_dir = Some(store.cache_dir("pypi-metadata")?);
        Ok(resolve::resolve(&py.requirements, &ro)?.packages)
    };
    let locked_sdists = old.filter(|_| locked.is_some()).map(sdist::from_lock);
    let mut sdists: Vec<sdist::LockedSdist> = locked_sdists.clone().unwrap_or_default();
    let (pins, urls): (Vec<LockedWheel>, BTreeMap<String, String>) = match locked {
        Some(p) => {
            let sdist_files = sdists
                .iter()
                .flat_map(|s| std::iter::once(&s.sdist).chain(&s.build))
                .map(|f| (f.filename.clone(), f.sha256.clone(), f.size));
            let all: Vec<LockedWheel> = p.iter().cloned().chain(sdist_files).collect();
            let missing = all.iter().any(|(_, sha, _)| {
                store
                    .realisation(&format!("fetch:sha256:{sha}"), "out")
                    .ok()
                    .flatten()
                    .is_none()
            });
            let urls = if missing {
                if fetch_opts.offline {
                    return Err(FetchError::Offline {
                        url: "wheels pinned in the lock".into(),
                    }
                    .into());
                }
                let (index, _from) = crate::python::index_config::index_url(py.index.as_deref())?;
                let mut names: Vec<String> = all.iter().map(|(f, _, _)| f.clone()).collect();
                names.sort();
                names.dedup();
                resolve::locate_wheels(&index, &target, &names)?
            } else {
                BTreeMap::new()
            };
            (p, urls)
        }
        None => {
            let r = resolve_now()?;
            sdists = sdist::from_resolution(&r);
            let urls = r
                .iter()
                .flat_map(|w| {
                    std::iter::once(w)
                        .chain(w.sdist.iter().flat_map(|s| s.build_wheels.iter()))
                        .map(|w| (w.filename.clone(), w.url.clone()))
                })
                .collect();
            (
                r.into_iter()
                    .filter(|w| w.sdist.is_none())
                    .map(|w| (w.filename, w.sha256, w.size))
                    .collect(),
                urls,
            )
        }
    };
    inputs.push(LockedInput {
        id: "python:request".into(),
        source: request,
        hash: format!("sha256:{request_hash}"),
        size: (pins.len() + sdists.len()) as u64,
    });
    let jobs: Vec<FetchJob> = pins
        .iter()
        .map(|(filename, sha, _)| FetchJob {
            url: urls
                .get(filename)
                .cloned()
                .unwrap_or_else(|| format!("(no index URL for {filename})")),
            sha256: sha.clone(),
            name: item_name(filename),
        })
        .collect();
    if opts.lock_only {
        // The index gave every file's sha256 and size: nothing to download.
        for (filename, sha, size) in pins {
            inputs.push(LockedInput {
                id: format!("pypi:{filename}"),
                source: filename,
                hash: format!("sha256:{sha}"),
                size,
            });
        }
        sdist::lock_entries(&sdists, inputs);
        return Ok((Vec::new(), Vec::new()));
    }
    let job = |f: &sdist::LockedFile| FetchJob {
        url: urls
            .get(&f.filename)
            .cloned()
            .unwrap_or_else(|| format!("(no index URL for {})", f.filename)),
        sha256: f.sha256.clone(),
        name: item_name(&f.filename),
    };
    let sdist_jobs: Vec<FetchJob> = sdists
        .iter()
        .flat_map(|s| std::iter::once(&s.sdist).chain(&s.build))
        .map(job)
        .collect();
    let mut sdist_items = fetch_parallel(store, &sdist_jobs, fetch_opts)?.into_iter();
    let mut pinned_sdists = Vec::new();
    for s in &sdists {
        let item = sdist_items.next().expect("one fetch per file").item;
        let build_wheels = s
            .build
            .iter()
            .map(|b| WheelInput {
                filename: b.filename.clone(),
                sha256: b.sha256.clone(),
                size: b.size,
                file: WheelFile::Item(sdist_items.next().expect("one fetch per file").item),
            })
            .collect();
        pinned_sdists.push(sdist::PinnedSdist {
            filename: s.sdist.filename.clone(),
            item,
            build_wheels,
        });
    }
    sdist::lock_entries(&sdists, inputs);
    let fetched = fetch_parallel(store, &jobs, fetch_opts)?;
    let mut out = Vec::new();
    for ((filename, sha, _), f) in pins.into_iter().zip(fetched) {
        inputs.push(LockedInput {
            id: format!("pypi:{filename}"),
            source: filename.clone(),
            hash: format!("sha256:{sha}"),
            size: f.size,
        });
        out.push(WheelInput {
            filename,
            sha256: sha,
            size: f.size,
            file: WheelFile::Item(f.item),
        });
    }
    Ok((out, pinned_sdists))
}

/// One set of Debian packages to pin: the base, or the shell's extra
/// packages (resolved together with the base's, less what the base pins).
struct DebRequest<'a> {
    base: &'a DebianBase,
    /// The packages whose closure is pinned.
    packages: Vec<String>,
    /// Package names pinned elsewhere (the base's, for the shell's set).
    exclude: std::collections::BTreeSet<String>,
    /// The request as the lock records it.
    request: String,
    /// Lock ids: `<kind>:request` and `<prefix>:<package>`.
    request_id: &'static str,
    prefix: &'static str,
    /// For messages: "[base]", "[shell] packages".
    what: &'static str,
}

impl<'a> DebRequest<'a> {
    fn base(base: &'a DebianBase) -> Self {
        DebRequest {
            base,
            packages: base.packages.clone(),
            exclude: Default::default(),
            request: format!(
                "{}/{}: {}",
                base.suite,
                base.component,
                base.packages.join(" ")
            ),
            request_id: "debian:request",
            prefix: "deb",
            what: "[base]",
        }
    }

    fn shell(base: &'a DebianBase, shell: &[String], base_pins: &[PinnedDeb]) -> Self {
        let mut packages = base.packages.clone();
        packages.extend(shell.iter().cloned());
        packages.sort();
        packages.dedup();
        DebRequest {
            base,
            packages,
            exclude: base_pins.iter().map(|d| d.name.clone()).collect(),
            request: format!(
                "{}/{}: {} + shell: {}",
                base.suite,
                base.component,
                base.packages.join(" "),
                shell.join(" ")
            ),
            request_id: "shell-debian:request",
            prefix: "shell-deb",
            what: "[shell] packages",
        }
    }
}

/// The packages pinned, and (with fetch) each .deb's file name and item.
type PinnedDebs = (Vec<PinnedDeb>, Vec<(String, StorePath)>);

/// Pin a set of Debian packages: from the lock when it was made for the
/// same request, else resolved against the archive (network). With `fetch`,
/// the .debs are fetched (once per sha256) and returned as (mirror-relative
/// file name, item); without, only the lock entries are written.
fn pin_debian(
    store: &mut Store,
    req: &DebRequest,
    old: Option<&Lock>,
    fetch_opts: &FetchOptions,
    fetch: bool,
    inputs: &mut Vec<LockedInput>,
) -> Result<PinnedDebs, RealizeError> {
    let base = req.base;
    let request = req.request.clone();
    let request_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(request.as_bytes()));
    let item_prefix = format!("{}:", req.prefix);
    let locked: Option<Vec<PinnedDeb>> = old
        .and_then(|l| l.pins_for(req.request_id, &request, &item_prefix))
        .map(|pins| {
            pins.iter()
                .map(|p| PinnedDeb {
                    name: p.key.to_string(),
                    version: String::new(),
                    filename: p.source.to_string(),
                    sha256: p.sha256.to_string(),
                    size: p.size,
                })
                .collect()
        });
    let mirror = || archive::mirror_for(base.mirror.as_deref(), &base.suite);
    let pinned = match locked {
        Some(p) => p,
        None => {
            if fetch_opts.offline {
                return Err(FetchError::Offline {
                    url: format!(
                        "the {} archive index (no lock for this {})",
                        base.suite, req.what
                    ),
                }
                .into());
            }
            let mirror = mirror()?;
            let keyring = archive::keyring_for(base.keyring.as_deref());
            let scratch = store.scratch("debian-release")?;
            let release = archive::fetch_release(&mirror, &base.suite, &keyring, scratch.path())?;
            let index = archive::fetch_index(
                store,
                &mirror,
                &base.suite,
                &base.component,
                &release,
                fetch_opts,
            )?;
            index
                .closure(&req.packages)?
                .into_iter()
                .filter(|d| !req.exclude.contains(&d.name))
                .collect()
        }
    };
    inputs.push(LockedInput {
        id: req.request_id.into(),
        source: request,
        hash: format!("sha256:{request_hash}"),
        size: pinned.len() as u64,
    });
    if !fetch {
        // Packages gave every .deb's sha256 and size: nothing to download.
        for d in &pinned {
            inputs.push(LockedInput {
                id: format!("{}:{}", req.prefix, d.name),
                source: d.filename.clone(),
                hash: format!("sha256:{}", d.sha256),
                size: d.size,
            });
        }
        return Ok((pinned, Vec::new()));
    }
    let mirror_url = pinned
        .iter()
        .any(|d| {
            store
                .realisation(&format!("fetch:sha256:{}", d.sha256), "out")
                .ok()
                .flatten()
                .is_none()
        })
        .then(mirror)
        .transpose()?;
    let jobs: Vec<FetchJob> = pinned
        .iter()
        .map(|d| FetchJob {
            url: format!("{}/{}", mirror_url.as_deref().unwrap_or(""), d.filename),
            sha256: d.sha256.clone(),
            name: item_name(d.filename.rsplit('/').next().unwrap_or(&d.filename)),
        })
        .collect();
    let results = fetch_parallel(store, &jobs, fetch_opts)?;
    let mut out = Vec::new();
    for (d, fetched) in pinned.iter().zip(results) {
        inputs.push(LockedInput {
            id: format!("{}:{}", req.prefix, d.name),
            source: d.filename.clone(),
            hash: format!("sha256:{}", d.sha256),
            size: fetched.size,
        });
        out.push((d.filename.clone(), fetched.item));
    }
    Ok((pinned, out))
}

/// Add a local file or tree to the store, reading it only when the hash
/// cache does not know it unchanged: (item, NAR sha256 hex, NAR size).
fn add_local_cached(
    store: &mut Store,
    src: &Path,
    name: &str,
) -> Result<(StorePath, String, u64), RealizeError> {
    let mut added = None;
    let value = store.cached_hash(src, "nar-sha256+size", |s| {
        let a = s.add_path(src, name)?;
        let v = format!("{}:{}", a.nar.to_hex(), a.nar.size);
        added = Some(a.path);
        Ok::<_, RealizeError>(v)
    })?;
    let bad = || RealizeError::BadItem {
        item: src.display().to_string(),
        builder: "hash-cache",
        what: format!("has a malformed cached value {value:?}"),
    };
    let (hex_part, size) = value.split_once(':').ok_or_else(bad)?;
    let size: u64 = size.parse().map_err(|_| bad())?;
    let mut sha = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut sha).map_err(|_| bad())?;
    if let Some(item) = added {
        return Ok((item, hex_part.to_string(), size));
    }
    let path = StorePath::source(name, &sha, &[], false).map_err(StoreError::from)?;
    if store.is_valid(&path)? {
        return Ok((path, hex_part.to_string(), size));
    }
    // Known but collected since: add it again (hashing it again too).
    let a = store.add_path(src, name)?;
    Ok((a.path, a.nar.to_hex(), a.nar.size))
}

fn pin_inputs(
    store: &mut Store,
    spec: &Spec,
    old: Option<&Lock>,
    opts: &RealizeOptions,
) -> Result<Pinned, RealizeError> {
    let mut inputs = Vec::new();
    let fetch_opts = FetchOptions {
        offline: opts.offline,
        progress: opts.progress,
        ..FetchOptions::default()
    };
    let (debs, shell_debs) = match &spec.debian {
        Some(base) => {
            let (base_pins, debs) = pin_debian(
                store,
                &DebRequest::base(base),
                old,
                &fetch_opts,
                !opts.lock_only,
                &mut inputs,
            )?;
            // The shell's packages are always pinned (the lock covers the
            // shell too) but fetched only for a shell.
            let shell_debs = if spec.shell.packages.is_empty() {
                Vec::new()
            } else {
                let req = DebRequest::shell(base, &spec.shell.packages, &base_pins);
                let fetch = opts.shell && !opts.lock_only;
                pin_debian(store, &req, old, &fetch_opts, fetch, &mut inputs)?.1
            };
            (debs, shell_debs)
        }
        None => (Vec::new(), Vec::new()),
    };
    let (resolved, sdists) = if spec.python.lock.is_some() {
        let glibc = target_glibc(spec, &debs, &inputs);
        (
            python_lock::pin_python_lock(store, spec, glibc, old, opts, &fetch_opts, &mut inputs)?,
            Vec::new(),
        )
    } else if spec.python.requirements.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        let glibc = target_glibc(spec, &debs, &inputs);
        pin_python(store, spec, glibc, old, opts, &fetch_opts, &mut inputs)?
    };
    let mut files = Vec::new();
    for f in &spec.files {
        let name = item_name(
            Path::new(&f.src)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .as_deref()
                .unwrap_or("file"),
        );
        let (item, nar_hex, nar_size) = add_local_cached(store, &f.src_abs, &name)?;
        inputs.push(LockedInput {
            id: format!("files:{}", f.dst),
            source: f.src.clone(),
            hash: format!("nar-sha256:{nar_hex}"),
            size: nar_size,
        });
        files.push(item);
    }
    // Local wheels are hashed (in parallel, through the hash cache) but
    // not copied: they are unpacked in place. URLs are fetched.
    let local: Vec<&PathBuf> = spec
        .wheels
        .iter()
        .filter_map(|w| match &w.source {
            WheelSource::Path { abs, .. } => Some(abs),
            WheelSource::Url { .. } => None,
        })
        .collect();
    let mut local_hashes = on_store_workers(store.root(), &local, None, |st, abs| {
        let sha = st.cached_hash(abs, "sha256", |_| builders::sha256_file(abs))?;
        let size = std::fs::metadata(abs)
            .map_err(io_err("reading", abs))?
            .len();
        Ok((sha, size))
    })?
    .into_iter();
    let mut wheels = Vec::new();
    for w in &spec.wheels {
        let (source, wheel) = match &w.source {
            WheelSource::Path { path, abs } => {
                let (sha256, size) = local_hashes.next().expect("one hash per local wheel");
                let file = WheelFile::Local(abs.clone());
                (path.clone(), (sha256, size, file))
            }
            WheelSource::Url { url, sha256 } => {
                let name = item_name(&w.filename);
                let fetched = fetch::fetch(store, url, sha256, &name, &fetch_opts)?;
                let file = WheelFile::Item(fetched.item);
                (url.clone(), (sha256.clone(), fetched.size, file))
            }
        };
        let (sha256, size, file) = wheel;
        inputs.push(LockedInput {
            id: format!("wheel:{}", w.filename),
            source,
            hash: format!("sha256:{sha256}"),
            size,
        });
        wheels.push(WheelInput {
            filename: w.filename.clone(),
            sha256,
            size,
            file,
        });
    }
    let models = models::pin_models(store, spec, old, opts, &fetch_opts, &mut inputs)?;
    let epoch = spec
        .source_date_epoch
        .or(old.map(|l| l.source_date_epoch))
        .unwrap_or_else(now_epoch);
    Ok(Pinned {
        lock: Lock::new(epoch, inputs),
        debs,
        shell_debs,
        resolved,
        sdists,
        files,
        wheels,
        models,
    })
}

/// `envbuild lock`: pin every input and write the lock beside the spec.
pub fn lock(
    store: &mut Store,
    spec: &Spec,
    opts: &RealizeOptions,
) -> Result<(Lock, bool), RealizeError> {
    let path = lock_path(&spec.path);
    let old = Lock::read(&path)?;
    let opts = RealizeOptions {
        lock_only: true,
        ..opts.clone()
    };
    let pinned = pin_inputs(store, spec, old.as_ref(), &opts)?;
    let changed = old.as_ref() != Some(&pinned.lock);
    if changed {
        pinned.lock.write(&path)?;
    }
    Ok((pinned.lock, changed))
}

/// The closure of a spec: its lock and its components, realized in the
/// store, in rootfs order. What an image, a shell and `envbuild run` share.
#[derive(Debug)]
pub struct Closure {
    pub lock: Lock,
    pub lock_written: bool,
    pub components: Vec<Component>,
    /// Models kept out of the image (`layer = "volume"`).
    pub volumes: Vec<models::Volume>,
    /// Components of the shell only (`[shell] packages`, with
    /// [`RealizeOptions::shell`]), after `components` in rootfs order.
    pub shell_components: Vec<Component>,
    /// Steps built now / found already realized.
    pub built: usize,
    pub reused: usize,
}

/// Pin the inputs (checking or writing the lock) and realize the
/// components and their union check: everything but layers and image.
pub fn realize_closure(
    store: &mut Store,
    spec: &Spec,
    opts: &RealizeOptions,
) -> Result<Closure, RealizeError> {
    let path = lock_path(&spec.path);
    let old = Lock::read(&path)?;
    if opts.locked && old.is_none() {
        return Err(LockError::Missing {
            spec: spec.path.clone(),
            lock: path,
        }
        .into());
    }
    let pinned = pin_inputs(store, spec, old.as_ref(), opts)?;
    let mut lock_written = false;
    match &old {
        Some(o) if *o == pinned.lock => {}
        Some(o) if opts.locked => {
            return Err(LockError::Changed {
                spec: spec.path.clone(),
                lock: path,
                changes: o.differences(&pinned.lock),
            }
            .into())
        }
        _ => {
            pinned.lock.write(&path)?;
            lock_written = true;
        }
    }
    let mut r = Realizer::new(store, opts.progress);

    // Components, in rootfs order: Debian packages, base files, wheels,
    // models, then app files.
    let mut components = r.in_parallel_batched(
        &pinned.debs,
        |_| 0,
        |r, (filename, item)| builders::unpack_deb(r, filename, item),
    )?;
    components.push(builders::base_files(&mut r, spec)?);
    let wheels: Vec<&WheelInput> = pinned.resolved.iter().chain(&pinned.wheels).collect();
    components.extend(r.in_parallel_batched(
        &wheels,
        |w| w.size,
        |r, w| builders::unpack_wheel(r, spec, w),
    )?);
    if !pinned.sdists.is_empty() {
        // Built with the base (Debian packages and base files) only.
        let base = components[..pinned.debs.len() + 1].to_vec();
        let epoch = pinned.lock.source_date_epoch;
        components.extend(sdist::build_sdists(
            &mut r,
            spec,
            &base,
            &pinned.sdists,
            epoch,
        )?);
    }
    let (model_components, volumes) = models::components(&mut r, spec, &pinned.models)?;
    components.extend(model_components);
    for (f, item) in spec.files.iter().zip(&pinned.files) {
        components.push(builders::copy_files(&mut r, f, item)?);
    }
    builders::union_check(&mut r, &components)?;
    {
        let trees: Vec<PathBuf> = components.iter().map(|c| c.tree(r.store)).collect();
        let mut overrides: Vec<_> = components
            .iter_mut()
            .map(|c| std::mem::take(&mut c.overrides))
            .collect();
        assemble::share_directory_overrides(&trees, &mut overrides);
        for (c, o) in components.iter_mut().zip(overrides) {
            c.overrides = o;
        }
    }
    // The shell's own packages, less any .deb the image already has.
    let image_items: std::collections::BTreeSet<&StorePath> =
        components.iter().map(|c| &c.item).collect();
    let shell_debs: Vec<(String, StorePath)> = pinned
        .shell_debs
        .iter()
        .filter(|(_, item)| !image_items.contains(item))
        .cloned()
        .collect();
    let mut shell_components = r.in_parallel_batched(
        &shell_debs,
        |_| 0,
        |r, (filename, item)| builders::unpack_deb(r, filename, item),
    )?;
    shell_components.retain(|c| !image_items.contains(&c.item));
    if !shell_components.is_empty() {
        let all: Vec<Component> = components
            .iter()
            .chain(&shell_components)
            .cloned()
            .collect();
        builders::union_check(&mut r, &all)?;
    }
    let (built, reused) = (r.built, r.reused);
    Ok(Closure {
        lock: pinned.lock,
        lock_written,
        components,
        shell_components,
        volumes,
        built,
        reused,
    })
}

/// `envbuild realize`: the closure, its layers and the image (export is
/// separate).
pub fn realize(
    store: &mut Store,
    spec: &Spec,
    opts: &RealizeOptions,
) -> Result<Realized, RealizeError> {
    let closure = realize_closure(store, spec, opts)?;
    let epoch = closure.lock.source_date_epoch;
    let components = closure.components;
    let mut r = Realizer::new(store, opts.progress);
    r.built = closure.built;
    r.reused = closure.reused;

    // Layers.
    let sizes: Vec<(u64, bool)> = components
        .iter()
        .map(|c| Ok((r.store.path_info(&c.item)?.nar_size, c.own_layer)))
        .collect::<Result<_, StoreError>>()?;
    let compression = builders::compression(&spec.image.compression);
    // Layers compress independently: the largest first, so that a big
    // layer does not start last and keep one worker busy alone.
    let groups = assemble::group_layers(&sizes, LAYER_BUDGET);
    let group_size = |g: &Vec<usize>| g.iter().map(|&i| sizes[i].0).sum::<u64>();
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by_key(|&g| std::cmp::Reverse(group_size(&groups[g])));
    let built = r.in_parallel(&order, |r, &g| {
        let members: Vec<&Component> = groups[g].iter().map(|&i| &components[i]).collect();
        Ok((g, builders::layer(r, &members, epoch, compression)?))
    })?;
    let mut layers: Vec<Option<Layer>> = (0..groups.len()).map(|_| None).collect();
    for (g, layer) in built {
        layers[g] = Some(layer);
    }
    let layers: Vec<Layer> = layers.into_iter().flatten().collect();
    let (image, image_item) = builders::image(&mut r, spec, &layers, epoch)?;
    let (built, reused) = (r.built, r.reused);
    Ok(Realized {
        lock: closure.lock,
        lock_written: closure.lock_written,
        components,
        layers,
        image,
        image_item,
        volumes: closure.volumes,
        built,
        reused,
    })
}
