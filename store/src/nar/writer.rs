//! Streaming NAR serialization of a path on disk.
//!
//! Three kinds of thread cooperate so that system calls and hashing overlap:
//! a walker lists directories and `lstat`s entries in NAR order, a small pool
//! of readers fetches file contents ahead of time, and the caller's thread
//! serializes the ordered stream (and, in copy mode, writes a canonical copy
//! of the tree from the very bytes it serializes). Memory stays bounded
//! whatever the file sizes: at most [`FILES_IN_FLIGHT`] files are fetched
//! ahead, each holding at most [`CHUNK_DEPTH`] chunks of [`CHUNK`] bytes.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::{encode_str, padding, MAGIC};
use crate::canonical;
use crate::error::NarError;

/// Bytes per read and per chunk handed to the serializer.
const CHUNK: usize = 128 * 1024;
/// Chunks of one file that may wait for the serializer.
const CHUNK_DEPTH: usize = 8;
/// Files whose contents may be fetched ahead of the serializer.
const FILES_IN_FLIGHT: usize = 64;
/// Walker events that may wait for the serializer.
const EVENTS_IN_FLIGHT: usize = 4096;

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
    /// The nix-base32 form `nix hash path --base32` prints.
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
    serialize(path, out, None)
}

/// Serialize `path` into `out` and at the same time write a canonical copy of
/// it at `copy_to` (which must not exist yet).
pub fn dump_and_copy(path: &Path, out: &mut dyn Write, copy_to: &Path) -> Result<(), NarError> {
    serialize(path, out, Some(copy_to))
}

/// The NAR hash and size of `path`.
pub fn hash_path(path: &Path) -> Result<NarHash, NarError> {
    let mut sink = HashingWriter::new();
    dump(path, &mut sink)?;
    Ok(sink.finish())
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> NarError + '_ {
    move |source| NarError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn unsupported(path: &Path, ft: FileType) -> NarError {
    let kind = match ft {
        FileType::BlockDevice => "block device",
        FileType::CharacterDevice => "character device",
        FileType::Fifo => "FIFO (named pipe)",
        FileType::Socket => "socket",
        _ => "file of unknown type",
    };
    NarError::UnsupportedFileType {
        path: path.to_path_buf(),
        kind,
    }
}

fn errno_err(path: &Path) -> impl FnOnce(rustix::io::Errno) -> NarError + '_ {
    move |e| NarError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

/// A directory's entries with their `lstat`, in NAR (bytewise) order, read
/// relative to the directory's descriptor (no repeated path lookups).
fn list_dir(dir: &OwnedFd, path: &Path) -> Result<Vec<(OsString, rustix::fs::Stat)>, NarError> {
    let mut entries = Vec::new();
    let listing = rustix::fs::Dir::read_from(dir).map_err(errno_err(path))?;
    for entry in listing {
        let entry = entry.map_err(errno_err(path))?;
        let bytes = entry.file_name().to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        let name = OsString::from(std::ffi::OsStr::from_bytes(bytes));
        if bytes.is_empty() {
            return Err(NarError::BadEntryName {
                path: path.to_path_buf(),
                name: name.to_string_lossy().into_owned(),
            });
        }
        let st = rustix::fs::statat(dir, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(errno_err(&path.join(&name)))?;
        entries.push((name, st));
    }
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(entries)
}

/// What the walker tells the serializer, in NAR order.
enum Event {
    Regular {
        path: PathBuf,
        executable: bool,
        size: u64,
        /// Chunks of the contents, in order; closed at the end. `None` for an
        /// empty file.
        contents: Option<Receiver<Result<Vec<u8>, NarError>>>,
    },
    Symlink {
        target: OsString,
    },
    DirStart,
    Entry {
        name: OsString,
    },
    EntryEnd,
    DirEnd,
    Failed(NarError),
}

/// A request to fetch one file's contents.
struct ReadJob {
    /// The directory holding the file (`None` when the file is the root).
    dir: Option<Arc<OwnedFd>>,
    name: OsString,
    path: PathBuf,
    size: u64,
    out: SyncSender<Result<Vec<u8>, NarError>>,
}

struct Walker {
    events: SyncSender<Event>,
    jobs: SyncSender<ReadJob>,
    /// One token per file that may be in flight; returned by the serializer.
    budget: Receiver<()>,
}

/// The walker stops quietly when the serializer has gone away.
struct Stopped;

const OPEN_DIR: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOFOLLOW);
const OPEN_FILE: OFlags = OFlags::RDONLY
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOFOLLOW);

impl Walker {
    fn send(&self, e: Event) -> Result<(), Stopped> {
        self.events.send(e).map_err(|_| Stopped)
    }

