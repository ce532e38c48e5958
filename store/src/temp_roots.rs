//! Temporary roots, as in Nix: the items a live process added or found and
//! may still use, though no root reaches them yet (a fetched wheel a later
//! step unpacks, a component a later step puts in a layer).
//!
//! Each process that records one has a file
//! `.envbuild/temproots/<pid>-<nanoseconds>` (unique even across pid
//! namespaces sharing a store), one basename a line, that it holds an exclusive `flock` on for the rest
//! of its life; every handle of the process on the same store shares it.
//! A record is written while the writer holds the shared gc lock, and `gc`
//! reads the files while holding the exclusive one, so an item is either
//! recorded before `gc` looks or looked up after `gc` is done (and then
//! found missing, and built again). A file whose lock `gc` can take belongs
//! to a dead process (the kernel released its lock): it is removed.
//!
//! A line `cache:<name>` records a cache directory the process was handed
//! (`Store::cache_dir`, e.g. the rootfs a running shell is in): `gc` leaves
//! it alone. Item names cannot contain `:`, so the two never mix.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rustix::fs::FlockOperation;

use crate::error::StoreError;
use crate::lock::{FileLock, LockKind};
use crate::store_path::StorePath;

/// Directory of the per-process files, under the store's `.envbuild/`.
pub(crate) const DIR: &str = "temproots";

/// Marks a line naming a cache directory rather than an item.
const CACHE_PREFIX: &str = "cache:";

/// This process's temporary roots in one store.
#[derive(Debug)]
pub(crate) struct TempRoots {
    dir: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Created (and locked) on the first record.
    file: Option<(File, PathBuf)>,
    recorded: HashSet<String>,
}

/// The process's temporary roots of the store whose state directory is
/// `meta` (one per store and process, shared by all its handles).
pub(crate) fn for_process(meta: &Path) -> Arc<TempRoots> {
    static ALL: OnceLock<Mutex<HashMap<PathBuf, Arc<TempRoots>>>> = OnceLock::new();
    let mut all = ALL
        .get_or_init(Default::default)
        .lock()
        .expect("temp roots registry");
    Arc::clone(all.entry(meta.to_path_buf()).or_insert_with(|| {
        Arc::new(TempRoots {
            dir: meta.join(DIR),
            state: Mutex::default(),
        })
    }))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl TempRoots {
    /// Record `path` as in use by this process. The caller holds the shared
    /// gc lock (so no `gc` is between reading the files and deleting).
    pub(crate) fn record(&self, path: &StorePath) -> Result<(), StoreError> {
        self.record_line(path.basename())
    }

    /// Record the cache directory `name` as in use by this process (the
    /// caller holds the shared gc lock).
    pub(crate) fn record_cache(&self, name: &str) -> Result<(), StoreError> {
        self.record_line(format!("{CACHE_PREFIX}{name}"))
    }

    fn record_line(&self, name: String) -> Result<(), StoreError> {
        let mut state = self.state.lock().expect("temp roots state");
        if state.recorded.contains(&name) {
            return Ok(());
        }
        if state.file.is_none() {
            state.file = Some(self.create()?);
        }
        let (file, path) = state.file.as_mut().expect("created above");
        file.write_all(format!("{name}\n").as_bytes())
            .map_err(io(path))?;
        state.recorded.insert(name);
        Ok(())
    }

    /// The process's file, once something was recorded.
    fn path(&self) -> Option<PathBuf> {
        let state = self.state.lock().expect("temp roots state");
        state.file.as_ref().map(|(_, p)| p.clone())
    }

    /// Create the process's file and lock it. `gc` cannot look at it in
    /// between: the caller holds the shared gc lock.
    fn create(&self) -> Result<(File, PathBuf), StoreError> {
        fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        loop {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let path = self.dir.join(format!("{}-{nanos}", std::process::id()));
            let file = match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(&path)(e)),
            };
            lock(&file, FlockOperation::LockExclusive).map_err(|source| StoreError::Lock {
                path: path.clone(),
                source,
            })?;
            return Ok((file, path));
        }
    }
}

fn lock(file: &File, op: FlockOperation) -> std::io::Result<()> {
    loop {
        match rustix::fs::flock(file, op) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// What the temp roots files of a store hold.
#[derive(Debug, Default)]
pub(crate) struct Found {
    /// Basenames recorded by live processes other than this one.
    pub(crate) live: BTreeSet<String>,
    /// Cache directories they use.
    pub(crate) caches: BTreeSet<String>,
}

/// Read the temporary roots of every live process except this one (the
/// process collecting garbage decides itself what it still needs), and
/// remove the files of dead ones. The caller holds the exclusive gc lock.
pub(crate) fn read_all(meta: &Path, own: &TempRoots) -> Result<Found, StoreError> {
    let dir = meta.join(DIR);
    let own = own.path();
    let mut found = Found::default();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(io(&dir)(e)),
    };
    for e in entries {
        let path = e.map_err(io(&dir))?.path();
        if Some(&path) == own.as_ref() {
            continue;
        }
        match FileLock::try_acquire(&path, LockKind::Exclusive)? {
            Some(_dead) => {
                // Its process died: the kernel released the lock.
                fs::remove_file(&path).map_err(io(&path))?;
            }
            None => {
                let text = fs::read_to_string(&path).map_err(io(&path))?;
                for line in text.lines().filter(|l| !l.is_empty()) {
                    match line.strip_prefix(CACHE_PREFIX) {
                        Some(cache) => found.caches.insert(cache.to_string()),
                        None => found.live.insert(line.to_string()),
                    };
                }
            }
        }
    }
    Ok(found)
}
