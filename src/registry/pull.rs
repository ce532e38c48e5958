//! Pulling an image: a base image (`[base] image`) and `envbuild pull`.
//!
//! An image is read from one of three places ([`ImageSource`]):
//!
//! - a registry, through the distribution API: `GET
//!   /v2/<repo>/manifests/<tag or digest>` with an `Accept` of the OCI and
//!   Docker manifest and index media types, then `GET
//!   /v2/<repo>/blobs/<digest>` for the config and the layers, with the
//!   authentication of a push ([`super::Session`], asking for `pull` only);
//! - `oci-layout:DIR`: an OCI image layout (`index.json`, `blobs/sha256/`);
//! - `oci-archive:PATH`: the same as a tar (what `envbuild realize` writes).
//!
//! Resolving ([`resolve`]) reads the manifest the reference names; an index
//! (OCI index or Docker manifest list) gives the `linux/amd64` manifest.
//! Every document is checked against its digest, the reference's digest
//! when it names one, and the config's platform against linux/amd64. The
//! result ([`Resolved`]) pins the manifest, the config and every layer by
//! digest and size: they are fetched later as fixed-output inputs
//! ([`fetch`]), each capped at its pinned size and hashed while it streams.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use envbuild_store::Store;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{CredentialPlaces, PushOptions, Reference, RegistryError, Session};
use crate::fetch::{self, FetchError, FetchOptions, Fetched};
use crate::net::{self, header, Body, Client, HeaderMap, HeaderValue, Method};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The layer media types a base image may have (compressed blobs kept as
/// they are; their contents are unpacked for the rootfs view).
pub const LAYER_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
];

/// The largest manifest, index or config read (they are small documents).
pub const DOCUMENT_LIMIT: u64 = 4 << 20;

/// The variable naming the registry for a reference without a host.
pub const BASE_REGISTRY_VAR: &str = "ENVBUILD_BASE_REGISTRY";

/// Where an image is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    Registry(Reference),
    /// An OCI layout directory; `digest` picks a manifest or index in it.
    Layout {
        dir: PathBuf,
        digest: Option<String>,
    },
    /// An OCI layout as a tar archive.
    Archive {
        path: PathBuf,
        digest: Option<String>,
    },
}

impl ImageSource {
    /// Read `text` (`oci-layout:DIR[@sha256:HEX]`,
    /// `oci-archive:PATH[@sha256:HEX]`, or a registry reference); relative
    /// paths are relative to `dir`. A reference whose first component is no
    /// registry host gets the one named by `$ENVBUILD_BASE_REGISTRY`.
    pub fn parse(text: &str, dir: &Path) -> Result<ImageSource, RegistryError> {
        Self::parse_with(text, dir, std::env::var(BASE_REGISTRY_VAR).ok())
    }

    fn parse_with(
        text: &str,
        dir: &Path,
        default_registry: Option<String>,
    ) -> Result<ImageSource, RegistryError> {
        let local = |rest: &str| -> Result<(PathBuf, Option<String>), RegistryError> {
            let (path, digest) = match rest.rsplit_once('@') {
                Some((p, d)) if d.starts_with("sha256:") => {
                    if !crate::spec::is_hex64(&d["sha256:".len()..]) {
                        return Err(RegistryError::BadReference {
                            reference: text.to_string(),
                            problem: format!(
                                "its digest {d:?} is not sha256:<64 lowercase hex digits>"
                            ),
                        });
                    }
                    (p, Some(d.to_string()))
                }
                _ => (rest, None),
            };
            if path.is_empty() {
                return Err(RegistryError::BadReference {
                    reference: text.to_string(),
                    problem: "it names no path".into(),
                });
            }
            Ok((dir.join(path), digest))
        };
        if let Some(rest) = text.strip_prefix("oci-layout:") {
            let (dir, digest) = local(rest)?;
            return Ok(ImageSource::Layout { dir, digest });
        }
        if let Some(rest) = text.strip_prefix("oci-archive:") {
            let (path, digest) = local(rest)?;
            return Ok(ImageSource::Archive { path, digest });
        }
        let first = text.split('/').next().unwrap_or("");
        let hostless = !text.contains('/')
            || !(first.contains(['.', ':']) || first == "localhost" || first.starts_with('['));
        if hostless {
            return match default_registry.filter(|r| !r.is_empty()) {
                Some(r) => Reference::parse(&format!("{r}/{text}")).map(ImageSource::Registry),
                None => Err(RegistryError::BadReference {
                    reference: text.to_string(),
                    problem: format!(
                        "it names no registry host, and ${BASE_REGISTRY_VAR} names none (expected HOST[:PORT]/REPO, or {BASE_REGISTRY_VAR}=HOST[:PORT] naming the registry or mirror that serves {first})"
                    ),
                }),
            };
        }
        Reference::parse(text).map(ImageSource::Registry)
    }

