use std::fs;
use std::path::Path;

use super::*;

fn comps(path: &str) -> Vec<&[u8]> {
    member_components(path.as_bytes(), PathRule::Lenient).unwrap()
}

fn refusal(r: Result<impl std::fmt::Debug, EntryError>) -> String {
    match r {
        Err(EntryError::Refused(why)) => why,
        other => panic!("expected a refusal, found {other:?}"),
    }
}

/// A temp dir with `dest/` (not created) and `outside/sentinel`.
fn sandbox() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("sentinel"), b"untouched").unwrap();
    let dest = t.path().join("dest");
    (t, dest, outside)
}

fn outside_untouched(outside: &Path) {
    let names: Vec<_> = fs::read_dir(outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["sentinel"], "something was written outside");
    assert_eq!(fs::read(outside.join("sentinel")).unwrap(), b"untouched");
}

#[test]
fn member_paths_lenient_drop_dots_and_refuse_escapes() {
    assert_eq!(comps("./usr//bin/"), [b"usr" as &[u8], b"bin"]);
    assert!(comps("./").is_empty());
    for (bad, why) in [
        ("", "empty path"),
        ("/etc/passwd", "absolute path"),
        ("a/../../x", "`..` component"),
        ("x/..", "`..` component"),
        ("a\0b", "NUL"),
    ] {
        let e = member_components(bad.as_bytes(), PathRule::Lenient).unwrap_err();
        assert!(e.contains(why), "{bad:?}: {e}");
    }
}

