//! Pinning `[python] lock`: a PEP 751 `pylock.toml` (see
//! [`crate::python::pylock`]) or a hash-checked `requirements.txt` (see
//! [`crate::python::requirements_txt`]) becomes the same `pypi:<file name>`
//! entries that resolving `[python] requirements` writes, under a
//! `python:request` entry whose source names the lock file and its sha256,
//! so that a changed file pins again.

use std::path::Path;

use envbuild_store::Store;

use super::builders::{WheelFile, WheelInput};
use super::{fetch_parallel, item_name, FetchJob, RealizeError, RealizeOptions};
use crate::fetch::FetchOptions;
use crate::lock::LockedInput;
use crate::python::pylock::{self, ChosenWheel, Location};
use crate::python::requirements_txt;
use crate::python::resolve::{Arch, Target};
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

/// The wheels a lock file chooses for the target, pinned into `inputs` and
/// (unless `opts.lock_only` and every size is known) fetched.
pub(super) fn pin_python_lock(
    store: &mut Store,
    spec: &Spec,
    glibc: (u32, u32),
    old: Option<&crate::lock::Lock>,
    opts: &RealizeOptions,
    fetch_opts: &FetchOptions,
    inputs: &mut Vec<LockedInput>,
) -> Result<Vec<WheelInput>, RealizeError> {
    let py = &spec.python;
    let Some((rel, abs)) = &py.lock else {
        return Ok(Vec::new());
    };
    let bytes = crate::io::read_regular(abs).map_err(super::io_err("reading", abs))?;
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    let text = String::from_utf8_lossy(&bytes);
    let target = Target::cpython_glibc(py.version, Arch::X86_64, glibc);
    let request = format!(
        "cp{}{} x86_64 glibc {}.{}: lock {rel} sha256:{sha}",
        py.version.0, py.version.1, glibc.0, glibc.1
    );
    let chosen: Vec<ChosenWheel> = if is_requirements_txt(abs) {
        // Finding the files takes the index: reuse the lock's pins when it
        // was made from this very file and every pinned file is in the store
        // (or, for `--find-links` wheels, still in its directory: checked
        // against its sha256 when it is unpacked).
        let find_links = requirements_txt::parse(abs, &text, &target)?.find_links;
        let reused: Option<Vec<ChosenWheel>> = old
            .and_then(|l| l.pins_for("python:request", &request, "pypi:"))
            .and_then(|pins| {
                pins.iter()
                    .map(|i| {
                        let sha256 = i.sha256.to_string();
                        let fetched = store
                            .realisation(&format!("fetch:sha256:{sha256}"), "out")
                            .ok()
                            .flatten()
                            .is_some();
                        let location = if fetched || opts.lock_only {
                            Location::Url(format!(
                                "(pinned in the lock; {} is in the store)",
                                i.source
                            ))
                        } else {
                            let local = find_links
                                .iter()
                                .map(|d| d.join(i.source))
                                .find(|p| p.is_file())?;
                            Location::Path(local)
                        };
                        Some(ChosenWheel {
                            package: String::new(),
                            filename: i.source.to_string(),
                            location,
                            sha256,
                            size: Some(i.size),
                        })
                    })
                    .collect()
            });
        match reused {
            Some(pins) => pins,
            None => requirements_txt::select(
                abs,
                &text,
                &target,
                py.index.as_deref(),
                fetch_opts.offline,
            )?,
        }
    } else {
        pylock::select_text(abs, &text, &target)?
    };
    inputs.push(LockedInput {
        id: "python:request".into(),
        source: request.clone(),
        hash: format!("sha256:{sha}"),
        size: chosen.len() as u64,
    });
    if opts.lock_only && chosen.iter().all(|c| c.size.is_some()) {
        for c in chosen {
            inputs.push(LockedInput {
                id: format!("pypi:{}", c.filename),
                source: c.filename,
                hash: format!("sha256:{}", c.sha256),
                size: c.size.unwrap_or_default(),
            });
        }
        return Ok(Vec::new());
    }
    // Files on an index or at a URL are fetched into the store; local
    // files are unpacked in place (their sha256 checked then).
    let jobs: Vec<FetchJob> = chosen
        .iter()
        .filter_map(|c| match &c.location {
            Location::Url(u) => Some(FetchJob {
                url: u.clone(),
                sha256: c.sha256.clone(),
                name: item_name(&c.filename),
            }),
            Location::Path(_) => None,
        })
        .collect();
    let mut fetched = fetch_parallel(store, &jobs, fetch_opts)?.into_iter();
    let mut out = Vec::new();
    for c in chosen {
        let (size, file) = match &c.location {
            Location::Url(_) => {
                let f = fetched.next().expect("one fetch per URL");
                (f.size, WheelFile::Item(f.item))
            }
            Location::Path(p) => {
                let size = std::fs::metadata(p)
                    .map_err(super::io_err("reading", p))?
                    .len();
                (size, WheelFile::Local(p.clone()))
            }
        };
        if let Some(locked) = c.size {
            if locked != size {
                return Err(RealizeError::BadItem {
                    item: c.filename,
                    builder: "fetch",
                    what: format!("has {size} bytes where the lock file {rel} says {locked}"),
                });
            }
        }
        inputs.push(LockedInput {
            id: format!("pypi:{}", c.filename),
            source: c.filename.clone(),
            hash: format!("sha256:{}", c.sha256),
            size,
        });
        out.push(WheelInput {
            filename: c.filename,
            sha256: c.sha256,
            size,
            file,
        });
    }
    Ok(out)
}

