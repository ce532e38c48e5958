//! Registry operations for small artifacts and plain blobs, as the binary
//! cache's `oci://` backend uses them ([`crate::cache::oci`]): a manifest
//! read, checked for or written under a tag, a blob checked for, uploaded
//! (through the push's resumable upload) or downloaded capped at a size. Every request is a
//! [`Session`] request: the same authentication (basic, bearer token),
//! the same plain-HTTP rule (loopback or named insecure), the same client
//! policy (timeouts, retries, caps, redaction) as a push or a pull.

use sha2::{Digest, Sha256};

use super::{Blob, RegistryError, Session};
use crate::net::{header, Body, Download, HeaderMap, HeaderValue, Method, Sink};

/// The OCI image manifest media type (what an artifact manifest is sent as).
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

impl Session<'_> {
    /// Ask a bearer token for `pull` only (a session that only reads).
    pub(crate) fn pull_only(mut self) -> Self {
        self.actions = "pull";
        self
    }

    fn manifest_accept() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static(OCI_MANIFEST));
        h
    }

    /// The manifest tagged `tag`, or `None` when the repository has no such
    /// tag (404). An answer is read up to the client's answer limit (a few
    /// MiB) and refused past `limit` bytes.
    pub(crate) fn manifest_by_tag(
        &self,
        tag: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let what = format!("getting manifest {tag}");
        let a = self.call(
            Method::GET,
            &self.url(&format!("manifests/{tag}")),
            &Self::manifest_accept(),
            Body::Empty,
            &what,
        )?;
        match a.status {
            200 => {}
            404 => return Ok(None),
            _ => return Err(self.status_err(&what, &a, "200 or 404")),
        }
        if a.body.len() as u64 > limit {
            return Err(RegistryError::Status {
                registry: self.registry.clone(),
                repo: self.repo.clone(),
                what,
                status: a.status,
                expected: "a manifest within the size limit",
                detail: format!("{} bytes, more than {limit}", a.body.len()),
            });
        }
        Ok(Some(a.body))
    }

    /// Whether the repository has a manifest tagged `tag` (HEAD).
    pub(crate) fn has_manifest(&self, tag: &str) -> Result<bool, RegistryError> {
        self.exists(
            &format!("manifests/{tag}"),
            &Self::manifest_accept(),
            &format!("checking for manifest {tag}"),
        )
    }

    /// PUT `bytes` (an OCI image manifest) under `tag`; the registry must
    /// name it by its sha256, which is returned.
    pub(crate) fn put_manifest_tagged(
        &self,
        tag: &str,
        bytes: &[u8],
    ) -> Result<String, RegistryError> {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        let what = format!("putting manifest {digest} as {tag}");
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(OCI_MANIFEST));
        let a = self.call(
            Method::PUT,
            &self.url(&format!("manifests/{tag}")),
            &h,
            Body::Bytes(bytes),
            &what,
        )?;
        if a.status != 201 {
            return Err(self.status_err(&what, &a, "201"));
        }
        match a.header("docker-content-digest") {
            Some(found) if found != digest => Err(RegistryError::DigestMismatch {
                registry: self.registry.clone(),
                repo: self.repo.clone(),
                what,
                expected: digest,
                found: found.to_string(),
            }),
            _ => Ok(digest),
        }
    }

    /// Whether the repository has the blob `digest` (HEAD).
    pub(crate) fn has_blob(&self, digest: &str) -> Result<bool, RegistryError> {
        self.exists(
            &format!("blobs/{digest}"),
            &HeaderMap::new(),
            &format!("checking for blob {digest}"),
        )
    }

    /// Upload the blob `digest` as a push uploads a layer: in one `PUT`,
    /// or in chunks past the chunk size, resumed after a cut connection
    /// ([`super::upload`]).
    pub(crate) fn upload_blob(
        &self,
        digest: &str,
        size: u64,
        body: Body<'_>,
    ) -> Result<(), RegistryError> {
        let blob = Blob {
            digest,
            size,
            kind: "cache",
            body,
        };
        let what = format!("cache blob {digest}");
        let at = self.start_upload(&what)?;
        self.send_blob(&blob, &what, at)
    }

    /// Download the blob `digest` into `sink`, at most `cap` bytes (a
    /// longer body is refused); `None` when the repository lacks it. A HEAD
    /// first earns the authorization the GET carries.
    pub(crate) fn download_blob(
        &self,
        digest: &str,
        cap: u64,
        sink: &mut dyn Sink,
    ) -> Result<Option<u64>, RegistryError> {
        if !self.has_blob(digest)? {
            return Ok(None);
        }
        let url = self.url(&format!("blobs/{digest}"));
        let mut headers = HeaderMap::new();
        if let Some(a) = self.authorization.lock().expect("auth lock").clone() {
            headers.insert(header::AUTHORIZATION, a);
        }
        let opts = Download {
            size: Some(cap),
            progress: None,
            headers: Some(&headers),
        };
        match self.client.download(&url, sink, &opts) {
            Ok(n) => Ok(Some(n)),
            Err(e) if matches!(e.last().status(), Some(404)) => Ok(None),
            Err(e) => Err(self.net_err(&format!("downloading blob {digest}"), e)),
        }
    }
}
