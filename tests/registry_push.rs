//! `envbuild push` against Debian's real registry (docker-registry, the
//! registry:2 binary) on loopback: the manifest the registry holds is the
//! one realize printed, a second push uploads nothing, a push by digest
//! works, and basic authentication takes credentials from a docker
//! config.json without ever showing the password.

mod common;

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use base64::Engine;
use common::*;
use sha2::{Digest, Sha256};

use common::registry::Registry;

const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json";

fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(b)))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An envbuild command with the credential places pointed at `home`
/// (nothing of the user's own configuration is read) and no proxies.
fn push_cmd(store: &Path, home: &Path, args: &[&str]) -> Command {
    let mut c = envbuild();
    c.arg("--store").arg(store).args(args);
    c.env("HOME", home)
        .env("DOCKER_CONFIG", home.join(".docker"))
        .env("REGISTRY_AUTH_FILE", home.join("auth.json"))
        .env_remove("XDG_RUNTIME_DIR");
    for v in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        c.env_remove(v);
    }
    c
}

struct Setup {
    tmp: tempfile::TempDir,
    spec: PathBuf,
    store: PathBuf,
    home: PathBuf,
    digest: String,
}

/// The hello example, realized once (its digest is what push must print).
fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let spec = hello_example(&tmp.path().join("src"));
    let store = tmp.path().join("store");
    let home = tmp.path().join("home");
    fs::create_dir_all(home.join(".docker")).unwrap();
    let digest = realize(&store, &spec, &tmp.path().join("hello.tar"), &[]);
    Setup {
        tmp,
        spec,
        store,
        home,
        digest,
    }
}

fn push_json(s: &Setup, reference: &str) -> (serde_json::Value, String, Output) {
    let o = push_cmd(
        &s.store,
        &s.home,
        &["--json", "push", s.spec.to_str().unwrap(), reference],
    )
    .output()
    .unwrap();
    let out = ok(o.clone(), &format!("push {reference}"));
    let last = out.lines().last().unwrap().to_string();
    let report: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    (report, last, o)
}

