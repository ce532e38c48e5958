//! The hash cache: an unchanged file is not read again; any change of what
//! lstat reports (content rewritten with the same size and mtime restored
//! still changes ctime) is hashed again.

use std::cell::Cell;
use std::fs;
use std::path::Path;
use std::time::Duration;

use envbuild_store::{Store, StoreError};

fn sha(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(fs::read(path).unwrap()))
}

fn cached(store: &mut Store, path: &Path, calls: &Cell<u32>) -> String {
    store
        .cached_hash(path, "sha256", |_| {
            calls.set(calls.get() + 1);
            Ok::<_, StoreError>(sha(path))
        })
        .unwrap()
}

#[test]
fn unchanged_file_is_not_rehashed_and_any_change_is() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(tmp.path().join("store")).unwrap();
    let f = tmp.path().join("input.bin");
    fs::write(&f, b"aaaa").unwrap();
    let calls = Cell::new(0);

    // Fresh (within the racy window): hashed every time, never cached.
    assert_eq!(cached(&mut store, &f, &calls), sha(&f));
    assert_eq!(cached(&mut store, &f, &calls), sha(&f));
    assert_eq!(calls.get(), 2);

    std::thread::sleep(Duration::from_millis(1100));
    cached(&mut store, &f, &calls); // recorded now
    assert_eq!(calls.get(), 3);
    assert_eq!(cached(&mut store, &f, &calls), sha(&f));
    assert_eq!(calls.get(), 3, "an unchanged file is not read again");

    // Same size, mtime restored: ctime still moves, so it is hashed again.
    let mtime = fs::metadata(&f).unwrap().modified().unwrap();
    fs::write(&f, b"bbbb").unwrap();
    fs::File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(fs::metadata(&f).unwrap().modified().unwrap(), mtime);
    let v = cached(&mut store, &f, &calls);
    assert_eq!(calls.get(), 4);
    assert_eq!(v, sha(&f));
    assert_eq!(
        v,
        "81cc5b17018674b401b42f35ba07bb79e211239c23bffe658da1577e3e646877"
    );

    // Replaced by another file (new inode) of the same content and times.
    std::thread::sleep(Duration::from_millis(1100));
    cached(&mut store, &f, &calls);
    let n = calls.get();
    let g = tmp.path().join("other.bin");
    fs::write(&g, b"cccc").unwrap();
    fs::rename(&g, &f).unwrap();
    assert_eq!(cached(&mut store, &f, &calls), sha(&f));
    assert_eq!(calls.get(), n + 1);
}

#[test]
fn a_file_changed_below_a_directory_is_seen() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(tmp.path().join("store")).unwrap();
    let d = tmp.path().join("tree");
    fs::create_dir_all(d.join("sub")).unwrap();
    fs::write(d.join("sub/x"), b"1").unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let calls = Cell::new(0);
    let hash = |store: &mut Store, calls: &Cell<u32>| {
        store
            .cached_hash(&d, "nar", |_| {
                calls.set(calls.get() + 1);
                Ok::<_, StoreError>(fs::read_to_string(d.join("sub/x")).unwrap())
            })
            .unwrap()
    };
    assert_eq!(hash(&mut store, &calls), "1");
    assert_eq!(hash(&mut store, &calls), "1");
    assert_eq!(calls.get(), 1);
    fs::write(d.join("sub/x"), b"2").unwrap();
    assert_eq!(hash(&mut store, &calls), "2");
    assert_eq!(calls.get(), 2);
}

#[test]
fn a_scratch_output_is_moved_in_canonical_and_equals_a_copied_add() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(tmp.path().join("store")).unwrap();
    let scratch = store.scratch("out").unwrap();
    let out = scratch.path().join("out");
    fs::create_dir_all(out.join("bin")).unwrap();
    fs::write(out.join("bin/tool"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(out.join("bin/tool"), fs::Permissions::from_mode(0o4750)).unwrap();
    fs::write(out.join("data"), b"x").unwrap();
    std::os::unix::fs::symlink("data", out.join("link")).unwrap();
    // The same tree elsewhere, added by copying.
    let other = tmp.path().join("other");
    fs::create_dir_all(other.join("bin")).unwrap();
    fs::write(other.join("bin/tool"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(other.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(other.join("data"), b"x").unwrap();
    std::os::unix::fs::symlink("data", other.join("link")).unwrap();

    let moved = store.add_scratch_output(&out, "tree", &[], None).unwrap();
    assert!(moved.copied);
    assert!(!out.exists(), "moved, not copied");
    let m = |p: &str| fs::symlink_metadata(moved.physical.join(p)).unwrap();
    assert_eq!(m("bin/tool").permissions().mode() & 0o7777, 0o555);
    assert_eq!(m("data").permissions().mode() & 0o7777, 0o444);
    assert_eq!(m("bin").permissions().mode() & 0o7777, 0o555);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(m("data").mtime(), 1);
    assert_eq!(m("").mtime(), 1);
    let copied = store.add_path(&other, "tree").unwrap();
    assert_eq!(copied.path, moved.path);
    assert!(!copied.copied);
    assert!(store.verify(|_, _, _| {}).unwrap().problems.is_empty());

    // Already valid: the scratch output is removed, nothing replaced.
    let again = scratch.path().join("again");
    fs::create_dir(&again).unwrap();
    fs::copy(other.join("data"), again.join("data")).unwrap();
    let second = store
        .add_scratch_output(&again, "tree2", &[], None)
        .unwrap();
    assert!(second.copied);
    let scratch2 = store.scratch("x").unwrap();
    let dup = scratch2.path().join("d");
    fs::create_dir(&dup).unwrap();
    fs::copy(other.join("data"), dup.join("data")).unwrap();
    let third = store.add_scratch_output(&dup, "tree2", &[], None).unwrap();
    assert!(!third.copied);
    assert!(!dup.exists());

    // Outside the scratch area: refused.
    assert!(store.add_scratch_output(&other, "tree", &[], None).is_err());
}