    fn fail(&self, e: NarError) -> Result<(), Stopped> {
        let _ = self.events.send(Event::Failed(e));
        Err(Stopped)
    }

    fn root(&self, path: &Path) -> Result<(), Stopped> {
        match rustix::fs::lstat(path) {
            Ok(st) => self.node(None, path.as_os_str(), path, &st),
            Err(e) => self.fail(errno_err(path)(e)),
        }
    }

    /// Emit the node `name` in `parent` (or the root at `path` when `parent`
    /// is `None`).
    fn node(
        &self,
        parent: Option<&Arc<OwnedFd>>,
        name: &OsStr,
        path: &Path,
        st: &rustix::fs::Stat,
    ) -> Result<(), Stopped> {
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => {
                let size = st.st_size as u64;
                let contents = if size == 0 {
                    None
                } else {
                    self.budget.recv().map_err(|_| Stopped)?;
                    let (tx, rx) = sync_channel(CHUNK_DEPTH);
                    self.jobs
                        .send(ReadJob {
                            dir: parent.cloned(),
                            name: name.to_os_string(),
                            path: path.to_path_buf(),
                            size,
                            out: tx,
                        })
                        .map_err(|_| Stopped)?;
                    Some(rx)
                };
                self.send(Event::Regular {
                    path: path.to_path_buf(),
                    executable: st.st_mode & 0o100 != 0,
                    size,
                    contents,
                })
            }
            FileType::Symlink => {
                let target = match parent {
                    Some(dir) => rustix::fs::readlinkat(dir, name, Vec::new()),
                    None => rustix::fs::readlink(path, Vec::new()),
                };
                match target {
                    Ok(t) => self.send(Event::Symlink {
                        target: OsString::from_vec(t.into_bytes()),
                    }),
                    Err(e) => self.fail(errno_err(path)(e)),
                }
            }
            FileType::Directory => {
                let fd = match parent {
                    Some(dir) => rustix::fs::openat(dir, name, OPEN_DIR, Mode::empty()),
                    None => rustix::fs::open(path, OPEN_DIR, Mode::empty()),
                };
                let fd = match fd {
                    Ok(fd) => Arc::new(fd),
                    Err(e) => return self.fail(errno_err(path)(e)),
                };
                let entries = match list_dir(&fd, path) {
                    Ok(e) => e,
                    Err(e) => return self.fail(e),
                };
                self.send(Event::DirStart)?;
                for (child_name, child_st) in entries {
                    let child_path = path.join(&child_name);
                    self.send(Event::Entry {
                        name: child_name.clone(),
                    })?;
                    self.node(Some(&fd), &child_name, &child_path, &child_st)?;
                    self.send(Event::EntryEnd)?;
                }
                self.send(Event::DirEnd)
            }
            other => self.fail(unsupported(path, other)),
        }
    }
}

fn read_file(job: ReadJob) {
    let ReadJob {
        dir,
        name,
        path,
        size,
        out,
    } = job;
    let opened = match &dir {
        Some(d) => rustix::fs::openat(d, &name, OPEN_FILE, Mode::empty()),
        None => rustix::fs::open(&path, OPEN_FILE, Mode::empty()),
    };
    let mut file = match opened {
        Ok(fd) => File::from(fd),
        Err(e) => {
            let _ = out.send(Err(errno_err(&path)(e)));
            return;
        }
    };
    // Read exactly the size lstat reported, as Nix does; a file that shrank
    // is named by the serializer when the bytes fall short.
    let mut done: u64 = 0;
    while done < size {
        let want = (size - done).min(CHUNK as u64) as usize;
        let mut buf = vec![0u8; want];
        let mut filled = 0;
        while filled < want {
            match file.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = out.send(Err(io_err(&path)(e)));
                    return;
                }
            }
        }
        buf.truncate(filled);
        done += filled as u64;
        if out.send(Ok(buf)).is_err() || filled < want {
            return;
        }
    }
}

fn serialize(root: &Path, out: &mut dyn Write, copy_to: Option<&Path>) -> Result<(), NarError> {
    let readers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 4);
    let (event_tx, event_rx) = sync_channel(EVENTS_IN_FLIGHT);
    let (job_tx, job_rx) = sync_channel::<ReadJob>(FILES_IN_FLIGHT);
    let (budget_tx, budget_rx) = sync_channel(FILES_IN_FLIGHT);
    for _ in 0..FILES_IN_FLIGHT {
        budget_tx.send(()).expect("budget channel has room");
    }
    let job_rx = Arc::new(Mutex::new(job_rx));
    std::thread::scope(|s| {
        for _ in 0..readers {
            let jobs = Arc::clone(&job_rx);
            s.spawn(move || loop {
                let job = match jobs.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                match job {
                    Ok(job) => read_file(job),
                    Err(_) => return,
                }
            });
        }
        s.spawn(move || {
            let walker = Walker {
                events: event_tx,
                jobs: job_tx,
                budget: budget_rx,
            };
            let _ = walker.root(root);
        });
        let mut ser = Serializer {
            out,
            events: event_rx,
            budget: budget_tx,
            token: Vec::with_capacity(256),
        };
        let result = ser.run(copy_to);
        // Dropping the receivers stops the walker and the readers early.
        drop(ser);
        result
    })
}

