//! Safe extraction of archive members into a directory: the one routine
//! that every unpacker (a .deb's data tar, sdists as tar.gz or zip) writes
//! through, and the one check of member paths (wheels too, whose installer
//! writes through the store's `TreeWriter` instead).
//!
//! Plumbing: it knows no archive format. A caller reads its format, decides
//! what each entry is, and calls [`Unpacker::dir`], [`Unpacker::file`],
//! [`Unpacker::symlink`] or [`Unpacker::hardlink`] with the entry's path as
//! components from [`member_components`].
//!
//! Rules:
//!
//! - **Paths** ([`member_components`]): relative, `/`-separated; an
//!   absolute path, a `..` component or a NUL is refused. Under
//!   [`PathRule::Lenient`] (tar: `./usr/bin`) empty and `.` components are
//!   dropped; under [`PathRule::Normalized`] (zip members that must match a
//!   manifest byte for byte, as a wheel's RECORD) they are refused, and so
//!   are names that are absolute or escape when `\` is read as a separator
//!   (`C:x`, `\x`, `a\..\..\b`), as a Windows tool would read them.
//! - **Descriptor-relative writes**: every entry's parent directories are
//!   opened one at a time from the destination's descriptor with
//!   `O_NOFOLLOW` (missing ones made with `mkdirat`, mode 0755), so nothing
//!   is ever written through a symbolic link, whoever made it: a symlink
//!   anywhere in an entry's parent chain (`lib -> /etc`, or the chain
//!   `s/t -> ..`, `u0 -> s/t/..`, ...) makes the entry refused. Regular
//!   files are created with `O_CREAT | O_EXCL | O_NOFOLLOW`.
//! - **Replacing**: a file or symlink already at an entry's path is
//!   unlinked (never opened or followed) and replaced, as tar does, under
//!   [`Duplicates::Replace`]; under [`Duplicates::Refuse`] (zip, where one
//!   name twice is ambiguous) a second non-directory entry for a path is
//!   refused. A directory is never replaced by a non-directory, nor a
//!   non-directory by a directory.
//! - **Hard links** point to a regular file unpacked earlier from the same
//!   archive (and still a regular file); its content and mode are copied.
//! - **Symlinks** are created with their target as written. A caller that
//!   needs every link to stay inside the tree (an sdist's source tree is
//!   bound into a build sandbox) calls [`Unpacker::check_links_inside`]
//!   once all entries are in: each link's target, read from its own
//!   directory, must not climb above the destination, not be absolute and
//!   not pass through another link of the archive.
//! - **Modes**: the caller's, applied with `fchmod` (never through a path);
//!   directories get theirs in [`Unpacker::finish`], deepest last written
//!   first, so a read-only directory can still be filled.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::rc::Rc;

use rustix::fs::{
    fchmod, fstat, mkdirat, openat, statat, symlinkat, unlinkat, AtFlags, FileType, Mode, OFlags,
};
use rustix::io::Errno;

/// Why one entry was not unpacked. The caller names the archive and entry.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// The entry is unsafe or contradicts an earlier one; nothing was
    /// written for it.
    #[error("{0}")]
    Refused(String),
    /// Reading the entry or writing it failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<Errno> for EntryError {
    fn from(e: Errno) -> EntryError {
        EntryError::Io(e.into())
    }
}

fn refused(reason: impl Into<String>) -> EntryError {
    EntryError::Refused(reason.into())
}

/// How strictly member paths are read; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRule {
    /// Empty and `.` components are dropped (`./usr//bin` is `usr/bin`).
    Lenient,
    /// Every component is a name; `\` is also checked as a separator.
    Normalized,
}

