//! The one HTTP client. Every network read of envbuild goes through
//! [`Client`], which is the only place a reqwest client is built, so every
//! read is bounded in time and in size by one policy:
//!
//! - **Time.** A connection must be made within the connect timeout
//!   (`ENVBUILD_NET_CONNECT_TIMEOUT`, seconds, default 20), and once asked,
//!   the server must send a byte at least every stall timeout
//!   (`ENVBUILD_NET_STALL_TIMEOUT`, default 30): before the headers and
//!   between any two reads of the body. A slow but moving download is never
//!   cut; a silent one is.
//! - **Retries.** Connection errors, stalls, broken bodies, 5xx and 429 are
//!   retried, at most [`Policy::attempts`] times (5) with exponential
//!   backoff from 250 ms, and no new attempt starts once
//!   `ENVBUILD_NET_RETRY_TIME` seconds (default 300) have passed since the
//!   first. A 429's or 503's `Retry-After` (seconds) is honoured, capped at
//!   60 s. Other statuses, redirect loops (more than 10 redirects), a wrong
//!   range and an oversized body are final.
//! - **Resume.** A download ([`Client::download`]) that breaks is resumed
//!   with `Range: bytes=N-`. The 206's `Content-Range` must start at `N`
//!   (anything else is an error); a 200 instead restarts the download from
//!   the first byte ([`Sink::restart`]).
//! - **Size.** A download with a pinned size is refused as soon as the
//!   server announces or sends more (it is never read to the end); an
//!   index page, API answer, `InRelease` ([`Client::get`]) is refused past
//!   `ENVBUILD_NET_MAX_DOCUMENT` bytes (default 256 MiB), so an endless
//!   answer ends with an error, not with the allocator.
//! - **Encoding.** Every request asks `Accept-Encoding: identity`; a body
//!   sent with another `Content-Encoding` is refused ([`NetError::Encoding`]):
//!   hashes pin the bytes as published.
//! - **Proxies and roots.** `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and
//!   `NO_PROXY` are honoured, loopback always direct ([`proxy`]). TLS uses rustls with
//!   the platform verifier, which on Linux reads the host's CA bundle through
//!   rustls-native-certs. The certificates `SSL_CERT_FILE` and `SSL_CERT_DIR`
//!   name are trusted in addition to the host's bundle (not instead of it:
//!   a throwaway CA for one registry costs no other host); a variable that
//!   names no certificates is an error naming it.
//! - **Credentials.** No URL, header or message leaves this module without
//!   [`redact`]: user information, `Authorization` values and token-like
//!   query parameters are replaced. Callers use it for their own messages.
//! - **Uploads.** [`Client::request`] (the registry API: HEAD, POST, PUT)
//!   sends a body from memory or streams a file ([`Body::File`], opened
//!   again for each attempt, its size the `Content-Length`). reqwest bounds
//!   a request with a body as a whole, so such a request may take the stall
//!   timeout plus its body at [`MIN_UPLOAD_RATE`]. Statuses other than 429
//!   and 5xx are the caller's to judge; answers are read up to a limit.
//! - **Kept answers.** [`answers::AnswerCache`] keeps whole answers (index
//!   pages, `InRelease`) on disk with their `ETag` / `Last-Modified` and
//!   asks again with [`Client::get_conditional`]: a 304 is an answer there,
//!   not an error. Its rules are in its module doc.
//! - **Progress.** Downloads report `(bytes so far, total if known)` to one
//!   optional hook ([`Download::progress`]).

pub mod answers;
pub mod error;
mod proxy;

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use reqwest::header::{self, HeaderMap, HeaderValue};
pub use reqwest::Method;
use sha2::{Digest, Sha256};

pub use error::NetError;

/// The variable for the stall timeout (seconds).
pub const STALL_VAR: &str = "ENVBUILD_NET_STALL_TIMEOUT";
/// The variable for the connect timeout (seconds).
pub const CONNECT_VAR: &str = "ENVBUILD_NET_CONNECT_TIMEOUT";
/// The variable for the time after which no new attempt starts (seconds).
pub const RETRY_TIME_VAR: &str = "ENVBUILD_NET_RETRY_TIME";
/// The variable for the largest index page / API answer (bytes).
pub const MAX_DOCUMENT_VAR: &str = "ENVBUILD_NET_MAX_DOCUMENT";

/// How long, how often and how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub connect_timeout: Duration,
    /// The longest silence before the headers or between two body reads.
    pub stall_timeout: Duration,
    /// No new attempt starts this long after the first one started.
    pub retry_time: Duration,
    pub attempts: u32,
    pub first_backoff: Duration,
    /// The longest `Retry-After` waited for.
    pub max_retry_after: Duration,
    /// The largest document [`Client::get`] reads.
    pub max_document: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            connect_timeout: Duration::from_secs(20),
            stall_timeout: Duration::from_secs(30),
            retry_time: Duration::from_secs(300),
            attempts: 5,
            first_backoff: Duration::from_millis(250),
            max_retry_after: Duration::from_secs(60),
            max_document: 256 << 20,
        }
    }
}

impl Policy {
    /// The defaults, overridden by the `ENVBUILD_NET_*` variables.
    pub fn from_env() -> Result<Policy, NetError> {
        Policy::from_vars(|var| std::env::var_os(var).map(|v| v.to_string_lossy().into_owned()))
    }