    /// The image as messages name it.
    pub fn shown(&self) -> String {
        match self {
            ImageSource::Registry(r) => {
                let mut s = format!("{}/{}", net::redact(&r.registry), r.repository);
                if let Some(t) = &r.tag {
                    s.push_str(&format!(":{t}"));
                }
                if let Some(d) = &r.digest {
                    s.push_str(&format!("@{d}"));
                }
                s
            }
            ImageSource::Layout { dir, digest } => format!(
                "oci-layout:{}{}",
                dir.display(),
                digest.as_ref().map(|d| format!("@{d}")).unwrap_or_default()
            ),
            ImageSource::Archive { path, digest } => format!(
                "oci-archive:{}{}",
                path.display(),
                digest.as_ref().map(|d| format!("@{d}")).unwrap_or_default()
            ),
        }
    }

    fn named_digest(&self) -> Option<&str> {
        match self {
            ImageSource::Registry(r) => r.digest.as_deref(),
            ImageSource::Layout { digest, .. } | ImageSource::Archive { digest, .. } => {
                digest.as_deref()
            }
        }
    }
}

/// A blob as a manifest names it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Blob {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

impl Blob {
    pub fn hex(&self) -> &str {
        self.digest.strip_prefix("sha256:").unwrap_or(&self.digest)
    }
}

/// An image resolved for linux/amd64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// What the reference named: the manifest, or the index it was chosen
    /// from.
    pub digest: String,
    pub manifest: Blob,
    pub config: Blob,
    pub layers: Vec<Blob>,
}

#[derive(Deserialize)]
struct DocJson {
    #[serde(rename = "schemaVersion", default)]
    schema_version: Option<u32>,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<IndexEntry>>,
    #[serde(default)]
    config: Option<Blob>,
    #[serde(default)]
    layers: Option<Vec<Blob>>,
}

#[derive(Deserialize)]
struct IndexEntry {
    #[serde(flatten)]
    blob: Blob,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize, Clone)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

#[derive(Deserialize)]
struct ConfigPlatform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    rootfs: Option<RootFs>,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn bad(
    image: &ImageSource,
    what: impl Into<String>,
    expected: impl Into<String>,
    found: impl Into<String>,
) -> RegistryError {
    RegistryError::Pull {
        image: image.shown(),
        what: what.into(),
        expected: expected.into(),
        found: found.into(),
    }
}

