//! `[python] lock`: a PEP 751 `pylock.toml` ([`crate::python::pylock`]) or a
//! hash-checked `requirements.txt` ([`crate::python::requirements_txt`])
//! becomes the same `python` lock section that resolving `[python]
//! requirements` writes, under a request naming the file and its sha256,
//! so that a changed file pins again.
//!
//! Where each file is fetched from is the lock file's business, not the
//! envbuild lock's: a pylock's `url` or `path`, a requirements file's
//! `--find-links` directories and indexes ([`origins`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{dist_pin, PinContext};
use crate::fetch;
use crate::lock::{Lock, PinnedFile, PythonLock};
use crate::plan::{item_name, Origin};
use crate::python::pylock::{self, ChosenWheel, Location};
use crate::python::requirements_txt;
use crate::python::resolve::{Arch, Target};
use crate::sources::SourceError;
use crate::spec::Spec;

/// Which kind of lock file `path` is: a requirements file when its name
/// ends in `.txt` or `.in`, else PEP 751 TOML.
pub fn is_requirements_txt(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.ends_with(".txt") || name.ends_with(".in")
}

/// The lock file's bytes and the request they are pinned under.
fn read(spec: &Spec, glibc: (u32, u32)) -> Result<Option<(PathBuf, String, String)>, SourceError> {
    let py = &spec.python;
    let Some((rel, abs)) = &py.lock else {
        return Ok(None);
    };
    let bytes = crate::io::read_regular(abs).map_err(super::super::io_err("reading", abs))?;
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let request = format!(
        "cp{}{} x86_64 glibc {}.{}: lock {rel} sha256:{sha}",
        py.version.0, py.version.1, glibc.0, glibc.1
    );
    Ok(Some((abs.clone(), text, request)))
}

/// The wheels the lock file chooses for the target: the old lock's pins
/// when it was made from this very file, else the file's choice (a
/// requirements file's choice takes its indexes; a file of unknown size is
/// fetched, or measured where it lies, to be pinned).
pub(super) fn pin(cx: &mut PinContext, glibc: (u32, u32)) -> Result<PythonLock, SourceError> {
    let spec = cx.spec;
    let (abs, text, request) = read(spec, glibc)?.expect("[python] lock is set");
    if let Some(p) = cx.old.and_then(|l| l.python_for(&request)) {
        return Ok(p.clone());
    }
    let target = Target::cpython_glibc(spec.python.version, Arch::X86_64, glibc);
    let chosen = choose(spec, &abs, &text, &target, cx.fetch.offline)?;
    let mut wheels = Vec::new();
    for c in chosen {
        let size = match (&c.location, c.size) {
            (Location::Url(u), Some(size)) => {
                cx.urls.insert(c.sha256.clone(), u.clone());
                size
            }
            (Location::Url(u), None) => {
                fetch::fetch(cx.store, u, &c.sha256, &item_name(&c.filename), &cx.fetch)?.size
            }
            (Location::Path(p), locked) => {
                let size = std::fs::metadata(p)
                    .map_err(super::super::io_err("reading", p))?
                    .len();
                if let Some(locked) = locked.filter(|&l| l != size) {
                    return Err(SourceError::SizeMismatch {
                        file: p.display().to_string(),
                        found: size,
                        locked,
                        lock_file: abs.display().to_string(),
                    });
                }
                size
            }
        };
        wheels.push(dist_pin(PinnedFile {
            file: c.filename,
            sha256: c.sha256,
            size,
        })?);
    }
    Ok(PythonLock {
        request,
        exclude_newer: None,
        wheels,
        sdists: Vec::new(),
    })
}

fn choose(
    spec: &Spec,
    abs: &Path,
    text: &str,
    target: &Target,
    offline: bool,
) -> Result<Vec<ChosenWheel>, SourceError> {
    Ok(if is_requirements_txt(abs) {
        requirements_txt::select(abs, text, target, spec.python.index.as_deref(), offline)?
    } else {
        pylock::select_text(abs, text, target)?
    })
}

/// Where one pinned wheel comes from.
#[derive(Debug, Clone)]
pub enum WheelOrigin {
    /// A local file, unpacked where it lies.
    InPlace(PathBuf),
    Fetch(Origin),
}

