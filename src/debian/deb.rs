//! Reading .deb binary packages (deb(5)) and unpacking their data safely,
//! without dpkg and without running maintainer scripts.
//!
//! Format read:
//!
//! - An ar archive: the magic `!<arch>\n`, then members, each a 60-byte
//!   header (name padded with spaces, a trailing `/` allowed; decimal size;
//!   the terminator `` `\n ``), the data, and one `\n` of padding after an
//!   odd size.
//! - Members in this order: `debian-binary`, whose first line must be
//!   `2.<digits>` (normally `2.0`); `control.tar` with no compression or
//!   `.gz`, `.xz` or `.zst`; `data.tar` with none or `.gz`, `.xz`, `.zst`,
//!   `.bz2` or `.lzma`. Members whose names start with `_` may stand between
//!   them and are skipped; members after `data.tar*` are not read.
//! - `control.tar` holds regular files (`control`, `md5sums`, maintainer
//!   scripts...); `control` must be there and hold one deb822 paragraph.
//!
//! Unpacking `data.tar` into a destination directory, as a stream (memory
//! does not grow with file sizes), through the shared safe extraction
//! routine [`crate::unpack`] (the sdist unpacker uses it too):
//!
//! - Entry paths are taken relative to the destination: `.` and empty
//!   components are dropped; an absolute path or a `..` component is
//!   refused.
//! - Nothing is ever written through a symbolic link: each entry's parent
//!   directories are opened one at a time from the destination with
//!   `O_NOFOLLOW`, so a symlink anywhere in the parent chain (say `lib ->
//!   /etc` or `lib -> ..` unpacked earlier, followed by `lib/passwd`) makes
//!   the entry refused. Symlinks themselves are created with their target
//!   as written (absolute targets are normal in packages), since no later
//!   entry can go through them. Missing parents are created with mode 0755.
//! - An entry whose name exists already replaces a file or symlink there
//!   (it is unlinked, never opened); it is refused if a directory is there,
//!   unless it is itself a directory.
//! - Regular files are created with `O_EXCL | O_NOFOLLOW`. Hard links must
//!   point to a regular file unpacked earlier from the same archive; the
//!   content and mode are copied. Directories get their mode at the end, so
//!   a read-only directory can still be filled.
//! - Character and block devices and FIFOs are not created; they are
//!   listed in [`Extracted::skipped`].
//! - Setuid and setgid bits are dropped from what is written; the sticky bit
//!   and permission bits are kept. Owners are not applied: entries owned by
//!   anyone but root:root, or that had setuid/setgid bits, are listed in
//!   [`Extracted::owners`] with their uid, gid, user and group names and
//!   full mode, for the caller to apply inside an image.
//! - Modification times are not applied (the store normalizes them).
//!
//! - The data member must be as long as its ar header says; a header that
//!   declares more bytes than the file holds is refused.
//!
//! Errors name the .deb (its path or the given label), the ar member and,
//! for data, the tar entry as written in the archive.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use super::control::{self, Paragraph};
use super::error::{Error, Result};
use crate::io::read_full;
use crate::unpack::{member_components, Duplicates, EntryError, PathRule, Unpacker};

/// The compression of a `control.tar*` or `data.tar*` member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
    Bzip2,
    Lzma,
}

impl Compression {
    /// The member name suffix (`""`, `".gz"`, ...).
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Xz => ".xz",
            Compression::Zstd => ".zst",
            Compression::Bzip2 => ".bz2",
            Compression::Lzma => ".lzma",
        }
    }

    fn from_member(name: &str, base: &str, allowed: &[Compression]) -> Option<Compression> {
        let suffix = name.strip_prefix(base)?;
        allowed.iter().copied().find(|c| c.suffix() == suffix)
    }

    /// A reader of `r` decompressed, the xz and lzma decoders held to
    /// [`MAX_DECODER_MEMORY`] (the `.deb` members and the archive's
    /// `Packages` index share it).
    pub(crate) fn decoder<'a, R: Read + 'a>(self, r: R) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(r),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
            Compression::Xz => {
                let stream = liblzma::stream::Stream::new_stream_decoder(
                    MAX_DECODER_MEMORY,
                    liblzma::stream::CONCATENATED,
                )
                .map_err(io::Error::other)?;
                Box::new(liblzma::read::XzDecoder::new_stream(r, stream))
            }
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
            Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(r)),
            Compression::Lzma => {
                let stream = liblzma::stream::Stream::new_lzma_decoder(MAX_DECODER_MEMORY)
                    .map_err(io::Error::other)?;
                Box::new(liblzma::read::XzDecoder::new_stream(r, stream))
            }
        })
    }
}

