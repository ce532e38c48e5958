//! Archive member names and the relative, `/`-separated paths they install to.

use crate::unpack::{member_components, PathRule};

/// Why an archive member name is refused, or `None` if it is a safe relative
/// path: the shared member-path rules ([`crate::unpack::member_components`])
/// in their strict form (a wheel's names must match RECORD byte for byte, so
/// no `.` or empty components; `\` also read as a separator). Directory
/// entries (trailing `/`) are checked without that slash.
pub(super) fn unsafe_member_reason(name: &str) -> Option<&'static str> {
    member_components(name.as_bytes(), PathRule::Normalized).err()
}

/// Why a scheme path (relative to the destination root) is refused.
pub(super) fn unsafe_scheme_reason(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return None; // the destination root itself
    }
    if path.starts_with('/') {
        return Some("it must be relative to the destination root");
    }
    if path.contains(['\\', '\0']) {
        return Some("it must not contain a backslash or NUL");
    }
    if path.split('/').any(|c| matches!(c, "" | "." | "..")) {
        return Some("it must not have empty, `.` or `..` components");
    }
    None
}

/// `dir/rest`, where either may be empty.
pub(super) fn join(dir: &str, rest: &str) -> String {
    match (dir.is_empty(), rest.is_empty()) {
        (true, _) => rest.to_owned(),
        (_, true) => dir.to_owned(),
        _ => format!("{dir}/{rest}"),
    }
}

/// The path of `target` relative to the directory `base` (both relative,
/// normalized, `/`-separated): what pip writes in RECORD, e.g.
/// `../../../bin/foo` for a script seen from site-packages.
pub(super) fn relative_to(base: &str, target: &str) -> String {
    let base: Vec<&str> = base.split('/').filter(|c| !c.is_empty()).collect();
    let target: Vec<&str> = target.split('/').filter(|c| !c.is_empty()).collect();
    let common = base.iter().zip(&target).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&str> = vec![".."; base.len() - common];
    parts.extend(&target[common..]);
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names() {
        for ok in ["a", "a/b.py", "pkg/", "a\\b", "foo-1.0.data/scripts/x"] {
            assert_eq!(unsafe_member_reason(ok), None, "{ok}");
        }
        for bad in [
            "",
            "/abs",
            "\\abs",
            "C:/x",
            "c:x",
            "../evil",
            "a/../../evil",
            "a/./b",
            "a//b",
            "..\\evil",
            "a\\..\\..\\b",
            "a\0b",
            "..",
        ] {
            assert!(unsafe_member_reason(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn relative_paths() {
        let sp = "usr/local/lib/python3.11/site-packages";
        assert_eq!(relative_to(sp, "usr/local/bin/x"), "../../../bin/x");
        assert_eq!(relative_to(sp, &format!("{sp}/a/b.py")), "a/b.py");
        assert_eq!(
            relative_to(sp, "usr/local/include/python3.11/f/x.h"),
            "../../../include/python3.11/f/x.h"
        );
        assert_eq!(relative_to("", "a/b"), "a/b");
        assert_eq!(relative_to("a/b", "c"), "../../c");
        assert_eq!(join("", "x"), "x");
        assert_eq!(join("a", "x"), "a/x");
    }
}
