//! A Dockerfile read into instructions, the way BuildKit's front end splits
//! it before it interprets anything. Only what `envbuild init` translates
//! needs structure here; everything else keeps its raw argument text.
//!
//! ```text
//! file        = *( line )
//! line        = blank | comment | instruction
//! comment     = *WS "#" *any EOL            ; also between continued lines
//! instruction = *WS KEYWORD WS args EOL     ; KEYWORD case-insensitive
//! args        = *( text "\" EOL *( blank | comment ) ) text
//!                                            ; "\" before EOL continues the line
//! exec-form   = "[" JSON-string *( "," JSON-string ) "]"
//!                                            ; CMD, ENTRYPOINT, RUN, SHELL, COPY, ADD
//! flags       = *( "--" NAME [ "=" VALUE ] WS )   ; FROM, RUN, COPY, ADD
//! ```
//!
//! Parser directives (`# syntax=`, `# escape=`) are comments here: a
//! Dockerfile that changes its escape character is refused with the line.
//! Heredocs (`RUN <<EOF`) are refused with the line too: they are rare in
//! the Dockerfiles `init` is for, and a half-understood one would be worse
//! than none.

use std::fmt;

/// One instruction, with the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    pub line: usize,
    /// Upper-cased keyword: `FROM`, `RUN`, ...
    pub keyword: String,
    /// `--name=value` flags before the arguments (FROM, RUN, COPY, ADD).
    pub flags: Vec<(String, String)>,
    pub args: Args,
}

/// An instruction's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    /// The JSON array form: `["python3", "app.py"]`.
    Exec(Vec<String>),
    /// The text after the keyword (and flags), continuations joined with a
    /// space, trimmed.
    Shell(String),
}

impl Args {
    /// The arguments as text (an exec form's elements joined by spaces),
    /// for messages.
    pub fn text(&self) -> String {
        match self {
            Args::Exec(v) => v.join(" "),
            Args::Shell(s) => s.clone(),
        }
    }
}

impl fmt::Display for Instruction {
    /// The instruction as written, on one line, shortened for a report.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = self.keyword.clone();
        for (name, value) in &self.flags {
            text.push_str(&format!(" --{name}={value}"));
        }
        match &self.args {
            Args::Exec(v) => text.push_str(&format!(
                " [{}]",
                v.iter()
                    .map(|s| format!("{s:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Args::Shell(s) if !s.is_empty() => {
                text.push(' ');
                text.push_str(s);
            }
            Args::Shell(_) => {}
        }
        const MAX: usize = 100;
        if text.chars().count() > MAX {
            let cut: String = text.chars().take(MAX - 1).collect();
            write!(f, "{cut}…")
        } else {
            f.write_str(&text)
        }
    }
}

/// Why a Dockerfile could not be read into instructions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Keywords whose arguments may start with `--flag`s.
const FLAGGED: &[&str] = &["FROM", "RUN", "COPY", "ADD"];
/// Keywords that take the JSON array form.
const EXEC_FORM: &[&str] = &["CMD", "ENTRYPOINT", "RUN", "SHELL", "COPY", "ADD", "VOLUME"];

/// Read `text` into its instructions, in order.
pub fn parse(text: &str) -> Result<Vec<Instruction>, ParseError> {
    let mut out = Vec::new();
    // (start line, accumulated text) of the instruction being continued.
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') {
            if pending.is_none() && out.is_empty() {
                check_directive(trimmed, line_no)?;
            }
            continue;
        }
        if trimmed.is_empty() {
            // A blank line inside a continuation is skipped, as BuildKit does.
            continue;
        }
        let (body, continues) = match line.strip_suffix('\\') {
            Some(b) => (b, true),
            None => (line, false),
        };
        match &mut pending {
            Some((_, acc)) => {
                acc.push(' ');
                acc.push_str(body.trim());
            }
            None => pending = Some((line_no, body.trim().to_string())),
        }
        if !continues {
            let (start, whole) = pending.take().expect("an instruction is pending");
            out.push(instruction(start, &whole)?);
        }
    }
    if let Some((start, whole)) = pending.take() {
        // A continuation at the end of the file ends the instruction.
        out.push(instruction(start, &whole)?);
    }
    Ok(out)
}

/// A parser directive envbuild cannot honour is an error, not a surprise.
fn check_directive(comment: &str, line: usize) -> Result<(), ParseError> {
    let body = comment.trim_start_matches('#').trim();
    if let Some((key, value)) = body.split_once('=') {
        if key.trim().eq_ignore_ascii_case("escape") && value.trim() != "\\" {
            return Err(ParseError {
                line,
                message: format!(
                    "the parser directive `escape={}` is not supported (expected the default `\\`)",
                    value.trim()
                ),
            });
        }
    }
    Ok(())
}

