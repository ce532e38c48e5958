//! Deterministic layer tarballs from store items.
//!
//! A layer is the union of ordered [`LayerSource`]s, each a directory tree
//! (or a single file or symlink) on disk placed at a prefix in the image.
//! The tar (see the private `ustar` module for the header grammar) follows these rules:
//!
//! - one entry per path, in bytewise order of the full path (no leading
//!   `/`, no `./`; directories carry a trailing `/` in the tar but sort by
//!   the path without it, so `a` < `a-b` < `a.b` < `a/b` < `a0`);
//! - an explicit directory entry for every parent, including the ancestors
//!   of a source's prefix; no entry for the image root itself;
//! - only directories, regular files and symlinks (anything else in a source
//!   is an error); a file hardlinked on disk is written as a regular file
//!   each time it appears (no hardlink entries); no sparse entries;
//! - uid/gid 0 and empty uname/gname, unless a [`PathOverride`] sets uid/gid;
//! - mode: directories 0755, regular files 0755 if the source file's owner-x
//!   bit is set else 0644 (what NAR records), symlinks 0777; a
//!   [`PathOverride`] mode replaces these bits (setuid/setgid/sticky allowed);
//! - every mtime is the given `mtime` (SOURCE_DATE_EPOCH); no atime/ctime;
//! - PAX extended headers for long names/targets and sizes >= 8 GiB;
//! - the archive ends with two zero blocks.
//!
//! Nothing of the source's own metadata leaks in except the file type, the
//! owner-x bit, file contents and symlink targets: not its mtimes, other
//! permission bits, owners, the umask, the time zone or where it is on disk.
//!
//! Two sources that place the same path: two directories merge; two regular
//! files with the same owner-x bit and identical bytes, or two symlinks with
//! the same target, are kept once (from the first source); anything else
//! (different bytes, different owner-x bit, different targets, different
//! kinds) is an [`OciError::Conflict`] naming the path and both sources.
//!
//! Overrides are keyed by image path (`usr/bin/sudo` or `/usr/bin/sudo`);
//! an override whose path is not in this layer is ignored, so one map can
//! serve every layer of an image.
//!
//! Writing streams: the tar is produced entry by entry (file data in 1 MiB
//! chunks) and fed at once into a sha256 hasher (the DiffID) and into the
//! compressor, whose output goes through a second hasher (the blob digest)
//! into the output. Memory use is bounded by the number of paths, not by
//! file sizes.

use std::collections::btree_map::Entry as MapEntry;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::compression::{Compression, LayerSink};
use super::error::OciError;
use super::ustar::{self, Kind};
use crate::io::read_full;

/// One input of a layer: a tree on disk placed at `prefix` in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSource {
    /// A directory (its contents land under `prefix`), or a file or symlink
    /// (it lands at `prefix`, which must then be non-empty).
    pub root: PathBuf,
    /// Where in the image: "" or "/" for the root, else e.g. "usr/local"
    /// (leading/trailing slash optional; no `.`/`..`/empty components).
    pub prefix: String,
    /// Names the source in error messages, e.g. the store item's name.
    pub label: String,
}

/// Caller-chosen metadata for one image path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathOverride {
    /// Permission bits including setuid/setgid/sticky (at most 0o7777).
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// A written layer blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerBlob {
    /// sha256 of the uncompressed tar: `sha256:<hex>` (the DiffID, the
    /// canonical identity of the layer's contents).
    pub diff_id: String,
    /// sha256 of the blob (the compressed tar): `sha256:<hex>`.
    pub digest: String,
    /// The blob's size in bytes.
    pub size: u64,
    /// The uncompressed tar's size in bytes.
    pub tar_size: u64,
    /// The OCI layer media type.
    pub media_type: String,
    /// [`Compression::identity`] of the compressor used.
    pub compression: String,
}

const CHUNK: usize = 1 << 20;

#[derive(Debug)]
enum Node {
    Dir,
    File {
        size: u64,
        exec: bool,
        dev: u64,
        ino: u64,
    },
    Symlink {
        target: Vec<u8>,
    },
}

#[derive(Debug)]
struct Entry {
    node: Node,
    /// Index of the source that placed it first.
    source: usize,
    /// The file on disk (for an implied parent directory: the source root).
    disk: PathBuf,
    implied: bool,
}

