//! Errors of the model sources: each names the model, the endpoint or file,
//! what was expected and what was found.

use std::path::PathBuf;

use crate::fetch::FetchError;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model {model}: no {hub} endpoint is configured (expected {vars} to name the hub or a mirror, e.g. {example_var}=http://mirror.internal:8080); or use a local copy: source = \"./dir\" in [models.{model}]")]
    NoEndpoint {
        model: String,
        hub: &'static str,
        vars: String,
        example_var: &'static str,
    },
    #[error("model {model}: {var}={value:?} is not {expected}")]
    BadEndpoint {
        model: String,
        var: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("model {model}: the {hub} endpoint {endpoint} (from {var}) cannot be reached: {message}; point envbuild at a reachable mirror with {var}=URL, or at a local copy with source = \"./dir\" in [models.{model}]")]
    Unreachable {
        model: String,
        hub: &'static str,
        endpoint: String,
        var: &'static str,
        message: String,
    },
    #[error("model {model}: {url} answered {status} (expected 200){hint}")]
    Status {
        model: String,
        url: String,
        status: u16,
        hint: String,
    },
    #[error("model {model}: the listing from {url} is not what the {hub} API returns: {message}")]
    BadListing {
        model: String,
        hub: &'static str,
        url: String,
        message: String,
    },
    #[error(
        "model {model}: {url} lists no files at revision {revision} (expected at least one file)"
    )]
    Empty {
        model: String,
        url: String,
        revision: String,
    },
    #[error("model {model}: file {file} changed on the server: the lock pins sha256 {}, {} sent sha256 {} ({} bytes); nothing was added to the store. Run `envbuild lock` to accept the new file, or pin a revision that has the old one", .change.expected, .change.url, .change.found, .change.size)]
    Changed {
        model: String,
        file: String,
        change: Box<Change>,
    },
    #[error("model {model}: file {file}: {source}")]
    Fetch {
        model: String,
        file: String,
        #[source]
        source: Box<FetchError>,
    },
    #[error("model {model}: the hub's answer cannot be used")]
    Net {
        model: String,
        #[source]
        source: crate::net::NetError,
    },
    #[error("model {model}: {what} {path}: {source}")]
    Io {
        model: String,
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("model {model}: the lock lists file {file} with hash {hash:?} (expected sha256:<64 hex digits>); run `envbuild lock` again")]
    BadLock {
        model: String,
        file: String,
        hash: String,
    },
}

/// What a changed file was pinned to and what the server sent.
#[derive(Debug)]
pub struct Change {
    pub url: String,
    pub expected: String,
    pub found: String,
    pub size: u64,
}