/// Where documents and blobs are read from.
enum Reader<'a> {
    Registry {
        session: Box<Session<'a>>,
        reference: &'a Reference,
    },
    Layout(&'a Path),
    Archive(&'a Path),
}

impl<'a> Reader<'a> {
    fn new(client: &'a Client, source: &'a ImageSource, opts: &'a PushOptions<'a>) -> Reader<'a> {
        match source {
            ImageSource::Registry(r) => {
                let mut session = Session::new(client, r, opts);
                session.actions = "pull";
                Reader::Registry {
                    session: Box::new(session),
                    reference: r,
                }
            }
            ImageSource::Layout { dir, .. } => Reader::Layout(dir),
            ImageSource::Archive { path, .. } => Reader::Archive(path),
        }
    }

    /// A manifest or index by tag or digest (registry), or a blob of the
    /// layout; `None` for the layout's `index.json`.
    fn document(
        &self,
        source: &ImageSource,
        name: Option<&str>,
    ) -> Result<(Vec<u8>, Option<String>), RegistryError> {
        // A digest from an index names a file or a URL path: it must be
        // one (no `/`, no `..`).
        if let Some(d) = name {
            check_digest(source, "manifest", d)?;
        }
        match self {
            Reader::Registry { session, reference } => {
                let target = name
                    .map(str::to_string)
                    .or_else(|| reference.tag.clone())
                    .unwrap_or_else(|| "latest".into());
                let mut h = HeaderMap::new();
                h.insert(
                    header::ACCEPT,
                    HeaderValue::from_static(
                        "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json",
                    ),
                );
                let what = format!("getting manifest {target}");
                let a = session.call(
                    Method::GET,
                    &session.url(&format!("manifests/{target}")),
                    &h,
                    Body::Empty,
                    &what,
                )?;
                match a.status {
                    200 => {
                        let t = a.header("content-type").map(str::to_string);
                        Ok((a.body, t))
                    }
                    404 => Err(RegistryError::UnknownManifest {
                        registry: session.registry.clone(),
                        repo: session.repo.clone(),
                        target,
                        detail: super::error_detail(&a.body),
                    }),
                    _ => Err(session.status_err(&what, &a, "200")),
                }
            }
            Reader::Layout(dir) => {
                let path = match name {
                    None => dir.join("index.json"),
                    Some(d) => dir.join("blobs/sha256").join(hex_of(d)),
                };
                read_small(&path).map(|b| (b, None)).map_err(|e| {
                    bad(
                        source,
                        format!("reading {}", path.display()),
                        "a readable OCI layout file",
                        e.to_string(),
                    )
                })
            }
            Reader::Archive(path) => {
                let member = match name {
                    None => "index.json".to_string(),
                    Some(d) => format!("blobs/sha256/{}", hex_of(d)),
                };
                let mut out = Vec::new();
                let found =
                    archive_member(path, &member, DOCUMENT_LIMIT, &mut out).map_err(|e| {
                        bad(
                            source,
                            format!("reading {member} of {}", path.display()),
                            "a readable OCI archive",
                            e.to_string(),
                        )
                    })?;
                if !found {
                    return Err(bad(
                        source,
                        format!("reading {}", path.display()),
                        format!("a member {member}"),
                        "none",
                    ));
                }
                Ok((out, None))
            }
        }
    }

    /// A small blob (the config), whole.
    fn small_blob(&self, source: &ImageSource, blob: &Blob) -> Result<Vec<u8>, RegistryError> {
        if blob.size > DOCUMENT_LIMIT {
            return Err(bad(
                source,
                format!("config {}", blob.digest),
                format!("at most {DOCUMENT_LIMIT} bytes"),
                format!("{} bytes", blob.size),
            ));
        }
        let bytes = match self {
            Reader::Registry { session, .. } => {
                let what = format!("getting config blob {}", blob.digest);
                let a = session.call(
                    Method::GET,
                    &session.url(&format!("blobs/{}", blob.digest)),
                    &HeaderMap::new(),
                    Body::Empty,
                    &what,
                )?;
                if a.status != 200 {
                    return Err(session.status_err(&what, &a, "200"));
                }
                a.body
            }
            _ => self.document(source, Some(&blob.digest))?.0,
        };
        Ok(bytes)
    }
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

fn read_small(path: &Path) -> std::io::Result<Vec<u8>> {
    let f = File::open(path)?;
    let mut out = Vec::new();
    f.take(DOCUMENT_LIMIT + 1).read_to_end(&mut out)?;
    if out.len() as u64 > DOCUMENT_LIMIT {
        return Err(std::io::Error::other(format!(
            "longer than {DOCUMENT_LIMIT} bytes"
        )));
    }
    Ok(out)
}

/// Copy the member `name` of the tar at `path` into `out` (at most `limit`
/// bytes); false when there is none. The archive is only read, never
/// unpacked.
fn archive_member(
    path: &Path,
    name: &str,
    limit: u64,
    out: &mut dyn Write,
) -> std::io::Result<bool> {
    let f = File::open(path)?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(f));
    for entry in archive.entries()? {
        let entry = entry?;
        let p = entry.path_bytes();
        let p = String::from_utf8_lossy(&p);
        if p.trim_start_matches("./") != name
            || entry.header().entry_type() != tar::EntryType::Regular
        {
            continue;
        }
        if entry.size() > limit {
            return Err(std::io::Error::other(format!(
                "{name} has {} bytes, more than the {limit} expected",
                entry.size()
            )));
        }
        std::io::copy(&mut entry.take(limit), out)?;
        return Ok(true);
    }
    Ok(false)
}

