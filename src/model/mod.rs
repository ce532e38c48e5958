//! Model snapshots from hubs: where a hub is (configuration only), what a
//! revision of a repository holds (each file's path, size and sha256), and
//! where each file is downloaded from.
//!
//! - Hugging Face (`huggingface:ORG/REPO`, [`huggingface`]):
//!   `GET {endpoint}/api/models/{repo}/revision/{rev}?blobs=true` gives the
//!   commit (`sha`) and `siblings` with `size` and, for LFS files,
//!   `lfs.sha256`; files are downloaded from
//!   `{endpoint}/{repo}/resolve/{commit}/{path}`. Files without an LFS
//!   sha256 are downloaded and hashed at lock time.
//! - ModelScope (`modelscope:OWNER/NAME`, [`modelscope`]):
//!   `GET {endpoint}/api/v1/models/{id}/repo/files?Revision={rev}&Recursive=true`
//!   gives `Data.Files[]` with `Path`, `Size`, `Sha256`, `Type` and the
//!   commit as `Revision`; files come from
//!   `{endpoint}/api/v1/models/{id}/repo?Revision={rev}&FilePath={path}`.
//!
//! Endpoints come from the environment, never from the code:
//! `HF_ENDPOINT`, then `ENVBUILD_HF_ENDPOINT`; `MODELSCOPE_DOMAIN` (a host,
//! https implied, as the ModelScope client reads it, or a URL), then
//! `ENVBUILD_MODELSCOPE_ENDPOINT`. [`layout`] places a snapshot the way each
//! hub's own client expects to find it in its cache.

pub mod error;
pub mod huggingface;
pub mod layout;
pub mod modelscope;

use std::path::Path;

pub use error::ModelError;

use crate::net;

/// A model hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hub {
    HuggingFace,
    ModelScope,
}

/// One file of a snapshot as the hub lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    /// Relative path in the repository (`/`-separated, no `.`/`..`).
    pub path: String,
    pub size: u64,
    /// sha256 (hex) when the hub publishes it.
    pub sha256: Option<String>,
}

/// A revision of a repository as the hub lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The commit the requested revision resolved to (the requested
    /// revision itself when the hub names no commit).
    pub commit: String,
    pub files: Vec<ListedFile>,
}

impl Hub {
    /// `huggingface` / `hf` → Hugging Face, `modelscope` / `ms` → ModelScope.
    pub fn from_prefix(s: &str) -> Option<Hub> {
        match s {
            "huggingface" | "hf" => Some(Hub::HuggingFace),
            "modelscope" | "ms" => Some(Hub::ModelScope),
            _ => None,
        }
    }

