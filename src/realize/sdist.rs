//! Sdists in a realize: their lock entries, and the build-sdist builder.
//!
//! Lock entries (see docs/lock-format.md): `sdist:<file name>` for the
//! sdist (source = its file name, found again through the index like a
//! resolved wheel) and `build:<sdist file>:<wheel file>` for each of its
//! build requirements (resolved as wheels for the same target).
//!
//! The build is a derivation: builder `build-sdist` (version
//! [`BUILDER_VERSION`]), the sdist's file name, SOURCE_DATE_EPOCH, the
//! interpreter and site-packages, with the sdist item and every item of the
//! build closure (the base's Debian components, base files, the build
//! requirements' installed wheels) as inputs. Its output is a directory
//! holding the normalized wheel; the wheel file is then added to the store
//! as an item of its own and installed by `unpack-wheel` like a downloaded
//! wheel.

use std::collections::BTreeMap;
use std::time::Instant;

use envbuild_store::StorePath;

use super::builders::{self, WheelFile, WheelInput};
use super::{item_name, Component, RealizeError, Realizer};
use crate::lock::{Lock, LockedInput};
use crate::plan::Derivation;
use crate::python::resolve;
use crate::python::sdist::{self, build::BuildRequest, SdistError};
use crate::spec::Spec;

/// Bumped when the sandbox, the frontend or the normalization changes.
pub const BUILDER_VERSION: u32 = 1;

/// A file pinned by name, sha256 (hex) and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LockedFile {
    pub filename: String,
    pub sha256: String,
    pub size: u64,
}

/// An sdist and its build requirements, as the lock pins them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LockedSdist {
    pub sdist: LockedFile,
    pub build: Vec<LockedFile>,
}

/// An sdist and its build requirements in the store.
#[derive(Debug, Clone)]
pub struct PinnedSdist {
    pub filename: String,
    pub item: StorePath,
    /// Sorted by file name.
    pub build_wheels: Vec<WheelInput>,
}

/// The sdists of a resolution (packages resolved to an sdist).
pub(super) fn from_resolution(packages: &[resolve::Pinned]) -> Vec<LockedSdist> {
    packages
        .iter()
        .filter_map(|p| {
            let b = p.sdist.as_ref()?;
            let mut build: Vec<LockedFile> = b
                .build_wheels
                .iter()
                .map(|w| LockedFile {
                    filename: w.filename.clone(),
                    sha256: w.sha256.clone(),
                    size: w.size,
                })
                .collect();
            build.sort_by(|a, b| a.filename.cmp(&b.filename));
            Some(LockedSdist {
                sdist: LockedFile {
                    filename: p.filename.clone(),
                    sha256: p.sha256.clone(),
                    size: p.size,
                },
                build,
            })
        })
        .collect()
}

fn locked_file(i: &LockedInput) -> Option<LockedFile> {
    Some(LockedFile {
        filename: i.source.clone(),
        sha256: i.hash.strip_prefix("sha256:")?.to_owned(),
        size: i.size,
    })
}

/// The sdists a lock pins.
pub(super) fn from_lock(lock: &Lock) -> Vec<LockedSdist> {
    let mut out: BTreeMap<String, LockedSdist> = BTreeMap::new();
    for i in &lock.inputs {
        if let Some(name) = i.id.strip_prefix("sdist:") {
            if let Some(f) = locked_file(i) {
                out.insert(
                    name.to_owned(),
                    LockedSdist {
                        sdist: f,
                        build: Vec::new(),
                    },
                );
            }
        }
    }
    for i in &lock.inputs {
        let Some(rest) = i.id.strip_prefix("build:") else {
            continue;
        };
        let Some((sdist, _)) = rest.split_once(':') else {
            continue;
        };
        if let (Some(s), Some(f)) = (out.get_mut(sdist), locked_file(i)) {
            s.build.push(f);
        }
    }
    out.into_values().collect()
}

/// The lock entries of pinned sdists.
pub(super) fn lock_entries(sdists: &[LockedSdist], inputs: &mut Vec<LockedInput>) {
    for s in sdists {
        inputs.push(LockedInput {
            id: format!("sdist:{}", s.sdist.filename),
            source: s.sdist.filename.clone(),
            hash: format!("sha256:{}", s.sdist.sha256),
            size: s.sdist.size,
        });
        for b in &s.build {
            inputs.push(LockedInput {
                id: format!("build:{}:{}", s.sdist.filename, b.filename),
                source: b.filename.clone(),
                hash: format!("sha256:{}", b.sha256),
                size: b.size,
            });
        }
    }
}