/// The components of an archive member's path, or why it is refused. A
/// trailing `/` (a directory entry) is allowed under both rules. Under
/// [`PathRule::Lenient`], the empty result means the destination itself
/// (`./`).
pub fn member_components(raw: &[u8], rule: PathRule) -> Result<Vec<&[u8]>, &'static str> {
    if raw.is_empty() {
        return Err("empty path");
    }
    if raw.contains(&0) {
        return Err("NUL in the path");
    }
    if raw[0] == b'/' {
        return Err("absolute path; refusing to write outside the destination");
    }
    let trimmed = raw.strip_suffix(b"/").unwrap_or(raw);
    if rule == PathRule::Normalized {
        if trimmed.is_empty() {
            return Err("empty path");
        }
        let drive = trimmed.len() >= 2 && trimmed[0].is_ascii_alphabetic() && trimmed[1] == b':';
        if trimmed[0] == b'\\' || drive {
            return Err("absolute path when `\\` is read as a separator");
        }
    }
    let mut out = Vec::new();
    for c in trimmed.split(|&b| b == b'/') {
        match c {
            b".." => return Err("`..` component; refusing to write outside the destination"),
            b"" | b"." if rule == PathRule::Normalized => {
                return Err("an empty or `.` component (expected a normalized relative path)")
            }
            b"" | b"." => {}
            c => out.push(c),
        }
    }
    if rule == PathRule::Normalized
        && trimmed.contains(&b'\\')
        && trimmed
            .split(|&b| b == b'/' || b == b'\\')
            .any(|c| c == b".." || c.is_empty())
    {
        return Err("read with `\\` as a separator it has a `..` or empty component");
    }
    Ok(out)
}

/// A zip member's name: the name the zip library decoded, unless the raw
/// bytes are not UTF-8 although the entry says they are (the library then
/// decodes them with replacement characters: a name no archiver wrote).
/// Names without the UTF-8 flag are CP437, which decodes every byte.
pub fn zip_member_name<'a>(decoded: &'a str, raw: &[u8]) -> Result<&'a str, &'static str> {
    if std::str::from_utf8(raw).is_err() && decoded.contains('\u{FFFD}') {
        return Err("its name is flagged UTF-8 but is not valid UTF-8");
    }
    Ok(decoded)
}

/// What is wrong with a zip's central directory, by [`zip_names_problem`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZipNames {
    /// This name (raw bytes) has more than one entry.
    Duplicate(Vec<u8>),
    /// Distinct raw names, and what the zip library counted after decoding.
    Count { entries: usize, distinct: usize },
}

/// The zip library keeps one entry per decoded name, so a name zipped twice
/// (or two raw names decoding to one) is found by walking the central
/// directory's file headers ourselves: `cd` is positioned at its start,
/// `distinct` is the library's entry count.
pub fn zip_names_problem(mut cd: impl Read, distinct: usize) -> io::Result<Option<ZipNames>> {
    const FILE_HEADER: [u8; 4] = [0x50, 0x4b, 0x01, 0x02];
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    loop {
        let mut header = [0u8; 46];
        match cd.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        if header[..4] != FILE_HEADER {
            break; // the end-of-central-directory records
        }
        let field = |at: usize| u64::from(u16::from_le_bytes([header[at], header[at + 1]]));
        let mut name = vec![0u8; field(28) as usize];
        cd.read_exact(&mut name)?;
        io::copy(
            &mut cd.by_ref().take(field(30) + field(32)),
            &mut io::sink(),
        )?;
        if !seen.insert(name.clone()) {
            return Ok(Some(ZipNames::Duplicate(name)));
        }
    }
    if seen.len() != distinct {
        return Ok(Some(ZipNames::Count {
            entries: seen.len(),
            distinct,
        }));
    }
    Ok(None)
}

/// What a second entry for a path does; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duplicates {
    /// The later entry replaces the earlier (tar).
    Replace,
    /// A second non-directory entry is refused (zip).
    Refuse,
}

/// `comps` joined with `/`, for messages.
pub fn shown(comps: &[&[u8]]) -> String {
    String::from_utf8_lossy(&comps.join(&b'/')).into_owned()
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC
}

/// Writes entries under one destination directory; see the module docs.
pub struct Unpacker {
    root: Rc<OwnedFd>,
    duplicates: Duplicates,
    /// The last parent directory opened, by its components.
    cached: Option<(Vec<Vec<u8>>, Rc<OwnedFd>)>,
    /// Regular files written so far (joined paths), for hard links.
    files: HashSet<Vec<u8>>,
    /// Symlinks there now, with their targets.
    links: Vec<(Vec<u8>, Vec<u8>)>,
    link_paths: HashSet<Vec<u8>>,
    /// Every non-directory entry's path, for [`Duplicates::Refuse`].
    seen: HashSet<Vec<u8>>,
    /// Directories from the archive and their modes, applied at the end.
    dirs: Vec<(Vec<Vec<u8>>, u32)>,
    buf: Vec<u8>,
}

