//! The edges of the command line people touch every day: streaming an image
//! to standard output, output paths that cannot be written, the mode of
//! written files, errors as JSON, completions and the manual page.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".envbuild"))
        .collect()
}

#[test]
fn realize_dash_o_dash_streams_the_archive_to_stdout_and_the_digest_to_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = hello_example(tmp.path());
    let store = tmp.path().join("store");
    let file = tmp.path().join("a.tar");
    let digest = realize(&store, &spec, &file, &[]);

    let o = run(&store, &[&"realize", &spec, &"-o", &"-"]);
    assert!(o.status.success(), "realize -o -: {}", stderr(&o));
    assert_eq!(
        o.stdout,
        fs::read(&file).unwrap(),
        "the stream is the archive, byte for byte, and nothing else"
    );
    let err = stderr(&o);
    assert_eq!(err.trim().lines().last(), Some(digest.as_str()), "{err}");

    // --json: the report goes to stderr too.
    let o = run(&store, &[&"--json", &"realize", &spec, &"-o", &"-"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, fs::read(&file).unwrap());
    let report: serde_json::Value =
        serde_json::from_str(stderr(&o).lines().next().unwrap()).unwrap();
    assert_eq!(report["output"], "-");

    // Directories do not stream.
    let o = run(
        &store,
        &[&"realize", &spec, &"-o", &"-", &"--format", &"oci-dir"],
    );
    let err = fails(o, "realize -o - --format oci-dir");
    assert!(
        err.contains("oci-dir cannot be written to standard output"),
        "{err}"
    );
}

#[test]
fn the_streamed_archive_loads_into_docker() {
    if !docker_works() {
        eprintln!("note: `docker info` fails here; docker load was not checked");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tag = format!("stream{}", std::process::id());
    let spec = hello_example_tagged(tmp.path(), &tag);
    let mut realize = envbuild()
        .arg("--store")
        .arg(tmp.path().join("store"))
        .args(["-q", "realize"])
        .arg(&spec)
        .args(["-o", "-"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let load = Command::new("docker")
        .arg("load")
        .stdin(realize.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(realize.wait().unwrap().success());
    let loaded = ok(load, "docker load");
    let image = format!("hello:{tag}");
    assert!(loaded.contains(&image), "{loaded}");
    let o = Command::new("docker")
        .args(["run", "--rm", &image])
        .output()
        .unwrap();
    let _ = Command::new("docker").args(["rmi", &image]).output();
    assert!(ok(o, "docker run").starts_with("hello from envbuild"));
}

#[test]
fn an_output_that_cannot_be_written_is_named_and_nothing_is_left_beside_it() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = hello_example(tmp.path());
    let store = tmp.path().join("store");
    let outs = tmp.path().join("outs");
    fs::create_dir(&outs).unwrap();

    // An existing directory where an archive is to go.
    let dir = outs.join("image.tar");
    fs::create_dir(&dir).unwrap();
    let err = fails(run(&store, &[&"realize", &spec, &"-o", &dir]), "-o DIR");
    assert!(
        err.contains(&format!("output {} is a directory", dir.display())),
        "{err}"
    );
    assert!(leftovers(&outs).is_empty(), "{:?}", leftovers(&outs));

    // A path below a regular file: the error names the path given, not a
    // staging name.
    let file = outs.join("plain");
    fs::write(&file, "x").unwrap();
    let below = file.join("image.tar");
    let err = fails(
        run(&store, &[&"realize", &spec, &"-o", &below]),
        "-o FILE/x",
    );
    assert!(err.contains(&below.display().to_string()), "{err}");
    assert!(!err.contains(".envbuild-"), "a staging name leaked: {err}");
    assert!(leftovers(&outs).is_empty(), "{:?}", leftovers(&outs));
}

#[test]
fn the_lock_file_gets_its_mode_from_the_umask() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = hello_example(tmp.path());
    let lock = tmp.path().join("hello.lock");
    for (umask, mode) in [("022", 0o644), ("027", 0o640)] {
        let _ = fs::remove_file(&lock);
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!("umask {umask}; exec \"$@\""))
            .arg("sh")
            .arg(env!("CARGO_BIN_EXE_envbuild"))
            .arg("--store")
            .arg(tmp.path().join("store"))
            .arg("lock")
            .arg(&spec)
            .env_remove("ENVBUILD_STORE")
            .output()
            .unwrap();
        ok(o, "lock");
        let got = fs::metadata(&lock).unwrap().permissions().mode() & 0o777;
        assert_eq!(got, mode, "lock written {got:o} under umask {umask}");
    }
}

fn json_error(o: std::process::Output) -> serde_json::Value {
    assert!(!o.status.success(), "unexpectedly succeeded");
    let out = stdout(&o);
    let v: serde_json::Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("--json error is not one JSON value ({e}): {out:?}"));
    v["error"].clone()
}