/// Resolve `source` to its linux/amd64 image, verifying every document.
pub fn resolve(
    client: &Client,
    source: &ImageSource,
    credentials: CredentialPlaces,
) -> Result<Resolved, RegistryError> {
    let opts = PushOptions {
        credentials,
        ..PushOptions::default()
    };
    let reader = Reader::new(client, source, &opts);
    let named = source.named_digest();
    let local_index = matches!(
        source,
        ImageSource::Layout { .. } | ImageSource::Archive { .. }
    ) && named.is_none();
    // A registry reference with a tag and a digest is read by its tag and
    // checked against the digest, so that a mismatch names both.
    let first = match source {
        ImageSource::Registry(r) if r.tag.is_some() => None,
        _ => named,
    };
    let (bytes, content_type) = reader.document(source, first)?;
    let top_digest = sha256_digest(&bytes);
    if let Some(d) = named {
        if d != top_digest {
            return Err(bad(
                source,
                "the manifest the reference names",
                format!("bytes with digest {d}"),
                format!("bytes with digest {top_digest} ({} bytes)", bytes.len()),
            ));
        }
    }
    // Down from an index (at most two levels: a layout's index.json may
    // point at an index) to the image manifest.
    let mut doc_bytes = bytes;
    let mut doc_type = content_type;
    let mut manifest_digest = top_digest.clone();
    let mut manifest_size = doc_bytes.len() as u64;
    let mut top_is_layout_index = local_index;
    for _ in 0..3 {
        let doc: DocJson = serde_json::from_slice(&doc_bytes).map_err(|e| {
            bad(
                source,
                format!("manifest {manifest_digest}"),
                "an OCI or Docker manifest or index (JSON)",
                format!("a document that does not parse: {e}"),
            )
        })?;
        let media = doc
            .media_type
            .clone()
            .or(doc_type.clone())
            .unwrap_or_default();
        let is_index = doc.manifests.is_some() || media == OCI_INDEX || media == DOCKER_LIST;
        if !is_index {
            if doc.schema_version != Some(2) {
                return Err(bad(
                    source,
                    format!("manifest {manifest_digest}"),
                    "schemaVersion 2",
                    format!("{:?}", doc.schema_version),
                ));
            }
            let (Some(config), Some(layers)) = (doc.config, doc.layers) else {
                return Err(bad(
                    source,
                    format!("manifest {manifest_digest}"),
                    "an image manifest with config and layers",
                    format!("a document of media type {media:?} without them"),
                ));
            };
            return finish(
                &reader,
                source,
                top_digest,
                Blob {
                    media_type: if media.is_empty() {
                        OCI_MANIFEST.into()
                    } else {
                        media
                    },
                    digest: manifest_digest,
                    size: manifest_size,
                },
                config,
                layers,
            );
        }
        let entries = doc.manifests.unwrap_or_default();
        let amd64: Vec<&IndexEntry> = entries
            .iter()
            .filter(|e| {
                e.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
            })
            .collect();
        let chosen = match (amd64.as_slice(), entries.as_slice()) {
            ([one], _) => *one,
            ([], [only]) if only.platform.is_none() || top_is_layout_index => only,
            ([], _) => {
                let found: Vec<String> = entries
                    .iter()
                    .map(|e| match &e.platform {
                        Some(p) => format!("{}/{}", p.os, p.architecture),
                        None => format!("{} (no platform)", e.blob.digest),
                    })
                    .collect();
                return Err(bad(
                    source,
                    format!("index {manifest_digest}"),
                    "a manifest for linux/amd64",
                    if found.is_empty() {
                        "no manifests".to_string()
                    } else {
                        format!("manifests for {} only", found.join(", "))
                    },
                ));
            }
            (many, _) => {
                return Err(bad(
                    source,
                    format!("index {manifest_digest}"),
                    "one manifest for linux/amd64",
                    format!("{} of them", many.len()),
                ))
            }
        };
        top_is_layout_index = false;
        let (b, t) = reader.document(source, Some(&chosen.blob.digest))?;
        let d = sha256_digest(&b);
        if d != chosen.blob.digest || b.len() as u64 != chosen.blob.size {
            return Err(bad(
                source,
                format!("manifest {}", chosen.blob.digest),
                format!("{} bytes with that digest", chosen.blob.size),
                format!("{} bytes with digest {d}", b.len()),
            ));
        }
        manifest_digest = d;
        manifest_size = b.len() as u64;
        doc_type = t.or(Some(chosen.blob.media_type.clone()));
        doc_bytes = b;
    }
    Err(bad(
        source,
        "the reference",
        "an image manifest within two levels of index",
        "indexes nested deeper",
    ))
}

