//! Hostile and bad input to `realize`: each gets a clear error naming the
//! input, and the store verifies clean afterwards.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::http::{serve, Behaviour};
use common::*;

/// A minimal spec directory: one app file, and `extra` appended to the spec.
fn spec_with(dir: &Path, extra: &str) -> PathBuf {
    write(dir.join("app/hello.txt"), b"hi\n", 0o644);
    let spec = dir.join("bad.toml");
    fs::write(
        &spec,
        format!(
            "[env]\nname = \"bad\"\nsystem = \"x86_64-linux\"\nsource-date-epoch = 1700000000\n\n[[files]]\nsrc = \"app\"\ndst = \"/app\"\n{extra}"
        ),
    )
    .unwrap();
    spec
}

/// Realize must fail; returns stderr, and checks the store.
fn realize_fails(dir: &Path, spec: &Path, what: &str) -> String {
    let store = dir.join("store");
    let out = dir.join("out.tar");
    let o = run(&store, &[&"realize", &spec, &"-o", &out]);
    let err = stderr(&o);
    assert!(!o.status.success(), "{what}: realize succeeded");
    assert!(err.starts_with("error:"), "{what}: {err}");
    assert!(!out.exists(), "{what}: an output was written");
    if store.exists() {
        verify_clean(&store);
        assert!(
            fs::read_dir(store.join(".envbuild/tmp"))
                .unwrap()
                .next()
                .is_none(),
            "{what}: scratch left behind"
        );
    }
    err
}

#[test]
fn unknown_key_is_named_with_its_line() {
    let t = tempfile::tempdir().unwrap();
    let spec = spec_with(t.path(), "\n[image]\ncolour = \"red\"\n");
    let err = realize_fails(t.path(), &spec, "unknown key");
    assert!(err.contains("unknown field `colour`"), "{err}");
    assert!(err.contains("bad.toml:11:1"), "{err}");
}

#[test]
fn wrong_type_is_named_with_its_line() {
    let t = tempfile::tempdir().unwrap();
    let spec = spec_with(t.path(), "\n[image]\nports = \"7860\"\n");
    let err = realize_fails(t.path(), &spec, "wrong type");
    assert!(
        err.contains("invalid type") && err.contains("bad.toml:11:9"),
        "{err}"
    );
}

#[test]
fn unsupported_system_is_refused_by_name() {
    let t = tempfile::tempdir().unwrap();
    let spec = spec_with(t.path(), "");
    let text = fs::read_to_string(&spec)
        .unwrap()
        .replace("x86_64-linux", "aarch64-linux");
    fs::write(&spec, text).unwrap();
    let err = realize_fails(t.path(), &spec, "system");
    assert!(
        err.contains("\"aarch64-linux\" is not supported") && err.contains("x86_64-linux"),
        "{err}"
    );
}

#[test]
fn missing_src_is_named() {
    let t = tempfile::tempdir().unwrap();
    let spec = spec_with(
        t.path(),
        "\n[[files]]\nsrc = \"nowhere/x.txt\"\ndst = \"/x.txt\"\n",
    );
    let err = realize_fails(t.path(), &spec, "missing src");
    assert!(
        err.contains("\"nowhere/x.txt\" does not exist") && err.contains("bad.toml:11"),
        "{err}"
    );
}

#[test]
fn relative_and_dotdot_destinations_are_refused() {
    for dst in ["relative/path", "/app/../etc", "/a/./b"] {
        let t = tempfile::tempdir().unwrap();
        let spec = spec_with(
            t.path(),
            &format!("\n[[files]]\nsrc = \"app\"\ndst = \"{dst}\"\n"),
        );
        let err = realize_fails(t.path(), &spec, dst);
        assert!(
            err.contains(dst) && err.contains("absolute image path"),
            "{dst}: {err}"
        );
    }
}

/// Realize a spec holding one wheel built from `members` (then `tamper`ed);
/// returns the error.
fn wheel_fails(name: &str, members: &[(&str, &[u8])], tamper: &[(&str, &[u8])]) -> String {
    let t = tempfile::tempdir().unwrap();
    let file = format!("{name}-1.0-py3-none-any.whl");
    write(
        t.path().join(&file),
        build_wheel(name, "1.0", members, tamper),
        0o644,
    );
    let spec = spec_with(t.path(), &format!("\n[[wheels]]\npath = \"{file}\"\n"));
    let err = realize_fails(t.path(), &spec, name);
    assert!(err.contains(&file), "{err}");
    err
}

