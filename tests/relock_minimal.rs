//! Minimal-change locking against a loopback index: a changed requirement
//! moves only its package, the other pins stay although newer versions
//! appeared; `--upgrade-package NAME` moves that one, `--upgrade` all; the
//! lock records the `--exclude-newer` it was resolved with and a later
//! re-lock honours it (only `--upgrade` drops it).

mod common;

use std::fs;
use std::path::Path;

use common::index::{index, wheel, Wheel};
use common::*;

fn spec(dir: &Path, requirements: &[&str]) -> std::path::PathBuf {
    let p = dir.join("env.toml");
    let reqs: Vec<String> = requirements.iter().map(|r| format!("{r:?}")).collect();
    fs::write(
        &p,
        format!(
            "[env]\nname = \"relock\"\nsystem = \"x86_64-linux\"\nsource-date-epoch = 1700000000\n\n[python]\nrequirements = [{}]\nsite-packages = \"/usr/lib/python3/site-packages\"\n",
            reqs.join(", ")
        ),
    )
    .unwrap();
    p
}

/// (name, version) of every Python pin in the spec's lock.
fn pins(spec: &Path) -> Vec<(String, String)> {
    let lock: toml::Table =
        toml::from_str(&fs::read_to_string(spec.with_extension("lock")).unwrap()).unwrap();
    let mut out: Vec<(String, String)> = lock["python"]["wheel"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["name"].as_str().unwrap().into(),
                w["version"].as_str().unwrap().into(),
            )
        })
        .collect();
    out.sort();
    out
}

fn recorded_exclude_newer(spec: &Path) -> Option<String> {
    let lock: toml::Table =
        toml::from_str(&fs::read_to_string(spec.with_extension("lock")).unwrap()).unwrap();
    lock["python"]
        .get("exclude-newer")
        .map(|v| v.as_str().unwrap().to_string())
}

fn lock(store: &Path, spec: &Path, index_url: &str, extra: &[&str]) {
    let o = envbuild()
        .arg("--store")
        .arg(store)
        .arg("lock")
        .arg(spec)
        .args(extra)
        .env("ENVBUILD_INDEX_URL", index_url)
        .output()
        .unwrap();
    ok(o, &format!("lock {extra:?}"));
}

fn newer(name: &str, version: &str) -> Wheel {
    let mut w = wheel(name, version, "py3-none-any", version);
    w.uploaded = "2025-06-01T00:00:00Z".into();
    w
}

fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn a_changed_requirement_moves_only_its_package_and_upgrades_move_on_request() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let old = [
        wheel("alpha", "1.0", "py3-none-any", "a1"),
        wheel("beta", "1.0", "py3-none-any", "b1"),
        wheel("gamma", "1.0", "py3-none-any", "g1"),
    ];
    let server = index(&old.iter().collect::<Vec<_>>());
    let spec = spec(tmp.path(), &["alpha", "beta"]);
    lock(&store, &spec, &format!("{}/simple", server.base), &[]);
    assert_eq!(pins(&spec), p(&[("alpha", "1.0"), ("beta", "1.0")]));
    assert_eq!(recorded_exclude_newer(&spec), None);

    // Newer alpha and beta appear; the spec adds gamma.
    let newer_files = [newer("alpha", "2.0"), newer("beta", "2.0")];
    let all: Vec<&Wheel> = old.iter().chain(&newer_files).collect();
    let server = index(&all);
    let url = format!("{}/simple", server.base);
    let spec = self::spec(tmp.path(), &["alpha", "beta", "gamma"]);
    lock(&store, &spec, &url, &[]);
    assert_eq!(
        pins(&spec),
        p(&[("alpha", "1.0"), ("beta", "1.0"), ("gamma", "1.0")]),
        "only gamma was added; alpha and beta kept their pins"
    );
    // A requirement that excludes the pinned version moves that package.
    let spec = self::spec(tmp.path(), &["alpha>=2", "beta", "gamma"]);
    lock(&store, &spec, &url, &[]);
    assert_eq!(
        pins(&spec),
        p(&[("alpha", "2.0"), ("beta", "1.0"), ("gamma", "1.0")])
    );

    lock(&store, &spec, &url, &["--upgrade-package", "Beta"]);
    assert_eq!(
        pins(&spec),
        p(&[("alpha", "2.0"), ("beta", "2.0"), ("gamma", "1.0")])
    );

    // Back to the old pins with an exclude-newer cut-off: recorded, and a
    // re-lock of a changed spec honours it without being told again.
    let spec = self::spec(tmp.path(), &["alpha", "beta", "gamma"]);
    lock(
        &store,
        &spec,
        &url,
        &["--upgrade", "--exclude-newer", "2024-06-01"],
    );
    assert_eq!(
        pins(&spec),
        p(&[("alpha", "1.0"), ("beta", "1.0"), ("gamma", "1.0")])
    );
    assert_eq!(
        recorded_exclude_newer(&spec).as_deref(),
        Some("2024-06-01T23:59:59.999999Z")
    );
    let spec = self::spec(tmp.path(), &["alpha", "beta"]);
    lock(&store, &spec, &url, &["--upgrade-package", "alpha"]);
    assert_eq!(
        pins(&spec),
        p(&[("alpha", "1.0"), ("beta", "1.0")]),
        "the recorded cut-off still hides alpha 2.0"
    );
    assert!(recorded_exclude_newer(&spec).is_some());
    // --upgrade resolves as of now: the cut-off goes.
    lock(&store, &spec, &url, &["--upgrade"]);
    assert_eq!(pins(&spec), p(&[("alpha", "2.0"), ("beta", "2.0")]));
    assert_eq!(recorded_exclude_newer(&spec), None);
}
