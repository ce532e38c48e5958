//! The wheel as a zip archive: its members checked for hostile names (the
//! shared rules of [`crate::unpack`], names flagged UTF-8 that are not),
//! duplicates and symlinks, its RECORD cross-checked with them, and members
//! streamed out while being hashed against RECORD.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest as _, Sha256};
use zip::ZipArchive;

use super::record::{self, FileDigest, RowDigest};
use super::{normalize_name, paths, scripts, WheelError, WheelFilename};
use crate::unpack::{zip_member_name, zip_names_problem, ZipNames};

/// Largest RECORD / other metadata file read into memory.
const MAX_RECORD: u64 = 64 << 20;
const MAX_METADATA: u64 = 16 << 20;
/// Copy buffer for streaming members.
const COPY_BUFFER: usize = 256 << 10;

/// A regular-file member of the archive.
pub(super) struct Member {
    /// Index in the zip archive.
    index: usize,
    pub name: String,
    /// Its zip unix mode has an x bit.
    pub executable: bool,
    /// What RECORD says it holds; `None` only for RECORD, RECORD.jws and
    /// RECORD.p7s (set by [`WheelArchive::read_record`]).
    pub digest: Option<FileDigest>,
}

/// What the archive's names say about its layout.
pub(super) struct Layout {
    /// `{name}-{version}.dist-info`, as spelled in the archive.
    pub dist_info: String,
    /// `{name}-{version}.data`.
    pub data_dir: String,
    pub name: String,
    pub version: String,
}

/// An open wheel. Members are sorted by name, so nothing downstream depends
/// on the order they were zipped in.
pub(super) struct WheelArchive {
    /// The wheel's file name, for errors.
    wheel: String,
    zip: ZipArchive<BufReader<File>>,
    pub members: Vec<Member>,
    dirs: Vec<String>,
    by_name: HashMap<String, usize>,
    buf: Vec<u8>,
    /// Hash each member against RECORD as it is read (see
    /// [`WheelArchive::trust_record_hashes`]).
    verify_hashes: bool,
}

impl WheelArchive {
    /// The wheel file is proven to be the pinned bytes (its sha256 matched
    /// the lock), so RECORD's hashes are the pinned ones too: members are
    /// not hashed again on extraction (their sizes are still checked, and
    /// RECORD's digests are what the installed RECORD says).
    pub fn trust_record_hashes(&mut self) {
        self.verify_hashes = false;
    }

    /// Open and vet the archive's entries: no unsafe names, symlinks or
    /// duplicates.
    pub fn open(wheel: &str, path: &Path) -> Result<Self, WheelError> {
        let io_err = |action: String| {
            move |source| WheelError::Io {
                wheel: wheel.to_owned(),
                action,
                source,
            }
        };
        let file = File::open(path).map_err(io_err(format!("opening {}", path.display())))?;
        // Members are read in large blocks: most of a wheel's bytes are in a
        // few big members, and 8 KiB reads would cost a syscall each.
        let zip =
            ZipArchive::new(BufReader::with_capacity(COPY_BUFFER, file)).map_err(|source| {
                WheelError::Archive {
                    wheel: wheel.to_owned(),
                    source,
                }
            })?;
        let action = "reading the zip central directory";
        let mut cd = File::open(path).map_err(io_err(action.to_owned()))?;
        cd.seek(SeekFrom::Start(zip.central_directory_start()))
            .map_err(io_err(action.to_owned()))?;
        check_central_directory(wheel, BufReader::new(cd), zip.len())?;

        let mut archive = WheelArchive {
            verify_hashes: true,
            wheel: wheel.to_owned(),
            zip,
            members: Vec::new(),
            dirs: Vec::new(),
            by_name: HashMap::new(),
            buf: vec![0u8; COPY_BUFFER],
        };
        archive.scan_members()?;
        Ok(archive)
    }

