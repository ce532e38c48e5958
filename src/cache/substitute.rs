//! Substitution: taking an item, or a step's output, from binary caches
//! instead of fetching or building it.
//!
//! For a realisation key (a step's derivation hash, or a fixed-output
//! fetch's `fetch:sha256:…`) each substituter is asked in order. Its
//! realisation must be signed by a trusted key; then the closure of the
//! item it names is substituted: every narinfo of the closure the store
//! lacks is read (capped at [`MAX_NARINFO`]), must be for the path asked,
//! signed by a trusted key over Nix's fingerprint, and name its NAR file
//! as `nar/<name>` (nothing else is followed). Then, references first,
//! each NAR file is read once (capped at its `FileSize`): decompressed and
//! restored through the store's NAR reader while hashed
//! ([`Store::restore_nar`]), its own bytes hashed on the same pass (or as
//! they were downloaded). The item is registered only when the file's
//! `FileSize` and `FileHash` and the NAR's size and hash are the
//! narinfo's and the path computed from them is the one asked. Only then
//! is the realisation recorded.
//!
//! A refusal at any point (unsigned, signed by an untrusted key, a hash
//! that does not match, a realisation naming an item the cache lacks, an
//! unreachable server) is a warning naming the URL, the expected and the
//! found; the next substituter is asked, and after the last the caller
//! builds or fetches as if there were none. Nothing refused enters the
//! store.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};

use envbuild_store::narinfo::NarInfo;
use envbuild_store::signing::{self, PublicKey};
use envbuild_store::{nixbase32, ExpectedItem, RestoredNar, Store, StoreError, StorePath};
use sha2::{Digest, Sha256};

use super::realisation::{self, Realisation};
use super::{Backend, CacheConfig, CacheError};

/// Longest narinfo read.
pub const MAX_NARINFO: u64 = 1024 * 1024;
/// Most items substituted for one request (a closure larger than this is
/// refused rather than walked without end).
pub const MAX_CLOSURE: usize = 100_000;

/// One binary cache asked for substitutes.
pub struct Substituter {
    backend: Backend,
    store_dir_checked: AtomicBool,
    /// Not asked again in this process: it could not be reached (every
    /// request already had its retries).
    disabled: AtomicBool,
}

/// The substituters of a realize, in order, and the keys trusted.
pub struct Substituters {
    list: Vec<Substituter>,
    keys: Vec<PublicKey>,
    config_path: String,
}

impl std::fmt::Debug for Substituters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.list.iter().map(|s| s.backend.url()))
            .finish()
    }
}

/// A warning for the user, through the progress display.
fn warn(text: &str) {
    crate::progress::warning(text);
}

