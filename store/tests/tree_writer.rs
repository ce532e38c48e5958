//! `TreeWriter`: a tree given in NAR order is written canonical, its NAR
//! hash is what reading it back (and the real Nix) gives, and the store
//! takes it without hashing again. Out-of-order, duplicate or mis-sized
//! entries are refused.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use envbuild_store::nar::{self, nar_order, TreeWriter};
use envbuild_store::{NarError, Store};

/// Entries whose names make NAR order differ from plain path order: `-` and
/// `.` sort before `/`, so `pkg` and its contents come before `pkg-1.0...`
/// and `pkg.py`.
fn entries() -> Vec<(&'static str, Entry)> {
    let mut e = vec![
        ("pkg/__init__.py", Entry::File(b"x = 1\n", false)),
        ("pkg/sub/deep.py", Entry::File(b"deep\n", false)),
        ("pkg/sub/empty.bin", Entry::File(b"", false)),
        ("pkg-1.0.dist-info/RECORD", Entry::File(b"r\n", false)),
        ("pkg.py", Entry::File(b"alone\n", false)),
        ("bin/tool", Entry::File(b"#!/bin/sh\necho hi\n", true)),
        ("bin/tool-link", Entry::Symlink("tool")),
        ("share/empty", Entry::Dir),
        ("share/seven", Entry::File(b"1234567", false)),
        ("z", Entry::File(&[0u8; 9], true)),
    ];
    e.sort_by(|a, b| nar_order(a.0, b.0));
    e
}

enum Entry {
    File(&'static [u8], bool),
    Symlink(&'static str),
    Dir,
}

fn write_tree(root: &Path) -> nar::WrittenTree {
    let mut w = TreeWriter::create(root).unwrap();
    for (path, e) in entries() {
        match e {
            Entry::File(bytes, x) => {
                let mut f = w.file(path, x, bytes.len() as u64).unwrap();
                // In two writes, as a streaming copy would.
                let (a, b) = bytes.split_at(bytes.len() / 2);
                f.write_all(a).unwrap();
                f.write_all(b).unwrap();
                f.finish().unwrap();
            }
            Entry::Symlink(target) => w.symlink(path, target).unwrap(),
            Entry::Dir => w.directory(path).unwrap(),
        }
    }
    w.finish().unwrap()
}

#[test]
fn the_hash_written_is_the_hash_read_back_and_the_files_are_canonical() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("out");
    let tree = write_tree(&root);
    assert_eq!(tree.root(), root);
    assert_eq!(tree.nar(), nar::hash_path(&root).unwrap());
    for path in walk(&root) {
        let meta = path.symlink_metadata().unwrap();
        let what = path.display().to_string();
        if meta.file_type().is_symlink() {
            assert_eq!(meta.mtime(), 1, "{what}");
            continue;
        }
        let want = if meta.is_dir() || meta.mode() & 0o100 != 0 {
            0o555
        } else {
            0o444
        };
        assert_eq!(meta.permissions().mode() & 0o7777, want, "{what}");
        assert_eq!(meta.mtime(), 1, "{what}");
    }
    assert_eq!(
        fs::read(root.join("pkg/sub/deep.py")).unwrap(),
        b"deep\n".to_vec()
    );
    assert!(root.join("share/empty").is_dir());
    assert_eq!(
        fs::read_link(root.join("bin/tool-link")).unwrap(),
        Path::new("tool")
    );
    canonical_cleanup(&root);
}

#[test]
fn the_hash_written_is_the_one_nix_computes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("out");
    let tree = write_tree(&root);
    let out = Command::new("nix-hash")
        .args(["--type", "sha256", "--base32"])
        .arg(&root)
        .output()
        .expect("`nix-hash` is not installed: install the Debian package `nix-bin` (.ci/run does)");
    assert!(out.status.success(), "nix-hash: {out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        tree.nar().to_nix_base32()
    );
    canonical_cleanup(&root);
}

