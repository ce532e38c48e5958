//! envbuild as an ordinary user, with a store of its own under
//! `$XDG_DATA_HOME`: `store add` of a directory, realize of the hello
//! example (the same image digest as root's), `run`, `shell`, `check`,
//! `store verify` and `store gc`, and owners in the image taken from the
//! spec, not from the store files' owner.
//!
//! Tests and CI run as root, whose `CAP_DAC_OVERRIDE` hides permission
//! bugs (renaming a 0555 directory into another directory, removing the
//! entries of a 0555 directory). So as root, every envbuild child runs as
//! uid/gid 1000 through `setpriv --reuid 1000 --regid 1000 --clear-groups`
//! (numeric ids: nothing needs the user to exist), in a temp dir that user
//! owns, with a copy of the binary that user can run. Run as anyone else,
//! the tests are already unprivileged and run envbuild directly.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::shell::*;
use common::*;

const UID: u32 = 1000;
const GID: u32 = 1000;

/// An unprivileged envbuild: its binary, home and XDG dirs, all owned by
/// the user it runs as.
struct User {
    tmp: tempfile::TempDir,
    bin: PathBuf,
    drop_to: Option<(u32, u32)>,
}

impl User {
    fn new() -> User {
        let tmp = tempfile::tempdir().unwrap();
        let drop_to = if rustix::process::geteuid().is_root() {
            Some((UID, GID))
        } else {
            eprintln!(
                "note: not running as root: envbuild runs as this user (uid {}) directly",
                rustix::process::geteuid().as_raw()
            );
            None
        };
        for d in ["home", "data", "cache", "config", "work"] {
            fs::create_dir(tmp.path().join(d)).unwrap();
        }
        // The build's binary may sit below directories the user cannot
        // search: the user runs a copy of it.
        let bin = tmp.path().join("envbuild");
        fs::copy(env!("CARGO_BIN_EXE_envbuild"), &bin).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        let u = User { tmp, bin, drop_to };
        u.own(u.tmp.path());
        u
    }

    /// Hand `path` (and everything below it) to the user.
    fn own(&self, path: &Path) {
        if let Some((uid, gid)) = self.drop_to {
            for e in walkdir::WalkDir::new(path) {
                let e = e.unwrap();
                std::os::unix::fs::lchown(e.path(), Some(uid), Some(gid)).unwrap();
            }
        }
    }

    fn work(&self) -> PathBuf {
        self.tmp.path().join("work")
    }

    /// The user's default store (`$XDG_DATA_HOME/envbuild/store`).
    fn store(&self) -> PathBuf {
        self.tmp.path().join("data/envbuild/store")
    }

