//! Installing one wheel into an empty destination directory, per the Binary
//! Distribution Format (PEP 427, packaging.python.org
//! `specifications/binary-distribution-format`), the way pip 23 and
//! `installer` lay the files out, but deterministic and strict.
//!
//! The destination becomes one component: a tree laid out like the root
//! filesystem, so every path written is `dest/<scheme path>/...` with scheme
//! paths relative to the root (`usr/local/lib/python3.11/site-packages`).
//!
//! Rules implemented:
//!
//! - **File name**: `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`,
//!   the build tag starting with a digit ([`WheelFilename`]).
//! - **Archive hygiene**: members whose names are absolute (`/x`, `C:x`),
//!   have `..`, `.` or empty components (also when `\` is read as a
//!   separator), hold NUL, are flagged UTF-8 but are not, are zip symlinks,
//!   or occur twice in the central directory are refused, naming the wheel
//!   and the member (the member-path rules are [`crate::unpack`]'s, shared
//!   with the .deb and sdist unpackers).
//! - **`.dist-info`**: exactly one top-level `*.dist-info` directory, whose
//!   name part matches the file name's under PEP 503 normalization (as pip
//!   matches them). `WHEEL` must carry `Wheel-Version: 1.x`;
//!   `Root-Is-Purelib: true` sends root files to purelib, anything else to
//!   platlib.
//! - **RECORD**, strictly: every member except `RECORD`, `RECORD.jws` and
//!   `RECORD.p7s` is listed with `sha256=<urlsafe base64, no padding>` and
//!   its size; every row carrying a hash names a member; the bytes read
//!   (streamed, never buffered whole, and never more than the recorded size
//!   plus one) must match. Members are hashed while they are extracted, so a
//!   mismatch is found after the file was written: the function then
//!   returns `Err` and the caller discards the destination.
//! - **`.data` spreading**: `{dist-info stem}.data/{purelib,platlib,scripts,
//!   data,headers}/...` go to the scheme's directories (headers to
//!   `<headers>/<name>`, as sysconfig's `posix_prefix` does); any other key,
//!   a file directly under `.data/`, or a second `*.data` directory is an
//!   error. Scripts whose first line starts with `#!python` (so also
//!   `#!pythonw`) get `#!<interpreter>` instead, as pip does. Setuptools'
//!   own wrappers for an entry point (`NAME`, `NAME.exe`, `NAME-script.py`,
//!   `NAME.pya` in `.data/scripts`) are verified but not installed, as pip
//!   skips them: the generated launcher replaces them.
//! - **Entry points**: `[console_scripts]` and `[gui_scripts]` of
//!   `entry_points.txt` become launchers in the scripts directory, in the
//!   form pip, `installer` and uv write (`from module import head` then
//!   `sys.exit(head.rest())`); an entry without `:attr`, a script name with
//!   `/`, or a module/attribute that is not a dotted identifier is an error.
//! - **Metadata written**: `INSTALLER` (the installer name and a newline) and
//!   a new `RECORD` listing every installed file relative to the root
//!   library directory (pip's convention: scripts as `../../../bin/x`),
//!   with sha256 and size, RECORD itself with empty fields, rows sorted,
//!   `\n` line ends. `REQUESTED` and `direct_url.json` are not written.
//! - **Bytecode**: with a [`Compiler`] ([`install_wheel_compiling`]), the
//!   `.py` files installed into the library directories are compiled as
//!   [`crate::python::bytecode`] says, and their `__pycache__/*.pyc` files
//!   are written and listed in RECORD with their hashes (as pip lists them);
//!   a pyc the wheel ships itself is kept. Without one, no `.pyc` is written. The wheel's `RECORD.jws`/`.p7s`
//!   sign the old RECORD and are not installed.
//! - **Modes**: the tree is written in the store's canonical form, through
//!   the store's [`TreeWriter`] in NAR order: files whose zip unix mode has
//!   any x bit, scripts and launchers are 0555, other files 0444,
//!   directories 0555, every mtime 1, whatever the umask.
//! - **Determinism**: the tree and every byte in it depend only on the
//!   wheel's member names and contents and the options, not on member order,
//!   timestamps, umask or machine. Two members (or a member and a generated
//!   file) that would land on one path are an error naming both.

