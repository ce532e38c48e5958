//! PEP 508 requirements read from untrusted text (index metadata, sdists,
//! requirements files, specs). Every such parse goes through
//! [`parse_requirement`].
//!
//! pep508_rs 0.9 panics (an `expect` in its name and extra parsers) on a
//! package name or extra that ends in `-`, `_` or `.` and is followed by
//! more text (`foo- >=1`, `foo[bar-]`): its grammar check only looks for
//! such an ending at the end of the input. Such a name is never valid, so
//! it is refused here, before the parser sees it.
//!
//! It also panics ("not a char boundary") when it builds an error message
//! around a non-ASCII character outside a quoted string (`30[S Ó!`). The
//! grammar has no place for one there (names, extras, versions and
//! operators are ASCII; a URL is percent-encoded), so such a character is
//! refused here too; quoted marker values may hold any text.

use std::str::FromStr;

use pep508_rs::{Pep508Url, Requirement};

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

/// The first non-ASCII character outside single or double quotes.
fn non_ascii_outside_quotes(text: &str) -> Option<char> {
    let mut quote = None;
    for c in text.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if !c.is_ascii() => return Some(c),
            None => {}
        }
    }
    None
}

/// Parse one PEP 508 requirement; the error is a sentence.
pub fn parse_requirement<T: Pep508Url>(text: &str) -> Result<Requirement<T>, String> {
    if let Some(id) = dangling_identifier(text) {
        return Err(format!(
            "the name {id:?} must end with a letter or digit, not {:?}",
            id.chars().last().unwrap_or('-')
        ));
    }
    if let Some(c) = non_ascii_outside_quotes(text) {
        return Err(format!(
            "{c:?} is not allowed outside a quoted string (names, extras, versions and URLs are ASCII)"
        ));
    }
    Requirement::<T>::from_str(text).map_err(|e| e.to_string())
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
        // Found by the requirements_txt fuzz target.
        for text in [
            "30[S \u{d3}\u{93}!",
            "caf\u{e9}>=1",
            "foo>=1; os_name == 'x' and \u{e9}",
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains("outside a quoted string"), "{text:?}: {e}");
        }
        parse("foo>=1; platform_release == '5.\u{e9}'").unwrap();
    }

    #[test]
    fn requirement_parser_refuses_an_extra_ending_in_a_dash_instead_of_panicking() {
        for text in ["foo[bar-]", "foo [a, b_ ]>=1", "foo[x. ,y]"] {
            let e = parse(text).unwrap_err();
            assert!(
                e.contains("must end with a letter or digit"),
                "{text:?}: {e}"
            );
        }
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
