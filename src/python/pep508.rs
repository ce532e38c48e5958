//! PEP 508 requirements, PEP 508 markers and PEP 440 version specifier
//! sets read from untrusted text (index metadata, sdists, requirements
//! files, pylock files, specs). Every such parse goes through this module:
//! [`parse_requirement`], [`parse_marker`], [`parse_specifiers`].
//!
//! pep508_rs 0.9 and pep440_rs 0.7 panic on some malformed input, so each
//! function refuses that input first, with a sentence that names what it
//! found:
//!
//! - A package name or extra that ends in `-`, `_` or `.` and is followed by
//!   more text (`foo- >=1`, `foo[bar-]`) reaches an `expect` in pep508_rs's
//!   name and extra parsers: its grammar check only looks for such an ending
//!   at the end of the input. Such a name is never valid.
//! - A non-ASCII character makes their error messages slice the input
//!   inside that character ("not a char boundary"): spans are built as if
//!   every character were one byte. The grammar has no place for one outside
//!   a marker's quoted string: names, extras, versions, operators and marker
//!   variables are ASCII, and a URL is percent-encoded. So a non-ASCII
//!   character is accepted only between the quotes of a string that closes,
//!   after the requirement's `;`; a specifier set must be ASCII throughout.
//!
//! Errors are formatted here from the error's fields, never with
//! pep508_rs's `Display` (which underlines the span by slicing the input):
//! the message, then the input, then a caret under the character where the
//! parser stopped.

use std::str::FromStr;

use pep440_rs::VersionSpecifiers;
use pep508_rs::{MarkerTree, Pep508Error, Pep508Url, Requirement};

fn identifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// The name of a name or extra that pep508_rs would accept and then panic
/// on: the first such identifier (after leading whitespace, and inside the
/// extras brackets that follow it) ending in `-`, `_` or `.`.
fn dangling_identifier(text: &str) -> Option<&str> {
    let rest = text.trim_start();
    let name_len = rest.find(|c| !identifier_char(c)).unwrap_or(rest.len());
    let name = &rest[..name_len];
    if name.ends_with(['-', '_', '.']) {
        return Some(name);
    }
    let after = rest[name_len..].trim_start();
    let extras = after.strip_prefix('[')?;
    let extras = &extras[..extras.find(']').unwrap_or(extras.len())];
    extras
        .split(|c| !identifier_char(c))
        .find(|id| id.ends_with(['-', '_', '.']))
}

/// Why a non-ASCII character in marker text is refused: the first one
/// outside single or double quotes, or one inside a quoted string that
/// never closes.
fn misplaced_non_ascii_in_marker(marker: &str) -> Option<String> {
    let mut quote = None;
    let mut quoted_non_ascii = None;
    for c in marker.chars() {
        match quote {
            Some(q) if c == q => {
                quote = None;
                quoted_non_ascii = None;
            }
            Some(_) if !c.is_ascii() => {
                quoted_non_ascii.get_or_insert(c);
            }
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if !c.is_ascii() => {
                return Some(format!(
                    "{c:?} is not allowed outside a quoted string (marker variables and operators are ASCII)"
                ));
            }
            None => {}
        }
    }
    quoted_non_ascii.map(|c| format!("{c:?} is inside a quoted string that is never closed"))
}

/// Why a non-ASCII character in a requirement is refused: one before the
/// first `;` (name, extras, version, URL), or a misplaced one in the
/// marker after it.
fn misplaced_non_ascii_in_requirement(text: &str) -> Option<String> {
    let (head, marker) = text.split_once(';').unwrap_or((text, ""));
    if let Some(c) = head.chars().find(|c| !c.is_ascii()) {
        return Some(format!(
            "{c:?} is not allowed outside a marker's quoted string (names, extras, versions and URLs are ASCII)"
        ));
    }
    misplaced_non_ascii_in_marker(marker)
}

