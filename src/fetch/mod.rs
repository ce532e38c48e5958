//! Fixed-output fetches: a URL and the sha256 its bytes must have.
//!
//! The download streams into a scratch file inside the store while it is
//! hashed; a dropped connection is resumed with an HTTP `Range` request, and
//! transient failures (connection errors, 5xx, 429) are retried with
//! exponential backoff. Nothing enters the store unless the whole file's
//! sha256 matches. A fetched file becomes a store item (a single file named
//! after the URL's file name) and a realisation `fetch:sha256:<hex>` maps the
//! hash to it, so a pinned file is downloaded once per store.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use envbuild_store::{Store, StoreError, StorePath};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("fetching {url}: the server answered {status} (expected 200 or 206)")]
    Status { url: String, status: u16 },
    #[error("fetching {url}: {message}")]
    Network { url: String, message: String },
    #[error("fetching {url}: the server sent {found} bytes, expected {expected}")]
    Truncated {
        url: String,
        expected: u64,
        found: u64,
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
            url: url.to_string(),
        });
    }
    let scratch = store.scratch(name)?;
    let dest = scratch.path().join(name);
    let (found, size) = if let Some(local) = url.strip_prefix("file://") {
        copy_local(url, Path::new(local), &dest)?
    } else {
        download(url, &dest, opts)?
    };
    if found != sha256 {
        return Err(FetchError::HashMismatch {
            url: url.to_string(),
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
        url: url.to_string(),
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

enum Attempt {
    Done,
    /// Worth retrying (after backoff), keeping what was written.
    Retry(FetchError),
}

fn download(url: &str, dest: &Path, opts: &FetchOptions) -> Result<(String, u64), FetchError> {
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(20))
        .timeout(None)
        .user_agent(concat!("envbuild/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| FetchError::Network {
            url: url.to_string(),
            message: e.to_string(),
        })?;
    let mut out = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(dest)
        .map_err(io_err(url, "creating", dest))?;
    let mut hasher = Sha256::new();
    let mut written: u64 = 0;
    let mut expected_total: Option<u64> = None;
    let bar = if opts.progress {
        let pb = indicatif::ProgressBar::new(0);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} {bytes}/{total_bytes} {bytes_per_sec} [{bar:30}]",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        pb.set_message(url.rsplit('/').next().unwrap_or(url).to_string());
        pb
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut backoff = opts.first_backoff;
    let mut last_error = None;
    for attempt in 0..opts.attempts.max(1) {
        if attempt > 0 {
            std::thread::sleep(backoff);
            backoff *= 2;
        }
        match one_attempt(
            &client,
            url,
            &mut out,
            dest,
            &mut hasher,
            &mut written,
            &mut expected_total,
            &bar,
        )? {
            Attempt::Done => {
                bar.finish_and_clear();
                out.sync_all().map_err(io_err(url, "writing", dest))?;
                return Ok((hex::encode(hasher.finalize()), written));
            }
            Attempt::Retry(e) => last_error = Some(e),
        }
    }
    bar.finish_and_clear();
    Err(last_error.unwrap_or_else(|| FetchError::Network {
        url: url.to_string(),
        message: "no attempt was made".into(),
    }))
}

#[allow(clippy::too_many_arguments)]
fn one_attempt(
    client: &reqwest::blocking::Client,
    url: &str,
    out: &mut File,
    dest: &Path,
    hasher: &mut Sha256,
    written: &mut u64,
    expected_total: &mut Option<u64>,
    bar: &indicatif::ProgressBar,
) -> Result<Attempt, FetchError> {
    let mut req = client.get(url);
    if *written > 0 {
        req = req.header(reqwest::header::RANGE, format!("bytes={written}-"));
    }
    let mut resp = match req.send() {
        Ok(r) => r,
        Err(e) => {
            return Ok(Attempt::Retry(FetchError::Network {
                url: url.to_string(),
                message: format!("{e} (is the server reachable? index and mirror locations come from your configuration)"),
            }))
        }
    };
    let status = resp.status().as_u16();
    match status {
        200 => {
            if *written > 0 {
                // The server ignored Range: start over.
                use std::io::Seek;
                out.set_len(0).map_err(io_err(url, "writing", dest))?;
                out.seek(std::io::SeekFrom::Start(0))
                    .map_err(io_err(url, "writing", dest))?;
                *hasher = Sha256::new();
                *written = 0;
            }
            *expected_total = resp.content_length();
        }
        206 => {
            if expected_total.is_none() {
                *expected_total = resp.content_length().map(|l| l + *written);
            }
        }
        429 | 500..=599 => {
            return Ok(Attempt::Retry(FetchError::Status {
                url: url.to_string(),
                status,
            }))
        }
        _ => {
            return Err(FetchError::Status {
                url: url.to_string(),
                status,
            })
        }
    }
    if let Some(t) = *expected_total {
        bar.set_length(t);
    }
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match resp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                return Ok(Attempt::Retry(FetchError::Network {
                    url: url.to_string(),
                    message: match *expected_total {
                        Some(t) => format!("connection lost after {written} of {t} bytes: {e}"),
                        None => format!("connection lost after {written} bytes: {e}"),
                    },
                }))
            }
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(io_err(url, "writing", dest))?;
        *written += n as u64;
        bar.set_position(*written);
    }
    match *expected_total {
        Some(t) if *written < t => Ok(Attempt::Retry(FetchError::Truncated {
            url: url.to_string(),
            expected: t,
            found: *written,
        })),
        _ => Ok(Attempt::Done),
    }
}
