//! What pinning or planning a source can fail with.

use std::path::PathBuf;

use envbuild_store::StoreError;

use crate::debian::archive::ArchiveError;
use crate::fetch::FetchError;
use crate::model::ModelError;
use crate::python::index_config::NoIndex;
use crate::python::pylock::PylockError;
use crate::python::requirements_txt::RequirementsError;
use crate::python::resolve::ResolveError;
use crate::python::sdist::SdistError;
use crate::python::wheel::WheelError;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    NoIndex(#[from] NoIndex),
    #[error(transparent)]
    Wheel(#[from] WheelError),
    #[error(transparent)]
    Pylock(#[from] PylockError),
    #[error(transparent)]
    Requirements(#[from] RequirementsError),
    #[error(transparent)]
    Sdist(#[from] SdistError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Stopped(#[from] crate::workers::Stopped),
    #[error(transparent)]
    Registry(Box<crate::registry::RegistryError>),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{lock_file}: python exclude-newer {found:?} is not an RFC 3339 instant ({message}); fix it or run `envbuild lock --upgrade`")]
    ExcludeNewer {
        lock_file: PathBuf,
        found: String,
        message: String,
    },
    #[error("{file} has {found} bytes where {lock_file} says {locked}")]
    SizeMismatch {
        file: String,
        found: u64,
        locked: u64,
        lock_file: String,
    },
    #[error("{what}: the lock pins {found}, which does not fit the spec's {expected}; run `envbuild lock`")]
    LockMismatch {
        what: String,
        expected: String,
        found: String,
    },
}

impl From<crate::registry::RegistryError> for SourceError {
    fn from(e: crate::registry::RegistryError) -> SourceError {
        SourceError::Registry(Box::new(e))
    }
}

pub(crate) fn io_err<'a>(
    what: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> SourceError + 'a {
    move |source| SourceError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}