/// The wheels a lock pins for `spec`, as a PEP 751 file would list them
/// (see [`pylock::write`]): resolved and imported wheels (`pypi:` entries)
/// with the URL the configured index gives them now (found by sha256 among
/// that version's wheels for the target), and `[[wheels]]` by their path
/// or URL. Returns the target too.
pub fn export_wheels(
    spec: &Spec,
    lock: &crate::lock::Lock,
) -> Result<(Target, Vec<pylock::ExportWheel>), RealizeError> {
    let glibc = super::glibc_of(
        spec,
        lock.inputs
            .iter()
            .filter(|i| i.id.starts_with("deb:"))
            .map(|i| i.source.as_str()),
    );
    let py = &spec.python;
    let target = Target::cpython_glibc(py.version, Arch::X86_64, glibc);
    let mut out = Vec::new();
    let mut wanted = Vec::new();
    let mut pinned = Vec::new();
    for i in &lock.inputs {
        let Some(filename) = i.id.strip_prefix("pypi:") else {
            continue;
        };
        let sha = i
            .hash
            .strip_prefix("sha256:")
            .unwrap_or(&i.hash)
            .to_string();
        let w = crate::python::wheel::WheelFilename::parse(filename)?;
        wanted.push((w.name.clone(), w.version.clone(), vec![sha.clone()]));
        pinned.push((filename.to_string(), sha, i.size));
    }
    if !wanted.is_empty() {
        let (index, _from) = crate::python::index_config::index_url(py.index.as_deref())?;
        let (index_display, found) =
            crate::python::resolve::find_hashed_wheels(&index, &target, &wanted)?;
        for ((filename, sha, size), f) in pinned.into_iter().zip(found) {
            let f = f.filter(|f| f.filename == filename).ok_or_else(|| {
                crate::python::resolve::ResolveError::LockedFileGone {
                    file: filename.clone(),
                    package: filename.split('-').next().unwrap_or_default().to_string(),
                    version: filename.split('-').nth(1).unwrap_or_default().to_string(),
                    index: index_display.clone(),
                }
            })?;
            out.push(pylock::ExportWheel {
                filename,
                location: Location::Url(f.url),
                sha256: sha,
                size,
            });
        }
    }
    for w in &spec.wheels {
        let Some(i) = lock
            .inputs
            .iter()
            .find(|i| i.id == format!("wheel:{}", w.filename))
        else {
            continue;
        };
        let location = match &w.source {
            crate::spec::WheelSource::Path { abs, .. } => Location::Path(abs.clone()),
            crate::spec::WheelSource::Url { url, .. } => Location::Url(url.clone()),
        };
        out.push(pylock::ExportWheel {
            filename: w.filename.clone(),
            location,
            sha256: i
                .hash
                .strip_prefix("sha256:")
                .unwrap_or(&i.hash)
                .to_string(),
            size: i.size,
        });
    }
    Ok((target, out))
}
