//! Answers kept on disk with their HTTP validators, so that asking again
//! for an unchanged index page or `InRelease` costs a 304 and no body.
//!
//! - **Entry.** One file per (URL, `Accept`), named by the sha256 of both
//!   (so no URL, and no credential in one, is ever a file name):
//!   `envbuild-answer v1\n`, one line of JSON (the final URL when a redirect
//!   changed it, `Content-Type`, `ETag`, `Last-Modified`, when it was
//!   received, the freshness it came with, the body's length and sha256),
//!   then the body. Written with [`crate::io::write_atomically`]. An answer
//!   that a redirect moved to a URL with credentials in it is not kept.
//! - **Reading.** An entry is read up to the same limit as the network
//!   answer it stands for (plus its header line); one that is truncated, too
//!   long, of another format or whose body does not match its sha256 is
//!   ignored and asked for again, never trusted. A body that is intact is
//!   still only a copy of an answer: the caller parses it with the parser it
//!   uses for the network's, and when that fails calls [`AnswerCache::forget`]
//!   and asks again.
//! - **Asking.** A kept answer is sent back as `If-None-Match` /
//!   `If-Modified-Since` ([`super::Client::get_conditional`]); a 304 reuses
//!   the kept body (and refreshes the entry when the 304 brings a new
//!   freshness or new validators); a 200 replaces it. A server that sends no
//!   validators simply answers 200 every time.
//! - **Freshness.** As uv does, an answer still within its `Cache-Control`
//!   `max-age` (less its `Age`) is reused without any request, but never for
//!   longer than the ceiling ([`MAX_AGE_VAR`], seconds, default 600; 0: always
//!   ask), never when the server said `no-cache` (and `no-store` answers are
//!   not kept at all), and never when it was received before the caller's
//!   `not_before` instant: a lock resolved with `exclude-newer` T takes
//!   without asking only a page received at or after T, which lists every
//!   file uploaded up to T.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Client, Conditional, Freshness, NetError, Validators};

/// The variable for the longest time a kept answer is reused without asking
/// (seconds; 0: always ask).
pub const MAX_AGE_VAR: &str = "ENVBUILD_INDEX_MAX_AGE";
/// The default of [`MAX_AGE_VAR`].
pub const DEFAULT_MAX_AGE: u64 = 600;

const MAGIC: &[u8] = b"envbuild-answer v1\n";
/// The longest header line read.
const MAX_HEADER: u64 = 64 << 10;

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Kept and still fresh: no request made.
    Fresh,
    /// Kept, and the server answered 304.
    NotModified,
    /// The server sent a body (200).
    Downloaded,
}

/// An answer, from the network or the cache.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The URL answered after redirects (for resolving relative links).
    pub url: reqwest::Url,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    pub origin: Origin,
}

#[derive(Serialize, Deserialize)]
struct Header {
    /// Only when a redirect changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    final_url: Option<String>,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    etag: Option<String>,
    #[serde(default)]
    last_modified: Option<String>,
    /// Unix seconds.
    received: u64,
    #[serde(default)]
    max_age: Option<u64>,
    len: u64,
    sha256: String,
}

struct Entry {
    header: Header,
    body: Vec<u8>,
}

