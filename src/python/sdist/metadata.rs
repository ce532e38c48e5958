//! An sdist's static metadata and build system.
//!
//! Requirements are read from the first of these that declares them
//! statically (the one used is recorded as [`MetadataSource`]):
//!
//! 1. `PKG-INFO` with `Metadata-Version` ≥ 2.2 (PEP 643) and
//!    `Requires-Dist` not listed in `Dynamic`;
//! 2. `pyproject.toml` `[project]` (PEP 621) with `dependencies` not in
//!    `project.dynamic` (and `optional-dependencies`, as `extra == …`
//!    markers, unless dynamic);
//! 3. setuptools' `*.egg-info/requires.txt` (sections `[extra]`,
//!    `[:marker]`, `[extra:marker]`); an `*.egg-info` directory without it
//!    means no requirements (setuptools writes it only when there are some);
//! 4. a plain distutils sdist (`Metadata-Version` 1.x, no egg-info, no
//!    `pyproject.toml`, a `setup.py` that mentions neither setuptools nor
//!    `install_requires`): distutils cannot declare requirements, so none.
//!
//! Anything else is dynamic: [`SdistError::DynamicMetadata`].
//! `Requires-Python` comes from `PKG-INFO`, else `[project]`.
//!
//! The build system is `pyproject.toml`'s `[build-system]` (`requires`,
//! `build-backend`, `backend-path`), defaulting per PEP 517/518 to
//! `setuptools>=40.8.0` + `wheel` with `setuptools.build_meta:__legacy__`.

use std::fmt;

use super::archive::MetadataFiles;
use super::error::SdistError;

/// Where an sdist's requirements were read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MetadataSource {
    PkgInfo,
    Pyproject,
    EggInfo,
    Distutils,
}

impl fmt::Display for MetadataSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MetadataSource::PkgInfo => "PKG-INFO (Metadata-Version >= 2.2, static Requires-Dist)",
            MetadataSource::Pyproject => "pyproject.toml [project]",
            MetadataSource::EggInfo => "egg-info/requires.txt",
            MetadataSource::Distutils => "distutils PKG-INFO 1.x (no requirements possible)",
        })
    }
}

/// PEP 517 build system of an sdist.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BuildSystem {
    /// PEP 508 requirements of the build.
    pub requires: Vec<String>,
    /// `module` or `module:object`.
    pub backend: String,
    /// Directories (relative to the source tree) put first on `sys.path`.
    pub backend_path: Vec<String>,
}

impl BuildSystem {
    /// The PEP 517/518 default for an sdist without `[build-system]`.
    pub fn legacy() -> Self {
        BuildSystem {
            requires: vec!["setuptools>=40.8.0".into(), "wheel".into()],
            backend: "setuptools.build_meta:__legacy__".into(),
            backend_path: Vec::new(),
        }
    }
}

/// What resolution and building need of an sdist.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SdistMetadata {
    pub name: String,
    pub version: String,
    pub requires_python: Option<String>,
    /// PEP 508 requirement strings (extras as `extra == "x"` markers).
    pub requires_dist: Vec<String>,
    pub source: MetadataSource,
    pub build_system: BuildSystem,
}

use crate::python::core_metadata::header as get;

fn all<'a>(h: &'a [(String, String)], name: &str) -> impl Iterator<Item = &'a str> + 'a {
    let name = name.to_owned();
    h.iter()
        .filter(move |(k, _)| k.eq_ignore_ascii_case(&name))
        .map(|(_, v)| v.as_str())
}

/// (major, minor) of a `Metadata-Version`.
fn metadata_version(text: &str) -> Option<(u32, u32)> {
    let (a, b) = text.trim().split_once('.').unwrap_or((text.trim(), "0"));
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Add `extra == "e"` and/or a marker to a requirement line.
fn with_marker(req: &str, extra: Option<&str>, marker: Option<&str>) -> String {
    let (base, own) = match req.split_once(';') {
        Some((b, m)) => (b.trim(), Some(m.trim())),
        None => (req.trim(), None),
    };
    let mut markers: Vec<String> = Vec::new();
    for m in [own, marker].into_iter().flatten() {
        if !m.is_empty() {
            markers.push(format!("({m})"));
        }
    }
    if let Some(e) = extra.filter(|e| !e.is_empty()) {
        markers.push(format!("extra == \"{e}\""));
    }
    if markers.is_empty() {
        base.to_owned()
    } else {
        format!("{base} ; {}", markers.join(" and "))
    }
}

/// setuptools' `requires.txt`: lines of requirements, grouped by
/// `[extra]`, `[:marker]` or `[extra:marker]` sections.
pub fn parse_requires_txt(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut extra, mut marker): (Option<String>, Option<String>) = (None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let (e, m) = section.split_once(':').unwrap_or((section, ""));
            extra = Some(e.trim().to_owned()).filter(|e| !e.is_empty());
            marker = Some(m.trim().to_owned()).filter(|m| !m.is_empty());
            continue;
        }
        out.push(with_marker(line, extra.as_deref(), marker.as_deref()));
    }
    out
}

