//! A binary cache in an OCI registry (`oci://HOST:PORT/REPO`), against a
//! real registry:2 (Debian's docker-registry) on loopback: store A pushes
//! the hello example's closure; store B realizes it from the registry
//! alone (the same digest, no step built); a re-push uploads nothing;
//! `--offline` does not ask the registry. Tampered entries (a narinfo
//! re-signed by a foreign key, a NAR blob's bytes changed in the registry's
//! storage) are refused by name, and the realize builds instead.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::registry::Registry;
use common::*;
use envbuild_store::narinfo::NarInfo;
use envbuild_store::signing::SecretKey;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

struct Machine {
    store: PathBuf,
    spec: PathBuf,
}

fn machine(dir: &Path) -> Machine {
    Machine {
        spec: hello_example(&dir.join("ex")),
        store: dir.join("store"),
    }
}

fn push(m: &Machine, dest: &str, key: &Path) -> serde_json::Value {
    let o = envbuild()
        .arg("--store")
        .arg(&m.store)
        .arg("--json")
        .args(["cache", "push", dest])
        .arg(&m.spec)
        .arg("--key")
        .arg(key)
        // NARs go up through the push's upload path: chunks this small
        // make every NAR but the tiniest a chunked upload (PATCHes, then
        // the closing PUT), which the realizes from the registry verify.
        .env("ENVBUILD_PUSH_CHUNK_SIZE", "4096")
        .output()
        .unwrap();
    serde_json::from_str(&ok(o, &format!("cache push {dest}"))).unwrap()
}

/// `realize --json --substituter URL`: (report, digest, stderr).
fn realize_from(
    m: &Machine,
    url: &str,
    trusted: &str,
    out: &Path,
    extra: &[&str],
) -> (serde_json::Value, String, String) {
    let o = envbuild()
        .arg("--store")
        .arg(&m.store)
        .arg("--json")
        .arg("realize")
        .arg(&m.spec)
        .arg("-o")
        .arg(out)
        .args(["--substituter", url])
        .args(extra)
        .env("ENVBUILD_TRUSTED_PUBLIC_KEYS", trusted)
        .env_remove("ENVBUILD_SUBSTITUTERS")
        .env("XDG_CONFIG_HOME", m.store.with_extension("config"))
        .output()
        .unwrap();
    let err = stderr(&o);
    let s = ok(o, "realize from the registry");
    let mut lines = s.lines();
    let report = serde_json::from_str(lines.next().unwrap()).unwrap();
    (report, lines.last().unwrap().to_string(), err)
}

/// A realized on a fresh store, a key made: (A, digest, secret key file, public key).
fn machine_a(tmp: &Path) -> (Machine, String, PathBuf, String) {
    let a = machine(&tmp.join("a"));
    let digest = realize(&a.store, &a.spec, &tmp.join("a.tar"), &[]);
    let o = envbuild()
        .args(["cache", "keygen", "ci-1", "--dir"])
        .arg(tmp)
        .output()
        .unwrap();
    let public = ok(o, "keygen");
    (a, digest, tmp.join("ci-1.secret"), public)
}

/// Files under `dir` (recursively) whose path contains `part`.
fn count_files(dir: &Path, part: &str) -> usize {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file() && e.path().to_string_lossy().contains(part))
        .count()
}

#[test]
fn a_second_store_realizes_hello_from_a_registry_cache_and_a_repush_uploads_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let reg = Registry::start_in(dir, "");
    let url = format!("oci://{}/team/cache", reg.host());
    let (a, digest_a, key, public) = machine_a(tmp.path());

    let first = push(&a, &url, &key);
    assert!(first["pushed"].as_array().unwrap().len() >= 5, "{first}");
    assert!(
        first["realisationsPushed"].as_u64().unwrap() >= 5,
        "{first}"
    );
    assert_eq!(first["cache"], url.as_str(), "{first}");
    // The NARs are blobs; every cache file is a tagged manifest.
    let blobs = count_files(&data, "/blobs/sha256/");
    let revisions = count_files(&data, "/_manifests/revisions/");
    let tags = count_files(&data, "/_manifests/tags/");
    assert!(
        blobs > first["pushed"].as_array().unwrap().len(),
        "{blobs} blobs"
    );
    let narinfo_tag = format!(
        "/v2/team/cache/manifests/{}.narinfo",
        &first["pushed"][0].as_str().unwrap()[..32]
    );
    let (status, headers, body) = reg.get(&narinfo_tag, &[("Accept", OCI_MANIFEST)]).unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == OCI_MANIFEST),
        "{headers:?}"
    );
    let m: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(m["artifactType"], "application/vnd.envbuild.narinfo.v1");
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    let text = m["annotations"]["envbuild.cache.file"].as_str().unwrap();
    let ni = NarInfo::parse(text).unwrap();
    assert_eq!(
        m["layers"][0]["digest"].as_str().unwrap(),
        format!("sha256:{}", hex::encode(ni.file_hash.unwrap()))
    );
    assert_eq!(m["layers"][0]["size"], ni.file_size.unwrap());

    // A re-push finds everything: nothing uploaded, no manifest written.
    let again = push(&a, &url, &key);
    assert!(again["pushed"].as_array().unwrap().is_empty(), "{again}");
    assert_eq!(again["realisationsPushed"], 0, "{again}");
    assert_eq!(
        again["skipped"].as_array().unwrap().len(),
        first["pushed"].as_array().unwrap().len()
    );
    assert_eq!(count_files(&data, "/blobs/sha256/"), blobs);
    assert_eq!(count_files(&data, "/_manifests/revisions/"), revisions);
    assert_eq!(count_files(&data, "/_manifests/tags/"), tags);

    let b = machine(&tmp.path().join("b"));
    let (report, digest, err) = realize_from(&b, &url, &public, &tmp.path().join("b.tar"), &[]);
    assert_eq!(digest, digest_a, "{err}");
    assert_eq!(report["built"], 0, "{report}\n{err}");
    assert!(report["substituted"].as_u64().unwrap() >= 5, "{report}");
    assert!(!err.contains("refused"), "{err}");
    verify_clean(&b.store);

    // --offline: oci:// is remote, so it is not asked (a stopped registry
    // would otherwise be a refusal in stderr).
    drop(reg);
    let c = machine(&tmp.path().join("c"));
    let (report, digest, err) =
        realize_from(&c, &url, &public, &tmp.path().join("c.tar"), &["--offline"]);
    assert_eq!(digest, digest_a);
    assert_eq!(report["substituted"], 0, "{report}");
    assert!(!err.contains("refused"), "{err}");
}