fn finish(
    reader: &Reader,
    source: &ImageSource,
    top_digest: String,
    manifest: Blob,
    config: Blob,
    layers: Vec<Blob>,
) -> Result<Resolved, RegistryError> {
    for l in &layers {
        if !LAYER_TYPES.contains(&l.media_type.as_str()) {
            return Err(bad(
                source,
                format!("layer {}", l.digest),
                format!("a layer of media type {}", LAYER_TYPES.join(", ")),
                format!("{:?}", l.media_type),
            ));
        }
        check_digest(source, "layer", &l.digest)?;
    }
    check_digest(source, "config", &config.digest)?;
    let bytes = reader.small_blob(source, &config)?;
    let d = sha256_digest(&bytes);
    if d != config.digest || bytes.len() as u64 != config.size {
        return Err(bad(
            source,
            format!("config {}", config.digest),
            format!("{} bytes with that digest", config.size),
            format!("{} bytes with digest {d}", bytes.len()),
        ));
    }
    let c: ConfigPlatform = serde_json::from_slice(&bytes).map_err(|e| {
        bad(
            source,
            format!("config {}", config.digest),
            "an image config (JSON)",
            format!("a document that does not parse: {e}"),
        )
    })?;
    if c.os != "linux" || c.architecture != "amd64" {
        return Err(bad(
            source,
            format!("manifest {}", manifest.digest),
            "an image for linux/amd64",
            format!("an image for {}/{}", c.os, c.architecture),
        ));
    }
    let diff_ids = c.rootfs.map(|r| r.diff_ids.len()).unwrap_or(0);
    if diff_ids != layers.len() {
        return Err(bad(
            source,
            format!("config {}", config.digest),
            format!("{} rootfs.diff_ids, one per layer", layers.len()),
            diff_ids.to_string(),
        ));
    }
    Ok(Resolved {
        digest: top_digest,
        manifest,
        config,
        layers,
    })
}

fn check_digest(source: &ImageSource, what: &str, digest: &str) -> Result<(), RegistryError> {
    match digest.strip_prefix("sha256:") {
        Some(h) if crate::spec::is_hex64(h) => Ok(()),
        _ => Err(bad(
            source,
            format!("{what} {digest:?}"),
            "a digest sha256:<64 lowercase hex digits>",
            format!("{digest:?}"),
        )),
    }
}

/// Which kind of document a fetch reads (a registry serves manifests and
/// blobs at different paths).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobKind {
    Manifest,
    Blob,
}

