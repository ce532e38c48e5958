//! `[base] debian` and `[shell] packages`: Debian packages from the signed
//! archive ([`crate::debian::archive`]), pinned by their mirror-relative
//! `Filename`, sha256 and size, fetched from whatever mirror the
//! configuration names at fetch time and unpacked by `unpack-deb`.
//!
//! The shell's packages are resolved together with the base's, less the
//! packages the base pins, and become shell-only components.

use std::collections::{BTreeMap, BTreeSet};

use super::{PinContext, PlanContext, Source, SourceError, Upgrade};
use crate::debian::archive;
use crate::fetch::FetchError;
use crate::lock::{DebPin, DebianLock, Lock, PinnedFile};
use crate::plan::{item_name, Builder, Input, InputKind, Origin, Plan, Ref, StepId};
use crate::spec::{DebianBase, Spec};

/// One set of Debian packages: the base's, or the shell's.
pub struct DebianSource<'a> {
    base: &'a DebianBase,
    /// `[shell] packages`, for the shell's set.
    shell: Option<&'a [String]>,
}

impl<'a> DebianSource<'a> {
    pub fn base(base: &'a DebianBase) -> Self {
        DebianSource { base, shell: None }
    }

    pub fn shell(base: &'a DebianBase, packages: &'a [String]) -> Self {
        DebianSource {
            base,
            shell: Some(packages),
        }
    }

    /// The request as the lock records it: a changed request resolves
    /// again.
    fn request(&self) -> String {
        let b = self.base;
        let base = format!("{}/{}: {}", b.suite, b.component, b.packages.join(" "));
        match self.shell {
            None => base,
            Some(shell) => format!("{base} + shell: {}", shell.join(" ")),
        }
    }

    /// For messages.
    fn what(&self) -> &'static str {
        if self.shell.is_some() {
            "[shell] packages"
        } else {
            "[base]"
        }
    }

    fn section<'l>(&self, lock: &'l Lock) -> Option<&'l DebianLock> {
        if self.shell.is_some() {
            lock.shell_debian.as_ref()
        } else {
            lock.debian.as_ref()
        }
    }
}

impl Source for DebianSource<'_> {
    fn pin(&self, cx: &mut PinContext, lock: &mut Lock) -> Result<(), SourceError> {
        let request = self.request();
        let shell = self.shell.is_some();
        let reused = cx.old.and_then(|l| l.debian_for(shell, &request)).cloned();
        let section = match reused {
            Some(s) => s,
            None => {
                let base = self.base;
                if cx.fetch.offline {
                    return Err(FetchError::Offline {
                        url: format!(
                            "the {} archive index (no lock for this {})",
                            base.suite,
                            self.what()
                        ),
                    }
                    .into());
                }
                let mut packages = base.packages.clone();
                // The base's own packages are pinned in its section.
                let exclude: BTreeSet<String> = match self.shell {
                    Some(extra) => {
                        packages.extend(extra.iter().cloned());
                        packages.sort();
                        packages.dedup();
                        lock.debian
                            .iter()
                            .flat_map(|d| &d.packages)
                            .map(|p| p.name.clone())
                            .collect()
                    }
                    None => BTreeSet::new(),
                };
                let mirror = archive::mirror_for(base.mirror.as_deref(), &base.suite)?;
                let keyring = archive::keyring_for(base.keyring.as_deref());
                let scratch = cx.store.scratch("debian-release")?;
                let kept = cx.store.cache_dir("debian-release")?;
                let kept = crate::net::answers::AnswerCache::new(kept.join("inrelease-v1"))
                    .map_err(|source| archive::ArchiveError::Http {
                        what: "InRelease (its cache)",
                        suite: base.suite.clone(),
                        source,
                    })?;
                let release = archive::fetch_release_cached(
                    &mirror,
                    &base.suite,
                    &keyring,
                    scratch.path(),
                    Some(&kept),
                )?;
                // Minimal change: the old lock's pins of this section stay
                // where the index still offers them (unless upgrading).
                // `--upgrade-package NAME` moves a Debian package of that name.
                let prefer: BTreeMap<String, String> = match (&cx.upgrade, cx.old) {
                    (Upgrade::All, _) | (_, None) => BTreeMap::new(),
                    (upgrade, Some(old)) => self
                        .section(old)
                        .iter()
                        .flat_map(|d| &d.packages)
                        .filter(|p| match upgrade {
                            Upgrade::Packages(names) => !names.contains(&p.name),
                            _ => true,
                        })
                        .map(|p| (p.name.clone(), p.file.file.clone()))
                        .collect(),
                };
                let closures = ClosureCache {
                    dir: cx.store.cache_dir("debian-release")?.join("closures-v1"),
                };
                let key = closure_key(base, &release, &packages, &prefer);
                let closure = match closures.get(&key) {
                    Some(c) => c,
                    None => {
                        let index = archive::fetch_index(
                            cx.store,
                            &mirror,
                            &base.suite,
                            &base.component,
                            &release,
                            &cx.fetch,
                        )?;
                        let c = index.closure_preferring(&packages, &prefer)?;
                        closures.put(&key, &c);
                        c
                    }
                };
                let packages = closure
                    .into_iter()
                    .filter(|d| !exclude.contains(&d.name))
                    .map(|d| {
                        let arch = crate::lock::deb_version_arch(&d.filename)
                            .map(|(_, a)| a)
                            .unwrap_or_default();
                        DebPin {
                            name: d.name,
                            version: d.version,
                            arch,
                            file: PinnedFile {
                                file: d.filename,
                                sha256: d.sha256,
                                size: d.size,
                            },
                        }
                    })
                    .collect();
                DebianLock { request, packages }
            }
        };
        if shell {
            lock.shell_debian = Some(section);
        } else {
            lock.debian = Some(section);
        }
        Ok(())
    }

    fn plan(&self, _cx: &mut PlanContext, lock: &Lock, plan: &mut Plan) -> Result<(), SourceError> {
        let Some(section) = self.section(lock) else {
            return Ok(());
        };
        for p in &section.packages {
            let file = &p.file.file;
            let base = file.rsplit('/').next().unwrap_or(file);
            let input = plan.add_input(Input {
                name: item_name(base),
                what: format!("deb {} {}", p.name, p.version),
                kind: InputKind::Fetch {
                    file: file.clone(),
                    sha256: p.file.sha256.clone(),
                    size: p.file.size,
                    origin: Origin::DebianMirror {
                        mirror: self.base.mirror.clone(),
                        suite: self.base.suite.clone(),
                        file: file.clone(),
                    },
                },
            });
            let step = plan.add_step(
                item_name(base.trim_end_matches(".deb")),
                Builder::UnpackDeb {
                    filename: file.clone(),
                },
                vec![input],
            );
            if self.shell.is_some() {
                plan.shell_components.push(step);
            } else {
                plan.components.push(step);
            }
        }
        Ok(())
    }
}

