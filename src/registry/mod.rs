//! Pushing an image to a registry: the OCI distribution API, spoken through
//! the one HTTP client ([`crate::net`], whose timeouts, retries, size caps
//! and redaction apply to every request here).
//!
//! A push ([`push`]) sends each blob of the image (its layers, as the store
//! holds them, never re-tarred, and its config) unless the registry has it:
//!
//! 1. `HEAD /v2/<repo>/blobs/<digest>`: a 200 skips the blob;
//! 2. else a monolithic upload: `POST /v2/<repo>/blobs/uploads/` for a
//!    session, then `PUT <Location>?digest=<digest>` with the bytes
//!    streamed from the store file (`Content-Length` its size); the
//!    registry's `Docker-Content-Digest` must be the blob's.
//!
//! A blob an earlier push sent to another repository of the same registry
//! (per the record in [`PushOptions::records`]) is mounted instead:
//! `POST /v2/<repo>/blobs/uploads/?mount=<digest>&from=<other>`.
//!
//! Blobs go up in parallel, at most [`PARALLEL_UPLOADS`] at once, the
//! largest first. Then the manifest is PUT with the exact bytes whose
//! digest `envbuild realize` prints, under the reference's tag (or by its
//! digest), and the registry's `Docker-Content-Digest` must equal it.
//!
//! Plain HTTP is used only for a loopback registry (127.0.0.0/8, ::1,
//! localhost) or one the caller names insecure; HTTPS otherwise.
//!
//! Authentication: a request answered 401 is retried once authenticated,
//! as its `WWW-Authenticate` challenge asks: `Basic` with the configured
//! credentials ([`auth`]), or `Bearer`: a GET of the challenge's realm with
//! its `service` and `scope=repository:<repo>:pull,push` (with the
//! credentials as basic authentication when there are any) answers a
//! token that authorizes the retry and later requests. Credentials and
//! tokens live in sensitive header values only; no message shows them.

pub mod artifact;
pub mod auth;
pub mod error;
pub mod login;
pub mod pull;
pub mod reference;
pub mod upload;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::net::{self, header, Answer, Body, Client, HeaderMap, HeaderValue, Method};
use crate::oci::Image;

pub use auth::{Challenge, CredentialPlaces, Credentials};
pub use error::RegistryError;
pub use reference::Reference;

/// How many blobs are uploaded at once at most.
pub const PARALLEL_UPLOADS: usize = 4;

/// The largest registry answer read (error documents, token answers).
const ANSWER_LIMIT: u64 = 4 << 20;

/// What a push may do and whom it tells.
#[derive(Default)]
pub struct PushOptions<'a> {
    /// Registries (`host` or `host:port`) spoken to over plain HTTP
    /// although not on loopback.
    pub insecure: Vec<String>,
    /// Where credentials are looked up.
    pub credentials: CredentialPlaces,
    /// Called as each blob is done.
    pub progress: Option<&'a (dyn Fn(&BlobPushed) + Sync)>,
    /// A directory for the records of where blobs were pushed before (one
    /// JSON file per registry: digest → repository), read for mounts and
    /// updated after each push; losing it only loses mounts.
    pub records: Option<PathBuf>,
    /// Blobs larger than this are sent in chunks of this size (at least
    /// the registry's `OCI-Chunk-Min-Length`); `None`:
    /// [`upload::DEFAULT_CHUNK_SIZE`].
    pub chunk_size: Option<u64>,
}

/// What happened to one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOutcome {
    /// Uploaded now.
    Uploaded,
    /// Mounted from another repository of the registry (no bytes sent).
    Mounted,
    /// The registry had it already (HEAD answered 200).
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobPushed {
    pub digest: String,
    pub size: u64,
    /// `layer` or `config`.
    pub kind: &'static str,
    pub outcome: BlobOutcome,
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct PushReport {
    pub reference: Reference,
    /// The manifest digest (the registry's `Docker-Content-Digest`, equal
    /// to the image's).
    pub digest: String,
    /// The blobs in manifest order: config, then layers.
    pub blobs: Vec<BlobPushed>,
}

impl PushReport {
    pub fn count(&self, outcome: BlobOutcome) -> usize {
        self.blobs.iter().filter(|b| b.outcome == outcome).count()
    }

    /// Bytes uploaded (blobs sent now, not the manifest).
    pub fn bytes_uploaded(&self) -> u64 {
        self.blobs
            .iter()
            .filter(|b| b.outcome == BlobOutcome::Uploaded)
            .map(|b| b.size)
            .sum()
    }
}

/// One blob to send: from memory (the config) or a store file (a layer).
struct Blob<'a> {
    digest: &'a str,
    size: u64,
    kind: &'static str,
    body: Body<'a>,
}

