//! Deciding every installed path and where its bytes come from, before
//! anything is written: `.data` spreading, launchers, INSTALLER, RECORD, and
//! the conflicts between them.

use std::collections::BTreeMap;

use super::archive::{Layout, Member};
use super::metadata::ScriptEntry;
use super::{paths, scripts, InstallOptions, WheelError};

/// Where an installed file's bytes come from.
pub(super) enum Source {
    /// `members[member]`, verified against RECORD while copied; a script
    /// gets its `#!python` line rewritten.
    Member {
        member: usize,
        script: bool,
        executable: bool,
    },
    Generated {
        bytes: Vec<u8>,
        executable: bool,
    },
    /// The new RECORD, made once every other file's digest is known.
    Record,
}

pub(super) struct Planned {
    /// What put it there, for conflict messages.
    pub origin: String,
    pub source: Source,
}

/// The directories that depend on the wheel, relative to the destination.
pub(super) struct Dirs {
    /// purelib or platlib, by `Root-Is-Purelib`; RECORD paths are relative to it.
    pub lib: String,
    /// `<scheme headers>/<name>`.
    pub headers: String,
}

pub(super) struct Plan {
    /// Installed path (relative to the destination) -> source, in path order.
    pub files: BTreeMap<String, Planned>,
    /// Members verified but not installed: setuptools' entry-point wrappers
    /// (pip skips them too) and the wheel's own INSTALLER.
    pub verify_only: Vec<usize>,
    /// Where RECORD goes.
    pub record: String,
}

pub(super) fn plan(
    wheel: &str,
    opts: &InstallOptions,
    layout: &Layout,
    members: &[Member],
    entries: &[ScriptEntry],
    dirs: &Dirs,
) -> Result<Plan, WheelError> {
    let scheme = &opts.scheme;
    let mut files = Files {
        wheel,
        map: BTreeMap::new(),
    };
    let mut verify_only = Vec::new();
    let installer_member = format!("{}/INSTALLER", layout.dist_info);
    let data_prefix = format!("{}/", layout.data_dir);

    for (i, m) in members.iter().enumerate() {
        if m.digest.is_none() {
            continue; // RECORD, RECORD.jws, RECORD.p7s: replaced, not installed
        }
        if m.name == installer_member {
            verify_only.push(i); // replaced by ours
            continue;
        }
        let (path, script) = if let Some(rest) = m.name.strip_prefix(&data_prefix) {
            let Some((key, sub)) = rest.split_once('/') else {
                return Err(WheelError::StrayData {
                    wheel: wheel.to_owned(),
                    member: m.name.clone(),
                    expected: format!("{data_prefix}<purelib|platlib|scripts|data|headers>/..."),
                });
            };
            let base = match key {
                "purelib" => scheme.purelib.as_str(),
                "platlib" => scheme.platlib.as_str(),
                "scripts" => scheme.scripts.as_str(),
                "data" => scheme.data.as_str(),
                "headers" => dirs.headers.as_str(),
                _ => {
                    return Err(WheelError::UnknownDataKey {
                        wheel: wheel.to_owned(),
                        member: m.name.clone(),
                        key: key.to_owned(),
                    })
                }
            };
            let script = key == "scripts";
            if script && is_entry_point_wrapper(sub, entries) {
                verify_only.push(i);
                continue;
            }
            (paths::join(base, sub), script)
        } else if m
            .name
            .split_once('/')
            .is_some_and(|(top, _)| top.ends_with(".data"))
        {
            return Err(WheelError::StrayData {
                wheel: wheel.to_owned(),
                member: m.name.clone(),
                expected: format!(
                    "the distribution's one .data directory, {}",
                    layout.data_dir
                ),
            });
        } else {
            (paths::join(&dirs.lib, &m.name), false)
        };
        files.insert(
            path,
            format!("member {}", m.name),
            Source::Member {
                member: i,
                script,
                executable: script || m.executable,
            },
        )?;
    }

    for e in entries {
        let bytes = scripts::launcher(&opts.interpreter, &e.module, &e.attr).into_bytes();
        files.insert(
            paths::join(&scheme.scripts, &e.name),
            format!("the [{}] entry point {}", e.group, e.name),
            Source::Generated {
                bytes,
                executable: true,
            },
        )?;
    }
    let info_dir = paths::join(&dirs.lib, &layout.dist_info);
    files.insert(
        format!("{info_dir}/INSTALLER"),
        "the INSTALLER file written by the installer".to_owned(),
        Source::Generated {
            bytes: format!("{}\n", opts.installer).into_bytes(),
            executable: false,
        },
    )?;
    let record = format!("{info_dir}/RECORD");
    files.insert(
        record.clone(),
        "the RECORD file written by the installer".to_owned(),
        Source::Record,
    )?;

    // A file where another needs a directory.
    for (path, planned) in &files.map {
        let mut ancestor = path.as_str();
        while let Some((parent, _)) = ancestor.rsplit_once('/') {
            if let Some(other) = files.map.get(parent) {
                return Err(WheelError::Conflict {
                    wheel: wheel.to_owned(),
                    path: parent.to_owned(),
                    first: other.origin.clone(),
                    second: format!("{} (which needs it to be a directory)", planned.origin),
                });
            }
            ancestor = parent;
        }
    }
    Ok(Plan {
        files: files.map,
        verify_only,
        record,
    })
}

struct Files<'a> {
    wheel: &'a str,
    map: BTreeMap<String, Planned>,
}

impl Files<'_> {
    fn insert(&mut self, path: String, origin: String, source: Source) -> Result<(), WheelError> {
        if let Some(first) = self.map.get(&path) {
            return Err(WheelError::Conflict {
                wheel: self.wheel.to_owned(),
                path,
                first: first.origin.clone(),
                second: origin,
            });
        }
        self.map.insert(path, Planned { origin, source });
        Ok(())
    }
}

/// pip's test for setuptools-generated wrappers of an entry point:
/// `NAME`, `NAME.exe`, `NAME-script.py` or `NAME.pya` (suffix case-insensitive).
fn is_entry_point_wrapper(script_path: &str, entries: &[ScriptEntry]) -> bool {
    let name = script_path.rsplit('/').next().unwrap_or(script_path);
    let lower = name.to_ascii_lowercase();
    let stem = [".exe", "-script.py", ".pya"]
        .iter()
        .find(|s| lower.ends_with(*s))
        .map_or(name, |s| &name[..name.len() - s.len()]);
    entries.iter().any(|e| e.name == stem)
}