#[test]
fn member_paths_normalized_refuse_dots_empties_and_backslash_escapes() {
    for ok in ["a", "a/b.py", "pkg/", "a\\b", "foo-1.0.data/scripts/x"] {
        assert!(
            member_components(ok.as_bytes(), PathRule::Normalized).is_ok(),
            "{ok}"
        );
    }
    for bad in [
        "",
        "/abs",
        "\\abs",
        "C:/x",
        "c:x",
        "../evil",
        "a/./b",
        "a//b",
        "./a",
        "..\\evil",
        "a\\..\\..\\b",
        "a\0b",
        "..",
    ] {
        assert!(
            member_components(bad.as_bytes(), PathRule::Normalized).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn zip_names_flagged_utf8_must_be_utf8() {
    assert_eq!(zip_member_name("a/é.py", "a/é.py".as_bytes()), Ok("a/é.py"));
    // What the zip library makes of `a/\xff.py` flagged UTF-8.
    assert!(zip_member_name("a/\u{FFFD}.py", b"a/\xff.py").is_err());
    // Unflagged names are CP437, which decodes every byte.
    assert_eq!(
        zip_member_name("a/\u{A0}.py", b"a/\xff.py"),
        Ok("a/\u{A0}.py")
    );
}

#[test]
fn a_chain_of_archive_links_is_never_written_through() {
    // The sdist attack: `s/t -> ..`, `u0 -> s/t/..`, `u1 -> u0/..`, ...,
    // then a file below the last link. Each link's text alone stays inside.
    let (_t, dest, outside) = sandbox();
    let mut u = Unpacker::new(&dest, Duplicates::Replace).unwrap();
    u.dir(&comps("s"), 0o755).unwrap();
    u.symlink(&comps("s/t"), b"..").unwrap();
    u.symlink(&comps("u0"), b"s/t/..").unwrap();
    for i in 1..24 {
        let name = format!("u{i}");
        u.symlink(&comps(&name), format!("u{}/..", i - 1).as_bytes())
            .unwrap();
    }
    let target = format!("u23/{}/sentinel", outside.display());
    let why = refusal(u.file(&comps(&target), 0o644, &mut &b"pwned"[..]));
    assert_eq!(
        why,
        "`u23` is a symbolic link; refusing to write through it"
    );
    let why = refusal(u.dir(&comps("s/t/x"), 0o755));
    assert_eq!(
        why,
        "`s/t` is a symbolic link; refusing to write through it"
    );
    let (link, e) = u.check_links_inside().unwrap_err();
    assert_eq!(link, "u0");
    assert!(e.to_string().contains("goes through the link `s/t`"), "{e}");
    outside_untouched(&outside);
}

#[test]
fn links_inside_the_tree_pass_the_check() {
    let (_t, dest, _outside) = sandbox();
    let mut u = Unpacker::new(&dest, Duplicates::Replace).unwrap();
    u.file(&comps("a/b/f"), 0o644, &mut &b"x"[..]).unwrap();
    u.symlink(&comps("a/l"), b"b/f").unwrap();
    u.symlink(&comps("a/b/up"), b"../../a/./b").unwrap();
    // A link to a link (not through it) is fine: each is checked itself.
    u.symlink(&comps("ll"), b"a/l").unwrap();
    u.check_links_inside().unwrap();
    u.finish().unwrap();
    assert_eq!(fs::read(dest.join("ll")).unwrap(), b"x");

    for (target, why) in [
        ("../x", "leaves the tree"),
        ("/etc/passwd", "absolute path"),
        ("a/l/..", "goes through the link `a/l`"),
    ] {
        let (_t, dest, _outside) = sandbox();
        let mut u = Unpacker::new(&dest, Duplicates::Replace).unwrap();
        u.symlink(&comps("a/l"), b"b").unwrap();
        u.symlink(&comps("x"), target.as_bytes()).unwrap();
        let (link, e) = u.check_links_inside().unwrap_err();
        assert_eq!(link, "x", "{target}");
        assert!(e.to_string().contains(why), "{target}: {e}");
    }
}

#[test]
fn a_replaced_link_is_no_longer_checked_or_followed() {
    let (_t, dest, outside) = sandbox();
    let mut u = Unpacker::new(&dest, Duplicates::Replace).unwrap();
    let secret = outside.join("sentinel");
    u.symlink(&comps("l"), secret.as_os_str().as_encoded_bytes())
        .unwrap();
    u.file(&comps("l"), 0o644, &mut &b"inside"[..]).unwrap();
    u.check_links_inside().unwrap();
    assert_eq!(fs::read(dest.join("l")).unwrap(), b"inside");
    outside_untouched(&outside);
}

#[test]
fn duplicates_replace_or_refuse_as_the_format_says() {
    let (_t, dest, _outside) = sandbox();
    let mut u = Unpacker::new(&dest, Duplicates::Replace).unwrap();
    u.file(&comps("f"), 0o644, &mut &b"one"[..]).unwrap();
    u.file(&comps("f"), 0o644, &mut &b"two"[..]).unwrap();
    assert_eq!(fs::read(dest.join("f")).unwrap(), b"two");

    let (_t, dest, _outside) = sandbox();
    let mut u = Unpacker::new(&dest, Duplicates::Refuse).unwrap();
    u.file(&comps("f"), 0o644, &mut &b"one"[..]).unwrap();
    let why = refusal(u.file(&comps("f"), 0o644, &mut &b"two"[..]));
    assert!(why.contains("a second entry for this path"), "{why}");
    assert_eq!(fs::read(dest.join("f")).unwrap(), b"one");
    // A directory where a file is, and a file where a directory is.
    u.dir(&comps("d"), 0o755).unwrap();
    assert!(refusal(u.file(&comps("d"), 0o644, &mut &b""[..])).contains("a directory"));
    assert!(refusal(u.dir(&comps("f"), 0o755)).contains("a non-directory"));
    // The destination itself is not a file.
    assert!(refusal(u.file(&[], 0o644, &mut &b""[..])).contains("destination itself"));
}

#[test]
fn directory_modes_are_applied_last() {
    let (_t, dest, _outside) = sandbox();
    let mut u = Unpacker::new(&dest, Duplicates::Replace).unwrap();
    u.dir(&comps("ro"), 0o555).unwrap();
    u.file(&comps("ro/f"), 0o4755, &mut &b"x"[..]).unwrap();
    u.finish().unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| fs::metadata(dest.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("ro"), 0o555);
    assert_eq!(mode("ro/f"), 0o755, "setuid is dropped");
    fs::set_permissions(dest.join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
}