const CONTROL_COMPRESSIONS: &[Compression] = &[
    Compression::None,
    Compression::Gzip,
    Compression::Xz,
    Compression::Zstd,
];
const DATA_COMPRESSIONS: &[Compression] = &[
    Compression::None,
    Compression::Gzip,
    Compression::Xz,
    Compression::Zstd,
    Compression::Bzip2,
    Compression::Lzma,
];

/// The most memory an xz or lzma decoder may use. The stream's header says
/// how large a dictionary it needs, and a forged header asks for up to
/// 4 GiB; the largest preset (`xz -9`) needs 65 MiB.
const MAX_DECODER_MEMORY: u64 = 256 << 20;

/// Largest `debian-binary` member read.
const MAX_DEBIAN_BINARY: u64 = 1024;
/// Largest total size of the files of `control.tar` kept in memory.
const MAX_CONTROL_FILES: u64 = 64 << 20;

/// One regular file of `control.tar`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlFile {
    /// Path inside `control.tar`, without `./` (`control`, `postinst`, ...).
    pub name: String,
    /// Permission bits from the archive.
    pub mode: u32,
    pub data: Vec<u8>,
}

/// What the head of a .deb says: format, control paragraph, control files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebControl {
    /// The first line of `debian-binary` (`2.0`).
    pub format: String,
    /// The control member's name (`control.tar.xz`, ...).
    pub control_member: String,
    pub control_compression: Compression,
    /// The parsed `control` file.
    pub control: Paragraph,
    /// Every regular file of `control.tar`, `control` included, in archive
    /// order (maintainer scripts, `md5sums`, `conffiles`, `triggers`...).
    pub files: Vec<ControlFile>,
}

impl DebControl {
    /// The control file called `name` (`postinst`, `conffiles`...).
    pub fn file(&self, name: &str) -> Option<&ControlFile> {
        self.files.iter().find(|f| f.name == name)
    }
}

/// What an unpacked entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File {
        size: u64,
    },
    Directory,
    Symlink {
        target: PathBuf,
    },
    /// A hard link in the archive, unpacked as a copy of `target`.
    Hardlink {
        target: PathBuf,
    },
}

/// One entry written under the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractedEntry {
    /// Relative to the destination, without `./`.
    pub path: PathBuf,
    pub kind: EntryKind,
    /// The mode written (setuid/setgid dropped); for symlinks, the archive's.
    pub mode: u32,
}

/// An entry whose owner or special bits were not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    pub path: PathBuf,
    pub uid: u64,
    pub gid: u64,
    /// The owner's name in the archive (dpkg prefers it to `uid`).
    pub user: Option<String>,
    /// The group's name in the archive (dpkg prefers it to `gid`).
    pub group: Option<String>,
    /// The full mode from the archive, setuid/setgid bits included.
    pub mode: u32,
}

/// What kind of special file was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialKind {
    CharDevice,
    BlockDevice,
    Fifo,
}

/// A device node or FIFO that was listed but not created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedEntry {
    pub path: PathBuf,
    pub kind: SpecialKind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// (major, minor) for devices.
    pub device: Option<(u32, u32)>,
    /// Why it was left out, for logs.
    pub note: String,
}

/// The result of [`extract`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    pub control: DebControl,
    /// The data member's name (`data.tar.xz`, ...).
    pub data_member: String,
    pub data_compression: Compression,
    /// Everything written, in archive order (parents created implicitly are
    /// not listed).
    pub entries: Vec<ExtractedEntry>,
    /// Entries not owned by root:root or carrying setuid/setgid bits.
    pub owners: Vec<Ownership>,
    /// Device nodes and FIFOs, not created.
    pub skipped: Vec<SkippedEntry>,
}

