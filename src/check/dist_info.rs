//! The built-in check: every distribution installed in the closure's
//! site-packages (its `*.dist-info/METADATA`) is the version the lock pins
//! (the `python` section's wheels and sdists, and `[[wheels]]`, whose file names give name and
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
    // Resolved and imported wheels, sdists (the wheel built from one has
    // the sdist's name and version), and `[[wheels]]` by their file names.
    let python = lock.python.iter();
    let dists = python
        .clone()
        .flat_map(|p| p.wheels.iter().map(|w| (&w.name, &w.version)))
        .chain(python.flat_map(|p| p.sdists.iter().map(|s| (&s.name, &s.version))));
    for (name, version) in dists {
        locked.insert(normalize_name(name), (name.clone(), version.clone()));
    }
    for w in &lock.wheels {
        if let Ok(w) = WheelFilename::parse(&w.file.file) {
            locked.insert(normalize_name(&w.name), (w.name.clone(), w.version.clone()));
        }
    }
    let effective = crate::sources::effective_spec(spec, lock);
    let site = &effective.python.site_packages;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::{DistPin, PinnedFile, PythonLock, SdistPin, WheelPin};

    fn file(name: &str) -> PinnedFile {
        PinnedFile {
            file: name.into(),
            sha256: "0".repeat(64),
            size: 1,
        }
    }

    /// A lock pinning `wheels` (resolved), `sdists` and `local` (`[[wheels]]`).
    fn lock(wheels: &[&str], sdists: &[(&str, &str, &str)], local: &[&str]) -> Lock {
        let wheel = |f: &&str| {
            let w = WheelFilename::parse(f).unwrap();
            DistPin {
                name: w.name,
                version: w.version,
                file: file(f),
            }
        };
        Lock {
            source_date_epoch: 1,
            python: Some(PythonLock {
                request: "cp311".into(),
                exclude_newer: None,
                wheels: wheels.iter().map(wheel).collect(),
                sdists: sdists
                    .iter()
                    .map(|(name, version, f)| SdistPin {
                        name: name.to_string(),
                        version: version.to_string(),
                        file: file(f),
                        build: vec![file("setuptools-80.9.0-py3-none-any.whl")],
                    })
                    .collect(),
            }),
            wheels: local
                .iter()
                .map(|f| WheelPin {
                    source: format!("wheels/{f}"),
                    file: file(f),
                })
                .collect(),
            ..Lock::default()
        }
    }

    fn dist(site: &Path, dir: &str, name: &str, version: &str) {
        let d = site.join(dir);
        fs::create_dir_all(&d).unwrap();
        fs::write(
            d.join("METADATA"),
            format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: x\n\nVersion: 9.9 (in the body)\n"),
        )
        .unwrap();
    }

    fn spec(dir: &Path) -> Spec {
        let text = "[env]\nname = \"t\"\nsystem = \"x86_64-linux\"\n\n[python]\nsite-packages = \"/usr/lib/python3/dist-packages\"\n";
        Spec::parse(&dir.join("t.toml"), text).unwrap()
    }

    #[test]
    fn mismatched_missing_and_extra_distributions_are_each_named() {
        let tmp = tempfile::tempdir().unwrap();
        let site = tmp.path().join("usr/lib/python3/dist-packages");
        dist(&site, "numpy-1.24.3.dist-info", "numpy", "1.24.3");
        dist(&site, "Pillow-10.2.0.dist-info", "Pillow", "10.2.0");
        dist(&site, "extra_thing-0.1.dist-info", "extra_thing", "0.1");
        let lock = lock(
            &[
                "numpy-1.24.4-cp311-cp311-manylinux_2_17_x86_64.whl",
                "pillow-10.2.0-cp311-cp311-manylinux_2_28_x86_64.whl",
            ],
            &[],
            &["tqdm-4.66.1-py3-none-any.whl"],
        );
        let o = dist_info_check(&spec(tmp.path()), tmp.path(), &lock);
        assert!(!o.passed);
        let site = "/usr/lib/python3/dist-packages";
        assert!(
            o.reason
                .contains(&format!("numpy: the lock pins 1.24.4, {site} has 1.24.3")),
            "{}",
            o.reason
        );
        assert!(
            o.reason.contains(&format!(
                "tqdm 4.66.1 is locked but not installed in {site}"
            )),
            "{}",
            o.reason
        );
        assert!(
            o.reason.contains(&format!(
                "extra_thing 0.1 is installed in {site} but not in the lock"
            )),
            "{}",
            o.reason
        );
        assert!(
            !o.reason.contains("Pillow"),
            "pillow matches (names normalized): {}",
            o.reason
        );
    }

    #[test]
    fn matching_versions_pass_and_pep440_equal_spellings_match() {
        let tmp = tempfile::tempdir().unwrap();
        let site = tmp.path().join("usr/lib/python3/dist-packages");
        dist(&site, "foo-1.0.dist-info", "foo", "1.0.0");
        let lock = lock(&[], &[], &["foo-1.0-py3-none-any.whl"]);
        let o = dist_info_check(&spec(tmp.path()), tmp.path(), &lock);
        assert!(o.passed, "{}", o.reason);
        assert!(o.reason.starts_with("1 distributions"), "{}", o.reason);
    }

    #[test]
    fn metadata_without_a_version_is_a_failure_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp
            .path()
            .join("usr/lib/python3/dist-packages/broken-1.dist-info");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("METADATA"), "Name: broken\n").unwrap();
        let o = dist_info_check(&spec(tmp.path()), tmp.path(), &Lock::default());
        assert!(!o.passed);
        assert!(
            o.reason
                .contains("broken-1.dist-info/METADATA has no Name or Version"),
            "{}",
            o.reason
        );
    }

    #[test]
    fn distributions_built_from_locked_sdists_match_their_lock_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let site = tmp.path().join("usr/lib/python3/dist-packages");
        dist(&site, "crcmod-1.7.dist-info", "crcmod", "1.7");
        dist(
            &site,
            "aliyun_python_sdk_core-2.16.0.dist-info",
            "aliyun-python-sdk-core",
            "2.16.0",
        );
        dist(&site, "oss2-2.19.0.dist-info", "oss2", "2.19.0");
        let lock = lock(
            &[],
            &[
                ("crcmod", "1.7", "crcmod-1.7.tar.gz"),
                (
                    "aliyun-python-sdk-core",
                    "2.16.0",
                    "aliyun-python-sdk-core-2.16.0.tar.gz",
                ),
                ("oss2", "2.19.1", "oss2-2.19.1.tar.gz"),
            ],
            &[],
        );
        let o = dist_info_check(&spec(tmp.path()), tmp.path(), &lock);
        assert!(!o.passed);
        assert_eq!(
            o.reason, "oss2: the lock pins 2.19.1, /usr/lib/python3/dist-packages has 2.19.0",
            "the sdist-built crcmod and aliyun-python-sdk-core match; oss2 is named with both versions"
        );
    }
}