#[test]
fn wheel_with_parent_directory_entries_is_refused_naming_the_entry() {
    let members: [(&str, &[u8]); 2] = [
        ("evil/__init__.py", b""),
        ("../../etc/cron.d/x", b"* * * * * root sh\n"),
    ];
    let err = wheel_fails("evil", &members, &[]);
    assert!(err.contains("../../etc/cron.d/x"), "{err}");
}

#[test]
fn wheel_with_a_tampered_file_is_refused_naming_the_file() {
    let err = wheel_fails(
        "tampered",
        &[("tampered/__init__.py", b"x = 1\n")],
        &[("tampered/__init__.py", b"x = 2 # evil\n")],
    );
    assert!(err.contains("tampered/__init__.py"), "{err}");
}

#[test]
fn two_components_placing_different_bytes_at_one_path_name_both() {
    let t = tempfile::tempdir().unwrap();
    write(t.path().join("passwd"), b"root:x:0:0::/:/bin/evil\n", 0o644);
    let spec = spec_with(
        t.path(),
        "\n[[files]]\nsrc = \"passwd\"\ndst = \"/etc/passwd\"\n",
    );
    let err = realize_fails(t.path(), &spec, "conflict");
    assert!(
        err.contains("/etc/passwd")
            && err.contains("base-files")
            && err.contains("files /etc/passwd"),
        "{err}"
    );
}

fn url_spec(dir: &Path, url: &str, sha256: &str) -> PathBuf {
    spec_with(
        dir,
        &format!("\n[[wheels]]\nurl = \"{url}\"\nsha256 = \"{sha256}\"\n"),
    )
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex_encode(&sha2::Sha256::digest(data))
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn urls_that_fail_are_named_and_nothing_enters_the_store() {
    let good = build_wheel(
        "remote",
        "1.0",
        &[("remote/__init__.py", b"print('remote')\n")],
        &[],
    );
    let sha = sha256_hex(&good);
    let server = serve(vec![
        ("/500/remote-1.0-py3-none-any.whl", Behaviour::Status(500)),
        (
            "/truncated/remote-1.0-py3-none-any.whl",
            Behaviour::TruncateAlways(good.clone(), good.len() / 2),
        ),
        (
            "/wrong/remote-1.0-py3-none-any.whl",
            Behaviour::Serve(b"not the wheel you pinned".to_vec()),
        ),
    ]);
    let cases = [
        (
            "404",
            "/404/remote-1.0-py3-none-any.whl",
            "answered HTTP 404",
        ),
        (
            "500",
            "/500/remote-1.0-py3-none-any.whl",
            "answered HTTP 500",
        ),
        (
            "truncated",
            "/truncated/remote-1.0-py3-none-any.whl",
            "connection lost after",
        ),
        (
            "wrong bytes",
            "/wrong/remote-1.0-py3-none-any.whl",
            "sha256 mismatch",
        ),
    ];
    for (what, path, expect) in cases {
        let t = tempfile::tempdir().unwrap();
        let url = format!("{}{path}", server.base);
        let spec = url_spec(t.path(), &url, &sha);
        let err = realize_fails(t.path(), &spec, what);
        assert!(err.contains(&url) && err.contains(expect), "{what}: {err}");
        if what == "wrong bytes" {
            assert!(err.contains(&sha), "{err}");
        }
        // Only the app input itself is in the store.
        assert_eq!(verify_clean(&t.path().join("store")), 1, "{what}");
    }
    let log = server.log.lock().unwrap();
    assert!(
        log.requests["/500/remote-1.0-py3-none-any.whl"] > 1,
        "500 should be retried"
    );
}

#[test]
fn a_cut_download_resumes_with_a_range_request() {
    let good = build_wheel(
        "remote",
        "1.0",
        &[("remote/__init__.py", b"print('remote')\n")],
        &[],
    );
    let sha = sha256_hex(&good);
    let server = serve(vec![(
        "/cut/remote-1.0-py3-none-any.whl",
        Behaviour::TruncateOnce(good.clone(), 100),
    )]);
    let t = tempfile::tempdir().unwrap();
    let url = format!("{}/cut/remote-1.0-py3-none-any.whl", server.base);
    let spec = url_spec(t.path(), &url, &sha);
    let store = t.path().join("store");
    realize(&store, &spec, &t.path().join("out.tar"), &[]);
    let log = server.log.lock().unwrap();
    assert_eq!(
        log.ranges,
        vec![(
            "/cut/remote-1.0-py3-none-any.whl".to_string(),
            "100-".to_string()
        )]
    );
    drop(log);
    // Pinned and fetched once: realizing again needs no network.
    realize(&store, &spec, &t.path().join("out2.tar"), &["--offline"]);
    assert_eq!(
        server.log.lock().unwrap().requests["/cut/remote-1.0-py3-none-any.whl"],
        2
    );
}
