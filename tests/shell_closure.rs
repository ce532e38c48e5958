//! "Identical deps" checked, not assumed: `envbuild closure` lists the store
//! items the image is made of, `closure --shell` those the shell enters;
//! without `[shell] packages` the two are the image's components exactly;
//! `[shell] packages` (from a signed loopback Debian archive) are pinned in
//! the lock under their own ids, join the shell only and are listed as
//! shell-only.

mod common;

use std::fs;
use std::path::Path;

use common::debian::{build_archive, Pkg};
use common::http::serve;
use common::shell::*;
use common::*;

fn closure(store: &Path, spec: &Path, flags: &[&str]) -> Vec<String> {
    let mut c = envbuild();
    c.arg("--store")
        .arg(store)
        .arg("closure")
        .args(flags)
        .arg(spec);
    ok(c.output().unwrap(), "closure")
        .lines()
        .map(str::to_string)
        .collect()
}

/// The components `realize --json` built the image from.
fn image_components(store: &Path, spec: &Path, out: &Path) -> Vec<String> {
    let v = realize_json(store, spec, out);
    v["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_shell_closure_without_shell_packages_is_the_image_closure() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = hello_example(tmp.path());
    let store = tmp.path().join("store");
    let image = image_components(&store, &spec, &tmp.path().join("hello.tar"));
    assert_eq!(image.len(), 4, "{image:?}");
    assert_eq!(closure(&store, &spec, &[]), image);
    assert_eq!(closure(&store, &spec, &["--shell"]), image);
    // And the layers hold exactly those components.
    let v = realize_json(&store, &spec, &tmp.path().join("hello.tar"));
    let labels: Vec<String> = v["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["label"].as_str().unwrap().to_string())
        .collect();
    let in_layers: Vec<String> = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["components"].as_array().unwrap().clone())
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(labels, in_layers);
}

#[test]
fn shell_packages_are_pinned_in_the_lock_and_join_only_the_shell() {
    require_tool("bwrap", "bubblewrap");
    let tmp = tempfile::tempdir().unwrap();
    let tool = static_program(tmp.path(), "tcp");
    let archive = build_archive(
        &tmp.path().join("archive"),
        "test",
        &[
            Pkg {
                name: "base-deb",
                version: "1.0",
                depends: None,
                files: vec![("usr/share/base/readme", b"base\n".to_vec(), 0o644)],
            },
            Pkg {
                name: "shared-deb",
                version: "2.0",
                depends: None,
                files: vec![("usr/share/shared/readme", b"shared\n".to_vec(), 0o644)],
            },
            Pkg {
                name: "tool-deb",
                version: "3.0",
                depends: Some("base-deb, shared-deb (>= 2.0)"),
                files: vec![("usr/bin/tool", fs::read(&tool).unwrap(), 0o755)],
            },
        ],
    );
    let server = serve(archive.routes.clone());
    let spec = tmp.path().join("dev.toml");
    fs::write(
        &spec,
        format!(
            "[env]\nname = \"dev\"\nsystem = \"x86_64-linux\"\nsource-date-epoch = 1700000000\n\n\
             [base]\ndebian = {{ suite = \"test\", packages = [\"base-deb\"], mirror = \"{}/debian\", keyring = \"{}\" }}\n\n\
             [shell]\npackages = [\"tool-deb\"]\n",
            server.base,
            archive.keyring.display()
        ),
    )
    .unwrap();
    let store = tmp.path().join("store");

    let image = image_components(&store, &spec, &tmp.path().join("dev.tar"));
    assert_eq!(closure(&store, &spec, &[]), image);
    assert!(image.iter().any(|p| p.contains("base-deb")), "{image:?}");
    assert!(!image.iter().any(|p| p.contains("tool-deb")), "{image:?}");

    let lock_file = fs::read_to_string(tmp.path().join("dev.lock")).unwrap();
    let lock = common::lock_as_v1(&lock_file);
    for id in [
        "id = \"shell-debian:request\"",
        "id = \"shell-deb:tool-deb\"",
        "id = \"shell-deb:shared-deb\"",
        "id = \"deb:base-deb\"",
    ] {
        assert!(lock.contains(id), "{id} in {lock}");
    }
    assert!(!lock.contains("shell-deb:base-deb"), "{lock}");
    assert!(
        !lock_file.contains("127.0.0.1"),
        "the lock names no host: {lock_file}"
    );

    // The shell: the image's components, then the shell's own.
    let listing = closure(&store, &spec, &["--shell"]);
    assert_eq!(listing[..image.len()], image[..], "{listing:?}");
    let extra: Vec<&String> = listing[image.len()..].iter().collect();
    assert_eq!(extra.len(), 2, "{listing:?}");
    assert!(
        extra.iter().all(|l| l.ends_with("\tshell-only")),
        "{listing:?}"
    );
    assert!(
        extra.iter().any(|l| l.contains("tool-deb"))
            && extra.iter().any(|l| l.contains("shared-deb"))
    );

    // The tool is in the shell, not in `run` (the image's closure).
    let o = envbuild()
        .arg("--store")
        .arg(&store)
        .args(["shell", "--locked"])
        .arg(&spec)
        .args(["--", "tool", "exit", "7"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    assert!(stdout(&o).contains("exiting 7"));
    let o = run_in_closure(&store, &spec, tmp.path(), &["tool", "exit", "0"]);
    let err = fails(o, "run tool");
    assert!(err.contains("\"tool\" is not in the closure"), "{err}");

    // Everything is pinned and in the store: no network needed any more.
    drop(server);
    let o = envbuild()
        .arg("--store")
        .arg(&store)
        .args(["shell", "--locked", "--offline"])
        .arg(&spec)
        .args(["--", "tool", "exit", "0"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}