    /// The prefix a spec and a lock write.
    pub fn prefix(self) -> &'static str {
        match self {
            Hub::HuggingFace => "huggingface",
            Hub::ModelScope => "modelscope",
        }
    }

    pub fn display(self) -> &'static str {
        match self {
            Hub::HuggingFace => "Hugging Face",
            Hub::ModelScope => "ModelScope",
        }
    }

    /// The branch the hub's client asks for when given none.
    pub fn default_revision(self) -> &'static str {
        match self {
            Hub::HuggingFace => "main",
            Hub::ModelScope => "master",
        }
    }

    pub fn id_shape(self) -> &'static str {
        match self {
            Hub::HuggingFace => "\"ORG/REPO\" or \"REPO\"",
            Hub::ModelScope => "\"OWNER/NAME\"",
        }
    }

    /// Whether `id` is a repository id of this hub.
    pub fn valid_id(self, id: &str) -> bool {
        let part_ok = |p: &str| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && !p.starts_with('-')
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        };
        let parts: Vec<&str> = id.split('/').collect();
        match (self, parts.len()) {
            (Hub::HuggingFace, 1) => part_ok(parts[0]),
            (_, 2) => parts.iter().all(|p| part_ok(p)),
            _ => false,
        }
    }

    /// The environment variables naming this hub's endpoint, in the order
    /// they are read.
    pub fn endpoint_vars(self) -> &'static [&'static str] {
        match self {
            Hub::HuggingFace => &["HF_ENDPOINT", "ENVBUILD_HF_ENDPOINT"],
            Hub::ModelScope => &["MODELSCOPE_DOMAIN", "ENVBUILD_MODELSCOPE_ENDPOINT"],
        }
    }

    /// The configured endpoint (no trailing slash) and the variable it
    /// came from.
    pub fn endpoint(self, model: &str) -> Result<Endpoint, ModelError> {
        self.endpoint_from(model, |v| std::env::var(v).ok())
    }

    fn endpoint_from(
        self,
        model: &str,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Endpoint, ModelError> {
        for var in self.endpoint_vars() {
            let Some(value) = get(var).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            let value = value.trim().to_string();
            let is_url = value.starts_with("http://") || value.starts_with("https://");
            let url = if is_url {
                value.clone()
            } else if *var == "MODELSCOPE_DOMAIN" && !value.contains("://") && !value.contains('/')
            {
                // The ModelScope client prefixes the domain with https://.
                format!("https://{value}")
            } else {
                return Err(ModelError::BadEndpoint {
                    model: model.to_string(),
                    var,
                    value,
                    expected: if *var == "MODELSCOPE_DOMAIN" {
                        "a host name (https is implied) or an http(s) URL"
                    } else {
                        "an http(s) URL"
                    },
                });
            };
            return Ok(Endpoint {
                url: url.trim_end_matches('/').to_string(),
                var,
            });
        }
        let vars = self.endpoint_vars();
        Err(ModelError::NoEndpoint {
            model: model.to_string(),
            hub: self.display(),
            vars: vars.join(" or "),
            example_var: vars[vars.len() - 1],
        })
    }

    /// What the revision `revision` of `id` holds.
    pub fn list(
        self,
        model: &str,
        endpoint: &Endpoint,
        id: &str,
        revision: &str,
    ) -> Result<Listing, ModelError> {
        let listing = match self {
            Hub::HuggingFace => huggingface::list(model, endpoint, id, revision)?,
            Hub::ModelScope => modelscope::list(model, endpoint, id, revision)?,
        };
        if listing.files.is_empty() {
            return Err(ModelError::Empty {
                model: model.to_string(),
                url: endpoint.url.clone(),
                revision: revision.to_string(),
            });
        }
        Ok(listing)
    }

    /// Where one file of a pinned snapshot is downloaded from.
    pub fn file_url(self, endpoint: &Endpoint, id: &str, revision: &str, path: &str) -> String {
        match self {
            Hub::HuggingFace => huggingface::file_url(&endpoint.url, id, revision, path),
            Hub::ModelScope => modelscope::file_url(&endpoint.url, id, revision, path),
        }
    }
}

/// A configured hub endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
    /// The variable it came from.
    pub var: &'static str,
}

