//! Reading an sdist: `{name}-{version}.tar.gz` (or `.zip`) holding one
//! top-level directory. Members are checked with the shared rules of
//! [`crate::unpack`] (no absolute paths, no `..`, no NUL, nothing written
//! through a link, no links that leave the tree, no devices) and unpacked
//! through its [`Unpacker`].

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::Path;

use super::error::{io_err, SdistError};
use crate::unpack::{
    member_components, shown, zip_member_name, Duplicates, EntryError, PathRule, Unpacker,
};

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

/// A member path split into (top-level directory, rest), checked with
/// the shared member-path rules ([`member_components`]); `None` for the
/// archive root itself (`./`).
fn split_member(sdist: &str, name: &[u8]) -> Result<Option<(String, String)>, SdistError> {
    let comps = member_components(name, PathRule::Lenient)
        .map_err(|why| unsafe_member(sdist, name, why.to_owned()))?;
    let Some((top, rest)) = comps.split_first() else {
        return Ok(None);
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Ok(Some((text(top), shown(rest))))
}

fn unsafe_member(sdist: &str, name: &[u8], why: String) -> SdistError {
    SdistError::UnsafeMember {
        sdist: sdist.to_owned(),
        member: String::from_utf8_lossy(name).into_owned(),
        why,
    }
}

/// A zip member's name, refused if its bytes are not what the entry says.
fn zip_name(sdist: &str, m: &zip::read::ZipFile<'_, fs::File>) -> Result<String, SdistError> {
    zip_member_name(m.name(), m.name_raw())
        .map(str::to_owned)
        .map_err(|why| unsafe_member(sdist, m.name_raw(), why.to_owned()))
}

/// The metadata files of the sdist at `path` (`sdist` is its file name).
pub fn metadata_files(path: &Path, sdist: &str) -> Result<MetadataFiles, SdistError> {
    let mut out = MetadataFiles::default();
    let mut top: Option<String> = None;
    let mut take = |name: &[u8],
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
                let name = entry.path_bytes().into_owned();
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
                let name = zip_name(sdist, &m)?;
                let size = m.size();
                take(name.as_bytes(), size, &mut || {
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
/// top-level directory, through the shared safe extraction routine
/// ([`crate::unpack`]): nothing is written through a symlink, and every
/// link must stay inside the tree without passing through another link.
/// Every member must be under the same top-level directory. Files get mode
/// 644 (755 when any x bit was set), directories 755. A tar's later entry
/// for a path replaces the earlier one; a zip names each path once.
pub fn unpack(path: &Path, sdist: &str, dest: &Path) -> Result<(), SdistError> {
    let kind = kind(sdist)?;
    let duplicates = match kind {
        Kind::TarGz => Duplicates::Replace,
        Kind::Zip => Duplicates::Refuse,
    };
    let mut out = Unpacker::new(dest, duplicates).map_err(io_err("creating", dest))?;
    let mut top: Option<Vec<u8>> = None;
    // The member's path below the top-level directory; `None` for the top
    // itself and the archive root.
    let mut below_top = |name: &[u8]| -> Result<Option<Vec<Vec<u8>>>, SdistError> {
        let comps = member_components(name, PathRule::Lenient)
            .map_err(|why| unsafe_member(sdist, name, why.to_owned()))?;
        let Some((t, rest)) = comps.split_first() else {
            return Ok(None);
        };
        match &top {
            None => top = Some(t.to_vec()),
            Some(first) if first != t => {
                return Err(unsafe_member(
                    sdist,
                    name,
                    format!(
                        "outside the top-level directory `{}`",
                        String::from_utf8_lossy(first)
                    ),
                ))
            }
            Some(_) => {}
        }
        Ok((!rest.is_empty()).then(|| rest.iter().map(|c| c.to_vec()).collect()))
    };
    let file_mode = |mode: u32| if mode & 0o111 != 0 { 0o755 } else { 0o644 };
    let entry_err = |name: &[u8], e: EntryError| match e {
        EntryError::Refused(why) => unsafe_member(sdist, name, why),
        EntryError::Io(source) => SdistError::MemberIo {
            sdist: sdist.to_owned(),
            member: String::from_utf8_lossy(name).into_owned(),
            source,
        },
    };
    match kind {
        Kind::TarGz => {
            let f = fs::File::open(path).map_err(io_err("opening", path))?;
            let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
            let entries = ar.entries().map_err(|e| bad_archive(sdist, e))?;
            for entry in entries {
                let mut entry = entry.map_err(|e| bad_archive(sdist, e))?;
                let t = entry.header().entry_type();
                if t.is_pax_global_extensions() || t.is_pax_local_extensions() {
                    continue;
                }
                let name = entry.path_bytes().into_owned();
                let Some(rel) = below_top(&name)? else {
                    continue;
                };
                let rel: Vec<&[u8]> = rel.iter().map(Vec::as_slice).collect();
                let link = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let done = if t.is_dir() {
                    out.dir(&rel, 0o755)
                } else if t.is_file() {
                    let mode = file_mode(entry.header().mode().unwrap_or(0o644));
                    let size = entry.size();
                    match out.file(&rel, mode, &mut entry) {
                        Ok(n) if n != size => Err(EntryError::Refused(format!(
                            "truncated: expected {size} bytes, found {n}"
                        ))),
                        other => other.map(drop),
                    }
                } else if t.is_symlink() {
                    out.symlink(&rel, &link)
                } else if t.is_hard_link() {
                    // The target is a member path too: below the same top.
                    match below_top(&link)? {
                        Some(target) => out.hardlink(&rel, &target.join(&b'/')).map(drop),
                        None => Err(EntryError::Refused(
                            "a hard link to the top-level directory".into(),
                        )),
                    }
                } else {
                    Err(EntryError::Refused(
                        "not a file, directory, symlink or hard link".into(),
                    ))
                };
                done.map_err(|e| entry_err(&name, e))?;
            }
        }
        Kind::Zip => {
            let f = fs::File::open(path).map_err(io_err("opening", path))?;
            let mut z = zip::ZipArchive::new(f).map_err(|e| bad_archive(sdist, e))?;
            for i in 0..z.len() {
                let mut m = z.by_index(i).map_err(|e| bad_archive(sdist, e))?;
                let name = zip_name(sdist, &m)?.into_bytes();
                let Some(rel) = below_top(&name)? else {
                    continue;
                };
                let rel: Vec<&[u8]> = rel.iter().map(Vec::as_slice).collect();
                let done = if m.is_dir() {
                    out.dir(&rel, 0o755)
                } else if m.is_symlink() {
                    let mut to = Vec::new();
                    match m.read_to_end(&mut to) {
                        Ok(_) => out.symlink(&rel, &to),
                        Err(e) => Err(e.into()),
                    }
                } else {
                    let mode = file_mode(m.unix_mode().unwrap_or(0o644));
                    out.file(&rel, mode, &mut m).map(drop)
                };
                done.map_err(|e| entry_err(&name, e))?;
            }
        }
    }
    out.check_links_inside()
        .and_then(|()| out.finish())
        .map_err(|(path, e)| entry_err(path.as_bytes(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_split_and_checked() {
        assert_eq!(
            split_member("x.tar.gz", b"x-1.0/PKG-INFO").unwrap(),
            Some(("x-1.0".into(), "PKG-INFO".into()))
        );
        assert!(split_member("x.tar.gz", b"x-1.0/../../etc").is_err());
        assert!(split_member("x.tar.gz", b"/etc/passwd").is_err());
        assert!(wanted("x.egg-info/requires.txt"));
        assert!(wanted("src/x.egg-info/requires.txt"));
        assert!(!wanted("a/b/x.egg-info/requires.txt"));
    }
}
