//! Bad input gets a one-paragraph error naming what was wrong, and leaves
//! the store unchanged.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;

/// A store holding one item, and its snapshot.
fn seeded_store(tmp: &Path) -> (std::path::PathBuf, Vec<std::path::PathBuf>) {
    let store = tmp.join("store");
    let seed = tmp.join("seed");
    write(seed.join("file"), b"seed", 0o644);
    ok(run(&store, &[&"store", &"add", &seed]), "seed add");
    let snap = store_snapshot(&store);
    (store, snap)
}

fn assert_unchanged(store: &Path, before: &[std::path::PathBuf], what: &str) {
    assert_eq!(store_snapshot(store), before, "{what} changed the store");
    assert_eq!(verify_clean(store), 1, "{what}");
}

#[test]
fn missing_path_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, before) = seeded_store(tmp.path());
    let missing = tmp.path().join("no-such-dir");
    let err = fails(
        run(&store, &[&"store", &"add", &missing]),
        "add of a missing path",
    );
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(err.contains("does not exist"), "{err}");
    assert_unchanged(&store, &before, "add of a missing path");
}

#[test]
fn device_node_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, before) = seeded_store(tmp.path());
    let err = fails(
        run(
            &store,
            &[&"store", &"add", &"/dev/null", &"--name", &"null"],
        ),
        "add of /dev/null",
    );
    assert!(
        err.contains("/dev/null") && err.contains("character device"),
        "{err}"
    );
    assert_unchanged(&store, &before, "add of /dev/null");

    // A device inside a tree, where we may create one (root).
    let tree = tmp.path().join("with-device");
    write(tree.join("ok"), b"fine", 0o644);
    let made = Command::new("mknod")
        .arg(tree.join("zero"))
        .args(["c", "1", "5"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if made {
        let err = fails(
            run(&store, &[&"store", &"add", &tree]),
            "tree with a device",
        );
        assert!(
            err.contains("with-device/zero") && err.contains("character device"),
            "{err}"
        );
        assert_unchanged(&store, &before, "tree with a device");
    } else {
        eprintln!("note: mknod is not permitted here; the device-in-tree case was not run");
    }
}

#[test]
fn fifo_in_a_tree_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, before) = seeded_store(tmp.path());
    let tree = tmp.path().join("with-fifo");
    write(tree.join("a/ok"), b"fine", 0o644);
    let st = Command::new("mkfifo")
        .arg(tree.join("a/pipe"))
        .status()
        .unwrap();
    assert!(st.success());
    let err = fails(run(&store, &[&"store", &"add", &tree]), "tree with a FIFO");
    assert!(
        err.contains("with-fifo/a/pipe") && err.contains("FIFO"),
        "{err}"
    );
    assert_unchanged(&store, &before, "tree with a FIFO");
}

#[test]
fn socket_in_a_tree_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, before) = seeded_store(tmp.path());
    let tree = tmp.path().join("with-socket");
    write(tree.join("ok"), b"fine", 0o644);
    let _listener = std::os::unix::net::UnixListener::bind(tree.join("sock")).unwrap();
    let err = fails(
        run(&store, &[&"store", &"add", &tree]),
        "tree with a socket",
    );
    assert!(
        err.contains("with-socket/sock") && err.contains("socket"),
        "{err}"
    );
    assert_unchanged(&store, &before, "tree with a socket");
}

#[test]
fn invalid_names_are_refused_with_the_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, before) = seeded_store(tmp.path());
    let src = tmp.path().join("src");
    write(&src, b"x", 0o644);
    let too_long = "n".repeat(212);
    for (name, expect) in [
        (".hidden", "starts with a period"),
        ("has space", "not allowed"),
        ("sl/ash", "not allowed"),
        ("", "empty"),
        (too_long.as_str(), "at most 211"),
    ] {
        let err = fails(
            run(&store, &[&"store", &"add", &src, &"--name", &name]),
            &format!("name {name:?}"),
        );
        assert!(err.contains(expect), "name {name:?}: {err}");
        assert_unchanged(&store, &before, &format!("name {name:?}"));
    }
    // A source whose own file name is not a valid item name needs --name.
    let bad = tmp.path().join("bad name");
    write(&bad, b"x", 0o644);
    let err = fails(
        run(&store, &[&"store", &"add", &bad]),
        "source with a space",
    );
    assert!(err.contains("bad name"), "{err}");
    assert_unchanged(&store, &before, "source with a space");
}

#[test]
fn unwritable_store_root_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let root = tmp.path().join("readonly-store");
    fs::create_dir(&root).unwrap();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o555)).unwrap();
    let src = tmp.path().join("src");
    write(&src, b"x", 0o644);
    let mut cmd = if rustix_is_root() {
        // root may write anywhere: run as nobody to get a real refusal.
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
        c.arg(env!("CARGO_BIN_EXE_envbuild"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_envbuild"))
    };
    let out = cmd
        .env_remove("ENVBUILD_STORE")
        .arg("--store")
        .arg(&root)
        .args(["store", "add"])
        .arg(&src)
        .output()
        .unwrap();
    let err = fails(out, "add into a read-only store");
    assert!(err.contains(&root.display().to_string()), "{err}");
    assert!(err.contains("writable"), "{err}");
    assert_eq!(
        fs::read_dir(&root).unwrap().count(),
        0,
        "the store root was written"
    );
}

fn rustix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[test]
fn corrupted_item_is_named_by_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let good = tmp.path().join("good");
    write(good.join("f"), b"good", 0o644);
    let bad = tmp.path().join("victim");
    write(bad.join("data/weights"), b"original", 0o644);
    ok(run(&store, &[&"store", &"add", &good]), "add good");
    let item = ok(run(&store, &[&"store", &"add", &bad]), "add victim");
    let file = Path::new(&item).join("data/weights");
    fs::set_permissions(
        Path::new(&item).join("data"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&file, b"tampered").unwrap();
    let o = run(&store, &[&"store", &"verify"]);
    assert_eq!(o.status.code(), Some(1), "verify should exit 1");
    let err = stderr(&o);
    assert!(
        err.contains(&basename(&item)) && err.contains("contents changed"),
        "{err}"
    );
    assert!(!err.contains(&basename(&ok(
        run(&store, &[&"store", &"hash", &good]),
        "hash"
    ))));
    // Deleting an item is named too.
    fs::set_permissions(&item, fs::Permissions::from_mode(0o755)).unwrap();
    fs::remove_dir_all(&item).unwrap();
    let o = run(&store, &[&"store", &"verify"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("missing"), "{}", stderr(&o));
}
