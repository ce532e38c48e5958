//! Item identities, NAR dumps and NAR hashes agree with the real Nix
//! (Debian's nix-bin) on a corpus of trees covering every NAR feature.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::*;

/// Build the corpus: each entry is a path to add (a directory, a file or a
/// symlink) whose basename is a valid item name.
fn corpus(base: &Path) -> Vec<PathBuf> {
    let mut rng = Rng::new(0xe17b);
    let mut out = Vec::new();
    let mut tree = |name: &str, build: &mut dyn FnMut(&Path)| {
        let p = base.join(name);
        build(&p);
        out.push(p);
    };
    tree("t01-empty-dir", &mut |p| fs::create_dir(p).unwrap());
    tree("t02-empty-file", &mut |p| write(p, b"", 0o644));
    tree("t03-one-file", &mut |p| write(p, b"hello\n", 0o644));
    tree("t04-executable-file", &mut |p| {
        write(p, b"#!/bin/sh\necho hi\n", 0o755)
    });
    tree("t05-symlink-root", &mut |p| link("some/where", p));
    tree("t06-nested-and-empty-dirs", &mut |p| {
        fs::create_dir_all(p.join("a/b/c/d/e")).unwrap();
        fs::create_dir_all(p.join("a/empty")).unwrap();
        fs::create_dir_all(p.join("z/empty/inside")).unwrap();
        write(p.join("a/b/c/file"), b"x", 0o644);
    });
    tree("t07-modes", &mut |p| {
        for (name, mode) in [
            ("m0644", 0o644),
            ("m0654", 0o654),
            ("m0744", 0o744),
            ("m0711", 0o711),
            ("m0755", 0o755),
            ("m0600", 0o600),
            ("m0100", 0o100 | 0o400),
        ] {
            write(p.join(name), name.as_bytes(), mode);
        }
    });
    tree("t08-symlinks", &mut |p| {
        write(p.join("target.txt"), b"t", 0o644);
        link("target.txt", p.join("relative"));
        link("../t08-symlinks/target.txt", p.join("relative-up"));
        link("/etc/passwd", p.join("absolute"));
        link("/does/not/exist", p.join("dangling-absolute"));
        link("missing", p.join("dangling-relative"));
        link(".", p.join("dot"));
        fs::create_dir(p.join("dir")).unwrap();
        link("dir", p.join("to-dir"));
    });
    tree("t09-utf8-names", &mut |p| {
        for name in [
            "caf\u{e9}",
            "\u{65e5}\u{672c}\u{8a9e}",
            "emoji-\u{1f600}",
            "\u{3a9}mega",
            "A",
            "a",
            "B",
            "_",
            "0",
        ] {
            write(p.join(name), name.as_bytes(), 0o644);
        }
    });
    tree("t10-long-names", &mut |p| {
        let long = "n".repeat(255);
        write(p.join(&long), b"255 bytes", 0o644);
        let mut deep = p.to_path_buf();
        for i in 0..30 {
            deep.push(format!("{}{i:02}", "d".repeat(60)));
        }
        write(deep.join("leaf"), b"deep", 0o644);
        link(&"t".repeat(3000), p.join("long-target"));
    });
    tree("t11-sort-order", &mut |p| {
        for name in ["a", "a-b", "a.b", "a_b", "aa", "b", "A", "Z", "~", "-"] {
            write(p.join(name), name.as_bytes(), 0o644);
        }
        write(p.join("a0/inner"), b"i", 0o644);
    });
    tree("t12-padding-sizes", &mut |p| {
        for n in 0..=17 {
            write(p.join(format!("size{n:02}")), vec![b'x'; n], 0o644);
        }
    });
    tree("t13-binary-1mib", &mut |p| {
        write(p, rng.bytes(1 << 20), 0o644)
    });
    tree("t14-nul-bytes", &mut |p| {
        write(p, [0u8, 0, 1, 0, 255, 0, 0, 0, 0], 0o644)
    });
    tree("t15-hidden-files", &mut |p| {
        write(p.join(".hidden"), b"h", 0o644);
        write(p.join(".config/x"), b"c", 0o644);
        write(p.join("visible"), b"v", 0o644);
    });
    tree("t16-dir-modes-ignored", &mut |p| {
        write(p.join("private/file"), b"p", 0o644);
        fs::set_permissions(p.join("private"), fs::Permissions::from_mode(0o700)).unwrap();
        write(p.join("open/file"), b"o", 0o644);
        fs::set_permissions(p.join("open"), fs::Permissions::from_mode(0o777)).unwrap();
    });
    tree("t17-special-bits", &mut |p| {
        write(p.join("setuid"), b"s", 0o4755);
        write(p.join("setgid"), b"g", 0o2755);
        write(p.join("sticky"), b"k", 0o1644);
    });
    tree("t18-odd-characters", &mut |p| {
        for name in [
            "with space",
            "quote\"s",
            "dollar$",
            "new\nline",
            "tab\tbed",
            "back\\slash",
            "colon:",
        ] {
            write(p.join(name), name.as_bytes(), 0o644);
        }
    });
    tree("t19-thousand-files", &mut |p| many_files(p, 1000, 19));
    tree("t20-mixed-sizes", &mut |p| {
        for (i, n) in [
            4095usize, 4096, 4097, 65535, 65536, 131071, 131072, 131073, 300_000,
        ]
        .iter()
        .enumerate()
        {
            write(
                p.join(format!("f{i}")),
                rng.bytes(*n),
                if i % 2 == 0 { 0o644 } else { 0o755 },
            );
        }
    });
    tree("t21-symlink-to-file-root", &mut |p| {
        link("/etc/hostname", p)
    });
    tree("t22-dir-of-empty-dirs", &mut |p| {
        for i in 0..20 {
            fs::create_dir_all(p.join(format!("e{i}"))).unwrap();
        }
    });
    tree("t23-executable-empty", &mut |p| write(p, b"", 0o755));
    tree("t24-python-like", &mut |p| {
        write(
            p.join("usr/local/lib/python3.11/site-packages/pkg/__init__.py"),
            b"",
            0o644,
        );
        write(
            p.join("usr/local/lib/python3.11/site-packages/pkg/core.py"),
            b"def f():\n    return 1\n",
            0o644,
        );
        write(
            p.join("usr/local/bin/tool"),
            b"#!/usr/local/bin/python3\nimport pkg\n",
            0o755,
        );
        link("python3.11", p.join("usr/local/bin/python3"));
    });
    tree("t25-name-chars+-._?=", &mut |p| {
        write(p.join("f"), b"name", 0o644)
    });
    tree("t26-deep-nesting", &mut |p| {
        let mut d = p.to_path_buf();
        for i in 0..100 {
            d.push(format!("{i}"));
        }
        write(d.join("bottom"), b"b", 0o644);
    });
    out
}

