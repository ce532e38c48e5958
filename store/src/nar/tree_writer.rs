//! Writing a new tree in NAR order, hashing its NAR as the bytes pass.
//!
//! A builder that knows every entry of its output up front (a wheel's
//! members, say) gives them to a [`TreeWriter`] in NAR order. Each file is
//! laid down already canonical (0444 or 0555, mtime 1; directories 0555 once
//! their last entry is written) and its bytes go to the NAR hasher on their
//! way to disk, with the framing the [grammar](super) puts around them. The
//! tree never has to be read back, walked again or re-moded to learn its
//! identity: [`TreeWriter::finish`] returns a [`WrittenTree`] whose hash is
//! exactly [`hash_path`](super::hash_path) of the tree written, and the store
//! accepts it (`Store::prepare_written_output`) without hashing again.
//!
//! Entries are named by `/`-separated paths relative to the root, and must
//! come in NAR order: the order of a depth-first walk that visits each
//! directory's entries sorted bytewise by name, which is the order of the
//! paths' component lists compared lexicographically ([`nar_order`]; note
//! `a/b` comes before `a.b`, although `'.' < '/'`). Parent directories are
//! implied by the paths below them. A path that does not come after the one
//! before, or that passes through a file, is an error, as is a file given
//! more or fewer bytes than it declared. After any error the writer refuses
//! further entries; the caller discards the tree.

use std::cmp::Ordering;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::writer::HashingWriter;
use super::{encode_str, padding, NarHash, MAGIC};
use crate::canonical;
use crate::error::NarError;

/// The order entries must be given to a [`TreeWriter`] in: component lists
/// compared lexicographically, each component bytewise.
pub fn nar_order(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

/// A tree written by a [`TreeWriter`], with the NAR hash of what was
/// written. Only a [`TreeWriter`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenTree {
    root: PathBuf,
    nar: NarHash,
}

impl WrittenTree {
    /// Where the tree is.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The NAR hash and size of the tree.
    pub fn nar(&self) -> NarHash {
        self.nar
    }
}

/// A directory entered and not yet finished.
struct OpenDir {
    name: String,
    path: PathBuf,
}

/// Writes a tree in NAR order; see the [module docs](self).
pub struct TreeWriter {
    root: PathBuf,
    sink: HashingWriter,
    token: Vec<u8>,
    /// Directories below the root that are entered, outermost first.
    open: Vec<OpenDir>,
    /// The last name written in the root (index 0) and in each open
    /// directory (index i + 1 for `open[i]`).
    last: Vec<Option<String>>,
    /// A file was started and not finished, or an error happened.
    poisoned: bool,
}

impl TreeWriter {
    /// Start a tree: `root` is created as a directory and must not exist.
    pub fn create(root: &Path) -> Result<TreeWriter, NarError> {
        fs::create_dir(root).map_err(io_err(root))?;
        let mut w = TreeWriter {
            root: root.to_path_buf(),
            sink: HashingWriter::new(),
            token: Vec::with_capacity(256),
            open: Vec::new(),
            last: vec![None],
            poisoned: false,
        };
        w.str(MAGIC.as_bytes());
        w.str(b"(");
        w.str(b"type");
        w.str(b"directory");
        Ok(w)
    }

