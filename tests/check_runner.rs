//! `envbuild check`: `[[checks]]` run inside the closure as the image runs
//! (exit status, stdout pattern, timeout, a served port), the built-in
//! dist-info check; every failure named with its reason, exit status 1.

mod common;

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::shell::*;
use common::*;

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The hello example with the probe and tcp programs, and `cmd` serving
/// `port`.
fn check_spec(dir: &Path, port: u16) -> PathBuf {
    let spec = hello_example(dir);
    let probe = static_program(&dir.join("hello"), "probe");
    let tcp = static_program(&dir.join("hello"), "tcp");
    let text = fs::read_to_string(&spec).unwrap().replace(
        "cmd = [\"/usr/local/bin/hello\"]",
        &format!("cmd = [\"tcp\", \"serve\", \"{port}\"]"),
    );
    fs::write(&spec, text).unwrap();
    add_files(
        &spec,
        &[
            (&probe, "/usr/local/bin/probe"),
            (&tcp, "/usr/local/bin/tcp"),
        ],
    );
    spec
}

fn check(store: &Path, spec: &Path, extra: &[&str]) -> Output {
    envbuild()
        .arg("--store")
        .arg(store)
        .args(extra)
        .arg("check")
        .arg(spec)
        .env("HOST_ONLY_VAR", "from-host")
        .output()
        .unwrap()
}

#[test]
fn passing_checks_pass_and_say_why() {
    require_tool("bwrap", "bubblewrap");
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let spec = check_spec(tmp.path(), port);
    append(
        &spec,
        &format!(
            r#"
[[checks]]
name = "the program runs"
command = ["hello"]
stdout = "hello from envbuild \\(uid=1001\\)"

[[checks]]
name = "runs as the image: its user, env and workdir, no host variables"
command = ["probe", "0", "GREETING", "HOST_ONLY_VAR", "HOME"]
stdout = "(?m)^cwd=/home/appuser$[\\s\\S]*^GREETING=hello$[\\s\\S]*^HOST_ONLY_VAR=<unset>$[\\s\\S]*^HOME=/home/appuser$"

[[checks]]
name = "an expected non-zero status"
command = ["tcp", "exit", "4"]
exit = 4
timeout = "5s"

[[checks]]
name = "the port answers"
command = ["tcp", "get", "{port}"]
stdout = "^pong"
serve = {{ port = {port}, timeout = 20 }}
"#
        ),
    );
    let store = tmp.path().join("store");
    let o = check(&store, &spec, &[]);
    let out = ok(o, "check");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(
        lines[0].starts_with("PASS installed distributions match the lock: 1 distributions"),
        "{out}"
    );
    for name in [
        "the program runs",
        "runs as the image",
        "an expected non-zero status: exit status 4",
        "the port answers: port",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(&format!("PASS {name}"))),
            "{name}: {out}"
        );
    }
    // The server was stopped.
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the server still listens on {port}"
    );

    // --json: the same, machine-readable.
    let o = check(&store, &spec, &["--json"]);
    let v: serde_json::Value = serde_json::from_str(&ok(o, "check --json")).unwrap();
    assert_eq!(v["passed"], true);
    assert_eq!(v["checks"].as_array().unwrap().len(), 5);
}

