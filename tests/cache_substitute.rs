//! Two machines simulated by two stores: store A realizes the hello example
//! and pushes it to a file:// cache and to a loopback HTTP cache (PUT);
//! store B realizes the same spec from either cache with no step built and
//! the same digest, and after an edit of one app file builds only what A
//! builds for that edit. Tampered entries (a flipped NAR byte, another
//! NarHash, no or a foreign signature, a realisation naming an item the
//! cache lacks) are refused with the URL, the expected and the found; the
//! realize says so, builds instead, and the store verifies clean.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::cache_server::CacheServer;
use common::index::{index, wheel};
use common::*;
use envbuild_store::narinfo::NarInfo;
use envbuild_store::signing::SecretKey;

struct Machine {
    store: PathBuf,
    spec: PathBuf,
}

/// `realize --json` with substituters and trusted keys; (report, digest, stderr).
fn realize_with(
    m: &Machine,
    substituters: &[&str],
    trusted: &str,
    out: &Path,
) -> (serde_json::Value, String, String) {
    realize_with_args(m, substituters, trusted, out, &[])
}

/// `plan --json --substituter URL` on `m`'s store: the files it would fetch.
fn planned_fetches(m: &Machine, substituter: &str, trusted: &str) -> Vec<String> {
    let o = envbuild()
        .arg("--store")
        .arg(&m.store)
        .arg("--json")
        .arg("plan")
        .arg(&m.spec)
        .args(["--substituter", substituter])
        .env("ENVBUILD_TRUSTED_PUBLIC_KEYS", trusted)
        .env_remove("ENVBUILD_SUBSTITUTERS")
        .env("XDG_CONFIG_HOME", m.store.with_extension("config"))
        .output()
        .unwrap();
    let plan: serde_json::Value = serde_json::from_str(&ok(o, "plan")).unwrap();
    plan["fetch"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file"].as_str().unwrap().to_string())
        .collect()
}

fn realize_with_args(
    m: &Machine,
    substituters: &[&str],
    trusted: &str,
    out: &Path,
    extra: &[&str],
) -> (serde_json::Value, String, String) {
    let mut c = envbuild();
    c.arg("--store")
        .arg(&m.store)
        .arg("--json")
        .arg("realize")
        .arg(&m.spec)
        .arg("-o")
        .arg(out)
        .args(extra);
    for s in substituters {
        c.args(["--substituter", s]);
    }
    let o = c
        .env("ENVBUILD_TRUSTED_PUBLIC_KEYS", trusted)
        .env_remove("ENVBUILD_SUBSTITUTERS")
        .env("XDG_CONFIG_HOME", m.store.with_extension("config"))
        .output()
        .unwrap();
    let err = stderr(&o);
    let s = ok(o, "realize --json");
    let mut lines = s.lines();
    let report = serde_json::from_str(lines.next().unwrap()).unwrap();
    let digest = lines.last().unwrap().to_string();
    (report, digest, err)
}

fn machine(dir: &Path) -> Machine {
    Machine {
        spec: hello_example(&dir.join("ex")),
        store: dir.join("store"),
    }
}

/// A (realized, pushed to `cache`) with its key; returns (A, digest, secret, public).
fn machine_a(tmp: &Path, caches: &[String]) -> (Machine, String, PathBuf, String) {
    let a = machine(&tmp.join("a"));
    let digest = realize(&a.store, &a.spec, &tmp.join("a.tar"), &[]);
    let o = envbuild()
        .args(["cache", "keygen", "ci-1", "--dir"])
        .arg(tmp)
        .output()
        .unwrap();
    let public = ok(o, "keygen");
    let key = tmp.join("ci-1.secret");
    for c in caches {
        let push = || {
            envbuild()
                .arg("--store")
                .arg(&a.store)
                .arg("--json")
                .args(["cache", "push", c])
                .arg(&a.spec)
                .arg("--key")
                .arg(&key)
                .output()
                .unwrap()
        };
        let first: serde_json::Value = serde_json::from_str(&ok(push(), "cache push")).unwrap();
        assert!(!first["pushed"].as_array().unwrap().is_empty(), "{first}");
        assert!(first["fileBytes"].as_u64().unwrap() > 0, "{first}");
        // A second push finds everything there.
        let again: serde_json::Value = serde_json::from_str(&ok(push(), "cache re-push")).unwrap();
        assert!(again["pushed"].as_array().unwrap().is_empty(), "{again}");
        assert_eq!(
            again["skipped"].as_array().unwrap().len(),
            first["pushed"].as_array().unwrap().len()
        );
        assert_eq!(again["realisationsPushed"], 0, "{again}");
    }
    (a, digest, key, public)
}

#[test]
fn a_second_store_realizes_hello_from_the_cache_alone_then_builds_only_an_edited_apps_steps() {
    let tmp = tempfile::tempdir().unwrap();
    let server = CacheServer::start(&tmp.path().join("served"));
    let file_cache = format!("file://{}", tmp.path().join("cache").display());
    let (a, digest_a, _key, public) =
        machine_a(tmp.path(), &[file_cache.clone(), server.base.clone()]);
    assert!(server.count("PUT") >= 5, "the HTTP cache got PUTs");

    for (name, url) in [("b-file", &file_cache), ("b-http", &server.base)] {
        let b = machine(&tmp.path().join(name));
        let (report, digest, err) = realize_with(
            &b,
            &[url.as_str()],
            &public,
            &tmp.path().join(format!("{name}.tar")),
        );
        assert_eq!(digest, digest_a, "{name}: {err}");
        assert_eq!(report["built"], 0, "{name}: {report}\n{err}");
        assert!(
            report["substituted"].as_u64().unwrap() >= 5,
            "{name}: {report}"
        );
        assert!(!err.contains("refused"), "{name}: {err}");
        verify_clean(&b.store);
    }
    assert!(server.count("GET") > 0);

    // A NAR download cut half-way by a server that ignores Range: the
    // transfer starts over and the NAR is restored again from its first
    // byte (it streams into the store's NAR reader as it arrives).
    let smallest = fs::read_dir(server.dir.join("nar"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .min()
        .unwrap();
    *server.cut_next.lock().unwrap() = Some(smallest as usize - 1);
    let b = machine(&tmp.path().join("b-cut"));
    let (report, digest, err) = realize_with(
        &b,
        &[server.base.as_str()],
        &public,
        &tmp.path().join("b-cut.tar"),
    );
    assert_eq!(server.count("cut"), 1, "one NAR download was cut");
    assert_eq!(digest, digest_a, "{err}");
    assert_eq!(report["built"], 0, "{report}\n{err}");
    assert!(!err.contains("refused"), "{err}");
    verify_clean(&b.store);

    // --offline: file:// substituters only; the HTTP cache is not asked.
    let (gets, heads) = (server.count("GET"), server.count("HEAD"));
    let d = machine(&tmp.path().join("d"));
    let (report, digest, _) = realize_with_args(
        &d,
        &[server.base.as_str()],
        &public,
        &tmp.path().join("d.tar"),
        &["--offline"],
    );
    assert_eq!(digest, digest_a);
    assert_eq!(report["substituted"], 0, "{report}");
    assert_eq!((server.count("GET"), server.count("HEAD")), (gets, heads));
    let e = machine(&tmp.path().join("e"));
    let (report, _, _) = realize_with_args(
        &e,
        &[server.base.as_str(), file_cache.as_str()],
        &public,
        &tmp.path().join("e.tar"),
        &["--offline"],
    );
    assert_eq!(report["built"], 0, "{report}");
    assert_eq!((server.count("GET"), server.count("HEAD")), (gets, heads));

    // `plan` on an empty store names the steps the cache serves.
    let o = envbuild()
        .arg("--store")
        .arg(tmp.path().join("c/store"))
        .arg("--json")
        .arg("plan")
        .arg(&a.spec)
        .args(["--substituter", &file_cache])
        .env("ENVBUILD_TRUSTED_PUBLIC_KEYS", &public)
        .env("XDG_CONFIG_HOME", tmp.path().join("c"))
        .output()
        .unwrap();
    let plan: serde_json::Value = serde_json::from_str(&ok(o, "plan")).unwrap();
    let served: Vec<&serde_json::Value> = plan["build"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["substituter"] == file_cache.as_str())
        .collect();
    assert!(served.len() >= 4, "{plan}");
    assert!(
        served.iter().any(|b| b["builder"] == "copy-files"),
        "{plan}"
    );

    // One app file edited on A and on B: B builds what A builds.
    let edit = |m: &Machine| {
        let f = m.spec.parent().unwrap().join("hello/app/message.txt");
        let mut text = fs::read_to_string(&f).unwrap();
        text.push_str("edited\n");
        fs::write(&f, text).unwrap();
    };
    edit(&a);
    let (ra, da, _) = realize_with(&a, &[], &public, &tmp.path().join("a2.tar"));
    let built_on_a = ra["built"].as_u64().unwrap();
    assert!((1..=4).contains(&built_on_a), "the app's steps: {ra}");
    let b = Machine {
        store: tmp.path().join("b-file/store"),
        spec: tmp.path().join("b-file/ex/hello.toml"),
    };
    edit(&b);
    let (rb, db, err) = realize_with(&b, &[&file_cache], &public, &tmp.path().join("b2.tar"));
    assert_eq!(rb["built"].as_u64().unwrap(), built_on_a, "{rb}\n{err}");
    assert_eq!(db, da);
    verify_clean(&b.store);
}

/// Rewrite one narinfo through `f` (then signed again with `key` when given).
fn rewrite_narinfo(path: &Path, key: Option<&SecretKey>, f: impl FnOnce(&mut NarInfo)) {
    let mut ni = NarInfo::parse(&fs::read_to_string(path).unwrap()).unwrap();
    f(&mut ni);
    if let Some(k) = key {
        ni.sigs = vec![k.sign(ni.fingerprint().as_bytes())];
    }
    fs::write(path, ni.render()).unwrap();
}

/// The narinfos of a cache directory, largest NAR first (a layer or a
/// component, not the image config).
fn narinfos(cache: &Path) -> Vec<PathBuf> {
    let mut v: Vec<(u64, PathBuf)> = fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "narinfo"))
        .map(|p| {
            let n = NarInfo::parse(&fs::read_to_string(&p).unwrap()).unwrap();
            (n.nar_size, p)
        })
        .collect();
    v.sort();
    v.reverse();
    v.into_iter().map(|(_, p)| p).collect()
}

#[test]
fn tampered_entries_are_refused_by_name_and_realize_builds_instead() {
    let tmp = tempfile::tempdir().unwrap();
    let pristine = tmp.path().join("cache");
    let (_a, digest_a, key, public) =
        machine_a(tmp.path(), &[format!("file://{}", pristine.display())]);
    let sk = SecretKey::parse(&fs::read_to_string(&key).unwrap()).unwrap();
    let foreign = SecretKey::from_seed("mallory-1", [42u8; 32]);
    type Tamper = Box<dyn Fn(&Path) -> Vec<String>>;
    let cases: Vec<(&str, Tamper)> = vec![
        (
            "flipped NAR byte",
            Box::new(|c: &Path| {
                let ni_path = &narinfos(c)[0];
                let ni = NarInfo::parse(&fs::read_to_string(ni_path).unwrap()).unwrap();
                let nar = c.join(&ni.url);
                let mut bytes = fs::read(&nar).unwrap();
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0x01;
                fs::write(&nar, bytes).unwrap();
                vec![
                    ni.url.clone(),
                    "the file hash".into(),
                    envbuild_store::narinfo::render_hash(&ni.file_hash.unwrap()),
                ]
            }),
        ),
        (
            // Read in place from a file:// cache, hashed as it is
            // decompressed: what follows the compressed stream still counts.
            "bytes appended to a NAR file",
            Box::new(|c: &Path| {
                let ni_path = &narinfos(c)[0];
                let ni = NarInfo::parse(&fs::read_to_string(ni_path).unwrap()).unwrap();
                let nar = c.join(&ni.url);
                let mut bytes = fs::read(&nar).unwrap();
                bytes.extend_from_slice(b"trailing");
                fs::write(&nar, bytes).unwrap();
                let size = ni.file_size.unwrap();
                vec![
                    ni.url.clone(),
                    "the file size".into(),
                    format!("expected {size}"),
                ]
            }),
        ),
        (
            "another NarHash, signed",
            Box::new(move |c: &Path| {
                let ni_path = &narinfos(c)[0];
                let mut expected = String::new();
                rewrite_narinfo(ni_path, Some(&sk), |ni| {
                    ni.nar_hash[0] ^= 0xff;
                    expected = envbuild_store::narinfo::render_hash(&ni.nar_hash);
                });
                vec!["NAR hash".into(), format!("expected {expected}")]
            }),
        ),
        (
            "no signature",
            Box::new(|c: &Path| {
                let ni_path = &narinfos(c)[0];
                rewrite_narinfo(ni_path, None, |ni| ni.sigs.clear());
                vec![
                    ni_path.file_name().unwrap().to_string_lossy().into_owned(),
                    "not signed by a trusted key".into(),
                    "found no signature".into(),
                ]
            }),
        ),
        (
            "foreign signature",
            Box::new(move |c: &Path| {
                let ni_path = &narinfos(c)[0];
                rewrite_narinfo(ni_path, Some(&foreign), |_| {});
                vec![
                    "not signed by a trusted key".into(),
                    "expected a signature by one of [ci-1]".into(),
                    "mallory-1".into(),
                ]
            }),
        ),
        (
            "realisation naming an item the cache lacks",
            Box::new({
                let sk = SecretKey::parse(&fs::read_to_string(&key).unwrap()).unwrap();
                move |c: &Path| {
                    let dir = c.join("realisations");
                    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
                        .unwrap()
                        .map(|e| e.unwrap().path())
                        .collect();
                    files.sort();
                    let f = &files[0];
                    let v: serde_json::Value =
                        serde_json::from_slice(&fs::read(f).unwrap()).unwrap();
                    let k = v["key"].as_str().unwrap().to_string();
                    let ghost =
                        envbuild_store::StorePath::source("ghost", &[1u8; 32], &[], false).unwrap();
                    let fp = format!("envbuild-realisation-1;{k};out;{}", ghost.to_absolute());
                    let r = serde_json::json!({
                        "version": 1, "key": k, "output": "out",
                        "outPath": ghost.basename(),
                        "signatures": [sk.sign(fp.as_bytes())],
                    });
                    fs::write(f, r.to_string()).unwrap();
                    vec![
                        f.file_name().unwrap().to_string_lossy().into_owned(),
                        format!("names {}", ghost.basename()),
                        "which the cache does not have".into(),
                    ]
                }
            }),
        ),
    ];
    for (i, (what, tamper)) in cases.iter().enumerate() {
        let cache = tmp.path().join(format!("cache-{i}"));
        copy_tree(&pristine, &cache);
        let needles = tamper(&cache);
        let b = machine(&tmp.path().join(format!("b{i}")));
        let url = format!("file://{}", cache.display());
        let (report, digest, err) =
            realize_with(&b, &[&url], &public, &tmp.path().join(format!("b{i}.tar")));
        assert_eq!(
            digest, digest_a,
            "{what}: the realize fell back to building"
        );
        assert!(err.contains("substitute refused"), "{what}: {err}");
        for n in &needles {
            assert!(err.contains(n.as_str()), "{what}: {n:?} not in {err}");
        }
        assert!(report["built"].as_u64().unwrap() >= 1, "{what}: {report}");
        verify_clean(&b.store);
        fs::remove_dir_all(&cache).unwrap();
    }
}

#[test]
fn an_unknown_cache_url_and_a_malformed_trusted_key_are_errors_that_name_them() {
    let tmp = tempfile::tempdir().unwrap();
    let m = machine(tmp.path());
    let o = envbuild()
        .arg("--store")
        .arg(&m.store)
        .arg("realize")
        .arg(&m.spec)
        .args(["--substituter", "s3://bucket/x"])
        .env("XDG_CONFIG_HOME", tmp.path())
        .output()
        .unwrap();
    let err = fails(o, "realize with an s3:// substituter");
    assert!(
        err.contains("s3://bucket/x")
            && err.contains("file:///DIR")
            && err.contains("oci://HOST[:PORT]/REPO"),
        "{err}"
    );
    let o = envbuild()
        .arg("--store")
        .arg(&m.store)
        .arg("realize")
        .arg(&m.spec)
        .env("ENVBUILD_TRUSTED_PUBLIC_KEYS", "ci-1:notbase64!")
        .env("XDG_CONFIG_HOME", tmp.path())
        .output()
        .unwrap();
    let err = fails(o, "realize with a malformed key");
    let o = envbuild()
        .arg("--store")
        .arg(&m.store)
        .arg("--json")
        .arg("realize")
        .arg(&m.spec)
        .env("ENVBUILD_TRUSTED_PUBLIC_KEYS", "ci-1:notbase64!")
        .env("XDG_CONFIG_HOME", tmp.path())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["error"]["kind"], "cache", "{v}");
    assert!(
        err.contains("ENVBUILD_TRUSTED_PUBLIC_KEYS") && err.contains("ci-1:notbase64!"),
        "{err}"
    );
}

