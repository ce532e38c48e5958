//! The store: a directory of immutable items named `<digest>-<name>`, plus
//! `.envbuild/` holding the database, per-item locks and a scratch area.
//!
//! ```text
//! <root>/
//!   <digest>-<name>          items, canonical (see crate::canonical)
//!   .envbuild/db.sqlite      registration (see crate::db)
//!   .envbuild/gc.lock        shared by every add, exclusive for gc
//!   .envbuild/locks/<basename>.lock   per-item locks
//!   .envbuild/tmp/           items being built
//!   .envbuild/temproots/     items live processes use (see crate::temp_roots)
//! ```
//!
//! Adding an item: hash the source (nothing is copied when the item is
//! already valid), lock the item, copy the source into `tmp/` while hashing
//! the copy's bytes, `syncfs`, rename into place, fsync the root, register.
//! A crash before registration leaves garbage that nothing trusts; a crash
//! after it leaves a complete item.
//!
//! Builder outputs are moved instead of copied, in batches:
//! [`Store::prepare_scratch_output`] hashes an output and makes it canonical
//! in its scratch directory (on any thread), and [`Store::commit_outputs`]
//! takes the batch's item locks in sorted order, issues one `syncfs`,
//! renames every output into place, fsyncs the root once and registers the
//! batch in one transaction.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::canonical;
use crate::db::{Db, PathInfo, Root};
use crate::error::{NarError, StoreError};
use crate::hash_cache;
use crate::lock::{FileLock, LockKind};
use crate::nar::{self, writer::HashingWriter, NarHash, WrittenTree};
use crate::store_path::{validate_name, StorePath, STORE_DIR};
use crate::temp_roots::{self, TempRoots};

const META_DIR: &str = ".envbuild";

/// A store at a physical root.
pub struct Store {
    root: PathBuf,
    db: Db,
    /// What this process added or found (shared by its handles).
    temp_roots: std::sync::Arc<TempRoots>,
}

/// What an item from elsewhere (a binary cache) must be, for
/// [`Store::import_nar`].
#[derive(Debug, Clone, Copy)]
pub struct ExpectedItem<'a> {
    pub path: &'a StorePath,
    pub nar_sha256: [u8; 32],
    pub nar_size: u64,
    pub references: &'a [StorePath],
    pub deriver: Option<&'a str>,
}

/// A reader that feeds what passes through it to a NAR hasher.
struct HashingReader<R> {
    inner: R,
    hasher: HashingWriter,
}

impl<R: std::io::Read> std::io::Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        std::io::Write::write_all(&mut self.hasher, &buf[..n])?;
        Ok(n)
    }
}

/// The outcome of adding a path.
#[derive(Debug, Clone)]
pub struct AddedItem {
    pub path: StorePath,
    pub physical: PathBuf,
    pub nar: NarHash,
    /// False when the item was already valid and nothing was copied.
    pub copied: bool,
}

/// One thing `verify` found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyProblem {
    Missing {
        path: StorePath,
    },
    HashMismatch {
        path: StorePath,
        expected: String,
        found: String,
    },
    Unreadable {
        path: StorePath,
        error: String,
    },
}

impl std::fmt::Display for VerifyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyProblem::Missing { path } => {
                write!(f, "{path}: registered but missing on disk")
            }
            VerifyProblem::HashMismatch {
                path,
                expected,
                found,
            } => write!(
                f,
                "{path}: contents changed (registered NAR hash {expected}, found {found})"
            ),
            VerifyProblem::Unreadable { path, error } => {
                write!(f, "{path}: cannot be read: {error}")
            }
        }
    }
}

/// A scratch output hashed and made canonical by
/// [`Store::prepare_scratch_output`], waiting for [`Store::commit_outputs`].
/// Its identity is computed by the store, never given by the caller.
#[derive(Debug)]
pub struct PreparedOutput {
    src: PathBuf,
    name: String,
    path: StorePath,
    nar: NarHash,
    references: Vec<StorePath>,
    deriver: Option<String>,
    /// Made canonical already (skipped when the item was valid then).
    canonical: bool,
}

impl PreparedOutput {
    /// The item this output will be.
    pub fn path(&self) -> &StorePath {
        &self.path
    }

    /// The size of the output's NAR serialisation.
    pub fn nar_size(&self) -> u64 {
        self.nar.size
    }

    /// Where the output is until the commit (canonical already, unless its
    /// item was valid when it was prepared).
    pub fn location(&self) -> &Path {
        &self.src
    }
}

/// A NAR restored into scratch and verified, not yet registered (from
/// [`Store::restore_nar`]; [`Store::commit_restored`] registers it,
/// dropping it removes it).
#[derive(Debug)]
pub struct RestoredNar {
    scratch: Scratch,
    prepared: PreparedOutput,
}

impl RestoredNar {
    /// The item it will be.
    pub fn path(&self) -> &StorePath {
        self.prepared.path()
    }
}

/// Flushes the store's file system in the background while it lives (from
/// [`Store::write_behind`]).
#[derive(Debug)]
pub struct WriteBehind {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A scratch directory from [`Store::scratch`]; removed on drop.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
    _gc: FileLock,
}

impl Scratch {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = canonical::remove_tree(&self.path);
    }
}

/// What `verify` checked and found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    pub checked: usize,
    pub problems: Vec<VerifyProblem>,
    /// Entries under the root that are not registered (left by interrupted
    /// adds); harmless, removed by `gc`.
    pub unregistered: Vec<String>,
}