#[test]
fn the_store_takes_a_written_tree_as_the_item_add_path_makes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(tmp.path().join("store")).unwrap();
    let scratch = store.scratch("written").unwrap();
    let out = scratch.path().join("out");
    let tree = write_tree(&out);
    // The same tree, as an ordinary directory added by copying.
    let copy = tmp.path().join("pkg-out");
    write_tree(&copy);
    let by_copy = store.add_path(&copy, "pkg-out").unwrap();

    let prepared = store
        .prepare_written_output(tree, "pkg-out", &[], Some("drv"))
        .unwrap();
    assert_eq!(prepared.path(), &by_copy.path);
    let fresh = tmp.path().join("fresh");
    let mut other = Store::open(&fresh).unwrap();
    let s2 = other.scratch("written").unwrap();
    let out2 = s2.path().join("out");
    let tree2 = write_tree(&out2);
    let p2 = other
        .prepare_written_output(tree2, "pkg-out", &[], Some("drv"))
        .unwrap();
    let added = other.commit_outputs(vec![p2]).unwrap();
    assert_eq!(added[0].path, by_copy.path);
    assert!(added[0].copied);
    let report = other.verify(|_, _, _| {}).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    // A tree outside the store's scratch space is refused.
    let outside = tmp.path().join("outside");
    let t = TreeWriter::create(&outside).unwrap().finish().unwrap();
    assert!(other
        .prepare_written_output(t, "outside", &[], None)
        .is_err());
    canonical_cleanup(&copy);
    canonical_cleanup(&outside);
}

#[test]
fn entries_out_of_nar_order_twice_or_through_a_file_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let refused = |steps: &[(&str, bool)], bad: &str| {
        let root = tmp.path().join(format!("t{}", steps.len() + bad.len()));
        let _ = fs::remove_dir_all(&root);
        let mut w = TreeWriter::create(&root).unwrap();
        for (path, dir) in steps {
            if *dir {
                w.directory(path).unwrap();
            } else {
                w.file_from_bytes(path, false, b"x").unwrap();
            }
        }
        let e = w.file_from_bytes(bad, false, b"x").unwrap_err();
        // Refused from then on, finish included.
        assert!(w.file_from_bytes("zzz", false, b"x").is_err());
        assert!(w.finish().is_err());
        e.to_string()
    };
    let e = refused(&[("b", false)], "a");
    assert!(e.contains("comes before \"b\""), "{e}");
    let e = refused(&[("a.b", false)], "a/b");
    assert!(e.contains("comes before \"a.b\""), "{e}");
    let e = refused(&[("a", false)], "a");
    assert!(e.contains("written already"), "{e}");
    let e = refused(&[("a", false)], "a/b");
    assert!(e.contains("written already"), "{e}");
    let e = refused(&[("d", true), ("d/x", false), ("e", false)], "d/y");
    assert!(e.contains("written already"), "{e}");
    let e = refused(&[], "a//b");
    assert!(e.contains("cannot be stored in a NAR"), "{e}");
    let e = refused(&[], "../up");
    assert!(e.contains("cannot be stored in a NAR"), "{e}");
}

#[test]
fn a_file_given_more_or_fewer_bytes_than_declared_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for (declared, given) in [(3u64, &b"ab"[..]), (3, &b"abcd"[..])] {
        let root = tmp.path().join(format!("t{}", given.len()));
        let mut w = TreeWriter::create(&root).unwrap();
        let mut f = w.file("f", false, declared).unwrap();
        f.write_all(given).unwrap();
        let e = f.finish().unwrap_err();
        assert!(
            matches!(e, NarError::Changed { expected, found, .. }
                if expected == declared && found == given.len() as u64),
            "{e:?}"
        );
        assert!(w.finish().is_err());
    }
    // A file started and never finished leaves the writer refusing.
    let root = tmp.path().join("unfinished");
    let mut w = TreeWriter::create(&root).unwrap();
    drop(w.file("f", false, 1).unwrap());
    assert!(w.file_from_bytes("g", false, b"g").is_err());
}

/// Written trees are read-only; make them removable for the temp dir.
fn canonical_cleanup(root: &Path) {
    for path in walk(root) {
        if path.symlink_metadata().unwrap().is_dir() {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
}

/// `root` and everything below it.
fn walk(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if out[i].symlink_metadata().unwrap().is_dir() {
            let mut children: Vec<_> = fs::read_dir(&out[i])
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            children.sort();
            out.extend(children);
        }
        i += 1;
    }
    out
}
