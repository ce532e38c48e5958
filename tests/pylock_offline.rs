//! `[python] lock`: PEP 751 pylock.toml and hash-checked requirements.txt
//! imports, and `envbuild export pylock`, against a loopback file server and
//! PEP 691 index serving wheels the tests build themselves.

mod common;

use std::fs;
use std::path::Path;

use common::index::{index, sha, wheel, Wheel};
use common::*;

fn spec(dir: &Path, python: &str) -> std::path::PathBuf {
    let p = dir.join("env.toml");
    fs::write(
        &p,
        format!(
            "[env]\nname = \"pyl\"\nsystem = \"x86_64-linux\"\nsource-date-epoch = 1700000000\n\n[python]\n{python}"
        ),
    )
    .unwrap();
    p
}

fn lock_inputs(spec: &Path) -> Vec<(String, String, String)> {
    let lock = envbuild::lock::Lock::read(&spec.with_extension("lock"))
        .unwrap()
        .unwrap();
    envbuild::lock::v1::inputs(&lock)
        .into_iter()
        .map(|(id, source, hash, _)| (id, source, hash))
        .collect()
}

fn pypi_inputs(spec: &Path) -> Vec<(String, String, String)> {
    lock_inputs(spec)
        .into_iter()
        .filter(|(id, _, _)| id.starts_with("pypi:"))
        .collect()
}

/// The installed `WHICH` of a package in the closure's components.
fn installed(closure_out: &str, package: &str) -> Option<String> {
    for item in closure_out.lines() {
        let f = Path::new(item).join(format!(
            "usr/local/lib/python3.11/site-packages/{package}/__init__.py"
        ));
        if let Ok(t) = fs::read_to_string(f) {
            return Some(t);
        }
    }
    None
}