    fn scan_members(&mut self) -> Result<(), WheelError> {
        for index in 0..self.zip.len() {
            let entry = self
                .zip
                .by_index_raw(index)
                .map_err(|source| WheelError::Archive {
                    wheel: self.wheel.clone(),
                    source,
                })?;
            let name = zip_member_name(entry.name(), entry.name_raw())
                .map_err(|reason| WheelError::UnsafePath {
                    wheel: self.wheel.clone(),
                    member: String::from_utf8_lossy(entry.name_raw()).into_owned(),
                    reason,
                })?
                .to_owned();
            if let Some(reason) = paths::unsafe_member_reason(&name) {
                return Err(WheelError::UnsafePath {
                    wheel: self.wheel.clone(),
                    member: name,
                    reason,
                });
            }
            if entry.is_symlink() {
                return Err(WheelError::Symlink {
                    wheel: self.wheel.clone(),
                    member: name,
                });
            }
            if entry.is_dir() {
                self.dirs.push(name);
                continue;
            }
            let executable = entry.unix_mode().is_some_and(|m| m & 0o111 != 0);
            self.members.push(Member {
                index,
                name,
                executable,
                digest: None,
            });
        }
        self.members.sort_by(|a, b| a.name.cmp(&b.name));
        self.by_name = self
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.clone(), i))
            .collect();
        Ok(())
    }

    /// Exactly one top-level `.dist-info` directory, for the file name's
    /// distribution under PEP 503 normalization.
    pub fn layout(&self, filename: &WheelFilename) -> Result<Layout, WheelError> {
        let tops: BTreeSet<&str> = self
            .members
            .iter()
            .map(|m| m.name.as_str())
            .chain(self.dirs.iter().map(String::as_str))
            .filter_map(|n| n.split_once('/').map(|(top, _)| top))
            .collect();
        let infos: Vec<&str> = tops
            .into_iter()
            .filter(|t| t.ends_with(".dist-info"))
            .collect();
        let expected = normalize_name(&filename.name);
        let err = |found: String| WheelError::DistInfo {
            wheel: self.wheel.clone(),
            expected: format!(
                "{expected} (e.g. {}-{}.dist-info)",
                filename.name, filename.version
            ),
            found,
        };
        let [info] = infos.as_slice() else {
            return Err(err(if infos.is_empty() {
                "none".to_owned()
            } else {
                infos.join(", ")
            }));
        };
        let stem = info.strip_suffix(".dist-info").unwrap_or(info);
        let (name, version) = match stem.rsplit_once('-') {
            Some((n, v)) if !v.is_empty() && normalize_name(n) == expected => (n, v),
            _ => {
                return Err(err(format!(
                    "{info}, which is not {{name}}-{{version}}.dist-info for that name"
                )))
            }
        };
        Ok(Layout {
            dist_info: (*info).to_owned(),
            data_dir: format!("{stem}.data"),
            name: name.to_owned(),
            version: version.to_owned(),
        })
    }

    /// Read `{dist_info}/RECORD` and cross-check it with the members: every
    /// member but RECORD{,.jws,.p7s} must have a complete row (its digest is
    /// then set), and every row with a hash must name a member.
    pub fn read_record(&mut self, layout: &Layout) -> Result<(), WheelError> {
        let record_member = format!("{}/RECORD", layout.dist_info);
        let unsigned =
            ["RECORD", "RECORD.jws", "RECORD.p7s"].map(|f| format!("{}/{f}", layout.dist_info));
        let Some(&i) = self.by_name.get(&record_member) else {
            return Err(WheelError::MissingMetadata {
                wheel: self.wheel.clone(),
                member: record_member,
            });
        };
        let bad = |reason: String| WheelError::Metadata {
            wheel: self.wheel.clone(),
            member: record_member.clone(),
            reason,
        };
        let mut bytes = Vec::new();
        let file = self
            .zip
            .by_index(self.members[i].index)
            .map_err(|e| read_error(&self.wheel, &record_member, e.into()))?;
        file.take(MAX_RECORD + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| read_error(&self.wheel, &record_member, e))?;
        if bytes.len() as u64 > MAX_RECORD {
            return Err(bad(format!("it is larger than {MAX_RECORD} bytes")));
        }
        let text = String::from_utf8(bytes).map_err(|_| bad("it is not UTF-8".to_owned()))?;
        let mut rows = record::parse_record(&text).map_err(&bad)?;
        rows.sort_by(|a, b| a.path.cmp(&b.path));
        if let Some(w) = rows.windows(2).find(|w| w[0].path == w[1].path) {
            return Err(bad(format!("it lists {} more than once", w[0].path)));
        }
        let by_path: HashMap<&str, &record::RecordRow> =
            rows.iter().map(|r| (r.path.as_str(), r)).collect();

        for m in &mut self.members {
            if unsigned.contains(&m.name) {
                continue;
            }
            match by_path.get(m.name.as_str()) {
                None => {
                    return Err(WheelError::NotInRecord {
                        wheel: self.wheel.clone(),
                        member: m.name.clone(),
                    })
                }
                Some(row) => match row.digest {
                    RowDigest::Valid(d) => m.digest = Some(d),
                    _ => {
                        return Err(WheelError::RecordRowIncomplete {
                            wheel: self.wheel.clone(),
                            member: m.name.clone(),
                            found: row.raw.clone(),
                        })
                    }
                },
            }
        }
        for row in &rows {
            if row.digest != RowDigest::Empty && !self.by_name.contains_key(&row.path) {
                return Err(WheelError::MissingFromArchive {
                    wheel: self.wheel.clone(),
                    member: row.path.clone(),
                    expected: row.raw.clone(),
                });
            }
        }
        Ok(())
    }

    /// A small UTF-8 member, verified against RECORD; `None` if absent.
    pub fn read_text(&mut self, member: &str) -> Result<Option<String>, WheelError> {
        let Some(&i) = self.by_name.get(member) else {
            return Ok(None);
        };
        let wheel = self.wheel.clone();
        let bad = |reason: String| WheelError::Metadata {
            wheel: wheel.clone(),
            member: member.to_owned(),
            reason,
        };
        if let Some(d) = self.members[i].digest.filter(|d| d.size > MAX_METADATA) {
            return Err(bad(format!(
                "RECORD says it is {} bytes, more than the {MAX_METADATA} read",
                d.size
            )));
        }
        let mut bytes = Vec::new();
        self.extract(i, &mut bytes, None, "memory")?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| bad("it is not UTF-8".to_owned()))
    }

    /// What RECORD says member `i` holds (an error for RECORD itself and its
    /// signatures, which are never installed).
    pub fn recorded(&self, i: usize) -> Result<FileDigest, WheelError> {
        let member = &self.members[i];
        member.digest.ok_or_else(|| WheelError::NotInRecord {
            wheel: self.wheel.clone(),
            member: member.name.clone(),
        })
    }

    /// Copy member `i` into `out` (named `dest_path` in errors), rewriting a
    /// `#!python` first line when `interpreter` is given, and hashing what is
    /// read: an error unless it is exactly what RECORD says. Returns the
    /// digest of what was written.
    pub fn extract(
        &mut self,
        i: usize,
        out: &mut dyn Write,
        interpreter: Option<&str>,
        dest_path: &str,
    ) -> Result<FileDigest, WheelError> {
        let WheelArchive {
            wheel,
            zip,
            members,
            buf,
            verify_hashes,
            ..
        } = self;
        let member = &members[i];
        let Some(expected) = member.digest else {
            // Only RECORD{,.jws,.p7s} have none, and they are never extracted.
            return Err(WheelError::NotInRecord {
                wheel: wheel.clone(),
                member: member.name.clone(),
            });
        };
        let write_error = |source| WheelError::Io {
            wheel: wheel.clone(),
            action: format!("writing {dest_path}"),
            source,
        };
        let file = zip
            .by_index(member.index)
            .map_err(|e| read_error(wheel, &member.name, e.into()))?;
        // Never read more than RECORD promises (plus one byte to notice).
        let mut reader =
            HashingReader::new(file.take(expected.size.saturating_add(1)), *verify_hashes);
        // Hash the output only when it may differ from the input.
        let mut out = HashingWriter::new(out, interpreter.is_some());
        match interpreter {
            Some(interpreter) => {
                let mut src = BufReader::with_capacity(buf.len(), &mut reader);
                match scripts::copy_script(&mut src, &mut out, interpreter, buf) {
                    Ok(scripts::Copied::Done) => {}
                    Ok(scripts::Copied::ShebangTooLong) => {
                        return Err(WheelError::Script {
                            wheel: wheel.clone(),
                            member: member.name.clone(),
                            reason: "its first line starts with #!python but is longer than 64 KiB",
                        })
                    }
                    Err(e) if out.failed => return Err(write_error(e)),
                    Err(e) => return Err(read_error(wheel, &member.name, e)),
                }
            }
            None => loop {
                let n = match reader.read(buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(read_error(wheel, &member.name, e)),
                };
                out.write_all(&buf[..n]).map_err(write_error)?;
            },
        }
        let found = match reader.digest() {
            // Trusted: the size is what is checked; the digest is RECORD's.
            d if !*verify_hashes && d.size == expected.size => expected,
            d => d,
        };
        if found != expected {
            return Err(WheelError::HashMismatch {
                wheel: wheel.clone(),
                member: member.name.clone(),
                expected: expected.to_string(),
                found: if found.size > expected.size {
                    format!("more than {} bytes (reading stopped there)", expected.size)
                } else {
                    found.to_string()
                },
            });
        }
        Ok(if interpreter.is_some() {
            out.digest()
        } else {
            found
        })
    }
}