    /// The defaults, overridden by the variables `var` gives.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Policy, NetError> {
        let mut p = Policy::default();
        let secs = |name: &'static str, into: &mut Duration| -> Result<(), NetError> {
            if let Some(v) = var(name) {
                *into = v
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
                    .map(Duration::from_secs_f64)
                    .ok_or(NetError::BadSetting {
                        var: name,
                        value: v,
                        expected: "a positive number of seconds",
                    })?;
            }
            Ok(())
        };
        secs(CONNECT_VAR, &mut p.connect_timeout)?;
        secs(STALL_VAR, &mut p.stall_timeout)?;
        secs(RETRY_TIME_VAR, &mut p.retry_time)?;
        if let Some(v) = var(MAX_DOCUMENT_VAR) {
            p.max_document =
                v.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(NetError::BadSetting {
                        var: MAX_DOCUMENT_VAR,
                        value: v,
                        expected: "a positive number of bytes",
                    })?;
        }
        Ok(p)
    }
}

/// Credentials out of a URL or a message: user information
/// (`scheme://user:password@`), `Authorization`/`Proxy-Authorization` values,
/// bearer tokens and token-like query parameters (`token`, `access_token`,
/// `key`, `password`, `signature`, cloud signed-URL parameters, ...).
pub fn redact(text: &str) -> String {
    static PATTERNS: OnceLock<[(regex::Regex, &'static str); 4]> = OnceLock::new();
    let patterns = PATTERNS.get_or_init(|| {
        let re = |s: &str| regex::Regex::new(s).expect("valid redaction pattern");
        [
            (
                re(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s@]*@"),
                "${1}<redacted>@",
            ),
            (
                re(r"(?i)\b((?:proxy-)?authorization\s*[:=]\s*)[^\r\n,;]*"),
                "${1}<redacted>",
            ),
            (
                re(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}"),
                "${1} <redacted>",
            ),
            (
                re(r"(?i)([?&;](?:[a-z0-9_.-]*token|access_token|auth|api_?key|key|password|passwd|pass|secret|sig|signature|credential|x-amz-[a-z-]+|x-goog-[a-z-]+)=)[^&#\s]*"),
                "${1}<redacted>",
            ),
        ]
    });
    let mut out = text.to_string();
    for (re, with) in patterns {
        if re.is_match(&out) {
            out = re.replace_all(&out, *with).into_owned();
        }
    }
    out
}

/// Where a download's bytes go.
pub trait Sink {
    /// Append the next bytes of the body.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Forget everything appended: the server started over from byte 0.
    fn restart(&mut self) -> io::Result<()>;
}

impl Sink for Vec<u8> {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.extend_from_slice(bytes);
        Ok(())
    }
    fn restart(&mut self) -> io::Result<()> {
        self.clear();
        Ok(())
    }
}

/// A file written and hashed (sha256) as the body arrives.
pub struct HashingFile {
    file: File,
    hasher: Sha256,
    len: u64,
}

impl HashingFile {
    /// Create (or truncate) `path`.
    pub fn create(path: &Path) -> io::Result<HashingFile> {
        Ok(HashingFile::new(File::create(path)?))
    }

    /// An empty file, e.g. an anonymous temporary one.
    pub fn new(file: File) -> HashingFile {
        HashingFile {
            file,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Sync the file; its sha256 (hex), its length and the file, positioned
    /// at its end.
    pub fn finish(self) -> io::Result<(String, u64, File)> {
        self.file.sync_all()?;
        Ok((hex::encode(self.hasher.finalize()), self.len, self.file))
    }
}

impl Sink for HashingFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }
    fn restart(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(io::SeekFrom::Start(0))?;
        self.hasher = Sha256::new();
        self.len = 0;
        Ok(())
    }
}

/// A whole response body read by [`Client::get`].
#[derive(Debug, Clone)]
pub struct Document {
    /// The URL answered after redirects (unredacted: relative links resolve
    /// against it; redact it before showing it).
    pub url: reqwest::Url,
    pub content_type: Option<String>,
    /// The answer's headers (its validators and `Cache-Control`, for a
    /// caller that keeps the body).
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// The validators of a kept answer, sent back by
/// [`Client::get_conditional`] as `If-None-Match` (the `ETag`) and
/// `If-Modified-Since` (the `Last-Modified`), so that an unchanged answer
/// costs a 304 and no body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Validators {
    /// The validators an answer carries (values that are not visible ASCII
    /// are left out).
    pub fn of(headers: &HeaderMap) -> Validators {
        let text = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        Validators {
            etag: text(header::ETAG),
            last_modified: text(header::LAST_MODIFIED),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// What an answer's `Cache-Control` (RFC 9111) lets a cache do with it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Freshness {
    /// `no-store`: not to be kept at all.
    pub no_store: bool,
    /// How long the answer stays fresh from when it was received:
    /// `max-age` (or `s-maxage`) less the `Age` it already had; 0 for
    /// `no-cache` and `must-revalidate` without a max-age; `None` when the
    /// server says nothing (revalidate every time).
    pub max_age: Option<u64>,
}

impl Freshness {
    pub fn of(headers: &HeaderMap) -> Freshness {
        let mut f = Freshness::default();
        let mut max_age = None;
        let mut no_cache = false;
        for v in headers.get_all(header::CACHE_CONTROL) {
            let Ok(v) = v.to_str() else { continue };
            for d in v.split(',') {
                let d = d.trim().to_ascii_lowercase();
                let (k, val) = match d.split_once('=') {
                    Some((k, val)) => (k.trim().to_owned(), Some(val.trim().trim_matches('"'))),
                    None => (d.clone(), None),
                };
                match (k.as_str(), val) {
                    ("no-store", _) => f.no_store = true,
                    ("no-cache", _) => no_cache = true,
                    ("max-age" | "s-maxage", Some(n)) => {
                        if let Ok(n) = n.parse::<u64>() {
                            max_age = Some(max_age.map_or(n, |m: u64| m.min(n)));
                        }
                    }
                    _ => {}
                }
            }
        }
        let age = headers
            .get(header::AGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        f.max_age = if no_cache {
            Some(0)
        } else {
            max_age.map(|m| m.saturating_sub(age))
        };
        f
    }
}

/// The answer to [`Client::get_conditional`].
#[derive(Debug, Clone)]
pub enum Conditional {
    /// 200: a new body.
    Changed(Document),
    /// 304: the kept body still holds; the answer's headers (a new
    /// `Cache-Control`, maybe new validators).
    NotModified(HeaderMap),
}

/// What a download may be and where its progress goes.
#[derive(Default, Clone, Copy)]
pub struct Download<'a> {
    /// The pinned size: a body announced or sent longer is refused.
    pub size: Option<u64>,
    /// Called with (bytes so far, total when known) as the body arrives.
    pub progress: Option<&'a dyn Fn(u64, Option<u64>)>,
    /// Sent with every attempt (a registry's `Authorization`, marked
    /// sensitive; reqwest drops it on a redirect to another host).
    pub headers: Option<&'a HeaderMap>,
}

/// The slowest average an upload may have (bytes per second) past the
/// stall timeout: reqwest bounds a request that sends a body as a whole, so
/// an upload of `len` bytes may take the stall timeout plus `len` at this
/// rate (100 KiB/s) before it is cut and retried.
pub const MIN_UPLOAD_RATE: u64 = 100 * 1024;

/// The body of a [`Client::request`].
#[derive(Clone, Copy)]
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// A whole file, streamed (not read into memory), its size the
    /// `Content-Length`; opened again for each attempt.
    File(&'a Path),
    /// `len` bytes of a file from `offset` (a chunk of an upload),
    /// streamed like [`Body::File`].
    FileRange {
        path: &'a Path,
        offset: u64,
        len: u64,
    },
}

/// The answer to a [`Client::request`]: any status but 429 and 5xx (those
/// are retried, then an error).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    /// The URL answered after redirects (unredacted: relative `Location`s
    /// resolve against it; redact it before showing it).
    pub url: reqwest::Url,
    pub body: Vec<u8>,
}

impl Answer {
    /// A header's value as text (`None` when absent or not visible ASCII).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The HTTP client (cheap to clone).
#[derive(Clone)]
pub struct Client {
    http: reqwest::blocking::Client,
    policy: Policy,
}

/// How one attempt failed.
enum Failure {
    /// Worth another attempt, after `Retry-After` when the server gave one.
    Retry(NetError, Option<Duration>),
    Fatal(NetError),
}

const BUF: usize = 256 * 1024;

impl Client {
    /// A client with the policy of the environment ([`Policy::from_env`]).
    pub fn from_env() -> Result<Client, NetError> {
        Client::with_policy(Policy::from_env()?)
    }

    /// A client with `policy`, and the proxies the environment names
    /// (see [`proxy`]).
    pub fn with_policy(policy: Policy) -> Result<Client, NetError> {
        Client::with_policy_and_variables(policy, &|name| std::env::var(name).ok())
    }

    /// [`Client::with_policy`] with the proxy variables looked up by `var`.
    pub(crate) fn with_policy_and_variables(
        policy: Policy,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Client, NetError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        // Our own reading of the proxy variables replaces reqwest's.
        let mut builder = reqwest::blocking::Client::builder().no_proxy();
        for proxy in proxy::from_variables(var)? {
            builder = builder.proxy(proxy);
        }
        let extra = extra_roots()?;
        if !extra.is_empty() {
            builder = builder.tls_certs_merge(extra);
        }
        let http = builder
            .user_agent(concat!("envbuild/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .connect_timeout(policy.connect_timeout)
            // The blocking client applies this to the wait for the headers
            // and to each read of the body: a stall timeout, not a total.
            .timeout(policy.stall_timeout)
            .redirect(reqwest::redirect::Policy::limited(10))
            .build()
            .map_err(|e| NetError::Client {
                message: redact(&reqwest_text(&e)),
            })?;
        Ok(Client { http, policy })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// GET `url` whole: a 200 answer of at most the document limit (or
    /// `limit`, when smaller).
    pub fn get(
        &self,
        url: &str,
        accept: Option<&str>,
        limit: Option<u64>,
    ) -> Result<Document, NetError> {
        match self.get_inner(url, accept, limit, None)? {
            Conditional::Changed(doc) => Ok(doc),
            // Not asked for: `get_inner` without validators takes 200 only.
            Conditional::NotModified(_) => Err(self.status(url, 304, "200")),
        }
    }

    /// [`Client::get`] of an answer kept from before: `validators` are sent
    /// (`If-None-Match`, `If-Modified-Since`) and a 304 is an answer
    /// ([`Conditional::NotModified`]), not an error. With no validators it
    /// is a plain [`Client::get`].
    pub fn get_conditional(
        &self,
        url: &str,
        accept: Option<&str>,
        limit: Option<u64>,
        validators: &Validators,
    ) -> Result<Conditional, NetError> {
        let v = (!validators.is_empty()).then_some(validators);
        self.get_inner(url, accept, limit, v)
    }

    fn get_inner(
        &self,
        url: &str,
        accept: Option<&str>,
        limit: Option<u64>,
        validators: Option<&Validators>,
    ) -> Result<Conditional, NetError> {
        let (limit, what) = match limit {
            Some(l) if l < self.policy.max_document => (l, "the size the index gives"),
            _ => (
                self.policy.max_document,
                "the limit for index pages and API answers, ENVBUILD_NET_MAX_DOCUMENT",
            ),
        };
        self.retrying(url, self.policy.attempts, || {
            let mut req = self.http.get(url);
            if let Some(a) = accept {
                req = req.header(header::ACCEPT, a);
            }
            if let Some(v) = validators {
                if let Some(etag) = &v.etag {
                    req = req.header(header::IF_NONE_MATCH, etag.as_str());
                }
                if let Some(lm) = &v.last_modified {
                    req = req.header(header::IF_MODIFIED_SINCE, lm.as_str());
                }
            }
            let mut resp = self.send(url, req)?;
            let status = resp.status().as_u16();
            if status == 304 && validators.is_some() {
                return Ok(Conditional::NotModified(resp.headers().clone()));
            }
            if status != 200 {
                let expected = if validators.is_some() {
                    "200 or 304"
                } else {
                    "200"
                };
                return Err(Failure::Fatal(self.status(url, status, expected)));
            }
            let final_url = resp.url().clone();
            let content_type = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let headers = resp.headers().clone();
            let mut body = Vec::new();
            self.read_body(url, &mut resp, 0, None, (limit, what), &mut body, None)?;
            Ok(Conditional::Changed(Document {
                url: final_url,
                content_type,
                headers,
                body,
            }))
        })
    }

    /// The `Content-Length` of `url` by a HEAD request.
    pub fn content_length(&self, url: &str) -> Result<Option<u64>, NetError> {
        self.retrying(url, self.policy.attempts, || {
            let resp = self.send(url, self.http.head(url))?;
            let status = resp.status().as_u16();
            if !resp.status().is_success() {
                return Err(Failure::Fatal(self.status(url, status, "200")));
            }
            Ok(resp.content_length())
        })
    }

    /// Bytes `start..end` of `url` by a Range request; `None` when the
    /// server ignores Range (answers 200).
    pub fn get_range(&self, url: &str, start: u64, end: u64) -> Result<Option<Vec<u8>>, NetError> {
        let want = end.saturating_sub(start);
        if want == 0 {
            return Ok(Some(Vec::new()));
        }
        self.retrying(url, self.policy.attempts, || {
            let req = self
                .http
                .get(url)
                .header(header::RANGE, format!("bytes={start}-{}", end - 1));
            let mut resp = self.send(url, req)?;
            match resp.status().as_u16() {
                206 => {}
                200 => return Ok(None),
                s => return Err(Failure::Fatal(self.status(url, s, "206"))),
            }
            let range = content_range(&resp);
            if range.as_ref().map(|r| (r.0, r.1)) != Some((start, Some(end - 1))) {
                return Err(Failure::Fatal(NetError::WrongRange {
                    url: redact(url),
                    asked: start,
                    found: content_range_text(&resp),
                }));
            }
            let mut body = Vec::with_capacity(want as usize);
            self.read_body(
                url,
                &mut resp,
                0,
                Some(want),
                (want, "the range asked"),
                &mut body,
                None,
            )?;
            if body.len() as u64 != want {
                return Err(Failure::Retry(
                    NetError::Truncated {
                        url: redact(url),
                        expected: want,
                        found: body.len() as u64,
                    },
                    None,
                ));
            }
            Ok(Some(body))
        })
    }

    /// Download `url` into `sink`, resuming broken transfers with Range.
    /// Returns the number of bytes in `sink`.
    pub fn download(
        &self,
        url: &str,
        sink: &mut dyn Sink,
        opts: &Download<'_>,
    ) -> Result<u64, NetError> {
        let mut written: u64 = 0;
        let mut total: Option<u64> = None;
        let limit = opts.size.map(|s| (s, "the pinned size"));
        self.retrying(url, self.policy.attempts, || {
            let mut req = self.http.get(url);
            if let Some(h) = opts.headers {
                req = req.headers(h.clone());
            }
            if written > 0 {
                req = req.header(header::RANGE, format!("bytes={written}-"));
            }
            let mut resp = self.send(url, req)?;
            match resp.status().as_u16() {
                200 => {
                    if written > 0 {
                        // The server ignored Range: start over.
                        sink.restart().map_err(|e| self.sink_err(url, e))?;
                        written = 0;
                    }
                    total = resp.content_length();
                }
                206 if written > 0 => match content_range(&resp) {
                    Some((first, _, whole)) if first == written => {
                        total = whole.or(resp.content_length().map(|l| l + written));
                    }
                    _ => {
                        return Err(Failure::Fatal(NetError::WrongRange {
                            url: redact(url),
                            asked: written,
                            found: content_range_text(&resp),
                        }))
                    }
                },
                s => {
                    let expected = if written > 0 { "206 or 200" } else { "200" };
                    return Err(Failure::Fatal(self.status(url, s, expected)));
                }
            }
            let cap = limit.unwrap_or((u64::MAX, "no limit"));
            self.read_body(
                url,
                &mut resp,
                written,
                total,
                cap,
                &mut AppendCounting {
                    sink: &mut *sink,
                    written: &mut written,
                },
                opts.progress,
            )?;
            match total {
                Some(t) if written < t => Err(Failure::Retry(
                    NetError::Truncated {
                        url: redact(url),
                        expected: t,
                        found: written,
                    },
                    None,
                )),
                _ => Ok(written),
            }
        })
    }

    /// One request of any method (the registry API: HEAD, POST, PUT, GET),
    /// under the same policy as every read: connect and stall timeouts
    /// (an upload's body must also move: its whole request may take the
    /// stall timeout plus its length at [`MIN_UPLOAD_RATE`]), 429/5xx and
    /// connection failures retried (a file body is opened again for each
    /// attempt), the answer's body read up to `limit` bytes (at most the
    /// document limit). Every other status is returned for the caller to
    /// judge. Header values the caller marks sensitive
    /// ([`HeaderValue::set_sensitive`]) are never shown.
    pub fn request(
        &self,
        method: Method,
        url: &str,
        headers: &HeaderMap,
        body: Body<'_>,
        limit: u64,
    ) -> Result<Answer, NetError> {
        self.request_attempts(method, url, headers, body, limit, self.policy.attempts)
    }

    /// [`Client::request`] made once: a connection failure, a stall, a 429
    /// or a 5xx is an error at once (a [`NetError::GaveUp`] after one
    /// attempt, the failure its source), for callers that must look at
    /// what the server kept before trying again (a resumable upload).
    pub fn request_once(
        &self,
        method: Method,
        url: &str,
        headers: &HeaderMap,
        body: Body<'_>,
        limit: u64,
    ) -> Result<Answer, NetError> {
        self.request_attempts(method, url, headers, body, limit, 1)
    }

    fn request_attempts(
        &self,
        method: Method,
        url: &str,
        headers: &HeaderMap,
        body: Body<'_>,
        limit: u64,
        attempts: u32,
    ) -> Result<Answer, NetError> {
        let limit = limit.min(self.policy.max_document);
        self.retrying(url, attempts, || {
            let mut req = self
                .http
                .request(method.clone(), url)
                .headers(headers.clone());
            match body {
                Body::Empty => {}
                Body::Bytes(b) => {
                    req = req
                        .timeout(self.upload_timeout(b.len() as u64))
                        .body(b.to_vec());
                }
                Body::File(path) => {
                    let file = File::open(path).map_err(|source| {
                        Failure::Fatal(NetError::Source {
                            url: redact(url),
                            path: path.to_path_buf(),
                            source,
                        })
                    })?;
                    let len = file
                        .metadata()
                        .map_err(|source| {
                            Failure::Fatal(NetError::Source {
                                url: redact(url),
                                path: path.to_path_buf(),
                                source,
                            })
                        })?
                        .len();
                    req = req
                        .timeout(self.upload_timeout(len))
                        .body(reqwest::blocking::Body::sized(file, len));
                }
                Body::FileRange { path, offset, len } => {
                    let source_err = |source| {
                        Failure::Fatal(NetError::Source {
                            url: redact(url),
                            path: path.to_path_buf(),
                            source,
                        })
                    };
                    let mut file = File::open(path).map_err(source_err)?;
                    let size = file.metadata().map_err(source_err)?.len();
                    if offset.checked_add(len).is_none_or(|end| end > size) {
                        return Err(source_err(io::Error::other(format!(
                            "bytes {offset}..{} asked of a file of {size} bytes",
                            offset.saturating_add(len)
                        ))));
                    }
                    file.seek(io::SeekFrom::Start(offset)).map_err(source_err)?;
                    req = req
                        .timeout(self.upload_timeout(len))
                        .body(reqwest::blocking::Body::sized(file.take(len), len));
                }
            }
            let mut resp = self.send(url, req)?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let final_url = resp.url().clone();
            let mut answer = Vec::new();
            if method != Method::HEAD {
                self.read_body(
                    url,
                    &mut resp,
                    0,
                    None,
                    (limit, "the limit for API answers"),
                    &mut answer,
                    None,
                )?;
            }
            Ok(Answer {
                status,
                headers,
                url: final_url,
                body: answer,
            })
        })
    }

    /// The longest a request with a body of `len` bytes may take: the stall
    /// timeout, plus the body at [`MIN_UPLOAD_RATE`].
    fn upload_timeout(&self, len: u64) -> Duration {
        self.policy.stall_timeout + Duration::from_secs(len / MIN_UPLOAD_RATE)
    }

    /// Run `attempt` until it succeeds, fails for good, or the attempts or
    /// the retry time run out.
    fn retrying<T>(
        &self,
        url: &str,
        attempts: u32,
        mut attempt: impl FnMut() -> Result<T, Failure>,
    ) -> Result<T, NetError> {
        let started = Instant::now();
        let attempts = attempts.max(1);
        let mut backoff = self.policy.first_backoff;
        let mut made = 0;
        let last = loop {
            made += 1;
            let (err, after) = match attempt() {
                Ok(v) => return Ok(v),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry(e, after)) => (e, after),
            };
            if made >= attempts {
                break err;
            }
            let wait = after
                .map(|a| a.min(self.policy.max_retry_after))
                .unwrap_or(backoff);
            if started.elapsed() + wait >= self.policy.retry_time {
                break err;
            }
            tracing::info!(
                url = %redact(url),
                attempt = made,
                attempts,
                wait_ms = wait.as_millis() as u64,
                error = %err,
                "HTTP attempt failed; retrying"
            );
            std::thread::sleep(wait);
            backoff = backoff.saturating_mul(2);
        };
        Err(NetError::GaveUp {
            url: redact(url),
            attempts: made,
            max_attempts: attempts,
            elapsed: started.elapsed(),
            retry_time: self.policy.retry_time,
            last: Box::new(last),
        })
    }

    /// Send, classifying failures; a response with a retryable status
    /// (429, 5xx) or a foreign content encoding is a failure.
    fn send(
        &self,
        url: &str,
        req: reqwest::blocking::RequestBuilder,
    ) -> Result<reqwest::blocking::Response, Failure> {
        tracing::debug!(url = %redact(url), "HTTP request");
        let resp = req.send().map_err(|e| self.request_failure(url, &e))?;
        let status = resp.status().as_u16();
        tracing::debug!(
            url = %redact(url),
            status,
            length = ?resp.content_length(),
            "HTTP response"
        );
        if status == 429 || (500..=599).contains(&status) {
            let after = resp
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Err(Failure::Retry(
                self.status(url, status, "200 (retried: the server is busy or failing)"),
                after,
            ));
        }
        if let Some(enc) = resp
            .headers()
            .get(header::CONTENT_ENCODING)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
        {
            if !enc.is_empty() && !enc.eq_ignore_ascii_case("identity") {
                return Err(Failure::Fatal(NetError::Encoding {
                    url: redact(url),
                    found: enc,
                }));
            }
        }
        Ok(resp)
    }

    fn request_failure(&self, url: &str, e: &reqwest::Error) -> Failure {
        let url_shown = redact(url);
        let message = redact(&reqwest_text(e));
        if e.is_redirect() {
            Failure::Fatal(NetError::Redirect {
                url: url_shown,
                message,
            })
        } else if e.is_builder() {
            Failure::Fatal(NetError::BadUrl {
                url: url_shown,
                message,
            })
        } else if e.is_connect() {
            Failure::Retry(
                NetError::Connect {
                    url: url_shown,
                    message,
                },
                None,
            )
        } else if e.is_timeout() {
            Failure::Retry(
                NetError::Stalled {
                    url: url_shown,
                    phase: "waiting for the answer's headers".into(),
                    stall: self.policy.stall_timeout,
                },
                None,
            )
        } else {
            Failure::Retry(
                NetError::Interrupted {
                    url: url_shown,
                    received: 0,
                    expected: None,
                    message,
                },
                None,
            )
        }
    }

    fn status(&self, url: &str, status: u16, expected: &'static str) -> NetError {
        NetError::Status {
            url: redact(url),
            status,
            expected,
        }
    }

    fn sink_err(&self, url: &str, source: io::Error) -> Failure {
        Failure::Fatal(NetError::Sink {
            url: redact(url),
            source,
        })
    }

    /// Read the body into `sink`, `before` bytes having come earlier, never
    /// past `limit` (counted from the first byte of the whole file).
    #[allow(clippy::too_many_arguments)]
    fn read_body(
        &self,
        url: &str,
        resp: &mut reqwest::blocking::Response,
        before: u64,
        total: Option<u64>,
        (limit, what): (u64, &'static str),
        sink: &mut dyn Sink,
        progress: Option<&dyn Fn(u64, Option<u64>)>,
    ) -> Result<(), Failure> {
        let too_large = |found: u64| {
            Failure::Fatal(NetError::TooLarge {
                url: redact(url),
                limit,
                what,
                found,
            })
        };
        if let Some(t) = total.or(resp.content_length().map(|l| l + before)) {
            if t > limit {
                return Err(too_large(t));
            }
        }
        let mut got = before;
        if let Some(p) = progress {
            p(got, total);
        }
        let mut buf = vec![0u8; BUF];
        loop {
            let n = match resp.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.read_failure(url, &e, got, total)),
            };
            if got + n as u64 > limit {
                return Err(too_large(got + n as u64));
            }
            sink.append(&buf[..n]).map_err(|e| self.sink_err(url, e))?;
            got += n as u64;
            if let Some(p) = progress {
                p(got, total);
            }
        }
    }

    fn read_failure(&self, url: &str, e: &io::Error, received: u64, total: Option<u64>) -> Failure {
        let timed_out = e.kind() == io::ErrorKind::TimedOut
            || e.get_ref()
                .and_then(|i| i.downcast_ref::<reqwest::Error>())
                .is_some_and(reqwest::Error::is_timeout);
        let err = if timed_out {
            NetError::Stalled {
                url: redact(url),
                phase: format!("reading the body after {received} bytes"),
                stall: self.policy.stall_timeout,
            }
        } else {
            let message = match e.get_ref().and_then(|i| i.downcast_ref::<reqwest::Error>()) {
                Some(r) => reqwest_text(r),
                None => e.to_string(),
            };
            NetError::Interrupted {
                url: redact(url),
                received,
                expected: total,
                message: redact(&message),
            }
        };
        Failure::Retry(err, None)
    }
}

/// The host's CA bundles, first found of these (the places OpenSSL-based
/// distributions keep theirs).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The roots trusted besides the platform's when `SSL_CERT_FILE` or
/// `SSL_CERT_DIR` is set: the certificates they name, plus the host's
/// bundle (the platform verifier reads only the variables' certificates
/// once they are set; envbuild trusts both, so a throwaway CA for one
/// registry does not cost every other host). Empty when neither is set.
fn extra_roots() -> Result<Vec<reqwest::Certificate>, NetError> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let file = var("SSL_CERT_FILE");
    let dirs = var("SSL_CERT_DIR");
    if file.is_none() && dirs.is_none() {
        return Ok(Vec::new());
    }
    let bad = |message: String| NetError::Client { message };
    let pem_certs = |path: &Path| -> Result<Vec<reqwest::Certificate>, String> {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        reqwest::Certificate::from_pem_bundle(&bytes).map_err(|e| redact(&reqwest_text(&e)))
    };
    let mut out = Vec::new();
    if let Some(f) = &file {
        let path = Path::new(f);
        let certs = pem_certs(path).map_err(|e| {
            bad(format!(
                "SSL_CERT_FILE={}: expected a file of PEM certificates: {e}",
                path.display()
            ))
        })?;
        if certs.is_empty() {
            return Err(bad(format!(
                "SSL_CERT_FILE={}: expected a file of PEM certificates, found none in it",
                path.display()
            )));
        }
        out.extend(certs);
    }
    if let Some(d) = &dirs {
        for dir in std::env::split_paths(d).filter(|p| !p.as_os_str().is_empty()) {
            let entries = std::fs::read_dir(&dir).map_err(|e| {
                bad(format!(
                    "SSL_CERT_DIR: expected {} to be a directory of PEM certificates: {e}",
                    dir.display()
                ))
            })?;
            let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for p in paths.into_iter().filter(|p| p.is_file()) {
                // A directory holds other files too (links, CRLs): only
                // what parses as certificates counts.
                out.extend(pem_certs(&p).unwrap_or_default());
            }
        }
    }
    if let Some(system) = SYSTEM_BUNDLES.iter().map(Path::new).find(|p| p.is_file()) {
        out.extend(pem_certs(system).unwrap_or_default());
    }
    Ok(out)
}

/// A sink that counts what it was given into the caller's counter.
struct AppendCounting<'a> {
    sink: &'a mut dyn Sink,
    written: &'a mut u64,
}

impl Sink for AppendCounting<'_> {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.sink.append(bytes)?;
        *self.written += bytes.len() as u64;
        Ok(())
    }
    fn restart(&mut self) -> io::Result<()> {
        self.sink.restart()?;
        *self.written = 0;
        Ok(())
    }
}

