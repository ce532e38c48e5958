//! `build-sdist`: an sdist built into a wheel in the sandbox
//! ([`crate::python::sdist::build`]).
//!
//! The derivation (see [`crate::plan::Step::derivation`]) holds the sdist's
//! file name, SOURCE_DATE_EPOCH, the interpreter and site-packages, with the
//! sdist item and every item of the build closure (the base's Debian
//! components, base files, the build requirements' installed wheels) as
//! inputs. Its output is a directory holding the normalized wheel, which
//! `unpack-wheel` then installs like a downloaded one.

use std::time::Instant;

use envbuild_store::StorePath;

use super::wheel::WheelFile;
use crate::assemble::Component;
use crate::plan::{item_name, Derivation};
use crate::python::sdist::{self, build::BuildRequest, SdistError};
use crate::realize::{io_err, RealizeError, Realizer};

/// What the sandboxed build needs besides its derivation.
pub struct SdistBuild<'a> {
    pub sdist: &'a str,
    pub item: &'a StorePath,
    /// The build closure, in rootfs order.
    pub closure: &'a [Component],
    pub python: &'a str,
    pub site_packages: &'a str,
    pub source_date_epoch: u64,
}

/// Build the wheel; returns the output item.
pub fn build_sdist(
    r: &mut Realizer,
    drv: &Derivation,
    b: &SdistBuild,
) -> Result<StorePath, RealizeError> {
    let s = b;
    let (python, site, epoch, closure) =
        (b.python, b.site_packages, b.source_date_epoch, b.closure);
    let progress = r.progress;
    r.realize(drv, &[], |store, out| {
        let started = Instant::now();
        tracing::info!(sdist = %s.sdist, "building the sdist in the sandbox");
        let cache = store.cache_dir("rootfs")?;
        let rootfs = crate::assemble::rootfs(store, closure, &cache, progress).map_err(|e| {
            RealizeError::BadItem {
                item: s.sdist.to_string(),
                builder: "build-sdist",
                what: format!("its build rootfs could not be assembled: {e}"),
            }
        })?;
        let work = store.scratch("sdist-build")?;
        let built = match sdist::build::build_wheel(&BuildRequest {
            sdist: s.sdist,
            archive: &store.physical_path(s.item),
            rootfs: &rootfs,
            work: work.path(),
            python,
            site_packages: site,
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
        std::fs::create_dir_all(out).map_err(io_err("creating", out))?;
        let dst = out.join(&built.filename);
        std::fs::copy(&built.wheel, &dst).map_err(io_err("copying to", &dst))?;
        tracing::info!(
            wheel = %built.filename,
            sdist = %s.sdist,
            seconds = started.elapsed().as_secs_f64(),
            "built the wheel"
        );
        Ok(())
    })
}

/// The wheel a `build-sdist` output holds.
pub fn built_wheel(r: &mut Realizer, item: &StorePath) -> Result<WheelFile, RealizeError> {
    let dir = r.output_path(item);
    let filename = std::fs::read_dir(&dir)
        .map_err(io_err("reading", &dir))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with(".whl"))
        .ok_or_else(|| RealizeError::BadItem {
            item: item.to_string(),
            builder: "build-sdist",
            what: "holds no wheel".into(),
        })?;
    let path = dir.join(&filename);
    let sha256 = r
        .store
        .cached_hash(&path, "sha256", |_| super::sha256_file(&path))?;
    let size = std::fs::metadata(&path)
        .map_err(io_err("reading", &path))?
        .len();
    Ok(WheelFile {
        filename,
        sha256,
        size,
        path,
        in_place: false,
        pinned: false,
    })
}