impl Node {
    fn describe(&self) -> String {
        match self {
            Node::Dir => "a directory".to_string(),
            Node::File { size, exec, .. } => format!(
                "a regular file of {size} bytes{}",
                if *exec {
                    ", executable"
                } else {
                    ", not executable"
                }
            ),
            Node::Symlink { target } => {
                format!("a symlink to {:?}", String::from_utf8_lossy(target))
            }
        }
    }
}

/// Normalizes an image path given by a caller: strips one leading and one
/// trailing slash, rejects empty, `.` and `..` components and NUL.
fn normalize(input: &str, what: impl FnOnce() -> String) -> Result<Vec<u8>, OciError> {
    let trimmed = input.strip_prefix('/').unwrap_or(input);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    let bad = trimmed.contains('\0')
        || trimmed
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(OciError::invalid(
            what(),
            "a relative path of non-empty components other than '.' and '..'",
            format!("{input:?}"),
        ));
    }
    Ok(trimmed.as_bytes().to_vec())
}

fn show(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

struct Scan<'a> {
    sources: &'a [LayerSource],
    entries: BTreeMap<Vec<u8>, Entry>,
}

/// Names a source (and the file on disk) in a conflict message.
fn who(sources: &[LayerSource], source: usize, disk: &Path, implied: bool) -> String {
    let label = &sources[source].label;
    if implied {
        format!(
            "{label} (parent directory of its prefix {:?})",
            sources[source].prefix
        )
    } else {
        format!("{label} ({})", disk.display())
    }
}

impl Scan<'_> {
    fn insert(&mut self, key: Vec<u8>, new: Entry) -> Result<(), OciError> {
        let slot = match self.entries.entry(key) {
            MapEntry::Vacant(v) => {
                v.insert(new);
                return Ok(());
            }
            MapEntry::Occupied(o) => o,
        };
        let old = slot.get();
        let differs: Option<(String, String)> = match (&old.node, &new.node) {
            (Node::Dir, Node::Dir) => None,
            (
                Node::File {
                    size: s1,
                    exec: x1,
                    dev: d1,
                    ino: i1,
                },
                Node::File {
                    size: s2,
                    exec: x2,
                    dev: d2,
                    ino: i2,
                },
            ) => {
                if s1 != s2 || x1 != x2 {
                    Some((old.node.describe(), new.node.describe()))
                } else if (d1, i1) == (d2, i2) {
                    None
                } else {
                    first_difference(&old.disk, &new.disk)?.map(|at| {
                        (
                            old.node.describe(),
                            format!(
                                "{} whose bytes differ from offset {at}",
                                new.node.describe()
                            ),
                        )
                    })
                }
            }
            (Node::Symlink { target: t1 }, Node::Symlink { target: t2 }) if t1 == t2 => None,
            _ => Some((old.node.describe(), new.node.describe())),
        };
        match differs {
            None => Ok(()),
            Some((first_has, second_has)) => Err(OciError::Conflict {
                path: show(slot.key()),
                first: who(self.sources, old.source, &old.disk, old.implied),
                second: who(self.sources, new.source, &new.disk, new.implied),
                first_has,
                second_has,
            }),
        }
    }

    fn add_source(&mut self, index: usize) -> Result<(), OciError> {
        let src = &self.sources[index];
        let prefix = normalize(&src.prefix, || {
            format!("prefix of layer source {}", src.label)
        })?;
        // Implied parents of the prefix.
        for (i, &b) in prefix.iter().enumerate() {
            if b == b'/' {
                self.insert(
                    prefix[..i].to_vec(),
                    Entry {
                        node: Node::Dir,
                        source: index,
                        disk: src.root.clone(),
                        implied: true,
                    },
                )?;
            }
        }
        let root_node = self.node(index, &src.root)?;
        let is_dir = matches!(root_node, Node::Dir);
        if prefix.is_empty() {
            if !is_dir {
                return Err(OciError::invalid(
                    format!("layer source {} ({})", src.label, src.root.display()),
                    "a directory, since its prefix is the image root",
                    root_node.describe(),
                ));
            }
        } else {
            self.insert(
                prefix.clone(),
                Entry {
                    node: root_node,
                    source: index,
                    disk: src.root.clone(),
                    implied: false,
                },
            )?;
        }
        if !is_dir {
            return Ok(());
        }
        let walk = walkdir::WalkDir::new(&src.root)
            .min_depth(1)
            .follow_links(false);
        for item in walk {
            let item = item.map_err(|e| {
                let path = e.path().unwrap_or(&src.root).to_path_buf();
                OciError::io("reading", path, e.into())
            })?;
            let rel = item
                .path()
                .strip_prefix(&src.root)
                .expect("walkdir yields paths under its root");
            let mut key = prefix.clone();
            if !key.is_empty() {
                key.push(b'/');
            }
            key.extend_from_slice(rel.as_os_str().as_bytes());
            let node = self.node(index, item.path())?;
            self.insert(
                key,
                Entry {
                    node,
                    source: index,
                    disk: item.path().to_path_buf(),
                    implied: false,
                },
            )?;
        }
        Ok(())
    }

    fn node(&self, index: usize, path: &Path) -> Result<Node, OciError> {
        let meta = fs::symlink_metadata(path).map_err(|e| OciError::io("reading", path, e))?;
        let ft = meta.file_type();
        if ft.is_dir() {
            Ok(Node::Dir)
        } else if ft.is_file() {
            Ok(Node::File {
                size: meta.len(),
                exec: meta.mode() & 0o100 != 0,
                dev: meta.dev(),
                ino: meta.ino(),
            })
        } else if ft.is_symlink() {
            let target = fs::read_link(path).map_err(|e| OciError::io("reading", path, e))?;
            Ok(Node::Symlink {
                target: target.as_os_str().as_bytes().to_vec(),
            })
        } else {
            let found = if ft.is_fifo() {
                "a FIFO"
            } else if ft.is_socket() {
                "a socket"
            } else if ft.is_block_device() {
                "a block device"
            } else if ft.is_char_device() {
                "a character device"
            } else {
                "an unknown file type"
            };
            Err(OciError::UnsupportedFileType {
                path: path.to_path_buf(),
                label: self.sources[index].label.clone(),
                found: found.to_string(),
            })
        }
    }
}