#[test]
fn pylock_installs_exactly_what_it_says_for_the_target() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let alpha = wheel("alpha", "1.0", "py3-none-any", "alpha");
    let beta_best = wheel("beta", "2.0", "cp311-cp311-manylinux_2_17_x86_64", "best");
    let beta_any = wheel("beta", "2.0", "py3-none-any", "any");
    let beta_mac = wheel("beta", "2.0", "cp311-cp311-macosx_11_0_arm64", "mac");
    let gamma = wheel("gamma", "3.0", "py3-none-any", "gamma");
    let delta = wheel("delta", "4.0", "py3-none-any", "delta");
    let server = index(&[&alpha, &beta_best, &beta_any, &beta_mac]);
    fs::create_dir(tmp.path().join("local")).unwrap();
    fs::write(tmp.path().join("local").join(&delta.filename), &delta.data).unwrap();
    let entry = |w: &Wheel, loc: String| {
        format!(
            "{{ {loc}, upload-time = 2024-01-01T00:00:00Z, size = {}, hashes = {{ sha256 = \"{}\" }} }}",
            w.data.len(),
            sha(&w.data)
        )
    };
    let url = |w: &Wheel| format!("url = \"{}/files/{}\"", server.base, w.filename);
    let pylock = format!(
        r#"lock-version = "1.0"
created-by = "a test"
requires-python = ">=3.9"
environments = ["sys_platform == 'linux'"]

[[packages]]
name = "alpha"
version = "1.0"
wheels = [{}]

[[packages]]
name = "Beta"
version = "2.0"
marker = "python_version >= '3.8'"
wheels = [{}, {}, {}]

[[packages]]
name = "gamma"
version = "3.0"
marker = "sys_platform == 'win32'"
wheels = [{}]

[[packages]]
name = "delta"
version = "4.0"
wheels = [{}]

[tool.other]
anything = 1
"#,
        entry(&alpha, url(&alpha)),
        entry(&beta_any, url(&beta_any)),
        entry(&beta_mac, url(&beta_mac)),
        entry(&beta_best, url(&beta_best)),
        // Not served at all: a marker false for the target keeps it out.
        entry(
            &gamma,
            format!("url = \"{}/files/missing.whl\"", server.base)
        ),
        entry(&delta, format!("path = \"local/{}\"", delta.filename)),
    );
    fs::write(tmp.path().join("pylock.toml"), &pylock).unwrap();
    let spec = spec(tmp.path(), "lock = \"pylock.toml\"\n");
    let out = ok(run(&store, &[&"closure", &spec]), "closure");
    let pins = pypi_inputs(&spec);
    let names: Vec<&str> = pins.iter().map(|(_, s, _)| s.as_str()).collect();
    assert_eq!(
        names,
        [
            alpha.filename.as_str(),
            beta_best.filename.as_str(),
            delta.filename.as_str()
        ]
    );
    assert_eq!(pins[1].2, format!("sha256:{}", sha(&beta_best.data)));
    let request = lock_inputs(&spec)
        .into_iter()
        .find(|(id, _, _)| id == "python:request")
        .unwrap();
    assert!(
        request.1.contains("lock pylock.toml sha256:")
            && request.1.contains(&sha(pylock.as_bytes())),
        "{request:?}"
    );
    assert_eq!(
        installed(&out, "beta").as_deref(),
        Some("WHICH = \"best\"\n")
    );
    assert_eq!(
        installed(&out, "delta").as_deref(),
        Some("WHICH = \"delta\"\n")
    );
    assert_eq!(installed(&out, "gamma"), None);

    // A no-op: offline, nothing fetched again.
    let before = server.log.lock().unwrap().requests.clone();
    let again = ok(
        run(&store, &[&"closure", &"--offline", &"--locked", &spec]),
        "no-op",
    );
    assert_eq!(again, out);
    assert_eq!(server.log.lock().unwrap().requests, before);

    // A changed pylock pins again (--locked refuses, naming the request).
    let changed = pylock.replace(
        "[[packages]]\nname = \"alpha\"\nversion = \"1.0\"\n",
        "[[packages]]\nname = \"alpha\"\nversion = \"1.0\"\nmarker = \"os_name == 'nt'\"\n",
    );
    fs::write(tmp.path().join("pylock.toml"), &changed).unwrap();
    let err = fails(run(&store, &[&"closure", &"--locked", &spec]), "--locked");
    assert!(err.contains("python request"), "{err}");
    ok(run(&store, &[&"closure", &spec]), "re-pin");
    let names: Vec<String> = pypi_inputs(&spec).into_iter().map(|(_, s, _)| s).collect();
    assert_eq!(names, [beta_best.filename.clone(), delta.filename.clone()]);
}