struct Serializer<'a> {
    out: &'a mut dyn Write,
    events: Receiver<Event>,
    budget: SyncSender<()>,
    token: Vec<u8>,
}

impl Serializer<'_> {
    fn next(&mut self) -> Result<Event, NarError> {
        match self.events.recv() {
            Ok(Event::Failed(e)) => Err(e),
            Ok(e) => Ok(e),
            Err(_) => Err(NarError::Write(io::Error::other(
                "the tree walker stopped unexpectedly",
            ))),
        }
    }

    fn raw(&mut self, bytes: &[u8]) -> Result<(), NarError> {
        self.out.write_all(bytes).map_err(NarError::Write)
    }

    fn str(&mut self, s: &[u8]) -> Result<(), NarError> {
        // One write per token keeps the per-call cost low for tiny files.
        encode_str(&mut self.token, s);
        self.out.write_all(&self.token).map_err(NarError::Write)
    }

    fn run(&mut self, copy_to: Option<&Path>) -> Result<(), NarError> {
        self.str(MAGIC.as_bytes())?;
        let first = self.next()?;
        self.node(first, copy_to)?;
        self.out.flush().map_err(NarError::Write)
    }

    fn node(&mut self, event: Event, copy: Option<&Path>) -> Result<(), NarError> {
        self.str(b"(")?;
        self.str(b"type")?;
        match event {
            Event::Regular {
                path,
                executable,
                size,
                contents,
            } => self.regular(&path, executable, size, contents, copy)?,
            Event::Symlink { target } => {
                self.str(b"symlink")?;
                self.str(b"target")?;
                self.str(target.as_bytes())?;
                if let Some(dst) = copy {
                    std::os::unix::fs::symlink(&target, dst).map_err(io_err(dst))?;
                    canonical::set_mtime(dst)?;
                }
            }
            Event::DirStart => {
                self.str(b"directory")?;
                if let Some(dst) = copy {
                    fs::create_dir(dst).map_err(io_err(dst))?;
                }
                loop {
                    match self.next()? {
                        Event::DirEnd => break,
                        Event::Entry { name } => {
                            self.str(b"entry")?;
                            self.str(b"(")?;
                            self.str(b"name")?;
                            self.str(name.as_bytes())?;
                            self.str(b"node")?;
                            let child_copy = copy.map(|d| d.join(&name));
                            let child = self.next()?;
                            self.node(child, child_copy.as_deref())?;
                            match self.next()? {
                                Event::EntryEnd => {}
                                _ => unreachable!("walker emits EntryEnd after each entry"),
                            }
                            self.str(b")")?;
                        }
                        _ => unreachable!("walker emits Entry or DirEnd inside a directory"),
                    }
                }
                if let Some(dst) = copy {
                    canonical::finish_dir(dst)?;
                }
            }
            _ => unreachable!("walker emits a node here"),
        }
        self.str(b")")
    }

    fn regular(
        &mut self,
        path: &Path,
        executable: bool,
        size: u64,
        contents: Option<Receiver<Result<Vec<u8>, NarError>>>,
        copy: Option<&Path>,
    ) -> Result<(), NarError> {
        self.str(b"regular")?;
        if executable {
            self.str(b"executable")?;
            self.str(b"")?;
        }
        self.str(b"contents")?;
        self.raw(&size.to_le_bytes())?;
        let mut dst = match copy {
            Some(d) => Some(canonical::create_file(d)?),
            None => None,
        };
        let mut done: u64 = 0;
        if let Some(rx) = contents {
            for chunk in rx.iter() {
                let chunk = chunk?;
                self.raw(&chunk)?;
                if let (Some(f), Some(d)) = (dst.as_mut(), copy) {
                    f.write_all(&chunk).map_err(io_err(d))?;
                }
                done += chunk.len() as u64;
            }
            // The file is consumed: let the walker fetch another.
            let _ = self.budget.send(());
        }
        if done != size {
            return Err(NarError::Changed {
                path: path.to_path_buf(),
                expected: size,
                found: done,
            });
        }
        self.raw(&[0u8; 8][..padding(size)])?;
        if let (Some(f), Some(d)) = (dst, copy) {
            canonical::finish_file(f, d, executable)?;
        }
        Ok(())
    }
}