impl Unpacker {
    /// Starts unpacking into `dest`, created if missing (normally empty).
    pub fn new(dest: &Path, duplicates: Duplicates) -> io::Result<Unpacker> {
        std::fs::create_dir_all(dest)?;
        let root = openat(rustix::fs::CWD, dest, dir_flags(), Mode::empty())?;
        Ok(Unpacker {
            root: Rc::new(root),
            duplicates,
            cached: None,
            files: HashSet::new(),
            links: Vec::new(),
            link_paths: HashSet::new(),
            seen: HashSet::new(),
            dirs: Vec::new(),
            buf: vec![0; 1 << 16],
        })
    }

    /// A directory entry; `comps` empty is the destination itself, left as
    /// it is. Its mode is applied by [`Unpacker::finish`].
    pub fn dir(&mut self, comps: &[&[u8]], mode: u32) -> Result<(), EntryError> {
        let Some((name, parent)) = comps.split_last() else {
            return Ok(());
        };
        let dir = self.parent(parent, true)?;
        match openat(&*dir, *name, dir_flags() | OFlags::NOFOLLOW, Mode::empty()) {
            Ok(_) => {}
            Err(Errno::NOENT) => mkdirat(&*dir, *name, Mode::from_raw_mode(0o700))?,
            Err(Errno::LOOP | Errno::NOTDIR) => {
                return Err(refused("a non-directory of that name was unpacked before"))
            }
            Err(e) => return Err(e.into()),
        }
        self.dirs
            .push((comps.iter().map(|c| c.to_vec()).collect(), mode & 0o1777));
        Ok(())
    }

