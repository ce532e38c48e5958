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