#[test]
fn store_items_push_in_every_compression_and_pull_into_another_store() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let src = tmp.path().join("tree");
    many_files(&src, 40, 7);
    let physical = ok(
        run(&a, &[&"store", &"add", &src, &"--name", &"tree"]),
        "store add",
    );
    let item = basename(&physical);
    let o = envbuild()
        .args(["cache", "keygen", "k-1", "--dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let public = ok(o, "keygen");
    // A second keygen of the same name refuses to overwrite the key.
    let o = envbuild()
        .args(["cache", "keygen", "k-1", "--dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(fails(o, "keygen again").contains("exists already"));
    for compression in ["zstd", "xz", "none"] {
        let cache = tmp.path().join(format!("cache-{compression}"));
        let url = format!("file://{}", cache.display());
        let o = envbuild()
            .arg("--store")
            .arg(&a)
            .arg("--json")
            .args([
                "cache",
                "push",
                &url,
                &physical,
                "--compression",
                compression,
                "--key",
            ])
            .arg(tmp.path().join("k-1.secret"))
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_str(&ok(o, "push")).unwrap();
        assert_eq!(report["pushed"], serde_json::json!([item]), "{report}");
        let ni = fs::read_to_string(cache.join(format!("{}.narinfo", &item[..32]))).unwrap();
        assert!(
            ni.contains(&format!("Compression: {compression}\n")),
            "{ni}"
        );
        let b = tmp.path().join(format!("b-{compression}"));
        let o = envbuild()
            .arg("--store")
            .arg(&b)
            .args([
                "cache",
                "pull",
                "--substituter",
                &url,
                &format!("/nix/store/{item}"),
            ])
            .env("ENVBUILD_TRUSTED_PUBLIC_KEYS", &public)
            .env("XDG_CONFIG_HOME", tmp.path())
            .output()
            .unwrap();
        let pulled = ok(o, "pull");
        assert_eq!(basename(&pulled), item);
        assert_eq!(verify_clean(&b), 1);
        assert_same_tree(&src, Path::new(&pulled));
    }
}

fn assert_same_tree(a: &Path, b: &Path) {
    let list = |root: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        let mut v: Vec<(PathBuf, Vec<u8>)> = walkdir::WalkDir::new(root)
            .into_iter()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().is_file())
            .map(|e| {
                (
                    e.path().strip_prefix(root).unwrap().to_path_buf(),
                    fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(list(a), list(b));
}

#[test]
fn an_unreachable_substituter_is_asked_once_and_the_realize_builds() {
    let tmp = tempfile::tempdir().unwrap();
    let m = machine(tmp.path());
    // Nothing listens on port 1 of loopback: connections are refused.
    let dead = "http://127.0.0.1:1/cache";
    let o = envbuild()
        .arg("--store")
        .arg(&m.store)
        .arg("--json")
        .arg("realize")
        .arg(&m.spec)
        .arg("-o")
        .arg(tmp.path().join("out.tar"))
        .args(["--substituter", dead])
        .env("ENVBUILD_TRUSTED_PUBLIC_KEYS", "")
        .env("ENVBUILD_NET_RETRY_TIME", "1")
        .env("XDG_CONFIG_HOME", tmp.path())
        .output()
        .unwrap();
    let err = stderr(&o);
    let report: serde_json::Value =
        serde_json::from_str(ok(o, "realize").lines().next().unwrap()).unwrap();
    assert!(report["built"].as_u64().unwrap() >= 5, "{report}");
    assert_eq!(err.matches("substitute refused").count(), 1, "{err}");
    assert!(
        err.contains("127.0.0.1:1") && err.contains("not asking"),
        "{err}"
    );
}

/// A spec with one wheel from a loopback index: (spec, the index).
fn wheel_spec(dir: &Path) -> (PathBuf, common::http::Server) {
    fs::create_dir_all(dir).unwrap();
    let server = index(&[&wheel("alpha", "1.0", "py3-none-any", "a1")]);
    let spec = dir.join("env.toml");
    fs::write(
        &spec,
        "[env]\nname = \"wheels\"\nsystem = \"x86_64-linux\"\nsource-date-epoch = 1700000000\n\n[python]\nrequirements = [\"alpha\"]\nsite-packages = \"/usr/lib/python3/site-packages\"\n",
    )
    .unwrap();
    (spec, server)
}

fn requests(server: &common::http::Server) -> usize {
    server.log.lock().unwrap().requests.values().sum()
}

/// Whether a store holds the wheel file itself (a fixed-output input).
fn has_wheel_file(store: &Path) -> bool {
    fs::read_dir(store).unwrap().any(|e| {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        name.split_once('-').map(|(_, n)| n) == Some("alpha-1.0-py3-none-any.whl")
    })
}

#[test]
fn a_realize_served_by_the_cache_takes_no_fixed_output_input_and_still_works_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let (spec_a, server) = wheel_spec(&tmp.path().join("a"));
    let index_url = format!("{}/simple", server.base);
    let a = Machine {
        store: tmp.path().join("a/store"),
        spec: spec_a,
    };
    let o = envbuild()
        .arg("--store")
        .arg(&a.store)
        .arg("realize")
        .arg(&a.spec)
        .arg("-o")
        .arg(tmp.path().join("a.tar"))
        .env("ENVBUILD_INDEX_URL", &index_url)
        .output()
        .unwrap();
    let digest_a = ok(o, "realize A").lines().last().unwrap().to_string();
    assert!(has_wheel_file(&a.store));
    let o = envbuild()
        .args(["cache", "keygen", "ci-1", "--dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let public = ok(o, "keygen");
    let cache = tmp.path().join("cache");
    let url = format!("file://{}", cache.display());
    let o = envbuild()
        .arg("--store")
        .arg(&a.store)
        .args(["cache", "push", &url])
        .arg(&a.spec)
        .arg("--key")
        .arg(tmp.path().join("ci-1.secret"))
        .env("ENVBUILD_INDEX_URL", &index_url)
        .output()
        .unwrap();
    ok(o, "cache push");
    let served = |name: &str| {
        let dir = tmp.path().join(name);
        fs::create_dir_all(&dir).unwrap();
        fs::copy(&a.spec, dir.join("env.toml")).unwrap();
        fs::copy(a.spec.with_extension("lock"), dir.join("env.lock")).unwrap();
        Machine {
            store: dir.join("store"),
            spec: dir.join("env.toml"),
        }
    };

    // Every step served: the wheel is neither fetched nor substituted,
    // and `plan` says so beforehand.
    let before = requests(&server);
    let b = served("b");
    let fetches = planned_fetches(&b, &url, &public);
    assert!(
        fetches.iter().all(|f| !f.ends_with(".whl")),
        "plan lists a wheel whose step the cache serves: {fetches:?}"
    );
    let (report, digest, err) = realize_with_args(
        &b,
        &[&url],
        &public,
        &tmp.path().join("b.tar"),
        &["--locked"],
    );
    assert_eq!(digest, digest_a, "{err}");
    assert_eq!(report["built"], 0, "{report}\n{err}");
    assert!(
        !has_wheel_file(&b.store),
        "the wheel was substituted: {err}"
    );
    assert_eq!(requests(&server), before, "the index was asked");
    verify_clean(&b.store);
    // Offline and without the cache, the store has what it needs.
    let (report, digest, err) =
        realize_with_args(&b, &[], &public, &tmp.path().join("b2.tar"), &["--offline"]);
    assert_eq!(digest, digest_a, "{err}");
    assert_eq!(report["built"], 0, "{report}");

    // A cache without the step's realisations: the step is built, from the
    // wheel the cache serves (not fetched from the index).
    let partial = tmp.path().join("partial");
    copy_tree(&cache, &partial);
    for e in fs::read_dir(partial.join("realisations")).unwrap() {
        let p = e.unwrap().path();
        if !p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("fetch:")
        {
            fs::remove_file(p).unwrap();
        }
    }
    let c = served("c");
    let partial_url = format!("file://{}", partial.display());
    let fetches = planned_fetches(&c, &partial_url, &public);
    assert!(
        fetches.iter().any(|f| f.ends_with(".whl")),
        "plan omits the wheel a step that is built needs: {fetches:?}"
    );
    let records = walkdir::WalkDir::new(&c.store)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_type().is_file() && e.path().to_string_lossy().contains("deferred-inputs")
        })
        .count();
    assert_eq!(records, 0, "a plan wrote a record of deferred inputs");
    let (report, digest, err) = realize_with_args(
        &c,
        &[&partial_url],
        &public,
        &tmp.path().join("c.tar"),
        &["--locked"],
    );
    assert_eq!(digest, digest_a, "{err}");
    assert!(report["built"].as_u64().unwrap() >= 1, "{report}");
    assert!(has_wheel_file(&c.store), "the wheel was not substituted");
    assert_eq!(requests(&server), before, "the index was asked");
    verify_clean(&c.store);
}
