//! `Store::import_nar`: an item taken from its NAR (a binary cache's
//! untrusted bytes) is registered only when the NAR's size and hash and the
//! path computed from the restored tree are the expected ones; otherwise
//! nothing enters the store and `verify` stays clean.

use std::fs;

use envbuild_store::nar;
use envbuild_store::{ExpectedItem, Store, StoreError, StorePath};

fn tree(dir: &std::path::Path) -> std::path::PathBuf {
    let t = dir.join("src");
    fs::create_dir_all(t.join("sub")).unwrap();
    fs::write(t.join("a"), b"alpha\n").unwrap();
    fs::write(t.join("sub/b"), b"beta\n").unwrap();
    std::os::unix::fs::symlink("a", t.join("link")).unwrap();
    t
}

/// An item in store A, its NAR, and its identity.
fn source_item(dir: &std::path::Path) -> (Store, StorePath, Vec<u8>, [u8; 32]) {
    let mut a = Store::open(dir.join("a")).unwrap();
    let added = a.add_path(&tree(dir), "thing").unwrap();
    let mut bytes = Vec::new();
    nar::dump(&added.physical, &mut bytes).unwrap();
    (a, added.path, bytes, added.nar.sha256)
}

fn assert_empty_and_clean(b: &Store) {
    let report = b.verify(|_, _, _| {}).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.unregistered.is_empty(), "{:?}", report.unregistered);
    assert_eq!(report.checked, 0, "nothing may be registered");
}

#[test]
fn a_matching_nar_becomes_the_same_item() {
    let tmp = tempfile::tempdir().unwrap();
    let (_a, path, bytes, sha) = source_item(tmp.path());
    let mut b = Store::open(tmp.path().join("b")).unwrap();
    let exp = ExpectedItem {
        path: &path,
        nar_sha256: sha,
        nar_size: bytes.len() as u64,
        references: &[],
        deriver: None,
    };
    let added = b.import_nar(&bytes[..], &exp).unwrap();
    assert!(added.copied);
    assert_eq!(added.path, path);
    assert_eq!(fs::read(added.physical.join("sub/b")).unwrap(), b"beta\n");
    let again = b.import_nar(&bytes[..], &exp).unwrap();
    assert!(!again.copied);
    let report = b.verify(|_, _, _| {}).unwrap();
    assert!(report.problems.is_empty() && report.checked == 1);
}

#[test]
fn a_flipped_byte_a_wrong_size_a_wrong_name_or_trailing_bytes_add_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (_a, path, bytes, sha) = source_item(tmp.path());
    let mut b = Store::open(tmp.path().join("b")).unwrap();
    let size = bytes.len() as u64;
    // A byte of file contents flipped: the NAR still parses, its hash differs.
    let pos = bytes.windows(6).position(|w| w == b"alpha\n").unwrap();
    let mut flipped = bytes.clone();
    flipped[pos] ^= 0x20;
    let (p, s, n) = (path.clone(), sha, size);
    let e = b
        .import_nar(
            &flipped[..],
            &ExpectedItem {
                path: &p,
                nar_sha256: s,
                nar_size: n,
                references: &[],
                deriver: None,
            },
        )
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(
            e,
            StoreError::ImportMismatch {
                what: "NAR hash",
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains(&path.basename()) && msg.contains("expected sha256:"),
        "{msg}"
    );
    // Trailing bytes after a complete NAR.
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0u8; 8]);
    let e = b
        .import_nar(
            &longer[..],
            &ExpectedItem {
                path: &p,
                nar_sha256: s,
                nar_size: n,
                references: &[],
                deriver: None,
            },
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::ImportMismatch {
                what: "NAR size",
                ..
            }
        ),
        "{e}"
    );
    // Cut short: the NAR reader refuses it.
    let e = b
        .import_nar(
            &bytes[..bytes.len() - 8],
            &ExpectedItem {
                path: &p,
                nar_sha256: s,
                nar_size: n,
                references: &[],
                deriver: None,
            },
        )
        .unwrap_err();
    assert!(matches!(e, StoreError::Nar(_)), "{e}");
    // The right NAR claimed for another path of the same name (a digest
    // that is not the one its contents give).
    let other = StorePath::source("thing", &[0u8; 32], &[], false).unwrap();
    let e = b
        .import_nar(
            &bytes[..],
            &ExpectedItem {
                path: &other,
                nar_sha256: s,
                nar_size: n,
                references: &[],
                deriver: None,
            },
        )
        .unwrap_err();
    assert!(
        matches!(e, StoreError::ImportMismatch { what, .. } if what.starts_with("store path")),
        "{e}"
    );
    assert_empty_and_clean(&b);
}

#[test]
fn a_reference_must_be_valid_first() {
    let tmp = tempfile::tempdir().unwrap();
    let (_a, dep, dep_bytes, dep_sha) = source_item(tmp.path());
    let mut a2 = Store::open(tmp.path().join("a")).unwrap();
    fs::create_dir_all(tmp.path().join("top")).unwrap();
    fs::write(tmp.path().join("top/f"), dep.to_absolute()).unwrap();
    let top = a2
        .add_path_with_references(
            &tmp.path().join("top"),
            "top",
            std::slice::from_ref(&dep),
            None,
        )
        .unwrap();
    let mut top_bytes = Vec::new();
    nar::dump(&top.physical, &mut top_bytes).unwrap();
    let mut b = Store::open(tmp.path().join("b")).unwrap();
    let refs = [dep.clone()];
    let top_exp = ExpectedItem {
        path: &top.path,
        nar_sha256: top.nar.sha256,
        nar_size: top_bytes.len() as u64,
        references: &refs,
        deriver: None,
    };
    let e = b.import_nar(&top_bytes[..], &top_exp).unwrap_err();
    assert!(matches!(e, StoreError::MissingReference { .. }), "{e}");
    assert_empty_and_clean(&b);
    b.import_nar(
        &dep_bytes[..],
        &ExpectedItem {
            path: &dep,
            nar_sha256: dep_sha,
            nar_size: dep_bytes.len() as u64,
            references: &[],
            deriver: None,
        },
    )
    .unwrap();
    b.import_nar(&top_bytes[..], &top_exp).unwrap();
    assert_eq!(b.closure(std::slice::from_ref(&top.path)).unwrap().len(), 2);
}
