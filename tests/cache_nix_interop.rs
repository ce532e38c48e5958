//! Binary caches against the real Nix (Debian's nix-bin): Nix reads what
//! `envbuild cache push` writes (path-info, store verify with and without
//! `CA:`, copy), and envbuild substitutes what `nix copy` wrote and `nix
//! store sign` signed with a key `envbuild cache keygen` made.
//!
//! Nix runs as an ordinary user here: `--store DIR` is a local store with
//! its real root under DIR (store dir still /nix/store), the new CLI needs
//! `experimental-features = nix-command`, and `build-users-group =` (empty)
//! stops Nix from looking for the `nixbld` group, which an ordinary user's
//! machine may not have.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;
use envbuild_store::narinfo::parse_hash;

fn nix_cmd(program: &str, home: &Path) -> Command {
    let mut c = Command::new(program);
    c.env(
        "NIX_CONFIG",
        "experimental-features = nix-command\nbuild-users-group =\n",
    )
    .env("HOME", home)
    .env("XDG_CACHE_HOME", home.join(".cache"))
    .env("NIX_REMOTE", "");
    c
}

/// `envbuild cache keygen NAME` in `dir`: (secret key file, public key).
fn keygen(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
    let o = envbuild()
        .args(["cache", "keygen", name, "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    let public = ok(o, "cache keygen");
    (dir.join(format!("{name}.secret")), public)
}

/// The hello example realized in a store under `tmp`, then pushed to
/// `file://<tmp>/cache`; returns (store, cache dir, pushed basenames, public key).
fn pushed_hello(tmp: &Path) -> (std::path::PathBuf, std::path::PathBuf, Vec<String>, String) {
    let store = tmp.join("store");
    let spec = hello_example(&tmp.join("ex"));
    realize(&store, &spec, &tmp.join("hello.tar"), &[]);
    let (key, public) = keygen(tmp, "envbuild-test-1");
    let cache = tmp.join("cache");
    let o = envbuild()
        .arg("--store")
        .arg(&store)
        .arg("--json")
        .args(["cache", "push"])
        .arg(format!("file://{}", cache.display()))
        .arg(&spec)
        .arg("--key")
        .arg(&key)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(&ok(o, "cache push")).unwrap();
    let pushed: Vec<String> = report["pushed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(pushed.len() >= 5, "the image closure: {report}");
    assert!(
        report["realisationsPushed"].as_u64().unwrap() >= 4,
        "{report}"
    );
    (store, cache, pushed, public)
}

#[test]
fn nix_path_info_reports_our_nar_hash_size_and_references() {
    require_tool("nix", "nix-bin");
    let tmp = tempfile::tempdir().unwrap();
    let (store, cache, pushed, _) = pushed_hello(tmp.path());
    let paths: Vec<String> = pushed.iter().map(|b| format!("/nix/store/{b}")).collect();
    let ours: serde_json::Value = serde_json::from_str(&ok(
        envbuild()
            .arg("--store")
            .arg(&store)
            .arg("--json")
            .args(["store", "path-info"])
            .args(&paths)
            .output()
            .unwrap(),
        "store path-info",
    ))
    .unwrap();
    let theirs: serde_json::Value = serde_json::from_str(&ok(
        nix_cmd("nix", tmp.path())
            .args(["path-info", "--json", "--store"])
            .arg(format!("file://{}", cache.display()))
            .args(&paths)
            .output()
            .unwrap(),
        "nix path-info",
    ))
    .unwrap();
    let theirs = theirs.as_array().unwrap();
    assert_eq!(theirs.len(), paths.len());
    for o in ours.as_array().unwrap() {
        let path = o["path"].as_str().unwrap();
        let t = theirs
            .iter()
            .find(|t| t["path"] == path)
            .unwrap_or_else(|| panic!("nix path-info lacks {path}"));
        assert_eq!(
            parse_hash("NarHash", t["narHash"].as_str().unwrap()).unwrap(),
            parse_hash("NarHash", o["narHash"].as_str().unwrap()).unwrap(),
            "{path}"
        );
        assert_eq!(t["narSize"], o["narSize"], "{path}");
        let mut a: Vec<&str> = t["references"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let mut b: Vec<&str> = o["references"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "{path}");
        assert!(
            t["ca"].as_str().unwrap().starts_with("fixed:r:sha256:"),
            "{t}"
        );
    }
}

#[test]
fn nix_store_verify_trusts_our_signatures_and_content_addresses_and_nix_copy_takes_them() {
    require_tool("nix", "nix-bin");
    let tmp = tempfile::tempdir().unwrap();
    let (_store, cache, pushed, public) = pushed_hello(tmp.path());
    let paths: Vec<String> = pushed.iter().map(|b| format!("/nix/store/{b}")).collect();
    let verify = |cache: &Path, key: &str| {
        nix_cmd("nix", tmp.path())
            .args(["store", "verify", "--store"])
            .arg(format!("file://{}", cache.display()))
            .args(["--trusted-public-keys", key])
            .args(&paths)
            .output()
            .unwrap()
    };
    ok(verify(&cache, &public), "nix store verify");
    // Without CA: lines, only the signatures can make the paths trusted.
    let no_ca = tmp.path().join("cache-no-ca");
    copy_tree(&cache, &no_ca);
    let mut stripped = 0;
    for e in fs::read_dir(&no_ca).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "narinfo") {
            let text = fs::read_to_string(&p).unwrap();
            let kept: String = text
                .lines()
                .filter(|l| !l.starts_with("CA: "))
                .map(|l| format!("{l}\n"))
                .collect();
            assert_ne!(kept, text);
            fs::write(&p, kept).unwrap();
            stripped += 1;
        }
    }
    assert_eq!(stripped, paths.len());
    ok(verify(&no_ca, &public), "nix store verify (no CA, our key)");
    let (_, other) = keygen(tmp.path(), "someone-else-1");
    let o = verify(&no_ca, &other);
    assert!(!o.status.success(), "verify with a foreign key passed");
    assert!(stderr(&o).contains("untrusted"), "{}", stderr(&o));
    // nix copy into a local store of an ordinary user.
    let local = tmp.path().join("nix-local");
    ok(
        nix_cmd("nix", tmp.path())
            .args(["copy", "--from"])
            .arg(format!("file://{}", cache.display()))
            .arg("--to")
            .arg(&local)
            .args(["--trusted-public-keys", &public])
            .args(&paths)
            .output()
            .unwrap(),
        "nix copy",
    );
    for b in &pushed {
        assert!(
            fs::symlink_metadata(local.join("nix/store").join(b)).is_ok(),
            "{b} not copied"
        );
    }
    let _ = Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(&local)
        .status();
}

#[test]
fn what_nix_copy_wrote_and_nix_signed_with_our_key_substitutes_into_our_store() {
    require_tool("nix", "nix-bin");
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keygen(tmp.path(), "nix-signed-1");
    let src = tmp.path().join("tree");
    fs::create_dir_all(src.join("d")).unwrap();
    write(src.join("d/file"), b"from nix\n", 0o644);
    write(src.join("run.sh"), b"#!/bin/sh\necho hi\n", 0o755);
    link("d/file", src.join("alias"));
    let nix_store = tmp.path().join("nix-local");
    let added = ok(
        nix_cmd("nix", tmp.path())
            .args(["store", "add-path", "--name", "from-nix", "--store"])
            .arg(&nix_store)
            .arg(&src)
            .output()
            .unwrap(),
        "nix store add-path",
    );
    let path = added.trim().to_string();
    let c2 = tmp.path().join("c2");
    let c2_url = format!("file://{}", c2.display());
    ok(
        nix_cmd("nix", tmp.path())
            .args(["copy", "--store"])
            .arg(&nix_store)
            .args(["--to", &c2_url, &path])
            .output()
            .unwrap(),
        "nix copy --to",
    );
    ok(
        nix_cmd("nix", tmp.path())
            .args(["store", "sign", "--store", &c2_url, "--key-file"])
            .arg(&key)
            .arg(&path)
            .output()
            .unwrap(),
        "nix store sign",
    );
    let store = tmp.path().join("store");
    // Not trusted: refused, nothing added.
    let o = envbuild()
        .arg("--store")
        .arg(&store)
        .args(["cache", "pull", "--substituter", &c2_url, &path])
        .env("ENVBUILD_TRUSTED_PUBLIC_KEYS", "")
        .env("XDG_CONFIG_HOME", tmp.path())
        .output()
        .unwrap();
    let err = fails(o, "cache pull with no trusted key");
    assert!(
        err.contains("not signed by a trusted key") && err.contains("nix-signed-1"),
        "{err}"
    );
    assert_eq!(verify_clean(&store), 0);
    let o = envbuild()
        .arg("--store")
        .arg(&store)
        .args(["cache", "pull", "--substituter", &c2_url, &path])
        .env("ENVBUILD_TRUSTED_PUBLIC_KEYS", &public)
        .env("XDG_CONFIG_HOME", tmp.path())
        .output()
        .unwrap();
    let physical = ok(o, "cache pull");
    assert_eq!(basename(&physical), basename(&path));
    assert_eq!(
        fs::read(Path::new(&physical).join("d/file")).unwrap(),
        b"from nix\n"
    );
    assert_eq!(verify_clean(&store), 1);
    let _ = Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(&nix_store)
        .status();
}
