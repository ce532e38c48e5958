//! Python distributions: `[python] requirements` (resolved against the
//! configured index, [`crate::python::resolve`]), `[python] lock` (a PEP 751
//! `pylock.toml` or a hash-checked `requirements.txt`, [`lockfile`]) and
//! `[[wheels]]` (a wheel by path or URL).
//!
//! Wheels are pinned by file name, sha256 and size, and found again
//! through the index (or the lock file's location) at fetch time. An sdist
//! (no wheel fits the target) is pinned with the wheels its build needs;
//! it is built by `build-sdist` in the sandbox with the base's interpreter,
//! and the wheel it gives is installed like any other by `unpack-wheel`.

pub mod lockfile;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{PinContext, PlanContext, Source, SourceError, Upgrade};
use crate::fetch::{self, FetchError};
use crate::lock::{DistPin, Lock, PinnedFile, PythonLock, SdistPin, WheelPin};
use crate::plan::{item_name, Builder, Input, InputKind, Origin, Plan, Ref, StepId};
use crate::python::resolve::{self, Arch, ResolveOptions, Target};
use crate::python::sdist::SdistError;
use crate::python::wheel::{InstallScheme, WheelFilename};
use crate::spec::{Spec, WheelSource};

pub struct PythonSource;

/// The target the spec's wheels are chosen for: CPython of the spec's
/// version on x86_64 with the base's glibc.
pub fn target(spec: &Spec, lock: &Lock) -> Target {
    Target::cpython_glibc(spec.python.version, Arch::X86_64, glibc(spec, lock))
}

/// The target's glibc: the spec's, else the base's libc6.
fn glibc(spec: &Spec, lock: &Lock) -> (u32, u32) {
    super::glibc_of(spec, lock.base_deb_files())
}

/// The request `[python] requirements` are pinned for.
fn requirements_request(spec: &Spec, g: (u32, u32)) -> String {
    let py = &spec.python;
    format!(
        "cp{}{} x86_64 glibc {}.{}: {}",
        py.version.0,
        py.version.1,
        g.0,
        g.1,
        py.requirements.join("; ")
    )
}

/// A wheel pin by its file name (name and version read from it).
pub(crate) fn dist_pin(file: PinnedFile) -> Result<DistPin, SourceError> {
    let w = WheelFilename::parse(&file.file)?;
    Ok(DistPin {
        name: w.name,
        version: w.version,
        file,
    })
}

impl Source for PythonSource {
    fn pin(&self, cx: &mut PinContext, lock: &mut Lock) -> Result<(), SourceError> {
        let spec = cx.spec;
        let glibc = glibc(spec, lock);
        if spec.python.lock.is_some() {
            lock.python = Some(lockfile::pin(cx, glibc)?);
        } else if !spec.python.requirements.is_empty() {
            lock.python = Some(pin_requirements(cx, glibc)?);
        }
        pin_wheels(cx, lock)
    }

