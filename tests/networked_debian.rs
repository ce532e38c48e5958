//! NETWORKED suite: reaches the Debian archive configured on this machine
//! (the host's apt sources, or ENVBUILD_DEBIAN_MIRROR). Ignored by default;
//! run with `cargo test --test networked_debian -- --ignored` (.ci/run does).

mod common;

use std::fs;

use common::*;

const SPEC: &str = r#"
[env]
name = "netpy"
system = "x86_64-linux"
source-date-epoch = 1700000000

[base]
debian = { suite = "bookworm", packages = ["python3.11", "python3"] }

[image]
cmd = ["python3", "-c", "import sys, ssl; print(sys.version_info[:2])"]
"#;

#[test]
#[ignore = "networked: reaches the Debian archive"]
fn networked_debian_python_runs_in_the_closure_and_in_docker_and_reproduces() {
    require_tool("bwrap", "bubblewrap");
    require_tool("gpgv", "gpgv");
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("netpy.toml");
    fs::write(&spec, SPEC).unwrap();
    let store = tmp.path().join("store");
    let d1 = realize(&store, &spec, &tmp.path().join("a.tar"), &[]);
    let lock_file = fs::read_to_string(tmp.path().join("netpy.lock")).unwrap();
    let lock = common::lock_as_v1(&lock_file);
    assert!(lock.contains("id = \"deb:python3.11-minimal\""), "{lock}");
    assert!(
        lock.contains("source = \"pool/main/"),
        "lock entries are mirror-relative: {lock}"
    );
    assert!(
        !lock_file.contains("://"),
        "the lock holds no host names: {lock}"
    );

    let cmd = [
        "python3",
        "-c",
        "import sys, ssl; print(sys.version_info[:2])",
    ];
    let o = run_in_closure(&store, &spec, tmp.path(), &cmd);
    assert_eq!(ok(o, "run python3"), "(3, 11)");

    // A second store, locked: the same digest.
    let d2 = realize(
        &tmp.path().join("store2"),
        &spec,
        &tmp.path().join("b.tar"),
        &["--locked"],
    );
    assert_eq!(d1, d2);
    assert_eq!(
        fs::read(tmp.path().join("a.tar")).unwrap(),
        fs::read(tmp.path().join("b.tar")).unwrap()
    );

    if let Some(out) = docker_load_and_run(&tmp.path().join("a.tar"), "netpy:latest") {
        assert_eq!(out, "(3, 11)");
    }
}

#[test]
#[ignore = "networked: reaches the Debian archive"]
fn networked_debian_unknown_package_names_the_nearest() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("bad.toml");
    fs::write(&spec, SPEC.replace("\"python3.11\", ", "\"pyton3.11\", ")).unwrap();
    let err = fails(
        run(
            &tmp.path().join("store"),
            &[&"realize", &spec, &"-o", &tmp.path().join("x.tar")],
        ),
        "unknown package",
    );
    assert!(
        err.contains("\"pyton3.11\"") && err.contains("python3.11"),
        "{err}"
    );
}
