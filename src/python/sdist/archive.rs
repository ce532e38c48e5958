//! Reading an sdist: `{name}-{version}.tar.gz` (or `.zip`) holding one
//! top-level directory. Members are checked before anything is written:
//! no absolute paths, no `..`, no links that leave the tree, no devices.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use super::error::{io_err, SdistError};

/// Files of an sdist that metadata is read from, by path below the
/// top-level directory: `PKG-INFO`, `pyproject.toml`, `setup.py`,
/// `setup.cfg`, and `*.egg-info/{PKG-INFO,requires.txt}` up to two levels
/// down (`src/x.egg-info/`).
#[derive(Debug, Default, Clone)]
pub struct MetadataFiles {
    pub files: BTreeMap<String, String>,
}

impl MetadataFiles {
    pub fn get(&self, path: &str) -> Option<&str> {
        self.files.get(path).map(String::as_str)
    }
}

/// Members larger than this are not metadata.
const MAX_METADATA_FILE: u64 = 4 << 20;

fn wanted(rel: &str) -> bool {
    matches!(
        rel,
        "PKG-INFO" | "pyproject.toml" | "setup.py" | "setup.cfg"
    ) || {
        let parts: Vec<&str> = rel.split('/').collect();
        parts.len() <= 3
            && parts.len() >= 2
            && parts[parts.len() - 2].ends_with(".egg-info")
            && matches!(parts[parts.len() - 1], "requires.txt" | "PKG-INFO")
    }
}

enum Kind {
    TarGz,
    Zip,
}

fn kind(sdist: &str) -> Result<Kind, SdistError> {
    if sdist.ends_with(".tar.gz") || sdist.ends_with(".tgz") {
        Ok(Kind::TarGz)
    } else if sdist.ends_with(".zip") {
        Ok(Kind::Zip)
    } else {
        Err(SdistError::BadArchive {
            sdist: sdist.to_owned(),
            found: format!("the file name {sdist:?}"),
        })
    }
}

/// A member path split into (top-level directory, rest), checked.
fn split_member(sdist: &str, name: &str) -> Result<Option<(String, String)>, SdistError> {
    let unsafe_member = |why| SdistError::UnsafeMember {
        sdist: sdist.to_owned(),
        member: name.to_owned(),
        why,
    };
    if name.contains('\0') {
        return Err(unsafe_member("NUL in the name"));
    }
    let path = Path::new(name);
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => return Err(unsafe_member("a `..` component")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_member("an absolute path"))
            }
        }
    }
    if parts.is_empty() {
        return Ok(None);
    }
    let top = parts.remove(0);
    Ok(Some((top, parts.join("/"))))
}

