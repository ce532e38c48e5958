//! Fixed-output fetches: a URL and the sha256 its bytes must have.
//!
//! The download streams into a scratch file inside the store while it is
//! hashed, through [`crate::net`] (its policy: stall timeout, bounded
//! retries with backoff, Range resume, a body refused as soon as it passes
//! the pinned size). Nothing enters the store unless the whole file's
//! sha256 matches; a failed download leaves only its scratch directory,
//! which is removed. A fetched file becomes a store item (a single file named
//! after the URL's file name) and a realisation `fetch:sha256:<hex>` maps the
//! hash to it, so a pinned file is downloaded once per store.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use envbuild_store::{Store, StoreError, StorePath};
use sha2::{Digest, Sha256};

use crate::net;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The download failed (the source names the URL, redacted).
    #[error("downloading {file}")]
    Net {
        file: String,
        #[source]
        source: net::NetError,
    },
    #[error("fetching {url}: sha256 mismatch: expected {expected}, got {found} ({size} bytes); nothing was added to the store")]
    HashMismatch {
        url: String,
        expected: String,
        found: String,
        size: u64,
    },
    #[error("fetching {url}: {what} {path}: {source}")]
    Io {
        url: String,
        what: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{url} is not in the store and --offline forbids downloading it")]
    Offline { url: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A registry request around a blob download (authentication, a
    /// missing blob).
    #[error(transparent)]
    Registry(Box<crate::registry::RegistryError>),
}

/// A fetched, verified file in the store.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub item: StorePath,
    pub size: u64,
    /// False when the store already had it.
    pub downloaded: bool,
}

/// How hard to try.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub attempts: u32,
    pub first_backoff: Duration,
    pub offline: bool,
    pub progress: bool,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            attempts: 5,
            first_backoff: Duration::from_millis(250),
            offline: false,
            progress: false,
        }
    }
}

fn realisation_key(sha256: &str) -> String {
    format!("fetch:sha256:{sha256}")
}

/// Fetch `url` (which must hash to `sha256`, hex) into the store as `name`.
pub fn fetch(
    store: &mut Store,
    url: &str,
    sha256: &str,
    name: &str,
    opts: &FetchOptions,
) -> Result<Fetched, FetchError> {
    fetch_sized(store, url, sha256, None, name, opts)
}

/// [`fetch`] with the pinned size, when known: a body announced or sent
/// longer is refused as soon as it passes it.
pub fn fetch_sized(
    store: &mut Store,
    url: &str,
    sha256: &str,
    size: Option<u64>,
    name: &str,
    opts: &FetchOptions,
) -> Result<Fetched, FetchError> {
    // fetch_with looks the pin up in the store and honours --offline first.
    fetch_with(store, sha256, size, name, url, opts, |dest, shown| {
        if let Some(local) = url.strip_prefix("file://") {
            copy_local(url, Path::new(local), dest)
        } else {
            download(url, dest, size, opts, None, shown)
        }
    })
}

/// The fixed-output fetch of [`fetch_sized`] with the bytes written by
/// `write` (into the scratch file it is given; it returns the sha256 and
/// size of what it wrote): the store item and realisation are made only
/// when the sha256 is the pinned one. `shown` names the source in
/// messages (a URL, redacted here).
pub fn fetch_with(
    store: &mut Store,
    sha256: &str,
    size: Option<u64>,
    name: &str,
    shown: &str,
    opts: &FetchOptions,
    write: impl FnOnce(&Path, Option<&crate::progress::Download>) -> Result<(String, u64), FetchError>,
) -> Result<Fetched, FetchError> {
    let key = realisation_key(sha256);
    if let Some(item) = store.realisation(&key, "out")? {
        let size = store.path_info(&item)?.nar_size;
        let size = std::fs::metadata(store.physical_path(&item))
            .map(|m| m.len())
            .unwrap_or(size);
        return Ok(Fetched {
            item,
            size,
            downloaded: false,
        });
    }
    if opts.offline {
        return Err(FetchError::Offline {
            url: net::redact(shown),
        });
    }
    let scratch = store.scratch(name)?;
    let dest = scratch.path().join(name);
    let bar = opts
        .progress
        .then(|| crate::progress::download(file_name(shown), size));
    let (found, size) = write(&dest, bar.as_ref())?;
    if let Some(d) = bar {
        d.done(size);
    }
    if found != sha256 {
        return Err(FetchError::HashMismatch {
            url: net::redact(shown),
            expected: sha256.to_string(),
            found,
            size,
        });
    }
    // The download is ours alone: moved into the store, not copied.
    let added = store.add_scratch_output(&dest, name, &[], None)?;
    store.add_realisation(&key, "out", &added.path)?;
    Ok(Fetched {
        item: added.path,
        size,
        downloaded: true,
    })
}

fn io_err<'a>(
    url: &'a str,
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> FetchError + 'a {
    move |source| FetchError::Io {
        url: net::redact(url),
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn copy_local(url: &str, src: &Path, dest: &Path) -> Result<(String, u64), FetchError> {
    let mut input = File::open(src).map_err(io_err(url, "reading", src))?;
    let mut out = File::create(dest).map_err(io_err(url, "creating", dest))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = input.read(&mut buf).map_err(io_err(url, "reading", src))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(io_err(url, "writing", dest))?;
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Download `url` into `dest` (hashed on the way), sending `headers`.
pub fn download(
    url: &str,
    dest: &Path,
    size: Option<u64>,
    opts: &FetchOptions,
    headers: Option<&net::HeaderMap>,
    shown: Option<&crate::progress::Download>,
) -> Result<(String, u64), FetchError> {
    let mut policy = net::Policy::from_env().map_err(|e| net_err(url, e))?;
    policy.attempts = opts.attempts;
    policy.first_backoff = opts.first_backoff;
    let client = net::Client::with_policy(policy).map_err(|e| net_err(url, e))?;
    let mut out = net::HashingFile::create(dest).map_err(io_err(url, "creating", dest))?;
    let progress = |done: u64, total: Option<u64>| {
        if let Some(d) = shown {
            d.set(done, total);
        }
    };
    let result = client.download(
        url,
        &mut out,
        &net::Download {
            size,
            progress: Some(&progress),
            headers,
        },
    );
    result.map_err(|e| net_err(url, e))?;
    let (sha256, len, _) = out.finish().map_err(io_err(url, "writing", dest))?;
    Ok((sha256, len))
}

/// The last path segment of `url`, without query or fragment.
fn file_name(url: &str) -> &str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or(path)
}

fn net_err(url: &str, source: net::NetError) -> FetchError {
    FetchError::Net {
        file: file_name(url).to_string(),
        source,
    }
}