/// Reads the head of the .deb at `deb`: format, control paragraph and
/// control files. The data member is not read.
pub fn read_control(deb: &Path) -> Result<DebControl> {
    let label = deb.display().to_string();
    let file = File::open(deb).map_err(|source| Error::Io {
        path: label.clone(),
        source,
    })?;
    read_control_from(&label, BufReader::with_capacity(1 << 16, file))
}

/// [`read_control`] on a stream; `label` names the .deb in errors.
pub fn read_control_from<R: Read>(label: &str, reader: R) -> Result<DebControl> {
    let mut ar = Ar::start(reader, label)?;
    read_head(&mut ar)
}

/// Reads the .deb at `deb` and unpacks its data into `dest` (created if
/// missing; normally empty). See the module docs for the rules.
pub fn extract(deb: &Path, dest: &Path) -> Result<Extracted> {
    let label = deb.display().to_string();
    let file = File::open(deb).map_err(|source| Error::Io {
        path: label.clone(),
        source,
    })?;
    extract_from(&label, BufReader::with_capacity(1 << 16, file), dest)
}

/// [`extract`] on a stream; `label` names the .deb in errors.
pub fn extract_from<R: Read>(label: &str, reader: R, dest: &Path) -> Result<Extracted> {
    let out = Unpacker::new(dest, Duplicates::Replace).map_err(|source| Error::Io {
        path: dest.display().to_string(),
        source,
    })?;

    let mut ar = Ar::start(reader, label)?;
    let control = read_head(&mut ar)?;
    let data = ar.next_member()?.ok_or_else(|| Error::DebFormat {
        deb: label.to_string(),
        reason: "no data member after the control member (expected `data.tar*`)".to_string(),
    })?;
    let compression = Compression::from_member(&data.name, "data.tar", DATA_COMPRESSIONS)
        .ok_or_else(|| Error::DebFormat {
            deb: label.to_string(),
            reason: format!(
                "expected member `data.tar`, `data.tar.gz`, `data.tar.xz`, `data.tar.zst`, \
                 `data.tar.bz2` or `data.tar.lzma` after `{}`, found `{}`",
                control.control_member, data.name
            ),
        })?;
    let member_io = |source: io::Error| Error::MemberIo {
        deb: label.to_string(),
        member: data.name.clone(),
        source,
    };
    let mut member = ar.reader.by_ref().take(data.size);
    let reader = compression.decoder(&mut member).map_err(member_io)?;
    let x = Extractor {
        deb: label,
        member: &data.name,
        out,
        entries: Vec::new(),
        owners: Vec::new(),
        skipped: Vec::new(),
    }
    .unpack(reader)?;
    // The member must be as long as its header says: a header declaring
    // more than the file holds is a truncated or forged package.
    io::copy(&mut member, &mut io::sink()).map_err(member_io)?;
    if member.limit() > 0 {
        return Err(Error::Member {
            deb: label.to_string(),
            member: data.name.clone(),
            reason: format!(
                "the ar header declares {} bytes, the file holds {}",
                data.size,
                data.size - member.limit()
            ),
        });
    }
    let Extractor {
        out,
        entries,
        owners,
        skipped,
        ..
    } = x;
    out.finish()
        .map_err(|(dir, e)| Extractor::fail_at(label, &data.name, &dir, e))?;
    Ok(Extracted {
        control,
        data_member: data.name.clone(),
        data_compression: compression,
        entries,
        owners,
        skipped,
    })
}

