//! A binary cache in an OCI registry: `oci://HOST[:PORT]/REPO`.
//!
//! The cache's files become registry objects of one repository, so that a
//! team that runs a registry (registry:2, Harbor, a cloud one) needs nothing
//! else:
//!
//! | cache file                          | in the registry                                    |
//! |-------------------------------------|----------------------------------------------------|
//! | `nix-cache-info`                    | manifest tagged `nix-cache-info`                   |
//! | `<hash32>.narinfo`                  | manifest tagged `<hash32>.narinfo` (the file name) |
//! | `realisations/<key>!<out>.json`     | manifest tagged `realisation.<key, ':' → '-'>.<out>` |
//! | `nar/<file hash, nix-base32>.nar.*` | blob `sha256:<the same hash, hex>`                 |
//!
//! Realisation keys are `sha256:<64 hex>` or `fetch:sha256:<64 hex>`, so
//! the tag of `realisations/fetch:sha256:ab…!out.json` is
//! `realisation.fetch-sha256-ab….out` (93 characters at most; tags allow
//! `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`). A NAR file is named by its own
//! sha256 (the narinfo's `FileHash`), which is the blob's digest.
//!
//! Each manifest is an OCI image manifest for an artifact (image-spec
//! 1.1): `artifactType` says what it holds, the config is the empty
//! descriptor (`application/vnd.oci.empty.v1+json`, `{}`), and the file's
//! text is the annotation `envbuild.cache.file`, beside
//! `envbuild.cache.path` (the file's name, checked on reading). A
//! narinfo's manifest has the NAR blob as its one layer (so the registry
//! keeps the blob while the narinfo is tagged); the others have the empty
//! descriptor as their one layer. A lookup is one GET of a manifest by
//! tag (a 404 is a miss); `exists` is a HEAD. Nothing else is read: what
//! the text says is verified exactly as from any other backend
//! ([`super::substitute`]).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

use super::CacheError;
use crate::net::{self, Body, Client, Sink};
use crate::registry::{CredentialPlaces, PushOptions, Reference, RegistryError};

/// What an artifact manifest of the cache holds.
pub const ARTIFACT_NARINFO: &str = "application/vnd.envbuild.narinfo.v1";
pub const ARTIFACT_REALISATION: &str = "application/vnd.envbuild.realisation.v1+json";
pub const ARTIFACT_CACHE_INFO: &str = "application/vnd.envbuild.nix-cache-info.v1";
/// The NAR layer of a narinfo's manifest (`+zstd`, `+xz`, `+bzip2` when
/// compressed).
pub const NAR_MEDIA_TYPE: &str = "application/vnd.envbuild.nix.nar.v1";
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The empty descriptor's content (`{}`) and digest.
pub const EMPTY_JSON: &[u8] = b"{}";
pub const EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
/// The annotations.
pub const FILE_ANNOTATION: &str = "envbuild.cache.file";
pub const PATH_ANNOTATION: &str = "envbuild.cache.path";
/// The longest manifest read.
pub const MAX_MANIFEST: u64 = 4 << 20;
/// Registries named insecure (plain HTTP off loopback), as for `push
/// --insecure-registry`: a list separated by spaces or commas.
pub const INSECURE_VAR: &str = "ENVBUILD_INSECURE_REGISTRIES";

/// Where a cache file lives in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    /// A manifest under this tag, of this artifact type.
    Manifest {
        tag: String,
        artifact_type: &'static str,
    },
    /// A blob (a NAR file) by digest.
    Blob { digest: String },
}

/// The registry object of the cache file `rel`; `None` for a name the
/// layout does not have (nothing else is ever asked of the registry).
pub fn object_of(rel: &str) -> Option<Object> {
    let manifest = |tag: String, artifact_type| Some(Object::Manifest { tag, artifact_type });
    if rel == "nix-cache-info" {
        return manifest(rel.to_string(), ARTIFACT_CACHE_INFO);
    }
    if let Some(hash) = rel.strip_suffix(".narinfo") {
        let ok = hash.len() == 32 && envbuild_store::nixbase32::decode(hash).is_ok();
        return if ok {
            manifest(rel.to_string(), ARTIFACT_NARINFO)
        } else {
            None
        };
    }
    if let Some(rest) = rel.strip_prefix("realisations/") {
        let (key, output) = rest.strip_suffix(".json")?.split_once('!')?;
        let output_ok = !output.is_empty()
            && output.len() <= 16
            && output.bytes().all(|b| b.is_ascii_lowercase());
        if !super::realisation::valid_key(key) || !output_ok {
            return None;
        }
        return manifest(
            format!("realisation.{}.{output}", key.replace(':', "-")),
            ARTIFACT_REALISATION,
        );
    }
    if let Some(file) = rel.strip_prefix("nar/") {
        let hash = [".nar.zst", ".nar.xz", ".nar.bz2", ".nar"]
            .iter()
            .find_map(|ext| file.strip_suffix(ext))?;
        let bytes = envbuild_store::nixbase32::decode(hash).ok()?;
        if bytes.len() != 32 || envbuild_store::nixbase32::encode(&bytes) != hash {
            return None;
        }
        return Some(Object::Blob {
            digest: format!("sha256:{}", hex::encode(bytes)),
        });
    }
    None
}