/// Fetch one pinned blob of `source` into the store (a fixed-output
/// input: capped at `size`, hashed while it streams, added only when its
/// sha256 is `sha256`).
pub fn fetch(
    store: &mut Store,
    source: &ImageSource,
    kind: BlobKind,
    sha256: &str,
    size: u64,
    name: &str,
    opts: &FetchOptions,
) -> Result<Fetched, FetchError> {
    let digest = format!("sha256:{sha256}");
    let shown = format!("{} blob {digest}", source.shown());
    let reg_err = |e: RegistryError| FetchError::Registry(Box::new(e));
    // The lock's digest names a file or a URL path.
    check_digest(source, "blob", &digest).map_err(reg_err)?;
    match source {
        ImageSource::Layout { dir, .. } => {
            let path = dir.join("blobs/sha256").join(sha256);
            fetch::fetch_with(store, sha256, Some(size), name, &shown, opts, |dest, _| {
                copy_capped(
                    &shown,
                    &mut File::open(&path).map_err(|source| FetchError::Io {
                        url: shown.clone(),
                        what: "reading",
                        path: path.clone(),
                        source,
                    })?,
                    dest,
                    size,
                )
            })
        }
        ImageSource::Archive { path, .. } => {
            fetch::fetch_with(store, sha256, Some(size), name, &shown, opts, |dest, _| {
                let mut out = net::HashingFile::create(dest).map_err(|source| FetchError::Io {
                    url: shown.clone(),
                    what: "creating",
                    path: dest.to_path_buf(),
                    source,
                })?;
                let member = format!("blobs/sha256/{sha256}");
                let io = |source| FetchError::Io {
                    url: shown.clone(),
                    what: "reading",
                    path: path.clone(),
                    source,
                };
                let mut w = WriteSink(&mut out);
                let found = archive_member(path, &member, size, &mut w).map_err(io)?;
                if !found {
                    return Err(io(std::io::Error::other(format!("no member {member}"))));
                }
                let (sha, len, _) = out.finish().map_err(io)?;
                Ok((sha, len))
            })
        }
        ImageSource::Registry(reference) => {
            let client = Client::from_env().map_err(|e| FetchError::Net {
                file: name.to_string(),
                source: e,
            })?;
            let popts = PushOptions {
                credentials: CredentialPlaces::from_env(),
                // Where blobs are is recorded as a push records it: a later
                // push to another repository of this registry mounts the
                // base's layers from this one instead of uploading them.
                records: store.cache_dir("registry-pushes").ok(),
                ..PushOptions::default()
            };
            let mut session = Session::new(&client, reference, &popts);
            session.actions = "pull";
            let rest = match kind {
                BlobKind::Manifest => format!("manifests/{digest}"),
                BlobKind::Blob => format!("blobs/{digest}"),
            };
            let url = session.url(&rest);
            let fetched = fetch::fetch_with(
                store,
                sha256,
                Some(size),
                name,
                &shown,
                opts,
                |dest, bar| {
                    // A HEAD first: it earns the authorization the GET carries,
                    // and names a missing blob clearly.
                    let mut accept = HeaderMap::new();
                    accept.insert(
                    header::ACCEPT,
                    HeaderValue::from_static(
                        "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json",
                    ),
                );
                    let what = format!("checking for {digest}");
                    let head = session
                        .call(Method::HEAD, &url, &accept, Body::Empty, &what)
                        .map_err(reg_err)?;
                    match head.status {
                        200 => {}
                        404 if kind == BlobKind::Manifest => {
                            return Err(reg_err(RegistryError::UnknownManifest {
                                registry: session.registry.clone(),
                                repo: session.repo.clone(),
                                target: digest.clone(),
                                detail: String::new(),
                            }))
                        }
                        _ => return Err(reg_err(session.status_err(&what, &head, "200"))),
                    }
                    let mut headers = accept.clone();
                    if let Some(a) = session.authorization.lock().expect("auth lock").clone() {
                        headers.insert(header::AUTHORIZATION, a);
                    }
                    fetch::download(&url, dest, Some(size), opts, Some(&headers), bar)
                },
            )?;
            if kind == BlobKind::Blob {
                session.remember(&[&digest]);
            }
            Ok(fetched)
        }
    }
}