/// A raw HTTP/1.0 PUT to the registry: the status.
fn put(port: u16, path: &str, content_type: &str, body: &[u8]) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "PUT {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_foreign_signature_and_a_swapped_nar_blob_in_the_registry_are_refused_and_realize_builds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let reg = Registry::start_in(dir, "");
    let url = format!("oci://{}/cache", reg.host());
    let (a, digest_a, key, public) = machine_a(tmp.path());
    push(&a, &url, &key);
    // The largest item (a layer or a component): its narinfo's manifest.
    let file_cache = tmp.path().join("file-cache");
    push(&a, &format!("file://{}", file_cache.display()), &key);
    let largest = fs::read_dir(&file_cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "narinfo"))
        .max_by_key(|p| {
            NarInfo::parse(&fs::read_to_string(p).unwrap())
                .unwrap()
                .nar_size
        })
        .unwrap();
    let tag = largest.file_name().unwrap().to_string_lossy().into_owned();
    let path = format!("/v2/cache/manifests/{tag}");
    let (status, _, original) = reg.get(&path, &[("Accept", OCI_MANIFEST)]).unwrap();
    assert_eq!(status, 200);

    // 1. The narinfo re-signed by a key nobody trusts.
    let mut m: serde_json::Value = serde_json::from_slice(&original).unwrap();
    let mut ni = NarInfo::parse(m["annotations"]["envbuild.cache.file"].as_str().unwrap()).unwrap();
    let foreign = SecretKey::from_seed("mallory-1", [42u8; 32]);
    ni.sigs = vec![foreign.sign(ni.fingerprint().as_bytes())];
    m["annotations"]["envbuild.cache.file"] = ni.render().into();
    let bytes = serde_json::to_vec(&m).unwrap();
    assert_eq!(put(reg.port, &path, OCI_MANIFEST, &bytes), 201);
    let b = machine(&tmp.path().join("b1"));
    let (report, digest, err) = realize_from(&b, &url, &public, &tmp.path().join("b1.tar"), &[]);
    assert_eq!(digest, digest_a, "the realize fell back to building");
    for needle in [
        "substitute refused",
        tag.as_str(),
        "not signed by a trusted key",
        "expected a signature by one of [ci-1]",
        "mallory-1",
    ] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    assert!(report["built"].as_u64().unwrap() >= 1, "{report}");
    verify_clean(&b.store);

    // 2. The narinfo restored; its NAR blob's bytes changed where the
    // registry keeps them (it serves them as they are).
    assert_eq!(put(reg.port, &path, OCI_MANIFEST, &original), 201);
    let ni = NarInfo::parse(&fs::read_to_string(&largest).unwrap()).unwrap();
    let hex = hex::encode(ni.file_hash.unwrap());
    let blob = data
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(&hex)
        .join("data");
    let mut nar = fs::read(&blob).unwrap();
    let mid = nar.len() / 2;
    nar[mid] ^= 0x01;
    fs::write(&blob, nar).unwrap();
    let b = machine(&tmp.path().join("b2"));
    let (report, digest, err) = realize_from(&b, &url, &public, &tmp.path().join("b2.tar"), &[]);
    assert_eq!(digest, digest_a, "the realize fell back to building");
    for needle in [
        "substitute refused",
        &format!("sha256:{hex}"),
        "the file hash",
        &envbuild_store::narinfo::render_hash(&ni.file_hash.unwrap()),
    ] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    assert!(report["built"].as_u64().unwrap() >= 1, "{report}");
    verify_clean(&b.store);
}

#[test]
fn an_oci_url_without_a_repository_is_an_error_that_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let m = machine(tmp.path());
    let o = envbuild()
        .arg("--store")
        .arg(&m.store)
        .arg("realize")
        .arg(&m.spec)
        .args(["--substituter", "oci://127.0.0.1:1"])
        .env("XDG_CONFIG_HOME", tmp.path())
        .output()
        .unwrap();
    let err = fails(o, "realize with a bad oci:// substituter");
    assert!(
        err.contains("oci://127.0.0.1:1") && err.contains("oci://HOST[:PORT]/REPO"),
        "{err}"
    );
}