fn nix_add(nix_store: &Path, path: &Path) -> String {
    let o = nix("nix-store")
        .arg("--store")
        .arg(nix_store)
        .args(["--add-fixed", "--recursive", "sha256"])
        .arg(path)
        .output()
        .unwrap();
    basename(&ok(o, &format!("nix-store --add-fixed {}", path.display())))
}

fn nix_hash_base32(path: &Path) -> String {
    let o = nix("nix")
        .args(["hash", "path", "--base32"])
        .arg(path)
        .output()
        .unwrap();
    ok(o, &format!("nix hash path {}", path.display()))
}

/// Check one path against Nix on all three counts.
fn check_against_nix(store: &Path, nix_store: &Path, path: &Path) {
    let what = path.display().to_string();
    let ours = basename(&ok(run(store, &[&"store", &"add", &path]), &what));
    assert_eq!(
        ours,
        nix_add(nix_store, path),
        "store add basename of {what}"
    );

    let hash = ok(run(store, &[&"store", &"hash", &"--base32", &path]), &what);
    assert_eq!(hash, nix_hash_base32(path), "store hash --base32 of {what}");

    let mut dump = envbuild();
    dump.args(["store", "dump"]).arg(path);
    let mut nix_dump = nix("nix-store");
    nix_dump.arg("--dump").arg(path);
    assert_same_stdout(dump, nix_dump, &format!("store dump of {what}"));

    // The item itself is canonical and dumps to the same NAR.
    let item = store.join(&ours);
    assert_canonical(&item);
    let mut item_dump = envbuild();
    item_dump.args(["store", "dump"]).arg(&item);
    let mut nix_dump = nix("nix-store");
    nix_dump.arg("--dump").arg(path);
    assert_same_stdout(
        item_dump,
        nix_dump,
        &format!("dump of the added item of {what}"),
    );
}

fn assert_canonical(item: &Path) {
    for entry in walkdir::WalkDir::new(item).follow_root_links(false) {
        let entry = entry.unwrap();
        let meta = entry.path().symlink_metadata().unwrap();
        assert_eq!(meta.mtime(), 1, "mtime of {}", entry.path().display());
        if !meta.file_type().is_symlink() {
            let mode = meta.mode() & 0o7777;
            assert!(
                [0o444, 0o555].contains(&mode),
                "{} has mode {mode:o}, expected 0444 or 0555",
                entry.path().display()
            );
        }
    }
}

#[test]
fn corpus_of_trees_matches_nix_add_dump_and_hash() {
    require_tool("nix-store", "nix-bin");
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("corpus");
    fs::create_dir(&base).unwrap();
    let trees = corpus(&base);
    assert!(trees.len() >= 25, "corpus has {} trees", trees.len());
    let store = tmp.path().join("store");
    let nix_store = tmp.path().join("nix");
    for t in &trees {
        check_against_nix(&store, &nix_store, t);
    }
    assert_eq!(verify_clean(&store), trees.len() as u64);
}

#[test]
fn tree_of_50000_small_files_matches_nix() {
    require_tool("nix-store", "nix-bin");
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("fifty-thousand");
    many_files(&tree, 50_000, 50);
    check_against_nix(&tmp.path().join("store"), &tmp.path().join("nix"), &tree);
}

#[test]
fn file_over_2_gib_matches_nix() {
    require_tool("nix-store", "nix-bin");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("big");
    fs::create_dir(&dir).unwrap();
    let file = dir.join("weights.bin");
    // Sparse, with data around the 2 GiB and 4-byte-length boundaries.
    let size: u64 = (2u64 << 30) + 12_345;
    let f = fs::File::create(&file).unwrap();
    f.set_len(size).unwrap();
    let mut rng = Rng::new(2);
    for offset in [0u64, (1u64 << 31) - 3, size - 100] {
        use std::os::unix::fs::FileExt;
        f.write_all_at(&rng.bytes(64), offset).unwrap();
    }
    drop(f);
    write(dir.join("config.json"), b"{}", 0o644);
    check_against_nix(&tmp.path().join("store"), &tmp.path().join("nix"), &dir);
}