struct WriteSink<'a>(&'a mut net::HashingFile);

impl Write for WriteSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        net::Sink::append(self.0, buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn copy_capped(
    shown: &str,
    src: &mut File,
    dest: &Path,
    size: u64,
) -> Result<(String, u64), FetchError> {
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| FetchError::Io {
            url: shown.to_string(),
            what,
            path,
            source,
        }
    };
    let mut out = File::create(dest).map_err(io("creating", dest))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let mut limited = src.take(size + 1);
    loop {
        let n = limited.read(&mut buf).map_err(io("reading", dest))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io("writing", dest))?;
        total += n as u64;
    }
    Ok((hex::encode(h.finalize()), total))
}

/// `envbuild pull`: resolve `source` and fetch its manifest, config and
/// layers into the store (each verified).
pub fn pull(
    store: &mut Store,
    source: &ImageSource,
    opts: &FetchOptions,
) -> Result<(Resolved, Vec<Fetched>), PullError> {
    let client = Client::from_env().map_err(|e| PullError::Net(Box::new(e)))?;
    let resolved = resolve(&client, source, CredentialPlaces::from_env())?;
    let mut items = Vec::new();
    let mut blobs = vec![
        (BlobKind::Manifest, &resolved.manifest, "manifest"),
        (BlobKind::Blob, &resolved.config, "config"),
    ];
    blobs.extend(resolved.layers.iter().map(|l| (BlobKind::Blob, l, "layer")));
    for (kind, b, what) in blobs {
        let name = blob_item_name(what, b.hex());
        items.push(fetch(store, source, kind, b.hex(), b.size, &name, opts)?);
    }
    Ok((resolved, items))
}

/// The store item name of a base image's blob.
pub fn blob_item_name(what: &str, hex: &str) -> String {
    format!("oci-{what}-{}", &hex[..hex.len().min(16)])
}

/// What `envbuild pull` fails with.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Registry(Box<RegistryError>),
    #[error(transparent)]
    Fetch(Box<FetchError>),
    #[error(transparent)]
    Net(Box<net::NetError>),
}

impl From<RegistryError> for PullError {
    fn from(e: RegistryError) -> PullError {
        PullError::Registry(Box::new(e))
    }
}

impl From<FetchError> for PullError {
    fn from(e: FetchError) -> PullError {
        PullError::Fetch(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_layouts_archives_or_references() {
        let d = Path::new("/spec");
        assert_eq!(
            ImageSource::parse_with("oci-layout:base", d, None).unwrap(),
            ImageSource::Layout {
                dir: "/spec/base".into(),
                digest: None
            }
        );
        let hex = "a".repeat(64);
        assert_eq!(
            ImageSource::parse_with(&format!("oci-archive:b.tar@sha256:{hex}"), d, None).unwrap(),
            ImageSource::Archive {
                path: "/spec/b.tar".into(),
                digest: Some(format!("sha256:{hex}"))
            }
        );
        let ImageSource::Registry(r) =
            ImageSource::parse_with("127.0.0.1:5000/base:1", d, None).unwrap()
        else {
            panic!("a registry reference")
        };
        assert_eq!(
            (r.repository.as_str(), r.tag.as_deref()),
            ("base", Some("1"))
        );
    }

    #[test]
    fn a_reference_without_a_host_needs_a_configured_registry() {
        let d = Path::new("/spec");
        let e = ImageSource::parse_with("team/cuda:12", d, None).unwrap_err();
        assert!(e.to_string().contains(BASE_REGISTRY_VAR), "{e}");
        let ImageSource::Registry(r) =
            ImageSource::parse_with("team/cuda:12", d, Some("127.0.0.1:5000".into())).unwrap()
        else {
            panic!("a registry reference")
        };
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/cuda");
        assert!(ImageSource::parse_with("oci-layout:x@sha256:12", d, None).is_err());
    }
}
