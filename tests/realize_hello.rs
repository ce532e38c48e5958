//! `envbuild realize` of the hello example: reproducible bit for bit, and
//! accepted by the real consumers (skopeo, umoci, podman, docker).

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::*;

#[test]
fn two_realizes_with_different_stores_tz_umask_cwd_and_compression_threads_are_byte_identical() {
    require_tool("diffoscope", "diffoscope-minimal");
    let tmp = tempfile::tempdir().unwrap();
    let a_dir = tmp.path().join("a");
    let b_dir = tmp.path().join("elsewhere/b");
    let spec_a = hello_example(&a_dir);
    let spec_b = hello_example(&b_dir);
    let run_in = |spec: &Path,
                  store: &Path,
                  out: &Path,
                  (tz, umask, threads): (&str, &str, &str),
                  cwd: &Path| {
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!("umask {umask}; exec \"$@\""))
            .arg("sh")
            .arg(env!("CARGO_BIN_EXE_envbuild"))
            .arg("--store")
            .arg(store)
            .arg("realize")
            .arg(spec)
            .arg("-o")
            .arg(out)
            .env("TZ", tz)
            .env("ENVBUILD_COMPRESS_THREADS", threads)
            .env_remove("ENVBUILD_STORE")
            .current_dir(cwd)
            .output()
            .unwrap();
        ok(o, "realize").lines().last().unwrap().to_string()
    };
    let out_a = tmp.path().join("a.tar");
    let out_b = tmp.path().join("b.tar");
    let d1 = run_in(
        &spec_a,
        &tmp.path().join("store1"),
        &out_a,
        ("UTC", "022", "1"),
        &a_dir,
    );
    let d2 = run_in(
        &spec_b,
        &tmp.path().join("store2"),
        &out_b,
        ("Pacific/Chatham", "077", "4"),
        tmp.path(),
    );
    assert_eq!(d1, d2, "digest lines differ");
    assert_eq!(
        fs::read(&out_a).unwrap(),
        fs::read(&out_b).unwrap(),
        "tars differ"
    );
    let diff = Command::new("diffoscope")
        .arg(&out_a)
        .arg(&out_b)
        .output()
        .unwrap();
    assert!(
        diff.status.success(),
        "diffoscope found differences:\n{}",
        String::from_utf8_lossy(&diff.stdout)
    );
}

