//! Archive member names and the relative, `/`-separated paths they install to.

/// Why an archive member name is refused, or `None` if it is a safe relative
/// path. Directory entries (trailing `/`) are checked without that slash.
pub(super) fn unsafe_member_reason(name: &str) -> Option<&'static str> {
    let name = name.strip_suffix('/').unwrap_or(name);
    if name.is_empty() {
        return Some("its name is empty");
    }
    if name.contains('\0') {
        return Some("its name contains NUL");
    }
    if name.starts_with('/') || name.starts_with('\\') || has_drive_prefix(name) {
        return Some("it is an absolute path (expected a path relative to the archive root)");
    }
    for component in name.split('/') {
        match component {
            ".." => return Some("it has a `..` component (expected no path traversal)"),
            "." | "" => {
                return Some(
                    "it has an empty or `.` component (expected a normalized relative path)",
                )
            }
            _ => {}
        }
    }
    // Backslashes are ordinary characters on POSIX, but an installer on
    // Windows (or a later tool) may read them as separators: refuse the
    // spellings that would escape or be absolute that way.
    if name.contains('\\') && name.split(['/', '\\']).any(|c| c == ".." || c.is_empty()) {
        return Some("read with `\\` as a separator it has a `..` or empty component");
    }
    None
}

fn has_drive_prefix(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'
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
