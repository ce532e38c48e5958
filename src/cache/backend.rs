//! Where a binary cache's files are: a directory (`file:///DIR`), an HTTP
//! server (`http(s)://HOST/PATH`: GET to read, HEAD to look, PUT to write)
//! or a repository of an OCI registry (`oci://HOST[:PORT]/REPO`, see
//! [`super::oci`]). Every HTTP request goes through [`crate::net::Client`]
//! and its policy; every read is capped (a document at the caller's limit,
//! a NAR file at the size its narinfo gives), from a directory as from a
//! server. What is read is verified by the caller ([`super::substitute`]),
//! the same way whatever the backend.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::CacheError;
use crate::net::{self, Body, Client, Download, HeaderMap, Method, Sink};

/// One binary cache's location.
pub enum Backend {
    File(PathBuf),
    Http { base: String, client: Client },
    Oci(Box<super::oci::OciCache>),
}

impl Backend {
    /// `file:///DIR` (absolute), `http://…`, `https://…` or
    /// `oci://HOST[:PORT]/REPO`.
    pub fn open(url: &str) -> Result<Backend, CacheError> {
        let bad = || CacheError::BadUrl {
            url: net::redact(url),
        };
        if let Some(dir) = url.strip_prefix("file://") {
            if !dir.starts_with('/') {
                return Err(bad());
            }
            return Ok(Backend::File(PathBuf::from(dir.trim_end_matches('/'))));
        }
        if let Some(rest) = url.strip_prefix("oci://") {
            return Ok(Backend::Oci(Box::new(super::oci::OciCache::open(
                url, rest,
            )?)));
        }
        if url.starts_with("http://") || url.starts_with("https://") {
            let client = Client::from_env().map_err(|source| CacheError::Net {
                url: net::redact(url),
                source,
            })?;
            return Ok(Backend::Http {
                base: url.trim_end_matches('/').to_string(),
                client,
            });
        }
        Err(bad())
    }

    /// Whether reading needs the network (`--offline` uses only file://).
    pub fn is_remote(&self) -> bool {
        matches!(self, Backend::Http { .. } | Backend::Oci(_))
    }

    /// The cache's URL, credentials removed.
    pub fn url(&self) -> String {
        match self {
            Backend::File(d) => format!("file://{}", d.display()),
            Backend::Http { base, .. } => net::redact(base),
            Backend::Oci(o) => o.url().to_string(),
        }
    }

    /// The URL of a file of the cache, credentials removed (for messages).
    pub fn url_of(&self, rel: &str) -> String {
        match self {
            Backend::Oci(o) => o.url_of(rel),
            _ => format!("{}/{rel}", self.url()),
        }
    }

    fn http_url(base: &str, rel: &str) -> String {
        format!("{base}/{rel}")
    }