mod archive;
mod error;
mod filename;
mod paths;
mod plan;
// The text formats of a wheel's `.dist-info`, public for the fuzz targets
// (`fuzz/`); not an API of their own.
#[doc(hidden)]
pub mod metadata;
#[doc(hidden)]
pub mod record;
mod scripts;
#[cfg(test)]
mod tests;

use std::io;
use std::path::Path;

use envbuild_store::nar::{nar_order, TreeWriter, WrittenTree};
use sha2::{Digest as _, Sha256};

pub use error::WheelError;
pub use filename::{normalize_name, WheelFilename};

use crate::python::bytecode::{Compiled, Compiler, Module};
use archive::WheelArchive;
use plan::Source;
use record::FileDigest;

/// Where each part of a wheel goes, as paths relative to the destination
/// root, `/`-separated, without `.`/`..` (empty means the root itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallScheme {
    pub purelib: String,
    pub platlib: String,
    pub scripts: String,
    pub data: String,
    /// The include directory; a wheel's headers go to `<headers>/<name>`
    /// (its name from the file name, `_` read as `-`), as pip does.
    pub headers: String,
}

impl InstallScheme {
    /// sysconfig's `posix_prefix` scheme under `prefix` (e.g. `usr/local`;
    /// leading and trailing `/` are dropped) for Python `python_version`
    /// (e.g. `3.11`): `lib/pythonX.Y/site-packages`, `bin`, the prefix
    /// itself, `include/pythonX.Y`.
    pub fn posix_prefix(prefix: &str, python_version: &str) -> Self {
        let prefix = prefix.trim_matches('/');
        let site = paths::join(prefix, &format!("lib/python{python_version}/site-packages"));
        InstallScheme {
            purelib: site.clone(),
            platlib: site,
            scripts: paths::join(prefix, "bin"),
            data: prefix.to_owned(),
            headers: paths::join(prefix, &format!("include/python{python_version}")),
        }
    }
}

/// How to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallOptions {
    pub scheme: InstallScheme,
    /// Absolute path of the interpreter in the image, for shebangs
    /// (e.g. `/usr/local/bin/python3`).
    pub interpreter: String,
    /// Written to `INSTALLER` (e.g. `envbuild`).
    pub installer: String,
    /// The wheel's sha256 was checked against a lock: its members are not
    /// hashed again against RECORD (sizes still are). Off for wheels no
    /// lock pins (one an sdist build made).
    pub pinned: bool,
}

/// What [`install_wheel`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledDistribution {
    /// Name and version as spelled in the `.dist-info` directory name.
    pub name: String,
    pub version: String,
    /// The `.dist-info` directory, relative to the destination.
    pub dist_info: String,
    /// Every file written, relative to the destination, sorted.
    pub files: Vec<String>,
    /// The tree written at the destination, with its NAR hash.
    pub tree: WrittenTree,
}

/// Install the wheel at `wheel` into a new directory `dest`, which must not
/// exist yet (see the module docs for the rules). `wheel`'s file name is
/// parsed, so it must be the wheel's own name (`foo-1.0-py3-none-any.whl`).
/// The tree is written in the store's canonical form with its NAR hash
/// computed on the way ([`InstalledDistribution::tree`]). On error, `dest`
/// may hold a partial, read-only tree: the caller removes it.
pub fn install_wheel(
    wheel: &Path,
    dest: &Path,
    opts: &InstallOptions,
) -> Result<InstalledDistribution, WheelError> {
    install(wheel, dest, opts, None)
}

/// [`install_wheel`], with the library modules compiled to bytecode by
/// `compiler` (see the module docs).
pub fn install_wheel_compiling(
    wheel: &Path,
    dest: &Path,
    opts: &InstallOptions,
    compiler: &Compiler,
) -> Result<InstalledDistribution, WheelError> {
    install(wheel, dest, opts, Some(compiler))
}

fn install(
    wheel: &Path,
    dest: &Path,
    opts: &InstallOptions,
    bytecode: Option<&Compiler>,
) -> Result<InstalledDistribution, WheelError> {
    let wheel_name = wheel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| wheel.display().to_string());
    Installer {
        wheel: &wheel_name,
        dest,
        opts,
        bytecode,
    }
    .run(wheel)
}

struct Installer<'a> {
    /// The wheel's file name, for errors.
    wheel: &'a str,
    dest: &'a Path,
    opts: &'a InstallOptions,
    bytecode: Option<&'a Compiler<'a>>,
}