/// What `gc` removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Default)]
pub struct GcReport {
    pub removed: Vec<StorePath>,
    pub garbage_removed: usize,
    /// The NAR size of the removed items.
    pub bytes_freed: u64,
    pub live: usize,
    /// Items kept because running processes use them (their temp roots).
    pub temp_roots: usize,
    pub dead_roots: Vec<String>,
    /// Unreachable items kept by [`GcOptions::older_than`] or
    /// [`GcOptions::max_size`].
    pub kept_garbage: usize,
    /// The NAR size of every item left registered.
    pub bytes_left: u64,
}

/// How much `gc` collects. The default collects everything no root reaches.
#[derive(Default)]
pub struct GcOptions<'a> {
    /// Report what would go; remove nothing (no item, root or leftover).
    pub dry_run: bool,
    /// Roots that do not count (their items go unless another root keeps
    /// them); the roots themselves stay.
    pub ignore_root: Option<&'a dyn Fn(&Root) -> bool>,
    /// Only unreachable items registered at least this long ago go.
    pub older_than: Option<std::time::Duration>,
    /// Remove unreachable items, the oldest first, only until the store's
    /// items add up to at most this many bytes (NAR size). Reachable items
    /// never go, so the store may stay above it.
    pub max_size: Option<u64>,
}

/// The default physical root: `$XDG_DATA_HOME/envbuild/store`, else
/// `$HOME/.local/share/envbuild/store`.
pub fn default_root() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join("envbuild/store"));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|h| PathBuf::from(h).join(".local/share/envbuild/store"))
}

fn unique_suffix() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}-{nanos:09}-{n}", std::process::id())
}

/// Make a tree canonical where it is (children before their directory).
fn canonicalize_in_place(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs::symlink_metadata(path).map_err(StoreError::io(path))?;
    let ft = meta.file_type();
    if ft.is_dir() {
        // Owner-writable while its entries are visited.
        fs::set_permissions(path, fs::Permissions::from_mode(0o755))
            .map_err(StoreError::io(path))?;
        for e in fs::read_dir(path).map_err(StoreError::io(path))? {
            let e = e.map_err(StoreError::io(path))?;
            canonicalize_in_place(&e.path())?;
        }
        canonical::finish_dir(path)?;
    } else if ft.is_file() {
        let mode = if meta.permissions().mode() & 0o100 != 0 {
            0o555
        } else {
            0o444
        };
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(StoreError::io(path))?;
        canonical::set_mtime(path)?;
    } else {
        canonical::set_mtime(path)?;
    }
    Ok(())
}

/// A scratch output at `src` with NAR `nar` (computed by the store), under
/// the already validated `name`, ready to commit.
fn prepared_output(
    src: &Path,
    nar: NarHash,
    canonical: bool,
    name: &str,
    references: &[StorePath],
    deriver: Option<&str>,
) -> Result<PreparedOutput, StoreError> {
    Ok(PreparedOutput {
        canonical,
        src: src.to_path_buf(),
        name: name.to_string(),
        path: StorePath::source(name, &nar.sha256, references, false)?,
        nar,
        references: references.to_vec(),
        deriver: deriver.map(str::to_string),
    })
}

/// Rename a finished (canonical) item into place; true when it is a
/// directory, whose mode changed after the rename and must be synced (see
/// [`sync_moved`]). Anything already at `physical` is garbage from an add
/// that died after its rename and before registration: it was never
/// trusted, so it is replaced.
///
/// Renaming a directory into another directory rewrites its `..` entry,
/// which needs write permission on the directory itself: root's
/// `CAP_DAC_OVERRIDE` hides this, an ordinary user gets `EACCES` for a
/// 0555 directory. So the top directory is owner-writable while it moves
/// and made 0555 (mtime 1) at its final name; a crash in between leaves an
/// unregistered item, garbage like any other.
fn move_into_place(src: &Path, physical: &Path) -> Result<bool, StoreError> {
    use std::os::unix::fs::PermissionsExt;
    canonical::remove_tree(physical).map_err(StoreError::io(physical))?;
    let is_dir = fs::symlink_metadata(src)
        .map_err(StoreError::io(src))?
        .is_dir();
    if is_dir {
        fs::set_permissions(src, fs::Permissions::from_mode(0o755)).map_err(StoreError::io(src))?;
    }
    fs::rename(src, physical).map_err(StoreError::io(physical))?;
    if is_dir {
        canonical::finish_dir(physical)?;
    }
    Ok(is_dir)
}

/// Make the renames into the root and the modes set after them durable
/// before anything is registered: fsync each moved directory, then the
/// root. The first fsync commits the file system's journal with all of
/// them; the others find their inodes clean.
fn sync_moved(root: &Path, moved_dirs: &[PathBuf]) -> Result<(), StoreError> {
    for d in moved_dirs {
        fsync_dir(d)?;
    }
    fsync_dir(root)
}

/// The registration of a content-addressed ("source") item.
fn source_info(
    path: &StorePath,
    nar: &NarHash,
    references: Vec<StorePath>,
    deriver: Option<String>,
) -> PathInfo {
    PathInfo {
        path: path.clone(),
        nar_hash: format!("sha256:{}", nar.to_nix_base32()),
        nar_size: nar.size,
        references,
        deriver,
        ca: Some(format!("fixed:r:sha256:{}", nar.to_nix_base32())),
        registration_time: 0,
    }
}

/// The absolute path the hash cache keys `path` by, and the key.
fn cache_key(path: &Path) -> Result<(PathBuf, String), StoreError> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(StoreError::io(path))?
            .join(path)
    };
    let key = abs.to_string_lossy().into_owned();
    Ok((abs, key))
}

fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    let f = fs::File::open(dir).map_err(StoreError::io(dir))?;
    f.sync_all().map_err(StoreError::io(dir))
}