    /// The tree's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Start the regular file `path` of exactly `size` bytes; write them to
    /// the returned [`FileWriter`] and call [`FileWriter::finish`].
    pub fn file(
        &mut self,
        path: &str,
        executable: bool,
        size: u64,
    ) -> Result<FileWriter<'_>, NarError> {
        let full = self.guarded(|w| w.enter(path))?;
        let file = match canonical::create_file(&full) {
            Ok(f) => f,
            Err(e) => {
                self.poisoned = true;
                return Err(e);
            }
        };
        self.str(b"(");
        self.str(b"type");
        self.str(b"regular");
        if executable {
            self.str(b"executable");
            self.str(b"");
        }
        self.str(b"contents");
        self.raw(&size.to_le_bytes());
        // Until the file is finished, nothing else may be written.
        self.poisoned = true;
        Ok(FileWriter {
            tree: self,
            file,
            path: full,
            executable,
            size,
            written: 0,
        })
    }

    /// The regular file `path` holding `bytes`.
    pub fn file_from_bytes(
        &mut self,
        path: &str,
        executable: bool,
        bytes: &[u8],
    ) -> Result<(), NarError> {
        let mut f = self.file(path, executable, bytes.len() as u64)?;
        f.write_all(bytes).map_err(|e| NarError::Io {
            path: f.path.clone(),
            source: e,
        })?;
        f.finish()
    }

    /// The symlink `path` pointing at `target` (not checked or followed).
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<(), NarError> {
        self.guarded(|w| {
            let full = w.enter(path)?;
            std::os::unix::fs::symlink(target, &full).map_err(io_err(&full))?;
            canonical::set_mtime(&full)?;
            w.str(b"(");
            w.str(b"type");
            w.str(b"symlink");
            w.str(b"target");
            w.str(target.as_bytes());
            w.str(b")");
            w.str(b")");
            Ok(())
        })
    }

    /// The directory `path`, which may stay empty: entries below it may
    /// follow.
    pub fn directory(&mut self, path: &str) -> Result<(), NarError> {
        self.guarded(|w| {
            let full = w.enter(path)?;
            let name = path.rsplit('/').next().unwrap_or(path).to_owned();
            w.open_dir(name, full)
        })
    }

    /// Finish every open directory and the root; the tree is complete.
    pub fn finish(mut self) -> Result<WrittenTree, NarError> {
        if self.poisoned {
            return Err(self.refused("(finish)", "an earlier entry failed or was not finished"));
        }
        while !self.open.is_empty() {
            self.close_dir()?;
        }
        self.str(b")");
        canonical::finish_dir(&self.root)?;
        Ok(WrittenTree {
            root: self.root,
            nar: self.sink.finish(),
        })
    }

    fn guarded<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, NarError>,
    ) -> Result<T, NarError> {
        if self.poisoned {
            return Err(self.refused("", "an earlier entry failed or was not finished"));
        }
        f(self).inspect_err(|_| self.poisoned = true)
    }

    fn refused(&self, path: &str, reason: &str) -> NarError {
        NarError::TreeOrder {
            root: self.root.clone(),
            path: path.to_owned(),
            reason: reason.to_owned(),
        }
    }

    /// Close directories the new `path` is not in, open the ones it is in,
    /// and write its `entry ( name NAME node` framing; the physical path of
    /// the new entry.
    fn enter(&mut self, path: &str) -> Result<PathBuf, NarError> {
        let components: Vec<&str> = path.split('/').collect();
        for c in &components {
            if c.is_empty() || *c == "." || *c == ".." || c.contains('\0') {
                return Err(NarError::BadEntryName {
                    path: self.root.join(path),
                    name: (*c).to_owned(),
                });
            }
        }
        let (leaf, parents) = components.split_last().expect("split gives one at least");
        let common = self
            .open
            .iter()
            .zip(parents)
            .take_while(|(d, p)| d.name == **p)
            .count();
        while self.open.len() > common {
            self.close_dir()?;
        }
        for name in &parents[common..] {
            let full = self.open.last().map_or(&self.root, |d| &d.path).join(name);
            self.entry(path, name)?;
            self.open_dir((*name).to_owned(), full)?;
        }
        self.entry(path, leaf)?;
        Ok(self.open.last().map_or(&self.root, |d| &d.path).join(leaf))
    }

    /// Check `name` comes after the last entry of the innermost open
    /// directory and write its entry framing.
    fn entry(&mut self, path: &str, name: &str) -> Result<(), NarError> {
        let last = self
            .last
            .last_mut()
            .expect("the root's level is always there");
        if let Some(prev) = last.as_deref() {
            if name.as_bytes() <= prev.as_bytes() {
                let reason = if name == prev {
                    format!(
                        "{name:?} was written already (as a file, symlink or finished directory)"
                    )
                } else {
                    format!("{name:?} comes before {prev:?}, written already; entries must come in NAR order")
                };
                return Err(self.refused(path, &reason));
            }
        }
        *last = Some(name.to_owned());
        self.str(b"entry");
        self.str(b"(");
        self.str(b"name");
        self.str(name.as_bytes());
        self.str(b"node");
        Ok(())
    }

    fn open_dir(&mut self, name: String, full: PathBuf) -> Result<(), NarError> {
        fs::create_dir(&full).map_err(io_err(&full))?;
        self.str(b"(");
        self.str(b"type");
        self.str(b"directory");
        self.open.push(OpenDir { name, path: full });
        self.last.push(None);
        Ok(())
    }

    fn close_dir(&mut self) -> Result<(), NarError> {
        let dir = self.open.pop().expect("a directory to close");
        self.last.pop();
        self.str(b")"); // the directory node
        self.str(b")"); // its entry
        canonical::finish_dir(&dir.path)
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.sink.write_all(bytes).expect("hashing does not fail");
    }

    fn str(&mut self, s: &[u8]) {
        encode_str(&mut self.token, s);
        self.sink
            .write_all(&self.token)
            .expect("hashing does not fail");
    }
}

/// The contents of one file of a [`TreeWriter`], written to disk and to the
/// NAR hash together. Bytes past the declared size are dropped and make
/// [`FileWriter::finish`] fail, so a reader that checks what it copied
/// (against a size or hash of its own) still gets to report it first.
pub struct FileWriter<'a> {
    tree: &'a mut TreeWriter,
    file: File,
    path: PathBuf,
    executable: bool,
    size: u64,
    written: u64,
}

impl FileWriter<'_> {
    /// Check the size, make the file canonical and close its entry.
    pub fn finish(self) -> Result<(), NarError> {
        if self.written != self.size {
            return Err(NarError::Changed {
                path: self.path,
                expected: self.size,
                found: self.written,
            });
        }
        let tree = self.tree;
        tree.raw(&[0u8; 8][..padding(self.size)]);
        tree.str(b")"); // the file node
        tree.str(b")"); // its entry
        canonical::finish_file(self.file, &self.path, self.executable)?;
        tree.poisoned = false;
        Ok(())
    }
}

impl Write for FileWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.size.saturating_sub(self.written);
        let n = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        self.file.write_all(&buf[..n])?;
        self.tree.raw(&buf[..n]);
        // Past the declared size: counted, not written (finish refuses).
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> NarError + '_ {
    move |source| NarError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nar_order_puts_a_directory_before_names_extending_it() {
        let mut paths = vec!["a.b", "a/b", "a-c/x", "a/a", "b", "a"];
        paths.sort_by(|a, b| nar_order(a, b));
        assert_eq!(paths, ["a", "a/a", "a/b", "a-c/x", "a.b", "b"]);
    }
}