/// The step that compiles the Debian base's Python modules to bytecode
/// (see [`Builder::DebianBytecode`]): planned when the spec compiles
/// bytecode (the default) and the base holds the interpreter
/// (`python3.X-minimal` is locked), with the base's components
/// `base` as its inputs.
pub fn plan_bytecode(spec: &Spec, lock: &Lock, plan: &mut Plan, base: &[StepId]) {
    let (_, minor) = spec.python.version;
    let interpreter = format!("python3.{minor}-minimal");
    let has_python = lock
        .debian
        .as_ref()
        .is_some_and(|d| d.packages.iter().any(|p| p.name == interpreter));
    if spec.python.compile_bytecode == Some(false) || !has_python || base.is_empty() {
        return;
    }
    // The spec's shebang when it names one (the interpreter the wheels
    // compile with), else the one python3.X-minimal installs: the default
    // shebang (/usr/local/bin/python3) is not Debian's.
    let python = if spec.python.named.shebang {
        spec.python.shebang.clone()
    } else {
        format!("/usr/bin/python3.{minor}")
    };
    let step = plan.add_step(
        "debian-python-bytecode",
        Builder::DebianBytecode { python },
        base.iter().map(|&s| Ref::Step(s)).collect(),
    );
    plan.components.push(step);
}

/// Closures already computed, by what they are a function of: the
/// `Packages` index (its sha256s in the verified Release), the roots and the
/// preferred pins. A warm lock then neither decompresses nor parses the
/// index. An entry that does not read is ignored; writing one is best
/// effort.
struct ClosureCache {
    dir: std::path::PathBuf,
}

/// The key of a closure: sha256 over the format, suite, component, every
/// `Packages` file of the component the Release lists with its sha256, the
/// roots and the preferred pins.
fn closure_key(
    base: &DebianBase,
    release: &archive::Release,
    roots: &[String],
    prefer: &BTreeMap<String, String>,
) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let mut line = |s: &str| {
        h.update(s.as_bytes());
        h.update(b"\n");
    };
    line("envbuild debian closure v1");
    line(env!("CARGO_PKG_VERSION"));
    line(&base.suite);
    line(&base.component);
    let prefix = format!("{}/binary-{}/Packages", base.component, archive::ARCH);
    for (name, (sha, size)) in &release.sha256 {
        if name.starts_with(&prefix) {
            line(&format!("{name} {sha} {size}"));
        }
    }
    line("roots");
    for r in roots {
        line(r);
    }
    line("prefer");
    for (n, f) in prefer {
        line(&format!("{n} {f}"));
    }
    hex::encode(h.finalize())
}

impl ClosureCache {
    fn path(&self, key: &str) -> std::path::PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    fn get(&self, key: &str) -> Option<Vec<archive::PinnedDeb>> {
        use std::io::Read;
        let mut bytes = Vec::new();
        std::fs::File::open(self.path(key))
            .ok()?
            .take(64 << 20)
            .read_to_end(&mut bytes)
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn put(&self, key: &str, closure: &[archive::PinnedDeb]) {
        let written = std::fs::create_dir_all(&self.dir).and_then(|()| {
            let bytes = serde_json::to_vec(closure).map_err(std::io::Error::other)?;
            crate::io::write_atomically(&self.path(key), &bytes)
        });
        if let Err(e) = written {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot keep a Debian closure");
        }
    }
}