#[test]
fn skopeo_sees_the_specs_user_env_cmd_and_ports() {
    require_tool("skopeo", "skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let spec = hello_example(tmp.path());
    let tar = tmp.path().join("a.tar");
    let digest = realize(&tmp.path().join("store"), &spec, &tar, &[]);
    let o = Command::new("skopeo")
        .arg("inspect")
        .arg("--config")
        .arg(format!("oci-archive:{}", tar.display()))
        .output()
        .unwrap();
    let cfg: serde_json::Value = serde_json::from_str(&ok(o, "skopeo inspect --config")).unwrap();
    let c = &cfg["config"];
    assert_eq!(c["User"], "appuser");
    assert_eq!(c["Cmd"], serde_json::json!(["/usr/local/bin/hello"]));
    assert_eq!(c["WorkingDir"], "/home/appuser");
    assert!(c["ExposedPorts"]["7860/tcp"].is_object(), "{c}");
    let env: Vec<String> = serde_json::from_value(c["Env"].clone()).unwrap();
    assert!(env.contains(&"GREETING=hello".to_string()), "{env:?}");
    let o = Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci-archive:{}", tar.display()))
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_str(&ok(o, "skopeo inspect")).unwrap();
    assert_eq!(info["Digest"], digest.as_str(), "skopeo's manifest digest");
}

#[test]
fn umoci_unpacks_the_expected_rootfs() {
    require_tool("umoci", "umoci");
    let tmp = tempfile::tempdir().unwrap();
    let spec = hello_example(tmp.path());
    let tar = tmp.path().join("a.tar");
    realize(&tmp.path().join("store"), &spec, &tar, &[]);
    let layout = tmp.path().join("layout");
    fs::create_dir(&layout).unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&layout)
        .status()
        .unwrap();
    assert!(st.success());
    let bundle = tmp.path().join("bundle");
    let o = Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:latest", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    ok(o, "umoci unpack");
    let rootfs = bundle.join("rootfs");
    let hello = rootfs.join("usr/local/bin/hello");
    assert_eq!(fs::metadata(&hello).unwrap().mode() & 0o777, 0o755);
    let msg = rootfs.join("home/appuser/app/message.txt");
    assert_eq!(
        fs::read_to_string(&msg).unwrap(),
        "the app files are in place\n"
    );
    assert_eq!(
        fs::metadata(&msg).unwrap().uid(),
        1001,
        "app files owned by appuser"
    );
    assert_eq!(
        fs::metadata(rootfs.join("home/appuser")).unwrap().uid(),
        1001,
        "the home stays the user's although the app layer, unpacked after base-files, holds it too"
    );
    assert_eq!(
        fs::metadata(rootfs.join("tmp")).unwrap().mode() & 0o7777,
        0o1777
    );
    let passwd = fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(
        passwd.contains("appuser:x:1001:1001::/home/appuser:/bin/sh"),
        "{passwd}"
    );
    let site = rootfs.join("usr/local/lib/python3.11/site-packages");
    assert!(site.join("hello_greeter/__init__.py").is_file());
    assert_eq!(
        fs::read_to_string(site.join("hello_greeter-1.0.0.dist-info/INSTALLER")).unwrap(),
        "envbuild\n"
    );
    let launcher = fs::read_to_string(rootfs.join("usr/local/bin/hello-greeter")).unwrap();
    assert!(
        launcher.starts_with("#!/usr/local/bin/python3\n"),
        "{launcher}"
    );
    // The wheel's package really works with a Python 3.11 interpreter.
    let o = Command::new("python3")
        .arg("-c")
        .arg("import hello_greeter; print(hello_greeter.greet('test'))")
        .env("PYTHONPATH", &site)
        .output()
        .unwrap();
    assert_eq!(ok(o, "python3 import"), "hello, test");
}

#[test]
fn podman_loads_the_archive() {
    require_tool("podman", "podman");
    let tmp = tempfile::tempdir().unwrap();
    let spec = hello_example(tmp.path());
    let tar = tmp.path().join("a.tar");
    realize(&tmp.path().join("store"), &spec, &tar, &[]);
    let root = tmp.path().join("podman-root");
    let runroot = tmp.path().join("podman-run");
    let o = Command::new("podman")
        .arg("--root")
        .arg(&root)
        .arg("--runroot")
        .arg(&runroot)
        .args(["--storage-driver", "vfs", "load", "-i"])
        .arg(&tar)
        .output()
        .unwrap();
    let out = ok(o, "podman load");
    assert!(out.contains("hello"), "{out}");
}

#[test]
fn docker_loads_and_runs_the_image() {
    if !docker_works() {
        eprintln!("note: `docker info` fails here; docker load/run was not checked");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tag = format!("t{}", std::process::id());
    let spec = hello_example_tagged(tmp.path(), &tag);
    let tar = tmp.path().join("a.tar");
    realize(&tmp.path().join("store"), &spec, &tar, &[]);
    let out = docker_load_and_run(&tar, &format!("hello:{tag}")).expect("docker works");
    assert_eq!(
        out,
        "hello from envbuild (uid=1001)\napp says: the app files are in place"
    );
}

#[test]
fn editing_one_app_file_changes_exactly_one_layer_and_a_no_op_builds_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = hello_example(tmp.path());
    let store = tmp.path().join("store");
    let out = tmp.path().join("a.tar");
    let first = realize_json(&store, &spec, &out);
    let again = realize_json(&store, &spec, &out);
    assert_eq!(
        again["built"], 0,
        "a no-op realize built something: {again}"
    );
    assert_eq!(first["layers"], again["layers"]);
    fs::write(
        tmp.path().join("hello/app/static/style.css"),
        "body { color: teal; }\n",
    )
    .unwrap();
    let edited = realize_json(&store, &spec, &out);
    let digests = |v: &serde_json::Value| -> Vec<String> {
        v["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string())
            .collect()
    };
    let (before, after) = (digests(&first), digests(&edited));
    assert_eq!(before.len(), after.len());
    let changed: Vec<usize> = (0..before.len())
        .filter(|&i| before[i] != after[i])
        .collect();
    assert_eq!(changed.len(), 1, "layers changed: {changed:?}");
    let comps = &edited["layers"][changed[0]]["components"];
    assert_eq!(comps, &serde_json::json!(["files /home/appuser/app"]));
}

#[test]
fn locked_realize_names_the_input_that_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = hello_example(tmp.path());
    let store = tmp.path().join("store");
    let out = tmp.path().join("a.tar");
    // No lock yet.
    let err = fails(
        run(&store, &[&"realize", &spec, &"-o", &out, &"--locked"]),
        "--locked without a lock",
    );
    assert!(err.contains("no lock file"), "{err}");
    realize(&store, &spec, &out, &[]);
    realize(&store, &spec, &out, &["--locked"]);
    fs::write(tmp.path().join("hello/app/message.txt"), "changed\n").unwrap();
    let err = fails(
        run(&store, &[&"realize", &spec, &"-o", &out, &"--locked"]),
        "--locked after an edit",
    );
    assert!(
        err.contains("files /home/appuser/app") && err.contains("hello/app"),
        "{err}"
    );
    verify_clean(&store);
}

