//! Blob uploads: monolithic or chunked, resumed after a cut connection.
//!
//! An upload session is opened with `POST /v2/<repo>/blobs/uploads/` (or
//! is the one a refused mount opened); its `Location` is where the bytes
//! go. Following the OCI distribution spec:
//!
//! - a blob of at most the chunk size ([`DEFAULT_CHUNK_SIZE`], or
//!   [`super::PushOptions::chunk_size`]) is sent in one
//!   `PUT <Location>?digest=<digest>`;
//! - a larger one in `PATCH <Location>` requests of the chunk size (at
//!   least the registry's `OCI-Chunk-Min-Length`), each with
//!   `Content-Range: <first>-<last>` and answered `202` with the next
//!   `Location` and `Range: 0-<last>`; then `PUT <Location>?digest=` with
//!   no body closes it. Each chunk is streamed from the store file.
//!
//! None of these requests is retried blindly: a request whose connection
//! breaks, stalls, or that is answered 5xx/429 or `416` may have left some
//! of its bytes with the registry. The upload then asks the registry
//! (`GET <Location>`: `204` with `Range: 0-<last>`) what it holds and
//! goes on from the byte after it (in one more `PATCH` for the rest of a
//! blob that was being sent whole); a registry that lost or cancelled the
//! session (`404`, `400 BLOB_UPLOAD_INVALID`, no usable `Range`) gets a
//! new session and the blob from its first byte. The final `PUT`'s
//! `Docker-Content-Digest` must be the blob's (a `400 DIGEST_INVALID`
//! restarts the blob too). At most [`crate::net::Policy::attempts`]
//! failures in a row per blob (a chunk the registry takes starts the count
//! again), with the client's backoff between them, and no new try past its
//! retry time since the last progress.
//!
//! Also here: which scheme a registry is spoken to with ([`scheme`]).

use std::time::{Duration, Instant};

use crate::net::{self, header, Answer, Body, Client, HeaderMap, HeaderValue, Method, NetError};

use super::{Blob, Reference, RegistryError, Session};

/// Blobs larger than this are uploaded in chunks of this size: 64 MiB.
pub const DEFAULT_CHUNK_SIZE: u64 = 64 << 20;

/// The variable that sets the chunk size (bytes) for `envbuild push`.
pub const CHUNK_SIZE_VAR: &str = "ENVBUILD_PUSH_CHUNK_SIZE";

/// The chunk size `ENVBUILD_PUSH_CHUNK_SIZE` asks for, if it is set.
pub fn chunk_size_from_env() -> Result<Option<u64>, NetError> {
    match std::env::var(CHUNK_SIZE_VAR) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or(NetError::BadSetting {
                var: CHUNK_SIZE_VAR,
                value: v,
                expected: "a positive number of bytes",
            }),
        _ => Ok(None),
    }
}

/// `https` or `http` for `reference`'s registry. A registry off loopback
/// gets `https` unless it is named in `insecure` (`host` or `host:port`).
/// A loopback one (127.0.0.0/8, ::1, localhost) is asked once over TLS
/// (`GET /v2/`, no credentials): `https` when it answers over TLS, or
/// fails on its certificate (the requests that follow say so); `http`
/// when it does not speak TLS.
pub fn scheme(client: &Client, reference: &Reference, insecure: &[String]) -> &'static str {
    let named = reference.scheme(insecure);
    if !reference.is_loopback() || named == "https" {
        return named;
    }
    // Once per registry and process: every session of a push or a pull
    // would ask the same.
    static PROBED: std::sync::Mutex<Vec<(String, &'static str)>> =
        std::sync::Mutex::new(Vec::new());
    if let Some((_, s)) = PROBED
        .lock()
        .expect("probe lock")
        .iter()
        .find(|(r, _)| *r == reference.registry)
    {
        return s;
    }
    let url = format!("https://{}/v2/", reference.registry);
    let found =
        match client.request_once(Method::GET, &url, &HeaderMap::new(), Body::Empty, 1 << 16) {
            Ok(_) => "https",
            Err(e) if e.chain_text().contains("certificate") => "https",
            Err(_) => "http",
        };
    tracing::debug!(registry = %net::redact(&reference.registry), scheme = found, "loopback registry asked over TLS");
    PROBED
        .lock()
        .expect("probe lock")
        .push((reference.registry.clone(), found));
    found
}