    fn envbuild(&self) -> Command {
        let mut c = match self.drop_to {
            Some((uid, gid)) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups")
                    .arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        let t = self.tmp.path();
        c.env_remove("ENVBUILD_STORE")
            .env("HOME", t.join("home"))
            .env("XDG_DATA_HOME", t.join("data"))
            .env("XDG_CACHE_HOME", t.join("cache"))
            .env("XDG_CONFIG_HOME", t.join("config"))
            .env_remove("XDG_RUNTIME_DIR")
            .env("TMPDIR", t.join("work"))
            .current_dir(self.work());
        c
    }

    fn run(&self, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
        let mut c = self.envbuild();
        for a in args {
            c.arg(a.as_ref());
        }
        c.output().unwrap()
    }

    /// The hello example (with the probe program) in the user's work dir.
    fn hello(&self) -> PathBuf {
        let spec = hello_example(&self.work());
        with_probe(&spec);
        self.own(&self.work());
        spec
    }
}

/// Add the probe program to a copied hello example, by a relative path (so
/// that the spec text is the same wherever the copy is).
fn with_probe(spec: &Path) {
    static_program(&spec.parent().unwrap().join("hello"), "probe");
    append(
        spec,
        "[[files]]\nsrc = \"hello/bin/probe\"\ndst = \"/usr/local/bin/probe\"\n",
    );
}

/// Every file and directory below `root` is owned by `uid`.
fn assert_owned_by(root: &Path, uid: u32) {
    for e in walkdir::WalkDir::new(root) {
        let e = e.unwrap();
        let m = fs::symlink_metadata(e.path()).unwrap();
        assert_eq!(
            m.uid(),
            uid,
            "{} is owned by uid {}",
            e.path().display(),
            m.uid()
        );
    }
}

#[test]
fn an_ordinary_user_adds_a_directory_and_verifies_and_collects_its_read_only_items() {
    let u = User::new();
    let src = u.work().join("tree");
    write(src.join("bin/tool"), b"#!/bin/sh\necho tool\n", 0o755);
    write(src.join("share/doc/readme"), b"read me\n", 0o644);
    link("../share/doc/readme", src.join("bin/readme"));
    fs::create_dir_all(src.join("empty")).unwrap();
    u.own(&u.work());
    let item = PathBuf::from(ok(u.run(&[&"store", &"add", &src]), "store add as a user"));
    assert_eq!(
        item.parent().unwrap(),
        u.store(),
        "the default store is used"
    );
    // Canonical: read-only directories (the top one too) and files, owned
    // by the user.
    assert_eq!(fs::metadata(&item).unwrap().mode() & 0o7777, 0o555);
    assert_eq!(
        fs::metadata(item.join("share/doc")).unwrap().mode() & 0o7777,
        0o555
    );
    assert_eq!(
        fs::metadata(item.join("bin/tool")).unwrap().mode() & 0o7777,
        0o555
    );
    if let Some((uid, _)) = u.drop_to {
        assert_owned_by(&item, uid);
    }
    // The same basename as root's add of the same tree.
    let root_store = u.tmp.path().join("root-store");
    let as_root = ok(run(&root_store, &[&"store", &"add", &src]), "store add");
    assert_eq!(basename(&as_root), basename(&item.to_string_lossy()));
    // Adding it again copies nothing and gives the same item.
    let again = ok(u.run(&[&"store", &"add", &src]), "second store add");
    assert_eq!(PathBuf::from(again), item);
    let o = u.run(&[&"--json", &"store", &"verify"]);
    let v: serde_json::Value = serde_json::from_str(&ok(o, "store verify as a user")).unwrap();
    assert_eq!(v["checked"], 1, "{v}");
    // Nothing roots it: gc removes the read-only tree.
    let o = u.run(&[&"--json", &"store", &"gc"]);
    let v: serde_json::Value = serde_json::from_str(&ok(o, "store gc as a user")).unwrap();
    assert_eq!(v["removed"].as_array().unwrap().len(), 1, "{v}");
    assert!(!item.exists(), "gc left {}", item.display());
    let o = u.run(&[&"--json", &"store", &"verify"]);
    let v: serde_json::Value = serde_json::from_str(&ok(o, "store verify after gc")).unwrap();
    assert_eq!(v["checked"], 0, "{v}");
    assert_eq!(v["unregistered"].as_array().map_or(0, Vec::len), 0, "{v}");
}

/// (uid, gid) of every entry of the image's layers, by path.
fn layer_owners(oci_dir: &Path, report: &serde_json::Value) -> BTreeMap<String, (u64, u64)> {
    let mut owners = BTreeMap::new();
    for l in report["layers"].as_array().unwrap() {
        let d = l["digest"].as_str().unwrap().trim_start_matches("sha256:");
        let mut data = Vec::new();
        fs::File::open(oci_dir.join("blobs/sha256").join(d))
            .unwrap()
            .read_to_end(&mut data)
            .unwrap();
        let mut a = tar::Archive::new(flate2::read::GzDecoder::new(&data[..]));
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            owners.insert(
                e.path()
                    .unwrap()
                    .to_string_lossy()
                    .trim_end_matches('/')
                    .to_string(),
                (h.uid().unwrap(), h.gid().unwrap()),
            );
        }
    }
    owners
}

