//! What can go wrong while resolving.

use std::fmt;

/// A requirement for which the index has no wheel that runs on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoWheel {
    /// Normalized package name.
    pub package: String,
    /// The version range that was asked for (`*` for any).
    pub wanted: String,
    /// The version that would have been chosen.
    pub version: String,
    /// What the index has for that version instead (file names, shortened).
    pub found: String,
}

impl fmt::Display for NoWheel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} (wanted {}): {}",
            self.package, self.version, self.wanted, self.found
        )
    }
}

fn list_no_wheels(packages: &[NoWheel]) -> String {
    packages
        .iter()
        .map(|p| format!("\n  - {p}"))
        .collect::<String>()
}

/// Errors of [`super::resolve`]. Each names the package, the index and what
/// was expected and found, where those apply.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ResolveError {
    #[error("invalid requirement {requirement:?}: {message}")]
    InvalidRequirement {
        requirement: String,
        message: String,
    },

    #[error("requirement {requirement:?}: only index packages with a version range are supported (no direct URLs)")]
    UnsupportedRequirement { requirement: String },

    #[error("invalid index URL {url:?}: {message}")]
    InvalidIndexUrl { url: String, message: String },

    #[error("package {package:?} is not on the index {index} (GET {url} answered 404)")]
    NotFound {
        package: String,
        index: String,
        url: String,
    },

    #[error("GET {url} for package {package:?} failed: {message}")]
    Http {
        package: String,
        url: String,
        message: String,
    },

    /// A request to the index failed (the source names the URL, redacted).
    #[error("fetching from the index for package {package:?}")]
    Net {
        package: String,
        #[source]
        source: std::sync::Arc<crate::net::NetError>,
    },

    #[error("the lock pins {file}, which {index} no longer offers as the wheel of {package} {version} for this target; run `envbuild lock` again")]
    LockedFileGone {
        file: String,
        package: String,
        version: String,
        index: String,
    },

    #[error("GET {url} for package {package:?}: expected {expected}, found {found}")]
    BadResponse {
        package: String,
        url: String,
        expected: String,
        found: String,
    },

    #[error("index page {url} of package {package:?} is not a PEP 691 JSON page: {message}")]
    BadIndexPage {
        package: String,
        url: String,
        message: String,
    },

    #[error("hash mismatch for {url} ({package}): expected sha256 {expected}, found {found}")]
    HashMismatch {
        package: String,
        url: String,
        expected: String,
        found: String,
    },

    #[error("the index {index} gives no sha256 for {filename} ({package}); a lock needs one")]
    MissingHash {
        package: String,
        filename: String,
        index: String,
    },

    #[error("metadata of {filename} ({package}) from {url} is unusable: {message}")]
    BadMetadata {
        package: String,
        filename: String,
        url: String,
        message: String,
    },

    #[error("{package}=={requested} does not exist on the index {index}; nearest versions: {}", nearest_text(.nearest))]
    NonexistentVersion {
        package: String,
        requested: String,
        nearest: Vec<String>,
        index: String,
    },

    #[error("no wheel runs on the target {target}, and there is no sdist to build instead, for {} package(s) on the index {index}:{}", .packages.len(), list_no_wheels(.packages))]
    NoUsableWheel {
        target: String,
        index: String,
        packages: Vec<NoWheel>,
    },

    #[error(
        "the requirements cannot be satisfied for {target} from the index {index}:\n{explanation}"
    )]
    NoSolution {
        target: String,
        index: String,
        explanation: String,
    },

    #[error("sdist of {package}: {message}")]
    Sdist { package: String, message: String },

    #[error("metadata cache {path}: {message}")]
    Cache { path: String, message: String },
}

fn nearest_text(nearest: &[String]) -> String {
    if nearest.is_empty() {
        "none (the package has no versions there)".to_owned()
    } else {
        nearest.join(", ")
    }
}