fn check_requirements(sdist: &str, file: &str, reqs: &[String]) -> Result<(), SdistError> {
    for r in reqs {
        if let Err(e) = crate::python::pep508::parse_requirement::<pep508_rs::VerbatimUrl>(r) {
            return Err(SdistError::BadMetadata {
                sdist: sdist.to_owned(),
                file: file.to_owned(),
                expected: "PEP 508 requirements".into(),
                found: format!("{r:?} ({e})"),
            });
        }
    }
    Ok(())
}

fn toml_strings(v: Option<&toml::Value>) -> Option<Vec<String>> {
    v?.as_array()?
        .iter()
        .map(|x| x.as_str().map(str::to_owned))
        .collect()
}

/// `[build-system]` of a `pyproject.toml` (the PEP 517/518 default when
/// there is no file or no table; `requires` is mandatory in the table).
pub fn build_system(
    sdist: &str,
    pyproject: Option<&toml::Table>,
) -> Result<BuildSystem, SdistError> {
    let Some(bs) = pyproject.and_then(|p| p.get("build-system")) else {
        return Ok(BuildSystem::legacy());
    };
    let bad = |expected: &str, found: String| SdistError::BadMetadata {
        sdist: sdist.to_owned(),
        file: "pyproject.toml [build-system]".into(),
        expected: expected.into(),
        found,
    };
    let Some(bs) = bs.as_table() else {
        return Err(bad("a table", bs.type_str().into()));
    };
    let requires = toml_strings(bs.get("requires"))
        .ok_or_else(|| bad("requires = [strings]", format!("{:?}", bs.get("requires"))))?;
    check_requirements(sdist, "pyproject.toml [build-system] requires", &requires)?;
    let backend = match bs.get("build-backend") {
        None => BuildSystem::legacy().backend,
        Some(v) => v
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| bad("build-backend = \"module:object\"", v.to_string()))?,
    };
    let backend_path = match bs.get("backend-path") {
        None => Vec::new(),
        Some(v) => {
            toml_strings(Some(v)).ok_or_else(|| bad("backend-path = [strings]", v.to_string()))?
        }
    };
    for p in &backend_path {
        if p.starts_with('/') || p.split('/').any(|c| c == "..") {
            return Err(bad(
                "backend-path entries inside the source tree",
                p.clone(),
            ));
        }
    }
    Ok(BuildSystem {
        requires,
        backend,
        backend_path,
    })
}