#[test]
fn pylock_refusals_name_the_package_and_what_was_found() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let spec = spec(tmp.path(), "lock = \"pylock.toml\"\n");
    let write = |s: &str| fs::write(tmp.path().join("pylock.toml"), s).unwrap();
    let h = "a".repeat(64);

    write(&format!(
        "lock-version = \"1.0\"\n[[packages]]\nname = \"oss2\"\nversion = \"2.19.1\"\nsdist = {{ url = \"http://127.0.0.1:9/oss2-2.19.1.tar.gz\", hashes = {{ sha256 = \"{h}\" }} }}\n"
    ));
    let err = fails(run(&store, &[&"lock", &spec]), "sdist only");
    assert!(err.contains("oss2") && err.contains("an sdist"), "{err}");

    write(&format!(
        "lock-version = \"1.0\"\n[[packages]]\nname = \"mac\"\nwheels = [{{ url = \"http://127.0.0.1:9/mac-1.0-cp311-cp311-macosx_11_0_arm64.whl\", hashes = {{ sha256 = \"{h}\" }} }}]\n"
    ));
    let err = fails(run(&store, &[&"lock", &spec]), "other platform");
    assert!(
        err.contains("mac") && err.contains("mac-1.0-cp311-cp311-macosx_11_0_arm64.whl"),
        "{err}"
    );

    write("lock-version = \"1.0\"\n[[packages]]\nname = \"nohash\"\nwheels = [{ url = \"http://127.0.0.1:9/nohash-1.0-py3-none-any.whl\", hashes = { md5 = \"00\" } }]\n");
    let err = fails(run(&store, &[&"lock", &spec]), "no sha256");
    assert!(
        err.contains("nohash") && err.contains("sha256") && err.contains("md5"),
        "{err}"
    );

    // A wheel named but with nowhere to fetch it from (found by fuzzing:
    // this was an internal error).
    write(&format!("lock-version = \"1.0\"\n[[packages]]\nname = \"nowhere\"\nwheels = [{{ name = \"nowhere-1.0-py3-none-any.whl\", hashes = {{ sha256 = \"{h}\" }} }}]\n"));
    let err = fails(run(&store, &[&"lock", &spec]), "no url or path");
    assert!(
        err.contains("nowhere-1.0-py3-none-any.whl") && err.contains("neither url nor path"),
        "{err}"
    );

    write("lock-version = \"2.0\"\n");
    let err = fails(run(&store, &[&"lock", &spec]), "version 2");
    assert!(err.contains("lock-version \"2.0\""), "{err}");

    write("lock-version = \"1.0\"\nrequires-python = \">=3.12\"\n");
    let err = fails(run(&store, &[&"lock", &spec]), "requires-python");
    assert!(err.contains(">=3.12") && err.contains("3.11"), "{err}");

    // A wrong hash: the fetched bytes are refused.
    let w = wheel("alpha", "1.0", "py3-none-any", "alpha");
    let server = index(&[&w]);
    write(&format!(
        "lock-version = \"1.0\"\n[[packages]]\nname = \"alpha\"\nwheels = [{{ url = \"{}/files/{}\", hashes = {{ sha256 = \"{h}\" }} }}]\n",
        server.base, w.filename
    ));
    let err = fails(run(&store, &[&"closure", &spec]), "hash mismatch");
    assert!(err.contains(&h) && err.contains(&sha(&w.data)), "{err}");

    // lock and requirements together: a spec error at the lock key.
    let both = tmp.path().join("both.toml");
    fs::write(
        &both,
        "[env]\nname = \"b\"\nsystem = \"x86_64-linux\"\n[python]\nrequirements = [\"numpy==1.24.4\"]\nlock = \"pylock.toml\"\n",
    )
    .unwrap();
    let err = fails(run(&store, &[&"lock", &both]), "both");
    assert!(
        err.contains("python.lock and python.requirements exclude each other")
            && err.contains(":6:"),
        "{err}"
    );
}