    fn plan(&self, cx: &mut PlanContext, lock: &Lock, plan: &mut Plan) -> Result<(), SourceError> {
        let spec = cx.spec;
        let target = target(spec, lock);
        let install = Install::new(spec, lock, &cx.base);
        let install = &install;
        let mut unpacked: BTreeMap<String, StepId> = BTreeMap::new();
        let mut wheel_steps = |plan: &mut Plan, file: &PinnedFile, origin: Origin| {
            if let Some(&s) = unpacked.get(&file.sha256) {
                return s;
            }
            let input = fetch_input(plan, file, origin);
            let s = install.step(plan, &file.file, input);
            unpacked.insert(file.sha256.clone(), s);
            s
        };
        let py = lock.python.as_ref();
        let origins = match (&spec.python.lock, py) {
            (Some(_), Some(p)) => lockfile::origins(spec, &target, p)?,
            _ => BTreeMap::new(),
        };
        let index_origin = || Origin::PythonIndex {
            index: spec.python.index.clone(),
            target: target.clone(),
        };
        for w in py.map(|p| &p.wheels[..]).unwrap_or_default() {
            let step = match origins.get(&w.file.file) {
                Some(lockfile::WheelOrigin::InPlace(path)) => {
                    let input = in_place_input(plan, &w.file, path);
                    install.step(plan, &w.file.file, input)
                }
                Some(lockfile::WheelOrigin::Fetch(origin)) => {
                    wheel_steps(plan, &w.file, origin.clone())
                }
                None => wheel_steps(plan, &w.file, index_origin()),
            };
            plan.components.push(step);
        }
        for w in &spec.wheels {
            let pin = lock
                .wheels
                .iter()
                .find(|p| p.file.file == w.filename)
                .ok_or_else(|| SourceError::LockMismatch {
                    what: format!("[[wheels]] {}", w.filename),
                    expected: w.filename.clone(),
                    found: "nothing".into(),
                })?;
            let step = match &w.source {
                WheelSource::Path { abs, .. } => {
                    let input = in_place_input(plan, &pin.file, abs);
                    install.step(plan, &w.filename, input)
                }
                WheelSource::Url { url, .. } => {
                    wheel_steps(plan, &pin.file, Origin::Url(url.clone()))
                }
            };
            plan.components.push(step);
        }
        for s in py.map(|p| &p.sdists[..]).unwrap_or_default() {
            if spec.debian.is_none() {
                return Err(SdistError::NoBuildPython {
                    sdist: s.file.file.clone(),
                }
                .into());
            }
            let sdist = fetch_input(plan, &s.file, index_origin());
            let mut inputs = vec![sdist];
            inputs.extend(cx.base.iter().map(|&c| Ref::Step(c)));
            for b in &s.build {
                let step = wheel_steps(plan, b, index_origin());
                inputs.push(Ref::Step(step));
            }
            let built = plan.add_step(
                item_name(&format!("{}-built", s.file.file)),
                Builder::BuildSdist {
                    sdist: s.file.file.clone(),
                    source_date_epoch: lock.source_date_epoch,
                    python: spec.python.shebang.clone(),
                    site_packages: spec.python.site_packages.clone(),
                },
                inputs,
            );
            let step =
                install.named_step(plan, "(named by the wheel built)".into(), Ref::Step(built));
            plan.components.push(step);
        }
        Ok(())
    }
}

fn fetch_input(plan: &mut Plan, file: &PinnedFile, origin: Origin) -> Ref {
    plan.add_input(Input {
        name: item_name(&file.file),
        what: format!("file {}", file.file),
        kind: InputKind::Fetch {
            file: file.file.clone(),
            sha256: file.sha256.clone(),
            size: file.size,
            origin,
        },
    })
}

fn in_place_input(plan: &mut Plan, file: &PinnedFile, path: &Path) -> Ref {
    plan.add_input(Input {
        name: item_name(&file.file),
        what: format!("wheel {}", path.display()),
        kind: InputKind::InPlace {
            path: path.to_path_buf(),
            file: file.file.clone(),
            sha256: file.sha256.clone(),
            size: file.size,
        },
    })
}

/// How this spec's wheels are installed: where, with which shebang, and
/// whether their modules are compiled to bytecode, with the interpreter
/// of the base and the base's components it runs in.
struct Install {
    builder: Builder,
    /// The base's components (the bytecode compiler's closure), or none.
    closure: Vec<Ref>,
}

impl Install {
    fn new(spec: &Spec, lock: &Lock, base: &[StepId]) -> Install {
        // An interpreter to compile with: Debian's (the spec's shebang, the
        // same one sdist builds use) or the one found in a base image.
        let has_interpreter = spec.debian.is_some()
            || lock
                .base_image
                .as_ref()
                .and_then(|b| b.python.as_ref())
                .is_some_and(|p| p.interpreter.is_some());
        let bytecode = (spec.python.compile_bytecode != Some(false) && has_interpreter)
            .then(|| spec.python.shebang.clone());
        let closure = match bytecode {
            Some(_) => base.iter().map(|&c| Ref::Step(c)).collect(),
            None => Vec::new(),
        };
        Install {
            builder: Builder::UnpackWheel {
                scheme: scheme(spec),
                shebang: spec.python.shebang.clone(),
                bytecode,
            },
            closure,
        }
    }

    /// The step that installs the wheel `filename` from `input`.
    fn step(&self, plan: &mut Plan, filename: &str, input: Ref) -> StepId {
        self.named_step(plan, item_name(filename.trim_end_matches(".whl")), input)
    }

    /// The step that installs the wheel `input` holds, named `name` until
    /// the wheel names it (an sdist build's).
    fn named_step(&self, plan: &mut Plan, name: String, input: Ref) -> StepId {
        let mut inputs = vec![input];
        inputs.extend(self.closure.iter().copied());
        plan.add_step(name, self.builder.clone(), inputs)
    }
}

