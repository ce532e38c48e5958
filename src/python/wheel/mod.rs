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
//!   separator), hold NUL, are zip symlinks, or occur twice in the central
//!   directory are refused, naming the wheel and the member.
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
//!   `\n` line ends. No `.pyc` is compiled; `REQUESTED` and
//!   `direct_url.json` are not written. The wheel's `RECORD.jws`/`.p7s`
//!   sign the old RECORD and are not installed.
//! - **Modes**: files whose zip unix mode has any x bit are 0755, other files
//!   0644, scripts and launchers 0755, directories 0755, whatever the umask.
//! - **Determinism**: the tree and every byte in it depend only on the
//!   wheel's member names and contents and the options, not on member order,
//!   timestamps, umask or machine. Two members (or a member and a generated
//!   file) that would land on one path are an error naming both.

mod archive;
mod error;
mod filename;
mod metadata;
mod paths;
mod plan;
mod record;
mod scripts;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use sha2::{Digest as _, Sha256};

pub use error::WheelError;
pub use filename::{normalize_name, WheelFilename};

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
}

/// Install the wheel at `wheel` into the empty directory `dest` (see the
/// module docs for the rules). `wheel`'s file name is parsed, so it must be
/// the wheel's own name (`foo-1.0-py3-none-any.whl`). On error, `dest` may
/// hold a partial tree: the caller removes it.
pub fn install_wheel(
    wheel: &Path,
    dest: &Path,
    opts: &InstallOptions,
) -> Result<InstalledDistribution, WheelError> {
    let wheel_name = wheel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| wheel.display().to_string());
    Installer {
        wheel: &wheel_name,
        dest,
        opts,
        made_dirs: HashSet::new(),
    }
    .run(wheel)
}

struct Installer<'a> {
    /// The wheel's file name, for errors.
    wheel: &'a str,
    dest: &'a Path,
    opts: &'a InstallOptions,
    /// Directories created so far, relative to `dest`.
    made_dirs: HashSet<String>,
}

impl Installer<'_> {
    fn io(&self, action: impl Into<String>) -> impl FnOnce(io::Error) -> WheelError + '_ {
        let action = action.into();
        move |source| WheelError::Io {
            wheel: self.wheel.to_owned(),
            action,
            source,
        }
    }

    fn run(mut self, wheel_path: &Path) -> Result<InstalledDistribution, WheelError> {
        let filename = WheelFilename::parse(self.wheel)?;
        self.check_options()?;
        self.check_dest_empty()?;

        let mut archive = WheelArchive::open(self.wheel, wheel_path)?;
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

        // Everything but RECORD, in path order.
        let mut rows: Vec<(String, Option<FileDigest>)> = Vec::with_capacity(plan.files.len());
        for (path, planned) in &plan.files {
            let digest = match &planned.source {
                Source::Record => {
                    rows.push((paths::relative_to(&dirs.lib, path), None));
                    continue;
                }
                Source::Generated { bytes, mode } => {
                    self.write_file(path, bytes, *mode)?;
                    FileDigest {
                        sha256: Sha256::digest(bytes).into(),
                        size: bytes.len() as u64,
                    }
                }
                Source::Member {
                    member,
                    script,
                    mode,
                } => {
                    let mut f = self.create_file(path)?;
                    let interpreter = script.then_some(self.opts.interpreter.as_str());
                    let digest = archive.extract(*member, &mut f, interpreter, path)?;
                    self.finish_file(f, path, *mode)?;
                    digest
                }
            };
            rows.push((paths::relative_to(&dirs.lib, path), Some(digest)));
        }
        for &member in &plan.verify_only {
            archive.extract(member, &mut io::sink(), None, "nowhere")?;
        }

        // RECORD: every installed file, relative to the library directory.
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let text = record::write_record(rows.iter().map(|(p, d)| (p.as_str(), *d)));
        self.write_file(&plan.record, text.as_bytes(), 0o644)?;

        Ok(InstalledDistribution {
            name: layout.name,
            version: layout.version,
            dist_info: paths::join(&dirs.lib, &layout.dist_info),
            files: plan.files.into_keys().collect(), // sorted: a BTreeMap
        })
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

    fn check_dest_empty(&self) -> Result<(), WheelError> {
        let mut entries = fs::read_dir(self.dest)
            .map_err(self.io(format!("reading the destination {}", self.dest.display())))?;
        if entries.next().is_some() {
            return Err(WheelError::DestinationNotEmpty {
                wheel: self.wheel.to_owned(),
                dest: self.dest.display().to_string(),
            });
        }
        Ok(())
    }

    /// Create `dest/path` (it must not exist), making missing parent
    /// directories with mode 0755.
    fn create_file(&mut self, path: &str) -> Result<File, WheelError> {
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            end += i;
            let dir = &path[..end];
            end += 1;
            if self.made_dirs.contains(dir) {
                continue;
            }
            let full = self.dest.join(dir);
            fs::create_dir(&full).map_err(self.io(format!("creating directory {dir}")))?;
            fs::set_permissions(&full, fs::Permissions::from_mode(0o755))
                .map_err(self.io(format!("setting the mode of {dir}")))?;
            self.made_dirs.insert(dir.to_owned());
        }
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(self.dest.join(path))
            .map_err(self.io(format!("creating {path}")))
    }

    fn write_file(&mut self, path: &str, bytes: &[u8], mode: u32) -> Result<(), WheelError> {
        let mut f = self.create_file(path)?;
        f.write_all(bytes)
            .map_err(self.io(format!("writing {path}")))?;
        self.finish_file(f, path, mode)
    }

    /// Set the exact mode (whatever the umask).
    fn finish_file(&self, file: File, path: &str, mode: u32) -> Result<(), WheelError> {
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(self.io(format!("setting the mode of {path}")))
    }
}
