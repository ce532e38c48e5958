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

/// The hello example plus the host's getent and dash (and their libc).
fn resolver_spec(dir: &Path) -> std::path::PathBuf {
    let spec = hello_example(dir);
    common::shell::add_host_programs(
        dir,
        &spec,
        &[
            ("/usr/bin/getent", "/usr/bin/getent"),
            ("/usr/bin/dash", "/bin/sh"),
        ],
    );
    spec
}

/// Every file under `dir` named `name`.
fn files_named(dir: &Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if e.file_name() == name {
                found.push(e.path());
            }
        }
    }
    found
}

#[test]
fn localhost_and_the_hostname_resolve_under_run_and_shell_without_touching_the_rootfs() {
    require_tool("bwrap", "bubblewrap");
    let tmp = tempfile::tempdir().unwrap();
    let spec = resolver_spec(tmp.path());
    let store = tmp.path().join("store");
    for sub in ["run", "shell"] {
        let o = envbuild()
            .arg("--store")
            .arg(&store)
            .arg(sub)
            .arg(&spec)
            .args(["--", "getent", "ahostsv4", "localhost"])
            .current_dir(tmp.path())
            .output()
            .unwrap();
        let out = ok(o, &format!("{sub} getent ahostsv4 localhost"));
        // What Python's socket.gethostbyname('localhost') returns.
        assert!(out.starts_with("127.0.0.1 "), "{sub}: {out}");
    }
    // The sandbox's hostname is the spec's name, on the loopback.
    let o = run_in_closure(&store, &spec, tmp.path(), &["getent", "hosts", "hello"]);
    let out = ok(o, "getent hosts hello");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["127.0.1.1", "hello"]
    );
    let o = run_in_closure(
        &store,
        &spec,
        tmp.path(),
        &[
            "sh",
            "-c",
            "read h < /proc/sys/kernel/hostname; echo \"$h\"",
        ],
    );
    assert_eq!(ok(o, "hostname").trim(), "hello");
    // The host's resolv.conf is copied in; the files are bound, not
    // written into the store or the cached rootfs.
    if let Ok(host) = fs::read_to_string("/etc/resolv.conf") {
        let o = run_in_closure(
            &store,
            &spec,
            tmp.path(),
            &[
                "sh",
                "-c",
                "while IFS= read -r l; do echo \"$l\"; done < /etc/resolv.conf",
            ],
        );
        let inside = ok(o, "read /etc/resolv.conf");
        assert_eq!(
            inside.lines().collect::<Vec<_>>(),
            host.lines().collect::<Vec<_>>()
        );
    }
    for name in ["hosts", "resolv.conf", "nsswitch.conf"] {
        assert_eq!(
            files_named(tmp.path(), name),
            Vec::<std::path::PathBuf>::new()
        );
    }
}

#[test]
fn run_with_gpus_binds_the_device_nodes_and_driver_libraries() {
    require_tool("bwrap", "bubblewrap");
    let tmp = tempfile::tempdir().unwrap();
    let spec = resolver_spec(tmp.path());
    let store = tmp.path().join("store");
    let dev = tmp.path().join("fake-dev");
    let driver = tmp.path().join("fake-driver");
    fs::create_dir_all(&dev).unwrap();
    fs::create_dir_all(&driver).unwrap();
    // A character device where this user may make one (tests run as root),
    // else a plain file: the bind list is the same.
    let char_dev = Command::new("mknod")
        .arg(dev.join("nvidia0"))
        .args(["c", "195", "0"])
        .status()
        .is_ok_and(|s| s.success());
    if !char_dev {
        fs::write(dev.join("nvidia0"), "").unwrap();
    }
    fs::write(dev.join("nvidiactl"), "").unwrap();
    fs::write(driver.join("libcuda.so.550.54"), "fake libcuda\n").unwrap();
    std::os::unix::fs::symlink("libcuda.so.550.54", driver.join("libcuda.so.1")).unwrap();
    fs::write(driver.join("libunrelated.so.1"), "no\n").unwrap();

    let script = "test -c /dev/nvidia0 && echo nvidia0=char; test -e /dev/nvidiactl && echo nvidiactl=yes; \
                  echo \"ld=$LD_LIBRARY_PATH\"; read l < /usr/local/nvidia/lib64/libcuda.so.1; echo \"libcuda=$l\"; \
                  test -e /usr/local/nvidia/lib64/libunrelated.so.1 || echo unrelated=absent";
    let gpu_run = |extra: &[&str]| {
        envbuild()
            .arg("--store")
            .arg(&store)
            .arg("run")
            .args(extra)
            .arg(&spec)
            .args(["--", "sh", "-c", script])
            .current_dir(tmp.path())
            .env("ENVBUILD_GPU_DEV_DIR", &dev)
            .env("ENVBUILD_GPU_LIB_DIRS", &driver)
            .output()
            .unwrap()
    };
    let has = |out: &str, line: &str| out.lines().any(|l| l == line);
    let out = ok(gpu_run(&["--gpus"]), "run --gpus");
    if char_dev {
        assert!(has(&out, "nvidia0=char"), "{out}");
    }
    assert!(has(&out, "nvidiactl=yes"), "{out}");
    assert!(has(&out, "ld=/usr/local/nvidia/lib64"), "{out}");
    assert!(has(&out, "libcuda=fake libcuda"), "{out}");
    assert!(has(&out, "unrelated=absent"), "{out}");

    // Without --gpus and without NVIDIA_VISIBLE_DEVICES: no GPU.
    let out = ok(gpu_run(&[]), "run without --gpus");
    assert!(!has(&out, "nvidiactl=yes") && has(&out, "ld="), "{out}");

    // The image asks for one: given without --gpus.
    let text = fs::read_to_string(&spec).unwrap().replace(
        "env = { GREETING = \"hello\",",
        "env = { NVIDIA_VISIBLE_DEVICES = \"all\", GREETING = \"hello\",",
    );
    fs::write(&spec, text).unwrap();
    let out = ok(gpu_run(&[]), "run with NVIDIA_VISIBLE_DEVICES");
    assert!(has(&out, "libcuda=fake libcuda"), "{out}");

    // --gpus on a host without a GPU says so.
    let empty = tmp.path().join("empty-dev");
    fs::create_dir_all(&empty).unwrap();
    let o = envbuild()
        .arg("--store")
        .arg(&store)
        .args(["run", "--gpus"])
        .arg(&spec)
        .args(["--", "sh", "-c", "true"])
        .env("ENVBUILD_GPU_DEV_DIR", &empty)
        .output()
        .unwrap();
    let err = fails(o, "run --gpus without a GPU");
    assert!(
        err.contains("expected NVIDIA device nodes") && err.contains("empty-dev"),
        "{err}"
    );
}