/// Where wheels install (sysconfig's `posix_prefix` scheme below the
/// spec's site-packages), as paths relative to the image root.
pub fn scheme(spec: &Spec) -> InstallScheme {
    let layout = &spec.python;
    let rel = |p: &str| p.trim_start_matches('/').to_string();
    let prefix = Path::new(&layout.site_packages)
        .ancestors()
        .nth(3)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/usr/local".into());
    let py = Path::new(&layout.site_packages)
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "python3".into());
    InstallScheme {
        purelib: rel(&layout.site_packages),
        platlib: rel(&layout.site_packages),
        scripts: rel(&layout.scripts),
        data: rel(&prefix),
        headers: format!("{}/include/{py}", rel(&prefix))
            .trim_start_matches('/')
            .to_string(),
    }
}

/// `[python] requirements`: the lock's pins when it was made for the same
/// request and target, else a resolution against the index.
fn pin_requirements(cx: &mut PinContext, glibc: (u32, u32)) -> Result<PythonLock, SourceError> {
    let spec = cx.spec;
    let py = &spec.python;
    let request = requirements_request(spec, glibc);
    if let Some(p) = kept_requirements(cx, &request) {
        return Ok(p.clone());
    }
    if cx.fetch.offline {
        return Err(FetchError::Offline {
            url: "the package index (no lock for these requirements)".into(),
        }
        .into());
    }
    let target = Target::cpython_glibc(py.version, Arch::X86_64, glibc);
    let (index, _from) = crate::python::index_config::index_url(py.index.as_deref())?;
    let mut ro = resolve_options(cx, target, index)?;
    ro.warmup = cx
        .python_warmup
        .take()
        .and_then(|started| started.join().ok().flatten());
    let resolved = resolve::resolve(&py.requirements, &ro)?.packages;
    let mut out = PythonLock {
        request,
        exclude_newer: ro.exclude_newer.map(|t| t.to_string()),
        wheels: Vec::new(),
        sdists: Vec::new(),
    };
    let file = |p: &resolve::Pinned| PinnedFile {
        file: p.filename.clone(),
        sha256: p.sha256.clone(),
        size: p.size,
    };
    for p in &resolved {
        cx.urls.insert(p.sha256.clone(), p.url.clone());
        match &p.sdist {
            None => out.wheels.push(DistPin {
                name: p.name.clone(),
                version: p.version.clone(),
                file: file(p),
            }),
            Some(b) => {
                for w in &b.build_wheels {
                    cx.urls.insert(w.sha256.clone(), w.url.clone());
                }
                out.sdists.push(SdistPin {
                    name: p.name.clone(),
                    version: p.version.clone(),
                    file: file(p),
                    build: b.build_wheels.iter().map(file).collect(),
                });
            }
        }
    }
    Ok(out)
}

/// The old lock's pins of `[python] requirements` when they were made for
/// `request` (the same requirements and target) and nothing is to move.
fn kept_requirements<'l>(cx: &PinContext<'l>, request: &str) -> Option<&'l PythonLock> {
    if cx.upgrade != Upgrade::Nothing {
        return None;
    }
    cx.old
        .and_then(|l| l.python.as_ref())
        .filter(|p| p.request == request)
}

/// How `[python] requirements` resolve for `target` against `index`: the
/// `exclude-newer` asked for (else the old lock's, unless everything may
/// move), the old lock's versions preferred, metadata cached in the store.
fn resolve_options(
    cx: &PinContext,
    target: Target,
    index: String,
) -> Result<ResolveOptions, SourceError> {
    let spec = cx.spec;
    let old = cx.old.and_then(|l| l.python.as_ref());
    let mut ro = ResolveOptions::new(index, target);
    ro.exclude_newer = match (
        cx.exclude_newer,
        old.and_then(|p| p.exclude_newer.as_deref()),
    ) {
        (Some(t), _) => Some(t),
        (None, Some(_)) if cx.upgrade == Upgrade::All => None,
        (None, Some(recorded)) => {
            Some(recorded.parse().map_err(|e| SourceError::ExcludeNewer {
                lock_file: crate::lock::lock_path(&spec.path),
                found: recorded.to_string(),
                message: format!("{e}"),
            })?)
        }
        (None, None) => None,
    };
    ro.preferences = preferences(old, &cx.upgrade);
    ro.cache_dir = Some(cx.store.cache_dir("pypi-metadata")?);
    Ok(ro)
}