#[test]
fn each_failing_check_is_named_with_its_reason() {
    require_tool("bwrap", "bubblewrap");
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let spec = check_spec(tmp.path(), port);
    // A server command that exits at once, for the serve failure.
    let text = fs::read_to_string(&spec).unwrap().replace(
        &format!("cmd = [\"tcp\", \"serve\", \"{port}\"]"),
        "cmd = [\"tcp\", \"exit\", \"9\"]",
    );
    fs::write(&spec, text).unwrap();
    // An installed distribution the lock does not pin.
    let extra = tmp.path().join("extra-dist");
    write(
        extra.join("METADATA"),
        b"Metadata-Version: 2.1\nName: not-locked\nVersion: 0.1\n",
        0o644,
    );
    add_files(
        &spec,
        &[(
            &extra,
            "/usr/local/lib/python3.11/site-packages/not_locked-0.1.dist-info",
        )],
    );
    append(
        &spec,
        &format!(
            r#"
[[checks]]
name = "wrong status"
command = ["tcp", "exit", "3"]

[[checks]]
name = "wrong output"
command = ["hello"]
stdout = "goodbye"

[[checks]]
name = "too slow"
command = ["tcp", "sleep", "30"]
timeout = "500ms"

[[checks]]
name = "not in the closure"
command = ["python3", "-c", "import torch"]

[[checks]]
name = "server dies"
command = ["tcp", "get", "{port}"]
serve = {{ port = {port}, timeout = 10 }}

[[checks]]
name = "still fine"
command = ["hello"]
"#
        ),
    );
    let started = std::time::Instant::now();
    let o = check(&tmp.path().join("store"), &spec, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(25),
        "the timeout was kept"
    );
    let out = stdout(&o);
    let line = |name: &str| -> String {
        out.lines()
            .find(|l| l.contains(&format!(" {name}: ")))
            .unwrap_or_else(|| panic!("no line for {name}: {out}"))
            .to_string()
    };
    let l = line("installed distributions match the lock");
    assert!(
        l.starts_with("FAIL")
            && l.contains("not-locked 0.1 is installed in /usr/local/lib/python3.11/site-packages but not in the lock"),
        "{l}"
    );
    let l = line("wrong status");
    assert!(
        l.starts_with("FAIL") && l.contains("exit status 3, expected 0"),
        "{l}"
    );
    let l = line("wrong output");
    assert!(
        l.starts_with("FAIL")
            && l.contains("stdout does not match \"goodbye\"")
            && l.contains("hello from envbuild"),
        "{l}"
    );
    let l = line("too slow");
    assert!(
        l.starts_with("FAIL") && l.contains("timed out after 500ms"),
        "{l}"
    );
    let l = line("not in the closure");
    assert!(
        l.starts_with("FAIL") && l.contains("\"python3\" is not in the closure"),
        "{l}"
    );
    let l = line("server dies");
    assert!(
        l.starts_with("FAIL")
            && l.contains("exited with status 9 before port")
            && l.contains("exiting 9"),
        "{l}"
    );
    assert!(line("still fine").starts_with("PASS"));
    let err = stderr(&o);
    assert!(
        err.contains("1 of 7 checks passed")
            && err.contains("failed: installed distributions match the lock, wrong status"),
        "{err}"
    );
}

#[test]
fn a_port_already_taken_and_a_port_that_never_answers_fail() {
    require_tool("bwrap", "bubblewrap");
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let spec = check_spec(tmp.path(), port);
    // The server listens on `port`; the check waits for another one.
    let silent = free_port();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    append(
        &spec,
        &format!(
            r#"
[[checks]]
name = "wrong port"
command = ["hello"]
serve = {{ port = {silent}, timeout = "1s" }}

[[checks]]
name = "taken"
command = ["hello"]
serve = {{ port = {taken_port}, timeout = 5 }}
"#
        ),
    );
    let o = check(&tmp.path().join("store"), &spec, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "FAIL wrong port: port {silent} did not answer within 1s"
        )) && out.contains("serving on"),
        "{out}"
    );
    assert!(
        out.contains(&format!("FAIL taken: port {taken_port} already answers")),
        "{out}"
    );
    drop(taken);
}

#[test]
fn check_errors_before_any_check_runs_are_clear() {
    require_tool("bwrap", "bubblewrap");
    let tmp = tempfile::tempdir().unwrap();
    let spec = check_spec(tmp.path(), free_port());
    append(&spec, "[[checks]]\ncommand = [\"hello\"]\n");
    let store = tmp.path().join("store");
    let o = envbuild()
        .arg("--store")
        .arg(&store)
        .args(["check", "--locked"])
        .arg(&spec)
        .output()
        .unwrap();
    let err = fails(o, "check --locked without a lock");
    assert!(err.contains("hello.lock"), "{err}");
    let o = envbuild()
        .arg("--store")
        .arg(&store)
        .arg("check")
        .arg(&spec)
        .env("ENVBUILD_BWRAP", tmp.path().join("no-such-bwrap"))
        .output()
        .unwrap();
    let err = fails(o, "check without bwrap");
    assert!(
        err.contains("check \"hello\": cannot start bubblewrap") && err.contains("no-such-bwrap"),
        "{err}"
    );
}

