//! The store's library API: NAR round trips, adding, references, roots, gc,
//! realisations and locks.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use envbuild_store::lock::{FileLock, LockKind};
use envbuild_store::nar;
use envbuild_store::{NarError, Store, StoreError};

fn write(path: &Path, data: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn sample_tree(root: &Path) {
    write(&root.join("bin/tool"), b"#!/bin/sh\n", 0o755);
    write(&root.join("lib/a.py"), b"print(1)\n", 0o644);
    write(&root.join("lib/b.py"), b"", 0o644);
    fs::create_dir_all(root.join("empty")).unwrap();
    symlink("../lib/a.py", root.join("bin/link")).unwrap();
}

fn dump_bytes(p: &Path) -> Vec<u8> {
    let mut v = Vec::new();
    nar::dump(p, &mut v).unwrap();
    v
}

#[test]
fn nar_restore_then_dump_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample_tree(&src);
    let nar1 = dump_bytes(&src);
    let dst = tmp.path().join("restored");
    nar::restore(&nar1[..], &dst).unwrap();
    assert_eq!(dump_bytes(&dst), nar1);
    let mode = fs::metadata(dst.join("bin/tool"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o555);
}

#[test]
fn nar_reader_rejects_malformed_archives() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample_tree(&src);
    let good = dump_bytes(&src);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..good.len() - 9].to_vec()),
        ("bad magic", {
            let mut b = good.clone();
            b[8] = b'N';
            b
        }),
        ("unsorted entries", {
            // Swap the names "bin" and "lib" (same length) in the archive.
            let mut b = good.clone();
            let s = String::from_utf8_lossy(&b).into_owned();
            let i = s.find("bin").unwrap();
            let j = s.find("lib").unwrap();
            b[i..i + 3].copy_from_slice(b"lib");
            b[j..j + 3].copy_from_slice(b"bin");
            b
        }),
        ("dot-dot name", {
            let mut b = good.clone();
            let s = String::from_utf8_lossy(&b).into_owned();
            let i = s.find("empty").unwrap();
            // "empty" (5 bytes) -> ".." would change the length; use a 5-byte
            // name with a slash instead.
            b[i..i + 5].copy_from_slice(b"a/../"[..5].as_ref());
            b
        }),
    ];
    for (what, bytes) in cases {
        let dst = tmp.path().join(what.replace(' ', "-"));
        let err = nar::restore(&bytes[..], &dst).unwrap_err();
        assert!(matches!(err, NarError::Malformed { .. }), "{what}: {err}");
    }
}

#[test]
fn adding_the_same_tree_twice_copies_once() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample_tree(&src);
    let mut store = Store::open(tmp.path().join("store")).unwrap();
    let a = store.add_path(&src, "sample").unwrap();
    assert!(a.copied);
    let b = store.add_path(&src, "sample").unwrap();
    assert!(!b.copied);
    assert_eq!(a.path, b.path);
    assert_eq!(nar::hash_path(&a.physical).unwrap(), a.nar);
    let info = store.path_info(&a.path).unwrap();
    assert_eq!(info.nar_size, a.nar.size);
    assert_eq!(
        info.ca.unwrap(),
        format!("fixed:r:sha256:{}", a.nar.to_nix_base32())
    );
}