/// Unpack a plain tar stream (a base image's layer) into `dest` under the
/// rules of a .deb's data member (see the module docs): `label` and
/// `member` name it in errors. Returns the entries not owned by root or
/// with special bits, and the device nodes and FIFOs left out.
pub fn unpack_tar<R: Read>(
    label: &str,
    member: &str,
    reader: R,
    dest: &Path,
) -> Result<(Vec<Ownership>, Vec<SkippedEntry>)> {
    let out = Unpacker::new(dest, Duplicates::Replace).map_err(|source| Error::Io {
        path: dest.display().to_string(),
        source,
    })?;
    let x = Extractor {
        deb: label,
        member,
        out,
        entries: Vec::new(),
        owners: Vec::new(),
        skipped: Vec::new(),
    }
    .unpack(reader)?;
    let Extractor {
        out,
        owners,
        skipped,
        ..
    } = x;
    out.finish()
        .map_err(|(dir, e)| Extractor::fail_at(label, member, &dir, e))?;
    Ok((owners, skipped))
}

/// A minimal streaming reader of the common ar format.
struct Ar<R> {
    reader: R,
    deb: String,
    /// Bytes of the current member (and its padding) not read yet.
    pending: u64,
}

struct MemberHeader {
    name: String,
    size: u64,
}

impl<R: Read> Ar<R> {
    fn start(mut reader: R, deb: &str) -> Result<Ar<R>> {
        let mut magic = [0u8; 8];
        read_full(&mut reader, &mut magic)
            .and_then(|n| {
                if n == 8 && &magic == b"!<arch>\n" {
                    Ok(())
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "not a .deb: expected the ar magic `!<arch>\\n`, found {:?}",
                            String::from_utf8_lossy(&magic[..n])
                        ),
                    ))
                }
            })
            .map_err(|e| Error::DebFormat {
                deb: deb.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Ar {
            reader,
            deb: deb.to_string(),
            pending: 0,
        })
    }

    fn format_err(&self, reason: String) -> Error {
        Error::DebFormat {
            deb: self.deb.clone(),
            reason,
        }
    }

    /// Skips what is left of the current member, then reads the next
    /// header; `None` at the end of the archive.
    fn next_header(&mut self) -> Result<Option<MemberHeader>> {
        if self.pending > 0 {
            let skipped = io::copy(
                &mut self.reader.by_ref().take(self.pending),
                &mut io::sink(),
            )
            .map_err(|e| self.format_err(format!("cannot read the archive: {e}")))?;
            // The padding byte after the last member may be missing.
            if skipped + 1 < self.pending {
                return Err(self.format_err(format!(
                    "truncated: a member ends {} bytes early",
                    self.pending - skipped
                )));
            }
            self.pending = 0;
        }
        let mut h = [0u8; 60];
        let n = read_full(&mut self.reader, &mut h)
            .map_err(|e| self.format_err(format!("cannot read the archive: {e}")))?;
        if n == 0 {
            return Ok(None);
        }
        if n < 60 {
            return Err(self.format_err(format!(
                "truncated member header: expected 60 bytes, found {n}"
            )));
        }
        if &h[58..60] != b"`\n" {
            return Err(self.format_err(format!(
                "bad member header: expected the terminator \"`\\n\", found {:?}",
                String::from_utf8_lossy(&h[58..60])
            )));
        }
        let name = String::from_utf8_lossy(&h[..16]);
        let name = name.trim_end_matches(' ');
        let name = name.strip_suffix('/').unwrap_or(name).to_string();
        let size_text = String::from_utf8_lossy(&h[48..58]);
        let size = size_text
            .trim_end_matches(' ')
            .parse::<u64>()
            .map_err(|_| {
                self.format_err(format!(
                    "member `{name}`: expected a decimal size, found {size_text:?}"
                ))
            })?;
        self.pending = size + (size & 1);
        Ok(Some(MemberHeader { name, size }))
    }

    /// The next member whose name does not start with `_`.
    fn next_member(&mut self) -> Result<Option<MemberHeader>> {
        loop {
            match self.next_header()? {
                Some(h) if h.name.starts_with('_') => continue,
                other => return Ok(other),
            }
        }
    }

    /// Reads the current member's data through `f`, then marks what `f`
    /// read as consumed.
    fn with_member<T>(
        &mut self,
        h: &MemberHeader,
        f: impl FnOnce(&mut io::Take<&mut R>) -> Result<T>,
    ) -> Result<T> {
        let mut take = self.reader.by_ref().take(h.size);
        let out = f(&mut take);
        self.pending -= h.size - take.limit();
        out
    }
}

