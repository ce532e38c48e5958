//! A requirements file translated into a Python spec: Debian's interpreter
//! of the default suite, the requirements resolved at lock time, or — for a
//! hash-checked file (`--hash` on its requirements, as `pip-compile
//! --generate-hashes` writes it) — the file itself as `[python] lock`.

use std::path::Path;

use super::{
    relative_to, spec_name, DebianDraft, InitError, InitOptions, Note, Outcome, PythonDraft,
    SpecDraft, Translation, DEFAULT_SUITE,
};

/// Translate the requirements file at `path`.
pub fn from_requirements(path: &Path, opts: &InitOptions) -> Result<Translation, InitError> {
    let text = crate::io::read_regular_to_string(path).map_err(|source| InitError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let name = spec_name(path, opts)?;
    let abs = std::path::absolute(path).map_err(|source| InitError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let spec_dir = std::path::absolute(&opts.spec_dir).unwrap_or_default();
    let mut notes = Vec::new();
    let mut requirements = Vec::new();
    let hashed = text.contains("--hash");
    // Continuation lines joined; (first line number, text).
    let mut logical: Vec<(usize, String)> = Vec::new();
    let mut continuing = false;
    for (i, raw) in text.lines().enumerate() {
        let no_comment = match raw.find(" #") {
            Some(at) => &raw[..at],
            None if raw.trim_start().starts_with('#') => "",
            None => raw,
        };
        let (body, cont) = match no_comment.trim_end().strip_suffix('\\') {
            Some(b) => (b, true),
            None => (no_comment, false),
        };
        if continuing {
            if let Some(last) = logical.last_mut() {
                last.1.push(' ');
                last.1.push_str(body.trim());
            }
        } else if !body.trim().is_empty() {
            logical.push((i + 1, body.trim().to_string()));
        }
        continuing = cont;
    }
    for (line, entry) in &logical {
        let note = |outcome, detail: String| Note {
            line: Some(*line),
            input: entry.clone(),
            outcome,
            detail,
        };
        if hashed {
            continue;
        }
        if entry.starts_with('-') {
            let option = entry.split([' ', '=']).next().unwrap_or(entry);
            let detail = match option {
                "-i" | "--index-url" | "--extra-index-url" | "-f" | "--find-links" => {
                    "envbuild reads indexes from your configuration (ENVBUILD_INDEX_URL, PIP_INDEX_URL, pip.conf) or [python] index".to_string()
                }
                "-r" | "--requirement" | "-c" | "--constraint" => {
                    "include the other file's requirements here, or run `envbuild init` on it".to_string()
                }
                _ => "a pip option with no spec key".to_string(),
            };
            notes.push(note(Outcome::NotTranslated, detail));
            continue;
        }
        match crate::python::pep508::parse_requirement::<pep508_rs::VerbatimUrl>(entry) {
            Ok(_) => {
                requirements.push(entry.clone());
                notes.push(note(Outcome::Translated, "[python] requirements".into()));
            }
            Err(e) => notes.push(note(
                Outcome::NotTranslated,
                format!(
                    "not a PEP 508 requirement: {}",
                    e.lines().next().unwrap_or("")
                ),
            )),
        }
    }
    let version = "3.11".to_string();
    let lock = hashed.then(|| relative_to(&abs, &spec_dir).to_string_lossy().into_owned());
    if let Some(l) = &lock {
        notes.push(Note {
            line: None,
            input: path.display().to_string(),
            outcome: Outcome::Translated,
            detail: format!(
                "a hash-checked requirements file: [python] lock = {l:?} (its pins and hashes are the lock)"
            ),
        });
    }
    notes.push(Note {
        line: None,
        input: "interpreter".into(),
        outcome: Outcome::Translated,
        detail: format!(
            "[base] debian {DEFAULT_SUITE} python{version} and python3; [python] version {version:?}"
        ),
    });
    let draft = SpecDraft {
        name,
        header: vec![
            "Made by `envbuild init --from-requirements`.".into(),
            "Review it, then: envbuild lock SPEC && envbuild realize SPEC -o image.tar".into(),
        ],
        debian: Some(DebianDraft {
            suite: DEFAULT_SUITE.into(),
            packages: vec![format!("python{version}"), "python3".into()],
        }),
        python: Some(PythonDraft {
            requirements,
            lock,
            site_packages: format!("/usr/local/lib/python{version}/dist-packages"),
            shebang: "/usr/bin/python3".into(),
            version,
        }),
        image: super::ImageDraft {
            cmd: Some(vec!["python3".into()]),
            ..Default::default()
        },
        ..SpecDraft::default()
    };
    let mut t = Translation { draft, notes };
    let header_notes = t.header_notes();
    if !header_notes.is_empty() {
        t.draft.header.push(String::new());
        t.draft.header.push("What to look at:".into());
        t.draft.header.extend(header_notes);
    }
    Ok(t)
}
