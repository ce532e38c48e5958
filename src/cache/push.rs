//! `envbuild cache push`: a closure's items, in Nix's binary-cache layout,
//! and the realisations that name them, signed.
//!
//! ```text
//! DEST/nix-cache-info                    StoreDir: /nix/store
//! DEST/<digest>.narinfo                  one per item, signed (Sig:), CA: fixed:r:sha256:…
//! DEST/nar/<file sha256, nix-base32>.nar.zst   (or .nar.xz, .nar)
//! DEST/realisations/<key>!out.json       see super::realisation
//! ```
//!
//! Items go in reference order (an item's references before it) and each
//! narinfo after its NAR, so a reader never finds a narinfo whose NAR or
//! references are not there yet. An item whose narinfo the cache has is
//! skipped, as is a realisation file the cache has.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use envbuild_store::nar::writer::HashingWriter;
use envbuild_store::narinfo::{self, NarInfo};
use envbuild_store::signing::SecretKey;
use envbuild_store::{nar, nixbase32, Store, StorePath};
use sha2::{Digest, Sha256};

use super::realisation::{self, Realisation};
use super::{Backend, CacheError};

/// How NAR files are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Zstd,
    Xz,
    None,
}

impl Compression {
    /// The narinfo's `Compression:` value.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Xz => "xz",
            Compression::None => "none",
        }
    }
    fn extension(self) -> &'static str {
        match self {
            Compression::Zstd => ".nar.zst",
            Compression::Xz => ".nar.xz",
            Compression::None => ".nar",
        }
    }
}

/// What a push did.
#[derive(Debug, Default, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushReport {
    /// Items written (basenames).
    pub pushed: Vec<String>,
    /// Items the cache had.
    pub skipped: Vec<String>,
    pub realisations_pushed: usize,
    pub realisations_skipped: usize,
    /// NAR bytes of the items written, and the bytes of their files.
    pub nar_bytes: u64,
    pub file_bytes: u64,
}

const CACHE_INFO: &str = "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n";

/// A writer that hashes and counts what passes through it on its way to `inner`.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The NAR both hashed and compressed.
struct Tee<'a> {
    nar: &'a mut HashingWriter,
    out: &'a mut dyn Write,
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write_all(buf)?;
        self.nar.write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// `paths` in reference order: every item after the items it refers to.
fn reference_order(
    store: &Store,
    paths: &[StorePath],
) -> Result<Vec<(StorePath, envbuild_store::PathInfo)>, CacheError> {
    let mut infos = BTreeMap::new();
    for p in paths {
        infos.insert(p.clone(), store.path_info(p)?);
    }
    let mut done: BTreeSet<StorePath> = BTreeSet::new();
    let mut out = Vec::with_capacity(paths.len());
    while out.len() < infos.len() {
        let before = out.len();
        for (p, info) in &infos {
            if done.contains(p) {
                continue;
            }
            if info
                .references
                .iter()
                .all(|r| r == p || done.contains(r) || !infos.contains_key(r))
            {
                done.insert(p.clone());
                out.push((p.clone(), info.clone()));
            }
        }
        if out.len() == before {
            // A cycle (a store never has one): push the rest as they are.
            for (p, info) in &infos {
                if done.insert(p.clone()) {
                    out.push((p.clone(), info.clone()));
                }
            }
        }
    }
    Ok(out)
}

/// Push the closure of `items` and the realisations naming its items.
pub fn push(
    store: &mut Store,
    dest: &Backend,
    items: &[StorePath],
    key: &SecretKey,
    compression: Compression,
    mut progress: impl FnMut(&str, &StorePath),
) -> Result<PushReport, CacheError> {
    let closure = store.closure(items)?;
    let mut report = PushReport::default();
    if !dest.exists("nix-cache-info")? {
        dest.put("nix-cache-info", Some(CACHE_INFO.as_bytes()), None)?;
    }
    for (path, info) in reference_order(store, &closure)? {
        let narinfo_name = format!("{}.narinfo", nixbase32::encode(path.digest()));
        if dest.exists(&narinfo_name)? {
            progress("present", &path);
            report.skipped.push(path.basename());
            continue;
        }
        let scratch = store.scratch("cache-push")?;
        let file = scratch.path().join("nar");
        let physical = store.physical_path(&path);
        let out = std::fs::File::create(&file).map_err(CacheError::io(&file))?;
        let mut hashed = Hashing {
            inner: std::io::BufWriter::with_capacity(1 << 20, out),
            hasher: Sha256::new(),
            len: 0,
        };
        let mut nar_hasher = HashingWriter::new();
        let io_err = CacheError::io(&file);
        // The NAR goes to its hasher and, compressed, to the file.
        let mut dump = |out: &mut dyn Write| {
            nar::dump(
                &physical,
                &mut Tee {
                    nar: &mut nar_hasher,
                    out,
                },
            )
            .map_err(envbuild_store::StoreError::from)
        };
        match compression {
            Compression::Zstd => {
                let mut enc = zstd::Encoder::new(&mut hashed, 3).map_err(CacheError::io(&file))?;
                dump(&mut enc)?;
                enc.finish().map_err(CacheError::io(&file))?;
            }
            Compression::Xz => {
                let mut enc = liblzma::write::XzEncoder::new(&mut hashed, 6);
                dump(&mut enc)?;
                enc.finish().map_err(CacheError::io(&file))?;
            }
            Compression::None => dump(&mut hashed)?,
        }
        hashed.flush().map_err(io_err)?;
        let file_hash: [u8; 32] = hashed.hasher.finalize().into();
        let file_size = hashed.len;
        let nar = nar_hasher.finish();
        let registered = narinfo::parse_hash("NarHash", &info.nar_hash).map_err(|source| {
            CacheError::NarInfo {
                url: store.root().display().to_string(),
                source,
            }
        })?;
        if nar.sha256 != registered || nar.size != info.nar_size {
            // A damaged item is never published; `store verify` names it.
            return Err(CacheError::Mismatch {
                url: store.root().display().to_string(),
                item: path.basename(),
                what: "the NAR hash of the item on disk",
                expected: info.nar_hash.clone(),
                found: format!("sha256:{}", nar.to_nix_base32()),
            });
        }
        let url = format!(
            "nar/{}{}",
            nixbase32::encode(&file_hash),
            compression.extension()
        );
        if !dest.exists(&url)? {
            dest.put(&url, None, Some(&file))?;
        }
        let mut ni = NarInfo {
            store_path: path.clone(),
            url,
            compression: compression.name().to_string(),
            file_hash: Some(file_hash),
            file_size: Some(file_size),
            nar_hash: nar.sha256,
            nar_size: nar.size,
            references: info.references.clone(),
            deriver: None,
            sigs: Vec::new(),
            ca: info.ca.clone(),
        };
        ni.references.sort_by_key(|r| r.basename());
        ni.sigs.push(key.sign(ni.fingerprint().as_bytes()));
        dest.put(&narinfo_name, Some(ni.render().as_bytes()), None)?;
        drop(scratch);
        progress("pushed", &path);
        report.pushed.push(path.basename());
        report.nar_bytes += nar.size;
        report.file_bytes += file_size;
    }
    for (drv, output, path) in store.realisations_of(&closure)? {
        if !realisation::valid_key(&drv) {
            continue;
        }
        let name = realisation::file_name(&drv, &output);
        if dest.exists(&name)? {
            report.realisations_skipped += 1;
            continue;
        }
        let r = Realisation::signed(&drv, &output, &path, key);
        dest.put(&name, Some(r.to_json().as_bytes()), None)?;
        report.realisations_pushed += 1;
    }
    Ok(report)
}