/// Start the index work of `[python] requirements` that does not need the
/// base, to run while the Debian base resolves ([`resolve::Warmup`]): for
/// a provisional target whose glibc is the old lock's base's (else the
/// spec's, else 2.17); the resolution then reads the answers for the real
/// one. On a thread of its own, as finding the index may mean asking the
/// host's pip. `None` where Python does not wait on the base (no Debian
/// base, a base image, a lock file), where the old lock's pins will be
/// kept, when offline, or when the options do not form (the resolution
/// reports why).
pub(crate) fn warm_up(cx: &PinContext) -> Option<super::StartedWarmup> {
    let spec = cx.spec;
    let py = &spec.python;
    if spec.debian.is_none()
        || spec.base_image.is_some()
        || py.lock.is_some()
        || py.requirements.is_empty()
        || cx.fetch.offline
    {
        return None;
    }
    let old_glibc = super::glibc_of(spec, cx.old.into_iter().flat_map(Lock::base_deb_files));
    if kept_requirements(cx, &requirements_request(spec, old_glibc)).is_some() {
        return None;
    }
    let target = Target::cpython_glibc(py.version, Arch::X86_64, old_glibc);
    let mut ro = resolve_options(cx, target, String::new()).ok()?;
    let spec_index = py.index.clone();
    let requirements = py.requirements.clone();
    Some(std::thread::spawn(move || {
        ro.index_url = crate::python::index_config::index_url(spec_index.as_deref())
            .ok()?
            .0;
        resolve::Warmup::start(&requirements, &ro)
            .map_err(|e| tracing::debug!(error = %e, "the index warm-up did not start"))
            .ok()
    }))
}

/// The old lock's versions, as the resolver's preferences: all of them
/// but the packages `upgrade` names (none for `--upgrade`).
fn preferences(
    old: Option<&PythonLock>,
    upgrade: &Upgrade,
) -> BTreeMap<String, pep440_rs::Version> {
    let Some(old) = old else {
        return BTreeMap::new();
    };
    if *upgrade == Upgrade::All {
        return BTreeMap::new();
    }
    // The sdists' build requirements first (they are resolved with the same
    // preferences), then the runtime pins, which win where both name one.
    let build = old.sdists.iter().flat_map(|s| &s.build).filter_map(|f| {
        let w = WheelFilename::parse(&f.file).ok()?;
        Some((w.name, w.version))
    });
    let runtime = old
        .wheels
        .iter()
        .map(|w| (w.name.clone(), w.version.clone()))
        .chain(
            old.sdists
                .iter()
                .map(|s| (s.name.clone(), s.version.clone())),
        );
    let pins: Vec<(String, String)> = build.chain(runtime).collect();
    pins.into_iter()
        .filter_map(|(name, version)| {
            let name = crate::python::wheel::normalize_name(&name);
            if let Upgrade::Packages(moving) = upgrade {
                if moving.contains(&name) {
                    return None;
                }
            }
            Some((name, version.parse().ok()?))
        })
        .collect()
}

/// `[[wheels]]`: local wheels are hashed (in parallel, through the hash
/// cache) but not copied; URLs are fetched (the download gives the size).
fn pin_wheels(cx: &mut PinContext, lock: &mut Lock) -> Result<(), SourceError> {
    let spec = cx.spec;
    let local: Vec<&PathBuf> = spec
        .wheels
        .iter()
        .filter_map(|w| match &w.source {
            WheelSource::Path { abs, .. } => Some(abs),
            WheelSource::Url { .. } => None,
        })
        .collect();
    let mut local_hashes =
        crate::workers::on_store_workers(cx.store.root(), &local, None, |st, abs| {
            let sha = st.cached_hash(abs, "sha256", |_| {
                crate::io::sha256_file(abs).map_err(super::io_err("reading", abs))
            })?;
            let size = std::fs::metadata(abs)
                .map_err(super::io_err("reading", abs))?
                .len();
            Ok::<_, SourceError>((sha, size))
        })?
        .into_iter();
    for w in &spec.wheels {
        let (source, sha256, size) = match &w.source {
            WheelSource::Path { path, .. } => {
                let (sha256, size) = local_hashes.next().expect("one hash per local wheel");
                (path.clone(), sha256, size)
            }
            WheelSource::Url { url, sha256 } => {
                // The old lock's size for the same URL and hash; else the
                // download tells it (and the file is then in the store).
                let locked = cx.old.and_then(|l| {
                    l.wheels.iter().find(|p| {
                        p.source == *url && p.file.sha256 == *sha256 && p.file.file == w.filename
                    })
                });
                let size = match locked {
                    Some(p) => p.file.size,
                    None => {
                        fetch::fetch(cx.store, url, sha256, &item_name(&w.filename), &cx.fetch)?
                            .size
                    }
                };
                (url.clone(), sha256.clone(), size)
            }
        };
        lock.wheels.push(WheelPin {
            source,
            file: PinnedFile {
                file: w.filename.clone(),
                sha256,
                size,
            },
        });
    }
    Ok(())
}