#[test]
fn an_ordinary_user_realizes_the_image_root_realizes_with_owners_from_the_spec() {
    let u = User::new();
    let spec = u.hello();
    let oci = u.work().join("hello-oci");
    let o = u.run(&[
        &"--json",
        &"realize",
        &spec,
        &"--format",
        &"oci-dir",
        &"-o",
        &oci,
    ]);
    let out = ok(o, "realize as a user");
    let report: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let digest = out.lines().last().unwrap().to_string();
    if let Some((uid, _)) = u.drop_to {
        assert_owned_by(&u.store(), uid);
    }
    // Root realizes the same spec (a copy: the lock the user's realize
    // wrote is not shared) to the same image.
    let root_dir = u.tmp.path().join("as-root");
    let root_spec = hello_example(&root_dir);
    with_probe(&root_spec);
    let root_digest = realize(
        &u.tmp.path().join("root-store"),
        &root_spec,
        &root_dir.join("hello.tar"),
        &[],
    );
    assert_eq!(digest, root_digest, "a user's image differs from root's");
    // Owners come from the spec: the app files are appuser's (1001), the
    // program root's, whoever owns the store.
    let owners = layer_owners(&oci, &report);
    let app = owners
        .iter()
        .filter(|(p, _)| p.starts_with("home/appuser/app/"))
        .collect::<Vec<_>>();
    assert!(!app.is_empty(), "no app files in the layers: {owners:?}");
    for (p, ids) in app {
        assert_eq!(*ids, (1001, 1001), "{p}");
    }
    assert_eq!(owners["usr/local/bin/hello"], (0, 0));
    // gc and verify as the user.
    ok(u.run(&[&"store", &"gc"]), "store gc as a user");
    let o = u.run(&[&"--json", &"store", &"verify"]);
    let v: serde_json::Value = serde_json::from_str(&ok(o, "store verify as a user")).unwrap();
    assert!(v["checked"].as_u64().unwrap() >= 5, "{v}");
    // Realizing again after gc (which removed the unrooted intermediate
    // steps) rebuilds them as the user, to the same image.
    let o = u.run(&[&"realize", &spec, &"--format", &"oci-dir", &"-o", &oci]);
    let again = ok(o, "realize after gc");
    assert_eq!(again.lines().last().unwrap(), digest);
}

#[test]
fn an_ordinary_user_runs_checks_and_enters_the_shell_of_the_closure() {
    require_tool("bwrap", "bubblewrap");
    let u = User::new();
    let spec = u.hello();
    append(
        &spec,
        "[[checks]]\nname = \"the program runs\"\ncommand = [\"hello\"]\nstdout = \"hello from envbuild\"\n",
    );
    let o = u.run(&[&"run", &spec, &"--", &"/usr/local/bin/hello"]);
    let out = ok(o, "run as a user");
    assert!(out.contains("hello from envbuild"), "{out}");
    let o = u.run(&[&"shell", &spec, &"--", &"probe", &"0", &"GREETING"]);
    let out = ok(o, "shell as a user");
    assert!(out.contains("GREETING=hello"), "{out}");
    let o = u.run(&[&"check", &spec]);
    let out = ok(o, "check as a user");
    assert!(out.contains("PASS the program runs"), "{out}");
    // gc removes the shell's cached rootfs (read-only files hardlinked
    // from the store) as well as the unrooted closure.
    let o = u.run(&[&"--json", &"store", &"gc"]);
    let v: serde_json::Value = serde_json::from_str(&ok(o, "store gc as a user")).unwrap();
    assert!(!v["removed"].as_array().unwrap().is_empty(), "{v}");
    assert!(!u.store().join(".envbuild/cache/rootfs").exists());
    let o = u.run(&[&"--json", &"store", &"verify"]);
    ok(o, "store verify as a user");
}