/// A directory of kept answers.
#[derive(Debug, Clone)]
pub struct AnswerCache {
    dir: PathBuf,
    /// The ceiling on reuse without asking (seconds).
    max_age: u64,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl AnswerCache {
    /// The cache in `dir` (created), its ceiling from [`MAX_AGE_VAR`].
    pub fn new(dir: PathBuf) -> Result<AnswerCache, NetError> {
        let max_age = match std::env::var(MAX_AGE_VAR) {
            Err(_) => DEFAULT_MAX_AGE,
            Ok(v) => v.trim().parse::<u64>().map_err(|_| NetError::BadSetting {
                var: MAX_AGE_VAR,
                value: v,
                expected: "a whole number of seconds (0: always ask the server)",
            })?,
        };
        Self::with_max_age(dir, max_age)
    }

    /// The cache in `dir` (created) with a ceiling of `max_age` seconds.
    pub fn with_max_age(dir: PathBuf, max_age: u64) -> Result<AnswerCache, NetError> {
        fs::create_dir_all(&dir).map_err(|source| NetError::Sink {
            url: dir.display().to_string(),
            source,
        })?;
        Ok(AnswerCache { dir, max_age })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, url: &str, accept: Option<&str>) -> PathBuf {
        let mut h = Sha256::new();
        h.update(accept.unwrap_or("").as_bytes());
        h.update(b"\n");
        h.update(url.as_bytes());
        self.dir
            .join(format!("{}.answer", hex::encode(h.finalize())))
    }

    /// Forget the kept answer for (`url`, `accept`): its body did not parse.
    pub fn forget(&self, url: &str, accept: Option<&str>) {
        let path = self.path(url, accept);
        if let Err(e) = fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a cache entry");
            }
        }
    }

    /// The kept entry, when whole and intact; `limit` bounds its body.
    fn read(&self, path: &Path, limit: u64) -> Option<Entry> {
        let file = fs::File::open(path).ok()?;
        let mut bytes = Vec::new();
        let cap = MAGIC.len() as u64 + MAX_HEADER + limit;
        file.take(cap + 1).read_to_end(&mut bytes).ok()?;
        let bad = |why: &str| {
            tracing::debug!(path = %path.display(), why, "cache entry ignored");
            None
        };
        if bytes.len() as u64 > cap {
            return bad("longer than the limit");
        }
        let Some(rest) = bytes.strip_prefix(MAGIC) else {
            return bad("not an entry of this format");
        };
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            return bad("no header line");
        };
        let Ok(header) = serde_json::from_slice::<Header>(&rest[..nl]) else {
            return bad("the header does not parse");
        };
        if let Some(u) = &header.final_url {
            if reqwest::Url::parse(u).is_err() {
                return bad("its final URL does not parse");
            }
        }
        let body = &rest[nl + 1..];
        if body.len() as u64 != header.len || header.len > limit {
            return bad("the body is not the length its header says");
        }
        if hex::encode(Sha256::digest(body)) != header.sha256 {
            return bad("the body does not match its sha256");
        }
        let body = body.to_vec();
        Some(Entry { header, body })
    }

    fn write(&self, path: &Path, header: &Header, body: &[u8]) {
        let mut bytes = Vec::with_capacity(body.len() + 512);
        bytes.extend_from_slice(MAGIC);
        match serde_json::to_vec(header) {
            Ok(h) => bytes.extend_from_slice(&h),
            Err(_) => return,
        }
        bytes.push(b'\n');
        bytes.extend_from_slice(body);
        // The cache only saves requests: a failure to keep an answer is
        // told, not fatal.
        if let Err(e) = crate::io::write_atomically(path, &bytes) {
            tracing::warn!(path = %path.display(), error = %e, "cannot keep an answer in the cache");
        }
    }

    /// GET `url` (as [`Client::get`] would: `accept`, `limit`) through the
    /// cache; `not_before` (unix seconds): a kept answer received earlier
    /// is never reused without asking.
    pub fn get(
        &self,
        client: &Client,
        url: &str,
        accept: Option<&str>,
        limit: Option<u64>,
        not_before: Option<u64>,
    ) -> Result<Answer, NetError> {
        let request_url = reqwest::Url::parse(url).map_err(|e| NetError::BadUrl {
            url: super::redact(url),
            message: e.to_string(),
        })?;
        let path = self.path(url, accept);
        let read_limit = limit
            .unwrap_or(client.policy().max_document)
            .min(client.policy().max_document);
        let kept = self.read(&path, read_limit);
        let answer_of = |h: &Header, body: Vec<u8>, origin| -> Option<Answer> {
            let url = match &h.final_url {
                None => request_url.clone(),
                Some(u) => reqwest::Url::parse(u).ok()?,
            };
            Some(Answer {
                url,
                content_type: h.content_type.clone(),
                body,
                origin,
            })
        };
        let now = now();
        if let Some(e) = &kept {
            let h = &e.header;
            let fresh = h
                .max_age
                .map(|m| m.min(self.max_age))
                .is_some_and(|m| now < h.received.saturating_add(m) && h.received <= now)
                && not_before.is_none_or(|t| h.received >= t);
            if fresh {
                if let Some(a) = answer_of(h, e.body.clone(), Origin::Fresh) {
                    tracing::debug!(url = %super::redact(url), "cached answer is fresh");
                    return Ok(a);
                }
            }
        }
        let validators = kept
            .as_ref()
            .map(|e| Validators {
                etag: e.header.etag.clone(),
                last_modified: e.header.last_modified.clone(),
            })
            .unwrap_or_default();
        match client.get_conditional(url, accept, limit, &validators)? {
            Conditional::NotModified(headers) => {
                let Entry { mut header, body } = kept.expect("validators come from an entry");
                let fresh = Freshness::of(&headers);
                let new = Validators::of(&headers);
                let changed = fresh.max_age.is_some()
                    || header.max_age.is_some()
                    || new
                        .etag
                        .as_ref()
                        .is_some_and(|e| Some(e) != header.etag.as_ref())
                    || new
                        .last_modified
                        .as_ref()
                        .is_some_and(|l| Some(l) != header.last_modified.as_ref());
                if fresh.no_store {
                    self.forget(url, accept);
                } else if changed {
                    header.received = now;
                    header.max_age = fresh.max_age;
                    header.etag = new.etag.or(header.etag);
                    header.last_modified = new.last_modified.or(header.last_modified);
                    self.write(&path, &header, &body);
                }
                tracing::debug!(url = %super::redact(url), "cached answer not modified (304)");
                answer_of(&header, body, Origin::NotModified).ok_or_else(|| NetError::BadUrl {
                    url: super::redact(url),
                    message: "the kept answer's final URL does not parse".into(),
                })
            }
            Conditional::Changed(doc) => {
                let fresh = Freshness::of(&doc.headers);
                let validators = Validators::of(&doc.headers);
                let final_url = (doc.url != request_url).then(|| doc.url.to_string());
                let secret = doc.url.password().is_some() || !doc.url.username().is_empty();
                if fresh.no_store || (final_url.is_some() && secret) {
                    self.forget(url, accept);
                } else {
                    let header = Header {
                        final_url,
                        content_type: doc.content_type.clone(),
                        etag: validators.etag,
                        last_modified: validators.last_modified,
                        received: now,
                        max_age: fresh.max_age,
                        len: doc.body.len() as u64,
                        sha256: hex::encode(Sha256::digest(&doc.body)),
                    };
                    self.write(&path, &header, &doc.body);
                }
                Ok(Answer {
                    url: doc.url,
                    content_type: doc.content_type,
                    body: doc.body,
                    origin: Origin::Downloaded,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{HeaderMap, Policy};
    use std::io::{BufRead, Write};
    use std::sync::{Arc, Mutex};

    /// What the test server was asked: the `If-None-Match` and
    /// `If-Modified-Since` of each request (`None` when absent).
    type Asked = Arc<Mutex<Vec<(Option<String>, Option<String>)>>>;

    /// A loopback server for one page: 200 with `ETag: "v1"`, `Last-Modified`
    /// and `cache_control` (if any), or 304 (no body) when the request
    /// carries `If-None-Match: "v1"`.
    fn page_server(cache_control: Option<&'static str>) -> (String, Asked) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/simple/demo/", listener.local_addr().unwrap());
        let asked: Asked = Arc::default();
        let log = asked.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let (mut inm, mut ims) = (None, None);
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                        break;
                    }
                    let lower = h.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("if-none-match:") {
                        inm = Some(v.trim().to_string());
                    }
                    if let Some(v) = lower.strip_prefix("if-modified-since:") {
                        ims = Some(v.trim().to_string());
                    }
                }
                let not_modified = inm.as_deref() == Some("\"v1\"");
                log.lock().unwrap().push((inm, ims));
                let cc = cache_control
                    .map(|c| format!("Cache-Control: {c}\r\n"))
                    .unwrap_or_default();
                let answer = if not_modified {
                    format!("HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n{cc}Connection: close\r\n\r\n")
                } else {
                    format!(
                        "HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nLast-Modified: Tue, 01 Dec 2026 10:00:00 GMT\r\n{cc}Content-Type: text/html\r\nContent-Length: 5\r\nConnection: close\r\n\r\nlinks"
                    )
                };
                stream.write_all(answer.as_bytes()).unwrap();
            }
        });
        (url, asked)
    }

    fn client() -> Client {
        Client::with_policy(Policy::default()).unwrap()
    }

    fn count(asked: &Asked) -> usize {
        asked.lock().unwrap().len()
    }

    #[test]
    fn a_kept_answer_is_asked_for_with_its_validators_and_a_304_reuses_its_body() {
        let dir = tempfile::tempdir().unwrap();
        let (url, asked) = page_server(None);
        let cache = AnswerCache::with_max_age(dir.path().join("answers"), 600).unwrap();
        let first = cache.get(&client(), &url, None, None, None).unwrap();
        assert_eq!(
            (first.origin, first.body.as_slice()),
            (Origin::Downloaded, &b"links"[..])
        );
        assert_eq!(first.content_type.as_deref(), Some("text/html"));
        // No max-age from the server: the kept answer is asked for again,
        // with both validators, and the 304 brings no body.
        let second = cache.get(&client(), &url, None, None, None).unwrap();
        assert_eq!(
            (second.origin, second.body.as_slice()),
            (Origin::NotModified, &b"links"[..])
        );
        assert_eq!(second.content_type.as_deref(), Some("text/html"));
        let asked = asked.lock().unwrap();
        assert_eq!(
            asked[0],
            (None, None),
            "the first request had no validators"
        );
        assert_eq!(
            asked[1],
            (
                Some("\"v1\"".into()),
                Some("tue, 01 dec 2026 10:00:00 gmt".into())
            )
        );
    }

    #[test]
    fn a_fresh_answer_is_reused_without_a_request_only_up_to_the_ceiling() {
        let dir = tempfile::tempdir().unwrap();
        let (url, asked) = page_server(Some("max-age=3600"));
        let cache = AnswerCache::with_max_age(dir.path().join("answers"), 600).unwrap();
        cache.get(&client(), &url, None, None, None).unwrap();
        let again = cache.get(&client(), &url, None, None, None).unwrap();
        assert_eq!((again.origin, count(&asked)), (Origin::Fresh, 1));
        // A ceiling of 0 (ENVBUILD_INDEX_MAX_AGE=0): always ask.
        let always = AnswerCache::with_max_age(dir.path().join("answers"), 0).unwrap();
        let asked_again = always.get(&client(), &url, None, None, None).unwrap();
        assert_eq!(
            (asked_again.origin, count(&asked)),
            (Origin::NotModified, 2)
        );
        // Received before the caller's instant (a lock's exclude-newer in
        // the future of the page): asked for again, however fresh.
        let later = now() + 60;
        let checked = cache.get(&client(), &url, None, None, Some(later)).unwrap();
        assert_eq!((checked.origin, count(&asked)), (Origin::NotModified, 3));
    }

    #[test]
    fn a_no_store_answer_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (url, asked) = page_server(Some("no-store"));
        let cache = AnswerCache::with_max_age(dir.path().join("answers"), 600).unwrap();
        cache.get(&client(), &url, None, None, None).unwrap();
        let again = cache.get(&client(), &url, None, None, None).unwrap();
        assert_eq!(again.origin, Origin::Downloaded);
        assert_eq!(
            asked.lock().unwrap()[1],
            (None, None),
            "nothing kept, nothing to validate"
        );
        assert_eq!(fs::read_dir(cache.dir()).unwrap().count(), 0);
    }

    #[test]
    fn a_damaged_entry_is_never_trusted_and_is_asked_for_again_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (url, asked) = page_server(Some("max-age=3600"));
        let cache = AnswerCache::with_max_age(dir.path().join("answers"), 600).unwrap();
        cache.get(&client(), &url, None, None, None).unwrap();
        let entry = fs::read_dir(cache.dir())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        assert!(
            !entry.to_string_lossy().contains("simple"),
            "entries are named by a hash, never the URL"
        );
        let mut bytes = fs::read(&entry).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x20;
        fs::write(&entry, &bytes).unwrap();
        let again = cache.get(&client(), &url, None, None, None).unwrap();
        assert_eq!(
            (again.origin, again.body.as_slice()),
            (Origin::Downloaded, &b"links"[..])
        );
        assert_eq!(
            asked.lock().unwrap()[1],
            (None, None),
            "a damaged entry's validators are not sent"
        );
        // Another Accept is another entry.
        let json = cache
            .get(
                &client(),
                &url,
                Some("application/vnd.pypi.simple.v1+json"),
                None,
                None,
            )
            .unwrap();
        assert_eq!(json.origin, Origin::Downloaded);
    }

    #[test]
    fn freshness_takes_the_smallest_max_age_less_the_age_and_honours_no_cache_and_no_store() {
        let of = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(*k, v.parse().unwrap());
            }
            Freshness::of(&h)
        };
        assert_eq!(
            of(&[]),
            Freshness {
                no_store: false,
                max_age: None
            }
        );
        assert_eq!(
            of(&[("cache-control", "public, max-age=600")]).max_age,
            Some(600)
        );
        assert_eq!(
            of(&[
                ("cache-control", "max-age=600, s-maxage=\"120\""),
                ("age", "20")
            ])
            .max_age,
            Some(100)
        );
        assert_eq!(
            of(&[("cache-control", "max-age=10"), ("age", "99")]).max_age,
            Some(0)
        );
        assert_eq!(
            of(&[
                ("cache-control", "max-age=600"),
                ("cache-control", "No-Cache")
            ])
            .max_age,
            Some(0)
        );
        assert_eq!(of(&[("cache-control", "max-age=nonsense")]).max_age, None);
        assert!(of(&[("cache-control", "no-store")]).no_store);
    }
}
