//! A Debian base from a loopback archive the test builds and signs itself:
//! a good archive realizes; a bad InRelease signature, a Packages file whose
//! hash does not match Release, and a tampered .deb are each refused with a
//! clear error, and the store verifies clean.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::debian::{build_archive, Archive, Pkg};
use common::http::{serve, Behaviour};
use common::*;

const IN_RELEASE: &str = "/debian/dists/test/InRelease";
const PACKAGES: &str = "/debian/dists/test/main/binary-amd64/Packages";
const DEB: &str = "/debian/pool/main/h/hello-deb/hello-deb_1.0_amd64.deb";

/// A one-package archive (a .deb holding /usr/share/hello/greeting),
/// suite `test`, signed with a throwaway key.
fn hello_archive(dir: &Path) -> Archive {
    build_archive(
        dir,
        "test",
        &[Pkg {
            name: "hello-deb",
            version: "1.0",
            depends: None,
            files: vec![(
                "/usr/share/hello/greeting",
                b"hello from a deb\n".to_vec(),
                0o644,
            )],
        }],
    )
}

/// The bytes the archive serves at `route`.
fn served(a: &Archive, route: &str) -> Vec<u8> {
    match a.routes.iter().find(|(r, _)| r == route) {
        Some((_, Behaviour::Serve(b))) => b.clone(),
        _ => panic!("the archive serves nothing at {route}"),
    }
}

fn spec(dir: &Path, mirror: &str, keyring: &Path) -> PathBuf {
    let spec = dir.join("base.toml");
    fs::write(
        &spec,
        format!(
            "[env]\nname = \"base\"\nsystem = \"x86_64-linux\"\nsource-date-epoch = 1700000000\n\n[base]\ndebian = {{ suite = \"test\", packages = [\"hello-deb\"], mirror = \"{mirror}\", keyring = \"{}\" }}\n",
            keyring.display()
        ),
    )
    .unwrap();
    spec
}

/// Realize from the archive with `route`'s bytes replaced by `bytes`.
fn attempt(a: &Archive, route: &str, bytes: Vec<u8>) -> (tempfile::TempDir, std::process::Output) {
    let routes: Vec<(String, Behaviour)> = a
        .routes
        .iter()
        .map(|(r, b)| {
            let b = if r == route {
                Behaviour::Serve(bytes.clone())
            } else {
                b.clone()
            };
            (r.clone(), b)
        })
        .collect();
    let server = serve(routes);
    let t = tempfile::tempdir().unwrap();
    let spec = spec(t.path(), &format!("{}/debian", server.base), &a.keyring);
    let o = run(
        &t.path().join("store"),
        &[&"realize", &spec, &"-o", &t.path().join("out.tar")],
    );
    (t, o)
}

#[test]
fn a_signed_loopback_archive_realizes_and_each_tampering_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let a = hello_archive(work.path());

    let (t, o) = attempt(&a, DEB, served(&a, DEB));
    ok(o, "realize from the good archive");
    let lock = fs::read_to_string(t.path().join("base.lock")).unwrap();
    assert!(
        lock.contains("file = \"pool/main/h/hello-deb/hello-deb_1.0_amd64.deb\""),
        "{lock}"
    );
    assert!(
        !lock.contains("127.0.0.1"),
        "the lock names no host: {lock}"
    );
    // Packages, the .deb, its unpacked component, base-files, the union
    // check, two layers, the image, and the item rooting the spec's inputs
    // (Packages and the .deb) for gc.
    assert_eq!(verify_clean(&t.path().join("store")), 9);

    // A signed body altered after signing.
    let text = String::from_utf8(served(&a, IN_RELEASE))
        .unwrap()
        .replace("Origin: test", "Origin: evil");
    let (t, o) = attempt(&a, IN_RELEASE, text.into_bytes());
    let err = fails(o, "bad signature");
    assert!(
        err.contains("InRelease") && err.contains("does not verify"),
        "{err}"
    );
    verify_clean(&t.path().join("store"));

    // A Packages file that is not the one Release lists.
    let mut packages = served(&a, PACKAGES);
    packages.extend_from_slice(b"\nPackage: injected\nVersion: 6.6\nArchitecture: amd64\n");
    // Longer than the Release says: refused at the listed size.
    let (t, o) = attempt(&a, PACKAGES, packages);
    let err = fails(o, "Packages longer than listed");
    assert!(
        err.contains("main/binary-amd64/Packages") && err.contains("(the pinned size)"),
        "{err}"
    );
    verify_clean(&t.path().join("store"));
    // The listed size, other bytes: the hash tells.
    let packages =
        String::from_utf8(served(&a, PACKAGES))
            .unwrap()
            .replacen("Package: ", "Package:\t", 1);
    let (t, o) = attempt(&a, PACKAGES, packages.into_bytes());
    let err = fails(o, "Packages hash mismatch");
    assert!(
        err.contains("main/binary-amd64/Packages") && err.contains("sha256 mismatch"),
        "{err}"
    );
    verify_clean(&t.path().join("store"));

    // A .deb that is not the one Packages lists.
    let mut deb = served(&a, DEB);
    let n = deb.len();
    deb[n - 10] ^= 0xff;
    let (t, o) = attempt(&a, DEB, deb);
    let err = fails(o, "tampered deb");
    assert!(
        err.contains("hello-deb_1.0_amd64.deb") && err.contains("sha256 mismatch"),
        "{err}"
    );
    verify_clean(&t.path().join("store"));
}

