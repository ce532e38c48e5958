//! A Debian base from a loopback archive the test builds and signs itself:
//! a good archive realizes; a bad InRelease signature, a Packages file whose
//! hash does not match Release, and a tampered .deb are each refused with a
//! clear error, and the store verifies clean.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::http::{serve, Behaviour};
use common::*;

struct Archive {
    keyring: PathBuf,
    in_release: Vec<u8>,
    packages: Vec<u8>,
    deb: Vec<u8>,
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Build a one-package archive (a .deb holding /usr/share/hello/greeting)
/// signed with a throwaway key.
fn build_archive(dir: &Path) -> Archive {
    require_tool("gpg", "gnupg");
    require_tool("dpkg-deb", "dpkg");
    let pkg = dir.join("pkg");
    write(
        pkg.join("usr/share/hello/greeting"),
        b"hello from a deb\n",
        0o644,
    );
    write(
        pkg.join("DEBIAN/control"),
        b"Package: hello-deb\nVersion: 1.0\nArchitecture: amd64\nMaintainer: test <t@example.invalid>\nDescription: test\n",
        0o644,
    );
    let deb_path = dir.join("hello-deb_1.0_amd64.deb");
    let o = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&pkg)
        .arg(&deb_path)
        .output()
        .unwrap();
    ok(o, "dpkg-deb --build");
    let deb = fs::read(&deb_path).unwrap();
    let packages = format!(
        "Package: hello-deb\nVersion: 1.0\nArchitecture: amd64\nFilename: pool/main/h/hello-deb/hello-deb_1.0_amd64.deb\nSize: {}\nSHA256: {}\nDescription: test\n",
        deb.len(),
        sha256_hex(&deb)
    )
    .into_bytes();
    let release = format!(
        "Origin: test\nSuite: test\nCodename: test\nArchitectures: amd64\nComponents: main\nSHA256:\n {} {} main/binary-amd64/Packages\n",
        sha256_hex(&packages),
        packages.len()
    );
    let gnupg = dir.join("gnupg");
    fs::create_dir(&gnupg).unwrap();
    fs::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let gpg = |args: &[&str]| {
        let o = Command::new("gpg")
            .env("GNUPGHOME", &gnupg)
            .args([
                "--batch",
                "--yes",
                "--passphrase",
                "",
                "--pinentry-mode",
                "loopback",
            ])
            .args(args)
            .output()
            .unwrap();
        ok(o, &format!("gpg {args:?}"));
    };
    gpg(&[
        "--quick-gen-key",
        "envbuild test archive <archive@example.invalid>",
        "ed25519",
        "sign",
        "never",
    ]);
    let keyring = dir.join("keyring.gpg");
    gpg(&["--output", keyring.to_str().unwrap(), "--export"]);
    let release_path = dir.join("Release");
    fs::write(&release_path, release).unwrap();
    let signed = dir.join("InRelease");
    gpg(&[
        "--output",
        signed.to_str().unwrap(),
        "--clearsign",
        release_path.to_str().unwrap(),
    ]);
    Archive {
        keyring,
        in_release: fs::read(&signed).unwrap(),
        packages,
        deb,
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

fn routes(
    a: &Archive,
    in_release: Vec<u8>,
    packages: Vec<u8>,
    deb: Vec<u8>,
) -> Vec<(&'static str, Behaviour)> {
    let _ = a;
    vec![
        ("/debian/dists/test/InRelease", Behaviour::Serve(in_release)),
        (
            "/debian/dists/test/main/binary-amd64/Packages",
            Behaviour::Serve(packages),
        ),
        (
            "/debian/pool/main/h/hello-deb/hello-deb_1.0_amd64.deb",
            Behaviour::Serve(deb),
        ),
    ]
}

fn attempt(
    a: &Archive,
    in_release: Vec<u8>,
    packages: Vec<u8>,
    deb: Vec<u8>,
) -> (tempfile::TempDir, std::process::Output) {
    let server = serve(routes(a, in_release, packages, deb));
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
    let a = build_archive(work.path());

    let (t, o) = attempt(&a, a.in_release.clone(), a.packages.clone(), a.deb.clone());
    ok(o, "realize from the good archive");
    let lock = fs::read_to_string(t.path().join("base.lock")).unwrap();
    assert!(
        lock.contains("source = \"pool/main/h/hello-deb/hello-deb_1.0_amd64.deb\""),
        "{lock}"
    );
    assert!(
        !lock.contains("127.0.0.1"),
        "the lock names no host: {lock}"
    );
    // Packages, the .deb, its unpacked component, base-files, the union
    // check, two layers and the image.
    assert_eq!(verify_clean(&t.path().join("store")), 8);

    // A signed body altered after signing.
    let text = String::from_utf8(a.in_release.clone())
        .unwrap()
        .replace("Origin: test", "Origin: evil");
    let (t, o) = attempt(&a, text.into_bytes(), a.packages.clone(), a.deb.clone());
    let err = fails(o, "bad signature");
    assert!(
        err.contains("InRelease") && err.contains("does not verify"),
        "{err}"
    );
    verify_clean(&t.path().join("store"));

    // A Packages file that is not the one Release lists.
    let mut packages = a.packages.clone();
    packages.extend_from_slice(b"\nPackage: injected\nVersion: 6.6\nArchitecture: amd64\n");
    let (t, o) = attempt(&a, a.in_release.clone(), packages, a.deb.clone());
    let err = fails(o, "Packages hash mismatch");
    assert!(
        err.contains("main/binary-amd64/Packages") && err.contains("sha256 mismatch"),
        "{err}"
    );
    verify_clean(&t.path().join("store"));

    // A .deb that is not the one Packages lists.
    let mut deb = a.deb.clone();
    let n = deb.len();
    deb[n - 10] ^= 0xff;
    let (t, o) = attempt(&a, a.in_release.clone(), a.packages.clone(), deb);
    let err = fails(o, "tampered deb");
    assert!(
        err.contains("hello-deb_1.0_amd64.deb") && err.contains("sha256 mismatch"),
        "{err}"
    );
    verify_clean(&t.path().join("store"));
}