/// Build every sdist in its sandbox and install the wheels: one component
/// per sdist. `base` is the base's Debian components and base files.
pub fn build_sdists(
    r: &mut Realizer,
    spec: &Spec,
    base: &[Component],
    sdists: &[PinnedSdist],
    epoch: u64,
) -> Result<Vec<Component>, RealizeError> {
    let mut out = Vec::new();
    for s in sdists {
        if spec.debian.is_none() {
            return Err(SdistError::NoBuildPython {
                sdist: s.filename.clone(),
            }
            .into());
        }
        let wheel = build_one(r, spec, base, s, epoch)?;
        out.push(builders::unpack_wheel(r, spec, &wheel)?);
    }
    Ok(out)
}

/// The wheel built from one sdist, as an item of its own.
fn build_one(
    r: &mut Realizer,
    spec: &Spec,
    base: &[Component],
    s: &PinnedSdist,
    epoch: u64,
) -> Result<WheelInput, RealizeError> {
    let mut closure: Vec<Component> = base.to_vec();
    for w in &s.build_wheels {
        closure.push(builders::unpack_wheel(r, spec, w)?);
    }
    let python = spec.python.shebang.clone();
    let site = spec.python.site_packages.clone();
    let mut drv = Derivation::new(
        "build-sdist",
        BUILDER_VERSION,
        item_name(&format!("{}-built", s.filename)),
    )
    .arg("sdist", s.filename.clone())
    .arg("source-date-epoch", epoch.to_string())
    .arg("python", python.clone())
    .arg("site-packages", site.clone())
    .input(s.item.clone());
    for c in &closure {
        drv = drv.input(c.item.clone());
    }
    let progress = r.progress;
    let item = r.realize(&drv, &[], |store, out| {
        let started = Instant::now();
        if progress {
            eprintln!("building sdist {} in the sandbox", s.filename);
        }
        let cache = store.cache_dir("rootfs")?;
        let rootfs = crate::shell::rootfs(store, &closure, &cache, progress).map_err(|e| {
            RealizeError::BadItem {
                item: s.filename.clone(),
                builder: "build-sdist",
                what: format!("its build rootfs could not be assembled: {e}"),
            }
        })?;
        let work = store.scratch("sdist-build")?;
        let built = match sdist::build::build_wheel(&BuildRequest {
            sdist: &s.filename,
            archive: &store.physical_path(&s.item),
            rootfs: &rootfs,
            work: work.path(),
            python: &python,
            site_packages: &site,
            source_date_epoch: epoch,
        }) {
            Ok(b) => b,
            // The scratch directory goes away: keep the log.
            Err(SdistError::BuildFailed {
                sdist,
                status,
                log,
                tail,
            }) => {
                let logs = store.cache_dir("sdist-logs")?;
                let kept = logs.join(format!("{}.log", item_name(&sdist)));
                let log = match std::fs::copy(&log, &kept) {
                    Ok(_) => kept,
                    Err(_) => log,
                };
                return Err(SdistError::BuildFailed {
                    sdist,
                    status,
                    log,
                    tail,
                }
                .into());
            }
            Err(e) => return Err(e.into()),
        };
        std::fs::create_dir_all(out).map_err(super::io_err("creating", out))?;
        let dst = out.join(&built.filename);
        std::fs::copy(&built.wheel, &dst).map_err(super::io_err("copying to", &dst))?;
        if progress {
            eprintln!(
                "built {} from {} in {:.1} s",
                built.filename,
                s.filename,
                started.elapsed().as_secs_f64()
            );
        }
        Ok(())
    })?;
    let dir = r.store.physical_path(&item);
    let filename = std::fs::read_dir(&dir)
        .map_err(super::io_err("reading", &dir))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with(".whl"))
        .ok_or_else(|| RealizeError::BadItem {
            item: item.to_string(),
            builder: "build-sdist",
            what: "holds no wheel".into(),
        })?;
    let file = dir.join(&filename);
    let sha256 = builders::sha256_file(&file)?;
    let size = std::fs::metadata(&file)
        .map_err(super::io_err("reading", &file))?
        .len();
    let wheel = r.store.add_path(&file, &item_name(&filename))?.path;
    Ok(WheelInput {
        filename,
        sha256,
        size,
        file: WheelFile::Item(wheel),
    })
}