#[derive(serde::Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType")]
    _media_type: String,
    #[serde(rename = "digest")]
    _digest: String,
    #[serde(rename = "size")]
    _size: u64,
}

#[derive(serde::Deserialize)]
struct Manifest {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(rename = "artifactType", default)]
    artifact_type: Option<String>,
    #[serde(rename = "config")]
    _config: Descriptor,
    #[serde(rename = "layers", default)]
    _layers: Vec<Descriptor>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

/// The file a cache manifest carries: (expected, found) when it is not a
/// manifest of `artifact_type` for the file `rel`. Untrusted bytes (the
/// fuzz target `binary_cache` reads them through this).
pub fn parse_manifest(
    bytes: &[u8],
    rel: &str,
    artifact_type: &str,
) -> Result<String, (&'static str, String)> {
    let m: Manifest = serde_json::from_slice(bytes).map_err(|e| {
        (
            "an OCI image manifest (schemaVersion, config, layers, annotations)",
            e.to_string(),
        )
    })?;
    if m.schema_version != 2 {
        return Err(("schemaVersion 2", m.schema_version.to_string()));
    }
    if m.media_type
        .as_deref()
        .is_some_and(|t| t != crate::registry::artifact::OCI_MANIFEST)
    {
        return Err((
            "mediaType application/vnd.oci.image.manifest.v1+json",
            format!("{:?}", m.media_type.unwrap_or_default()),
        ));
    }
    if m.artifact_type.as_deref() != Some(artifact_type) {
        return Err((
            "the artifactType of the file asked for",
            format!("{:?}", m.artifact_type.unwrap_or_default()),
        ));
    }
    if m.annotations.get(PATH_ANNOTATION).map(String::as_str) != Some(rel) {
        return Err((
            "an envbuild.cache.path annotation naming the file asked for",
            format!("{:?}", m.annotations.get(PATH_ANNOTATION)),
        ));
    }
    m.annotations
        .get(FILE_ANNOTATION)
        .cloned()
        .ok_or(("an envbuild.cache.file annotation", "none".to_string()))
}

fn descriptor(media_type: &str, digest: &str, size: u64) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": digest, "size": size})
}

/// The manifest for the cache file `rel` holding `text`; `layer` is the
/// NAR's (media type, digest, size) for a narinfo.
pub fn render_manifest(
    rel: &str,
    artifact_type: &str,
    text: &str,
    layer: Option<(String, String, u64)>,
) -> Vec<u8> {
    let empty = descriptor(EMPTY_MEDIA_TYPE, EMPTY_DIGEST, EMPTY_JSON.len() as u64);
    let layer = match layer {
        Some((t, d, s)) => descriptor(&t, &d, s),
        None => empty.clone(),
    };
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": crate::registry::artifact::OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": empty,
        "layers": [layer],
        "annotations": {FILE_ANNOTATION: text, PATH_ANNOTATION: rel},
    })
    .to_string()
    .into_bytes()
}

/// One repository of one registry as a binary cache.
pub struct OciCache {
    /// `oci://host[:port]/repo`, redacted.
    url: String,
    /// Reads ask a bearer token for `pull`; writes for `pull,push`.
    read: crate::registry::Session<'static>,
    write: crate::registry::Session<'static>,
    empty_blob_there: AtomicBool,
}