/// `debian-binary` and the control member.
fn read_head<R: Read>(ar: &mut Ar<R>) -> Result<DebControl> {
    let deb = ar.deb.clone();
    let first = ar.next_header()?.ok_or_else(|| Error::DebFormat {
        deb: deb.clone(),
        reason: "empty archive: expected member `debian-binary` first".to_string(),
    })?;
    if first.name != "debian-binary" {
        return Err(Error::DebFormat {
            deb,
            reason: format!(
                "expected member `debian-binary` first, found `{}`",
                first.name
            ),
        });
    }
    let member_err = |reason: String| Error::Member {
        deb: deb.clone(),
        member: "debian-binary".to_string(),
        reason,
    };
    if first.size > MAX_DEBIAN_BINARY {
        return Err(member_err(format!(
            "expected a few bytes (`2.0\\n`), found {} bytes",
            first.size
        )));
    }
    let mut text = Vec::new();
    ar.with_member(&first, |r| {
        r.read_to_end(&mut text).map_err(|source| Error::MemberIo {
            deb: deb.clone(),
            member: "debian-binary".to_string(),
            source,
        })
    })?;
    let text = String::from_utf8_lossy(&text);
    let format = text.split('\n').next().unwrap_or("").to_string();
    let ok = format
        .strip_prefix("2.")
        .is_some_and(|minor| !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit()));
    if !ok || !text.contains('\n') {
        return Err(member_err(format!(
            "expected format version `2.0` on a line of its own, found {text:?}"
        )));
    }

    let h = ar.next_member()?.ok_or_else(|| Error::DebFormat {
        deb: deb.clone(),
        reason: "no control member after `debian-binary` (expected `control.tar*`)".to_string(),
    })?;
    let compression = Compression::from_member(&h.name, "control.tar", CONTROL_COMPRESSIONS)
        .ok_or_else(|| Error::DebFormat {
            deb: deb.clone(),
            reason: format!(
                "expected member `control.tar`, `control.tar.gz`, `control.tar.xz` or \
                 `control.tar.zst` after `debian-binary`, found `{}`",
                h.name
            ),
        })?;
    let (control, files) =
        ar.with_member(&h, |r| read_control_tar(&deb, &h.name, compression, r))?;
    Ok(DebControl {
        format,
        control_member: h.name,
        control_compression: compression,
        control,
        files,
    })
}

fn read_control_tar<R: Read>(
    deb: &str,
    member: &str,
    compression: Compression,
    reader: R,
) -> Result<(Paragraph, Vec<ControlFile>)> {
    let member_io = |source: io::Error| Error::MemberIo {
        deb: deb.to_string(),
        member: member.to_string(),
        source,
    };
    let entry_err = |entry: &str, reason: String| Error::Entry {
        deb: deb.to_string(),
        member: member.to_string(),
        entry: entry.to_string(),
        reason,
    };
    let mut archive = tar::Archive::new(compression.decoder(reader).map_err(member_io)?);
    let mut files = Vec::new();
    let mut total = 0u64;
    for entry in archive.entries().map_err(member_io)? {
        let mut entry = entry.map_err(member_io)?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let comps = components(&raw).map_err(|r| entry_err(&shown, r))?;
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory | tar::EntryType::XGlobalHeader => continue,
            tar::EntryType::Regular | tar::EntryType::Continuous if raw.ends_with(b"/") => continue,
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            other => {
                return Err(entry_err(
                    &shown,
                    format!("expected only regular files in the control member, found {other:?}"),
                ))
            }
        }
        let name = String::from_utf8(comps.join(&b'/'))
            .map_err(|_| entry_err(&shown, "expected a UTF-8 file name".to_string()))?;
        if name.is_empty() {
            return Err(entry_err(
                &shown,
                "a regular file without a name".to_string(),
            ));
        }
        let size = entry.size();
        total = total.saturating_add(size);
        if total > MAX_CONTROL_FILES {
            return Err(entry_err(
                &shown,
                format!("control files larger than {MAX_CONTROL_FILES} bytes in all"),
            ));
        }
        let mode = entry
            .header()
            .mode()
            .map_err(|e| entry_err(&shown, format!("bad mode: {e}")))?;
        let mut data = Vec::with_capacity(size as usize);
        entry
            .read_to_end(&mut data)
            .map_err(|source| Error::EntryIo {
                deb: deb.to_string(),
                member: member.to_string(),
                entry: shown.clone(),
                source,
            })?;
        if data.len() as u64 != size {
            return Err(entry_err(
                &shown,
                format!("truncated: expected {size} bytes, found {}", data.len()),
            ));
        }
        files.push(ControlFile {
            name,
            mode: mode & 0o7777,
            data,
        });
    }
    // Read the stream to its end so that the decompressor checks its
    // checksum (tar stops at the end-of-archive blocks).
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(member_io)?;
    let control = files
        .iter()
        .find(|f| f.name == "control")
        .ok_or_else(|| Error::Member {
            deb: deb.to_string(),
            member: member.to_string(),
            reason: "expected a `control` file, found none".to_string(),
        })?;
    let text = std::str::from_utf8(&control.data)
        .map_err(|e| entry_err("control", format!("expected UTF-8 text: {e}")))?;
    let paragraph = control::parse_one(&format!("{deb}:{member}:control"), text)?;
    Ok((paragraph, files))
}

