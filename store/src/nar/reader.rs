//! Parsing a NAR stream and restoring it as a tree on disk.
//!
//! The parser checks the grammar in the [module doc](super) strictly: tokens
//! in order, entries in strictly increasing bytewise order, names that are
//! not empty, `.`, `..` or contain `/` or NUL, and zero padding. The restored
//! tree is canonical (see [`crate::canonical`]).

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::{padding, MAGIC};
use crate::canonical;
use crate::error::NarError;

/// Longest string token accepted outside file contents (names, targets).
const MAX_TOKEN: u64 = 64 * 1024;

struct Parser<R> {
    input: R,
    offset: u64,
}

impl<R: Read> Parser<R> {
    fn malformed(&self, expected: impl Into<String>, found: impl Into<String>) -> NarError {
        NarError::Malformed {
            offset: self.offset,
            expected: expected.into(),
            found: found.into(),
        }
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), NarError> {
        match self.input.read_exact(buf) {
            Ok(()) => {
                self.offset += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(self.malformed(format!("{} more bytes", buf.len()), "end of input"))
            }
            Err(e) => Err(NarError::Io {
                path: "<nar input>".into(),
                source: e,
            }),
        }
    }

    fn u64(&mut self) -> Result<u64, NarError> {
        let mut b = [0u8; 8];
        self.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn pad(&mut self, len: u64) -> Result<(), NarError> {
        let mut p = [0u8; 8];
        let n = padding(len);
        self.read_exact(&mut p[..n])?;
        if p[..n].iter().any(|&b| b != 0) {
            return Err(self.malformed("zero padding", "non-zero bytes"));
        }
        Ok(())
    }

    fn bytes(&mut self) -> Result<Vec<u8>, NarError> {
        let len = self.u64()?;
        if len > MAX_TOKEN {
            return Err(self.malformed(
                format!("a string of at most {MAX_TOKEN} bytes"),
                format!("length {len}"),
            ));
        }
        let mut v = vec![0u8; len as usize];
        self.read_exact(&mut v)?;
        self.pad(len)?;
        Ok(v)
    }

    fn expect(&mut self, token: &str) -> Result<(), NarError> {
        let at = self.offset;
        let got = self.bytes()?;
        if got != token.as_bytes() {
            return Err(NarError::Malformed {
                offset: at,
                expected: format!("{token:?}"),
                found: format!("{:?}", String::from_utf8_lossy(&got)),
            });
        }
        Ok(())
    }

    fn node(&mut self, dst: &Path) -> Result<(), NarError> {
        let io_err = |source| NarError::Io {
            path: dst.to_path_buf(),
            source,
        };
        self.expect("(")?;
        self.expect("type")?;
        let at = self.offset;
        let kind = self.bytes()?;
        match kind.as_slice() {
            b"regular" => {
                let mut tok = self.bytes()?;
                let executable = tok == b"executable";
                if executable {
                    self.expect("")?;
                    tok = self.bytes()?;
                }
                if tok != b"contents" {
                    return Err(self.malformed("\"contents\"", String::from_utf8_lossy(&tok)));
                }
                let size = self.u64()?;
                let mut file = canonical::create_file(dst)?;
                let mut limited = (&mut self.input).take(size);
                let copied = io::copy(&mut limited, &mut file).map_err(io_err)?;
                self.offset += copied;
                if copied != size {
                    return Err(self.malformed(format!("{size} bytes of contents"), "end of input"));
                }
                self.pad(size)?;
                file.flush().map_err(io_err)?;
                canonical::finish_file(file, dst, executable)?;
            }
            b"symlink" => {
                self.expect("target")?;
                let target = self.bytes()?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), dst).map_err(io_err)?;
                canonical::set_mtime(dst)?;
            }
            b"directory" => {
                fs::create_dir(dst).map_err(io_err)?;
                let mut prev: Option<Vec<u8>> = None;
                loop {
                    let at = self.offset;
                    let tok = self.bytes()?;
                    match tok.as_slice() {
                        b")" => {
                            canonical::finish_dir(dst)?;
                            return Ok(());
                        }
                        b"entry" => {}
                        other => {
                            return Err(NarError::Malformed {
                                offset: at,
                                expected: "\"entry\" or \")\"".into(),
                                found: format!("{:?}", String::from_utf8_lossy(other)),
                            })
                        }
                    }
                    self.expect("(")?;
                    self.expect("name")?;
                    let at = self.offset;
                    let name = self.bytes()?;
                    if name.is_empty()
                        || name == b"."
                        || name == b".."
                        || name.contains(&b'/')
                        || name.contains(&0)
                    {
                        return Err(NarError::Malformed {
                            offset: at,
                            expected: "a file name".into(),
                            found: format!("{:?}", String::from_utf8_lossy(&name)),
                        });
                    }
                    if let Some(p) = &prev {
                        if name <= *p {
                            return Err(NarError::Malformed {
                                offset: at,
                                expected: format!(
                                    "an entry name after {:?}",
                                    String::from_utf8_lossy(p)
                                ),
                                found: format!("{:?}", String::from_utf8_lossy(&name)),
                            });
                        }
                    }
                    self.expect("node")?;
                    self.node(&dst.join(OsStr::from_bytes(&name)))?;
                    self.expect(")")?;
                    prev = Some(name);
                }
            }
            other => {
                return Err(NarError::Malformed {
                    offset: at,
                    expected: "\"regular\", \"symlink\" or \"directory\"".into(),
                    found: format!("{:?}", String::from_utf8_lossy(other)),
                })
            }
        }
        self.expect(")")
    }
}

/// Restore the NAR read from `input` at `dst` (which must not exist).
pub fn restore(input: impl Read, dst: &Path) -> Result<(), NarError> {
    let mut p = Parser { input, offset: 0 };
    p.expect(MAGIC)?;
    p.node(dst)
}