/// Where an upload session takes its next bytes.
#[derive(Debug, Clone)]
pub(super) struct UploadAt {
    url: reqwest::Url,
    /// The registry's `OCI-Chunk-Min-Length`, when it said one.
    min_chunk: Option<u64>,
}

/// How one request of an upload ended, when it did not end the upload
/// (the error boxed: it is the rare path, and `Result<_, Step>` stays small).
enum Step {
    /// The registry may hold some of the bytes: ask it, go on from there.
    Ask(Box<RegistryError>),
    /// The session is gone (or its bytes are wrong): a new one, from 0.
    Restart(Box<RegistryError>),
    /// Nothing to try again: the upload fails with this.
    Fatal(Box<RegistryError>),
}

impl Step {
    fn ask(e: RegistryError) -> Step {
        Step::Ask(Box::new(e))
    }
    fn restart(e: RegistryError) -> Step {
        Step::Restart(Box::new(e))
    }
    fn fatal(e: RegistryError) -> Step {
        Step::Fatal(Box::new(e))
    }
}

impl Session<'_> {
    /// `POST .../blobs/uploads/` for a new session.
    pub(super) fn start_upload(&self, what: &str) -> Result<UploadAt, RegistryError> {
        let start_what = format!("starting the upload of {what}");
        let started = self.call(
            Method::POST,
            &self.url("blobs/uploads/"),
            &HeaderMap::new(),
            Body::Empty,
            &start_what,
        )?;
        if started.status != 202 {
            return Err(self.status_err(&start_what, &started, "202"));
        }
        self.upload_location(&started, &start_what)
    }

    /// The session a `202` answer names (its `Location`, resolved against
    /// the URL answered).
    pub(super) fn upload_location(
        &self,
        answer: &Answer,
        what: &str,
    ) -> Result<UploadAt, RegistryError> {
        let location = answer
            .header("location")
            .ok_or_else(|| RegistryError::Status {
                registry: self.registry.clone(),
                repo: self.repo.clone(),
                what: what.to_string(),
                status: answer.status,
                expected: "202 with a Location header",
                detail: "no Location header".into(),
            })?;
        let url = answer
            .url
            .join(location)
            .map_err(|e| RegistryError::Status {
                registry: self.registry.clone(),
                repo: self.repo.clone(),
                what: what.to_string(),
                status: answer.status,
                expected: "202 with a Location that is a URL",
                detail: format!("Location {:?}: {e}", net::redact(location)),
            })?;
        let min_chunk = answer
            .header("oci-chunk-min-length")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|n| *n > 0);
        Ok(UploadAt { url, min_chunk })
    }

    /// Send `blob` into the session at `at`, resuming or restarting after
    /// failures, until the registry has it under its digest.
    pub(super) fn send_blob(
        &self,
        blob: &Blob<'_>,
        what: &str,
        at: UploadAt,
    ) -> Result<(), RegistryError> {
        let policy = self.client.policy();
        // Since the last progress (a chunk the registry took).
        let mut started = Instant::now();
        let mut backoff = policy.first_backoff;
        let mut failures = 0u32;
        let chunked = blob.size > self.chunk_size;
        // The session (`None`: a new one is needed) and the bytes the
        // registry holds of it.
        let mut at = Some(at);
        let mut offset = 0u64;
        loop {
            let step = match &at {
                None => match self.start_upload(what) {
                    Ok(a) => {
                        at = Some(a);
                        offset = 0;
                        continue;
                    }
                    Err(e) if retryable(&e) => Step::restart(e),
                    Err(e) => return Err(e),
                },
                Some(cur) if offset == 0 && !chunked => match self.put_whole(blob, what, cur) {
                    Ok(()) => return Ok(()),
                    Err(s) => s,
                },
                Some(cur) if offset < blob.size => {
                    let chunk = if chunked {
                        self.chunk_size.max(cur.min_chunk.unwrap_or(0))
                    } else {
                        // The rest of a blob that was being sent whole.
                        blob.size - offset
                    };
                    let len = chunk.min(blob.size - offset);
                    match self.patch(blob, what, cur, offset, len) {
                        Ok(next) => {
                            at = Some(next);
                            offset += len;
                            // Progress: the failures before it are forgiven.
                            failures = 0;
                            backoff = policy.first_backoff;
                            started = Instant::now();
                            continue;
                        }
                        Err(s) => s,
                    }
                }
                Some(cur) => match self.put_close(blob, what, cur) {
                    Ok(()) => return Ok(()),
                    Err(s) => s,
                },
            };
            let last = match step {
                Step::Fatal(e) => return Err(*e),
                Step::Ask(ref e) | Step::Restart(ref e) => e,
            };
            failures += 1;
            let out_of_time = started.elapsed() + backoff >= policy.retry_time;
            if failures >= policy.attempts.max(1) || out_of_time {
                return Err(RegistryError::UploadGaveUp {
                    registry: self.registry.clone(),
                    repo: self.repo.clone(),
                    what: what.to_string(),
                    failures,
                    elapsed: started.elapsed(),
                    source: match step {
                        Step::Ask(e) | Step::Restart(e) | Step::Fatal(e) => e,
                    },
                });
            }
            tracing::info!(
                registry = %self.registry,
                repo = %self.repo,
                blob = blob.digest,
                offset,
                failures,
                error = %last,
                "upload failed; asking the registry what it kept"
            );
            std::thread::sleep(backoff);
            backoff = backoff.saturating_mul(2).min(Duration::from_secs(30));
            let resumed = match (&step, &at) {
                (Step::Ask(_), Some(cur)) => self.upload_status(cur, blob.size),
                _ => None,
            };
            match resumed {
                Some((next, held)) => {
                    tracing::info!(blob = blob.digest, held, "resuming the upload");
                    at = Some(next);
                    offset = held;
                }
                None => {
                    // The last request may have completed the blob, its
                    // answer lost on the way.
                    if self.blob_arrived(blob.digest) {
                        return Ok(());
                    }
                    tracing::info!(blob = blob.digest, "restarting the upload");
                    at = None;
                    offset = 0;
                }
            }
        }
    }

    /// Whether the registry has `digest` now (HEAD 200); `false` when it
    /// cannot say.
    fn blob_arrived(&self, digest: &str) -> bool {
        self.exists(
            &format!("blobs/{digest}"),
            &HeaderMap::new(),
            &format!("checking for blob {digest}"),
        )
        .unwrap_or(false)
    }

    /// Whether `path` (`blobs/<digest>`, `manifests/<reference>`) is in
    /// the repository: `HEAD` answered 200 (true) or 404 (false); any
    /// other answer is an error naming `what`.
    pub(super) fn exists(
        &self,
        path: &str,
        headers: &HeaderMap,
        what: &str,
    ) -> Result<bool, RegistryError> {
        let a = self.call(Method::HEAD, &self.url(path), headers, Body::Empty, what)?;
        match a.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.status_err(what, &a, "200 or 404")),
        }
    }

    /// `PUT <Location>?digest=` with the whole blob.
    fn put_whole(&self, blob: &Blob<'_>, what: &str, at: &UploadAt) -> Result<(), Step> {
        let up_what = format!("uploading {what} ({} bytes)", blob.size);
        self.put_final(blob, &up_what, at, blob.body)
    }

    /// `PUT <Location>?digest=` with no body, closing a chunked upload.
    fn put_close(&self, blob: &Blob<'_>, what: &str, at: &UploadAt) -> Result<(), Step> {
        let up_what = format!("closing the upload of {what} ({} bytes)", blob.size);
        self.put_final(blob, &up_what, at, Body::Empty)
    }

    fn put_final(
        &self,
        blob: &Blob<'_>,
        what: &str,
        at: &UploadAt,
        body: Body<'_>,
    ) -> Result<(), Step> {
        let mut url = at.url.clone();
        url.query_pairs_mut().append_pair("digest", blob.digest);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        let done = self
            .call_with(Method::PUT, url.as_str(), &headers, body, what, true)
            .map_err(classify)?;
        match done.status {
            201 => {}
            // What was sent did not arrive whole, or the session is gone.
            400 | 404 => return Err(Step::restart(self.status_err(what, &done, "201"))),
            416 => return Err(Step::ask(self.status_err(what, &done, "201"))),
            _ => return Err(Step::fatal(self.status_err(what, &done, "201"))),
        }
        if let Some(found) = done.header("docker-content-digest") {
            if found != blob.digest {
                return Err(Step::fatal(RegistryError::DigestMismatch {
                    registry: self.registry.clone(),
                    repo: self.repo.clone(),
                    what: what.to_string(),
                    expected: blob.digest.to_string(),
                    found: found.to_string(),
                }));
            }
        }
        Ok(())
    }

    /// `PATCH <Location>` with bytes `offset..offset+len`; the next
    /// session URL.
    fn patch(
        &self,
        blob: &Blob<'_>,
        what: &str,
        at: &UploadAt,
        offset: u64,
        len: u64,
    ) -> Result<UploadAt, Step> {
        let last = offset + len - 1;
        let chunk_what = format!(
            "uploading {what}: bytes {offset}-{last} of {} (a chunk)",
            blob.size
        );
        let body = match blob.body {
            Body::File(path) => Body::FileRange { path, offset, len },
            Body::Bytes(b) => Body::Bytes(&b[offset as usize..(offset + len) as usize]),
            Body::FileRange {
                path, offset: base, ..
            } => Body::FileRange {
                path,
                offset: base + offset,
                len,
            },
            Body::Empty => Body::Empty,
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        headers.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("{offset}-{last}")).expect("digits and a dash"),
        );
        let answer = self
            .call_with(
                Method::PATCH,
                at.url.as_str(),
                &headers,
                body,
                &chunk_what,
                true,
            )
            .map_err(classify)?;
        match answer.status {
            202 => {}
            416 => return Err(Step::ask(self.status_err(&chunk_what, &answer, "202"))),
            400 | 404 => return Err(Step::restart(self.status_err(&chunk_what, &answer, "202"))),
            _ => return Err(Step::fatal(self.status_err(&chunk_what, &answer, "202"))),
        }
        // The registry's Range must end where this chunk did.
        if let Some(range) = answer.header("range") {
            if parse_range(range) != Some(last) {
                return Err(Step::ask(RegistryError::Status {
                    registry: self.registry.clone(),
                    repo: self.repo.clone(),
                    what: chunk_what,
                    status: answer.status,
                    expected: "202 with the Range the chunk ends at",
                    detail: format!("Range {:?}, expected 0-{last}", net::redact(range)),
                }));
            }
        }
        let mut next = self
            .upload_location(&answer, &chunk_what)
            .map_err(Step::restart)?;
        next.min_chunk = next.min_chunk.or(at.min_chunk);
        Ok(next)
    }

    /// `GET <Location>`: where the session is and how many bytes the
    /// registry holds; `None` when it is gone or says nothing usable.
    fn upload_status(&self, at: &UploadAt, size: u64) -> Option<(UploadAt, u64)> {
        let what = "asking the registry how much of an upload it holds";
        let answer = self
            .call(
                Method::GET,
                at.url.as_str(),
                &HeaderMap::new(),
                Body::Empty,
                what,
            )
            .ok()?;
        if answer.status != 204 && answer.status != 200 {
            return None;
        }
        // "0-0" is ambiguous (no byte, or one): a new session is as cheap.
        let last = parse_range(answer.header("range")?).filter(|l| *l > 0)?;
        let held = last + 1;
        if held > size {
            return None;
        }
        let mut next = match answer.header("location") {
            Some(_) => self.upload_location(&answer, what).ok()?,
            None => at.clone(),
        };
        next.min_chunk = next.min_chunk.or(at.min_chunk);
        Some((next, held))
    }
}

