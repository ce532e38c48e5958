//! The one error type of [`crate::oci`]: every variant names the input (a
//! path, a layer source, a field), what was expected and what was found.

use std::io;
use std::path::PathBuf;

/// Errors from writing layers, image JSON and image exports.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// An I/O operation on a named file or directory failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done: "reading", "writing", "creating", ...
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// An argument (prefix, override, compression level, image reference,
    /// history, output directory) is not acceptable.
    #[error("{input}: expected {expected}, found {found}")]
    Invalid {
        input: String,
        expected: String,
        found: String,
    },

    /// Two sources of one layer place different things at the same path.
    #[error(
        "layer path /{path} is placed by both {first} and {second} with different contents: \
         expected {first_has} (as the first placed it), found {second_has}"
    )]
    Conflict {
        /// The path inside the image (no leading slash).
        path: String,
        /// The first source: its label and the file on disk.
        first: String,
        /// The second source: its label and the file on disk.
        second: String,
        first_has: String,
        second_has: String,
    },

    /// A source holds something a layer cannot carry.
    #[error(
        "{} (layer source {label}): expected a regular file, directory or symlink, found {found}",
        path.display()
    )]
    UnsupportedFileType {
        path: PathBuf,
        label: String,
        found: String,
    },

    /// A source file changed between scanning and streaming it.
    #[error(
        "{} changed while it was written into a layer: expected {expected} bytes, found {found}",
        path.display()
    )]
    SourceChanged {
        path: PathBuf,
        expected: u64,
        found: String,
    },

    /// A blob file does not hold the bytes its descriptor promises.
    #[error(
        "blob {}: expected {expected} ({expected_size} bytes), found {found} ({found_size} bytes)",
        path.display()
    )]
    BlobMismatch {
        path: PathBuf,
        expected: String,
        expected_size: u64,
        found: String,
        found_size: u64,
    },

    /// Serializing image JSON failed (not expected for the types here).
    #[error("encoding {what} as JSON: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl OciError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        OciError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(
        input: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        OciError::Invalid {
            input: input.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }
}