#[test]
fn json_errors_name_the_kind_the_input_and_a_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");

    // A spec path that is a directory holding one spec.
    let spec = hello_example(tmp.path());
    let e = json_error(run(&store, &[&"--json", &"realize", &tmp.path()]));
    assert_eq!(e["kind"], "spec", "{e}");
    assert_eq!(e["input"], tmp.path().display().to_string());
    let message = e["message"].as_str().unwrap();
    assert!(message.contains("is a directory"), "{e}");
    assert!(
        e["hint"]
            .as_str()
            .unwrap()
            .contains(&spec.display().to_string()),
        "{e}"
    );

    // A spec with an unknown key.
    let bad = tmp.path().join("bad.toml");
    fs::write(
        &bad,
        "[env]\nname = \"x\"\nsystem = \"x86_64-linux\"\nbogus = 1\n",
    )
    .unwrap();
    let e = json_error(run(&store, &[&"--json", &"lock", &bad]));
    assert_eq!(e["kind"], "spec", "{e}");
    assert!(e["message"].as_str().unwrap().contains("bogus"), "{e}");

    // --locked without a lock.
    let e = json_error(run(&store, &[&"--json", &"realize", &spec, &"--locked"]));
    assert_eq!(e["kind"], "lock", "{e}");
    assert_eq!(e["input"], spec.display().to_string());
    assert!(e["hint"].as_str().unwrap().contains("envbuild lock"), "{e}");

    // Without --json the same error is one paragraph on stderr, stdout empty.
    let o = run(&store, &[&"realize", &spec, &"--locked"]);
    assert!(stdout(&o).is_empty());
    assert!(stderr(&o).starts_with("error: "), "{}", stderr(&o));
}

#[test]
fn completions_and_the_manual_page_are_generated_from_the_command_line() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef envbuild"),
        ("fish", "complete -c envbuild"),
        ("elvish", "edit:completion:arg-completer[envbuild]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = ok(
            envbuild().args(["completions", shell]).output().unwrap(),
            shell,
        );
        assert!(out.contains(marker), "{shell}: no {marker:?}");
        assert!(out.contains("realize"), "{shell} completes no subcommand");
    }
    let man = ok(envbuild().arg("man").output().unwrap(), "man");
    assert!(
        man.starts_with(".ie") || man.contains(".TH envbuild"),
        "{}",
        &man[..200]
    );
    assert!(man.contains("realize"));
    if Path::new("/usr/bin/man").exists() {
        let dir = tempfile::tempdir().unwrap();
        let page = dir.path().join("envbuild.1");
        fs::write(&page, &man).unwrap();
        let o = Command::new("man")
            .arg("-l")
            .arg(&page)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        assert!(ok(o, "man -l").contains("envbuild"));
    }
}

#[test]
fn lock_and_root_list_answer_json() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = hello_example(tmp.path());
    let store = tmp.path().join("store");
    let out = ok(run(&store, &[&"--json", &"lock", &spec]), "lock --json");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["lock"],
        tmp.path().join("hello.lock").display().to_string()
    );
    assert_eq!(v["written"], true);
    assert!(v["pins"].as_u64().unwrap() > 0, "{v}");
    let again: serde_json::Value =
        serde_json::from_str(&ok(run(&store, &[&"--json", &"lock", &spec]), "lock")).unwrap();
    assert_eq!(again["written"], false);

    realize(&store, &spec, &tmp.path().join("a.tar"), &[]);
    let out = ok(
        run(&store, &[&"--json", &"store", &"root", &"list"]),
        "root list",
    );
    let roots: serde_json::Value = serde_json::from_str(&out).unwrap();
    let image = format!("spec:{}", spec.display());
    let root = roots
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == image.as_str())
        .unwrap_or_else(|| panic!("no root {image}: {roots}"));
    assert_eq!(root["guard"], spec.display().to_string());
}