#[test]
fn a_warm_lock_takes_the_kept_closure_and_a_damaged_entry_is_recomputed() {
    let work = tempfile::tempdir().unwrap();
    let a = hello_archive(work.path());
    let server = serve(a.routes.clone());
    let t = tempfile::tempdir().unwrap();
    let spec = spec(t.path(), &format!("{}/debian", server.base), &a.keyring);
    let store = t.path().join("store");
    let lock_file = t.path().join("base.lock");
    let closures = store.join(".envbuild/cache/debian-release/closures-v1");
    let entries = || -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(&closures)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        v.sort();
        v
    };
    ok(run(&store, &[&"lock", &spec]), "the first lock");
    let first = fs::read_to_string(&lock_file).unwrap();
    let kept = entries();
    assert_eq!(kept.len(), 1, "one closure kept: {kept:?}");
    let entry = fs::read_to_string(&kept[0]).unwrap();
    assert!(entry.contains("hello-deb_1.0_amd64.deb"), "{entry}");

    // The same request against the same index: the kept closure, the same lock.
    fs::remove_file(&lock_file).unwrap();
    ok(run(&store, &[&"lock", &spec]), "the warm lock");
    assert_eq!(fs::read_to_string(&lock_file).unwrap(), first);
    assert_eq!(entries(), kept, "no second entry for the same key");

    // A damaged entry is not trusted: the closure is computed again and kept.
    fs::write(&kept[0], b"{\"not\": \"a closure\"").unwrap();
    fs::remove_file(&lock_file).unwrap();
    ok(
        run(&store, &[&"lock", &spec]),
        "the lock over a damaged entry",
    );
    assert_eq!(fs::read_to_string(&lock_file).unwrap(), first);
    assert_eq!(fs::read_to_string(&kept[0]).unwrap(), entry);
    // InRelease was asked for each time (its kept copy revalidated), and
    // is verified by gpgv every time.
    assert_eq!(
        server.log.lock().unwrap().requests.get(IN_RELEASE),
        Some(&3)
    );
}

/// The Python index work of a lock runs while its Debian base resolves,
/// for a provisional target (glibc 2.17: there is no old lock), and the
/// resolution reads those answers for the base's glibc: the wheel is the
/// one for libc6 2.36, and the page was asked for once.
#[test]
fn python_pins_are_read_for_the_bases_glibc_from_answers_fetched_while_the_base_resolved() {
    use common::index::{index, wheel};
    let work = tempfile::tempdir().unwrap();
    let a = build_archive(
        work.path(),
        "test",
        &[Pkg {
            name: "libc6",
            version: "2.36-9",
            depends: None,
            files: vec![("/usr/share/doc/libc6/copyright", b"test\n".to_vec(), 0o644)],
        }],
    );
    let archive = serve(a.routes.clone());
    let old = wheel("lib", "1.0", "py3-none-manylinux_2_17_x86_64", "2.17");
    let new = wheel("lib", "1.0", "py3-none-manylinux_2_28_x86_64", "2.28");
    let idx = index(&[&old, &new]);
    let t = tempfile::tempdir().unwrap();
    let spec = t.path().join("env.toml");
    fs::write(
        &spec,
        format!(
            "[env]\nname = \"warm\"\nsystem = \"x86_64-linux\"\nsource-date-epoch = 1700000000\n\n[base]\ndebian = {{ suite = \"test\", packages = [\"libc6\"], mirror = \"{}/debian\", keyring = \"{}\" }}\n\n[python]\nrequirements = [\"lib\"]\nsite-packages = \"/usr/lib/python3/dist-packages\"\n",
            archive.base,
            a.keyring.display()
        ),
    )
    .unwrap();
    let o = envbuild()
        .arg("--store")
        .arg(t.path().join("store"))
        .arg("lock")
        .arg(&spec)
        .env("ENVBUILD_INDEX_URL", format!("{}/simple/", idx.base))
        .output()
        .unwrap();
    ok(o, "lock");
    let lock = fs::read_to_string(spec.with_extension("lock")).unwrap();
    assert!(
        lock.contains("lib-1.0-py3-none-manylinux_2_28_x86_64.whl")
            && !lock.contains("manylinux_2_17"),
        "the wheel for the base's glibc 2.36: {lock}"
    );
    let log = idx.log.lock().unwrap();
    assert_eq!(
        log.requests.get("/simple/lib/"),
        Some(&1),
        "one request for the page: {:?}",
        log.requests
    );
    // Only the warm-up, guessing glibc 2.17, reads the manylinux2014
    // wheel's metadata: it ran.
    assert!(
        log.requests
            .contains_key(&format!("/files/{}", old.filename)),
        "the warm-up read the provisional target's wheel: {:?}",
        log.requests
    );
}
