//! `envbuild init`: a first spec from what a team has today — a Dockerfile
//! (`from_dockerfile`) or a requirements file (`from_requirements`) — and a
//! report, line by line, of what was translated into which key and what
//! could not be (and why). Nothing here touches the network or the store:
//! the spec it writes is the input of `envbuild lock`.

pub mod dockerfile;
mod draft;
mod from_dockerfile;
mod from_requirements;

use std::path::{Component, Path, PathBuf};

pub use draft::{
    DebianDraft, FileDraft, ImageDraft, ModelDraft, Port, PythonDraft, SpecDraft, UserDraft,
};
pub use from_dockerfile::{from_dockerfile, translate as translate_dockerfile};
pub use from_requirements::from_requirements;

/// The Debian suite a translation uses when its input names none.
pub const DEFAULT_SUITE: &str = "bookworm";

/// What a translation gives: the spec and its report.
#[derive(Debug, Clone)]
pub struct Translation {
    pub draft: SpecDraft,
    pub notes: Vec<Note>,
}

/// One line of the report: where in the input, what it said, what became
/// of it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Note {
    /// 1-based line of the input, when it has one.
    pub line: Option<usize>,
    /// The input's words (an instruction, a command inside a RUN, a
    /// requirement).
    pub input: String,
    pub outcome: Outcome,
    /// What it became (`[base] debian packages`, ...) or why not.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Translated as the detail says.
    Translated,
    /// Translated, with something to check (the detail says what).
    Check,
    /// Not in the spec; the detail says why and what to do instead.
    NotTranslated,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Translated => "translated",
            Outcome::Check => "check",
            Outcome::NotTranslated => "not translated",
        }
    }
}

/// Options both translations take.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    /// `[env] name`; default: the input's directory name, made a valid name.
    pub name: Option<String>,
    /// The directory the spec will be written to: `[[files]] src` and
    /// `[python] lock` are relative to it.
    pub spec_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a Dockerfile envbuild can read: {source}", path.display())]
    Dockerfile {
        path: PathBuf,
        #[source]
        source: dockerfile::ParseError,
    },
    #[error("{} has no FROM instruction (expected a Dockerfile: FROM, then RUN, COPY, ...)", path.display())]
    NoFrom { path: PathBuf },
    #[error("{}: {name:?} is not a valid env.name (expected lowercase letters, digits, '.', '_' or '-', starting with a letter or digit)", path.display())]
    BadName { path: PathBuf, name: String },
}

impl Translation {
    /// The report as the lines `init` prints on stderr.
    pub fn report_lines(&self) -> Vec<String> {
        self.notes
            .iter()
            .map(|n| {
                let at = n.line.map(|l| format!("line {l}: ")).unwrap_or_default();
                format!("{:<15} {at}{}: {}", n.outcome.label(), n.input, n.detail)
            })
            .collect()
    }

    /// The notes a human must act on, as comment lines for the spec's
    /// header.
    pub fn header_notes(&self) -> Vec<String> {
        self.notes
            .iter()
            .filter(|n| n.outcome != Outcome::Translated)
            .map(|n| {
                let at = n.line.map(|l| format!("line {l}: ")).unwrap_or_default();
                format!("- {} {at}{}: {}", n.outcome.label(), n.input, n.detail)
            })
            .collect()
    }
}

/// `name` made a valid `[env] name`: lowercase, other characters `-`.
pub fn sanitize_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    while out.starts_with(|c: char| !c.is_ascii_alphanumeric()) {
        out.remove(0);
    }
    out.truncate(128);
    if out.is_empty() {
        "app".to_string()
    } else {
        out
    }
}

/// The name a translation gives the spec: `--name`, else the directory of
/// `input`.
fn spec_name(input: &Path, opts: &InitOptions) -> Result<String, InitError> {
    match &opts.name {
        Some(n) => {
            if sanitize_name(n) != *n {
                return Err(InitError::BadName {
                    path: input.to_path_buf(),
                    name: n.clone(),
                });
            }
            Ok(n.clone())
        }
        None => {
            let dir = std::path::absolute(input)
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf))
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_default();
            Ok(sanitize_name(&dir))
        }
    }
}

/// `path` relative to `base` (both absolute, lexically normalized), for
/// the spec's relative paths.
pub fn relative_to(path: &Path, base: &Path) -> PathBuf {
    let norm = |p: &Path| -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for c in p.components() {
            match c {
                Component::Normal(n) => out.push(n.to_string_lossy().into_owned()),
                Component::ParentDir => {
                    out.pop();
                }
                _ => {}
            }
        }
        out
    };
    let (p, b) = (norm(path), norm(base));
    let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut rel = PathBuf::new();
    for _ in common..b.len() {
        rel.push("..");
    }
    for c in &p[common..] {
        rel.push(c);
    }
    if rel.as_os_str().is_empty() {
        rel.push(".");
    }
    rel
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_valid_env_names() {
        assert_eq!(sanitize_name("Seed Dockerfile"), "seed-dockerfile");
        assert_eq!(sanitize_name("_x"), "x");
        assert_eq!(sanitize_name("!!!"), "app");
    }

    #[test]
    fn relative_paths_climb_to_the_common_parent() {
        assert_eq!(
            relative_to(Path::new("/a/b/c.txt"), Path::new("/a/b")),
            PathBuf::from("c.txt")
        );
        assert_eq!(
            relative_to(Path::new("/a/x/c"), Path::new("/a/b/d")),
            PathBuf::from("../../x/c")
        );
        assert_eq!(
            relative_to(Path::new("/a"), Path::new("/a")),
            PathBuf::from(".")
        );
    }
}