    /// A regular file with `src`'s bytes; returns how many were written.
    pub fn file(
        &mut self,
        comps: &[&[u8]],
        mode: u32,
        src: &mut dyn Read,
    ) -> Result<u64, EntryError> {
        let (name, dir) = self.slot(comps)?;
        let fd = openat(
            &*dir,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        let mut file = File::from(fd);
        let mut total = 0u64;
        loop {
            let n = match src.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            file.write_all(&self.buf[..n])?;
            total += n as u64;
        }
        fchmod(&file, Mode::from_raw_mode(mode & 0o1777))?;
        self.files.insert(comps.join(&b'/'));
        Ok(total)
    }

    /// A symbolic link to `target`, as written.
    pub fn symlink(&mut self, comps: &[&[u8]], target: &[u8]) -> Result<(), EntryError> {
        if target.is_empty() {
            return Err(refused("a symbolic link without a target"));
        }
        let (name, dir) = self.slot(comps)?;
        symlinkat(target, &*dir, name)?;
        let key = comps.join(&b'/');
        self.link_paths.insert(key.clone());
        self.links.push((key, target.to_vec()));
        Ok(())
    }

    /// A hard link to `target` (a member path, read with
    /// [`PathRule::Lenient`]), written as a copy of that earlier regular
    /// file. Returns the mode copied.
    pub fn hardlink(&mut self, comps: &[&[u8]], target: &[u8]) -> Result<u32, EntryError> {
        let shown_target = String::from_utf8_lossy(target).into_owned();
        if target.is_empty() {
            return Err(refused("a hard link without a target"));
        }
        let tcomps = member_components(target, PathRule::Lenient)
            .map_err(|r| refused(format!("hard link target `{shown_target}`: {r}")))?;
        let key = tcomps.join(&b'/');
        if key == comps.join(&b'/') {
            return Err(refused("a hard link to itself"));
        }
        let Some((tname, tparent)) = tcomps.split_last().filter(|_| self.files.contains(&key))
        else {
            return Err(refused(format!(
                "hard link to `{shown_target}`, which is not a regular file unpacked before it"
            )));
        };
        let tdir = self.open_chain(tparent, false)?;
        let src = openat(
            &*tdir,
            *tname,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let st = fstat(&src)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(refused(format!(
                "hard link to `{shown_target}`, which is no longer a regular file"
            )));
        }
        let mode = st.st_mode & 0o1777;
        self.file(comps, mode, &mut File::from(src))?;
        Ok(mode)
    }

    /// Every symlink made stays inside the destination: its target is
    /// relative, never climbs above the destination from the link's own
    /// directory, and does not pass through another link of the archive
    /// (whose own target could lead anywhere). On failure, the link's path
    /// and why.
    pub fn check_links_inside(&self) -> Result<(), (String, EntryError)> {
        for (path, target) in &self.links {
            let fail = |why: String| {
                let shown_path = String::from_utf8_lossy(path).into_owned();
                Err((shown_path, refused(why)))
            };
            let shown_target = String::from_utf8_lossy(target);
            if target.starts_with(b"/") {
                return fail(format!(
                    "a link to the absolute path `{shown_target}` (expected a target inside the tree)"
                ));
            }
            let mut at: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
            at.pop();
            let parts: Vec<&[u8]> = target
                .split(|&b| b == b'/')
                .filter(|c| !c.is_empty() && *c != b".")
                .collect();
            for (i, c) in parts.iter().enumerate() {
                if *c == b".." {
                    if at.pop().is_none() {
                        return fail(format!("a link to `{shown_target}`, which leaves the tree"));
                    }
                    continue;
                }
                at.push(c);
                if i + 1 < parts.len() && self.link_paths.contains(&at.join(&b'/')) {
                    return fail(format!(
                        "a link to `{shown_target}`, which goes through the link `{}` \
                         of the same archive",
                        shown(&at)
                    ));
                }
            }
        }
        Ok(())
    }

    /// Applies the directories' modes, deepest last written first. On
    /// failure, the directory and why.
    pub fn finish(mut self) -> Result<(), (String, EntryError)> {
        let dirs = std::mem::take(&mut self.dirs);
        for (comps, mode) in dirs.iter().rev() {
            let comps: Vec<&[u8]> = comps.iter().map(Vec::as_slice).collect();
            self.open_chain(&comps, false)
                .and_then(|fd| Ok(fchmod(&*fd, Mode::from_raw_mode(*mode))?))
                .map_err(|e| (shown(&comps), e))?;
        }
        Ok(())
    }

    /// The directory to create a non-directory entry in, with its slot
    /// cleared: a file or symlink there is unlinked (never followed) under
    /// [`Duplicates::Replace`]; a directory there is refused.
    fn slot<'c>(&mut self, comps: &[&'c [u8]]) -> Result<(&'c [u8], Rc<OwnedFd>), EntryError> {
        let Some((name, parent)) = comps.split_last() else {
            return Err(refused(
                "a non-directory entry naming the destination itself",
            ));
        };
        let key = comps.join(&b'/');
        if !self.seen.insert(key.clone()) && self.duplicates == Duplicates::Refuse {
            return Err(refused(
                "a second entry for this path (expected each path once)",
            ));
        }
        let dir = self.parent(parent, true)?;
        match statat(&*dir, *name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => {}
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                return Err(refused("a directory of that name was unpacked before"))
            }
            Ok(_) => unlinkat(&*dir, *name, AtFlags::empty())?,
            Err(e) => return Err(e.into()),
        }
        // What was there is gone: no longer a hard link target or a link.
        self.files.remove(&key);
        if self.link_paths.remove(&key) {
            self.links.retain(|(p, _)| *p != key);
        }
        Ok((name, dir))
    }

    /// Opens the directory `comps` under the root, one component at a time
    /// and never through a symlink, creating missing ones if `create`.
    fn open_chain(&self, comps: &[&[u8]], create: bool) -> Result<Rc<OwnedFd>, EntryError> {
        let mut fd = self.root.clone();
        for (i, c) in comps.iter().enumerate() {
            let flags = dir_flags() | OFlags::NOFOLLOW;
            let next = match openat(&*fd, *c, flags, Mode::empty()) {
                Ok(n) => n,
                Err(Errno::NOENT) if create => {
                    match mkdirat(&*fd, *c, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    let n = openat(&*fd, *c, flags, Mode::empty())?;
                    fchmod(&n, Mode::from_raw_mode(0o755))?;
                    n
                }
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    let what = match statat(&*fd, *c, AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                            "is a symbolic link; refusing to write through it"
                        }
                        _ => "is not a directory",
                    };
                    return Err(refused(format!("`{}` {what}", shown(&comps[..=i]))));
                }
                Err(e) => return Err(e.into()),
            };
            fd = Rc::new(next);
        }
        Ok(fd)
    }

    /// The parent directory of an entry, through the one-entry cache.
    fn parent(&mut self, comps: &[&[u8]], create: bool) -> Result<Rc<OwnedFd>, EntryError> {
        if let Some((c, fd)) = &self.cached {
            if c.len() == comps.len() && c.iter().zip(comps).all(|(a, b)| a == b) {
                return Ok(fd.clone());
            }
        }
        let fd = self.open_chain(comps, create)?;
        self.cached = Some((comps.iter().map(|c| c.to_vec()).collect(), fd.clone()));
        Ok(fd)
    }
}

#[cfg(test)]
mod tests;
