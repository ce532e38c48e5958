//! NETWORKED suite: Debian base from the host's configured archive and
//! wheels from the host's configured package index (pip's configuration or
//! ENVBUILD_INDEX_URL). Ignored by default; run with
//! `cargo test --test networked_python -- --ignored` (.ci/run does).

mod common;

use std::fs;
use std::path::Path;

use common::*;

fn example(dir: &Path) -> std::path::PathBuf {
    let spec = dir.join("python-numpy.toml");
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python-numpy.toml"),
        &spec,
    )
    .unwrap();
    spec
}

#[test]
#[ignore = "networked: reaches the Debian archive and the package index"]
fn networked_python_numpy_example_runs_in_the_closure_and_in_docker_and_reproduces() {
    require_tool("bwrap", "bubblewrap");
    let tmp = tempfile::tempdir().unwrap();
    let spec = example(tmp.path());
    let store = tmp.path().join("store");
    let d1 = realize(&store, &spec, &tmp.path().join("a.tar"), &[]);
    let lock_file = fs::read_to_string(tmp.path().join("python-numpy.lock")).unwrap();
    let lock = common::lock_as_v1(&lock_file);
    for w in [
        "pypi:numpy-1.24.4-cp311-cp311-manylinux",
        "pypi:pillow-10.2.0-cp311-cp311-manylinux",
        "pypi:tqdm-4.66.1-py3-none-any.whl",
    ] {
        assert!(lock.contains(w), "{w} not in the lock:\n{lock}");
    }
    assert!(
        !lock_file.contains("://"),
        "the lock holds no host names:\n{lock}"
    );

    let cmd = [
        "python3",
        "-c",
        "import numpy, PIL, tqdm; print(numpy.__version__)",
    ];
    let o = run_in_closure(&store, &spec, tmp.path(), &cmd);
    assert_eq!(ok(o, "run python3"), "1.24.4");

    // Bytecode: the modules were compiled at install (by Debian's python3.11
    // in the sandbox), so importing loads the pycs and writes none; the
    // standard library's too (Debian's py3compile is a maintainer script,
    // so the debian-bytecode step does its work).
    let o = run_in_closure(
        &store,
        &spec,
        tmp.path(),
        &[
            "python3",
            "-v",
            "-c",
            "import numpy, tqdm, json, email.parser",
        ],
    );
    let log = String::from_utf8_lossy(&o.stderr).into_owned();
    ok(o, "run python3 -v");
    let site = "/usr/local/lib/python3.11/dist-packages";
    for module in ["numpy/__pycache__/__init__", "tqdm/__pycache__/__init__"] {
        let pyc = format!("# code object from '{site}/{module}.cpython-311.pyc'");
        assert!(log.contains(&pyc), "{pyc} not in:\n{log}");
    }
    for module in ["json/__pycache__/__init__", "email/__pycache__/parser"] {
        let pyc = format!("# code object from '/usr/lib/python3.11/{module}.cpython-311.pyc'");
        assert!(log.contains(&pyc), "{pyc} not in:\n{log}");
    }
    assert!(
        !log.contains("# could not create"),
        "a pyc was missing:\n{log}"
    );

    let d2 = realize(
        &tmp.path().join("store2"),
        &spec,
        &tmp.path().join("b.tar"),
        &["--locked"],
    );
    assert_eq!(d1, d2, "two stores, one lock: one digest");

    // The lock names no host: a loopback mirror holding copies of the
    // locked files (a Debian pool and a PEP 691 index) gives the same digest.
    let server = common::mirror::loopback_mirror(&store, &lock);
    let o = envbuild()
        .arg("--store")
        .arg(tmp.path().join("store3"))
        .arg("realize")
        .arg(&spec)
        .arg("-o")
        .arg(tmp.path().join("c.tar"))
        .arg("--locked")
        .env("ENVBUILD_DEBIAN_MIRROR", format!("{}/debian", server.base))
        .env("ENVBUILD_INDEX_URL", format!("{}/simple", server.base))
        .output()
        .unwrap();
    let d3 = ok(o, "realize from the loopback mirror")
        .lines()
        .last()
        .unwrap()
        .to_string();
    assert_eq!(d1, d3, "same digest from a loopback mirror");
    let log = server.log.lock().unwrap();
    let served = log
        .requests
        .keys()
        .filter(|k| k.starts_with("/debian/pool/") || k.starts_with("/files/"))
        .count();
    let locked = lock.matches("id = \"deb:").count() + lock.matches("id = \"pypi:").count();
    assert_eq!(
        served, locked,
        "every locked file came from the loopback mirror: {:?}",
        log.requests
    );

    if let Some(out) = docker_load_and_run(&tmp.path().join("a.tar"), "python-numpy:latest") {
        assert_eq!(out, "1.24.4");
    }
}