/// Push `image` to `reference`.
pub fn push(
    client: &Client,
    image: &Image,
    reference: &Reference,
    opts: &PushOptions<'_>,
) -> Result<PushReport, RegistryError> {
    let session = Session::new(client, reference, opts);
    if let Some(d) = &reference.digest {
        if d != image.digest() {
            return Err(RegistryError::OtherDigest {
                registry: session.registry.clone(),
                repo: reference.repository.clone(),
                expected: d.clone(),
                found: image.digest().to_string(),
            });
        }
    }
    let mut blobs = vec![Blob {
        digest: &image.config.digest,
        size: image.config.size,
        kind: "config",
        body: Body::Bytes(&image.config_json),
    }];
    for (desc, path) in &image.layers {
        let len = std::fs::metadata(path)
            .map_err(|source| RegistryError::BlobFile {
                registry: session.registry.clone(),
                repo: reference.repository.clone(),
                digest: desc.digest.clone(),
                path: path.clone(),
                source,
            })?
            .len();
        if len != desc.size {
            return Err(RegistryError::BlobFile {
                registry: session.registry.clone(),
                repo: reference.repository.clone(),
                digest: desc.digest.clone(),
                path: path.clone(),
                source: std::io::Error::other(format!(
                    "expected {} bytes (the manifest's size), found {len}",
                    desc.size
                )),
            });
        }
        blobs.push(Blob {
            digest: &desc.digest,
            size: desc.size,
            kind: "layer",
            body: Body::File(path),
        });
    }
    let mut order: Vec<usize> = (0..blobs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(blobs[i].size));
    let outcomes = session.parallel(&blobs, &order, opts.progress)?;
    let digest = session.put_manifest(image, reference)?;
    session.remember(&blobs.iter().map(|b| b.digest).collect::<Vec<_>>());
    Ok(PushReport {
        reference: reference.clone(),
        digest,
        blobs: blobs
            .iter()
            .zip(outcomes)
            .map(|(b, outcome)| BlobPushed {
                digest: b.digest.to_string(),
                size: b.size,
                kind: b.kind,
                outcome,
            })
            .collect(),
    })
}

/// One push's connection to one repository of one registry, with the
/// authorization it has earned so far.
pub(crate) struct Session<'a> {
    client: &'a Client,
    /// `http://host:port` or `https://host:port`, found at the first
    /// request ([`Session::base`]).
    base: std::sync::OnceLock<String>,
    /// The registry, and the names of registries spoken to in plain HTTP.
    reference: Reference,
    insecure: &'a [String],
    /// The registry as messages name it (redacted).
    registry: String,
    repo: String,
    places: &'a CredentialPlaces,
    /// Looked up at the first challenge: `None` before, then the answer.
    credentials: Mutex<Option<Option<Credentials>>>,
    /// The `Authorization` value requests carry (sensitive).
    authorization: Mutex<Option<HeaderValue>>,
    /// Where this registry's blobs were pushed before (digest →
    /// repository), and the file it is kept in.
    pushed_before: BTreeMap<String, String>,
    record: Option<PathBuf>,
    /// The access a bearer token is asked for: `pull,push`, or `pull`
    /// for a pull.
    actions: &'static str,
    /// Blobs larger than this go up in chunks of (at least) this size.
    chunk_size: u64,
}

