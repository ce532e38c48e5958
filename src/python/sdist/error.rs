//! What can go wrong with an sdist: reading it, its metadata, building it.

use std::path::PathBuf;

/// Errors of [`super`]. Each names the sdist, and what was expected and
/// found where those apply.
#[derive(Debug, thiserror::Error)]
pub enum SdistError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("sdist {sdist}: expected a .tar.gz or .zip archive, found {found}")]
    BadArchive { sdist: String, found: String },

    #[error("sdist {sdist}: member {member:?} is unsafe ({why}); expected relative paths inside one top-level directory")]
    UnsafeMember {
        sdist: String,
        member: String,
        why: String,
    },

    #[error("sdist {sdist}: member {member:?}: {source}")]
    MemberIo {
        sdist: String,
        member: String,
        #[source]
        source: std::io::Error,
    },

    #[error("sdist {sdist}: {file} is invalid: expected {expected}, found {found}")]
    BadMetadata {
        sdist: String,
        file: String,
        expected: String,
        found: String,
    },

    #[error("sdist {sdist}: its requirements are not declared statically (tried {tried}); they would need the build backend's prepare_metadata_for_build_wheel, which envbuild does not run at lock time")]
    DynamicMetadata { sdist: String, tried: String },

    #[error("sdist {sdist} needs a build, and builds run with the base's Python: add a [base] debian with python3 (e.g. packages = [\"python3.11\", \"python3\"]) to the spec")]
    NoBuildPython { sdist: String },

    #[error("building sdist {sdist}: {source}")]
    Sandbox {
        sdist: String,
        #[source]
        source: crate::sandbox::SandboxError,
    },

    #[error("building sdist {sdist} failed ({status}); full log: {log}\n--- last lines of the build log ---\n{tail}")]
    BuildFailed {
        sdist: String,
        status: String,
        log: PathBuf,
        tail: String,
    },

    #[error("building sdist {sdist}: expected one wheel in the output directory, found {found}")]
    NoWheelBuilt { sdist: String, found: String },

    #[error("building sdist {sdist}: the wheel {wheel} could not be normalized: {message}")]
    Normalize {
        sdist: String,
        wheel: String,
        message: String,
    },
}

pub(crate) fn io_err<'a>(
    what: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> SdistError + 'a {
    move |source| SdistError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}