/// `Content-Range: bytes FIRST-LAST/TOTAL` (TOTAL may be `*`).
fn content_range(resp: &reqwest::blocking::Response) -> Option<(u64, Option<u64>, Option<u64>)> {
    let v = resp.headers().get(header::CONTENT_RANGE)?.to_str().ok()?;
    let rest = v.trim().strip_prefix("bytes ")?;
    let (span, whole) = rest.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    Some((
        first.trim().parse().ok()?,
        last.trim().parse().ok(),
        whole.trim().parse().ok(),
    ))
}

fn content_range_text(resp: &reqwest::blocking::Response) -> String {
    resp.headers()
        .get(header::CONTENT_RANGE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_else(|| "(none)".into())
}

/// A reqwest error and its sources, without the URL (the caller names the
/// URL, redacted).
fn reqwest_text(e: &reqwest::Error) -> String {
    let mut text = String::new();
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = cur {
        let t = match c.downcast_ref::<reqwest::Error>() {
            Some(r) if r.url().is_some() => {
                let mut r = format!("{r}");
                if let Some(u) = e.url() {
                    r = r.replace(&format!(" for url ({u})"), "");
                    r = r.replace(u.as_str(), "");
                }
                r
            }
            _ => c.to_string(),
        };
        if !t.is_empty() && !text.contains(&t) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&t);
        }
        cur = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_removes_userinfo_authorization_and_query_tokens() {
        let cases = [
            (
                "https://user:s3cret@index.internal/simple/",
                "https://<redacted>@index.internal/simple/",
            ),
            (
                "failed for http://__token__:pypi-AgEIc@h:8080/x (then)",
                "failed for http://<redacted>@h:8080/x (then)",
            ),
            (
                "http://h/f.whl?X-Amz-Signature=abc123&x=1&token=zz",
                "http://h/f.whl?X-Amz-Signature=<redacted>&x=1&token=<redacted>",
            ),
            (
                "Authorization: Bearer abcdefgh12345678",
                "Authorization: <redacted>",
            ),
            (
                "sent bearer abcdefgh12345678 to",
                "sent bearer <redacted> to",
            ),
            ("http://h/simple/numpy/", "http://h/simple/numpy/"),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "redacting {input:?}");
        }
    }

    #[test]
    fn policy_variables_override_the_defaults_and_nonsense_is_refused() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(Policy::from_vars(vars(&[])).unwrap(), Policy::default());
        let p = Policy::from_vars(vars(&[
            (STALL_VAR, "0.5"),
            (CONNECT_VAR, "3"),
            (RETRY_TIME_VAR, "12"),
            (MAX_DOCUMENT_VAR, "1024"),
        ]))
        .unwrap();
        assert_eq!(p.stall_timeout, Duration::from_millis(500));
        assert_eq!(p.connect_timeout, Duration::from_secs(3));
        assert_eq!(p.retry_time, Duration::from_secs(12));
        assert_eq!(p.max_document, 1024);
        for (var, value) in [
            (STALL_VAR, "soon"),
            (STALL_VAR, "0"),
            (MAX_DOCUMENT_VAR, "-1"),
        ] {
            let pairs: &'static [(&str, &str)] = Box::leak(Box::new([(var, value)]));
            let e = Policy::from_vars(vars(pairs)).unwrap_err();
            assert!(e.to_string().contains(&format!("{var}={value:?}")), "{e}");
        }
    }

    #[test]
    fn a_password_in_a_url_never_shows_in_any_error() {
        let url = "http://alice:hunter2-password@127.0.0.1:9/simple/?token=t0ps3cret";
        // Port 9 (discard) on loopback: refused at once.
        let client = Client::with_policy(Policy {
            attempts: 2,
            first_backoff: Duration::from_millis(1),
            ..Policy::default()
        })
        .expect("client");
        let errors: Vec<NetError> = vec![
            client.get(url, None, None).unwrap_err(),
            client
                .download(url, &mut Vec::new(), &Download::default())
                .unwrap_err(),
            client.content_length(url).unwrap_err(),
            client.get_range(url, 0, 10).unwrap_err(),
            client
                .request(
                    Method::PUT,
                    url,
                    &HeaderMap::new(),
                    Body::Bytes(b"body"),
                    1024,
                )
                .unwrap_err(),
        ];
        for e in &errors {
            let text = format!("{e} / {} / {e:?}", e.chain_text());
            assert!(!text.contains("hunter2"), "password shown: {text}");
            assert!(!text.contains("t0ps3cret"), "token shown: {text}");
            assert!(text.contains("127.0.0.1:9"), "URL not named: {text}");
        }
    }

    /// A loopback server that reads each request's whole body (by its
    /// Content-Length) and answers the statuses given, in turn; it returns
    /// the bodies it read.
    fn body_server(statuses: Vec<u16>) -> (String, std::sync::mpsc::Receiver<(String, Vec<u8>)>) {
        use std::io::BufRead;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for (status, stream) in statuses.into_iter().zip(listener.incoming()) {
                let mut stream = stream.unwrap();
                let mut reader = io::BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    if h == "\r\n" || h.is_empty() {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0u8; len];
                reader.read_exact(&mut body).unwrap();
                tx.send((line, body)).unwrap();
                let answer = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nDocker-Content-Digest: d\r\nConnection: close\r\n\r\nok"
                );
                stream.write_all(answer.as_bytes()).unwrap();
            }
        });
        (base, rx)
    }

    #[test]
    fn a_file_body_is_streamed_whole_again_on_each_retry() {
        let (base, rx) = body_server(vec![503, 502, 201]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let client = Client::with_policy(Policy {
            first_backoff: Duration::from_millis(1),
            ..Policy::default()
        })
        .unwrap();
        let mut headers = HeaderMap::new();
        let mut secret = HeaderValue::from_static("Bearer s3cr3t-token-value");
        secret.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, secret);
        let answer = client
            .request(
                Method::PUT,
                &format!("{base}/v2/r/blobs/uploads/u?digest=sha256:x"),
                &headers,
                Body::File(&path),
                1024,
            )
            .unwrap();
        assert_eq!(answer.status, 201);
        assert_eq!(answer.body, b"ok");
        assert_eq!(answer.header("docker-content-digest"), Some("d"));
        assert!(!format!("{answer:?}").contains("s3cr3t"));
        for _ in 0..3 {
            let (line, body) = rx.recv().unwrap();
            assert!(
                line.starts_with("PUT /v2/r/blobs/uploads/u?digest="),
                "{line}"
            );
            assert!(
                body == data,
                "a retry sent {} bytes, not the file",
                body.len()
            );
        }
        // A body from memory and a HEAD (no body read) too.
        let (base, rx) = body_server(vec![404, 200]);
        let a = client
            .request(
                Method::POST,
                &base,
                &HeaderMap::new(),
                Body::Bytes(b"abc"),
                16,
            )
            .unwrap();
        assert_eq!((a.status, rx.recv().unwrap().1), (404, b"abc".to_vec()));
        let a = client
            .request(Method::HEAD, &base, &HeaderMap::new(), Body::Empty, 16)
            .unwrap();
        assert_eq!((a.status, a.body.len()), (200, 0));
        // An answer past the limit is refused.
        let (base, _rx) = body_server(vec![200]);
        let e = client
            .request(Method::GET, &base, &HeaderMap::new(), Body::Empty, 1)
            .unwrap_err();
        assert!(matches!(e, NetError::TooLarge { .. }), "{e}");
    }
}
