//! Errors in a spec: each names the file, the line and column, the key, what
//! was expected and what was found, and carries the TOML span for miette.

use std::path::PathBuf;

use miette::{Diagnostic, NamedSource, SourceSpan};

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum SpecError {
    #[error("cannot read spec {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "spec {path} is a directory (expected a spec file, TOML){}",
        candidates_hint(candidates)
    )]
    IsADirectory {
        path: PathBuf,
        /// The `.toml` files in it, sorted: likely what was meant.
        candidates: Vec<PathBuf>,
    },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(Box<InvalidSpec>),
}

fn candidates_hint(candidates: &[PathBuf]) -> String {
    match candidates {
        [] => String::new(),
        [one] => format!("; did you mean {}?", one.display()),
        many => format!(
            "; it holds {}",
            many.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

impl SpecError {
    /// What the user can do about it, where there is something to say
    /// beyond the message (`--json` errors carry it as `hint`).
    pub fn hint(&self) -> Option<String> {
        match self {
            SpecError::IsADirectory { candidates, .. } => match candidates.as_slice() {
                [one] => Some(format!("pass the spec file: {}", one.display())),
                _ => Some("pass the spec file (TOML), not its directory".into()),
            },
            SpecError::Invalid(invalid) => invalid.help.clone(),
            SpecError::Read { .. } => None,
        }
    }
}

/// A located problem in the spec's text.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{location}: {message}")]
pub struct InvalidSpec {
    /// `file:line:column`
    pub location: String,
    pub message: String,
    #[source_code]
    pub src: NamedSource<String>,
    #[label("{label}")]
    pub span: Option<SourceSpan>,
    pub label: String,
    #[help]
    pub help: Option<String>,
}