#[test]
#[ignore = "networked: reaches the package index"]
fn networked_python_nonexistent_pin_names_the_nearest_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = example(tmp.path());
    let text = fs::read_to_string(&spec)
        .unwrap()
        .replace("numpy==1.24.4", "numpy==1.24.99");
    fs::write(&spec, text).unwrap();
    let err = fails(
        run(&tmp.path().join("store"), &[&"lock", &spec]),
        "nonexistent pin",
    );
    assert!(
        err.contains("numpy") && err.contains("1.24.99") && err.contains("1.24.4"),
        "{err}"
    );
}

/// A bookworm python3.11 base plus `requirements` (and an index, if given).
fn sdist_spec(dir: &Path, requirements: &str, index: Option<&str>) -> std::path::PathBuf {
    let spec = dir.join("sdists.toml");
    let index = index
        .map(|i| format!("index = \"{i}\"\n"))
        .unwrap_or_default();
    fs::write(
        &spec,
        format!(
            r#"[env]
name = "sdists"
system = "x86_64-linux"
source-date-epoch = 1700000000

[base]
debian = {{ suite = "bookworm", packages = ["python3.11", "python3"] }}

[python]
requirements = [{requirements}]
site-packages = "/usr/local/lib/python3.11/dist-packages"
shebang = "/usr/bin/python3"
{index}"#
        ),
    )
    .unwrap();
    spec
}

/// sha256 of the wheel built from `sdist` in `store`.
fn built_wheel_sha(store: &Path, sdist: &str) -> String {
    use sha2::Digest;
    let dir = fs::read_dir(store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .ends_with(&format!("-{sdist}-built"))
        })
        .unwrap_or_else(|| panic!("no build of {sdist} in {}", store.display()));
    let wheel = fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
    hex::encode(sha2::Sha256::digest(fs::read(wheel).unwrap()))
}

