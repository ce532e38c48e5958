//! Streaming NAR serialization of a path on disk.
//!
//! Memory use is constant: file contents go through one fixed buffer, and only
//! one directory listing per level of nesting is held at a time. The optional
//! copy mode writes a canonical copy of the tree (read-only, mtime 1, no
//! xattrs, no special bits) from the very bytes that are serialized, so the
//! copy's NAR is the NAR that was hashed even if the source changes meanwhile.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{padding, MAGIC};
use crate::canonical;
use crate::error::NarError;

const BUF_SIZE: usize = 1 << 20;

/// The sha256 and size of a NAR serialization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NarHash {
    pub sha256: [u8; 32],
    pub size: u64,
}

impl NarHash {
    /// `sha256-<base64>`, the SRI form `nix hash path` prints by default.
    pub fn to_sri(&self) -> String {
        use base64::Engine;
        format!(
            "sha256-{}",
            base64::engine::general_purpose::STANDARD.encode(self.sha256)
        )
    }
    /// `sha256:<nix-base32>`, the form Nix's database and narinfo use.
    pub fn to_nix_base32(&self) -> String {
        crate::nixbase32::encode(&self.sha256)
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// A `Write` sink that hashes and counts what passes through it.
pub struct HashingWriter {
    hasher: Sha256,
    size: u64,
}

impl HashingWriter {
    pub fn new() -> Self {
        HashingWriter {
            hasher: Sha256::new(),
            size: 0,
        }
    }
    pub fn finish(self) -> NarHash {
        NarHash {
            sha256: self.hasher.finalize().into(),
            size: self.size,
        }
    }
}

impl Default for HashingWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hasher.update(buf);
        self.size += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Serialize `path` as a NAR into `out`.
pub fn dump(path: &Path, out: &mut dyn Write) -> Result<(), NarError> {
    Dumper::new(out, None).run(path)
}

/// Serialize `path` into `out` and at the same time write a canonical copy of
/// it at `copy_to` (which must not exist yet).
pub fn dump_and_copy(path: &Path, out: &mut dyn Write, copy_to: &Path) -> Result<(), NarError> {
    Dumper::new(out, Some(copy_to.to_path_buf())).run(path)
}

/// The NAR hash and size of `path`.
pub fn hash_path(path: &Path) -> Result<NarHash, NarError> {
    let mut sink = HashingWriter::new();
    dump(path, &mut sink)?;
    Ok(sink.finish())
}

/// Check that a path exists and holds only what a NAR can record, without
/// reading file contents. Used to refuse bad input before anything changes.
pub fn check_tree(path: &Path) -> Result<(), NarError> {
    let meta = fs::symlink_metadata(path).map_err(|source| NarError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let ft = meta.file_type();
    if ft.is_dir() {
        for name in sorted_entries(path)? {
            check_tree(&path.join(name))?;
        }
        Ok(())
    } else if ft.is_file() || ft.is_symlink() {
        Ok(())
    } else {
        Err(unsupported(path, &ft))
    }
}

fn unsupported(path: &Path, ft: &fs::FileType) -> NarError {
    let kind = if ft.is_block_device() {
        "block device"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_fifo() {
        "FIFO (named pipe)"
    } else if ft.is_socket() {
        "socket"
    } else {
        "file of unknown type"
    };
    NarError::UnsupportedFileType {
        path: path.to_path_buf(),
        kind,
    }
}

/// A directory's entry names in NAR (bytewise) order.
pub(crate) fn sorted_entries(dir: &Path) -> Result<Vec<OsString>, NarError> {
    let io_err = |source| NarError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err)? {
        names.push(entry.map_err(io_err)?.file_name());
    }
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

struct Dumper<'a> {
    out: &'a mut dyn Write,
    copy_root: Option<PathBuf>,
    buf: Vec<u8>,
}

impl<'a> Dumper<'a> {
    fn new(out: &'a mut dyn Write, copy_root: Option<PathBuf>) -> Self {
        Dumper {
            out,
            copy_root,
            buf: vec![0u8; BUF_SIZE],
        }
    }

    fn run(mut self, path: &Path) -> Result<(), NarError> {
        self.str(MAGIC.as_bytes())?;
        let copy = self.copy_root.clone();
        self.node(path, copy.as_deref())?;
        self.out.flush().map_err(NarError::Write)
    }

    fn raw(&mut self, bytes: &[u8]) -> Result<(), NarError> {
        self.out.write_all(bytes).map_err(NarError::Write)
    }

    fn str(&mut self, s: &[u8]) -> Result<(), NarError> {
        let len = s.len() as u64;
        // One write per token keeps per-call overhead low for tiny files.
        let mut token = Vec::with_capacity(8 + s.len() + 8);
        token.extend_from_slice(&len.to_le_bytes());
        token.extend_from_slice(s);
        token.resize(token.len() + padding(len), 0);
        self.raw(&token)
    }

    fn node(&mut self, path: &Path, copy: Option<&Path>) -> Result<(), NarError> {
        let io_err = |source| NarError::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = fs::symlink_metadata(path).map_err(io_err)?;
        let ft = meta.file_type();
        self.str(b"(")?;
        self.str(b"type")?;
        if ft.is_file() {
            self.regular(path, &meta, copy)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(path).map_err(io_err)?;
            self.str(b"symlink")?;
            self.str(b"target")?;
            self.str(target.as_os_str().as_bytes())?;
            if let Some(dst) = copy {
                std::os::unix::fs::symlink(&target, dst).map_err(|source| NarError::Io {
                    path: dst.to_path_buf(),
                    source,
                })?;
                canonical::set_mtime(dst)?;
            }
        } else if ft.is_dir() {
            self.str(b"directory")?;
            if let Some(dst) = copy {
                fs::create_dir(dst).map_err(|source| NarError::Io {
                    path: dst.to_path_buf(),
                    source,
                })?;
            }
            for name in sorted_entries(path)? {
                let bytes = name.as_bytes();
                if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&0) {
                    return Err(NarError::BadEntryName {
                        path: path.to_path_buf(),
                        name: name.to_string_lossy().into_owned(),
                    });
                }
                self.str(b"entry")?;
                self.str(b"(")?;
                self.str(b"name")?;
                self.str(bytes)?;
                self.str(b"node")?;
                let child_copy = copy.map(|d| d.join(&name));
                self.node(&path.join(&name), child_copy.as_deref())?;
                self.str(b")")?;
            }
            if let Some(dst) = copy {
                canonical::finish_dir(dst)?;
            }
        } else {
            return Err(unsupported(path, &ft));
        }
        self.str(b")")
    }

    fn regular(
        &mut self,
        path: &Path,
        meta: &fs::Metadata,
        copy: Option<&Path>,
    ) -> Result<(), NarError> {
        let io_err = |source| NarError::Io {
            path: path.to_path_buf(),
            source,
        };
        let executable = meta.permissions().mode() & 0o100 != 0;
        self.str(b"regular")?;
        if executable {
            self.str(b"executable")?;
            self.str(b"")?;
        }
        self.str(b"contents")?;
        let size = meta.size();
        self.raw(&size.to_le_bytes())?;
        let mut file = File::open(path).map_err(io_err)?;
        let mut dst = match copy {
            Some(d) => Some(canonical::create_file(d)?),
            None => None,
        };
        let mut done: u64 = 0;
        let mut buf = std::mem::take(&mut self.buf);
        let result = loop {
            let want = ((size - done).min(buf.len() as u64)) as usize;
            if want == 0 {
                // Detect growth: the file must end where its size said.
                match file.read(&mut buf[..1]) {
                    Ok(0) => break Ok(()),
                    Ok(_) => {
                        break Err(NarError::Changed {
                            path: path.to_path_buf(),
                            expected: size,
                            found: size + 1,
                        })
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => break Err(io_err(e)),
                }
            }
            let n = match file.read(&mut buf[..want]) {
                Ok(0) => {
                    break Err(NarError::Changed {
                        path: path.to_path_buf(),
                        expected: size,
                        found: done,
                    })
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(io_err(e)),
            };
            if let Err(e) = self.out.write_all(&buf[..n]) {
                break Err(NarError::Write(e));
            }
            if let (Some(f), Some(d)) = (dst.as_mut(), copy) {
                if let Err(source) = f.write_all(&buf[..n]) {
                    break Err(NarError::Io {
                        path: d.to_path_buf(),
                        source,
                    });
                }
            }
            done += n as u64;
        };
        self.buf = buf;
        result?;
        self.raw(&[0u8; 8][..padding(size)])?;
        if let (Some(f), Some(d)) = (dst, copy) {
            canonical::finish_file(f, d, executable)?;
        }
        Ok(())
    }
}
