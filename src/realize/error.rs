//! What realizing a plan can fail with. A builder's failure is wrapped in
//! [`RealizeError::Step`], naming the step and its builder, with the cause
//! kept as its source.

use std::path::{Path, PathBuf};

use envbuild_store::StoreError;

use crate::assemble::AssembleError;
use crate::fetch::FetchError;
use crate::lock::LockError;
use crate::oci::OciError;
use crate::python::sdist::SdistError;
use crate::python::wheel::WheelError;
use crate::sources::SourceError;

#[derive(Debug, thiserror::Error)]
pub enum RealizeError {
    /// A dry run reached a step that is not realized (never shown: a dry
    /// run reports the step instead).
    #[error("not built (dry run)")]
    NotBuilt,
    /// A step would have to be built, but some of its fixed-output inputs
    /// were deferred (their store paths known from signed realisations,
    /// their files not fetched) in the hope that a substituter serves it
    /// (never shown: the realize materializes the inputs and runs the step
    /// again).
    #[error("a step to build needs inputs that were deferred")]
    InputsDeferred,
    #[error("step {name} ({builder}) failed: {source}")]
    Step {
        name: String,
        builder: &'static str,
        #[source]
        source: Box<RealizeError>,
    },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Wheel(#[from] WheelError),
    #[error(transparent)]
    Sdist(#[from] SdistError),
    #[error(transparent)]
    Assemble(#[from] AssembleError),
    #[error(transparent)]
    Oci(#[from] OciError),
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    Stopped(#[from] crate::workers::Stopped),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} changed since it was pinned: sha256 {expected} expected, {found} found (run `envbuild lock` to pin the new file)",
        path.display()
    )]
    InputChanged {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("item {item} was built by {builder} but {what}")]
    BadItem {
        item: String,
        builder: &'static str,
        what: String,
    },
}

impl RealizeError {
    /// This error as the failure of the step `name` built by `builder`.
    pub fn in_step(self, name: &str, builder: &'static str) -> RealizeError {
        match self {
            // Already named (a step inside a step keeps the inner name).
            e @ (RealizeError::Step { .. }
            | RealizeError::NotBuilt
            | RealizeError::InputsDeferred) => e,
            e => RealizeError::Step {
                name: name.to_string(),
                builder,
                source: Box::new(e),
            },
        }
    }

    /// The innermost error, past the step that failed.
    pub fn cause(&self) -> &RealizeError {
        match self {
            RealizeError::Step { source, .. } => source.cause(),
            e => e,
        }
    }
}

pub(crate) fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> RealizeError + 'a {
    move |source| RealizeError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}