/// Where the lock file says each pinned wheel is (by file name): a pylock's
/// URLs and paths; a requirements file's `--find-links` wheels in place,
/// the rest found again through the file's indexes at fetch time.
pub fn origins(
    spec: &Spec,
    target: &Target,
    pins: &PythonLock,
) -> Result<BTreeMap<String, WheelOrigin>, SourceError> {
    let Some((_, abs)) = &spec.python.lock else {
        return Ok(BTreeMap::new());
    };
    let text =
        crate::io::read_regular_to_string(abs).map_err(super::super::io_err("reading", abs))?;
    let mut out = BTreeMap::new();
    if is_requirements_txt(abs) {
        let find_links = requirements_txt::parse(abs, &text, target)?.find_links;
        for w in &pins.wheels {
            let file = &w.file.file;
            let origin = match find_links
                .iter()
                .map(|d| d.join(file))
                .find(|p| p.is_file())
            {
                Some(local) => WheelOrigin::InPlace(local),
                None => WheelOrigin::Fetch(Origin::RequirementsFile {
                    path: abs.clone(),
                    index: spec.python.index.clone(),
                    target: target.clone(),
                }),
            };
            out.insert(file.clone(), origin);
        }
    } else {
        for c in pylock::select_text(abs, &text, target)? {
            let origin = match c.location {
                Location::Url(u) => WheelOrigin::Fetch(Origin::Url(u)),
                Location::Path(p) => WheelOrigin::InPlace(p),
            };
            out.insert(c.filename, origin);
        }
    }
    Ok(out)
}

/// Where a requirements file says its wheels are now (file name →
/// location), for fetching files the store lacks.
pub fn locate_in_requirements_file(
    path: &Path,
    target: &Target,
    spec_index: Option<&str>,
) -> Result<BTreeMap<String, Location>, SourceError> {
    let text =
        crate::io::read_regular_to_string(path).map_err(super::super::io_err("reading", path))?;
    Ok(
        requirements_txt::select(path, &text, target, spec_index, false)?
            .into_iter()
            .map(|c| (c.filename, c.location))
            .collect(),
    )
}

/// The wheels a lock pins for `spec`, as a PEP 751 file would list them
/// (see [`pylock::write`]): resolved and imported wheels with the URL the
/// configured index gives them now (found by sha256 among that version's
/// wheels for the target), and `[[wheels]]` by their path or URL. Returns
/// the target too.
pub fn export_wheels(
    spec: &Spec,
    lock: &Lock,
) -> Result<(Target, Vec<pylock::ExportWheel>), SourceError> {
    let target = super::target(spec, lock);
    let mut out = Vec::new();
    let mut wanted = Vec::new();
    let mut pinned = Vec::new();
    for w in lock.python.iter().flat_map(|p| &p.wheels) {
        let wf = crate::python::wheel::WheelFilename::parse(&w.file.file)?;
        wanted.push((wf.name, wf.version, vec![w.file.sha256.clone()]));
        pinned.push(w.file.clone());
    }
    if !wanted.is_empty() {
        let (index, _from) = crate::python::index_config::index_url(spec.python.index.as_deref())?;
        let (index_display, found) =
            crate::python::resolve::find_hashed_wheels(&index, &target, &wanted)?;
        for (pin, f) in pinned.into_iter().zip(found) {
            let f = f.filter(|f| f.filename == pin.file).ok_or_else(|| {
                crate::python::resolve::ResolveError::LockedFileGone {
                    file: pin.file.clone(),
                    package: pin.file.split('-').next().unwrap_or_default().to_string(),
                    version: pin.file.split('-').nth(1).unwrap_or_default().to_string(),
                    index: index_display.clone(),
                }
            })?;
            out.push(pylock::ExportWheel {
                filename: pin.file,
                location: Location::Url(f.url),
                sha256: pin.sha256,
                size: pin.size,
            });
        }
    }
    for w in &spec.wheels {
        let Some(pin) = lock.wheels.iter().find(|p| p.file.file == w.filename) else {
            continue;
        };
        let location = match &w.source {
            crate::spec::WheelSource::Path { abs, .. } => Location::Path(abs.clone()),
            crate::spec::WheelSource::Url { url, .. } => Location::Url(url.clone()),
        };
        out.push(pylock::ExportWheel {
            filename: w.filename.clone(),
            location,
            sha256: pin.file.sha256.clone(),
            size: pin.file.size,
        });
    }
    Ok((target, out))
}