#[test]
fn requirements_txt_with_hashes_is_found_through_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let alpha = wheel("alpha", "1.0", "py3-none-any", "alpha");
    let beta_best = wheel("beta", "2.0", "cp311-cp311-manylinux_2_17_x86_64", "best");
    let beta_any = wheel("beta", "2.0", "py3-none-any", "any");
    let server = index(&[&alpha, &beta_best, &beta_any]);
    // beta lists only the py3 wheel's hash: that one is chosen although the
    // index has a better fit.
    let req = format!(
        "# hash-checked\n--index-url {}/simple/\nalpha==1.0 \\\n    --hash=sha256:{} \\\n    --hash=sha256:{}\n\
         Beta==2.0 ; python_version >= \"3.8\" \\\n    --hash=sha256:{}  # the portable one\n\
         winonly==1.0 ; sys_platform == \"win32\" --hash=sha256:{}\n",
        server.base,
        "0".repeat(64),
        sha(&alpha.data),
        sha(&beta_any.data),
        "1".repeat(64),
    );
    fs::write(tmp.path().join("requirements.txt"), &req).unwrap();
    let spec = spec(tmp.path(), "lock = \"requirements.txt\"\n");
    let out = ok(run(&store, &[&"closure", &spec]), "closure");
    let names: Vec<String> = pypi_inputs(&spec).into_iter().map(|(_, s, _)| s).collect();
    assert_eq!(names, [alpha.filename.clone(), beta_any.filename.clone()]);
    assert_eq!(
        installed(&out, "beta").as_deref(),
        Some("WHICH = \"any\"\n")
    );
    // The no-op asks nothing of the index.
    let before = server.log.lock().unwrap().requests.clone();
    ok(run(&store, &[&"closure", &"--offline", &spec]), "no-op");
    assert_eq!(server.log.lock().unwrap().requests, before);

    // Not pinned, no hash, unknown hash: errors naming the line.
    for (text, needle) in [
        (
            format!(
                "--index-url {}/simple/\nalpha>=1.0 --hash=sha256:{}\n",
                server.base,
                sha(&alpha.data)
            ),
            ":2: \"alpha>=1.0",
        ),
        (
            format!("--index-url {}/simple/\n\nalpha==1.0\n", server.base),
            ":3: \"alpha==1.0\"",
        ),
        (
            format!(
                "--index-url {}/simple/\nalpha==1.0 --hash=sha256:{}\n",
                server.base,
                "2".repeat(64)
            ),
            "no wheel of alpha==1.0",
        ),
        ("-r other.txt\n".to_string(), ":1: \"-r other.txt\""),
    ] {
        fs::write(tmp.path().join("requirements.txt"), &text).unwrap();
        let err = fails(run(&store, &[&"lock", &spec]), needle);
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

#[test]
fn requirements_txt_looks_in_find_links_then_the_index_then_extra_indexes() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let alpha = wheel("alpha", "1.0", "py3-none-any", "alpha");
    let beta = wheel("beta", "2.0", "py3-none-any", "beta");
    let gamma = wheel("gamma", "3.0", "py3-none-any", "local gamma");
    // Fits the target better but its hash is not listed: passed over.
    let gamma_decoy = wheel("gamma", "3.0", "cp311-cp311-manylinux_2_17_x86_64", "decoy");
    let main = index(&[&alpha]);
    let extra = index(&[&beta]);
    let dir = tmp.path().join("wheels");
    fs::create_dir(&dir).unwrap();
    for w in [&gamma, &gamma_decoy] {
        fs::write(dir.join(&w.filename), &w.data).unwrap();
    }
    let req = format!(
        "--index-url {}/simple/\n--extra-index-url={}/simple/\n--find-links wheels\n\
         alpha==1.0 --hash=sha256:{}\nbeta==2.0 --hash=sha256:{}\ngamma==3.0 --hash=sha256:{}\n",
        main.base,
        extra.base,
        sha(&alpha.data),
        sha(&beta.data),
        sha(&gamma.data),
    );
    fs::write(tmp.path().join("requirements.txt"), &req).unwrap();
    let spec = spec(tmp.path(), "lock = \"requirements.txt\"\n");
    let out = ok(run(&store, &[&"closure", &spec]), "closure");
    let names: Vec<String> = pypi_inputs(&spec).into_iter().map(|(_, s, _)| s).collect();
    assert_eq!(
        names,
        [
            alpha.filename.clone(),
            beta.filename.clone(),
            gamma.filename.clone()
        ]
    );
    for (package, marker) in [
        ("alpha", "alpha"),
        ("beta", "beta"),
        ("gamma", "local gamma"),
    ] {
        assert_eq!(
            installed(&out, package),
            Some(format!("WHICH = \"{marker}\"\n")),
            "{package}"
        );
    }
    // The local wheel was read in place, not copied into the store.
    let items: Vec<String> = fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !items.iter().any(|n| n.ends_with(&gamma.filename)),
        "{items:?}"
    );
    // Only the extra index was asked for beta; nobody for gamma.
    let main_log = main.log.lock().unwrap().requests.clone();
    assert!(
        main_log.keys().all(|k| !k.contains("gamma")),
        "{main_log:?}"
    );
    let extra_log = extra.log.lock().unwrap().requests.clone();
    assert!(
        extra_log.keys().any(|k| k.contains("beta")),
        "{extra_log:?}"
    );
    assert!(
        extra_log.keys().all(|k| !k.contains("alpha")),
        "{extra_log:?}"
    );
    // The no-op asks neither index: fetched pins are in the store, the
    // local one is still in its directory.
    let before = (main_log.clone(), extra_log.clone());
    ok(run(&store, &[&"closure", &"--offline", &spec]), "no-op");
    assert_eq!(main.log.lock().unwrap().requests, before.0);
    assert_eq!(extra.log.lock().unwrap().requests, before.1);

    // Found nowhere: every place asked is named.
    let missing = format!(
        "--index-url {}/simple/\n--extra-index-url {}/simple/\n-f wheels\ndelta==1.0 --hash=sha256:{}\n",
        main.base,
        extra.base,
        "3".repeat(64)
    );
    fs::write(tmp.path().join("requirements.txt"), &missing).unwrap();
    let err = fails(run(&store, &[&"lock", &spec]), "missing everywhere");
    for place in [
        dir.display().to_string(),
        main.base.clone(),
        extra.base.clone(),
    ] {
        assert!(err.contains(&place), "{place}: {err}");
    }
    // A find-links page on a server is refused, naming the line.
    let remote = format!(
        "--find-links {}/links/\nalpha==1.0 --hash=sha256:{}\n",
        main.base,
        sha(&alpha.data)
    );
    fs::write(tmp.path().join("requirements.txt"), &remote).unwrap();
    let err = fails(run(&store, &[&"lock", &spec]), "remote find-links");
    assert!(
        err.contains(":1:") && err.contains("local directory"),
        "{err}"
    );
}