fn read_error(wheel: &str, member: &str, source: io::Error) -> WheelError {
    WheelError::Read {
        wheel: wheel.to_owned(),
        member: member.to_owned(),
        source,
    }
}

/// Duplicate names in the central directory (from `cd`): see
/// [`zip_names_problem`].
fn check_central_directory(wheel: &str, cd: impl Read, distinct: usize) -> Result<(), WheelError> {
    let problem = zip_names_problem(cd, distinct).map_err(|source| WheelError::Io {
        wheel: wheel.to_owned(),
        action: "reading the zip central directory".to_owned(),
        source,
    })?;
    match problem {
        None => Ok(()),
        Some(ZipNames::Duplicate(name)) => Err(WheelError::DuplicateMember {
            wheel: wheel.to_owned(),
            member: String::from_utf8_lossy(&name).into_owned(),
        }),
        Some(ZipNames::Count { entries, distinct }) => Err(WheelError::CentralDirectory {
            wheel: wheel.to_owned(),
            found: format!("has {entries} entries but {distinct} distinct names after decoding"),
        }),
    }
}

/// Hashes (if `hash`) and counts what is read through it.
struct HashingReader<R> {
    inner: R,
    hash: bool,
    hasher: Sha256,
    size: u64,
}

impl<R> HashingReader<R> {
    fn new(inner: R, hash: bool) -> Self {
        HashingReader {
            inner,
            hash,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    fn digest(&self) -> FileDigest {
        FileDigest {
            sha256: self.hasher.clone().finalize().into(),
            size: self.size,
        }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.hash {
            self.hasher.update(&buf[..n]);
        }
        self.size += n as u64;
        Ok(n)
    }
}

/// Hashes (if `hash`) and counts what is written through it, and remembers
/// whether a write failed (to tell write errors from read errors in one copy).
struct HashingWriter<W> {
    inner: W,
    hash: bool,
    hasher: Sha256,
    size: u64,
    failed: bool,
}

impl<W> HashingWriter<W> {
    fn new(inner: W, hash: bool) -> Self {
        HashingWriter {
            inner,
            hash,
            hasher: Sha256::new(),
            size: 0,
            failed: false,
        }
    }

    fn digest(&self) -> FileDigest {
        FileDigest {
            sha256: self.hasher.clone().finalize().into(),
            size: self.size,
        }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf).inspect_err(|_| self.failed = true)?;
        if self.hash {
            self.hasher.update(&buf[..n]);
        }
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().inspect_err(|_| self.failed = true)
    }
}