impl<'a> Session<'a> {
    pub(crate) fn new(
        client: &'a Client,
        reference: &Reference,
        opts: &'a PushOptions<'_>,
    ) -> Session<'a> {
        let record = opts.records.as_ref().map(|dir| {
            let name: String = reference
                .registry
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            dir.join(format!("{name}.json"))
        });
        Session {
            client,
            base: std::sync::OnceLock::new(),
            reference: reference.clone(),
            insecure: &opts.insecure,
            registry: net::redact(&reference.registry),
            repo: reference.repository.clone(),
            places: &opts.credentials,
            credentials: Mutex::new(None),
            authorization: Mutex::new(None),
            pushed_before: record
                .as_deref()
                .map(|path| read_record(path).into_iter().collect())
                .unwrap_or_default(),
            record,
            actions: "pull,push",
            chunk_size: opts.chunk_size.unwrap_or(upload::DEFAULT_CHUNK_SIZE).max(1),
        }
    }

    /// The repository to mount `digest` from, if it was pushed to
    /// another one of this registry before.
    fn mount_from(&self, digest: &str) -> Option<String> {
        self.pushed_before
            .get(digest)
            .filter(|r| **r != self.repo)
            .cloned()
    }

    /// Remember that `digests` are in this repository now (a record that
    /// cannot be written is no failure: it is only a hint for mounts). A
    /// record that already says so is not written again (a pull calls this
    /// for every blob).
    fn remember(&self, digests: &[&str]) {
        let Some(path) = &self.record else { return };
        // Read again: another push may have added to it meanwhile.
        let old = read_record(path);
        let known: BTreeMap<&str, &str> =
            old.iter().map(|(d, r)| (d.as_str(), r.as_str())).collect();
        if digests
            .iter()
            .all(|d| known.get(d) == Some(&self.repo.as_str()))
        {
            return;
        }
        let record = with_pushed(old, digests, &self.repo);
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Ok(bytes) = serde_json::to_vec(&record) {
            let _ = crate::io::write_atomically(path, &bytes);
        }
    }

    fn url(&self, rest: &str) -> String {
        format!("{}/v2/{}/{rest}", self.base(), self.repo)
    }

    /// `scheme://host:port`: the scheme is chosen at the first request
    /// ([`upload::scheme`]: a loopback registry is asked whether it speaks
    /// TLS), so a session that makes none makes no connection.
    fn base(&self) -> &str {
        self.base.get_or_init(|| {
            let scheme = upload::scheme(self.client, &self.reference, self.insecure);
            format!("{scheme}://{}", self.reference.registry)
        })
    }

    fn net_err(&self, what: &str, source: net::NetError) -> RegistryError {
        // rustls meeting a plain-HTTP server says so in these words.
        let text = source.chain_text();
        let plain_http = self.base().starts_with("https://")
            && (text.contains("InvalidContentType") || text.contains("corrupt message"));
        let untrusted = self.base().starts_with("https://") && text.contains("certificate");
        RegistryError::Net {
            registry: self.registry.clone(),
            repo: self.repo.clone(),
            what: what.to_string(),
            hint: if plain_http {
                " (the registry does not speak TLS: one serving plain HTTP off loopback must be named insecure, --insecure-registry HOST[:PORT])"
            } else if untrusted {
                " (the registry's TLS certificate is not trusted here: add the CA that signed it to the host's bundle, or name a PEM file of it with SSL_CERT_FILE)"
            } else {
                ""
            },
            source: Box::new(source),
        }
    }

    fn status_err(&self, what: &str, answer: &Answer, expected: &'static str) -> RegistryError {
        RegistryError::Status {
            registry: self.registry.clone(),
            repo: self.repo.clone(),
            what: what.to_string(),
            status: answer.status,
            expected,
            detail: error_detail(&answer.body),
        }
    }

    fn credentials(&self) -> Result<Option<Credentials>, RegistryError> {
        let mut c = self.credentials.lock().expect("credentials lock");
        if c.is_none() {
            let host = self.base().split_once("://").map_or("", |(_, h)| h);
            *c = Some(self.places.lookup(host)?);
        }
        Ok(c.clone().flatten())
    }

    /// A request, authenticated as the registry asks when it answers 401.
    fn call(
        &self,
        method: Method,
        url: &str,
        extra: &HeaderMap,
        body: Body<'_>,
        what: &str,
    ) -> Result<Answer, RegistryError> {
        self.call_with(method, url, extra, body, what, false)
    }

    /// [`Session::call`]; with `once`, the request itself is not retried
    /// on a connection failure or a 5xx (the caller asks the registry what
    /// it kept first: [`upload`]).
    fn call_with(
        &self,
        method: Method,
        url: &str,
        extra: &HeaderMap,
        body: Body<'_>,
        what: &str,
        once: bool,
    ) -> Result<Answer, RegistryError> {
        // Credentials go only to the registry itself, not to a storage
        // backend an upload Location may point at.
        let ours = url.starts_with(&format!("{}/", self.base()));
        let mut authenticated = false;
        for _ in 0..3 {
            let mut headers = extra.clone();
            let sent = self.authorization.lock().expect("auth lock").clone();
            if let (true, Some(a)) = (ours, &sent) {
                headers.insert(header::AUTHORIZATION, a.clone());
            }
            let answer = if once {
                self.client
                    .request_once(method.clone(), url, &headers, body, ANSWER_LIMIT)
            } else {
                self.client
                    .request(method.clone(), url, &headers, body, ANSWER_LIMIT)
            }
            .map_err(|e| self.net_err(what, e))?;
            if answer.status != 401 || !ours {
                return Ok(answer);
            }
            let now = self.authorization.lock().expect("auth lock").clone();
            if now != sent {
                // Another upload authenticated meanwhile: use its answer.
                continue;
            }
            if authenticated {
                return Err(match self.credentials()? {
                    Some(c) => RegistryError::Refused {
                        registry: self.registry.clone(),
                        repo: self.repo.clone(),
                        what: what.to_string(),
                        source_name: c.source,
                        status: answer.status,
                    },
                    None => RegistryError::NeedCredentials {
                        registry: self.registry.clone(),
                        repo: self.repo.clone(),
                        scheme: "bearer-token".into(),
                    },
                });
            }
            let challenge_text = answer.header("www-authenticate").unwrap_or("(none)");
            let challenge =
                auth::parse_challenge(challenge_text).ok_or_else(|| RegistryError::Auth {
                    registry: self.registry.clone(),
                    repo: self.repo.clone(),
                    expected: "a 401 with a WWW-Authenticate: Basic or Bearer realm=... challenge"
                        .into(),
                    found: format!("WWW-Authenticate: {}", net::redact(challenge_text)),
                })?;
            let value = self.authenticate(&challenge)?;
            *self.authorization.lock().expect("auth lock") = Some(value);
            authenticated = true;
        }
        Err(RegistryError::Auth {
            registry: self.registry.clone(),
            repo: self.repo.clone(),
            expected: format!("{what} to be accepted once authenticated"),
            found: "HTTP 401 again and again".into(),
        })
    }

    /// The `Authorization` value that answers `challenge`.
    fn authenticate(&self, challenge: &Challenge) -> Result<HeaderValue, RegistryError> {
        let creds = self.credentials()?;
        let sensitive = |text: String| {
            let mut v = HeaderValue::from_str(&text).map_err(|_| RegistryError::Auth {
                registry: self.registry.clone(),
                repo: self.repo.clone(),
                expected: "credentials and tokens of visible ASCII".into(),
                found: "other characters".into(),
            })?;
            v.set_sensitive(true);
            Ok(v)
        };
        match challenge {
            Challenge::Basic => match creds {
                Some(c) => sensitive(c.basic_header()),
                None => Err(RegistryError::NeedCredentials {
                    registry: self.registry.clone(),
                    repo: self.repo.clone(),
                    scheme: "basic".into(),
                }),
            },
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let token = self.token(realm, service.as_deref(), scope.as_deref(), creds)?;
                sensitive(format!("Bearer {token}"))
            }
        }
    }

    /// The bearer-token flow: GET the realm for a token.
    fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
        creds: Option<Credentials>,
    ) -> Result<String, RegistryError> {
        let auth_err = |expected: String, found: String| RegistryError::Auth {
            registry: self.registry.clone(),
            repo: self.repo.clone(),
            expected,
            found,
        };
        let mut url = reqwest::Url::parse(realm).map_err(|e| {
            auth_err(
                "a token realm that is an http(s) URL".into(),
                format!("{:?} ({e})", net::redact(realm)),
            )
        })?;
        // Credentials never travel in the clear to a realm elsewhere.
        let realm_host = url
            .host_str()
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']');
        let realm_loopback = realm_host.eq_ignore_ascii_case("localhost")
            || realm_host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let plain_ok = self.base().starts_with("http://") || realm_loopback;
        match url.scheme() {
            "https" => {}
            "http" if plain_ok => {}
            s => return Err(auth_err(
                "a token realm over https (plain http only for a loopback or insecure registry)"
                    .into(),
                format!("a {s}:// realm {}", net::redact(realm)),
            )),
        }
        let ours = format!("repository:{}:{}", self.repo, self.actions);
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            // A login asks for no repository's access.
            if !self.repo.is_empty() {
                q.append_pair("scope", &ours);
            }
            if let Some(s) = scope.filter(|s| *s != ours) {
                for one in s.split(' ').filter(|s| !s.is_empty() && *s != ours) {
                    q.append_pair("scope", one);
                }
            }
        }
        let mut headers = HeaderMap::new();
        if let Some(c) = &creds {
            let mut v = HeaderValue::from_str(&c.basic_header()).map_err(|_| {
                auth_err(
                    "credentials of visible ASCII".into(),
                    "other characters".into(),
                )
            })?;
            v.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, v);
        }
        let answer = self
            .client
            .request(
                Method::GET,
                url.as_str(),
                &headers,
                Body::Empty,
                ANSWER_LIMIT,
            )
            .map_err(|e| self.net_err("asking the token realm for a token", e))?;
        match (answer.status, &creds) {
            (200, _) => {}
            (401 | 403, None) => {
                return Err(RegistryError::NeedCredentials {
                    registry: self.registry.clone(),
                    repo: self.repo.clone(),
                    scheme: "bearer-token".into(),
                })
            }
            (401 | 403, Some(c)) => {
                return Err(RegistryError::Refused {
                    registry: self.registry.clone(),
                    repo: self.repo.clone(),
                    what: "a token from its realm".into(),
                    source_name: c.source.clone(),
                    status: answer.status,
                })
            }
            _ => return Err(self.status_err("asking the token realm for a token", &answer, "200")),
        }
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
        }
        let t: TokenAnswer = serde_json::from_slice(&answer.body).map_err(|e| {
            auth_err(
                "the token realm's JSON {\"token\": ...}".into(),
                format!("an answer that does not parse ({e})"),
            )
        })?;
        t.token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                auth_err(
                    "the token realm's JSON {\"token\": ...}".into(),
                    "no token in it".into(),
                )
            })
    }

    /// Push every blob, at most [`PARALLEL_UPLOADS`] at once, starting in
    /// `order`; outcomes in blob order. The first failure stops the rest.
    fn parallel(
        &self,
        blobs: &[Blob<'_>],
        order: &[usize],
        progress: Option<&(dyn Fn(&BlobPushed) + Sync)>,
    ) -> Result<Vec<BlobOutcome>, RegistryError> {
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let results: Mutex<Vec<Option<Result<BlobOutcome, RegistryError>>>> =
            Mutex::new((0..blobs.len()).map(|_| None).collect());
        // A digest twice in one image: the second waits for the first.
        let mut first_of: Vec<usize> = (0..blobs.len()).collect();
        for i in 0..blobs.len() {
            if let Some(j) = (0..i).find(|&j| blobs[j].digest == blobs[i].digest) {
                first_of[i] = j;
            }
        }
        let unique: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| first_of[i] == i)
            .collect();
        std::thread::scope(|s| {
            for _ in 0..PARALLEL_UPLOADS.min(unique.len()) {
                s.spawn(|| loop {
                    if failed.load(Ordering::Relaxed) {
                        return;
                    }
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = unique.get(n) else { return };
                    let out = self.push_blob(&blobs[i]);
                    match &out {
                        Ok(outcome) => {
                            if let Some(p) = progress {
                                p(&BlobPushed {
                                    digest: blobs[i].digest.to_string(),
                                    size: blobs[i].size,
                                    kind: blobs[i].kind,
                                    outcome: *outcome,
                                });
                            }
                        }
                        Err(_) => failed.store(true, Ordering::Relaxed),
                    }
                    results.lock().expect("results lock")[i] = Some(out);
                });
            }
        });
        let mut results = results.into_inner().expect("results lock");
        // The first failure in blob order, before any upload it stopped.
        if let Some(i) = (0..blobs.len()).find(|&i| matches!(results[i], Some(Err(_)))) {
            if let Some(Err(e)) = results[i].take() {
                return Err(e);
            }
        }
        // A digest's second place in the image was sent with its first.
        let mut outcomes = vec![BlobOutcome::Skipped; blobs.len()];
        for i in (0..blobs.len()).filter(|&i| first_of[i] == i) {
            match results[i].take() {
                Some(Ok(o)) => outcomes[i] = o,
                _ => {
                    return Err(RegistryError::Stopped {
                        registry: self.registry.clone(),
                        repo: self.repo.clone(),
                    })
                }
            }
        }
        Ok(outcomes)
    }

    /// HEAD, else upload one blob.
    fn push_blob(&self, blob: &Blob<'_>) -> Result<BlobOutcome, RegistryError> {
        let what = format!("{} blob {}", blob.kind, blob.digest);
        let none = HeaderMap::new();
        let blob_path = format!("blobs/{}", blob.digest);
        if self.exists(&blob_path, &none, &format!("checking for {what}"))? {
            return Ok(BlobOutcome::Skipped);
        }
        // A blob pushed before to another repository of this registry is
        // mounted from there: 201 is done; 202 is an upload session the
        // registry opened instead (it may refuse the mount), used as is.
        let mut started = None;
        if let Some(from) = self.mount_from(blob.digest) {
            let mount_what = format!("mounting {what} from {from}");
            let mut url = reqwest::Url::parse(&self.url("blobs/uploads/"))
                .expect("a registry URL made of a checked reference");
            url.query_pairs_mut()
                .append_pair("mount", blob.digest)
                .append_pair("from", &from);
            let answer = self.call(Method::POST, url.as_str(), &none, Body::Empty, &mount_what)?;
            match answer.status {
                201 => return Ok(BlobOutcome::Mounted),
                202 => started = Some(answer),
                // Anything else: a plain upload.
                _ => {}
            }
        }
        let location = match started {
            Some(s) => self.upload_location(&s, &format!("mounting {what}"))?,
            None => self.start_upload(&what)?,
        };
        self.send_blob(blob, &what, location)?;
        Ok(BlobOutcome::Uploaded)
    }

    /// PUT the manifest's exact bytes under the tag (or by digest); the
    /// registry must name it by the image's digest.
    fn put_manifest(&self, image: &Image, reference: &Reference) -> Result<String, RegistryError> {
        let target = reference.tag.as_deref().unwrap_or_else(|| image.digest());
        let what = format!("putting manifest {} as {target}", image.digest());
        let mut headers = HeaderMap::new();
        let media =
            HeaderValue::from_str(&image.manifest.media_type).map_err(|_| RegistryError::Auth {
                registry: self.registry.clone(),
                repo: self.repo.clone(),
                expected: "a manifest media type of visible ASCII".into(),
                found: format!("{:?}", image.manifest.media_type),
            })?;
        headers.insert(header::CONTENT_TYPE, media);
        let answer = self.call(
            Method::PUT,
            &self.url(&format!("manifests/{target}")),
            &headers,
            Body::Bytes(&image.manifest_json),
            &what,
        )?;
        if answer.status != 201 {
            return Err(self.status_err(&what, &answer, "201"));
        }
        match answer.header("docker-content-digest") {
            Some(found) if found == image.digest() => Ok(found.to_string()),
            Some(found) => Err(RegistryError::DigestMismatch {
                registry: self.registry.clone(),
                repo: self.repo.clone(),
                what,
                expected: image.digest().to_string(),
                found: found.to_string(),
            }),
            None => {
                // No digest named: the manifest must be there by ours.
                let check = format!("checking manifest {}", image.digest());
                let mut accept = HeaderMap::new();
                accept.insert(header::ACCEPT, headers[header::CONTENT_TYPE].clone());
                let head = self.call(
                    Method::HEAD,
                    &self.url(&format!("manifests/{}", image.digest())),
                    &accept,
                    Body::Empty,
                    &check,
                )?;
                if head.status != 200 {
                    return Err(self.status_err(&check, &head, "200"));
                }
                Ok(image.digest().to_string())
            }
        }
    }
}