#[test]
fn export_pylock_round_trips_and_lists_the_pins() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let alpha = wheel("alpha", "1.0", "py3-none-any", "alpha");
    let beta_best = wheel("beta", "2.0", "cp311-cp311-manylinux_2_17_x86_64", "best");
    let beta_any = wheel("beta", "2.0", "py3-none-any", "any");
    let server = index(&[&alpha, &beta_best, &beta_any]);
    let req = format!(
        "--index-url {}/simple/\nalpha==1.0 --hash=sha256:{}\nbeta==2.0 --hash=sha256:{} --hash=sha256:{}\n",
        server.base,
        sha(&alpha.data),
        sha(&beta_any.data),
        sha(&beta_best.data)
    );
    fs::write(tmp.path().join("requirements.txt"), &req).unwrap();
    let spec1 = spec(tmp.path(), "lock = \"requirements.txt\"\n");
    ok(run(&store, &[&"closure", &spec1]), "closure");
    let first = pypi_inputs(&spec1);
    assert_eq!(
        first[1].1, beta_best.filename,
        "the best of the listed hashes"
    );

    let out = tmp.path().join("sub");
    fs::create_dir(&out).unwrap();
    let exported = out.join("pylock.toml");
    let mut c = envbuild();
    c.arg("--store")
        .arg(&store)
        .args(["export", "pylock"])
        .arg(&spec1)
        .arg("-o")
        .arg(&exported)
        .env("ENVBUILD_INDEX_URL", format!("{}/simple/", server.base));
    ok(c.output().unwrap(), "export");
    let text = fs::read_to_string(&exported).unwrap();
    let v: toml::Value = toml::from_str(&text).unwrap();
    assert_eq!(v["lock-version"].as_str(), Some("1.0"));
    assert_eq!(v["created-by"].as_str(), Some("envbuild"));
    assert_eq!(v["requires-python"].as_str(), Some("==3.11.*"));
    let pkgs = v["packages"].as_array().unwrap();
    assert_eq!(pkgs.len(), 2);
    assert_eq!(pkgs[0]["name"].as_str(), Some("alpha"));
    let w = &pkgs[1]["wheels"][0];
    assert_eq!(w["name"].as_str(), Some(beta_best.filename.as_str()));
    assert_eq!(
        w["url"].as_str(),
        Some(format!("{}/files/{}", server.base, beta_best.filename).as_str())
    );
    assert_eq!(w["size"].as_integer(), Some(beta_best.data.len() as i64));
    assert_eq!(
        w["hashes"]["sha256"].as_str(),
        Some(sha(&beta_best.data).as_str())
    );

    // Import the export: the same pins.
    let spec2 = out.join("env.toml");
    fs::write(
        &spec2,
        "[env]\nname = \"pyl\"\nsystem = \"x86_64-linux\"\nsource-date-epoch = 1700000000\n\n[python]\nlock = \"pylock.toml\"\n",
    )
    .unwrap();
    ok(run(&store, &[&"closure", &spec2]), "closure of the export");
    assert_eq!(pypi_inputs(&spec2), first);
}