/// Offset of the first differing byte of two files of equal size, if any.
fn first_difference(a: &Path, b: &Path) -> Result<Option<u64>, OciError> {
    let open = |p: &Path| File::open(p).map_err(|e| OciError::io("reading", p, e));
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 64 << 10], vec![0u8; 64 << 10]);
    let mut offset = 0u64;
    loop {
        let na = read_full(&mut fa, &mut ba).map_err(|e| OciError::io("reading", a, e))?;
        let nb = read_full(&mut fb, &mut bb).map_err(|e| OciError::io("reading", b, e))?;
        if let Some(i) = ba[..na.min(nb)]
            .iter()
            .zip(&bb[..na.min(nb)])
            .position(|(x, y)| x != y)
        {
            return Ok(Some(offset + i as u64));
        }
        if na != nb {
            return Ok(Some(offset + na.min(nb) as u64));
        }
        if na == 0 {
            return Ok(None);
        }
        offset += na as u64;
    }
}

fn normalize_overrides(
    overrides: &BTreeMap<String, PathOverride>,
) -> Result<BTreeMap<Vec<u8>, (&str, PathOverride)>, OciError> {
    let mut out: BTreeMap<Vec<u8>, (&str, PathOverride)> = BTreeMap::new();
    for (path, o) in overrides {
        let key = normalize(path, || format!("override path {path:?}"))?;
        if key.is_empty() {
            return Err(OciError::invalid(
                "override path",
                "a path below the image root",
                format!("{path:?}"),
            ));
        }
        if let Some(mode) = o.mode {
            if mode > 0o7777 {
                return Err(OciError::invalid(
                    format!("mode override for {path:?}"),
                    "permission bits of at most 0o7777",
                    format!("0o{mode:o}"),
                ));
            }
        }
        if let Some((other, _)) = out.insert(key, (path, *o)) {
            return Err(OciError::invalid(
                format!("override path {path:?}"),
                "one override per image path",
                format!("also given as {other:?}"),
            ));
        }
    }
    Ok(out)
}