impl Substituters {
    /// `extra` (from the command line) first, then the configuration's.
    /// `offline`: only `file://` substituters.
    pub fn new(
        extra: &[String],
        config: &CacheConfig,
        offline: bool,
    ) -> Result<Substituters, CacheError> {
        let mut list = Vec::new();
        let mut seen = BTreeSet::new();
        for url in extra.iter().chain(&config.substituters) {
            if !seen.insert(url.clone()) {
                continue;
            }
            let backend = Backend::open(url)?;
            if offline && backend.is_remote() {
                continue;
            }
            list.push(Substituter {
                backend,
                store_dir_checked: AtomicBool::new(false),
                disabled: AtomicBool::new(false),
            });
        }
        Ok(Substituters {
            list,
            keys: config.trusted_public_keys.clone(),
            config_path: config.path.display().to_string(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The output of the realisation `key` from the first substituter that
    /// has it and passes every check, substituted into `store` with its
    /// closure and recorded as a realisation; `None` when none does (each
    /// refusal was a warning). Only a failure of the local store is an error.
    pub fn realisation(
        &self,
        store: &mut Store,
        key: &str,
        what: &str,
    ) -> Result<Option<StorePath>, StoreError> {
        if !realisation::valid_key(key) {
            return Ok(None);
        }
        for s in self
            .list
            .iter()
            .filter(|s| !s.disabled.load(Ordering::Relaxed))
        {
            match s.realisation(store, key, self) {
                Ok(None) => {}
                Ok(Some(path)) => {
                    store.add_realisation(key, "out", &path)?;
                    tracing::debug!(cache = %s.backend.url(), key, item = %path, "substituted");
                    return Ok(Some(path));
                }
                Err(CacheError::Store(e)) => return Err(*e),
                Err(e) if e.is_unreachable() => {
                    // Unreachable (after the client's retries): asking it
                    // for every other step would only repeat the wait.
                    if !s.disabled.swap(true, Ordering::Relaxed) {
                        warn(&format!(
                            "{what}: substitute refused, {e}; building or fetching it instead, and not asking {} again in this run",
                            s.backend.url()
                        ));
                    }
                }
                Err(e) => warn(&format!(
                    "{what}: substitute refused, {e}; building or fetching it instead"
                )),
            }
        }
        Ok(None)
    }

    /// Whether some substituter has a trusted realisation of `key` (for
    /// `envbuild plan`; nothing is substituted): the first such cache's URL.
    pub fn has_realisation(&self, key: &str) -> Option<String> {
        self.first_realisation(key, None).map(|(url, _)| url)
    }

    /// The output named by the first trusted realisation of `key`, without
    /// substituting it: a realize defers a fixed-output input this way (a
    /// step that a substituter serves needs its inputs' paths, for its
    /// derivation hash, but not their files).
    /// A cache that cannot be reached is named once (`what` asked it) and
    /// not asked again in this run.
    pub fn realisation_path(&self, key: &str, what: &str) -> Option<StorePath> {
        self.first_realisation(key, Some(what))
            .map(|(_, path)| path)
    }

    fn first_realisation(&self, key: &str, what: Option<&str>) -> Option<(String, StorePath)> {
        if !realisation::valid_key(key) {
            return None;
        }
        self.list
            .iter()
            .filter(|s| !s.disabled.load(Ordering::Relaxed))
            .find_map(|s| match s.fetch_realisation(key, self) {
                Ok(found) => found.map(|p| (s.backend.url(), p)),
                Err(e) if e.is_unreachable() => {
                    if !s.disabled.swap(true, Ordering::Relaxed) {
                        if let Some(what) = what {
                            warn(&format!(
                                "{what}: substitute refused, {e}; not asking {} again in this run",
                                s.backend.url()
                            ));
                        }
                    }
                    None
                }
                Err(_) => None,
            })
    }

    /// Substitute `path` and its closure from the first substituter that
    /// has it (`envbuild cache pull`); the last refusal is the error.
    pub fn substitute_path(&self, store: &mut Store, path: &StorePath) -> Result<(), CacheError> {
        let mut last = None;
        for s in &self.list {
            match s.closure(store, path, self) {
                Ok(()) => return Ok(()),
                Err(CacheError::Store(e)) => return Err((*e).into()),
                Err(e) => {
                    if self.list.len() > 1 {
                        warn(&format!("{path}: substitute refused, {e}"));
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(CacheError::BadUrl {
            url: "(no substituter configured: --substituter, ENVBUILD_SUBSTITUTERS or substituters in the configuration)".into(),
        }))
    }

    fn untrusted(
        &self,
        url: String,
        what: &'static str,
        item: String,
        sigs: &[String],
    ) -> CacheError {
        let names: Vec<String> = sigs
            .iter()
            .map(|s| s.split(':').next().unwrap_or_default().to_string())
            .collect();
        CacheError::Untrusted {
            url,
            item: format!("{what} {item}"),
            expected: self
                .keys
                .iter()
                .map(|k| k.name.clone())
                .collect::<Vec<_>>()
                .join(", "),
            found: if names.is_empty() {
                "no signature".into()
            } else {
                let trusted_names: BTreeSet<&str> =
                    self.keys.iter().map(|k| k.name.as_str()).collect();
                if names.iter().any(|n| trusted_names.contains(n.as_str())) {
                    format!("signatures by [{}] that do not verify", names.join(", "))
                } else {
                    format!("signatures by [{}] only", names.join(", "))
                }
            },
            config: self.config_path.clone(),
        }
    }
}

impl Substituter {
    fn check_store_dir(&self) -> Result<(), CacheError> {
        if self.store_dir_checked.load(Ordering::Relaxed) {
            return Ok(());
        }
        let info = self
            .backend
            .get("nix-cache-info", 64 * 1024, "nix-cache-info")?
            .ok_or_else(|| CacheError::NotInCache {
                url: self.backend.url(),
                item: "nix-cache-info".into(),
                item_url: self.backend.url_of("nix-cache-info"),
            })?;
        let text = String::from_utf8_lossy(&info);
        let dir = text
            .lines()
            .find_map(|l| l.strip_prefix("StoreDir: "))
            .unwrap_or("/nix/store")
            .trim();
        if dir != "/nix/store" {
            return Err(CacheError::StoreDir {
                url: self.backend.url(),
                found: dir.to_string(),
            });
        }
        self.store_dir_checked.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// The trusted realisation of `key`, or `None` when the cache has none.
    fn fetch_realisation(
        &self,
        key: &str,
        all: &Substituters,
    ) -> Result<Option<StorePath>, CacheError> {
        self.check_store_dir()?;
        let name = realisation::file_name(key, "out");
        let url = self.backend.url_of(&name);
        let Some(bytes) = self
            .backend
            .get(&name, realisation::MAX_REALISATION, "realisation")?
        else {
            return Ok(None);
        };
        let (r, path) = Realisation::parse(&bytes, key, "out").map_err(|(expected, found)| {
            CacheError::BadRealisation {
                url: url.clone(),
                key: key.to_string(),
                expected,
                found,
            }
        })?;
        if !r.trusted(&path, &all.keys) {
            return Err(all.untrusted(url, "realisation", key.to_string(), &r.signatures));
        }
        Ok(Some(path))
    }

    fn realisation(
        &self,
        store: &mut Store,
        key: &str,
        all: &Substituters,
    ) -> Result<Option<StorePath>, CacheError> {
        let Some(path) = self.fetch_realisation(key, all)? else {
            return Ok(None);
        };
        match self.closure(store, &path, all) {
            Ok(()) => Ok(Some(path)),
            Err(CacheError::NotInCache { item, item_url, .. }) => Err(CacheError::Dangling {
                url: self.backend.url_of(&realisation::file_name(key, "out")),
                key: key.to_string(),
                item,
                item_url,
            }),
            Err(e) => Err(e),
        }
    }

    /// The verified narinfo of `path`.
    fn narinfo(&self, path: &StorePath, all: &Substituters) -> Result<NarInfo, CacheError> {
        let name = format!("{}.narinfo", nixbase32::encode(path.digest()));
        let url = self.backend.url_of(&name);
        let bytes = self
            .backend
            .get(&name, MAX_NARINFO, "narinfo")?
            .ok_or_else(|| CacheError::NotInCache {
                url: self.backend.url(),
                item: path.basename(),
                item_url: url.clone(),
            })?;
        let text = String::from_utf8(bytes).map_err(|_| CacheError::NarInfo {
            url: url.clone(),
            source: envbuild_store::NarInfoError::Line {
                line: 0,
                found: "bytes that are not UTF-8".into(),
            },
        })?;
        let ni = NarInfo::parse(&text).map_err(|source| CacheError::NarInfo {
            url: url.clone(),
            source,
        })?;
        if &ni.store_path != path {
            return Err(CacheError::WrongPath {
                url,
                expected: path.basename(),
                found: ni.store_path.basename(),
            });
        }
        if !signing::trusted(&all.keys, ni.fingerprint().as_bytes(), &ni.sigs) {
            return Err(all.untrusted(url, "narinfo of", path.basename(), &ni.sigs));
        }
        let safe = ni.url.strip_prefix("nar/").is_some_and(|f| {
            !f.is_empty()
                && !f.starts_with('.')
                && f.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
        });
        if !safe {
            return Err(CacheError::NarInfo {
                url,
                source: envbuild_store::NarInfoError::Value {
                    field: "URL",
                    expected: "nar/<file name> inside the cache",
                    found: ni.url.clone(),
                },
            });
        }
        Ok(ni)
    }

    /// Substitute `root` and every item of its closure the store lacks.
    fn closure(
        &self,
        store: &mut Store,
        root: &StorePath,
        all: &Substituters,
    ) -> Result<(), CacheError> {
        self.check_store_dir()?;
        if store.is_valid(root)? {
            return Ok(());
        }
        // Every narinfo first (all must pass before any NAR is read).
        let mut infos: BTreeMap<StorePath, NarInfo> = BTreeMap::new();
        let mut todo = vec![root.clone()];
        while let Some(p) = todo.pop() {
            if infos.contains_key(&p) || store.is_valid(&p)? {
                continue;
            }
            if infos.len() >= MAX_CLOSURE {
                return Err(CacheError::ClosureTooLarge {
                    url: self.backend.url(),
                    item: root.basename(),
                    limit: MAX_CLOSURE,
                });
            }
            let ni = self.narinfo(&p, all)?;
            todo.extend(ni.references.iter().filter(|r| **r != p).cloned());
            infos.insert(p, ni);
        }
        // References first.
        let mut done: BTreeSet<StorePath> = BTreeSet::new();
        while done.len() < infos.len() {
            let ready: Vec<StorePath> = infos
                .iter()
                .filter(|(p, ni)| {
                    !done.contains(*p)
                        && ni
                            .references
                            .iter()
                            .all(|r| r == *p || done.contains(r) || !infos.contains_key(r))
                })
                .map(|(p, _)| p.clone())
                .collect();
            if ready.is_empty() {
                return Err(CacheError::NarInfo {
                    url: self.backend.url(),
                    source: envbuild_store::NarInfoError::Value {
                        field: "References",
                        expected: "references without a cycle",
                        found: root.basename(),
                    },
                });
            }
            for p in ready {
                self.import(store, &infos[&p])?;
                done.insert(p);
            }
        }
        Ok(())
    }

    /// Fetch, check and add one item, in one pass over the NAR file's
    /// bytes: a file:// cache's file read where it is, another cache's
    /// streamed from its download (a thread) as it arrives, nothing written
    /// but the item. The bytes are hashed as they go by (the file's
    /// `FileSize`/`FileHash`) and decompressed into the store's NAR reader,
    /// which hashes the NAR as it restores it ([`Store::restore_nar`]). The
    /// item is registered only when the file's size and hash and the NAR's
    /// are the narinfo's; a changed file is named as the cause even when
    /// its NAR was refused first.
    fn import(&self, store: &mut Store, ni: &NarInfo) -> Result<(), CacheError> {
        let item = ni.store_path.basename();
        let url = self.backend.url_of(&ni.url);
        let cap = ni
            .file_size
            .unwrap_or(ni.nar_size + ni.nar_size / 8 + (1 << 20));
        let not_in_cache = || CacheError::NotInCache {
            url: self.backend.url(),
            item: item.clone(),
            item_url: url.clone(),
        };
        let expected = ExpectedItem {
            path: &ni.store_path,
            nar_sha256: ni.nar_hash,
            nar_size: ni.nar_size,
            references: &ni.references,
            deriver: None,
        };
        let restore = |store: &mut Store, input: &mut dyn std::io::Read| {
            self.restore(store, input, ni, &expected)
        };
        let (restored, file) = match self.backend.open_local(&ni.url) {
            Some(opened) => {
                let (file, path) = opened?.ok_or_else(not_in_cache)?;
                let mut file = FileHashing::new(std::io::Read::take(file, cap + 1));
                let restored = restore(store, &mut file);
                // Whatever follows the compressed stream is the file's too.
                std::io::copy(&mut file, &mut std::io::sink()).map_err(CacheError::io(&path))?;
                (restored, file.finish())
            }
            None => {
                let (tx, rx) = std::sync::mpsc::sync_channel(STREAM_CHUNKS);
                std::thread::scope(|s| {
                    let download = s.spawn(move || {
                        let mut sink = ChannelSink {
                            tx,
                            file: FileHashing::new(()),
                        };
                        let got = self.backend.download(&ni.url, cap, &mut sink);
                        (got, sink.file.finish())
                    });
                    let mut input = ChannelReader::new(rx);
                    let restored = loop {
                        let r = restore(store, &mut input);
                        // The server started over (it ignored a Range):
                        // restore again from its first byte.
                        if !input.take_restart() {
                            break r;
                        }
                    };
                    // The rest, so the download ends and its hash is whole.
                    input.drain();
                    let (got, file) = download.join().expect("the NAR download thread");
                    got?.ok_or_else(not_in_cache)?;
                    Ok::<_, CacheError>((restored, file))
                })?
            }
        };
        let mismatch = |what: &'static str, expected: String, found: String| CacheError::Mismatch {
            url: url.clone(),
            item: item.clone(),
            what,
            expected,
            found,
        };
        let (sha, len) = file;
        if let Some(size) = ni.file_size {
            if len != size {
                let found = if len > size {
                    format!("more than {size}")
                } else {
                    len.to_string()
                };
                return Err(mismatch("the file size", size.to_string(), found));
            }
        }
        if let Some(h) = &ni.file_hash {
            if *h != sha {
                return Err(mismatch(
                    "the file hash",
                    envbuild_store::narinfo::render_hash(h),
                    envbuild_store::narinfo::render_hash(&sha),
                ));
            }
        }
        store.commit_restored(restored?)?;
        Ok(())
    }

    /// Decompress `input` (the narinfo's `Compression`) into
    /// [`Store::restore_nar`].
    fn restore(
        &self,
        store: &mut Store,
        input: &mut dyn std::io::Read,
        ni: &NarInfo,
        expected: &ExpectedItem<'_>,
    ) -> Result<RestoredNar, CacheError> {
        let url = || self.backend.url_of(&ni.url);
        let item = || ni.store_path.basename();
        let f = std::io::BufReader::with_capacity(1 << 20, input);
        let reader: Box<dyn std::io::Read + '_> = match ni.compression.as_str() {
            "zstd" => Box::new(
                zstd::Decoder::with_buffer(f).map_err(|e| CacheError::Import {
                    url: url(),
                    item: item(),
                    source: Box::new(StoreError::Io {
                        path: ni.url.clone().into(),
                        source: e,
                    }),
                })?,
            ),
            "xz" => Box::new(liblzma::read::XzDecoder::new(f)),
            "bzip2" => Box::new(bzip2::read::BzDecoder::new(f)),
            "none" => Box::new(f),
            other => {
                return Err(CacheError::Compression {
                    url: url(),
                    item: item(),
                    found: other.to_string(),
                })
            }
        };
        match store.restore_nar(reader, expected) {
            Ok(r) => Ok(r),
            // The local store failing is not the cache's fault.
            Err(e @ (StoreError::Database { .. } | StoreError::Lock { .. })) => Err(e.into()),
            Err(source) => Err(CacheError::Import {
                url: url(),
                item: item(),
                source: Box::new(source),
            }),
        }
    }
}

/// Chunks of a download in flight to the NAR reader (each as long as the
/// network client reads at once, 256 KiB: 4 MiB at most in memory).
const STREAM_CHUNKS: usize = 16;

/// A NAR file's bytes on their way to the decompressor: hashed (sha256)
/// and counted.
struct FileHashing<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R> FileHashing<R> {
    fn new(inner: R) -> Self {
        FileHashing {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// The sha256 and length of everything that went by.
    fn finish(self) -> ([u8; 32], u64) {
        (self.hasher.finalize().into(), self.len)
    }
}

impl<R: std::io::Read> std::io::Read for FileHashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.update(&buf[..n]);
        Ok(n)
    }
}

/// What the download thread sends the NAR reader.
enum Chunk {
    Bytes(Vec<u8>),
    /// The server started over from byte 0.
    Restart,
}

/// The download's end of the stream: hashes what it passes on.
struct ChannelSink {
    tx: std::sync::mpsc::SyncSender<Chunk>,
    file: FileHashing<()>,
}

impl crate::net::Sink for ChannelSink {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.update(bytes);
        self.tx
            .send(Chunk::Bytes(bytes.to_vec()))
            .map_err(|_| std::io::Error::other("the NAR reader stopped"))
    }

    fn restart(&mut self) -> std::io::Result<()> {
        self.file = FileHashing::new(());
        self.tx
            .send(Chunk::Restart)
            .map_err(|_| std::io::Error::other("the NAR reader stopped"))
    }
}

/// The NAR reader's end: the download's bytes in order; the end of input
/// when the download is over (whole or not: a short NAR is refused by the
/// reader, and the download's own error is the one told).
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<Chunk>,
    chunk: Vec<u8>,
    at: usize,
    restarted: bool,
}

impl ChannelReader {
    fn new(rx: std::sync::mpsc::Receiver<Chunk>) -> Self {
        ChannelReader {
            rx,
            chunk: Vec::new(),
            at: 0,
            restarted: false,
        }
    }

    /// Whether the server started over since this was last asked.
    fn take_restart(&mut self) -> bool {
        std::mem::take(&mut self.restarted)
    }

    /// Read and drop everything until the download ends.
    fn drain(&mut self) {
        while self.rx.recv().is_ok() {}
    }
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.recv() {
                Ok(Chunk::Bytes(b)) => {
                    self.chunk = b;
                    self.at = 0;
                }
                Ok(Chunk::Restart) => {
                    self.restarted = true;
                    return Err(std::io::Error::other(
                        "the server started the transfer over",
                    ));
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