impl OciCache {
    /// `rest` is `HOST[:PORT]/REPO` (the URL after `oci://`).
    pub fn open(url: &str, rest: &str) -> Result<OciCache, CacheError> {
        let bad = |problem: String| CacheError::BadOciUrl {
            url: net::redact(url),
            problem,
        };
        if rest.contains(['@', '?', '#']) || rest.ends_with('/') {
            return Err(bad("it has a tag, digest, query or trailing '/'".into()));
        }
        let reference =
            Reference::parse(&format!("{rest}:nix-cache-info")).map_err(|e| bad(e.to_string()))?;
        // One client and one set of options for the life of the process
        // (a cache is opened once per command); the sessions borrow them.
        let client: &'static Client =
            Box::leak(Box::new(Client::from_env().map_err(|source| {
                CacheError::Net {
                    url: net::redact(url),
                    source,
                }
            })?));
        let insecure = std::env::var(INSECURE_VAR)
            .unwrap_or_default()
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let opts: &'static PushOptions<'static> = Box::leak(Box::new(PushOptions {
            insecure,
            credentials: CredentialPlaces::from_env(),
            // NARs go up as a push's layers do, in chunks of this size.
            chunk_size: crate::registry::upload::chunk_size_from_env().map_err(|source| {
                CacheError::Net {
                    url: net::redact(url),
                    source,
                }
            })?,
            ..PushOptions::default()
        }));
        Ok(OciCache {
            url: format!(
                "oci://{}/{}",
                net::redact(&reference.registry),
                reference.repository
            ),
            read: crate::registry::Session::new(client, &reference, opts).pull_only(),
            write: crate::registry::Session::new(client, &reference, opts),
            empty_blob_there: AtomicBool::new(false),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL of a cache file, as messages name it: the tag or the blob.
    pub fn url_of(&self, rel: &str) -> String {
        match object_of(rel) {
            Some(Object::Manifest { tag, .. }) => format!("{}:{tag} ({rel})", self.url),
            Some(Object::Blob { digest }) => format!("{}@{digest} ({rel})", self.url),
            None => format!("{}/{rel}", self.url),
        }
    }

    fn object(&self, rel: &str) -> Result<Object, CacheError> {
        object_of(rel).ok_or_else(|| CacheError::BadOciUrl {
            url: self.url_of(rel),
            problem: "the cache layout has no such file (expected nix-cache-info, <hash>.narinfo, realisations/<key>!out.json or nar/<nix-base32 sha256>.nar[.zst|.xz|.bz2])".into(),
        })
    }

    fn reg_err(&self, rel: &str) -> impl FnOnce(RegistryError) -> CacheError + '_ {
        let url = self.url_of(rel);
        move |source| CacheError::Registry {
            url,
            source: Box::new(source),
        }
    }

    /// A cache file's text (see [`super::Backend::get`]).
    pub fn get(
        &self,
        rel: &str,
        limit: u64,
        what: &'static str,
    ) -> Result<Option<Vec<u8>>, CacheError> {
        let Object::Manifest { tag, artifact_type } = self.object(rel)? else {
            return Err(CacheError::BadOciUrl {
                url: self.url_of(rel),
                problem: "a NAR file is read with its size".into(),
            });
        };
        let Some(bytes) = self
            .read
            .manifest_by_tag(&tag, MAX_MANIFEST)
            .map_err(self.reg_err(rel))?
        else {
            return Ok(None);
        };
        let text = parse_manifest(&bytes, rel, artifact_type).map_err(|(expected, found)| {
            CacheError::BadManifest {
                url: self.url_of(rel),
                expected,
                found,
            }
        })?;
        if text.len() as u64 > limit {
            return Err(CacheError::TooLarge {
                url: self.url_of(rel),
                what,
                size: text.len() as u64,
                limit,
            });
        }
        Ok(Some(text.into_bytes()))
    }

    /// A NAR file into `sink`, at most `size` bytes: its length, `None`
    /// when the registry lacks the blob.
    pub fn download(
        &self,
        rel: &str,
        size: u64,
        sink: &mut dyn Sink,
    ) -> Result<Option<u64>, CacheError> {
        let Object::Blob { digest } = self.object(rel)? else {
            return Err(CacheError::BadOciUrl {
                url: self.url_of(rel),
                problem: "not a NAR file".into(),
            });
        };
        self.read
            .download_blob(&digest, size, sink)
            .map_err(self.reg_err(rel))
    }

    pub fn exists(&self, rel: &str) -> Result<bool, CacheError> {
        match self.object(rel)? {
            Object::Manifest { tag, .. } => self.read.has_manifest(&tag),
            Object::Blob { digest } => self.read.has_blob(&digest),
        }
        .map_err(self.reg_err(rel))
    }

    /// Write a cache file: a NAR as a blob (its name is its sha256), the
    /// others as manifests; a narinfo only after its NAR.
    pub fn put(
        &self,
        rel: &str,
        bytes: Option<&[u8]>,
        from: Option<&Path>,
    ) -> Result<(), CacheError> {
        match self.object(rel)? {
            Object::Blob { digest } => {
                let (body, size) = match (bytes, from) {
                    (Some(b), _) => (Body::Bytes(b), b.len() as u64),
                    (None, Some(f)) => (
                        Body::File(f),
                        std::fs::metadata(f).map_err(CacheError::io(f))?.len(),
                    ),
                    (None, None) => (Body::Bytes(&[]), 0),
                };
                // (A push asked `exists` first; uploading a blob the
                // registry has is harmless.)
                self.write
                    .upload_blob(&digest, size, body)
                    .map_err(self.reg_err(rel))
            }
            Object::Manifest { tag, artifact_type } => {
                let text = match (bytes, from) {
                    (Some(b), _) => b.to_vec(),
                    (None, Some(f)) => std::fs::read(f).map_err(CacheError::io(f))?,
                    (None, None) => Vec::new(),
                };
                let text = String::from_utf8(text).map_err(|_| CacheError::BadManifest {
                    url: self.url_of(rel),
                    expected: "a cache file of UTF-8 text",
                    found: "other bytes".into(),
                })?;
                let layer = if artifact_type == ARTIFACT_NARINFO {
                    Some(nar_layer(&text).ok_or_else(|| CacheError::BadManifest {
                        url: self.url_of(rel),
                        expected: "a narinfo with URL, Compression, FileHash and FileSize",
                        found: text.lines().next().unwrap_or_default().to_string(),
                    })?)
                } else {
                    None
                };
                self.ensure_empty_blob(rel)?;
                let manifest = render_manifest(rel, artifact_type, &text, layer);
                self.write
                    .put_manifest_tagged(&tag, &manifest)
                    .map_err(self.reg_err(rel))?;
                Ok(())
            }
        }
    }

    /// The empty descriptor's blob (`{}`), which every manifest names.
    fn ensure_empty_blob(&self, rel: &str) -> Result<(), CacheError> {
        if self.empty_blob_there.load(Ordering::Relaxed) {
            return Ok(());
        }
        debug_assert_eq!(
            format!("sha256:{}", hex::encode(Sha256::digest(EMPTY_JSON))),
            EMPTY_DIGEST
        );
        if !self
            .write
            .has_blob(EMPTY_DIGEST)
            .map_err(self.reg_err(rel))?
        {
            self.write
                .upload_blob(
                    EMPTY_DIGEST,
                    EMPTY_JSON.len() as u64,
                    Body::Bytes(EMPTY_JSON),
                )
                .map_err(self.reg_err(rel))?;
        }
        self.empty_blob_there.store(true, Ordering::Relaxed);
        Ok(())
    }
}

/// The NAR layer a narinfo names: (media type, digest, size).
fn nar_layer(text: &str) -> Option<(String, String, u64)> {
    let ni = envbuild_store::narinfo::NarInfo::parse(text).ok()?;
    let Some(Object::Blob { digest }) = object_of(&ni.url) else {
        return None;
    };
    let media_type = match ni.compression.as_str() {
        "none" => NAR_MEDIA_TYPE.to_string(),
        "zstd" | "xz" | "bzip2" => format!("{NAR_MEDIA_TYPE}+{}", ni.compression),
        _ => return None,
    };
    Some((media_type, digest, ni.file_size?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_files_map_to_tags_and_blobs_and_nothing_else() {
        let h32 = "0c6kzph7l0dcbfmjap64f0czdafn3b7x";
        assert_eq!(
            object_of(&format!("{h32}.narinfo")),
            Some(Object::Manifest {
                tag: format!("{h32}.narinfo"),
                artifact_type: ARTIFACT_NARINFO
            })
        );
        let hex = "ab".repeat(32);
        let Some(Object::Manifest { tag, .. }) =
            object_of(&format!("realisations/fetch:sha256:{hex}!out.json"))
        else {
            panic!("a realisation maps to a manifest")
        };
        assert_eq!(tag, format!("realisation.fetch-sha256-{hex}.out"));
        assert!(crate::spec::oci_tag_ok(&tag), "{tag} is a valid tag");
        let file = envbuild_store::nixbase32::encode(&[7u8; 32]);
        assert_eq!(
            object_of(&format!("nar/{file}.nar.zst")),
            Some(Object::Blob {
                digest: format!("sha256:{}", "07".repeat(32))
            })
        );
        for bad in [
            "x.narinfo",
            "../x",
            "realisations/sha256:00!out.json",
            &format!("realisations/sha256:{hex}!OUT.json"),
            "nar/zz.nar",
            &format!("nar/{file}.tar"),
            "index.html",
        ] {
            assert_eq!(object_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_manifest_round_trips_and_must_be_for_the_file_and_type_asked() {
        let m = render_manifest(
            "nix-cache-info",
            ARTIFACT_CACHE_INFO,
            "StoreDir: /nix/store\n",
            None,
        );
        assert_eq!(
            parse_manifest(&m, "nix-cache-info", ARTIFACT_CACHE_INFO).unwrap(),
            "StoreDir: /nix/store\n"
        );
        let (expected, _) = parse_manifest(&m, "other", ARTIFACT_CACHE_INFO).unwrap_err();
        assert!(expected.contains("envbuild.cache.path"), "{expected}");
        let (expected, _) = parse_manifest(&m, "nix-cache-info", ARTIFACT_NARINFO).unwrap_err();
        assert!(expected.contains("artifactType"), "{expected}");
        assert!(parse_manifest(b"{\"schemaVersion\":1}", "x", ARTIFACT_NARINFO).is_err());
        assert!(parse_manifest(b"\xff", "x", ARTIFACT_NARINFO).is_err());
    }
}