/// Whether a symlink at `rel` (below the top) pointing to `target` stays
/// inside the tree.
fn link_stays_inside(rel: &str, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth = rel.split('/').count() as i64 - 1;
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            _ => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

/// The metadata files of the sdist at `path` (`sdist` is its file name).
pub fn metadata_files(path: &Path, sdist: &str) -> Result<MetadataFiles, SdistError> {
    let mut out = MetadataFiles::default();
    let mut top: Option<String> = None;
    let mut take = |name: &str,
                    size: u64,
                    read: &mut dyn FnMut() -> std::io::Result<Vec<u8>>|
     -> Result<(), SdistError> {
        let Some((t, rel)) = split_member(sdist, name)? else {
            return Ok(());
        };
        top.get_or_insert(t);
        if wanted(&rel) && size <= MAX_METADATA_FILE {
            let bytes = read().map_err(io_err("reading", path))?;
            out.files
                .insert(rel, String::from_utf8_lossy(&bytes).into_owned());
        }
        Ok(())
    };
    match kind(sdist)? {
        Kind::TarGz => {
            let f = fs::File::open(path).map_err(io_err("opening", path))?;
            let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
            let entries = ar.entries().map_err(|e| bad_archive(sdist, e))?;
            for entry in entries {
                let mut entry = entry.map_err(|e| bad_archive(sdist, e))?;
                if !entry.header().entry_type().is_file() {
                    continue;
                }
                let name = entry
                    .path()
                    .map_err(|e| bad_archive(sdist, e))?
                    .to_string_lossy()
                    .into_owned();
                let size = entry.size();
                take(&name, size, &mut || {
                    let mut b = Vec::new();
                    entry.read_to_end(&mut b)?;
                    Ok(b)
                })?;
            }
        }
        Kind::Zip => {
            let f = fs::File::open(path).map_err(io_err("opening", path))?;
            let mut z = zip::ZipArchive::new(f).map_err(|e| bad_archive(sdist, e))?;
            for i in 0..z.len() {
                let mut m = z.by_index(i).map_err(|e| bad_archive(sdist, e))?;
                if !m.is_file() {
                    continue;
                }
                let name = m.name().to_owned();
                let size = m.size();
                take(&name, size, &mut || {
                    let mut b = Vec::new();
                    m.read_to_end(&mut b)?;
                    Ok(b)
                })?;
            }
        }
    }
    Ok(out)
}

fn bad_archive(sdist: &str, e: impl std::fmt::Display) -> SdistError {
    SdistError::BadArchive {
        sdist: sdist.to_owned(),
        found: format!("an unreadable archive ({e})"),
    }
}

/// Unpack the sdist at `path` into `dest` (created), without its
/// top-level directory. Files get mode 644 (755 when any x bit was set),
/// directories 755.
pub fn unpack(path: &Path, sdist: &str, dest: &Path) -> Result<(), SdistError> {
    fs::create_dir_all(dest).map_err(io_err("creating", dest))?;
    let mkparent = |p: &Path| -> Result<(), SdistError> {
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
        }
        Ok(())
    };
    let write = |rel: &str, mode: u32, r: &mut dyn Read| -> Result<(), SdistError> {
        let target = dest.join(rel);
        mkparent(&target)?;
        let mut f = fs::File::create(&target).map_err(io_err("writing", &target))?;
        std::io::copy(r, &mut f).map_err(io_err("writing", &target))?;
        let mode = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&target, fs::Permissions::from_mode(mode))
            .map_err(io_err("setting the mode of", &target))
    };
    let symlink = |rel: &str, name: &str, to: PathBuf| -> Result<(), SdistError> {
        if !link_stays_inside(rel, &to) {
            return Err(SdistError::UnsafeMember {
                sdist: sdist.to_owned(),
                member: name.to_owned(),
                why: "a link that leaves the tree",
            });
        }
        let target = dest.join(rel);
        mkparent(&target)?;
        let _ = fs::remove_file(&target);
        std::os::unix::fs::symlink(&to, &target).map_err(io_err("creating", &target))
    };
    match kind(sdist)? {
        Kind::TarGz => {
            let f = fs::File::open(path).map_err(io_err("opening", path))?;
            let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
            let entries = ar.entries().map_err(|e| bad_archive(sdist, e))?;
            for entry in entries {
                let mut entry = entry.map_err(|e| bad_archive(sdist, e))?;
                let name = entry
                    .path()
                    .map_err(|e| bad_archive(sdist, e))?
                    .to_string_lossy()
                    .into_owned();
                let Some((_, rel)) = split_member(sdist, &name)? else {
                    continue;
                };
                if rel.is_empty() {
                    continue;
                }
                let t = entry.header().entry_type();
                if t.is_dir() {
                    let d = dest.join(&rel);
                    fs::create_dir_all(&d).map_err(io_err("creating", &d))?;
                } else if t.is_file() {
                    let mode = entry.header().mode().unwrap_or(0o644);
                    write(&rel, mode, &mut entry)?;
                } else if t.is_symlink() {
                    let to = entry
                        .link_name()
                        .map_err(|e| bad_archive(sdist, e))?
                        .map(|p| p.into_owned())
                        .unwrap_or_default();
                    symlink(&rel, &name, to)?;
                } else if t.is_pax_global_extensions() || t.is_pax_local_extensions() {
                    continue;
                } else {
                    return Err(SdistError::UnsafeMember {
                        sdist: sdist.to_owned(),
                        member: name,
                        why: "not a file, directory or symlink",
                    });
                }
            }
        }
        Kind::Zip => {
            let f = fs::File::open(path).map_err(io_err("opening", path))?;
            let mut z = zip::ZipArchive::new(f).map_err(|e| bad_archive(sdist, e))?;
            for i in 0..z.len() {
                let mut m = z.by_index(i).map_err(|e| bad_archive(sdist, e))?;
                let name = m.name().to_owned();
                let Some((_, rel)) = split_member(sdist, &name)? else {
                    continue;
                };
                if rel.is_empty() {
                    continue;
                }
                if m.is_dir() {
                    let d = dest.join(&rel);
                    fs::create_dir_all(&d).map_err(io_err("creating", &d))?;
                } else if m.is_symlink() {
                    let mut to = String::new();
                    m.read_to_string(&mut to)
                        .map_err(|e| bad_archive(sdist, e))?;
                    symlink(&rel, &name, PathBuf::from(to))?;
                } else {
                    let mode = m.unix_mode().unwrap_or(0o644);
                    write(&rel, mode, &mut m)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_that_leave_the_tree_are_refused() {
        assert!(link_stays_inside("a/b", Path::new("c")));
        assert!(link_stays_inside("a/b", Path::new("../c")));
        assert!(!link_stays_inside("a/b", Path::new("../../c")));
        assert!(!link_stays_inside("a", Path::new("/etc/passwd")));
    }

    #[test]
    fn members_are_split_and_checked() {
        assert_eq!(
            split_member("x.tar.gz", "x-1.0/PKG-INFO").unwrap(),
            Some(("x-1.0".into(), "PKG-INFO".into()))
        );
        assert!(split_member("x.tar.gz", "x-1.0/../../etc").is_err());
        assert!(split_member("x.tar.gz", "/etc/passwd").is_err());
        assert!(wanted("x.egg-info/requires.txt"));
        assert!(wanted("src/x.egg-info/requires.txt"));
        assert!(!wanted("a/b/x.egg-info/requires.txt"));
    }
}