#[test]
fn references_form_closures_and_gc_keeps_what_roots_reach() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(tmp.path().join("store")).unwrap();
    let mk = |name: &str| {
        let p = tmp.path().join(name);
        write(&p, name.as_bytes(), 0o644);
        p
    };
    let dep = store.add_path(&mk("dep"), "dep").unwrap().path;
    let app = store
        .add_path_with_references(
            &mk("app"),
            "app",
            std::slice::from_ref(&dep),
            Some("drv-app"),
        )
        .unwrap()
        .path;
    let loose = store.add_path(&mk("loose"), "loose").unwrap().path;
    let linked = store.add_path(&mk("linked"), "linked").unwrap().path;
    assert_eq!(store.closure(std::slice::from_ref(&app)).unwrap(), {
        let mut v = vec![app.clone(), dep.clone()];
        v.sort();
        v
    });
    // A reference to something not in the store is refused.
    let missing =
        envbuild_store::StorePath::from_basename("00000000000000000000000000000000-ghost").unwrap();
    assert!(matches!(
        store.add_path_with_references(&mk("x"), "x", &[missing], None),
        Err(StoreError::MissingReference { .. })
    ));

    store.add_root("app", &app, None).unwrap();
    let link = tmp.path().join("result");
    symlink(store.physical_path(&linked), &link).unwrap();
    store.add_root("result", &linked, Some(&link)).unwrap();
    let report = store.gc().unwrap();
    assert_eq!(report.removed, vec![loose.clone()]);
    assert!(!store.physical_path(&loose).exists());
    assert!(store.is_valid(&dep).unwrap() && store.is_valid(&linked).unwrap());

    // Once the link goes, its root is dead and the item is collected.
    fs::remove_file(&link).unwrap();
    let report = store.gc().unwrap();
    assert_eq!(report.dead_roots, vec!["result".to_string()]);
    assert_eq!(report.removed, vec![linked]);
    store.remove_root("app").unwrap();
    assert!(matches!(
        store.remove_root("app"),
        Err(StoreError::NoSuchRoot { .. })
    ));
    let report = store.gc().unwrap();
    assert_eq!(report.removed.len(), 2);
    assert!(store.verify(|_, _, _| {}).unwrap().problems.is_empty());
}

#[test]
fn a_guarded_root_lives_while_its_file_exists_and_a_version_2_database_gains_guards() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let item_src = tmp.path().join("item");
    write(&item_src, b"kept", 0o644);
    {
        // A store made by the previous schema: no guard column, version 2.
        let store = Store::open(&root).unwrap();
        drop(store);
        let db = rusqlite::Connection::open(root.join(".envbuild/db.sqlite")).unwrap();
        db.execute_batch("ALTER TABLE Roots DROP COLUMN guard; PRAGMA user_version = 2;")
            .unwrap();
    }
    let mut store = Store::open(&root).unwrap();
    let item = store.add_path(&item_src, "item").unwrap().path;
    let spec = tmp.path().join("app.toml");
    write(&spec, b"[env]\n", 0o644);
    store.add_guarded_root("spec:app", &item, &spec).unwrap();
    let roots = store.roots().unwrap();
    assert_eq!(roots[0].guard.as_deref(), Some(spec.as_path()));

    assert!(store.gc().unwrap().removed.is_empty());
    fs::remove_file(&spec).unwrap();
    let dry = store
        .gc_with(&envbuild_store::GcOptions {
            dry_run: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(dry.dead_roots, vec!["spec:app".to_string()]);
    assert_eq!(dry.removed, vec![item.clone()]);
    assert!(store.is_valid(&item).unwrap() && store.roots().unwrap().len() == 1);
    let report = store.gc().unwrap();
    assert_eq!(report.dead_roots, vec!["spec:app".to_string()]);
    assert_eq!(report.removed, vec![item]);
    assert!(store.roots().unwrap().is_empty());
}

#[test]
fn realisations_map_derivations_to_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(tmp.path().join("store")).unwrap();
    let p = tmp.path().join("out");
    write(&p, b"built", 0o644);
    let out = store.add_path(&p, "out").unwrap().path;
    assert_eq!(store.realisation("abc", "out").unwrap(), None);
    store.add_realisation("abc", "out", &out).unwrap();
    assert_eq!(store.realisation("abc", "out").unwrap(), Some(out.clone()));
    // Collecting the output forgets the realisation.
    store.gc().unwrap();
    assert_eq!(store.realisation("abc", "out").unwrap(), None);
}