/// The components of an archive path (the shared rules of
/// [`crate::unpack::member_components`]), or why it is refused.
fn components(raw: &[u8]) -> std::result::Result<Vec<&[u8]>, String> {
    member_components(raw, PathRule::Lenient).map_err(str::to_string)
}

fn to_path(comps: &[&[u8]]) -> PathBuf {
    PathBuf::from(OsString::from_vec(comps.join(&b'/')))
}

struct Extractor<'a> {
    deb: &'a str,
    member: &'a str,
    out: Unpacker,
    entries: Vec<ExtractedEntry>,
    owners: Vec<Ownership>,
    skipped: Vec<SkippedEntry>,
}

impl Extractor<'_> {
    fn fail(&self, entry: &str, fail: EntryError) -> Error {
        Self::fail_at(self.deb, self.member, entry, fail)
    }

    fn fail_at(deb: &str, member: &str, entry: &str, fail: EntryError) -> Error {
        match fail {
            EntryError::Refused(reason) => Error::Entry {
                deb: deb.to_string(),
                member: member.to_string(),
                entry: entry.to_string(),
                reason,
            },
            EntryError::Io(source) => Error::EntryIo {
                deb: deb.to_string(),
                member: member.to_string(),
                entry: entry.to_string(),
                source,
            },
        }
    }

    fn unpack<R: Read>(mut self, reader: R) -> Result<Self> {
        let member_io = |source: io::Error| Error::MemberIo {
            deb: self.deb.to_string(),
            member: self.member.to_string(),
            source,
        };
        let mut archive = tar::Archive::new(reader);
        let entries = archive.entries().map_err(member_io)?;
        for entry in entries {
            let mut entry = entry.map_err(member_io)?;
            let raw = entry.path_bytes().into_owned();
            let name = String::from_utf8_lossy(&raw).into_owned();
            self.entry(&mut entry, &raw)
                .map_err(|f| self.fail(&name, f))?;
        }
        // Read the stream to its end so that the decompressor checks its
        // checksum (tar stops at the end-of-archive blocks).
        io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(member_io)?;
        Ok(self)
    }

    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        raw: &[u8],
    ) -> Result<(), EntryError> {
        use tar::EntryType as T;
        let header = entry.header();
        let kind = header.entry_type();
        if kind == T::XGlobalHeader {
            return Ok(());
        }
        let comps = components(raw).map_err(EntryError::Refused)?;
        let path = to_path(&comps);
        let bad = |what: &str, e: io::Error| {
            EntryError::Refused(format!("bad {what} in the header: {e}"))
        };
        let full_mode = header.mode().map_err(|e| bad("mode", e))? & 0o7777;
        let mode = full_mode & 0o1777;
        let uid = header.uid().map_err(|e| bad("uid", e))?;
        let gid = header.gid().map_err(|e| bad("gid", e))?;
        let name = |n: Option<&str>| n.filter(|n| !n.is_empty()).map(str::to_string);
        let mut user = name(header.username().ok().flatten());
        let mut group = name(header.groupname().ok().flatten());
        if let Some(exts) = entry.pax_extensions()? {
            for ext in exts {
                let ext = ext?;
                match (ext.key(), ext.value()) {
                    (Ok("uname"), Ok(v)) => user = name(Some(v)),
                    (Ok("gname"), Ok(v)) => group = name(Some(v)),
                    _ => {}
                }
            }
        }
        let header = entry.header();
        let is_dir = kind == T::Directory || (kind == T::Regular && raw.ends_with(b"/"));

        if comps.is_empty() {
            // `./`: the destination itself, which is the caller's.
            return if is_dir {
                Ok(())
            } else {
                Err(EntryError::Refused(
                    "a non-directory entry naming the destination itself".into(),
                ))
            };
        }

        let special = match kind {
            T::Char => Some(SpecialKind::CharDevice),
            T::Block => Some(SpecialKind::BlockDevice),
            T::Fifo => Some(SpecialKind::Fifo),
            _ => None,
        };
        if let Some(special) = special {
            let device = match (header.device_major(), header.device_minor()) {
                (Ok(Some(a)), Ok(Some(b))) if special != SpecialKind::Fifo => Some((a, b)),
                _ => None,
            };
            self.skipped.push(SkippedEntry {
                path,
                kind: special,
                mode: full_mode,
                uid,
                gid,
                device,
                note: format!(
                    "{special:?} not created: unpacking makes no device nodes or FIFOs; \
                     create it in the image if it is needed"
                ),
            });
            return Ok(());
        }

        let kind_out = if is_dir {
            self.out.dir(&comps, mode)?;
            EntryKind::Directory
        } else {
            match kind {
                T::Regular | T::Continuous | T::GNUSparse => {
                    let size = entry.size();
                    let written = self.out.file(&comps, mode, entry)?;
                    if written != size {
                        return Err(EntryError::Refused(format!(
                            "truncated: expected {size} bytes, found {written}"
                        )));
                    }
                    EntryKind::File { size }
                }
                T::Symlink => {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| t.into_owned())
                        .filter(|t| !t.is_empty())
                        .ok_or_else(|| {
                            EntryError::Refused("a symbolic link without a target".into())
                        })?;
                    self.out.symlink(&comps, &target)?;
                    EntryKind::Symlink {
                        target: PathBuf::from(OsString::from_vec(target)),
                    }
                }
                T::Link => {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| t.into_owned())
                        .filter(|t| !t.is_empty())
                        .ok_or_else(|| {
                            EntryError::Refused("a hard link without a target".into())
                        })?;
                    let written_mode = self.out.hardlink(&comps, &target)?;
                    self.entries.push(ExtractedEntry {
                        path: path.clone(),
                        kind: EntryKind::Hardlink {
                            target: to_path(&components(&target).map_err(EntryError::Refused)?),
                        },
                        mode: written_mode,
                    });
                    self.note_owner(path, uid, gid, user, group, full_mode);
                    return Ok(());
                }
                other => {
                    return Err(EntryError::Refused(format!(
                        "unsupported entry type {other:?}"
                    )));
                }
            }
        };
        self.entries.push(ExtractedEntry {
            path: path.clone(),
            kind: kind_out,
            mode,
        });
        self.note_owner(path, uid, gid, user, group, full_mode);
        Ok(())
    }

    fn note_owner(
        &mut self,
        path: PathBuf,
        uid: u64,
        gid: u64,
        user: Option<String>,
        group: Option<String>,
        mode: u32,
    ) {
        let rootish = |n: &Option<String>| n.as_deref().is_none_or(|n| n == "root");
        if uid == 0 && gid == 0 && rootish(&user) && rootish(&group) && mode & 0o6000 == 0 {
            return;
        }
        self.owners.push(Ownership {
            path,
            uid,
            gid,
            user,
            group,
            mode,
        });
    }
}

#[cfg(test)]
#[path = "deb_tests.rs"]
mod tests;