#[test]
fn push_puts_realizes_manifest_then_skips_every_blob_then_pushes_by_digest() {
    let reg = Registry::start(None);
    let s = setup();
    let reference = format!("{}/envbuild/hello:1", reg.host());

    // (a) The first push uploads every blob; the registry holds realize's
    // manifest, byte for byte.
    let started = Instant::now();
    let (report, last, _) = push_json(&s, &reference);
    let first_time = started.elapsed();
    assert_eq!(last, s.digest, "push prints realize's digest last");
    assert_eq!(report["digest"], s.digest);
    let blobs = report["blobs"].as_array().unwrap();
    assert!(blobs.len() >= 2, "config and at least one layer: {report}");
    assert_eq!(report["uploaded"].as_u64().unwrap() as usize, blobs.len());
    assert_eq!(report["skipped"], 0);
    assert_eq!(report["mounted"], 0);
    let sizes: u64 = blobs.iter().map(|b| b["size"].as_u64().unwrap()).sum();
    assert_eq!(report["bytesUploaded"].as_u64().unwrap(), sizes);

    let (status, headers, body) = reg
        .get(
            "/v2/envbuild/hello/manifests/1",
            &[("Accept", MANIFEST_ACCEPT)],
        )
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(sha256(&body), s.digest, "the stored manifest's bytes");
    let named = headers
        .iter()
        .find(|(k, _)| k == "docker-content-digest")
        .map(|(_, v)| v.clone());
    assert_eq!(named.as_deref(), Some(s.digest.as_str()));
    // Each blob is there with its digest.
    for b in blobs {
        let d = b["digest"].as_str().unwrap();
        let (status, _, body) = reg
            .get(&format!("/v2/envbuild/hello/blobs/{d}"), &[])
            .unwrap();
        assert_eq!(status, 200, "blob {d}");
        assert_eq!(sha256(&body), d, "blob {d} bytes");
    }
    if Path::new("/usr/bin/skopeo").exists() {
        let o = Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--raw"])
            .arg(format!("docker://{reference}"))
            .env("HOME", &s.home)
            .output()
            .unwrap();
        assert!(o.status.success(), "skopeo: {}", stderr(&o));
        assert_eq!(sha256(&o.stdout), s.digest, "skopeo's raw manifest");
    }

    // (b) Again: every blob is found by HEAD, nothing is uploaded.
    let started = Instant::now();
    let (report, last, o) = push_json(&s, &reference);
    let second_time = started.elapsed();
    assert_eq!(last, s.digest);
    assert_eq!(report["uploaded"], 0, "{report}");
    assert_eq!(report["bytesUploaded"], 0);
    assert_eq!(
        report["skipped"].as_u64().unwrap() as usize,
        report["blobs"].as_array().unwrap().len()
    );
    assert!(report["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|b| b["outcome"] == "skipped"));
    // Without --json: a progress line on stderr saying so, the digest last.
    let o2 = push_cmd(
        &s.store,
        &s.home,
        &["push", "--locked", s.spec.to_str().unwrap(), &reference],
    )
    .output()
    .unwrap();
    let text = stderr(&o2);
    assert_eq!(ok(o2, "plain push"), s.digest);
    assert!(text.contains("0 blobs uploaded"), "{text}");
    drop(o);

    // (c) By digest, into another repository: its blobs are new there, and
    // mounted from the first (the push recorded where they went).
    let by_digest = format!("{}/envbuild/by-digest@{}", reg.host(), s.digest);
    let (report, last, _) = push_json(&s, &by_digest);
    assert_eq!(last, s.digest);
    assert_eq!(report["tag"], serde_json::Value::Null);
    let n = report["blobs"].as_array().unwrap().len() as u64;
    assert_eq!(report["mounted"].as_u64(), Some(n), "{report}");
    assert_eq!(report["uploaded"], 0, "{report}");
    assert_eq!(report["bytesUploaded"], 0, "{report}");
    let (status, _, body) = reg
        .get(
            &format!("/v2/envbuild/by-digest/manifests/{}", s.digest),
            &[("Accept", MANIFEST_ACCEPT)],
        )
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(sha256(&body), s.digest);

    // A digest that is not the image's is refused before anything is sent.
    let wrong = format!("{}/envbuild/other@sha256:{}", reg.host(), "0".repeat(64));
    let o = push_cmd(
        &s.store,
        &s.home,
        &["push", s.spec.to_str().unwrap(), &wrong],
    )
    .output()
    .unwrap();
    let err = fails(o, "push to a wrong digest");
    assert!(
        err.contains(&s.digest) && err.contains(&"0".repeat(64)),
        "{err}"
    );
    eprintln!(
        "hello: first push {:.0?}, second push {:.0?} (each including a no-op realize)",
        first_time, second_time
    );
    drop(s.tmp);
}

#[test]
fn basic_auth_needs_credentials_and_takes_them_from_docker_config() {
    require_tool("htpasswd", "apache2-utils");
    let password = "pw-7Qz-never-shown";
    let entry = Command::new("htpasswd")
        .args(["-Bbn", "pusher", password])
        .output()
        .unwrap();
    assert!(entry.status.success());
    let reg = Registry::start(Some(&String::from_utf8(entry.stdout).unwrap()));
    let s = setup();
    let reference = format!("{}/team/hello:auth", reg.host());

    // No credentials anywhere: a clear error naming the registry.
    let o = push_cmd(
        &s.store,
        &s.home,
        &["push", s.spec.to_str().unwrap(), &reference],
    )
    .output()
    .unwrap();
    let err = fails(o, "push without credentials");
    assert!(err.contains(&reg.host()), "{err}");
    assert!(err.contains("credentials"), "{err}");
    assert!(err.contains("none are configured"), "{err}");

    // A wrong password: refused, and neither password is shown.
    let write_config = |pass: &str| {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("pusher:{pass}"));
        fs::write(
            s.home.join(".docker/config.json"),
            format!(r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#, reg.host()),
        )
        .unwrap();
        auth
    };
    let wrong_auth = write_config("wrong-pw-Xy1");
    let o = push_cmd(
        &s.store,
        &s.home,
        &["push", s.spec.to_str().unwrap(), &reference],
    )
    .output()
    .unwrap();
    let all = format!("{}{}", stdout(&o), stderr(&o));
    let err = fails(o, "push with a wrong password");
    assert!(err.contains("refused the credentials"), "{err}");
    assert!(
        !all.contains("wrong-pw-Xy1") && !all.contains(&wrong_auth),
        "{all}"
    );

    // The right one, from config.json: pushed, the password in no output.
    let auth = write_config(password);
    let o = push_cmd(
        &s.store,
        &s.home,
        &["-v", "--json", "push", s.spec.to_str().unwrap(), &reference],
    )
    .output()
    .unwrap();
    let all = format!("{}{}", stdout(&o), stderr(&o));
    let out = ok(o, "push with credentials");
    assert_eq!(out.lines().last().unwrap(), s.digest);
    assert!(!all.contains(password) && !all.contains(&auth), "{all}");
    let (status, _, _) = reg
        .get(
            "/v2/team/hello/manifests/auth",
            &[("Accept", MANIFEST_ACCEPT)],
        )
        .unwrap();
    assert_eq!(status, 401, "the registry does require authentication");
    let basic = format!("Basic {auth}");
    let (status, _, body) = reg
        .get(
            "/v2/team/hello/manifests/auth",
            &[("Accept", MANIFEST_ACCEPT), ("Authorization", &basic)],
        )
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(sha256(&body), s.digest);

    // A credential helper (docker-credential-NAME get, the host on stdin)
    // named by credHelpers for this registry.
    let bin = s.tmp.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    write(
        bin.join("docker-credential-envtest"),
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 3\nread -r host\n[ \"$host\" = {} ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"pusher\",\"Secret\":\"%s\"}}' \"$host\" '{password}'\n",
            reg.host()
        ),
        0o755,
    );
    fs::write(
        s.home.join(".docker/config.json"),
        format!(r#"{{"credHelpers": {{"{}": "envtest"}}}}"#, reg.host()),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = push_cmd(
        &s.store,
        &s.home,
        &[
            "-v",
            "push",
            s.spec.to_str().unwrap(),
            &format!("{}/team/hello:helper", reg.host()),
        ],
    )
    .env("PATH", path)
    .output()
    .unwrap();
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        ok(o, "push with a credential helper")
            .lines()
            .last()
            .unwrap(),
        s.digest
    );
    assert!(!all.contains(password), "{all}");
}

#[test]
fn a_bad_reference_fails_before_anything_is_built() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    for (reference, why) in [
        ("hello:1", "names no registry host"),
        ("registry.example:5000/Hello", "path component \"Hello\""),
    ] {
        let o = push_cmd(
            &store,
            tmp.path(),
            &["push", "/nonexistent/spec.toml", reference],
        )
        .output()
        .unwrap();
        let err = fails(o, "push to a bad reference");
        assert!(err.contains(why) && err.contains(reference), "{err}");
    }
    // The reference is checked before the store is even opened.
    assert!(!store.exists());
}

/// A token server for the registry's bearer flow on loopback: it answers
/// `GET /token` with a JWT (RS256, its certificate in `x5c`, signed with
/// `openssl dgst`) when the request carries the expected basic
/// credentials, and 401 otherwise; it keeps each request's target and
/// Authorization header.
struct TokenServer {
    port: u16,
    seen: Seen,
}

/// Each token request's target and Authorization header.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, Option<String>)>>>;

impl TokenServer {
    fn start(token: String, basic: String) -> TokenServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Seen = Default::default();
        let seen2 = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if std::io::BufRead::read_line(&mut reader, &mut line).is_err() {
                    continue;
                }
                let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut auth = None;
                loop {
                    let mut h = String::new();
                    match std::io::BufRead::read_line(&mut reader, &mut h) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if h == "\r\n" => break,
                        Ok(_) => {}
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("authorization") {
                            auth = Some(v.trim().to_string());
                        }
                    }
                }
                let ok = auth.as_deref() == Some(basic.as_str());
                seen2.lock().unwrap().push((target, auth));
                let (status, body) = if ok {
                    (
                        "200 OK",
                        format!(r#"{{"token": "{token}", "expires_in": 3600}}"#),
                    )
                } else {
                    ("401 Unauthorized", r#"{"details": "no"}"#.to_string())
                };
                let mut s = stream;
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        TokenServer { port, seen }
    }
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// A key and self-signed certificate (PEM paths) and a JWT for `repo`
/// signed with them, as distribution's token authentication checks it.
fn signed_token(dir: &Path, issuer: &str, service: &str, repo: &str) -> (PathBuf, String) {
    require_tool("openssl", "openssl");
    let key = dir.join("key.pem");
    let cert = dir.join("cert.pem");
    let st = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=envbuild-test-token", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "openssl req");
    let der = Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(der.status.success());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({
        "alg": "RS256", "typ": "JWT",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(&der.stdout)],
    });
    let claims = serde_json::json!({
        "iss": issuer, "sub": "pusher", "aud": service,
        "exp": now + 3600, "nbf": now - 60, "iat": now - 60, "jti": "envbuild-test-1",
        "access": [{"type": "repository", "name": repo, "actions": ["pull", "push"]}],
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let input_file = dir.join("jwt-input");
    fs::write(&input_file, &signing_input).unwrap();
    let sig = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(&key)
        .arg(&input_file)
        .output()
        .unwrap();
    assert!(sig.status.success(), "openssl dgst -sign");
    (cert, format!("{signing_input}.{}", b64url(&sig.stdout)))
}

#[test]
fn the_bearer_flow_gets_a_token_from_the_realm_with_the_configured_credentials() {
    let s = setup();
    let certs = tempfile::tempdir().unwrap();
    let (cert, token) = signed_token(
        certs.path(),
        "envbuild-test-issuer",
        "envbuild-test-registry",
        "team/hello",
    );
    let password = "tok-pw-3Kd-never-shown";
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("pusher:{password}"));
    let server = TokenServer::start(token.clone(), format!("Basic {auth}"));
    let reg = Registry::start_with_auth(&format!(
        "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: envbuild-test-registry\n    issuer: envbuild-test-issuer\n    rootcertbundle: {}\n",
        server.port,
        cert.display()
    ));
    let reference = format!("{}/team/hello:bearer", reg.host());

    // No credentials: the realm refuses, and the error says what is missing.
    let o = push_cmd(
        &s.store,
        &s.home,
        &["push", s.spec.to_str().unwrap(), &reference],
    )
    .output()
    .unwrap();
    let err = fails(o, "bearer push without credentials");
    assert!(
        err.contains(&reg.host()) && err.contains("none are configured"),
        "{err}"
    );
    assert!(err.contains("bearer"), "{err}");

    fs::write(
        s.home.join(".docker/config.json"),
        format!(r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#, reg.host()),
    )
    .unwrap();
    let o = push_cmd(
        &s.store,
        &s.home,
        &["-v", "--json", "push", s.spec.to_str().unwrap(), &reference],
    )
    .output()
    .unwrap();
    let all = format!("{}{}", stdout(&o), stderr(&o));
    let out = ok(o, "bearer push");
    assert_eq!(out.lines().last().unwrap(), s.digest);
    for secret in [password, auth.as_str(), token.as_str()] {
        assert!(!all.contains(secret), "a secret in the output: {all}");
    }
    let seen = server.seen.lock().unwrap().clone();
    let asked = seen
        .iter()
        .find(|(_, a)| a.as_deref() == Some(format!("Basic {auth}").as_str()))
        .unwrap_or_else(|| panic!("no token request with the credentials: {seen:?}"));
    assert!(asked.0.starts_with("/token?"), "{}", asked.0);
    assert!(
        asked.0.contains("service=envbuild-test-registry"),
        "{}",
        asked.0
    );
    assert!(
        asked
            .0
            .contains("scope=repository%3Ateam%2Fhello%3Apull%2Cpush"),
        "{}",
        asked.0
    );
    // The registry holds realize's manifest (read with the same token).
    let bearer = format!("Bearer {token}");
    let (status, _, body) = reg
        .get(
            "/v2/team/hello/manifests/bearer",
            &[("Accept", MANIFEST_ACCEPT), ("Authorization", &bearer)],
        )
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(sha256(&body), s.digest);
}

// ---------------------------------------------------------------------
// Counting, faults, chunks, TLS, login, realize --push, docker.
// ---------------------------------------------------------------------

use common::registry::{Action, Fault, Proxy, Seen as Request};

/// Requests of `method` whose path contains `part`.
fn count(seen: &[Request], method: &str, part: &str) -> usize {
    seen.iter()
        .filter(|s| s.method == method && s.path.contains(part))
        .count()
}

/// The hello example plus an incompressible file of `big` bytes in a
/// layer of its own, realized once.
fn setup_big(big: usize) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let spec = hello_example(&tmp.path().join("src"));
    let mut rng = Rng::new(15);
    fs::write(tmp.path().join("src/big.bin"), rng.bytes(big)).unwrap();
    let mut text = fs::read_to_string(&spec).unwrap();
    text.push_str("\n[[files]]\nsrc = \"big.bin\"\ndst = \"/opt/big.bin\"\n");
    fs::write(&spec, text).unwrap();
    let store = tmp.path().join("store");
    let home = tmp.path().join("home");
    fs::create_dir_all(home.join(".docker")).unwrap();
    let digest = realize(&store, &spec, &tmp.path().join("big.tar"), &[]);
    Setup {
        tmp,
        spec,
        store,
        home,
        digest,
    }
}

#[test]
fn a_second_push_uploads_no_blob_and_an_app_edit_uploads_one_layer_the_config_and_the_manifest() {
    let reg = Registry::start(None);
    let proxy = Proxy::start(reg.port);
    let s = setup();
    let reference = format!("{}/envbuild/count:1", proxy.host());

    let (report, last, _) = push_json(&s, &reference);
    assert_eq!(last, s.digest);
    let blobs = report["blobs"].as_array().unwrap().len();
    let seen = proxy.take();
    assert_eq!(count(&seen, "PUT", "/blobs/uploads/"), blobs, "{seen:#?}");
    assert_eq!(count(&seen, "PUT", "/manifests/"), 1);

    // Again: HEADs only, no upload started, the manifest put once.
    let (report, _, _) = push_json(&s, &reference);
    assert_eq!(report["uploaded"], 0);
    let seen = proxy.take();
    assert_eq!(count(&seen, "POST", "/blobs/uploads/"), 0, "{seen:#?}");
    assert_eq!(count(&seen, "PUT", "/blobs/uploads/"), 0, "{seen:#?}");
    assert_eq!(count(&seen, "PATCH", "/blobs/uploads/"), 0, "{seen:#?}");
    assert_eq!(count(&seen, "HEAD", "/blobs/"), blobs);
    assert_eq!(count(&seen, "PUT", "/manifests/"), 1);

    // An app edit: one layer blob, the config and the manifest.
    let msg = s.tmp.path().join("src/hello/app/message.txt");
    let mut text = fs::read_to_string(&msg).unwrap();
    text.push_str("edited\n");
    fs::write(&msg, text).unwrap();
    let (report, last, _) = push_json(&s, &reference);
    assert_ne!(last, s.digest, "the edit changes the image");
    let seen = proxy.take();
    assert_eq!(count(&seen, "PUT", "/blobs/uploads/"), 2, "{seen:#?}");
    assert_eq!(count(&seen, "PUT", "/manifests/"), 1);
    assert_eq!(report["uploaded"], 2, "{report}");
    let uploaded: Vec<&str> = report["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["outcome"] == "uploaded")
        .map(|b| b["kind"].as_str().unwrap())
        .collect();
    assert_eq!(uploaded, ["config", "layer"], "{report}");
    let (status, _, body) = reg
        .get(
            "/v2/envbuild/count/manifests/1",
            &[("Accept", MANIFEST_ACCEPT)],
        )
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(sha256(&body), last);
}

/// The chunk size the fault tests push with: a 3 MiB layer goes up in
/// 12 chunks.
const CHUNK: u64 = 256 * 1024;

fn push_chunked(s: &Setup, reference: &str) -> Output {
    push_cmd(
        &s.store,
        &s.home,
        &["--json", "push", s.spec.to_str().unwrap(), reference],
    )
    .env("ENVBUILD_PUSH_CHUNK_SIZE", CHUNK.to_string())
    .output()
    .unwrap()
}

#[test]
fn a_500_is_retried_and_a_chunked_upload_cut_half_way_resumes_where_the_registry_stood() {
    let big = 3 << 20;
    let s = setup_big(big);
    let reg = Registry::start(None);
    let proxy = Proxy::start(reg.port);
    let reference = format!("{}/envbuild/faults:1", proxy.host());
    // The first upload start and the first manifest PUT fail with 5xx;
    // the third chunk's connection is cut before the registry sees it.
    proxy.fault(Fault {
        method: "POST",
        path: "/blobs/uploads/",
        nth: 1,
        times: 1,
        action: Action::Status(500),
    });
    proxy.fault(Fault {
        method: "PUT",
        path: "/manifests/",
        nth: 1,
        times: 1,
        action: Action::Status(503),
    });
    proxy.fault(Fault {
        method: "PATCH",
        path: "/blobs/uploads/",
        nth: 3,
        times: 1,
        action: Action::DropBeforeForward,
    });
    let o = push_chunked(&s, &reference);
    let out = ok(o, "push through faults");
    assert_eq!(out.lines().last().unwrap(), s.digest);
    let report: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let layer = report["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["size"].as_u64().unwrap() > big as u64)
        .unwrap_or_else(|| panic!("no layer above {big} bytes: {report}"))
        .clone();
    let seen = proxy.take();
    // Retried: the 500 and the 503 were followed by a success.
    let manifest_puts: Vec<u16> = seen
        .iter()
        .filter(|x| x.method == "PUT" && x.path.contains("/manifests/"))
        .map(|x| x.status)
        .collect();
    assert_eq!(manifest_puts, [503, 201]);
    // The chunks: every byte of each chunked blob (the 3 MiB layer and any
    // other above the chunk size) reached the registry once (the cut
    // chunk forwarded nothing), after one status request (204).
    let chunked: Vec<u64> = report["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["size"].as_u64().unwrap())
        .filter(|&n| n > CHUNK)
        .collect();
    let patches: Vec<&Request> = seen.iter().filter(|x| x.method == "PATCH").collect();
    let chunks: usize = chunked.iter().map(|n| n.div_ceil(CHUNK) as usize).sum();
    assert!(chunks >= 12, "{chunked:?}");
    assert_eq!(patches.len(), chunks + 1, "{patches:#?}");
    let forwarded: u64 = patches.iter().map(|p| p.body).sum();
    assert_eq!(
        forwarded,
        chunked.iter().sum::<u64>(),
        "no chunk was sent twice: {patches:#?}"
    );
    // Blobs up to the chunk size went up whole, one PUT each.
    let whole = report["blobs"].as_array().unwrap().len() - chunked.len();
    let puts_with_body = seen
        .iter()
        .filter(|x| x.method == "PUT" && x.path.contains("/blobs/uploads/") && x.body > 0)
        .count();
    assert_eq!(puts_with_body, whole, "{seen:#?}");
    assert!(patches.iter().all(|p| p.body <= CHUNK));
    let asked: Vec<u16> = seen
        .iter()
        .filter(|x| x.method == "GET" && x.path.contains("/blobs/uploads/"))
        .map(|x| x.status)
        .collect();
    assert_eq!(asked, [204], "one status request: {seen:#?}");
    // The registry holds the layer whole.
    let d = layer["digest"].as_str().unwrap();
    let (status, _, body) = reg
        .get(&format!("/v2/envbuild/faults/blobs/{d}"), &[])
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(sha256(&body), d);
    verify_clean(&s.store);
}

#[test]
fn a_chunk_cut_mid_body_restarts_the_blob_when_the_registry_drops_its_session() {
    let big = 3 << 20;
    let s = setup_big(big);
    let reg = Registry::start(None);
    let proxy = Proxy::start(reg.port);
    let reference = format!("{}/envbuild/cut:1", proxy.host());
    proxy.fault(Fault {
        method: "PATCH",
        path: "/blobs/uploads/",
        nth: 4,
        times: 1,
        action: Action::CutMidBody,
    });
    let o = push_chunked(&s, &reference);
    let out = ok(o, "push with a cut chunk");
    assert_eq!(out.lines().last().unwrap(), s.digest);
    let seen = proxy.take();
    let cut: Vec<&Request> = seen
        .iter()
        .filter(|x| x.method == "PATCH" && x.status == 0)
        .collect();
    assert_eq!(cut.len(), 1, "{seen:#?}");
    assert!(cut[0].body > 0 && cut[0].body < CHUNK, "{cut:?}");
    // The registry (distribution 2.x) cancels a session whose bytes do not
    // match its state: the status request is refused and the blob starts
    // over in a new session; it arrives whole.
    let asked: Vec<u16> = seen
        .iter()
        .filter(|x| x.method == "GET" && x.path.contains("/blobs/uploads/"))
        .map(|x| x.status)
        .collect();
    assert_eq!(asked.len(), 1, "{seen:#?}");
    let blobs = serde_json::from_str::<serde_json::Value>(out.lines().next().unwrap()).unwrap()
        ["blobs"]
        .as_array()
        .unwrap()
        .len();
    eprintln!(
        "a chunk cut mid-body: the status request was answered {}",
        asked[0]
    );
    if asked[0] == 204 {
        assert_eq!(count(&seen, "POST", "/blobs/uploads/"), blobs, "resumed");
    } else {
        assert_eq!(
            count(&seen, "POST", "/blobs/uploads/"),
            blobs + 1,
            "restarted: {seen:#?}"
        );
    }
    let (status, _, body) = reg
        .get(
            "/v2/envbuild/cut/manifests/1",
            &[("Accept", MANIFEST_ACCEPT)],
        )
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(sha256(&body), s.digest);
    let manifest: serde_json::Value = serde_json::from_slice(&body).unwrap();
    for l in manifest["layers"].as_array().unwrap() {
        let d = l["digest"].as_str().unwrap();
        let (status, _, body) = reg
            .get(&format!("/v2/envbuild/cut/blobs/{d}"), &[])
            .unwrap();
        assert_eq!((status, sha256(&body)), (200, d.to_string()));
    }
    verify_clean(&s.store);
}

#[test]
fn an_upload_that_keeps_failing_gives_up_naming_the_blob_and_leaves_the_store_as_it_was() {
    let s = setup_big(1 << 20);
    let reg = Registry::start(None);
    let proxy = Proxy::start(reg.port);
    proxy.fault(Fault {
        method: "PATCH",
        path: "/blobs/uploads/",
        nth: 1,
        times: 1000,
        action: Action::Status(500),
    });
    let before = store_snapshot(&s.store);
    let o = push_chunked(&s, &format!("{}/envbuild/failing:1", proxy.host()));
    let out = stdout(&o);
    assert!(!o.status.success());
    let err: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let msg = err["error"]["message"].as_str().unwrap();
    assert_eq!(err["error"]["kind"], "registry", "{err}");
    assert!(msg.contains("gave up after 5 failed tries"), "{msg}");
    assert!(msg.contains("layer blob sha256:"), "{msg}");
    assert!(msg.contains("HTTP 500"), "{msg}");
    assert_eq!(store_snapshot(&s.store), before, "nothing new in the store");
    verify_clean(&s.store);
    // Nothing was tagged.
    let (status, _, _) = reg
        .get(
            "/v2/envbuild/failing/manifests/1",
            &[("Accept", MANIFEST_ACCEPT)],
        )
        .unwrap();
    assert_eq!(status, 404);
}

#[test]
fn realize_push_exports_then_pushes_through_the_same_push() {
    let reg = Registry::start(None);
    let s = setup();
    let reference = format!("{}/envbuild/realized:1", reg.host());
    let out_tar = s.tmp.path().join("again.tar");
    let o = push_cmd(
        &s.store,
        &s.home,
        &[
            "--json",
            "realize",
            s.spec.to_str().unwrap(),
            "-o",
            out_tar.to_str().unwrap(),
            "--push",
            &reference,
        ],
    )
    .output()
    .unwrap();
    let out = ok(o, "realize --push");
    assert_eq!(out.lines().last().unwrap(), s.digest);
    assert!(out_tar.is_file(), "the export is written too");
    let doc: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let push = &doc["push"];
    assert_eq!(push["digest"], s.digest, "{doc}");
    assert_eq!(push["reference"], reference);
    let n = push["blobs"].as_array().unwrap().len();
    assert_eq!(push["uploaded"].as_u64(), Some(n as u64), "{doc}");
    assert!(doc["layers"].is_array(), "realize's own report: {doc}");
    // `push` afterwards finds everything there: one push, one record.
    let (report, last, _) = push_json(&s, &reference);
    assert_eq!(
        (last.as_str(), &report["uploaded"]),
        (s.digest.as_str(), &serde_json::json!(0))
    );
    // A bad reference fails before anything is built or written.
    let o = push_cmd(
        &s.store,
        &s.home,
        &["realize", "/nonexistent/spec.toml", "--push", "nohost:1"],
    )
    .output()
    .unwrap();
    let err = fails(o, "realize --push to a bad reference");
    assert!(err.contains("names no registry host"), "{err}");
}

#[test]
fn docker_pulls_the_pushed_image_and_runs_what_the_archive_runs() {
    if !docker_works() {
        eprintln!("note: `docker info` fails here; docker pull was not checked");
        return;
    }
    let reg = Registry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let tag = format!("pushpull-{}", std::process::id());
    let spec = hello_example_tagged(&tmp.path().join("src"), &tag);
    let store = tmp.path().join("store");
    let tar = tmp.path().join("hello.tar");
    let digest = realize(&store, &spec, &tar, &[]);
    let home = tmp.path().join("home");
    let reference = format!("{}/envbuild/hello-docker:{tag}", reg.host());
    let o = push_cmd(&store, &home, &["push", spec.to_str().unwrap(), &reference])
        .output()
        .unwrap();
    assert_eq!(ok(o, "push for docker"), digest);
    let o = Command::new("docker")
        .args(["pull", &reference])
        .output()
        .unwrap();
    let pulled = ok(o, "docker pull");
    assert!(
        pulled.contains(&digest),
        "docker names the digest: {pulled}"
    );
    let o = Command::new("docker")
        .args(["run", "--rm", &reference])
        .output()
        .unwrap();
    let _ = Command::new("docker")
        .args(["rmi", "-f", &reference])
        .output();
    let from_registry = ok(o, "docker run of the pulled image");
    let from_archive = docker_run(&tar, &format!("hello:{tag}"), &[]).unwrap();
    assert!(!from_registry.is_empty());
    assert_eq!(from_registry, from_archive);
}

/// A throwaway CA and a server certificate it signed for 127.0.0.1 and
/// localhost: (ca.pem, server.pem, server.key).
fn throwaway_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    require_tool("openssl", "openssl");
    let (ca_key, ca) = (dir.join("ca.key"), dir.join("ca.pem"));
    let (key, csr, cert) = (
        dir.join("server.key"),
        dir.join("server.csr"),
        dir.join("server.pem"),
    );
    let ext = dir.join("server.ext");
    fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let openssl = |args: &[&dyn AsRef<std::ffi::OsStr>]| {
        let mut c = Command::new("openssl");
        for a in args {
            c.arg(a.as_ref());
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "openssl: {}", stderr(&o));
    };
    openssl(&[
        &"req",
        &"-x509",
        &"-newkey",
        &"rsa:2048",
        &"-nodes",
        &"-days",
        &"2",
        &"-subj",
        &"/CN=envbuild throwaway test CA",
        &"-addext",
        &"basicConstraints=critical,CA:TRUE",
        &"-addext",
        &"keyUsage=critical,keyCertSign,cRLSign",
        &"-keyout",
        &ca_key,
        &"-out",
        &ca,
    ]);
    openssl(&[
        &"req",
        &"-newkey",
        &"rsa:2048",
        &"-nodes",
        &"-subj",
        &"/CN=127.0.0.1",
        &"-keyout",
        &key,
        &"-out",
        &csr,
    ]);
    openssl(&[
        &"x509",
        &"-req",
        &"-in",
        &csr,
        &"-CA",
        &ca,
        &"-CAkey",
        &ca_key,
        &"-CAcreateserial",
        &"-days",
        &"2",
        &"-extfile",
        &ext,
        &"-out",
        &cert,
    ]);
    (ca, cert, key)
}

fn htpasswd_entry(user: &str, password: &str) -> String {
    require_tool("htpasswd", "apache2-utils");
    let o = Command::new("htpasswd")
        .args(["-Bbn", user, password])
        .output()
        .unwrap();
    assert!(o.status.success());
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn a_tls_registry_with_htpasswd_takes_a_push_with_its_ca_in_ssl_cert_file_and_refuses_clearly() {
    let s = setup();
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = throwaway_ca(certs.path());
    let password = "tls-pw-9Rt-never-shown";
    let reg = Registry::start_tls(Some(&htpasswd_entry("pusher", password)), &cert, &key);
    let reference = format!("{}/team/hello:tls", reg.host());
    let write_config = |pass: &str| {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("pusher:{pass}"));
        fs::write(
            s.home.join(".docker/config.json"),
            format!(r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#, reg.host()),
        )
        .unwrap();
        auth
    };
    let push = |extra_env: Option<&Path>, reference: &str| {
        // -vv: every request and retry is logged, and no secret with it.
        let mut c = push_cmd(
            &s.store,
            &s.home,
            &["-vv", "--json", "push", s.spec.to_str().unwrap(), reference],
        );
        c.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
        if let Some(ca) = extra_env {
            c.env("SSL_CERT_FILE", ca);
        }
        c.output().unwrap()
    };
    let secrets_absent = |o: &Output, secrets: &[&str]| {
        let all = format!("{}{}", stdout(o), stderr(o));
        for x in secrets {
            assert!(!all.contains(x), "a secret in the output: {all}");
        }
    };

    // The right credentials and the CA: pushed over TLS.
    let auth = write_config(password);
    let o = push(Some(&ca), &reference);
    secrets_absent(&o, &[password, &auth]);
    let out = ok(o, "push over TLS");
    assert_eq!(out.lines().last().unwrap(), s.digest);
    let report: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert!(report["uploaded"].as_u64().unwrap() >= 2, "{report}");
    // And read back over TLS: pull resolves it to the same digest.
    let o = push_cmd(&s.store, &s.home, &["pull", &reference])
        .env("SSL_CERT_FILE", &ca)
        .output()
        .unwrap();
    assert_eq!(ok(o, "pull over TLS").lines().last().unwrap(), s.digest);

    // Wrong credentials: refused, and neither is shown.
    let wrong = write_config("wrong-tls-pw-Qq4");
    let o = push(Some(&ca), &format!("{}/team/hello:again", reg.host()));
    secrets_absent(&o, &["wrong-tls-pw-Qq4", &wrong, password]);
    let doc: serde_json::Value = serde_json::from_str(stdout(&o).lines().next().unwrap()).unwrap();
    let msg = doc["error"]["message"].as_str().unwrap();
    assert!(msg.contains("refused the credentials"), "{msg}");
    assert!(msg.contains(&reg.host()), "{msg}");

    // The CA not trusted: a clear error about the certificate, and what to do.
    write_config(password);
    let o = push(None, &format!("{}/team/hello:untrusted", reg.host()));
    secrets_absent(&o, &[password]);
    let doc: serde_json::Value = serde_json::from_str(stdout(&o).lines().next().unwrap()).unwrap();
    let msg = doc["error"]["message"].as_str().unwrap();
    assert_eq!(doc["error"]["kind"], "registry", "{doc}");
    assert!(msg.contains("certificate"), "{msg}");
    assert!(msg.contains("SSL_CERT_FILE"), "{msg}");
    assert!(msg.contains(&reg.host()), "{msg}");
    // SSL_CERT_FILE naming no certificates is an error naming it.
    let empty = certs.path().join("empty.pem");
    fs::write(&empty, "not a certificate\n").unwrap();
    let o = push(Some(&empty), &reference);
    let err = stdout(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("SSL_CERT_FILE") && err.contains("empty.pem"),
        "{err}"
    );
}

#[test]
fn login_checks_the_credentials_then_stores_them_where_push_reads_them_and_logout_removes_them() {
    use std::os::unix::fs::PermissionsExt;
    let password = "login-pw-5Tz-never-shown";
    let reg = Registry::start(Some(&htpasswd_entry("pusher", password)));
    let s = setup();
    let auth_file = s.home.join("auth.json");
    let config = s.home.join(".docker/config.json");
    let login = |pass: &str, auth_file_set: bool| {
        let mut c = push_cmd(
            &s.store,
            &s.home,
            &[
                "--json",
                "login",
                &reg.host(),
                "--username",
                "pusher",
                "--password-stdin",
            ],
        );
        if !auth_file_set {
            c.env_remove("REGISTRY_AUTH_FILE");
        }
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{pass}\n").as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(!all.contains(pass), "the password in the output: {all}");
        o
    };
    let push = |tag: &str| {
        push_cmd(
            &s.store,
            &s.home,
            &[
                "push",
                s.spec.to_str().unwrap(),
                &format!("{}/team/hello:{tag}", reg.host()),
            ],
        )
        .output()
        .unwrap()
    };

    // A wrong password: refused by the registry, nothing stored.
    let o = login("wrong-login-pw", true);
    let doc: serde_json::Value = serde_json::from_str(stdout(&o).lines().next().unwrap()).unwrap();
    assert!(!o.status.success());
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("refused the credentials"),
        "{doc}"
    );
    assert!(!auth_file.exists() && !config.exists());

    // The right one: checked, then stored in $REGISTRY_AUTH_FILE (no
    // docker config exists), mode 0600; push reads it.
    let o = login(password, true);
    let out = ok(o, "login");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["verified"], true);
    assert_eq!(doc["storedIn"], auth_file.display().to_string());
    assert_eq!(
        fs::metadata(&auth_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = fs::read_to_string(&auth_file).unwrap();
    assert!(!text.contains(password), "stored as base64, as docker does");
    assert_eq!(ok(push("login"), "push after login"), s.digest);

    // logout: gone; push needs credentials again.
    let o = push_cmd(&s.store, &s.home, &["--json", "logout", &reg.host()])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&ok(o, "logout")).unwrap();
    assert_eq!(
        doc["removedFrom"],
        serde_json::json!([auth_file.display().to_string()])
    );
    let err = fails(push("logout"), "push after logout");
    assert!(err.contains("none are configured"), "{err}");

    // Without REGISTRY_AUTH_FILE and no auth.json: a new docker config.
    fs::remove_file(&auth_file).unwrap();
    let o = login(password, false);
    let doc: serde_json::Value = serde_json::from_str(&ok(o, "login to docker config")).unwrap();
    assert_eq!(doc["storedIn"], config.display().to_string());
    assert_eq!(
        fs::metadata(&config).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!auth_file.exists());
    assert_eq!(ok(push("docker-config"), "push after login"), s.digest);

    // No password on a non-terminal stdin without --password-stdin: a
    // clear error, not a hang.
    let o = push_cmd(
        &s.store,
        &s.home,
        &["login", &reg.host(), "--username", "pusher"],
    )
    .stdin(Stdio::null())
    .output()
    .unwrap();
    let err = fails(o, "login without a password");
    assert!(err.contains("--password-stdin"), "{err}");
}

/// This machine's address on its outgoing interface (not loopback), if it
/// has one: a UDP socket "connected" to a documentation address (RFC 5737;
/// no packet is sent) says which.
fn non_loopback_ip() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[test]
fn plain_http_is_spoken_off_loopback_only_to_a_registry_named_insecure() {
    let Some(ip) = non_loopback_ip() else {
        eprintln!("note: no non-loopback address here; the insecure-registry rule was not checked end to end");
        return;
    };
    let reg = Registry::start(None);
    // A plain HTTP registry reachable at a non-loopback address.
    let proxy = Proxy::start_at(ip, reg.port);
    let s = setup();
    let reference = format!("{}/envbuild/insecure:1", proxy.host());
    let o = push_cmd(
        &s.store,
        &s.home,
        &["push", s.spec.to_str().unwrap(), &reference],
    )
    .output()
    .unwrap();
    let err = fails(o, "push over TLS to a plain HTTP registry");
    assert!(err.contains("does not speak TLS"), "{err}");
    assert!(err.contains("--insecure-registry"), "{err}");
    assert!(
        proxy.take().is_empty(),
        "nothing was sent in plain HTTP before the flag"
    );
    // Named insecure (HOST:PORT): pushed in plain HTTP.
    let o = push_cmd(
        &s.store,
        &s.home,
        &[
            "push",
            s.spec.to_str().unwrap(),
            &reference,
            "--insecure-registry",
            &proxy.host(),
        ],
    )
    .output()
    .unwrap();
    assert_eq!(ok(o, "push to a registry named insecure"), s.digest);
    let seen = proxy.take();
    assert_eq!(count(&seen, "PUT", "/manifests/"), 1, "{seen:#?}");
}