#[test]
fn oci_dir_and_rootfs_formats_hold_the_same_image() {
    require_tool("skopeo", "skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let spec = hello_example(tmp.path());
    let store = tmp.path().join("store");
    let tar_digest = realize(&store, &spec, &tmp.path().join("a.tar"), &[]);
    let dir = tmp.path().join("oci-dir");
    let dir_digest = realize(&store, &spec, &dir, &["--format", "oci-dir"]);
    assert_eq!(tar_digest, dir_digest);
    let o = Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:latest", dir.display()))
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_str(&ok(o, "skopeo inspect oci:")).unwrap();
    assert_eq!(info["Digest"], tar_digest.as_str());

    let rootfs = tmp.path().join("rootfs");
    realize(&store, &spec, &rootfs, &["--format", "rootfs"]);
    let hello = rootfs.join("usr/local/bin/hello");
    assert_eq!(fs::metadata(&hello).unwrap().mode() & 0o777, 0o755);
    let out = Command::new(&hello).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("hello from envbuild"));
    assert_eq!(
        fs::metadata(rootfs.join("tmp")).unwrap().mode() & 0o7777,
        0o1777
    );
    // The same output again is left as it is; an existing, non-empty
    // output that is not exactly what an export of this image wrote is
    // refused rather than overwritten.
    let again = ok(
        run(
            &store,
            &[&"realize", &spec, &"-o", &rootfs, &"--format", &"rootfs"],
        ),
        "rootfs again",
    );
    assert!(again.contains(&tar_digest), "{again}");
    write(rootfs.join("root/notes.txt"), b"mine\n", 0o644);
    let err = fails(
        run(
            &store,
            &[&"realize", &spec, &"-o", &rootfs, &"--format", &"rootfs"],
        ),
        "rootfs over a non-empty directory",
    );
    assert!(err.contains("already exists"), "{err}");
}

/// What a realize killed during its export leaves beside the output (its
/// staging file, `.<name>.envbuild-<pid>`) is removed by the next realize to
/// that output, also when the output is already up to date; a live
/// writer's is not (the unit tests in src/export/ check that side).
#[test]
fn a_killed_exports_staging_file_is_removed_by_the_next_realize() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = hello_example(tmp.path());
    let store = tmp.path().join("store");
    let out_dir = tmp.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("hello.tar");
    let dead = || {
        let mut c = Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    };
    let listing = || {
        let mut v: Vec<String> = fs::read_dir(&out_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let killed = out_dir.join(format!(".hello.tar.envbuild-{}", dead()));
    fs::write(&killed, b"the first 100 bytes of an archive").unwrap();
    let d1 = realize(&store, &spec, &out, &[]);
    assert_eq!(listing(), ["hello.tar"]);
    // Killed again, the output now up to date: nothing is written, the
    // leftover still goes.
    let killed = out_dir.join(format!(".hello.tar.envbuild-{}", dead()));
    fs::write(&killed, b"half").unwrap();
    let d2 = realize(&store, &spec, &out, &[]);
    assert_eq!(d1, d2);
    assert_eq!(listing(), ["hello.tar"]);
}