impl Store {
    /// Open (creating if needed) the store at `root`.
    pub fn open(root: impl AsRef<Path>) -> Result<Store, StoreError> {
        let root = root.as_ref();
        let root_err = |action: &'static str| {
            let root = root.to_path_buf();
            move |source| StoreError::Root {
                root,
                action,
                source,
            }
        };
        fs::create_dir_all(root).map_err(root_err("creating the root directory"))?;
        let root = fs::canonicalize(root).map_err(root_err("resolving the root directory"))?;
        rustix::fs::access(&root, rustix::fs::Access::WRITE_OK)
            .map_err(|e| root_err("checking that the root is writable")(e.into()))?;
        let meta = root.join(META_DIR);
        for dir in [
            meta.clone(),
            meta.join("tmp"),
            meta.join("locks"),
            meta.join(temp_roots::DIR),
        ] {
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(root_err("creating .envbuild/")(e)),
            }
        }
        // Opening sets the journal mode and may upgrade the schema: two
        // processes doing that at once on a new store can deadlock in
        // SQLite (one gets "database is locked" at once, without waiting),
        // so opens take turns. An open takes about a millisecond.
        let db = {
            let _opening =
                FileLock::acquire(&meta.join("locks/db-open.lock"), LockKind::Exclusive)?;
            Db::open(&meta.join("db.sqlite"))?
        };
        let temp_roots = temp_roots::for_process(&meta);
        Ok(Store {
            root,
            db,
            temp_roots,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn meta(&self) -> PathBuf {
        self.root.join(META_DIR)
    }

    /// Where an item lives on disk.
    pub fn physical_path(&self, path: &StorePath) -> PathBuf {
        self.root.join(path.basename())
    }

    /// Understand a user's reference to an item: `<root>/<basename>`,
    /// `/nix/store/<basename>` or a bare `<basename>`.
    pub fn parse_item(&self, s: &str) -> Result<StorePath, StoreError> {
        let not_in_store = || StoreError::NotInStore {
            path: s.to_string(),
            root: self.root.clone(),
        };
        let trimmed = s.trim_end_matches('/');
        if trimmed.starts_with(STORE_DIR) {
            return Ok(StorePath::from_absolute(trimmed)?);
        }
        if !trimmed.contains('/') {
            return StorePath::from_basename(trimmed).map_err(|_| not_in_store());
        }
        let p = Path::new(trimmed);
        let parent = p.parent().ok_or_else(not_in_store)?;
        let parent = fs::canonicalize(parent).map_err(|_| not_in_store())?;
        if parent != self.root {
            return Err(not_in_store());
        }
        let base = p.file_name().ok_or_else(not_in_store)?;
        StorePath::from_basename(&base.to_string_lossy()).map_err(|_| not_in_store())
    }

    /// Whether `path` is a valid item; if it is, it is kept from `gc` for
    /// the rest of this process (a temp root), so the caller may use it.
    pub fn is_valid(&self, path: &StorePath) -> Result<bool, StoreError> {
        let _gc = self.gc_lock(LockKind::Shared)?;
        let valid = self.db.is_valid(path)?;
        if valid {
            self.temp_roots.record(path)?;
        }
        Ok(valid)
    }

    fn require_valid(&self, path: &StorePath) -> Result<PathInfo, StoreError> {
        self.db
            .path_info(path)?
            .ok_or_else(|| StoreError::NotValid {
                path: path.basename(),
                root: self.root.clone(),
            })
    }

    /// The registration of a valid item, which is kept from `gc` for the
    /// rest of this process (a temp root).
    pub fn path_info(&self, path: &StorePath) -> Result<PathInfo, StoreError> {
        let _gc = self.gc_lock(LockKind::Shared)?;
        let info = self.require_valid(path)?;
        self.temp_roots.record(path)?;
        Ok(info)
    }

    fn item_lock(&self, path: &StorePath) -> Result<FileLock, StoreError> {
        FileLock::acquire(
            &self
                .meta()
                .join("locks")
                .join(format!("{}.lock", path.basename())),
            LockKind::Exclusive,
        )
    }

    fn gc_lock(&self, kind: LockKind) -> Result<FileLock, StoreError> {
        FileLock::acquire(&self.meta().join("gc.lock"), kind)
    }

    /// Add a file or directory under `name` (no references).
    pub fn add_path(&mut self, src: &Path, name: &str) -> Result<AddedItem, StoreError> {
        self.add_path_with_references(src, name, &[], None)
    }

    /// Add a file or directory that refers to other (valid) items.
    pub fn add_path_with_references(
        &mut self,
        src: &Path,
        name: &str,
        references: &[StorePath],
        deriver: Option<&str>,
    ) -> Result<AddedItem, StoreError> {
        validate_name(name)?;
        match fs::symlink_metadata(src) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::Missing {
                    path: src.to_path_buf(),
                })
            }
            Err(source) => {
                return Err(StoreError::Io {
                    path: src.to_path_buf(),
                    source,
                })
            }
        }
        let _gc = self.gc_lock(LockKind::Shared)?;
        self.check_references(name, references)?;
        // Hashing first refuses what a NAR cannot hold (devices, FIFOs,
        // sockets) before anything is written, and finds a valid item
        // without copying anything.
        let first = nar::hash_path(src)?;
        let path = StorePath::source(name, &first.sha256, references, false)?;
        let physical = self.physical_path(&path);
        self.temp_roots.record(&path)?;
        if self.db.is_valid(&path)? {
            return Ok(AddedItem {
                path,
                physical,
                nar: first,
                copied: false,
            });
        }
        let _lock = self.item_lock(&path)?;
        if self.db.is_valid(&path)? {
            return Ok(AddedItem {
                path,
                physical,
                nar: first,
                copied: false,
            });
        }
        let tmp = self
            .meta()
            .join("tmp")
            .join(format!("{}-{name}", unique_suffix()));
        let result = self.build_in_tmp(src, &tmp, &path, first);
        let nar = match result {
            Ok(nar) => nar,
            Err(e) => {
                let _ = canonical::remove_tree(&tmp);
                return Err(e);
            }
        };
        let moved_dir = move_into_place(&tmp, &physical)?;
        let moved_dirs = if moved_dir {
            vec![physical.clone()]
        } else {
            Vec::new()
        };
        sync_moved(&self.root, &moved_dirs)?;
        self.db.register(&[source_info(
            &path,
            &nar,
            references.to_vec(),
            deriver.map(str::to_string),
        )])?;
        Ok(AddedItem {
            path,
            physical,
            nar,
            copied: true,
        })
    }

    /// Add a file or directory that the caller built in one of this store's
    /// [`Store::scratch`] directories and will not touch again, by moving it
    /// instead of copying it: [`Store::prepare_scratch_output`] then
    /// [`Store::commit_outputs`] for this one output. Half the I/O of
    /// [`Store::add_path`] for builder outputs. `src` is consumed: on return
    /// it no longer exists (moved into the store, or removed when the item
    /// was already valid).
    pub fn add_scratch_output(
        &mut self,
        src: &Path,
        name: &str,
        references: &[StorePath],
        deriver: Option<&str>,
    ) -> Result<AddedItem, StoreError> {
        let prepared = self.prepare_scratch_output(src, name, references, deriver)?;
        let mut added = self.commit_outputs(vec![prepared])?;
        Ok(added.pop().expect("one output committed"))
    }

    /// The first half of a moving add, safe to run on many threads at once
    /// (each with its own handle): hash the scratch output `src` and make it
    /// canonical in place (0444 or 0555 by the owner's x bit, directories
    /// 0555, mtime 1). Nothing is synced, renamed or registered; the
    /// [`Scratch`] holding `src` must outlive the commit.
    pub fn prepare_scratch_output(
        &self,
        src: &Path,
        name: &str,
        references: &[StorePath],
        deriver: Option<&str>,
    ) -> Result<PreparedOutput, StoreError> {
        validate_name(name)?;
        self.check_in_scratch(src)?;
        let nar = nar::hash_path(src)?;
        let mut prepared = prepared_output(src, nar, false, name, references, deriver)?;
        if !self.db.is_valid(&prepared.path)? {
            canonicalize_in_place(src)?;
            prepared.canonical = true;
        }
        Ok(prepared)
    }

    /// [`Store::prepare_scratch_output`] for a tree a [`TreeWriter`] wrote
    /// in one of this store's [`Store::scratch`] directories: the writer
    /// hashed the NAR as it wrote the files in canonical form, so nothing is
    /// read, hashed or re-moded again.
    ///
    /// [`TreeWriter`]: crate::nar::TreeWriter
    pub fn prepare_written_output(
        &self,
        tree: WrittenTree,
        name: &str,
        references: &[StorePath],
        deriver: Option<&str>,
    ) -> Result<PreparedOutput, StoreError> {
        validate_name(name)?;
        self.check_in_scratch(tree.root())?;
        prepared_output(tree.root(), tree.nar(), true, name, references, deriver)
    }

    fn check_in_scratch(&self, src: &Path) -> Result<(), StoreError> {
        let tmp_dir = self.meta().join("tmp");
        if src.starts_with(&tmp_dir) {
            return Ok(());
        }
        Err(StoreError::Io {
            path: src.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("a scratch output must be inside {}", tmp_dir.display()),
            ),
        })
    }

    /// The second half of moving adds, for a batch: take the items' locks
    /// in sorted order, one `syncfs` for every output's files, rename each
    /// output that is not yet valid into place, fsync the root once and
    /// register the batch in one transaction. Outputs already valid (built
    /// twice, or by another process meanwhile) are removed. Results are in
    /// the order given.
    pub fn commit_outputs(
        &mut self,
        outputs: Vec<PreparedOutput>,
    ) -> Result<Vec<AddedItem>, StoreError> {
        if outputs.is_empty() {
            return Ok(Vec::new());
        }
        let _gc = self.gc_lock(LockKind::Shared)?;
        for o in &outputs {
            self.check_references(&o.name, &o.references)?;
        }
        let mut sorted: Vec<&StorePath> = outputs.iter().map(|o| &o.path).collect();
        sorted.sort();
        sorted.dedup();
        let _locks = sorted
            .iter()
            .map(|p| self.item_lock(p))
            .collect::<Result<Vec<_>, _>>()?;
        // Which outputs become items (the rest are duplicates of valid
        // items); any not yet canonical is made so before the sync.
        let mut seen = std::collections::BTreeSet::new();
        let mut moves = Vec::with_capacity(outputs.len());
        for o in &outputs {
            self.temp_roots.record(&o.path)?;
            let m = seen.insert(o.path.clone()) && !self.db.is_valid(&o.path)?;
            if m && !o.canonical {
                canonicalize_in_place(&o.src)?;
            }
            moves.push(m);
        }
        let tmp_dir = self.meta().join("tmp");
        let dirf = fs::File::open(&tmp_dir).map_err(StoreError::io(&tmp_dir))?;
        rustix::fs::syncfs(&dirf).map_err(|e| StoreError::Io {
            path: tmp_dir.clone(),
            source: e.into(),
        })?;
        let mut infos = Vec::new();
        let mut moved_dirs = Vec::new();
        let mut added = Vec::with_capacity(outputs.len());
        for (o, copied) in outputs.into_iter().zip(moves) {
            let physical = self.physical_path(&o.path);
            if copied {
                if move_into_place(&o.src, &physical)? {
                    moved_dirs.push(physical.clone());
                }
                infos.push(source_info(&o.path, &o.nar, o.references, o.deriver));
            } else {
                canonical::remove_tree(&o.src).map_err(StoreError::io(&o.src))?;
            }
            added.push(AddedItem {
                path: o.path,
                physical,
                nar: o.nar,
                copied,
            });
        }
        if !infos.is_empty() {
            sync_moved(&self.root, &moved_dirs)?;
            self.db.register(&infos)?;
        }
        Ok(added)
    }

    fn build_in_tmp(
        &self,
        src: &Path,
        tmp: &Path,
        path: &StorePath,
        expected: NarHash,
    ) -> Result<NarHash, StoreError> {
        let mut sink = HashingWriter::new();
        nar::dump_and_copy(src, &mut sink, tmp)?;
        let nar = sink.finish();
        if nar != expected {
            return Err(NarError::Changed {
                path: src.to_path_buf(),
                expected: expected.size,
                found: nar.size,
            }
            .into());
        }
        // One syncfs flushes every file of the copy: far cheaper than an
        // fsync per file on trees of many small files.
        let dirf = fs::File::open(tmp.parent().unwrap_or(tmp)).map_err(StoreError::io(tmp))?;
        rustix::fs::syncfs(&dirf).map_err(|e| StoreError::Io {
            path: tmp.to_path_buf(),
            source: e.into(),
        })?;
        let _ = path;
        Ok(nar)
    }

    /// Start writing dirty data of the store's file system back to disk now
    /// and keep doing so until the guard is dropped. A batch of outputs
    /// built for [`Store::commit_outputs`] is then mostly on disk when the
    /// commit's `syncfs` comes, instead of waiting in the page cache until
    /// the kernel's own writeback threshold (a tenth of memory) is reached.
    /// Best effort: a failing `syncfs` here is ignored (the commit's own is
    /// not).
    pub fn write_behind(&self) -> WriteBehind {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let dir = self.meta().join("tmp");
        let thread = std::thread::Builder::new()
            .name("write-behind".into())
            .spawn(move || {
                let Ok(dirf) = fs::File::open(&dir) else {
                    return;
                };
                loop {
                    let _ = rustix::fs::syncfs(&dirf);
                    match rx.recv_timeout(std::time::Duration::from_millis(100)) {
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                }
            })
            .ok();
        WriteBehind {
            stop: Some(tx),
            thread,
        }
    }

    /// Every reference of a new item `name` must be a valid item.
    fn check_references(&self, name: &str, references: &[StorePath]) -> Result<(), StoreError> {
        for r in references {
            if !self.db.is_valid(r)? {
                return Err(StoreError::MissingReference {
                    item: name.to_string(),
                    reference: r.basename(),
                });
            }
        }
        Ok(())
    }

    /// A private scratch directory inside the store (same file system as the
    /// items, so builders' outputs can be added cheaply). It holds the shared
    /// gc lock, so `gc` never removes it while in use, and is removed on drop.
    pub fn scratch(&self, label: &str) -> Result<Scratch, StoreError> {
        let gc = self.gc_lock(LockKind::Shared)?;
        let safe: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "+-._".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        let path = self
            .meta()
            .join("tmp")
            .join(format!("{}-{safe}", unique_suffix()));
        fs::create_dir(&path).map_err(StoreError::io(&path))?;
        Ok(Scratch { path, _gc: gc })
    }

    /// A directory for data derived from items that can be rebuilt at any
    /// time (e.g. assembled root file systems); `gc` removes it, except
    /// while a running process other than the collector's has been handed
    /// it (a shell may be inside a rootfs there).
    pub fn cache_dir(&self, name: &str) -> Result<PathBuf, StoreError> {
        validate_name(name)?;
        let _gc = self.gc_lock(LockKind::Shared)?;
        self.temp_roots.record_cache(name)?;
        let dir = self.meta().join("cache").join(name);
        fs::create_dir_all(&dir).map_err(StoreError::io(&dir))?;
        Ok(dir)
    }

    /// The items `paths` refer to, transitively, including themselves; sorted.
    pub fn closure(&self, paths: &[StorePath]) -> Result<Vec<StorePath>, StoreError> {
        let mut seen = std::collections::BTreeSet::new();
        let mut todo: Vec<StorePath> = paths.to_vec();
        while let Some(p) = todo.pop() {
            if seen.contains(&p) {
                continue;
            }
            let info = self.require_valid(&p)?;
            todo.extend(info.references);
            seen.insert(p);
        }
        Ok(seen.into_iter().collect())
    }

    /// Re-hash every valid item and compare with its registration.
    pub fn verify(
        &self,
        mut progress: impl FnMut(usize, usize, &StorePath),
    ) -> Result<VerifyReport, StoreError> {
        let paths = self.db.valid_paths()?;
        let mut report = VerifyReport::default();
        for (i, p) in paths.iter().enumerate() {
            progress(i, paths.len(), p);
            let info = self.require_valid(p)?;
            let physical = self.physical_path(p);
            report.checked += 1;
            if fs::symlink_metadata(&physical).is_err() {
                report
                    .problems
                    .push(VerifyProblem::Missing { path: p.clone() });
                continue;
            }
            match nar::hash_path(&physical) {
                Ok(h) => {
                    let found = format!("sha256:{}", h.to_nix_base32());
                    if found != info.nar_hash || h.size != info.nar_size {
                        report.problems.push(VerifyProblem::HashMismatch {
                            path: p.clone(),
                            expected: info.nar_hash.clone(),
                            found,
                        });
                    }
                }
                Err(e) => report.problems.push(VerifyProblem::Unreadable {
                    path: p.clone(),
                    error: e.to_string(),
                }),
            }
        }
        let valid: std::collections::BTreeSet<String> =
            paths.iter().map(|p| p.basename()).collect();
        for name in self.entries()? {
            if !valid.contains(&name) {
                report.unregistered.push(name);
            }
        }
        Ok(report)
    }

    /// Names of the entries under the root, except `.envbuild`.
    fn entries(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.root).map_err(StoreError::io(&self.root))? {
            let e = e.map_err(StoreError::io(&self.root))?;
            let name = e.file_name();
            if name.as_bytes() == META_DIR.as_bytes() {
                continue;
            }
            out.push(name.to_string_lossy().into_owned());
        }
        out.sort();
        Ok(out)
    }

    /// Keep `path` alive under `name`; with `link`, only while that symlink
    /// still resolves to the item (an indirect root, like Nix's `result`).
    pub fn add_root(
        &mut self,
        name: &str,
        path: &StorePath,
        link: Option<&Path>,
    ) -> Result<(), StoreError> {
        self.insert_root(Root {
            name: name.to_string(),
            path: path.clone(),
            link: link.map(Path::to_path_buf),
            guard: None,
        })
    }

    fn insert_root(&mut self, root: Root) -> Result<(), StoreError> {
        let _gc = self.gc_lock(LockKind::Shared)?;
        self.require_valid(&root.path)?;
        self.db.add_root(&root)
    }

    pub fn remove_root(&mut self, name: &str) -> Result<(), StoreError> {
        if self.db.remove_root(name)? {
            Ok(())
        } else {
            Err(StoreError::NoSuchRoot { name: name.into() })
        }
    }

    pub fn roots(&self) -> Result<Vec<Root>, StoreError> {
        self.db.roots()
    }

    /// Keep `path` alive under `name` while `guard` exists (a spec's
    /// items while the spec file is there).
    pub fn add_guarded_root(
        &mut self,
        name: &str,
        path: &StorePath,
        guard: &Path,
    ) -> Result<(), StoreError> {
        self.insert_root(Root {
            name: name.to_string(),
            path: path.clone(),
            link: None,
            guard: Some(guard.to_path_buf()),
        })
    }

    fn root_is_live(&self, root: &Root) -> bool {
        let link_ok = match &root.link {
            None => true,
            Some(link) => fs::canonicalize(link)
                .map(|t| t == self.physical_path(&root.path))
                .unwrap_or(false),
        };
        let guard_ok = match &root.guard {
            None => true,
            Some(guard) => fs::symlink_metadata(guard).is_ok(),
        };
        link_ok && guard_ok
    }

    /// Remove every item that neither a live root nor another running
    /// process's temp roots reach, dead indirect roots, the temp roots
    /// files of dead processes, and the garbage of interrupted adds. Waits
    /// until no add is in progress and no scratch directory is in use. The
    /// calling process's own temp roots are not kept: it decides itself
    /// what it still needs.
    pub fn gc(&mut self) -> Result<GcReport, StoreError> {
        self.gc_with(&GcOptions::default())
    }

    /// [`Store::gc`] with a policy: a dry run, roots that do not count, and
    /// age and size limits on what goes (see [`GcOptions`]).
    pub fn gc_with(&mut self, opts: &GcOptions) -> Result<GcReport, StoreError> {
        let _gc = self.gc_lock(LockKind::Exclusive)?;
        let mut report = GcReport::default();
        let mut live_roots = Vec::new();
        let in_use = temp_roots::read_all(&self.meta(), &self.temp_roots)?;
        for name in &in_use.live {
            // A recorded item may have been collected by an earlier gc
            // that ran before it was recorded; the process then found it
            // missing and built it again, or will.
            if let Ok(p) = StorePath::from_basename(name) {
                if self.db.is_valid(&p)? {
                    report.temp_roots += 1;
                    live_roots.push(p);
                }
            }
        }
        for root in self.db.roots()? {
            if !self.root_is_live(&root) {
                if !opts.dry_run {
                    self.db.remove_root(&root.name)?;
                }
                report.dead_roots.push(root.name);
            } else if !opts.ignore_root.is_some_and(|ignore| ignore(&root)) {
                live_roots.push(root.path.clone());
            }
        }
        let live: std::collections::BTreeSet<StorePath> =
            self.closure(&live_roots)?.into_iter().collect();
        report.live = live.len();
        let dead = self.collectable(&live, opts, &mut report)?;
        if !opts.dry_run {
            // Unregister first: a crash before the files go leaves only
            // garbage.
            self.db.delete_paths(&dead)?;
            for p in &dead {
                let phys = self.physical_path(p);
                canonical::remove_tree(&phys).map_err(StoreError::io(&phys))?;
            }
        }
        report.removed = dead;
        if opts.dry_run {
            return Ok(report);
        }
        let valid: std::collections::BTreeSet<String> = self
            .db
            .valid_paths()?
            .iter()
            .map(|p| p.basename())
            .collect();
        for name in self.entries()? {
            if !valid.contains(&name) {
                let p = self.root.join(&name);
                canonical::remove_tree(&p).map_err(StoreError::io(&p))?;
                report.garbage_removed += 1;
            }
        }
        let cache = self.meta().join("cache");
        if cache.exists() {
            for e in fs::read_dir(&cache).map_err(StoreError::io(&cache))? {
                let e = e.map_err(StoreError::io(&cache))?;
                if in_use
                    .caches
                    .contains(e.file_name().to_string_lossy().as_ref())
                {
                    continue;
                }
                let p = e.path();
                canonical::remove_tree(&p).map_err(StoreError::io(&p))?;
            }
        }
        let tmp = self.meta().join("tmp");
        for e in fs::read_dir(&tmp).map_err(StoreError::io(&tmp))? {
            let p = e.map_err(StoreError::io(&tmp))?.path();
            canonical::remove_tree(&p).map_err(StoreError::io(&p))?;
            report.garbage_removed += 1;
        }
        Ok(report)
    }

    /// The unreachable items `opts` lets go: old enough, and (with a size
    /// limit) the oldest first until the rest fits. An item goes only with
    /// every unreachable item that refers to it, so what stays is closed
    /// under references. Fills in the report's byte counts and what was
    /// kept.
    fn collectable(
        &self,
        live: &std::collections::BTreeSet<StorePath>,
        opts: &GcOptions,
        report: &mut GcReport,
    ) -> Result<Vec<StorePath>, StoreError> {
        use std::collections::{BTreeMap, BinaryHeap};
        let mut total = 0u64;
        let mut garbage: BTreeMap<StorePath, PathInfo> = BTreeMap::new();
        for p in self.db.valid_paths()? {
            let info = self.require_valid(&p)?;
            total += info.nar_size;
            if !live.contains(&p) {
                garbage.insert(p, info);
            }
        }
        let count = garbage.len();
        if let Some(age) = opts.older_than {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let cutoff = now.saturating_sub(age.as_secs() as i64);
            let young: Vec<StorePath> = garbage
                .values()
                .filter(|i| i.registration_time > cutoff)
                .map(|i| i.path.clone())
                .collect();
            // A young item keeps what it refers to.
            for p in self.closure(&young)? {
                garbage.remove(&p);
            }
        }
        // How many unreachable items refer to each: an item can go once
        // none that stays does.
        let mut referrers: BTreeMap<&StorePath, usize> = BTreeMap::new();
        for info in garbage.values() {
            for r in info.references.iter().filter(|r| **r != info.path) {
                if garbage.contains_key(r) {
                    *referrers.entry(r).or_default() += 1;
                }
            }
        }
        // Oldest first, then by name.
        let key = |i: &PathInfo| std::cmp::Reverse((i.registration_time, i.path.basename()));
        let mut ready: BinaryHeap<_> = garbage
            .values()
            .filter(|i| !referrers.contains_key(&i.path))
            .map(|i| (key(i), i.path.clone()))
            .collect();
        let mut dead = Vec::new();
        while let Some((_, p)) = ready.pop() {
            if opts.max_size.is_some_and(|max| total <= max) {
                break;
            }
            let info = &garbage[&p];
            total -= info.nar_size;
            report.bytes_freed += info.nar_size;
            for r in info.references.iter().filter(|r| **r != p) {
                if let Some(n) = referrers.get_mut(r) {
                    *n -= 1;
                    if *n == 0 {
                        ready.push((key(&garbage[r]), r.clone()));
                    }
                }
            }
            dead.push(p);
        }
        report.kept_garbage = count - dead.len();
        report.bytes_left = total;
        Ok(dead)
    }

    /// Record a realisation: derivation `drv_hash`'s output `output_name` is `output`.
    pub fn add_realisation(
        &mut self,
        drv_hash: &str,
        output_name: &str,
        output: &StorePath,
    ) -> Result<(), StoreError> {
        self.require_valid(output)?;
        self.db.add_realisation(drv_hash, output_name, output)
    }

    /// The hash of `path` (outside the store) that `compute` gives, from the
    /// hash cache when nothing `lstat` reports about `path` (or, for a
    /// directory, anything below it) changed since it was recorded; see
    /// [`crate::hash_cache`]. `kind` names what the value is (the caller's
    /// choice, e.g. `sha256`); the value is opaque to the store.
    pub fn cached_hash<E: From<StoreError>>(
        &mut self,
        path: &Path,
        kind: &str,
        compute: impl FnOnce(&mut Store) -> Result<String, E>,
    ) -> Result<String, E> {
        let (abs, key) = cache_key(path)?;
        let before = hash_cache::fingerprint(&abs)?;
        if let Some((fp, value)) = self.db.hash_cache_get(&key, kind)? {
            if fp == before.digest {
                return Ok(value);
            }
        }
        let value = compute(self)?;
        let after = hash_cache::fingerprint(&abs)?;
        if after == before && hash_cache::now_ns() - after.newest_ns > hash_cache::RACY_WINDOW_NS {
            self.db.hash_cache_put(&key, kind, &after.digest, &value)?;
        }
        Ok(value)
    }

    /// The value [`Store::record_hash`] or [`Store::cached_hash`] recorded
    /// for `path` under `kind`, if nothing `lstat` reports about `path` (or
    /// anything below it) changed since; `None` also when `path` is gone.
    pub fn known_hash(&self, path: &Path, kind: &str) -> Result<Option<String>, StoreError> {
        let (abs, key) = cache_key(path)?;
        let Some((fp, value)) = self.db.hash_cache_get(&key, kind)? else {
            return Ok(None);
        };
        match hash_cache::fingerprint(&abs) {
            Ok(now) if now.digest == fp => Ok(Some(value)),
            Ok(_) => Ok(None),
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Record `value` for `path` as it is now, for a path the caller has
    /// just written itself (an export): see [`crate::hash_cache`] for why
    /// this first waits until a write made after it would show in the
    /// fingerprint (a few clock ticks). Nothing is recorded when `path`
    /// changes meanwhile.
    pub fn record_hash(&mut self, path: &Path, kind: &str, value: &str) -> Result<(), StoreError> {
        let (abs, key) = cache_key(path)?;
        let before = hash_cache::fingerprint(&abs)?;
        let age = hash_cache::now_ns() - before.newest_ns;
        if age < hash_cache::OWN_WRITE_WINDOW_NS {
            let wait = (hash_cache::OWN_WRITE_WINDOW_NS - age) as u64;
            std::thread::sleep(std::time::Duration::from_nanos(wait));
        }
        let after = hash_cache::fingerprint(&abs)?;
        if after == before {
            self.db.hash_cache_put(&key, kind, &after.digest, value)?;
        }
        Ok(())
    }

    /// The realisations whose output is one of `paths`: (derivation hash,
    /// output name, output), sorted by derivation hash.
    pub fn realisations_of(
        &self,
        paths: &[StorePath],
    ) -> Result<Vec<(String, String, StorePath)>, StoreError> {
        let wanted: std::collections::BTreeSet<&StorePath> = paths.iter().collect();
        Ok(self
            .db
            .all_realisations()?
            .into_iter()
            .filter(|(_, _, p)| wanted.contains(p))
            .collect())
    }

    /// Add an item from its NAR (from a binary cache: untrusted bytes):
    /// [`Store::restore_nar`], then [`Store::commit_restored`]. An item
    /// already valid is not read.
    pub fn import_nar(
        &mut self,
        nar_stream: impl std::io::Read,
        expected: &ExpectedItem<'_>,
    ) -> Result<AddedItem, StoreError> {
        let path = expected.path;
        if self.is_valid(path)? {
            let info = self.path_info(path)?;
            let sha = crate::nixbase32::decode_fixed::<32>(
                info.nar_hash
                    .strip_prefix("sha256:")
                    .unwrap_or(&info.nar_hash),
            )
            .unwrap_or([0u8; 32]);
            return Ok(AddedItem {
                path: path.clone(),
                physical: self.physical_path(path),
                nar: NarHash {
                    sha256: sha,
                    size: info.nar_size,
                },
                copied: false,
            });
        }
        let restored = self.restore_nar(nar_stream, expected)?;
        self.commit_restored(restored)
    }

    /// The first half of adding an item from its NAR: the NAR is restored
    /// through the NAR reader (which refuses bad names and anything out of
    /// grammar) into a scratch directory while its bytes are hashed; at
    /// most `expected.nar_size + 1` bytes are read. It succeeds only when
    /// the NAR's size and sha256 are the expected ones and the identity
    /// computed from them, the name and the references is `expected.path`;
    /// else the scratch directory is removed and the error names the item,
    /// the expected and the found. Nothing is registered yet: the caller
    /// may check more (a binary cache's `FileHash`, read on the same pass)
    /// before [`Store::commit_restored`].
    ///
    /// The tree is not read back: the reader accepts exactly one encoding
    /// of each tree (tokens, order and padding checked) and restores it in
    /// canonical form, so the stream's hash is the restored tree's NAR hash.
    pub fn restore_nar(
        &mut self,
        nar_stream: impl std::io::Read,
        expected: &ExpectedItem<'_>,
    ) -> Result<RestoredNar, StoreError> {
        let path = expected.path;
        validate_name(path.name())?;
        let scratch = self.scratch(path.name())?;
        let dst = scratch.path().join("out");
        let mut tee = HashingReader {
            inner: nar_stream.take(expected.nar_size.saturating_add(1)),
            hasher: HashingWriter::new(),
        };
        let mismatch =
            |what: &'static str, expected: String, found: String| StoreError::ImportMismatch {
                item: path.basename(),
                what,
                expected,
                found,
            };
        nar::reader::restore(&mut tee, &dst)?;
        // Nothing may follow the NAR.
        std::io::copy(&mut tee, &mut std::io::sink()).map_err(StoreError::io(&dst))?;
        let found = tee.hasher.finish();
        if found.size != expected.nar_size {
            return Err(mismatch(
                "NAR size",
                expected.nar_size.to_string(),
                if found.size > expected.nar_size {
                    format!("more than {}", expected.nar_size)
                } else {
                    found.size.to_string()
                },
            ));
        }
        if found.sha256 != expected.nar_sha256 {
            return Err(mismatch(
                "NAR hash",
                format!("sha256:{}", crate::nixbase32::encode(&expected.nar_sha256)),
                format!("sha256:{}", found.to_nix_base32()),
            ));
        }
        let prepared = prepared_output(
            &dst,
            found,
            true,
            path.name(),
            expected.references,
            expected.deriver,
        )?;
        if prepared.path() != path {
            return Err(mismatch(
                "store path (from its NAR hash, name and references, as Nix computes a content-addressed path)",
                path.basename(),
                prepared.path().basename(),
            ));
        }
        Ok(RestoredNar { scratch, prepared })
    }

    /// The second half of [`Store::import_nar`]: register a restored NAR
    /// (one `syncfs`, the rename, one transaction; see
    /// [`Store::commit_outputs`]). Its references must be valid.
    pub fn commit_restored(&mut self, restored: RestoredNar) -> Result<AddedItem, StoreError> {
        let RestoredNar { scratch, prepared } = restored;
        let mut added = self.commit_outputs(vec![prepared])?;
        drop(scratch);
        Ok(added.pop().expect("one output committed"))
    }

    /// The output a derivation produced before, if it is still valid.
    /// The item is kept from `gc` for the rest of this process (a temp root).
    pub fn realisation(
        &self,
        drv_hash: &str,
        output_name: &str,
    ) -> Result<Option<StorePath>, StoreError> {
        let _gc = self.gc_lock(LockKind::Shared)?;
        let found = self.db.realisation(drv_hash, output_name)?;
        if let Some(p) = &found {
            self.temp_roots.record(p)?;
        }
        Ok(found)
    }
}