    fn net_err(&self, rel: &str) -> impl FnOnce(net::NetError) -> CacheError + '_ {
        let url = self.url_of(rel);
        move |source| CacheError::Net { url, source }
    }

    /// A small file (narinfo, realisation, nix-cache-info), or `None` when
    /// the cache does not have it; refused past `limit` bytes.
    pub fn get(
        &self,
        rel: &str,
        limit: u64,
        what: &'static str,
    ) -> Result<Option<Vec<u8>>, CacheError> {
        match self {
            Backend::File(dir) => {
                let path = dir.join(rel);
                let file = match fs::File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(CacheError::io(&path)(e)),
                };
                let mut body = Vec::new();
                file.take(limit + 1)
                    .read_to_end(&mut body)
                    .map_err(CacheError::io(&path))?;
                if body.len() as u64 > limit {
                    return Err(CacheError::TooLarge {
                        url: self.url_of(rel),
                        what,
                        size: body.len() as u64,
                        limit,
                    });
                }
                Ok(Some(body))
            }
            Backend::Http { base, client } => {
                match client.get(&Self::http_url(base, rel), None, Some(limit)) {
                    Ok(doc) => Ok(Some(doc.body)),
                    Err(e) if matches!(e.last().status(), Some(404 | 410)) => Ok(None),
                    Err(e) => Err(self.net_err(rel)(e)),
                }
            }
            Backend::Oci(o) => o.get(rel, limit, what),
        }
    }

    /// A file:// cache's file `rel` (a NAR file), opened where it is
    /// (nothing copied): `Some(Ok(None))` when the cache lacks it; `None`
    /// for a cache reached over the network (see [`Backend::download`]).
    pub fn open_local(&self, rel: &str) -> Option<Result<Option<(fs::File, PathBuf)>, CacheError>> {
        let Backend::File(dir) = self else {
            return None;
        };
        let path = dir.join(rel);
        Some(match fs::File::open(&path) {
            Ok(f) => Ok(Some((f, path))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CacheError::io(&path)(e)),
        })
    }

    /// Download the file `rel` (a NAR file) of an HTTP or registry cache,
    /// at most `size` bytes, into `sink` (a cut transfer resumes where it
    /// stopped; a server that starts over calls [`Sink::restart`]); its
    /// length, or `None` when the cache lacks it. A file:// cache's files
    /// are read with [`Backend::open_local`].
    pub fn download(
        &self,
        rel: &str,
        size: u64,
        sink: &mut dyn Sink,
    ) -> Result<Option<u64>, CacheError> {
        match self {
            Backend::File(_) => {
                let opened = self
                    .open_local(rel)
                    .expect("a file:// cache opens locally")?;
                let Some((file, path)) = opened else {
                    return Ok(None);
                };
                let mut file = file.take(size + 1);
                let mut buf = vec![0u8; 256 * 1024];
                let mut len = 0u64;
                loop {
                    let n = file.read(&mut buf).map_err(CacheError::io(&path))?;
                    if n == 0 {
                        return Ok(Some(len));
                    }
                    sink.append(&buf[..n]).map_err(CacheError::io(&path))?;
                    len += n as u64;
                }
            }
            Backend::Http { base, client } => {
                let opts = Download {
                    size: Some(size),
                    progress: None,
                    headers: None,
                };
                match client.download(&Self::http_url(base, rel), sink, &opts) {
                    Ok(n) => Ok(Some(n)),
                    Err(e) if matches!(e.last().status(), Some(404 | 410)) => Ok(None),
                    Err(e) => Err(self.net_err(rel)(e)),
                }
            }
            Backend::Oci(o) => o.download(rel, size, sink),
        }
    }

    /// Whether the cache has the file `rel`.
    pub fn exists(&self, rel: &str) -> Result<bool, CacheError> {
        match self {
            Backend::File(dir) => Ok(dir.join(rel).exists()),
            Backend::Http { base, client } => {
                let a = client
                    .request(
                        Method::HEAD,
                        &Self::http_url(base, rel),
                        &HeaderMap::new(),
                        Body::Empty,
                        0,
                    )
                    .map_err(self.net_err(rel))?;
                match a.status {
                    200..=299 => Ok(true),
                    404 | 410 => Ok(false),
                    s => Err(CacheError::Status {
                        url: self.url_of(rel),
                        method: "HEAD",
                        status: s,
                        expected: "2xx or 404",
                    }),
                }
            }
            Backend::Oci(o) => o.exists(rel),
        }
    }

    /// Write the file `rel`: from memory, or (`from`) a file streamed.
    /// In a directory, written beside and renamed into place, so a reader
    /// never sees half a file.
    pub fn put(
        &self,
        rel: &str,
        bytes: Option<&[u8]>,
        from: Option<&Path>,
    ) -> Result<(), CacheError> {
        match self {
            Backend::File(dir) => {
                let path = dir.join(rel);
                let parent = path.parent().unwrap_or(dir);
                fs::create_dir_all(parent).map_err(CacheError::io(parent))?;
                let mut tmp = tempfile::Builder::new()
                    .prefix(".envbuild-put-")
                    .tempfile_in(parent)
                    .map_err(CacheError::io(parent))?;
                match (bytes, from) {
                    (Some(b), _) => tmp.write_all(b).map_err(CacheError::io(&path))?,
                    (None, Some(f)) => {
                        let mut src = fs::File::open(f).map_err(CacheError::io(f))?;
                        std::io::copy(&mut src, &mut tmp).map_err(CacheError::io(&path))?;
                    }
                    (None, None) => {}
                }
                tmp.as_file().sync_all().map_err(CacheError::io(&path))?;
                // Readable by whoever serves the directory (a temp file is 0600).
                {
                    use std::os::unix::fs::PermissionsExt;
                    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o644))
                        .map_err(CacheError::io(&path))?;
                }
                tmp.persist(&path)
                    .map_err(|e| CacheError::io(&path)(e.error))?;
                Ok(())
            }
            Backend::Http { base, client } => {
                let body = match (bytes, from) {
                    (Some(b), _) => Body::Bytes(b),
                    (None, Some(f)) => Body::File(f),
                    (None, None) => Body::Empty,
                };
                let a = client
                    .request(
                        Method::PUT,
                        &Self::http_url(base, rel),
                        &HeaderMap::new(),
                        body,
                        64 * 1024,
                    )
                    .map_err(self.net_err(rel))?;
                if !(200..=299).contains(&a.status) {
                    return Err(CacheError::Status {
                        url: self.url_of(rel),
                        method: "PUT",
                        status: a.status,
                        expected: "2xx",
                    });
                }
                Ok(())
            }
            Backend::Oci(o) => o.put(rel, bytes, from),
        }
    }
}
