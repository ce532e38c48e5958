//! `envbuild run SPEC -- CMD`: the command runs inside the realized closure
//! with the spec's user and environment, the working directory bound in.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

/// The hello example plus a static probe program at /usr/local/bin/probe.
fn probe_spec(dir: &Path) -> std::path::PathBuf {
    let spec = hello_example(dir);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/probe.c");
    let st = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(dir.join("hello/bin/probe"))
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success());
    let mut text = fs::read_to_string(&spec).unwrap();
    text = text.replace(
        "[[files]]\nsrc = \"hello/bin/hello\"",
        "[[files]]\nsrc = \"hello/bin/probe\"\ndst = \"/usr/local/bin/probe\"\n\n[[files]]\nsrc = \"hello/bin/hello\"",
    );
    fs::write(&spec, text).unwrap();
    spec
}

fn run_probe(
    store: &Path,
    spec: &Path,
    cwd: &Path,
    args: &[&str],
    extra: &[&str],
) -> std::process::Output {
    envbuild()
        .arg("--store")
        .arg(store)
        .arg("run")
        .args(extra)
        .arg(spec)
        .arg("--")
        .arg("probe")
        .args(args)
        .current_dir(cwd)
        .env("HOST_ONLY_VAR", "from-host")
        .output()
        .unwrap()
}

#[test]
fn run_uses_the_spec_user_env_and_binds_the_working_directory() {
    require_tool("bwrap", "bubblewrap");
    let tmp = tempfile::tempdir().unwrap();
    let spec = probe_spec(tmp.path());
    let work = tmp.path().join("work");
    fs::create_dir(&work).unwrap();
    let o = run_probe(
        &tmp.path().join("store"),
        &spec,
        &work,
        &["0", "GREETING", "HOST_ONLY_VAR", "PATH"],
        &[],
    );
    let out = ok(o, "run probe");
    assert!(out.contains("uid=1001"), "{out}");
    assert!(out.contains(&format!("cwd={}", work.display())), "{out}");
    assert!(out.contains("GREETING=hello"), "{out}");
    assert!(out.contains("HOST_ONLY_VAR=from-host"), "{out}");
    assert!(out.contains("PATH=/usr/local/sbin:/usr/local/bin"), "{out}");
    assert!(out.contains("write=ok"), "{out}");
    assert_eq!(
        fs::read_to_string(work.join("written-inside.txt")).unwrap(),
        "from inside\n"
    );
}

#[test]
fn pure_run_drops_the_host_environment_and_exit_status_passes_through() {
    require_tool("bwrap", "bubblewrap");
    let tmp = tempfile::tempdir().unwrap();
    let spec = probe_spec(tmp.path());
    let o = run_probe(
        &tmp.path().join("store"),
        &spec,
        tmp.path(),
        &["7", "HOST_ONLY_VAR", "GREETING"],
        &["--pure"],
    );
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("HOST_ONLY_VAR=<unset>") && out.contains("GREETING=hello"),
        "{out}"
    );
}

#[test]
fn a_command_outside_the_closure_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = hello_example(tmp.path());
    let store = tmp.path().join("store");
    let o = envbuild()
        .arg("--store")
        .arg(&store)
        .args(["run"])
        .arg(&spec)
        .args(["--", "python3", "-c", "print(1)"])
        .output()
        .unwrap();
    let err = fails(o, "run python3");
    assert!(err.contains("\"python3\" is not in the closure"), "{err}");
}