/// Writes the layer for `sources` to the file `out` (created or truncated;
/// removed again on a later error) and returns its digests.
pub fn write_layer(
    sources: &[LayerSource],
    overrides: &BTreeMap<String, PathOverride>,
    mtime: u64,
    compression: Compression,
    out: &Path,
) -> Result<LayerBlob, OciError> {
    let file = File::create(out).map_err(|e| OciError::io("creating", out, e))?;
    let result = (|| {
        let (blob, w) = write_layer_inner(
            sources,
            overrides,
            mtime,
            compression,
            BufWriter::with_capacity(CHUNK, file),
            out,
        )?;
        let file = w
            .into_inner()
            .map_err(|e| OciError::io("writing", out, e.into_error()))?;
        file.sync_all()
            .map_err(|e| OciError::io("writing", out, e))?;
        Ok(blob)
    })();
    if result.is_err() {
        let _ = fs::remove_file(out);
    }
    result
}

/// Like [`write_layer`], into any writer (write errors name `<layer output>`).
pub fn write_layer_to<W: Write>(
    sources: &[LayerSource],
    overrides: &BTreeMap<String, PathOverride>,
    mtime: u64,
    compression: Compression,
    out: W,
) -> Result<(LayerBlob, W), OciError> {
    write_layer_inner(
        sources,
        overrides,
        mtime,
        compression,
        out,
        Path::new("<layer output>"),
    )
}

fn write_layer_inner<W: Write>(
    sources: &[LayerSource],
    overrides: &BTreeMap<String, PathOverride>,
    mtime: u64,
    compression: Compression,
    out: W,
    out_name: &Path,
) -> Result<(LayerBlob, W), OciError> {
    compression.validate()?;
    let overrides = normalize_overrides(overrides)?;
    let mut scan = Scan {
        sources,
        entries: BTreeMap::new(),
    };
    for index in 0..sources.len() {
        scan.add_source(index)?;
    }
    let werr = |e: io::Error| OciError::io("writing", out_name, e);
    let mut sink = LayerSink::new(compression, out).map_err(werr)?;
    let mut buf = vec![0u8; CHUNK];
    for (path, entry) in &scan.entries {
        let o = overrides.get(path).map(|(_, o)| *o).unwrap_or_default();
        let (kind, default_mode, size, link): (Kind, u32, u64, &[u8]) = match &entry.node {
            Node::Dir => (Kind::Dir, 0o755, 0, b""),
            Node::File { size, exec, .. } => {
                (Kind::File, if *exec { 0o755 } else { 0o644 }, *size, b"")
            }
            Node::Symlink { target } => (Kind::Symlink, 0o777, 0, target),
        };
        let header = ustar::Header {
            path,
            kind,
            mode: o.mode.unwrap_or(default_mode),
            uid: o.uid.map_or(0, u64::from),
            gid: o.gid.map_or(0, u64::from),
            size,
            mtime,
            link,
        };
        ustar::write_header(&mut sink, &header).map_err(werr)?;
        if kind == Kind::File {
            copy_exact(&entry.disk, size, &mut buf, &mut sink, out_name)?;
            ustar::write_padding(&mut sink, size).map_err(werr)?;
        }
    }
    ustar::write_end(&mut sink).map_err(werr)?;
    let done = sink.finish().map_err(werr)?;
    Ok((
        LayerBlob {
            diff_id: done.diff_id,
            digest: done.digest,
            size: done.size,
            tar_size: done.tar_size,
            media_type: compression.media_type().to_string(),
            compression: compression.identity(),
        },
        done.inner,
    ))
}

/// Copies exactly `size` bytes of `path` into `w`, in CHUNK-sized writes
/// (so the byte stream's chunking depends only on the sizes), failing if
/// the file is shorter or longer than `size`.
fn copy_exact(
    path: &Path,
    size: u64,
    buf: &mut [u8],
    w: &mut impl Write,
    out_name: &Path,
) -> Result<(), OciError> {
    let mut f = File::open(path).map_err(|e| OciError::io("reading", path, e))?;
    let mut left = size;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let got =
            read_full(&mut f, &mut buf[..want]).map_err(|e| OciError::io("reading", path, e))?;
        if got < want {
            return Err(OciError::SourceChanged {
                path: path.to_path_buf(),
                expected: size,
                found: format!("{} bytes", size - left + got as u64),
            });
        }
        w.write_all(&buf[..want])
            .map_err(|e| OciError::io("writing", out_name, e))?;
        left -= want as u64;
    }
    let extra = read_full(&mut f, &mut buf[..1]).map_err(|e| OciError::io("reading", path, e))?;
    if extra != 0 {
        return Err(OciError::SourceChanged {
            path: path.to_path_buf(),
            expected: size,
            found: "more bytes".to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
