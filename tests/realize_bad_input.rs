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

/// `realize` of the spec made by `spec_with(extra)`, with `edit` applied to
/// its text, must fail; returns the error.
fn spec_fails(extra: &str, edit: &dyn Fn(String) -> String, what: &str) -> String {
    let t = tempfile::tempdir().unwrap();
    let spec = spec_with(t.path(), extra);
    let text = edit(fs::read_to_string(&spec).unwrap());
    fs::write(&spec, text).unwrap();
    realize_fails(t.path(), &spec, what)
}

fn same(s: String) -> String {
    s
}

#[test]
fn passwd_and_group_fields_refuse_newline_nul_and_colon() {
    for (home, shown) in [
        ("/home/a\\nroot::0:0::/:/bin/sh", "'\\n'"),
        ("/home/a:b", "':'"),
        ("/home/a\\u0000b", "'\\0'"),
    ] {
        let extra = format!(
            "\n[image.user]\nname = \"appuser\"\nuid = 1000\ngid = 1000\nhome = \"{home}\"\n"
        );
        let err = spec_fails(&extra, &same, home);
        assert!(
            err.contains("image.user.home") && err.contains(shown) && err.contains("bad.toml:1"),
            "{home}: {err}"
        );
    }
}

#[test]
fn env_names_and_values_are_checked_with_their_span() {
    let err = spec_fails("\n[image.env]\n\"A=B\" = \"x\"\n", &same, "env name");
    assert!(
        err.contains("image.env name \"A=B\"")
            && err.contains("'='")
            && err.contains("bad.toml:11:1"),
        "{err}"
    );
    let err = spec_fails("\n[image.env]\nA = \"x\\u0000y\"\n", &same, "env value");
    assert!(
        err.contains("image.env.A") && err.contains("'\\0'") && err.contains("bad.toml:11:5"),
        "{err}"
    );
}

#[test]
fn a_shebang_must_be_one_line() {
    let err = spec_fails(
        "\n[python]\nshebang = \"/usr/bin/python3\\nimport os\"\n",
        &same,
        "shebang",
    );
    assert!(
        err.contains("python.shebang") && err.contains("'\\n'") && err.contains("bad.toml:11"),
        "{err}"
    );
}

#[test]
fn image_names_and_tags_follow_the_oci_reference_grammar() {
    let long = "a".repeat(256);
    for name in [
        "Bad",
        "a..b",
        "a-",
        "/a",
        "a//b",
        "host:port/x",
        long.as_str(),
    ] {
        let err = spec_fails(&format!("\n[image]\nname = \"{name}\"\n"), &same, name);
        assert!(
            err.contains("is not an OCI image name") && err.contains("bad.toml:11"),
            "{name}: {err}"
        );
    }
    let long_tag = "t".repeat(129);
    for tag in ["-x", ".x", long_tag.as_str()] {
        let err = spec_fails(&format!("\n[image]\ntag = \"{tag}\"\n"), &same, tag);
        assert!(err.contains("is not a valid tag"), "{tag}: {err}");
    }
}

#[test]
fn label_keys_are_checked_with_their_span() {
    for key in ["bad key", "a=b", "tab\\there"] {
        let err = spec_fails(
            &format!("\n[image.labels]\n\"{key}\" = \"x\"\n"),
            &same,
            key,
        );
        assert!(
            err.contains("image.labels key") && err.contains("bad.toml:11:1"),
            "{key}: {err}"
        );
    }
}

#[test]
fn source_date_epoch_past_year_9999_is_refused() {
    let err = spec_fails(
        "",
        &|s: String| s.replace("1700000000", "253402300800"),
        "epoch",
    );
    assert!(
        err.contains("env.source-date-epoch 253402300800")
            && err.contains("253402300799")
            && err.contains("bad.toml:4"),
        "{err}"
    );
}

#[test]
fn a_model_revision_that_is_a_path_is_refused() {
    for rev in ["/main", ".", "a/./b", "a//b", "main/"] {
        let err = spec_fails(
            &format!("\n[models.m]\nsource = \"hf:org/repo\"\nrevision = \"{rev}\"\n"),
            &same,
            rev,
        );
        assert!(
            err.contains("revision") && err.contains("is a path") && err.contains("bad.toml:12"),
            "{rev}: {err}"
        );
    }
}

fn mkfifo(path: &Path) {
    let o = std::process::Command::new("mkfifo")
        .arg(path)
        .output()
        .expect("mkfifo runs");
    assert!(o.status.success(), "mkfifo {}", path.display());
}

#[test]
fn a_fifo_or_directory_where_a_file_is_read_is_named_not_waited_on() {
    // The spec itself.
    let t = tempfile::tempdir().unwrap();
    let spec = t.path().join("fifo.toml");
    mkfifo(&spec);
    let err = realize_fails(t.path(), &spec, "fifo spec");
    assert!(
        err.contains("fifo.toml is a FIFO, expected a regular file"),
        "{err}"
    );
    let err = realize_fails(t.path(), t.path(), "directory spec");
    assert!(
        err.contains(&format!(
            "spec {} is a directory (expected a spec file, TOML)",
            t.path().display()
        )),
        "{err}"
    );

    // The lock beside it.
    let t = tempfile::tempdir().unwrap();
    let spec = spec_with(t.path(), "");
    mkfifo(&t.path().join("bad.lock"));
    let err = realize_fails(t.path(), &spec, "fifo lock");
    assert!(
        err.contains("bad.lock is a FIFO, expected a regular file"),
        "{err}"
    );

    // A [[files]] source.
    let t = tempfile::tempdir().unwrap();
    mkfifo(&t.path().join("pipe"));
    let spec = spec_with(t.path(), "\n[[files]]\nsrc = \"pipe\"\ndst = \"/pipe\"\n");
    let err = realize_fails(t.path(), &spec, "fifo files.src");
    assert!(
        err.contains("files.src \"pipe\" is a FIFO, expected a regular file or directory")
            && err.contains("bad.toml:11"),
        "{err}"
    );
}

#[test]
fn wheel_member_names_flagged_utf8_that_are_not_are_refused() {
    // The zip library decodes such a name with U+FFFD; a RECORD that lists
    // that decoded name used to let the member be installed under it.
    let t = tempfile::tempdir().unwrap();
    let file = "badname-1.0-py3-none-any.whl";
    let mut wheel = build_wheel(
        "badname",
        "1.0",
        &[("badname/\u{FFFD}.py", b"x = 1\n")],
        &[],
    );
    // U+FFFD (EF BF BD) becomes F0 9F 98: a cut-off 4-byte sequence, which
    // decodes to one U+FFFD again. RECORD is deflated, so only names change.
    let mut n = 0;
    for i in 0..wheel.len() - 2 {
        if wheel[i..i + 3] == [0xEF, 0xBF, 0xBD] {
            wheel[i..i + 3].copy_from_slice(&[0xF0, 0x9F, 0x98]);
            n += 1;
        }
    }
    assert_eq!(
        n, 2,
        "the name in the local header and the central directory"
    );
    write(t.path().join(file), &wheel, 0o644);
    let spec = spec_with(t.path(), &format!("\n[[wheels]]\npath = \"{file}\"\n"));
    let err = realize_fails(t.path(), &spec, "non-UTF-8 name");
    assert!(
        err.contains(file) && err.contains("flagged UTF-8 but is not valid UTF-8"),
        "{err}"
    );
}