fn instruction(line: usize, whole: &str) -> Result<Instruction, ParseError> {
    let whole = whole.trim();
    let (keyword, rest) = match whole.find(char::is_whitespace) {
        Some(at) => (&whole[..at], whole[at..].trim_start()),
        None => (whole, ""),
    };
    if !keyword.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(ParseError {
            line,
            message: format!("{keyword:?} is not a Dockerfile instruction (expected a keyword such as FROM, RUN, COPY)"),
        });
    }
    let keyword = keyword.to_ascii_uppercase();
    if rest.contains("<<") && matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") {
        let looks_like_heredoc = rest
            .split_whitespace()
            .any(|w| w.starts_with("<<") && w.len() > 2 && !w[2..].starts_with('<'));
        if looks_like_heredoc {
            return Err(ParseError {
                line,
                message: format!("{keyword} with a heredoc (`<<`) is not supported: write the script to a file and COPY it"),
            });
        }
    }
    let mut flags = Vec::new();
    let mut rest = rest;
    if FLAGGED.contains(&keyword.as_str()) {
        while let Some(after) = rest.strip_prefix("--") {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            let flag = &after[..end];
            let (name, value) = flag.split_once('=').unwrap_or((flag, ""));
            if name.is_empty() {
                return Err(ParseError {
                    line,
                    message: format!("{keyword}: an empty flag `--` (expected --name=value)"),
                });
            }
            flags.push((name.to_ascii_lowercase(), value.to_string()));
            rest = after[end..].trim_start();
        }
    }
    let args = if EXEC_FORM.contains(&keyword.as_str()) && rest.starts_with('[') {
        // Not valid JSON: Docker runs it as the shell form, and so do we.
        match serde_json::from_str::<Vec<String>>(rest) {
            Ok(v) => Args::Exec(v),
            Err(_) => Args::Shell(rest.to_string()),
        }
    } else {
        Args::Shell(rest.to_string())
    };
    Ok(Instruction {
        line,
        keyword,
        flags,
        args,
    })
}

/// `KEY=VALUE ...` pairs (ENV, LABEL, ARG), quotes removed the way a shell
/// would; the legacy `ENV KEY VALUE` form gives one pair.
pub fn key_values(text: &str) -> Result<Vec<(String, String)>, String> {
    let words = shlex::split(text).ok_or_else(|| format!("unbalanced quotes in {text:?}"))?;
    if words.first().is_some_and(|first| !first.contains('=')) {
        // `ENV KEY VALUE...`: the rest of the line is the value.
        let raw = text.trim();
        let (key, rest) = raw.split_once(char::is_whitespace).unwrap_or((raw, ""));
        let rest = rest.trim();
        let value = shlex::split(rest)
            .map(|w| w.join(" "))
            .unwrap_or_else(|| rest.to_string());
        return Ok(vec![(key.to_string(), value)]);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("{w:?} is not KEY=VALUE")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(line: usize, keyword: &str, args: &str) -> Instruction {
        Instruction {
            line,
            keyword: keyword.into(),
            flags: vec![],
            args: Args::Shell(args.into()),
        }
    }

    #[test]
    fn continued_lines_join_with_comments_and_blank_lines_between_skipped() {
        let text = "FROM debian:bookworm AS base\nRUN apt-get update && \\\n  # a comment\n\n  apt-get install -y curl\n";
        let got = parse(text).unwrap();
        assert_eq!(
            got,
            vec![
                shell(1, "FROM", "debian:bookworm AS base"),
                shell(2, "RUN", "apt-get update && apt-get install -y curl"),
            ]
        );
    }

    #[test]
    fn exec_form_is_a_json_array_and_invalid_json_falls_back_to_shell_form() {
        let got = parse("CMD [\"python3\", \"app.py\"]\nentrypoint [not json]\n").unwrap();
        assert_eq!(
            got[0].args,
            Args::Exec(vec!["python3".into(), "app.py".into()])
        );
        assert_eq!(got[1].keyword, "ENTRYPOINT");
        assert_eq!(got[1].args, Args::Shell("[not json]".into()));
    }

    #[test]
    fn flags_come_before_the_arguments() {
        let got = parse("COPY --chown=1001:1001 --from=build a b\n").unwrap();
        assert_eq!(
            got[0].flags,
            vec![
                ("chown".into(), "1001:1001".into()),
                ("from".into(), "build".into())
            ]
        );
        assert_eq!(got[0].args, Args::Shell("a b".into()));
    }

    #[test]
    fn heredocs_and_a_changed_escape_character_are_refused_with_the_line() {
        let e = parse("FROM scratch\nRUN <<EOF\necho hi\nEOF\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("heredoc"), "{e}");
        let e = parse("# escape=`\nFROM scratch\n").unwrap_err();
        assert_eq!(e.line, 1);
        // A here-string-like `<<<` and a shift inside quotes are not heredocs.
        assert!(parse("RUN cat <<< hi\n").is_ok());
    }

    #[test]
    fn a_keyword_that_is_not_a_word_is_an_error() {
        let e = parse("FROM scratch\n\"RUN\" x\n").unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn key_values_take_quotes_and_the_legacy_form() {
        assert_eq!(
            key_values(r#"A=1 B="two words" C='x y'"#).unwrap(),
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "x y".into())
            ]
        );
        assert_eq!(
            key_values("PATH /usr/bin:/bin").unwrap(),
            vec![("PATH".into(), "/usr/bin:/bin".into())]
        );
        assert!(key_values("A=\"open").is_err());
    }
}
