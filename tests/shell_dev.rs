//! `envbuild shell`: one command or an interactive shell inside the spec's
//! closure; the `[shell] hook`; the working directory bound from anywhere,
//! even where the rootfs has none of its parents; the rootfs cached by
//! closure; clear errors for no bwrap, no namespaces, no lock, no shell.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::shell::*;
use common::*;

/// The hello example plus the probe program at /usr/local/bin/probe.
fn probe_spec(dir: &Path) -> PathBuf {
    let spec = hello_example(dir);
    let probe = static_program(&dir.join("hello"), "probe");
    add_files(&spec, &[(&probe, "/usr/local/bin/probe")]);
    spec
}

fn shell(store: &Path, spec: &Path, cwd: &Path, flags: &[&str], cmd: &[&str]) -> Output {
    let mut c = envbuild();
    c.arg("--store")
        .arg(store)
        .arg("shell")
        .args(flags)
        .arg(spec);
    if !cmd.is_empty() {
        c.arg("--").args(cmd);
    }
    c.current_dir(cwd)
        .env("HOST_ONLY_VAR", "from-host")
        .output()
        .unwrap()
}

#[test]
fn a_command_runs_in_the_closure_from_a_working_directory_the_rootfs_lacks() {
    require_tool("bwrap", "bubblewrap");
    let tmp = tempfile::tempdir().unwrap();
    let spec = probe_spec(tmp.path());
    let store = tmp.path().join("store");
    // Three levels the rootfs has no trace of.
    let work = tmp.path().join("a/b/c");
    fs::create_dir_all(&work).unwrap();
    fs::write(work.join("input.txt"), "from the host\n").unwrap();
    let o = shell(
        &store,
        &spec,
        &work,
        &[],
        &["probe", "5", "GREETING", "HOST_ONLY_VAR"],
    );
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains(&format!("cwd={}", work.display())), "{out}");
    assert!(
        out.contains("uid=1001") && out.contains("GREETING=hello"),
        "{out}"
    );
    assert!(out.contains("HOST_ONLY_VAR=from-host"), "{out}");
    assert!(out.contains("write=ok"), "{out}");
    assert_eq!(
        fs::read_to_string(work.join("written-inside.txt")).unwrap(),
        "from inside\n"
    );

    // --pure drops the host's variables; --keep keeps one.
    let o = shell(
        &store,
        &spec,
        &work,
        &["--pure"],
        &["probe", "0", "HOST_ONLY_VAR"],
    );
    assert!(ok(o, "shell --pure").contains("HOST_ONLY_VAR=<unset>"));
    let o = shell(
        &store,
        &spec,
        &work,
        &["--pure", "--keep", "HOST_ONLY_VAR"],
        &["probe", "0", "HOST_ONLY_VAR"],
    );
    assert!(ok(o, "shell --pure --keep").contains("HOST_ONLY_VAR=from-host"));

    // `run` enters the same way.
    let o = run_in_closure(&store, &spec, &work, &["probe", "0"]);
    assert!(ok(o, "run from a/b/c").contains(&format!("cwd={}", work.display())));
}

#[test]
fn a_working_directory_below_a_directory_of_the_rootfs_is_bound_too() {
    require_tool("bwrap", "bubblewrap");
    // Under the target dir (not /tmp, which is always fresh in the sandbox),
    // so the rootfs has a directory on the working directory's path.
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let tmp = tempfile::tempdir_in(base).unwrap();
    let spec = probe_spec(tmp.path());
    let marker = tmp.path().join("marker.txt");
    fs::write(&marker, "in the rootfs\n").unwrap();
    let in_image = tmp.path().join("image-only/marker.txt");
    add_files(&spec, &[(&marker, in_image.to_str().unwrap())]);
    let work = tmp.path().join("work/deeper");
    fs::create_dir_all(&work).unwrap();
    let o = shell(
        &tmp.path().join("store"),
        &spec,
        &work,
        &[],
        &["probe", "0"],
    );
    let out = ok(o, "shell below a rootfs directory");
    assert!(out.contains(&format!("cwd={}", work.display())), "{out}");
    assert!(work.join("written-inside.txt").is_file());
}