#[test]
fn bad_check_and_shell_entries_point_at_the_spec() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        (
            "[[checks]]\ncommand = [\"hello\"]\nstdout = \"(unclosed\"\n",
            "checks.stdout \"(unclosed\" is not a regular expression",
        ),
        (
            "[[checks]]\ncommand = [\"hello\"]\ntimeout = \"soon\"\n",
            "checks.timeout is not a duration",
        ),
        ("[[checks]]\ncommand = []\n", "checks.command is empty"),
        (
            "[[checks]]\ncommand = [\"hello\"]\nexit = 300\n",
            "checks.exit 300 is not an exit status",
        ),
        (
            "[[checks]]\ncommand = [\"hello\"]\nserve = { port = 70000 }\n",
            "checks.serve.port 70000 is not a TCP port",
        ),
        (
            "[[checks]]\ncommand = [\"hello\"]\n\n[[checks]]\ncommand = [\"hello\"]\n",
            "two checks are named \"hello\"",
        ),
        (
            "[[checks]]\ncommand = [\"hello\"]\nretries = 3\n",
            "unknown field `retries`",
        ),
        (
            "[shell]\npackages = [\"bash\"]\n",
            "shell.packages come from the archive of [base] debian",
        ),
        (
            "[shell]\npackages = [\"Bad Name\"]\n",
            "is not a Debian package name",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let dir = tmp.path().join(format!("case{i}"));
        fs::create_dir_all(&dir).unwrap();
        let spec = hello_example(&dir);
        append(&spec, text);
        let o = run(&dir.join("store"), &[&"check", &spec]);
        let err = fails(o, expected);
        assert!(err.contains(expected), "case {i}: {err}");
        assert!(
            err.contains("hello.toml:"),
            "case {i} names the spec: {err}"
        );
    }
}

#[test]
fn a_gpu_check_is_skipped_visibly_without_a_gpu_and_runs_with_one() {
    require_tool("bwrap", "bubblewrap");
    let tmp = tempfile::tempdir().unwrap();
    let spec = check_spec(tmp.path(), free_port());
    append(
        &spec,
        r#"
[[checks]]
name = "cuda works"
command = ["tcp", "exit", "0"]
gpu = true

[[checks]]
name = "no gpu needed"
command = ["hello"]
"#,
    );
    let store = tmp.path().join("store");
    let no_gpu = tmp.path().join("dev-without-gpu");
    let fake_gpu = tmp.path().join("dev-with-gpu");
    fs::create_dir_all(&no_gpu).unwrap();
    fs::create_dir_all(&fake_gpu).unwrap();
    fs::write(fake_gpu.join("nvidia0"), "").unwrap();
    fs::write(fake_gpu.join("nvidiactl"), "").unwrap();
    let run = |dev: &Path, extra: &[&str]| {
        envbuild()
            .arg("--store")
            .arg(&store)
            .args(extra)
            .arg("check")
            .arg(&spec)
            .env("ENVBUILD_GPU_DEV_DIR", dev)
            .env("ENVBUILD_GPU_LIB_DIRS", tmp.path().join("no-driver"))
            .output()
            .unwrap()
    };

    let o = run(&no_gpu, &[]);
    let out = ok(o.clone(), "check without a GPU");
    assert!(
        out.lines().any(|l| l
            == format!(
                "SKIP cuda works: needs a GPU (gpu = true) and this host has none (no NVIDIA device node in {})",
                no_gpu.display()
            )),
        "{out}"
    );
    assert!(!out.contains("PASS cuda works"), "{out}");
    assert!(out.contains("PASS no gpu needed"), "{out}");
    let err = stderr(&o);
    assert!(
        err.contains("2 of 3 checks passed; skipped: cuda works"),
        "{err}"
    );
    let o = run(&no_gpu, &["--json"]);
    let v: serde_json::Value = serde_json::from_str(&ok(o, "check --json")).unwrap();
    assert_eq!(v["passed"], true);
    assert_eq!(v["skipped"], 1);
    let c = &v["checks"][1];
    assert_eq!(
        (c["name"].as_str(), c["status"].as_str()),
        (Some("cuda works"), Some("skipped"))
    );
    assert_eq!(v["checks"][2]["status"], "passed");

    let out = ok(run(&fake_gpu, &[]), "check with a GPU");
    assert!(out.contains("PASS cuda works: exit status 0"), "{out}");
}