#[test]
#[ignore = "networked: reaches the Debian archive and the package index"]
fn networked_python_numpy_shell_matches_docker_and_checks_pass() {
    require_tool("bwrap", "bubblewrap");
    let tmp = tempfile::tempdir().unwrap();
    let spec = example(tmp.path());
    let store = tmp.path().join("store");
    let tar = tmp.path().join("a.tar");
    let report = realize_json(&store, &spec, &tar);
    let shell = |flags: &[&str], cmd: &[&str]| {
        envbuild()
            .arg("--store")
            .arg(&store)
            .arg("shell")
            .args(flags)
            .arg(&spec)
            .arg("--")
            .args(cmd)
            .current_dir(tmp.path())
            .output()
            .unwrap()
    };

    // 1. The same interpreter and numpy as the image.
    let probe = [
        "python3",
        "-c",
        "import numpy, sys; print(numpy.__file__, sys.version)",
    ];
    let in_shell = shell(&["--pure"], &probe);
    assert!(in_shell.status.success(), "{}", stderr(&in_shell));
    let in_shell = stdout(&in_shell).trim().to_string();
    assert!(
        in_shell.starts_with("/usr/local/lib/python3.11/dist-packages/numpy/__init__.py 3.11."),
        "{in_shell}"
    );
    if let Some(in_docker) = docker_run(&tar, "python-numpy:latest", &probe) {
        assert_eq!(
            in_shell, in_docker,
            "shell --pure and docker run print the same"
        );
    }

    // The host's Python is not reachable inside --pure.
    let host_python = std::process::Command::new("sh")
        .args(["-c", "command -v python3 || true"])
        .output()
        .unwrap();
    let host_python = String::from_utf8_lossy(&host_python.stdout)
        .trim()
        .to_string();
    let o = shell(
        &["--pure"],
        &[
            "python3",
            "-c",
            &format!(
                "import os, sys, shutil; print(sys.executable, shutil.which('python3'), os.path.exists({host_python:?}) and {host_python:?} != '/usr/bin/python3')"
            ),
        ],
    );
    assert_eq!(
        ok(o, "which python3"),
        "/usr/bin/python3 /usr/bin/python3 False",
        "host python at {host_python:?}"
    );

    // Files in the working directory are visible and writable.
    fs::write(tmp.path().join("in.txt"), "from the host").unwrap();
    let o = shell(
        &["--pure"],
        &[
            "python3",
            "-c",
            "print(open('in.txt').read()); open('out.txt', 'w').write('from the shell')",
        ],
    );
    assert_eq!(ok(o, "read and write the cwd"), "from the host");
    assert_eq!(
        fs::read_to_string(tmp.path().join("out.txt")).unwrap(),
        "from the shell"
    );

    // 2. The shell's closure is the image's component list.
    let image: Vec<String> = report["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap().to_string())
        .collect();
    let o = run(&store, &[&"closure", &"--shell", &spec]);
    let listing: Vec<String> = ok(o, "closure --shell")
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(listing, image);

    // 4. The example's checks pass (with the dist-info check: 3 wheels).
    let o = run(&store, &[&"check", &"--locked", &spec]);
    let out = ok(o, "check");
    assert!(
        out.contains("PASS installed distributions match the lock: 3 distributions"),
        "{out}"
    );
    assert!(
        out.contains("PASS imports succeed") && out.contains("PASS numpy computes"),
        "{out}"
    );
    assert!(!out.contains("FAIL"), "{out}");
}

/// A pylock.toml that uv writes is installed as it says; exported again, uv
/// accepts envbuild's pylock and would install the same versions.
#[test]
#[ignore = "networked: reaches the package index; needs uv"]
fn networked_python_imports_a_uv_pylock_and_uv_reads_the_export() {
    require_tool("uv", "uv (pip install uv)");
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    fs::write(
        tmp.path().join("req.in"),
        "tqdm==4.66.1\nsix==1.16.0\ncolorama==0.4.6 ; sys_platform == \"win32\"\n",
    )
    .unwrap();
    let o = std::process::Command::new("uv")
        .current_dir(tmp.path())
        .args([
            "pip",
            "compile",
            "req.in",
            "--format",
            "pylock.toml",
            "--python-version",
            "3.11",
            "--python-platform",
            "x86_64-manylinux_2_28",
            "--exclude-newer",
            "2024-06-01T00:00:00Z",
            "-q",
            "-o",
            "pylock.toml",
        ])
        .output()
        .unwrap();
    ok(o, "uv pip compile --format pylock.toml");
    let spec = tmp.path().join("env.toml");
    fs::write(
        &spec,
        "[env]\nname = \"uvlock\"\nsystem = \"x86_64-linux\"\nsource-date-epoch = 1700000000\n\n[python]\nlock = \"pylock.toml\"\n",
    )
    .unwrap();
    let out = ok(run(&store, &[&"closure", &spec]), "closure of uv's pylock");
    let lock_file = fs::read_to_string(spec.with_extension("lock")).unwrap();
    let lock = common::lock_as_v1(&lock_file);
    assert!(
        lock.contains("id = \"pypi:tqdm-4.66.1-py3-none-any.whl\""),
        "{lock}"
    );
    assert!(
        lock.contains("id = \"pypi:six-1.16.0-py2.py3-none-any.whl\""),
        "{lock}"
    );
    assert!(!lock.contains("colorama"), "{lock}");
    assert!(
        out.lines()
            .any(|l| l.ends_with("-tqdm-4.66.1-py3-none-any")),
        "{out}"
    );

    let exported = tmp.path().join("pylock.envbuild.toml");
    ok(
        run(&store, &[&"export", &"pylock", &spec, &"-o", &exported]),
        "export pylock",
    );
    let o = std::process::Command::new("uv")
        .current_dir(tmp.path())
        .args([
            "pip",
            "install",
            "--dry-run",
            "--python-version",
            "3.11",
            "--python-platform",
            "x86_64-manylinux_2_28",
            "--target",
        ])
        .arg(tmp.path().join("target"))
        .arg("-r")
        .arg(&exported)
        .output()
        .unwrap();
    let said = format!("{}{}", stdout(&o), stderr(&o));
    assert!(o.status.success(), "uv refused the export: {said}");
    assert!(
        said.contains("tqdm==4.66.1") && said.contains("six==1.16.0"),
        "{said}"
    );
}

#[test]
#[ignore = "networked: reaches the Debian archive and the package index"]
fn networked_python_sdists_build_in_the_sandbox_to_the_same_wheel_twice() {
    require_tool("bwrap", "bubblewrap");
    let tmp = tempfile::tempdir().unwrap();
    let spec = sdist_spec(tmp.path(), "\"crcmod==1.7\", \"oss2\"", None);
    let store1 = tmp.path().join("store1");
    let store2 = tmp.path().join("store2");
    let d1 = realize(&store1, &spec, &tmp.path().join("a.tar"), &[]);
    let lock_file = fs::read_to_string(tmp.path().join("sdists.lock")).unwrap();
    let lock = common::lock_as_v1(&lock_file);
    for id in [
        "id = \"sdist:crcmod-1.7.tar.gz\"",
        "id = \"sdist:oss2-",
        "id = \"build:crcmod-1.7.tar.gz:setuptools-",
        "id = \"build:crcmod-1.7.tar.gz:wheel-",
    ] {
        assert!(lock.contains(id), "{id} not in the lock:\n{lock}");
    }
    assert!(!lock_file.contains("://"), "the lock holds no host names");
    let d2 = realize(&store2, &spec, &tmp.path().join("b.tar"), &["--locked"]);
    let oss2 = lock
        .lines()
        .find_map(|l| l.strip_prefix("id = \"sdist:oss2-"))
        .map(|rest| format!("oss2-{}", rest.trim_end_matches('"')))
        .unwrap();
    for sdist in ["crcmod-1.7.tar.gz", oss2.as_str()] {
        assert_eq!(
            built_wheel_sha(&store1, sdist),
            built_wheel_sha(&store2, sdist),
            "{sdist} built twice gives the same wheel"
        );
    }
    assert_eq!(d1, d2, "two stores, one lock: one digest");
    let o = run_in_closure(
        &store1,
        &spec,
        tmp.path(),
        &[
            "python3",
            "-c",
            "import crcmod, oss2; print(oss2.__version__)",
        ],
    );
    let v = ok(o, "import crcmod, oss2");
    assert!(oss2.contains(&v), "{v} vs {oss2}");
}

#[test]
#[ignore = "networked: reaches the Debian archive"]
fn networked_python_a_failing_sdist_build_names_the_sdist_and_shows_the_log() {
    use common::http::Behaviour;
    use sha2::Digest;
    require_tool("bwrap", "bubblewrap");
    // An sdist with an in-tree backend (no build requirements) that fails.
    let mut tb = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    for (path, text) in [
        (
            "PKG-INFO",
            "Metadata-Version: 2.2\nName: failing\nVersion: 1.0\n",
        ),
        (
            "pyproject.toml",
            "[build-system]\nrequires = []\nbuild-backend = \"failbackend\"\nbackend-path = [\".\"]\n",
        ),
        (
            "failbackend.py",
            "def build_wheel(out, config=None, metadata=None):\n    print('compiling step 1 of 2', flush=True)\n    raise RuntimeError('boom: this build fails on purpose')\n",
        ),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tb.append_data(&mut h, format!("failing-1.0/{path}"), text.as_bytes())
            .unwrap();
    }
    let bytes = tb.into_inner().unwrap().finish().unwrap();
    let sha = hex::encode(sha2::Sha256::digest(&bytes));
    let page = serde_json::json!({"meta": {"api-version": "1.0"}, "name": "failing", "files": [
        {"filename": "failing-1.0.tar.gz", "url": "/files/failing-1.0.tar.gz",
         "hashes": {"sha256": sha}, "size": bytes.len()}]});
    let server = common::http::serve(vec![
        (
            "/simple/failing/".to_string(),
            Behaviour::Serve(page.to_string().into_bytes()),
        ),
        (
            "/files/failing-1.0.tar.gz".to_string(),
            Behaviour::Serve(bytes),
        ),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let index = format!("{}/simple/", server.base);
    let spec = sdist_spec(tmp.path(), "\"failing==1.0\"", Some(&index));
    let err = fails(
        run(
            &tmp.path().join("store"),
            &[&"realize", &spec, &"-o", &tmp.path().join("x.tar")],
        ),
        "a failing sdist build",
    );
    assert!(
        err.contains("failing-1.0.tar.gz")
            && err.contains("compiling step 1 of 2")
            && err.contains("boom: this build fails on purpose")
            && err.contains("last lines of the build log"),
        "{err}"
    );
}