/// The static metadata of an sdist from its [`MetadataFiles`] (see the
/// module documentation for the order).
pub fn read_metadata(sdist: &str, files: &MetadataFiles) -> Result<SdistMetadata, SdistError> {
    let pyproject: Option<toml::Table> = match files.get("pyproject.toml") {
        None => None,
        Some(text) => Some(toml::from_str(text).map_err(|e| SdistError::BadMetadata {
            sdist: sdist.to_owned(),
            file: "pyproject.toml".into(),
            expected: "TOML".into(),
            found: e.to_string(),
        })?),
    };
    let build_system = build_system(sdist, pyproject.as_ref())?;
    let pkg_info = files
        .get("PKG-INFO")
        .ok_or_else(|| SdistError::BadMetadata {
            sdist: sdist.to_owned(),
            file: "PKG-INFO".into(),
            expected: "a PKG-INFO file at the top of the sdist".into(),
            found: "none".into(),
        })?;
    let bad_pkg_info = |expected: &str, found: String| SdistError::BadMetadata {
        sdist: sdist.to_owned(),
        file: "PKG-INFO".into(),
        expected: expected.into(),
        found,
    };
    let h = crate::python::core_metadata::headers(pkg_info)
        .map_err(|e| bad_pkg_info("RFC 822 headers", e))?;
    let name = get(&h, "Name")
        .ok_or_else(|| bad_pkg_info("a Name header", "none".into()))?
        .to_owned();
    let version = get(&h, "Version")
        .ok_or_else(|| bad_pkg_info("a Version header", "none".into()))?
        .to_owned();
    let mv_text = get(&h, "Metadata-Version").unwrap_or("1.0");
    let mv = metadata_version(mv_text)
        .ok_or_else(|| bad_pkg_info("Metadata-Version N.M", mv_text.to_owned()))?;
    let project = pyproject
        .as_ref()
        .and_then(|p| p.get("project"))
        .and_then(|p| p.as_table());
    let requires_python = get(&h, "Requires-Python")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            project
                .and_then(|p| p.get("requires-python"))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        });
    let done = |requires_dist: Vec<String>, source, file: &str| {
        check_requirements(sdist, file, &requires_dist)?;
        Ok(SdistMetadata {
            name: name.clone(),
            version: version.clone(),
            requires_python: requires_python.clone(),
            requires_dist,
            source,
            build_system: build_system.clone(),
        })
    };

    // 1. PKG-INFO 2.2+ with static Requires-Dist.
    let dynamic: Vec<String> = all(&h, "Dynamic").map(|d| d.to_ascii_lowercase()).collect();
    if mv >= (2, 2) && !dynamic.iter().any(|d| d == "requires-dist") {
        let reqs = all(&h, "Requires-Dist").map(str::to_owned).collect();
        return done(reqs, MetadataSource::PkgInfo, "PKG-INFO");
    }
    // 2. pyproject.toml [project], dependencies not dynamic.
    if let Some(p) = project {
        let dynamic = toml_strings(p.get("dynamic")).unwrap_or_default();
        if !dynamic.iter().any(|d| d == "dependencies") {
            let mut reqs = toml_strings(p.get("dependencies")).unwrap_or_default();
            if !dynamic.iter().any(|d| d == "optional-dependencies") {
                if let Some(opt) = p.get("optional-dependencies").and_then(|o| o.as_table()) {
                    for (extra, list) in opt {
                        for r in toml_strings(Some(list)).unwrap_or_default() {
                            reqs.push(with_marker(&r, Some(extra), None));
                        }
                    }
                }
            }
            return done(reqs, MetadataSource::Pyproject, "pyproject.toml [project]");
        }
    }
    // 3. egg-info.
    let mut egg_dirs: Vec<&str> = files
        .files
        .keys()
        .filter_map(|k| k.rsplit_once('/').map(|(d, _)| d))
        .filter(|d| d.ends_with(".egg-info"))
        .collect();
    egg_dirs.sort_by_key(|d| (d.matches('/').count(), *d));
    if let Some(dir) = egg_dirs.first() {
        let file = format!("{dir}/requires.txt");
        let reqs = files.get(&file).map(parse_requires_txt).unwrap_or_default();
        return done(reqs, MetadataSource::EggInfo, &file);
    }
    // 4. Plain distutils.
    if mv < (2, 0) && pyproject.is_none() {
        if let Some(setup) = files.get("setup.py") {
            if !setup.contains("setuptools") && !setup.contains("install_requires") {
                return done(Vec::new(), MetadataSource::Distutils, "PKG-INFO");
            }
        }
    }
    Err(SdistError::DynamicMetadata {
        sdist: sdist.to_owned(),
        tried: format!(
            "PKG-INFO (Metadata-Version {mv_text}{}), pyproject.toml [project], *.egg-info/requires.txt",
            if dynamic.is_empty() { "" } else { ", Requires-Dist dynamic" }
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> MetadataFiles {
        MetadataFiles {
            files: list
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn pkg_info_2_2_with_static_requires_dist() {
        let f = files(&[(
            "PKG-INFO",
            "Metadata-Version: 2.2\nName: a\nVersion: 1.0\nRequires-Python: >=3.8\nRequires-Dist: b>=1\nRequires-Dist: c; extra == \"x\"\n\nbody\nRequires-Dist: nope\n",
        )]);
        let m = read_metadata("a-1.0.tar.gz", &f).unwrap();
        assert_eq!(m.source, MetadataSource::PkgInfo);
        assert_eq!(m.requires_dist, vec!["b>=1", "c; extra == \"x\""]);
        assert_eq!(m.requires_python.as_deref(), Some(">=3.8"));
        assert_eq!(m.build_system, BuildSystem::legacy());
    }

    #[test]
    fn dynamic_requires_dist_falls_through_to_egg_info() {
        let f = files(&[
            (
                "PKG-INFO",
                "Metadata-Version: 2.2\nName: a\nVersion: 1.0\nDynamic: Requires-Dist\n",
            ),
            (
                "a.egg-info/requires.txt",
                "six\nrequests!=2.9.0\n\n[:python_version < \"3.8\"]\nimportlib-metadata\n\n[socks]\npysocks\n\n[tests:sys_platform == \"win32\"]\npywin32\n",
            ),
        ]);
        let m = read_metadata("a-1.0.tar.gz", &f).unwrap();
        assert_eq!(m.source, MetadataSource::EggInfo);
        assert_eq!(
            m.requires_dist,
            vec![
                "six",
                "requests!=2.9.0",
                "importlib-metadata ; (python_version < \"3.8\")",
                "pysocks ; extra == \"socks\"",
                "pywin32 ; (sys_platform == \"win32\") and extra == \"tests\"",
            ]
        );
    }

    #[test]
    fn egg_info_without_requires_txt_means_none() {
        let f = files(&[
            ("PKG-INFO", "Metadata-Version: 2.1\nName: a\nVersion: 1.0\n"),
            ("a.egg-info/PKG-INFO", "Metadata-Version: 2.1\nName: a\n"),
        ]);
        let m = read_metadata("a-1.0.tar.gz", &f).unwrap();
        assert_eq!(m.source, MetadataSource::EggInfo);
        assert!(m.requires_dist.is_empty());
    }

    #[test]
    fn pyproject_project_table_and_build_system() {
        let f = files(&[
            ("PKG-INFO", "Metadata-Version: 2.1\nName: a\nVersion: 1.0\n"),
            (
                "pyproject.toml",
                "[build-system]\nrequires = [\"flit_core>=3.2\"]\nbuild-backend = \"flit_core.buildapi\"\nbackend-path = [\"_build\"]\n\n[project]\nname = \"a\"\nrequires-python = \">=3.9\"\ndependencies = [\"b\"]\n[project.optional-dependencies]\nx = [\"c>1\"]\n",
            ),
        ]);
        let m = read_metadata("a-1.0.tar.gz", &f).unwrap();
        assert_eq!(m.source, MetadataSource::Pyproject);
        assert_eq!(m.requires_dist, vec!["b", "c>1 ; extra == \"x\""]);
        assert_eq!(m.requires_python.as_deref(), Some(">=3.9"));
        assert_eq!(m.build_system.backend, "flit_core.buildapi");
        assert_eq!(m.build_system.backend_path, vec!["_build"]);
        assert_eq!(m.build_system.requires, vec!["flit_core>=3.2"]);
    }

    #[test]
    fn distutils_sdist_has_no_requirements_and_dynamic_is_an_error() {
        let pkg = "Metadata-Version: 1.0\nName: crcmod\nVersion: 1.7\n";
        let f = files(&[
            ("PKG-INFO", pkg),
            ("setup.py", "from distutils.core import setup\nsetup()\n"),
        ]);
        let m = read_metadata("crcmod-1.7.tar.gz", &f).unwrap();
        assert_eq!(m.source, MetadataSource::Distutils);
        assert!(m.requires_dist.is_empty());
        let f = files(&[
            ("PKG-INFO", pkg),
            (
                "setup.py",
                "from setuptools import setup\nsetup(install_requires=['x'])\n",
            ),
        ]);
        let e = read_metadata("crcmod-1.7.tar.gz", &f)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("crcmod-1.7.tar.gz") && e.contains("prepare_metadata_for_build_wheel"),
            "{e}"
        );
    }

    #[test]
    fn bad_input_names_the_file() {
        let f = files(&[(
            "PKG-INFO",
            "Metadata-Version: 2.2\nName: a\nVersion: 1.0\nRequires-Dist: b >>> 1\n",
        )]);
        let e = read_metadata("a-1.0.tar.gz", &f).unwrap_err().to_string();
        assert!(
            e.contains("a-1.0.tar.gz") && e.contains("PKG-INFO") && e.contains("b >>> 1"),
            "{e}"
        );
        let f = files(&[
            ("PKG-INFO", "Metadata-Version: 2.2\nName: a\nVersion: 1.0\n"),
            ("pyproject.toml", "[build-system]\nbuild-backend = \"x\"\n"),
        ]);
        let e = read_metadata("a-1.0.tar.gz", &f).unwrap_err().to_string();
        assert!(e.contains("requires = [strings]"), "{e}");
        let e = read_metadata("a-1.0.tar.gz", &files(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("PKG-INFO"), "{e}");
    }
}