/// Percent-encode a repository path for a URL path or query (keeping `/`).
pub(crate) fn encode_path(p: &str) -> String {
    let mut out = String::new();
    for b in p.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether a path listed by a hub is safe to place under a directory.
pub(crate) fn safe_relative(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && !p.contains('\\')
        && !p.contains('\0')
        && p.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
}

/// GET a JSON document from the hub (at most the document limit of
/// [`crate::net`]); connection failures name the endpoint and how to point
/// envbuild elsewhere.
pub(crate) fn get_json(
    hub: Hub,
    model: &str,
    endpoint: &Endpoint,
    url: &str,
) -> Result<serde_json::Value, ModelError> {
    let doc = net::Client::from_env()
        .and_then(|c| c.get(url, Some("application/json"), None))
        .map_err(|e| net_error(hub, model, endpoint, None, e))?;
    serde_json::from_slice(&doc.body).map_err(|e| ModelError::BadListing {
        model: model.to_string(),
        hub: hub.display(),
        url: net::redact(url),
        message: format!(
            "expected JSON, found {} bytes that do not parse: {e}",
            doc.body.len()
        ),
    })
}

/// A failed request: unreachable (with the endpoint and how to change it),
/// a status (with a hint), or the network error itself.
fn net_error(
    hub: Hub,
    model: &str,
    endpoint: &Endpoint,
    file: Option<&str>,
    e: net::NetError,
) -> ModelError {
    if let net::NetError::Status { url, status, .. } = e.last() {
        let status = *status;
        return ModelError::Status {
            model: model.to_string(),
            url: url.clone(),
            status,
            hint: match file {
                Some(file) => format!(" while hashing {file} at lock time"),
                None if status == 404 || status == 401 || status == 403 => {
                    " — check the repository id and revision in the spec, and that the mirror has them".into()
                }
                None => String::new(),
            },
        };
    }
    if e.is_unreachable() {
        return ModelError::Unreachable {
            model: model.to_string(),
            hub: hub.display(),
            endpoint: net::redact(&endpoint.url),
            var: endpoint.var,
            message: match file {
                Some(file) => format!("downloading {file}: {}", e.chain_text()),
                None => e.chain_text(),
            },
        };
    }
    ModelError::Net {
        model: model.to_string(),
        source: e,
    }
}

/// Download `url` into `dest` while hashing it (lock time, for files whose
/// sha256 the hub does not publish); `size` is the size the hub lists, and
/// a longer body is refused. Returns (sha256 hex, size).
pub fn download_hashed(
    hub: Hub,
    model: &str,
    endpoint: &Endpoint,
    file: &str,
    size: u64,
    url: &str,
    dest: &Path,
) -> Result<(String, u64), ModelError> {
    let io = |what: &'static str| {
        move |source| ModelError::Io {
            model: model.to_string(),
            what,
            path: dest.to_path_buf(),
            source,
        }
    };
    let client =
        net::Client::from_env().map_err(|e| net_error(hub, model, endpoint, Some(file), e))?;
    let mut out = net::HashingFile::create(dest).map_err(io("creating"))?;
    client
        .download(
            url,
            &mut out,
            &net::Download {
                size: Some(size),
                progress: None,
                headers: None,
            },
        )
        .map_err(|e| net_error(hub, model, endpoint, Some(file), e))?;
    let (sha256, len, _) = out.finish().map_err(io("writing"))?;
    Ok((sha256, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_come_from_the_variables_in_order() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |v: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == v)
                    .map(|(_, x)| x.to_string())
            }
        };
        let e = Hub::HuggingFace
            .endpoint_from(
                "m",
                env(&[
                    ("HF_ENDPOINT", "http://a:1/"),
                    ("ENVBUILD_HF_ENDPOINT", "http://b"),
                ]),
            )
            .unwrap();
        assert_eq!((e.url.as_str(), e.var), ("http://a:1", "HF_ENDPOINT"));
        let e = Hub::ModelScope
            .endpoint_from("m", env(&[("MODELSCOPE_DOMAIN", "mirror.internal")]))
            .unwrap();
        assert_eq!(e.url, "https://mirror.internal");
        let e = Hub::ModelScope
            .endpoint_from(
                "m",
                env(&[("ENVBUILD_MODELSCOPE_ENDPOINT", "http://127.0.0.1:9")]),
            )
            .unwrap();
        assert_eq!(e.var, "ENVBUILD_MODELSCOPE_ENDPOINT");
        let err = Hub::HuggingFace
            .endpoint_from("m", env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("HF_ENDPOINT or ENVBUILD_HF_ENDPOINT")
                && err.contains("source = \"./dir\""),
            "{err}"
        );
        let err = Hub::HuggingFace
            .endpoint_from("m", env(&[("HF_ENDPOINT", "mirror.internal")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("HF_ENDPOINT=\"mirror.internal\" is not an http(s) URL"),
            "{err}"
        );
    }

    #[test]
    fn repository_ids_and_paths() {
        assert!(Hub::HuggingFace.valid_id("gpt2"));
        assert!(Hub::HuggingFace.valid_id("org/repo.v1"));
        assert!(!Hub::ModelScope.valid_id("name"));
        assert!(!Hub::ModelScope.valid_id("a/../b"));
        assert!(!Hub::HuggingFace.valid_id("a/b/c"));
        assert!(safe_relative("sub/dir/file.bin"));
        for bad in ["", "/etc/passwd", "a/../b", "./a", "a//b", "a/"] {
            assert!(!safe_relative(bad), "{bad:?}");
        }
        assert_eq!(encode_path("a b/c+d.bin"), "a%20b/c%2Bd.bin");
    }
}