#[test]
fn file_locks_exclude_and_are_released_on_drop() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("x.lock");
    let held = FileLock::acquire(&path, LockKind::Exclusive).unwrap();
    assert!(FileLock::try_acquire(&path, LockKind::Exclusive)
        .unwrap()
        .is_none());
    assert!(FileLock::try_acquire(&path, LockKind::Shared)
        .unwrap()
        .is_none());
    drop(held);
    let shared = FileLock::try_acquire(&path, LockKind::Shared)
        .unwrap()
        .unwrap();
    assert!(FileLock::try_acquire(&path, LockKind::Shared)
        .unwrap()
        .is_some());
    assert!(FileLock::try_acquire(&path, LockKind::Exclusive)
        .unwrap()
        .is_none());
    drop(shared);
}

#[test]
fn leftovers_of_an_interrupted_add_are_replaced_and_collected() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample_tree(&src);
    let root = tmp.path().join("store");
    let expected = {
        let mut s = Store::open(tmp.path().join("scratch")).unwrap();
        s.add_path(&src, "sample").unwrap().path
    };
    // Simulate a crash after the rename, before registration: a partial,
    // unregistered directory at the final name, and junk in tmp/.
    let mut store = Store::open(&root).unwrap();
    write(
        &store.physical_path(&expected).join("partial"),
        b"half",
        0o444,
    );
    write(&root.join(".envbuild/tmp/123-sample/x"), b"junk", 0o444);
    let report = store.verify(|_, _, _| {}).unwrap();
    assert!(report.problems.is_empty());
    assert_eq!(report.unregistered, vec![expected.basename()]);
    let added = store.add_path(&src, "sample").unwrap();
    assert!(added.copied);
    assert!(!added.physical.join("partial").exists());
    assert!(store.verify(|_, _, _| {}).unwrap().problems.is_empty());
    store.add_root("keep", &added.path, None).unwrap();
    let report = store.gc().unwrap();
    assert!(report.removed.is_empty());
    assert_eq!(report.garbage_removed, 1);
}

#[test]
fn gc_keeps_the_temp_roots_and_caches_of_live_processes_and_drops_those_of_dead_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let mut store = Store::open(&root).unwrap();
    let mk = |name: &str| {
        let p = tmp.path().join(name);
        write(&p, name.as_bytes(), 0o644);
        p
    };
    let dep = store.add_path(&mk("dep"), "dep").unwrap().path;
    let app = store
        .add_path_with_references(&mk("app"), "app", std::slice::from_ref(&dep), None)
        .unwrap()
        .path;
    let other = store.add_path(&mk("other"), "other").unwrap().path;
    // Another process's files, as it writes them: a live one holds its
    // lock (here: another open file description), a dead one does not.
    let dir = root.join(".envbuild/temproots");
    let live = dir.join("999999-1");
    fs::write(&live, format!("{}\ncache:rootfs\n", app.basename())).unwrap();
    let in_use = store.cache_dir("rootfs").unwrap().join("abc");
    fs::create_dir(&in_use).unwrap();
    let unused = store.cache_dir("sdist-logs").unwrap();
    let held = FileLock::acquire(&live, LockKind::Exclusive).unwrap();
    let dead = dir.join("999998-1");
    fs::write(&dead, format!("{}\n", other.basename())).unwrap();

    // This process added all three, but its own temp roots are not kept by
    // its own gc.
    let report = store.gc().unwrap();
    assert_eq!(report.removed, vec![other.clone()]);
    assert_eq!(report.temp_roots, 1);
    assert!(store.is_valid(&app).unwrap() && store.is_valid(&dep).unwrap());
    assert!(live.exists());
    assert!(!dead.exists(), "the dead process's file was kept");
    assert!(in_use.exists(), "a cache directory in use was removed");
    assert!(!unused.exists());

    drop(held);
    let mut report = store.gc().unwrap();
    report.removed.sort();
    let mut expected = vec![app, dep];
    expected.sort();
    assert_eq!(report.removed, expected);
    assert_eq!(report.temp_roots, 0);
    assert!(!live.exists());
    assert!(!in_use.exists());
}
