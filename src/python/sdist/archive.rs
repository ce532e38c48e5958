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
    member_components, shown, zip_member_name, zip_names_problem, Duplicates, EntryError, PathRule,
    Unpacker, ZipNames,
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

/// Each name once in the zip's central directory (the zip library would
/// keep just one of two entries of a name).
fn check_zip_names(
    path: &Path,
    sdist: &str,
    z: &zip::ZipArchive<fs::File>,
) -> Result<(), SdistError> {
    let mut cd = fs::File::open(path).map_err(io_err("opening", path))?;
    std::io::Seek::seek(
        &mut cd,
        std::io::SeekFrom::Start(z.central_directory_start()),
    )
    .map_err(io_err("reading", path))?;
    match zip_names_problem(std::io::BufReader::new(cd), z.len()) {
        Ok(None) => Ok(()),
        Ok(Some(ZipNames::Duplicate(name))) => Err(unsafe_member(
            sdist,
            &name,
            "a second entry for this path (expected each path once)".into(),
        )),
        Ok(Some(ZipNames::Count { entries, distinct })) => Err(SdistError::BadArchive {
            sdist: sdist.to_owned(),
            found: format!(
                "a central directory of {entries} names that decode to {distinct} distinct ones"
            ),
        }),
        Err(e) => Err(io_err("reading", path)(e)),
    }
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
            check_zip_names(path, sdist, &z)?;
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

    /// One member of a hand-made sdist: a file, a directory or a symlink.
    enum M<'a> {
        File(&'a str, &'a [u8]),
        Dir(&'a str),
        Link(&'a str, &'a str),
    }

    /// A tar.gz whose names and link targets are written byte for byte
    /// (the tar crate's own builder refuses some of what is tested here).
    fn tar_gz(members: &[M]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for m in members {
            let (name, kind, data, link) = match m {
                M::File(n, d) => (*n, tar::EntryType::Regular, *d, ""),
                M::Dir(n) => (*n, tar::EntryType::Directory, &b""[..], ""),
                M::Link(n, t) => (*n, tar::EntryType::Symlink, &b""[..], *t),
            };
            let mut h = tar::Header::new_gnu();
            let g = h.as_gnu_mut().unwrap();
            g.name[..name.len()].copy_from_slice(name.as_bytes());
            g.linkname[..link.len()].copy_from_slice(link.as_bytes());
            h.set_entry_type(kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o755);
            h.set_cksum();
            b.append(&h, data).unwrap();
        }
        let tar = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        gz.finish().unwrap()
    }

    fn zip(members: &[M]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o644);
        for m in members {
            match m {
                M::File(n, d) => {
                    w.start_file(*n, opts).unwrap();
                    std::io::Write::write_all(&mut w, d).unwrap();
                }
                M::Dir(n) => w.add_directory(*n, opts).unwrap(),
                M::Link(n, t) => w.add_symlink(*n, *t, opts).unwrap(),
            }
        }
        w.finish().unwrap().into_inner()
    }

    /// The chain from the hostile-input review: `s/t -> ..` (inside, by
    /// its text), `u0 -> s/t/..`, `u1 -> u0/..` ... `u23 -> u22/..` (each
    /// inside by its text too, but together they climb 24 levels from the
    /// destination), then a file `u23/<absolute path>` that lands there.
    fn chain_members(pwned: &str) -> (Vec<(String, String)>, String) {
        let mut links = vec![("x-1.0/s/t".to_owned(), "..".to_owned())];
        links.push(("x-1.0/u0".to_owned(), "s/t/..".to_owned()));
        for i in 1..24 {
            links.push((format!("x-1.0/u{i}"), format!("u{}/..", i - 1)));
        }
        (links, format!("x-1.0/u23{pwned}"))
    }

    /// Unpacking `archive` (named `name`) must fail, leaving `outside`
    /// with just its sentinel; returns the error.
    fn refused_without_writing_outside(name: &str, build: fn(&[M]) -> Vec<u8>) -> String {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("sentinel"), b"untouched").unwrap();
        let pwned = outside.join("pwned");
        let (links, file) = chain_members(pwned.to_str().unwrap());
        let mut members = vec![M::Dir("x-1.0/"), M::Dir("x-1.0/s/")];
        members.extend(links.iter().map(|(n, t)| M::Link(n, t)));
        members.push(M::File(&file, b"pwned"));
        let archive = t.path().join(name);
        fs::write(&archive, build(&members)).unwrap();

        let e = unpack(&archive, name, &t.path().join("dest"))
            .expect_err("the link chain must be refused");
        assert!(
            !pwned.exists(),
            "{name}: a file was written outside the store"
        );
        let mut names: Vec<_> = fs::read_dir(&outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["sentinel"], "{name}: written outside");
        assert_eq!(fs::read(outside.join("sentinel")).unwrap(), b"untouched");
        e.to_string()
    }

    #[test]
    fn a_link_chain_in_a_tar_gz_sdist_writes_nothing_outside() {
        let e = refused_without_writing_outside("x-1.0.tar.gz", tar_gz);
        assert!(
            e.contains("`u23` is a symbolic link; refusing to write through it"),
            "{e}"
        );
    }

    #[test]
    fn a_link_chain_in_a_zip_sdist_writes_nothing_outside() {
        let e = refused_without_writing_outside("x-1.0.zip", zip);
        assert!(
            e.contains("`u23` is a symbolic link; refusing to write through it"),
            "{e}"
        );
    }

    fn unpack_members(name: &str, members: &[M]) -> Result<tempfile::TempDir, SdistError> {
        let t = tempfile::tempdir().unwrap();
        let archive = t.path().join(name);
        let bytes = if name.ends_with(".zip") {
            zip(members)
        } else {
            tar_gz(members)
        };
        fs::write(&archive, bytes).unwrap();
        unpack(&archive, name, &t.path().join("dest")).map(|()| t)
    }

    #[test]
    fn sdist_links_must_resolve_inside_without_other_links() {
        // The chain without the final file: each link's text stays inside,
        // but `u0` goes through the link `s/t`.
        for name in ["x-1.0.tar.gz", "x-1.0.zip"] {
            let e = unpack_members(
                name,
                &[
                    M::Dir("x-1.0/s/"),
                    M::Link("x-1.0/s/t", ".."),
                    M::Link("x-1.0/u0", "s/t/.."),
                ],
            )
            .unwrap_err()
            .to_string();
            assert!(
                e.contains("\"u0\"") && e.contains("goes through the link `s/t`"),
                "{name}: {e}"
            );
            let e = unpack_members(name, &[M::Link("x-1.0/up", "../..")])
                .unwrap_err()
                .to_string();
            assert!(e.contains("leaves the tree"), "{name}: {e}");
        }
        // Ordinary links unpack.
        let t = unpack_members(
            "x-1.0.tar.gz",
            &[
                M::File("x-1.0/src/a.py", b"a"),
                M::Link("x-1.0/src/b.py", "a.py"),
                M::Link("x-1.0/docs", "src"),
            ],
        )
        .unwrap();
        assert_eq!(fs::read(t.path().join("dest/docs/b.py")).unwrap(), b"a");
    }

    #[test]
    fn sdist_members_outside_the_top_directory_or_twice_in_a_zip_are_refused() {
        let e = unpack_members(
            "x-1.0.tar.gz",
            &[M::File("x-1.0/PKG-INFO", b""), M::File("y/PKG-INFO", b"")],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("outside the top-level directory `x-1.0`"), "{e}");
        // A tar may name a path twice (the later wins), a zip may not.
        let t = unpack_members(
            "x-1.0.tar.gz",
            &[M::File("x-1.0/a", b"1"), M::File("x-1.0/a", b"2")],
        )
        .unwrap();
        assert_eq!(fs::read(t.path().join("dest/a")).unwrap(), b"2");
        // A zip naming one path twice: made with two names, then one
        // renamed in place (the zip writer refuses duplicates itself).
        let mut z = zip(&[M::File("x-1.0/a", b"1"), M::File("x-1.0/b", b"2")]);
        let mut renamed = 0;
        for i in 0..z.len() - 7 {
            if &z[i..i + 7] == b"x-1.0/b" {
                z[i + 6] = b'a';
                renamed += 1;
            }
        }
        assert_eq!(renamed, 2, "local header and central directory");
        let t = tempfile::tempdir().unwrap();
        let archive = t.path().join("x-1.0.zip");
        fs::write(&archive, z).unwrap();
        let e = unpack(&archive, "x-1.0.zip", &t.path().join("dest"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"x-1.0/a\"") && e.contains("a second entry for this path"),
            "{e}"
        );
    }
}