/// The last byte of `Range: 0-<last>` (`bytes=0-<last>` too), as a
/// registry answers an upload's status; `None` for anything else.
pub fn parse_range(value: &str) -> Option<u64> {
    let v = value.trim();
    let v = v.strip_prefix("bytes=").unwrap_or(v);
    let (first, last) = v.split_once('-')?;
    if first.trim() != "0" {
        return None;
    }
    last.trim().parse().ok()
}

/// A request's error as a step: a broken connection, a stall or a
/// 5xx/429 (what the client would have retried) is worth asking about;
/// the rest ends the upload.
fn classify(e: RegistryError) -> Step {
    if retryable(&e) {
        Step::ask(e)
    } else {
        Step::fatal(e)
    }
}

fn retryable(e: &RegistryError) -> bool {
    matches!(e, RegistryError::Net { source, .. } if matches!(**source, NetError::GaveUp { .. }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn upload_ranges_parse() {
        assert_eq!(super::parse_range("0-1023"), Some(1023));
        assert_eq!(super::parse_range("bytes=0-7"), Some(7));
        assert_eq!(super::parse_range(" 0-0 "), Some(0));
        assert_eq!(super::parse_range("5-9"), None);
        assert_eq!(super::parse_range("0-"), None);
        assert_eq!(super::parse_range("nonsense"), None);
    }
}