/// The most entries a registry's push record keeps (about 1 MB), the
/// oldest dropped first: a record older than that is unlikely to name a
/// blob that is pushed again.
const MAX_RECORD_ENTRIES: usize = 10_000;
/// A record file larger than this is not read (it is only a hint).
const MAX_RECORD_BYTES: u64 = 4 << 20;

/// A registry's push record: `[digest, repository]` pairs, oldest first.
/// A record written before it was capped (a JSON object, digest →
/// repository) reads too, in digest order. A missing, damaged or
/// oversized record reads as empty.
fn read_record(path: &std::path::Path) -> Vec<(String, String)> {
    use std::io::Read;
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Record {
        Pairs(Vec<(String, String)>),
        Map(BTreeMap<String, String>),
    }
    let mut bytes = Vec::new();
    let read = std::fs::File::open(path)
        .and_then(|f| f.take(MAX_RECORD_BYTES + 1).read_to_end(&mut bytes));
    if read.is_err() || bytes.len() as u64 > MAX_RECORD_BYTES {
        return Vec::new();
    }
    match serde_json::from_slice(&bytes) {
        Ok(Record::Pairs(pairs)) => pairs,
        Ok(Record::Map(map)) => map.into_iter().collect(),
        Err(_) => Vec::new(),
    }
}

