//! The built-in check: every distribution installed in the closure's
//! site-packages (its `*.dist-info/METADATA`) is the version the lock pins
//! (`pypi:` and `wheel:` entries, whose wheel file names give name and
//! version), and nothing is missing or extra.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Instant;

use super::Outcome;
use crate::lock::Lock;
use crate::python::wheel::{normalize_name, WheelFilename};
use crate::shell::rootfs::resolve_in;
use crate::spec::Spec;

/// The built-in check's name.
pub const DIST_INFO_CHECK: &str = "installed distributions match the lock";

/// (normalized name → (name as written, version)) of every `*.dist-info`
/// with a METADATA file under the image path `site` of `rootfs`.
pub fn installed_distributions(
    rootfs: &Path,
    site: &str,
) -> Result<BTreeMap<String, (String, String)>, String> {
    let mut out = BTreeMap::new();
    let Some(dir) = resolve_in(rootfs, site, 0) else {
        return Ok(out);
    };
    let entries = fs::read_dir(&dir).map_err(|e| format!("cannot read {site}: {e}"))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".dist-info") {
            continue;
        }
        let meta = e.path().join("METADATA");
        let text = match fs::read(&meta) {
            Ok(t) => String::from_utf8_lossy(&t).into_owned(),
            Err(err) => return Err(format!("cannot read {site}/{name}/METADATA: {err}")),
        };
        let (mut dist, mut version) = (None, None);
        for line in text.lines() {
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.strip_prefix("Name:") {
                dist.get_or_insert_with(|| v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("Version:") {
                version.get_or_insert_with(|| v.trim().to_string());
            }
        }
        match (dist, version) {
            (Some(d), Some(v)) => {
                out.insert(normalize_name(&d), (d, v));
            }
            _ => {
                return Err(format!(
                    "{site}/{name}/METADATA has no Name or Version header (expected both, as the core metadata spec requires)"
                ))
            }
        }
    }
    Ok(out)
}

/// Versions compare as PEP 440 versions where both parse, else as text.
fn same_version(a: &str, b: &str) -> bool {
    match (
        a.parse::<pep440_rs::Version>(),
        b.parse::<pep440_rs::Version>(),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Compare the installed distributions with the lock.
pub fn dist_info_check(spec: &Spec, rootfs: &Path, lock: &Lock) -> Outcome {
    let started = Instant::now();
    let mut locked: BTreeMap<String, (String, String)> = BTreeMap::new();
    for i in &lock.inputs {
        let filename = if i.id.starts_with("pypi:") {
            i.source.as_str()
        } else if let Some(f) = i.id.strip_prefix("wheel:") {
            f
        } else {
            continue;
        };
        if let Ok(w) = WheelFilename::parse(filename) {
            locked.insert(normalize_name(&w.name), (w.name.clone(), w.version.clone()));
        }
    }
    let site = &spec.python.site_packages;
    let result = installed_distributions(rootfs, site);
    let (passed, reason) = match result {
        Err(e) => (false, e),
        Ok(installed) => {
            let mut problems = Vec::new();
            for (key, (name, v)) in &locked {
                match installed.get(key) {
                    None => {
                        problems.push(format!("{name} {v} is locked but not installed in {site}"))
                    }
                    Some((_, iv)) if !same_version(v, iv) => {
                        problems.push(format!("{name}: the lock pins {v}, {site} has {iv}"))
                    }
                    Some(_) => {}
                }
            }
            for (key, (name, v)) in &installed {
                if !locked.contains_key(key) {
                    problems.push(format!(
                        "{name} {v} is installed in {site} but not in the lock"
                    ));
                }
            }
            if problems.is_empty() {
                (
                    true,
                    format!(
                        "{} distributions in {site}, each at its locked version",
                        installed.len()
                    ),
                )
            } else {
                (false, problems.join("; "))
            }
        }
    };
    Outcome {
        name: DIST_INFO_CHECK.into(),
        passed,
        reason,
        millis: started.elapsed().as_millis(),
    }
}