/// The largest char boundary of `s` at or below `i`.
fn floor_char_boundary(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// pep508_rs's error as a sentence: the message, the input, and a caret
/// under the character where the parser stopped. Spans are clamped to
/// character boundaries, so no input can make this panic.
fn describe<T: Pep508Url>(e: &Pep508Error<T>) -> String {
    let input = e.input.as_str();
    let start = floor_char_boundary(input, e.start);
    let end = floor_char_boundary(input, e.start.saturating_add(e.len)).max(start);
    let column = input[..start].chars().count();
    let width = input[start..end].chars().count().max(1);
    format!(
        "{}\n{input}\n{}{}",
        e.message,
        " ".repeat(column),
        "^".repeat(width)
    )
}

/// Parse one PEP 508 requirement; the error is a sentence.
pub fn parse_requirement<T: Pep508Url>(text: &str) -> Result<Requirement<T>, String> {
    if let Some(id) = dangling_identifier(text) {
        return Err(format!(
            "the name {id:?} must end with a letter or digit, not {:?}",
            id.chars().last().unwrap_or('-')
        ));
    }
    if let Some(why) = misplaced_non_ascii_in_requirement(text) {
        return Err(why);
    }
    Requirement::<T>::from_str(text).map_err(|e| describe(&e))
}

/// Parse one PEP 508 marker expression (`python_version >= "3.8"`); the
/// error is a sentence.
pub fn parse_marker(text: &str) -> Result<MarkerTree, String> {
    if let Some(why) = misplaced_non_ascii_in_marker(text) {
        return Err(why);
    }
    MarkerTree::from_str(text).map_err(|e| describe::<pep508_rs::VerbatimUrl>(&e))
}

/// Parse a PEP 440 version specifier set (`>=3.8,<4`); the error is a
/// sentence.
pub fn parse_specifiers(text: &str) -> Result<VersionSpecifiers, String> {
    if let Some(c) = text.chars().find(|c| !c.is_ascii()) {
        return Err(format!(
            "{c:?} is not allowed in a version specifier (versions and operators are ASCII)"
        ));
    }
    VersionSpecifiers::from_str(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pep508_rs::VerbatimUrl;

    fn parse(text: &str) -> Result<Requirement<VerbatimUrl>, String> {
        parse_requirement(text)
    }

    #[test]
    fn requirement_parser_refuses_a_name_ending_in_a_dash_before_more_text_instead_of_panicking() {
        for text in [
            "foo- >=1",
            "foo-;python_version>'3'",
            " foo_ (>=1)",
            "foo.[x]",
            "a-\u{5}x",
        ] {
            let e = parse(text).unwrap_err();
            assert!(
                e.contains("must end with a letter or digit"),
                "{text:?}: {e}"
            );
        }
    }

    #[test]
    fn requirement_parser_refuses_non_ascii_outside_quotes_instead_of_panicking() {
        // Found by the requirements_txt and sdist_metadata fuzz targets.
        for (text, says) in [
            ("30[S \u{d3}\u{93}!", "outside a marker's quoted string"),
            ("caf\u{e9}>=1", "outside a marker's quoted string"),
            ("foo[bar]\u{feff}", "outside a marker's quoted string"),
            // A quote before the `;` does not make a string.
            (
                "foo @ https://x/'\u{e9}' ; os_name == 'x'",
                "outside a marker's",
            ),
            (
                "foo>=1; os_name == 'x' and \u{e9}",
                "outside a quoted string",
            ),
            (
                "six==1.16.0 ; python_version >= \"3.8\"--'.inva>=>\u{4e2}",
                "never closed",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(says), "{text:?}: {e}");
        }
        parse("foo>=1; platform_release == '5.\u{e9}'").unwrap();
    }

    #[test]
    fn requirement_errors_underline_the_spot_even_after_multi_byte_text() {
        // A closed quoted string with non-ASCII text, then a parse error:
        // pep508_rs's own Display would slice inside the "é".
        let e = parse("foo; os_name == '\u{e9}\u{e9}' ! x").unwrap_err();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 3, "{e}");
        assert_eq!(lines[1], "foo; os_name == '\u{e9}\u{e9}' ! x");
        let caret = lines[2].find('^').expect("a caret");
        assert_eq!(lines[1].chars().nth(caret), Some('!'), "{e}");
    }

    #[test]
    fn no_non_ascii_character_anywhere_makes_the_parsers_panic() {
        // Every position of inputs shaped like the fuzz findings, with a
        // character of each UTF-8 length.
        let templates = [
            "six==1.16.0 ; python_version >= \"3.8\" and os_name=='x'",
            "foo[bar,baz] (>=1,<2) ; extra == 'x' or 'a' in platform_release",
            "foo @ https://files.invalid/foo-1.0.tar.gz ; os_name != 'nt'",
            "x; python_version >= '3' -- 'tail",
            "name>=1.0,!=1.5.*",
        ];
        for template in templates {
            for c in ['\u{e9}', '\u{4e2}', '\u{feff}', '\u{1f600}'] {
                for (i, _) in template.char_indices() {
                    let mut text = template.to_owned();
                    text.insert(i, c);
                    let _ = parse(&text);
                    let marker = text.split_once(';').map_or(text.as_str(), |(_, m)| m);
                    let _ = parse_marker(marker);
                    let _ = parse_specifiers(&text[text.find(['>', '=']).unwrap_or(0)..]);
                }
            }
        }
    }

    #[test]
    fn markers_and_specifier_sets_parse_and_refuse_with_a_sentence() {
        assert!(parse_marker("python_version >= '3.8' and os_name == 'posix'").is_ok());
        assert!(parse_marker("platform_release == '5.\u{e9}'").is_ok());
        let e = parse_marker("os_name == '\u{e9}").unwrap_err();
        assert!(e.contains("never closed"), "{e}");
        assert!(parse_specifiers(">=3.8, <4").is_ok());
        let e = parse_specifiers(">=3.\u{e9}").unwrap_err();
        assert!(e.contains("not allowed in a version specifier"), "{e}");
        let e = parse_specifiers(">=x").unwrap_err();
        assert!(!e.is_empty());
    }

    #[test]
    fn valid_requirements_still_parse() {
        for text in [
            "foo",
            "foo-bar.baz_qux==1.0.*",
            "foo[a-b,c.d] (>=1,<2) ; python_version >= '3.8' and extra == 'x-'",
            "foo @ https://files.invalid/foo-1.0-py3-none-any.whl",
            "  spaced  [ x ] >= 2",
        ] {
            parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        }
        assert!(parse("foo-").is_err());
        assert!(parse("").is_err());
    }
}
