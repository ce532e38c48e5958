//! Errors of the binary cache: every variant names the cache (its URL,
//! credentials removed), the item or file, the expected and the found.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A cache location that is neither `file://`, `http(s)://` nor `oci://`.
    #[error("{url:?} is not a binary cache envbuild can use (expected file:///DIR, http://…, https://… or oci://HOST[:PORT]/REPO)")]
    BadUrl { url: String },

    #[error("{url:?} is not an OCI binary cache envbuild can use: {problem} (expected oci://HOST[:PORT]/REPO)")]
    BadOciUrl { url: String, problem: String },

    /// A registry's manifest that is not the cache file asked for.
    #[error("{url}: the manifest is not the cache's file (expected {expected}, found {found})")]
    BadManifest {
        url: String,
        expected: &'static str,
        found: String,
    },

    #[error("{url}: {source}")]
    Registry {
        url: String,
        #[source]
        source: Box<crate::registry::RegistryError>,
    },

    #[error("{url}: {source}")]
    Net {
        url: String,
        #[source]
        source: crate::net::NetError,
    },

    #[error("{url}: the server answered HTTP {status} to {method} (expected {expected})")]
    Status {
        url: String,
        method: &'static str,
        status: u16,
        expected: &'static str,
    },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{url}: {size} bytes, more than the {limit} bytes a {what} may have")]
    TooLarge {
        url: String,
        what: &'static str,
        size: u64,
        limit: u64,
    },

    #[error("{url}: {source}")]
    NarInfo {
        url: String,
        #[source]
        source: envbuild_store::NarInfoError,
    },

    #[error("{url}: the narinfo is for {found}, expected {expected}")]
    WrongPath {
        url: String,
        expected: String,
        found: String,
    },

    /// No signature by a trusted key (none at all, or by other keys, or
    /// not matching the contents).
    #[error("{url}: {item} is not signed by a trusted key (expected a signature by one of [{expected}]; found {found}); trusted keys come from ENVBUILD_TRUSTED_PUBLIC_KEYS or trusted-public-keys in {config}")]
    Untrusted {
        url: String,
        /// What is unsigned: `narinfo NAME`, `realisation KEY`.
        item: String,
        expected: String,
        found: String,
        config: String,
    },

    #[error("{url}: {what} of {item} is {found}, expected {expected} (from its narinfo)")]
    Mismatch {
        url: String,
        item: String,
        what: &'static str,
        expected: String,
        found: String,
    },

    #[error("{url}: compression {found:?} of {item} is not one envbuild reads (expected none, xz, zstd or bzip2)")]
    Compression {
        url: String,
        item: String,
        found: String,
    },

    #[error("{url}: the cache's StoreDir is {found:?}, expected \"/nix/store\"")]
    StoreDir { url: String, found: String },

    #[error("{url}: realisation {key}: {found:?} is not {expected}")]
    BadRealisation {
        url: String,
        key: String,
        expected: &'static str,
        found: String,
    },

    #[error("{url}: realisation {key} names {item}, which the cache does not have (expected {item_url})")]
    Dangling {
        url: String,
        key: String,
        item: String,
        item_url: String,
    },

    #[error("{url}: {item} is not in the cache (expected {item_url})")]
    NotInCache {
        url: String,
        item: String,
        item_url: String,
    },

    #[error("{url}: closure of {item} is deeper or larger than {limit} items")]
    ClosureTooLarge {
        url: String,
        item: String,
        limit: usize,
    },

    /// Adding the restored item to the store failed (a NAR that does not
    /// match, or one the NAR reader refused).
    #[error("{url}: {item}: {source}")]
    Import {
        url: String,
        item: String,
        #[source]
        source: Box<envbuild_store::StoreError>,
    },

    #[error("configuration {path}: {message}")]
    Config { path: PathBuf, message: String },

    #[error("{what}: {source}")]
    Key {
        what: String,
        #[source]
        source: envbuild_store::SigningError,
    },

    /// The local store failed (boxed, as in `Import`: the store's errors
    /// are large and this is the rare path).
    #[error(transparent)]
    Store(Box<envbuild_store::StoreError>),
}

impl From<envbuild_store::StoreError> for CacheError {
    fn from(e: envbuild_store::StoreError) -> Self {
        CacheError::Store(Box::new(e))
    }
}

impl CacheError {
    /// Whether the cache could not be reached (after the client's retries):
    /// asking it again in this run would only repeat the wait.
    pub fn is_unreachable(&self) -> bool {
        match self {
            CacheError::Net { .. } => true,
            CacheError::Registry { source, .. } => {
                matches!(**source, crate::registry::RegistryError::Net { .. })
            }
            _ => false,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> CacheError {
        let path = path.into();
        move |source| CacheError::Io { path, source }
    }
}