/// `record` with `digests` now in `repo`, as its newest entries (each
/// digest once), cut to the newest [`MAX_RECORD_ENTRIES`].
fn with_pushed(
    mut record: Vec<(String, String)>,
    digests: &[&str],
    repo: &str,
) -> Vec<(String, String)> {
    record.retain(|(d, _)| !digests.contains(&d.as_str()));
    let mut seen = std::collections::BTreeSet::new();
    record.extend(
        digests
            .iter()
            .filter(|d| seen.insert(**d))
            .map(|d| (d.to_string(), repo.to_owned())),
    );
    let excess = record.len().saturating_sub(MAX_RECORD_ENTRIES);
    record.drain(..excess);
    record
}

/// The registry's error document (`{"errors": [{"code", "message"}]}`) as
/// one short, redacted line; empty when there is none.
fn error_detail(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Doc {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let text = match serde_json::from_slice::<Doc>(body) {
        Ok(d) => d
            .errors
            .iter()
            .map(|e| format!("{} {}", e.code, e.message).trim().to_string())
            .collect::<Vec<_>>()
            .join("; "),
        Err(_) => String::from_utf8_lossy(body).trim().to_string(),
    };
    let short: String = text.chars().take(300).collect();
    net::redact(&short.replace(['\n', '\r'], " "))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_push_record_keeps_the_newest_entries_each_digest_once_and_reads_the_old_map() {
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(d, r)| (d.to_string(), r.to_string()))
                .collect()
        };
        let record = super::with_pushed(pairs(&[("a", "x"), ("b", "x")]), &["a", "c", "c"], "y");
        assert_eq!(record, pairs(&[("b", "x"), ("a", "y"), ("c", "y")]));

        let many: Vec<String> = (0..super::MAX_RECORD_ENTRIES + 5)
            .map(|i| format!("d{i}"))
            .collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let record = super::with_pushed(Vec::new(), &refs, "r");
        assert_eq!(record.len(), super::MAX_RECORD_ENTRIES);
        assert_eq!(record[0].0, "d5", "the oldest are dropped first");

        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.json");
        std::fs::write(&old, br#"{"sha256:1":"lib","sha256:2":"app"}"#).unwrap();
        assert_eq!(
            super::read_record(&old),
            pairs(&[("sha256:1", "lib"), ("sha256:2", "app")])
        );
        let new = dir.path().join("new.json");
        std::fs::write(&new, serde_json::to_vec(&record).unwrap()).unwrap();
        assert_eq!(super::read_record(&new), record);
        std::fs::write(&new, b"{not json").unwrap();
        assert!(super::read_record(&new).is_empty());
        assert!(super::read_record(&dir.path().join("missing.json")).is_empty());
    }

    #[test]
    fn registry_error_documents_become_one_short_line() {
        let doc = br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry","detail":"x"}]}"#;
        assert_eq!(
            super::error_detail(doc),
            "BLOB_UNKNOWN blob unknown to registry"
        );
        assert_eq!(super::error_detail(b""), "");
        assert_eq!(super::error_detail(b"oops\nline"), "oops line");
    }
}
