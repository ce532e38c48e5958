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
