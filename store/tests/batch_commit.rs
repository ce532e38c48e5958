//! Moving builder outputs into the store in batches:
//! `prepare_scratch_output` on worker threads, one `commit_outputs`.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use envbuild_store::{Store, StoreError};

fn write(path: &Path, data: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A tree as a builder leaves it: writable, fresh mtimes.
fn tree(root: &Path, tag: &str) {
    write(&root.join("bin/tool"), b"#!/bin/sh\n", 0o755);
    write(&root.join("lib/mod.py"), tag.as_bytes(), 0o644);
    fs::create_dir_all(root.join("share/empty")).unwrap();
}

#[test]
fn a_batch_prepared_on_threads_commits_once_with_the_paths_add_path_gives() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let mut store = Store::open(&root).unwrap();
    // Three outputs, two of them identical, prepared on three threads with
    // their own handles, as the realizer's workers do.
    let tags = ["a", "b", "a"];
    let scratches: Vec<_> = tags
        .iter()
        .map(|t| store.scratch(&format!("out-{t}")).unwrap())
        .collect();
    let prepared: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = scratches
            .iter()
            .zip(tags)
            .map(|(scratch, tag)| {
                let root = root.clone();
                s.spawn(move || {
                    let out = scratch.path().join("out");
                    tree(&out, tag);
                    let worker = Store::open(&root).unwrap();
                    worker
                        .prepare_scratch_output(&out, &format!("pkg-{tag}"), &[], Some("drv"))
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Nothing is in the store before the commit.
    for p in &prepared {
        assert!(!store.is_valid(p.path()).unwrap());
        assert!(!store.physical_path(p.path()).exists());
    }
    let added = store.commit_outputs(prepared).unwrap();
    assert_eq!(added.len(), 3);
    assert_eq!(added[0].path, added[2].path, "identical trees, one item");
    assert_ne!(added[0].path, added[1].path);
    assert!(added[0].copied && added[1].copied);
    assert!(!added[2].copied, "the duplicate is dropped, not moved");
    for a in &added {
        assert!(store.is_valid(&a.path).unwrap());
        let tool = fs::symlink_metadata(a.physical.join("bin/tool")).unwrap();
        assert_eq!(tool.permissions().mode() & 0o7777, 0o555);
        assert_eq!(tool.mtime(), 1);
        let lib = fs::symlink_metadata(a.physical.join("lib/mod.py")).unwrap();
        assert_eq!(lib.permissions().mode() & 0o7777, 0o444);
        let dir = fs::symlink_metadata(a.physical.join("share")).unwrap();
        assert_eq!(dir.permissions().mode() & 0o7777, 0o555);
    }
    for s in &scratches {
        assert!(!s.path().join("out").exists(), "the output was consumed");
    }
    // The same tree added by copying is the same item, found valid.
    let src = tmp.path().join("copy-of-b");
    tree(&src, "b");
    let again = store.add_path(&src, "pkg-b").unwrap();
    assert_eq!(again.path, added[1].path);
    assert!(!again.copied);
    drop(scratches);
    let report = store.verify(|_, _, _| {}).unwrap();
    assert_eq!(report.checked, 2);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn an_output_already_in_the_store_is_dropped_and_reported_not_copied() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(tmp.path().join("store")).unwrap();
    let src = tmp.path().join("src");
    tree(&src, "x");
    let first = store.add_path(&src, "pkg").unwrap();
    let scratch = store.scratch("rebuild").unwrap();
    let out = scratch.path().join("out");
    tree(&out, "x");
    let prepared = store
        .prepare_scratch_output(&out, "pkg", &[], None)
        .unwrap();
    assert_eq!(prepared.path(), &first.path);
    // Left as the builder made it: the item exists already.
    let mode = fs::metadata(out.join("lib/mod.py"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    let added = store.commit_outputs(vec![prepared]).unwrap();
    assert!(!added[0].copied);
    assert!(!out.exists());
}

#[test]
fn a_batch_naming_a_missing_reference_commits_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(tmp.path().join("store")).unwrap();
    // A valid item, then collected: a reference to it is no longer valid.
    let dep_src = tmp.path().join("dep");
    tree(&dep_src, "dep");
    let dep = store.add_path(&dep_src, "dep").unwrap().path;
    store.gc().unwrap();
    assert!(!store.is_valid(&dep).unwrap());
    let scratch = store.scratch("batch").unwrap();
    let good = scratch.path().join("good");
    let bad = scratch.path().join("bad");
    tree(&good, "good");
    tree(&bad, "bad");
    let p_good = store
        .prepare_scratch_output(&good, "good", &[], None)
        .unwrap();
    let p_bad = store
        .prepare_scratch_output(&bad, "bad", std::slice::from_ref(&dep), None)
        .unwrap();
    let (good_path, bad_path) = (p_good.path().clone(), p_bad.path().clone());
    match store.commit_outputs(vec![p_good, p_bad]) {
        Err(StoreError::MissingReference { item, reference }) => {
            assert_eq!(item, "bad");
            assert_eq!(reference, dep.basename());
        }
        other => panic!("expected a missing reference, got {other:?}"),
    }
    for p in [&good_path, &bad_path] {
        assert!(!store.is_valid(p).unwrap());
        assert!(!store.physical_path(p).exists());
    }
}