#[test]
fn the_second_entry_reuses_the_cached_rootfs() {
    require_tool("bwrap", "bubblewrap");
    let tmp = tempfile::tempdir().unwrap();
    let spec = probe_spec(tmp.path());
    let store = tmp.path().join("store");
    ok(
        shell(&store, &spec, tmp.path(), &[], &["probe", "0"]),
        "first entry",
    );
    let cache = store.join(".envbuild/cache/rootfs");
    let entries = |p: &Path| -> Vec<(PathBuf, u64)> {
        let mut v: Vec<_> = fs::read_dir(p)
            .unwrap()
            // The rootfs, not its writable home copy beside it.
            .filter(|e| {
                !e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".home")
            })
            .map(|e| {
                let e = e.unwrap();
                (e.path(), e.metadata().unwrap().ino())
            })
            .collect();
        v.sort();
        v
    };
    let first = entries(&cache);
    assert_eq!(first.len(), 1, "one rootfs for one closure: {first:?}");
    let started = std::time::Instant::now();
    ok(
        shell(&store, &spec, tmp.path(), &[], &["probe", "0"]),
        "second entry",
    );
    let second = started.elapsed();
    assert_eq!(entries(&cache), first, "the second entry assembled nothing");
    // Its files are the store's own inodes (hardlinks).
    let rootfs = &first[0].0;
    let in_rootfs = fs::metadata(rootfs.join("usr/local/bin/probe")).unwrap();
    assert!(in_rootfs.nlink() >= 2, "hardlinked from the store");
    eprintln!("second entry: {second:?}");
}

#[test]
fn the_hook_runs_first_and_an_interactive_shell_reads_it() {
    require_tool("bwrap", "bubblewrap");
    let tmp = tempfile::tempdir().unwrap();
    let spec = probe_spec(tmp.path());
    add_dash(tmp.path(), &spec);
    append(
        &spec,
        "[shell]\nhook = \"echo hook-ran; FROM_HOOK=yes; export FROM_HOOK\"\n",
    );
    let store = tmp.path().join("store");
    let o = shell(&store, &spec, tmp.path(), &[], &["probe", "0", "FROM_HOOK"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(out.contains("FROM_HOOK=yes"), "{out}");
    assert!(
        !out.contains("hook-ran"),
        "the hook prints to stderr: {out}"
    );
    assert!(err.contains("hook-ran"), "{err}");

    // No command: an interactive sh that read the hook ($ENV).
    let mut child = envbuild()
        .arg("--store")
        .arg(&store)
        .arg("shell")
        .arg(&spec)
        .current_dir(tmp.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo \"in the shell: $FROM_HOOK\"\nexit 3\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stdout(&o).contains("in the shell: yes"), "{}", stdout(&o));
}

#[test]
fn no_shell_in_the_closure_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = hello_example(tmp.path());
    let store = tmp.path().join("store");
    let err = fails(
        shell(&store, &spec, tmp.path(), &[], &[]),
        "shell without sh",
    );
    assert!(
        err.contains("the closure has no shell") && err.contains("bash and sh"),
        "{err}"
    );
    append(&spec, "[shell]\nhook = \"echo hi\"\n");
    let err = fails(
        shell(&store, &spec, tmp.path(), &[], &["hello"]),
        "hook without sh",
    );
    assert!(err.contains("[shell] hook is run by sh"), "{err}");
}

#[test]
fn missing_bwrap_missing_namespaces_and_missing_lock_are_clear_errors() {
    require_tool("bwrap", "bubblewrap");
    let tmp = tempfile::tempdir().unwrap();
    let spec = hello_example(tmp.path());
    let store = tmp.path().join("store");

    // --locked without a lock.
    let o = envbuild()
        .arg("--store")
        .arg(&store)
        .args(["shell", "--locked"])
        .arg(&spec)
        .args(["--", "hello"])
        .output()
        .unwrap();
    let err = fails(o, "shell --locked without a lock");
    assert!(err.contains("hello.lock"), "{err}");

    // No bubblewrap.
    let o = envbuild()
        .arg("--store")
        .arg(&store)
        .arg("shell")
        .arg(&spec)
        .args(["--", "hello"])
        .env("ENVBUILD_BWRAP", tmp.path().join("no-such-bwrap"))
        .output()
        .unwrap();
    let err = fails(o, "shell without bwrap");
    assert!(
        err.contains("cannot start bubblewrap") && err.contains("no-such-bwrap"),
        "{err}"
    );

    // No user namespaces: a user namespace whose limit for nested ones is 0.
    require_tool("unshare", "util-linux");
    let o = Command::new("unshare")
        .args(["--user", "--map-root-user", "sh", "-c"])
        .arg("echo 0 > /proc/sys/user/max_user_namespaces && exec \"$@\"")
        .arg("unshare")
        .arg(env!("CARGO_BIN_EXE_envbuild"))
        .arg("--store")
        .arg(&store)
        .arg("shell")
        .arg(&spec)
        .args(["--", "hello"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("error: bubblewrap (bwrap) could not set up the sandbox")
            && err.contains("user namespaces"),
        "{err}"
    );
    assert!(!stdout(&o).contains("hello from envbuild"));
}
