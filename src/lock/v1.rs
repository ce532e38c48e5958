//! Reading version 1 locks: a flat list of inputs whose kind is the prefix
//! of their `id`. This module is the only place those prefixes are
//! spelled; a v1 lock becomes a [`Lock`] with the same pins, which
//! `envbuild lock` then writes as version 2.
//!
//! ```text
//! [[input]] id = KIND ":" KEY, source, hash = ("sha256:" | "nar-sha256:" | "revision:") HEX, size
//! KIND = debian:request | deb | shell-debian:request | shell-deb
//!      | python:request | pypi | sdist | build (KEY = SDIST ":" WHEEL)
//!      | files | wheel | model | model-file (KEY = NAME "/" PATH)
//! ```
//!
//! Version 1 did not record a .deb's version or a wheel's project name: both
//! are read from the file names (a .deb file name drops the version's
//! epoch).

use serde::Deserialize;

use super::{
    deb_version_arch, DebPin, DebianLock, DistPin, FilesPin, Lock, ModelContent, ModelPin, NarPin,
    PinnedFile, PythonLock, SdistPin, WheelPin,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct V1 {
    source_date_epoch: u64,
    #[serde(default, rename = "input")]
    inputs: Vec<Input>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    id: String,
    source: String,
    hash: String,
    size: u64,
}

impl Input {
    fn sha256(&self) -> Result<String, String> {
        self.hash
            .strip_prefix("sha256:")
            .map(str::to_owned)
            .ok_or_else(|| {
                format!(
                    "input {}: expected a sha256: hash, found {}",
                    self.id, self.hash
                )
            })
    }

    fn file(&self, file: &str) -> Result<PinnedFile, String> {
        Ok(PinnedFile {
            file: file.to_owned(),
            sha256: self.sha256()?,
            size: self.size,
        })
    }

    fn nar(&self) -> Result<NarPin, String> {
        let hex = self.hash.strip_prefix("nar-sha256:").ok_or_else(|| {
            format!(
                "input {}: expected a nar-sha256: hash, found {}",
                self.id, self.hash
            )
        })?;
        Ok(NarPin {
            nar_sha256: hex.to_owned(),
            nar_size: self.size,
        })
    }
}

/// The (project name, version) a wheel's or sdist's file name gives.
fn dist_name_version(file: &str) -> Result<(String, String), String> {
    if let Ok(w) = crate::python::wheel::WheelFilename::parse(file) {
        return Ok((w.name, w.version));
    }
    crate::python::sdist::parse_filename(file)
        .ok_or_else(|| format!("{file} is neither a wheel's nor an sdist's file name"))
}

fn deb_pin(i: &Input, name: &str) -> Result<DebPin, String> {
    let (version, arch) = deb_version_arch(&i.source)
        .ok_or_else(|| format!("input {}: {} is not a .deb file name", i.id, i.source))?;
    Ok(DebPin {
        name: name.to_owned(),
        version,
        arch,
        file: i.file(&i.source)?,
    })
}

/// A v1 lock's table (less its `version`) as a [`Lock`].
pub(super) fn read(table: toml::Table) -> Result<Lock, String> {
    let v1 = V1::deserialize(table).map_err(|e| e.to_string().trim().replace('\n', " "))?;
    let mut lock = Lock {
        source_date_epoch: v1.source_date_epoch,
        ..Lock::default()
    };
    fn debian(slot: &mut Option<DebianLock>) -> &mut DebianLock {
        slot.get_or_insert_with(|| DebianLock {
            request: String::new(),
            packages: Vec::new(),
        })
    }
    fn python(slot: &mut Option<PythonLock>) -> &mut PythonLock {
        slot.get_or_insert_with(|| PythonLock {
            request: String::new(),
            exclude_newer: None,
            wheels: Vec::new(),
            sdists: Vec::new(),
        })
    }
    let mut builds: Vec<(String, PinnedFile)> = Vec::new();
    for i in &v1.inputs {
        let (kind, key) = i.id.split_once(':').unwrap_or((&i.id, ""));
        match kind {
            "debian" => debian(&mut lock.debian).request = i.source.clone(),
            "shell-debian" => debian(&mut lock.shell_debian).request = i.source.clone(),
            "deb" => debian(&mut lock.debian).packages.push(deb_pin(i, key)?),
            "shell-deb" => debian(&mut lock.shell_debian)
                .packages
                .push(deb_pin(i, key)?),
            "python" => python(&mut lock.python).request = i.source.clone(),
            "pypi" => {
                let (name, version) = dist_name_version(&i.source)?;
                python(&mut lock.python).wheels.push(DistPin {
                    name,
                    version,
                    file: i.file(&i.source)?,
                });
            }
            "sdist" => {
                let (name, version) = dist_name_version(&i.source)?;
                python(&mut lock.python).sdists.push(SdistPin {
                    name,
                    version,
                    file: i.file(&i.source)?,
                    build: Vec::new(),
                });
            }
            "build" => {
                let (sdist, _wheel) = key
                    .split_once(':')
                    .ok_or_else(|| format!("input {}: expected build:SDIST:WHEEL", i.id))?;
                builds.push((sdist.to_owned(), i.file(&i.source)?));
            }
            "files" => lock.files.push(FilesPin {
                dst: key.to_owned(),
                src: i.source.clone(),
                nar: i.nar()?,
            }),
            "wheel" => lock.wheels.push(WheelPin {
                source: i.source.clone(),
                file: i.file(key)?,
            }),
            "model" => {
                let content = if let Some(rev) = i.hash.strip_prefix("revision:") {
                    ModelContent::Hub {
                        revision: rev.to_owned(),
                        files: Vec::new(),
                    }
                } else if i.hash.starts_with("nar-sha256:") {
                    ModelContent::Local(i.nar()?)
                } else {
                    let name = i
                        .source
                        .split(['?', '#'])
                        .next()
                        .unwrap_or(&i.source)
                        .rsplit('/')
                        .next()
                        .unwrap_or("model");
                    ModelContent::Url(i.file(name)?)
                };
                lock.models.push(ModelPin {
                    name: key.to_owned(),
                    source: i.source.clone(),
                    content,
                });
            }
            "model-file" => {}
            _ => return Err(format!("input {}: unknown kind {kind:?}", i.id)),
        }
    }
    for (sdist, wheel) in builds {
        let s = lock
            .python
            .as_mut()
            .and_then(|p| p.sdists.iter_mut().find(|s| s.file.file == sdist))
            .ok_or_else(|| {
                format!("a build requirement names the sdist {sdist}, which the lock does not pin")
            })?;
        s.build.push(wheel);
    }
    for i in &v1.inputs {
        let Some(key) = i.id.strip_prefix("model-file:") else {
            continue;
        };
        let (name, path) = key
            .split_once('/')
            .ok_or_else(|| format!("input {}: expected model-file:NAME/PATH", i.id))?;
        match lock.models.iter_mut().find(|m| m.name == name) {
            Some(ModelPin {
                content: ModelContent::Hub { files, .. },
                ..
            }) => files.push(i.file(path)?),
            _ => return Err(format!("input {}: no hub model {name} in the lock", i.id)),
        }
    }
    Ok(lock.normalized())
}

/// One version-1 input: (id, source, hash, size).
pub type V1Input = (String, String, String, u64);

/// `lock` as version 1 would have listed it: every pin as an input with
/// its kind in the id's prefix. For tools and tests that still think in
/// v1 ids; envbuild writes version 2.
pub fn inputs(lock: &Lock) -> Vec<V1Input> {
    let mut out: Vec<V1Input> = Vec::new();
    let sha = |f: &PinnedFile| format!("sha256:{}", f.sha256);
    let nar = |n: &NarPin| format!("nar-sha256:{}", n.nar_sha256);
    for (kind, prefix, d) in [
        ("debian", "deb", &lock.debian),
        ("shell-debian", "shell-deb", &lock.shell_debian),
    ] {
        if let Some(d) = d {
            let request_hash =
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(d.request.as_bytes()));
            out.push((
                format!("{kind}:request"),
                d.request.clone(),
                format!("sha256:{request_hash}"),
                d.packages.len() as u64,
            ));
            for p in &d.packages {
                out.push((
                    format!("{prefix}:{}", p.name),
                    p.file.file.clone(),
                    sha(&p.file),
                    p.file.size,
                ));
            }
        }
    }
    if let Some(p) = &lock.python {
        out.push((
            "python:request".into(),
            p.request.clone(),
            String::new(),
            (p.wheels.len() + p.sdists.len()) as u64,
        ));
        for w in &p.wheels {
            out.push((
                format!("pypi:{}", w.file.file),
                w.file.file.clone(),
                sha(&w.file),
                w.file.size,
            ));
        }
        for s in &p.sdists {
            out.push((
                format!("sdist:{}", s.file.file),
                s.file.file.clone(),
                sha(&s.file),
                s.file.size,
            ));
            for b in &s.build {
                out.push((
                    format!("build:{}:{}", s.file.file, b.file),
                    b.file.clone(),
                    sha(b),
                    b.size,
                ));
            }
        }
    }
    for f in &lock.files {
        out.push((
            format!("files:{}", f.dst),
            f.src.clone(),
            nar(&f.nar),
            f.nar.nar_size,
        ));
    }
    for w in &lock.wheels {
        out.push((
            format!("wheel:{}", w.file.file),
            w.source.clone(),
            sha(&w.file),
            w.file.size,
        ));
    }
    for m in &lock.models {
        let id = format!("model:{}", m.name);
        match &m.content {
            ModelContent::Hub { revision, files } => {
                out.push((
                    id,
                    m.source.clone(),
                    format!("revision:{revision}"),
                    files.len() as u64,
                ));
                for f in files {
                    out.push((
                        format!("model-file:{}/{}", m.name, f.file),
                        f.file.clone(),
                        sha(f),
                        f.size,
                    ));
                }
            }
            ModelContent::Url(f) => out.push((id, m.source.clone(), sha(f), f.size)),
            ModelContent::Local(n) => out.push((id, m.source.clone(), nar(n), n.nar_size)),
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::*;

    #[test]
    fn the_ofa_ve_version_1_lock_reads_with_every_pin() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ofa-ve.v1.lock");
        let text = std::fs::read_to_string(&path).unwrap();
        let inputs = text.matches("[[input]]").count();
        let read = Lock::parse(&path, &text).unwrap();
        assert_eq!(read.version, 1);
        let lock = read.lock;
        let d = lock.debian.as_ref().unwrap();
        let libc = d.packages.iter().find(|p| p.name == "libc6").unwrap();
        assert_eq!(libc.version, "2.36-9+deb12u14");
        assert_eq!(libc.arch, "amd64");
        let py = lock.python.as_ref().unwrap();
        assert!(py
            .wheels
            .iter()
            .any(|w| w.name == "torch" && w.version == "2.1.0"));
        let crcmod = py.sdists.iter().find(|s| s.name == "crcmod").unwrap();
        assert_eq!(crcmod.version, "1.7");
        assert_eq!(crcmod.build.len(), 2);
        // Every v1 input is one pin (or one request) of the typed lock.
        let requests = text.matches(":request\"").count();
        assert_eq!(lock.pin_count() + requests, inputs, "{:#?}", lock.entries());
        // And it writes as version 2, which reads back to the same pins.
        let v2 = Lock::parse(&path, &lock.to_toml()).unwrap();
        assert_eq!(v2.version, 2);
        assert_eq!(v2.lock, lock);
    }
}