/// Where an installed file's bytes come from, once its digest is known.
enum Content<'a> {
    Bytes(&'a [u8]),
    /// A member, its `#!python` line rewritten if a script; `size` is what
    /// is written.
    Member {
        member: usize,
        script: bool,
        size: u64,
    },
}

impl Installer<'_> {
    fn run(self, wheel_path: &Path) -> Result<InstalledDistribution, WheelError> {
        let filename = WheelFilename::parse(self.wheel)?;
        self.check_options()?;
        self.check_dest_absent()?;

        let mut archive = WheelArchive::open(self.wheel, wheel_path)?;
        if self.opts.pinned {
            archive.trust_record_hashes();
        }
        let layout = archive.layout(&filename)?;
        archive.read_record(&layout)?;

        let wheel_member = format!("{}/WHEEL", layout.dist_info);
        let wheel_text =
            archive
                .read_text(&wheel_member)?
                .ok_or_else(|| WheelError::MissingMetadata {
                    wheel: self.wheel.to_owned(),
                    member: wheel_member.clone(),
                })?;
        let info =
            metadata::parse_wheel_info(&wheel_text).map_err(|reason| WheelError::Metadata {
                wheel: self.wheel.to_owned(),
                member: wheel_member.clone(),
                reason,
            })?;
        if info.major != 1 {
            return Err(WheelError::WheelVersion {
                wheel: self.wheel.to_owned(),
                member: wheel_member,
                found: info.version,
            });
        }
        let entry_points = format!("{}/entry_points.txt", layout.dist_info);
        let entries =
            match archive.read_text(&entry_points)? {
                Some(text) => metadata::parse_script_entries(&text).map_err(
                    |(group, name, value, reason)| WheelError::EntryPoint {
                        wheel: self.wheel.to_owned(),
                        group: group.to_owned(),
                        name,
                        value,
                        reason,
                    },
                )?,
                None => Vec::new(),
            };

        let scheme = &self.opts.scheme;
        let dirs = plan::Dirs {
            lib: if info.root_is_purelib {
                scheme.purelib.clone()
            } else {
                scheme.platlib.clone()
            },
            headers: paths::join(&scheme.headers, &filename.name.replace('_', "-")),
        };
        let plan = plan::plan(
            self.wheel,
            self.opts,
            &layout,
            &archive.members,
            &entries,
            &dirs,
        )?;

        let compiled = match self.bytecode {
            Some(compiler) => self.compile(compiler, &mut archive, &plan)?,
            None => Vec::new(),
        };

        // Every file's digest is known before anything is written: members
        // by their RECORD rows (checked while they are copied), scripts by
        // a first rewrite into a hashing sink, generated files by their
        // bytes. So the new RECORD is made up front, and the whole tree is
        // written in one pass in NAR order, hashed on the way.
        let mut rows: Vec<(String, Option<FileDigest>)> = Vec::with_capacity(plan.files.len());
        let mut contents: Vec<(&str, bool, Content)> = Vec::with_capacity(plan.files.len());
        for (path, planned) in &plan.files {
            let (executable, content, digest) = match &planned.source {
                Source::Record => {
                    rows.push((paths::relative_to(&dirs.lib, path), None));
                    continue;
                }
                Source::Generated { bytes, executable } => {
                    let digest = FileDigest {
                        sha256: Sha256::digest(bytes).into(),
                        size: bytes.len() as u64,
                    };
                    (*executable, Content::Bytes(bytes), digest)
                }
                Source::Member {
                    member,
                    script,
                    executable,
                } => {
                    let digest = if *script {
                        let interpreter = Some(self.opts.interpreter.as_str());
                        archive.extract(*member, &mut io::sink(), interpreter, path)?
                    } else {
                        archive.recorded(*member)?
                    };
                    let content = Content::Member {
                        member: *member,
                        script: *script,
                        size: digest.size,
                    };
                    (*executable, content, digest)
                }
            };
            rows.push((paths::relative_to(&dirs.lib, path), Some(digest)));
            contents.push((path, executable, content));
        }
        for c in &compiled {
            let digest = FileDigest {
                sha256: Sha256::digest(&c.bytes).into(),
                size: c.bytes.len() as u64,
            };
            rows.push((paths::relative_to(&dirs.lib, &c.path), Some(digest)));
            contents.push((&c.path, false, Content::Bytes(&c.bytes)));
        }
        // RECORD: every installed file, relative to the library directory.
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let record = record::write_record(rows.iter().map(|(p, d)| (p.as_str(), *d)));
        contents.push((&plan.record, false, Content::Bytes(record.as_bytes())));
        contents.sort_by(|a, b| nar_order(a.0, b.0));

        let tree_err = |source| WheelError::Tree {
            wheel: self.wheel.to_owned(),
            source,
        };
        let mut tree = TreeWriter::create(self.dest).map_err(tree_err)?;
        for (path, executable, content) in contents {
            match content {
                Content::Bytes(bytes) => tree
                    .file_from_bytes(path, executable, bytes)
                    .map_err(tree_err)?,
                Content::Member {
                    member,
                    script,
                    size,
                } => {
                    let mut file = tree.file(path, executable, size).map_err(tree_err)?;
                    let interpreter = script.then_some(self.opts.interpreter.as_str());
                    archive.extract(member, &mut file, interpreter, path)?;
                    file.finish().map_err(tree_err)?;
                }
            }
        }
        for &member in &plan.verify_only {
            archive.extract(member, &mut io::sink(), None, "nowhere")?;
        }
        let tree = tree.finish().map_err(tree_err)?;

        let mut files: Vec<String> = plan.files.into_keys().collect();
        files.extend(compiled.into_iter().map(|c| c.path));
        files.sort();
        Ok(InstalledDistribution {
            name: layout.name,
            version: layout.version,
            dist_info: paths::join(&dirs.lib, &layout.dist_info),
            files,
            tree,
        })
    }

    /// The bytecode of the `.py` members installed into the library
    /// directories, less pycs the wheel ships itself.
    fn compile(
        &self,
        compiler: &Compiler,
        archive: &mut WheelArchive,
        plan: &plan::Plan,
    ) -> Result<Vec<Compiled>, WheelError> {
        let s = &self.opts.scheme;
        let in_lib = |path: &str| {
            [&s.purelib, &s.platlib]
                .iter()
                .any(|lib| lib.is_empty() || path.starts_with(&format!("{lib}/")))
        };
        let mut modules = Vec::new();
        for (path, planned) in &plan.files {
            if let Source::Member {
                member,
                script: false,
                ..
            } = planned.source
            {
                if path.ends_with(".py") && in_lib(path) {
                    let mut bytes = Vec::new();
                    archive.extract(member, &mut bytes, None, path)?;
                    modules.push(Module {
                        path: path.clone(),
                        bytes,
                    });
                }
            }
        }
        let compiled = compiler
            .compile(&modules)
            .map_err(|source| WheelError::Bytecode {
                wheel: self.wheel.to_owned(),
                source,
            })?;
        Ok(compiled
            .into_iter()
            .filter(|c| !plan.files.contains_key(&c.path))
            .collect())
    }

    fn check_options(&self) -> Result<(), WheelError> {
        let bad = |option, value: &str, reason| WheelError::Options {
            wheel: self.wheel.to_owned(),
            option,
            value: value.to_owned(),
            reason,
        };
        let s = &self.opts.scheme;
        for (option, value) in [
            ("scheme.purelib", &s.purelib),
            ("scheme.platlib", &s.platlib),
            ("scheme.scripts", &s.scripts),
            ("scheme.data", &s.data),
            ("scheme.headers", &s.headers),
        ] {
            if let Some(reason) = paths::unsafe_scheme_reason(value) {
                return Err(bad(option, value, reason));
            }
        }
        if let Some(reason) = scripts::interpreter_problem(&self.opts.interpreter) {
            return Err(bad("interpreter", &self.opts.interpreter, reason));
        }
        let installer = &self.opts.installer;
        if installer.is_empty() || installer.contains(['\n', '\r', '\0']) {
            return Err(bad(
                "installer",
                installer,
                "expected a non-empty name on one line",
            ));
        }
        Ok(())
    }

    fn check_dest_absent(&self) -> Result<(), WheelError> {
        if self.dest.symlink_metadata().is_ok() {
            return Err(WheelError::DestinationExists {
                wheel: self.wheel.to_owned(),
                dest: self.dest.display().to_string(),
            });
        }
        Ok(())
    }
}
