//! `envbuild login` / `logout`: credentials checked against the registry,
//! then kept where [`super::auth`]'s lookup finds them first.
//!
//! **Checking.** `GET /v2/` with the registry's challenge answered as a
//! push answers it ([`super::Session`]): `Basic` with the credentials, or
//! `Bearer`, a token from the realm for the registry's `service` (no
//! repository scope). A 401 after authenticating is a refusal; nothing is
//! stored then.
//!
//! **Where they are stored** (the rule follows the lookup order, so that
//! what `login` stores is what `push` reads):
//!
//! 1. the docker config (`$DOCKER_CONFIG/config.json`, else
//!    `~/.docker/config.json`) when it exists: into the credential helper
//!    it names for the registry (`credHelpers.<host>`), else into its
//!    `credsStore` helper (`docker-credential-NAME store`, as `docker
//!    login` does; an `auths` entry for the host loses its `auth` so it
//!    does not shadow the helper), else as `auths.<host>.auth`;
//! 2. else the containers auth file: `$REGISTRY_AUTH_FILE` when set, else
//!    `$XDG_RUNTIME_DIR/containers/auth.json` when it exists (podman's);
//! 3. else a new docker config (its directory made 0700).
//!
//! A file is rewritten atomically (a temporary file beside it, synced,
//! renamed) with mode 0600, every other key kept. `logout` removes the
//! host's entry from both files and asks the helpers to erase it.
//! The password is never printed, logged or put in an error.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;

use super::{CredentialPlaces, Credentials, PushOptions, Reference, RegistryError, Session};
use crate::net::{self, Body, Client, HeaderMap, Method};

/// Where credentials were stored (or removed from), for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    File(PathBuf),
    /// A `docker-credential-NAME` helper.
    Helper(String),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::File(p) => write!(f, "{}", p.display()),
            Place::Helper(h) => write!(f, "docker-credential-{h}"),
        }
    }
}

/// Check `creds` against `registry` (`HOST[:PORT]`): `Ok(true)` when the
/// registry accepted them, `Ok(false)` when it asks for none.
pub fn verify(
    client: &Client,
    registry: &Reference,
    creds: &Credentials,
    insecure: &[String],
) -> Result<bool, RegistryError> {
    let opts = PushOptions {
        insecure: insecure.to_vec(),
        ..PushOptions::default()
    };
    let session = Session::new(client, registry, &opts);
    *session.credentials.lock().expect("credentials lock") = Some(Some(creds.clone()));
    let url = format!("{}/v2/", session.base());
    let what = "checking the credentials (GET /v2/)";
    let answer = session.call(Method::GET, &url, &HeaderMap::new(), Body::Empty, what)?;
    if answer.status != 200 {
        return Err(session.status_err(what, &answer, "200"));
    }
    let authenticated = session.authorization.lock().expect("auth lock").is_some();
    Ok(authenticated)
}

/// Store `creds` for `registry` (`host[:port]`) by the rule above;
/// `auth_file_named`: `$REGISTRY_AUTH_FILE` is set (the auth file is
/// then used even when it does not exist yet).
pub fn store(
    places: &CredentialPlaces,
    auth_file_named: bool,
    registry: &str,
    creds: &Credentials,
) -> Result<Place, RegistryError> {
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", creds.username, creds.password));
    if let Some(config_path) = &places.docker_config {
        if let Some(mut doc) = read_json(config_path)? {
            let helper = doc
                .get("credHelpers")
                .and_then(|h| h.get(registry))
                .and_then(|v| v.as_str())
                .or_else(|| doc.get("credsStore").and_then(|v| v.as_str()))
                .filter(|h| !h.is_empty())
                .map(str::to_string);
            if let Some(helper) = helper {
                helper_store(&helper, registry, creds)?;
                // An old `auth` in the file would be read before the helper.
                if remove_entry(&mut doc, registry) {
                    write_json(config_path, &doc)?;
                }
                return Ok(Place::Helper(helper));
            }
            set_entry(config_path, &mut doc, registry, &auth)?;
            write_json(config_path, &doc)?;
            return Ok(Place::File(config_path.clone()));
        }
    }
    if let Some(path) = &places.auth_file {
        let existing = read_json(path)?;
        if existing.is_some() || auth_file_named {
            let mut doc = existing.unwrap_or_else(|| serde_json::json!({}));
            set_entry(path, &mut doc, registry, &auth)?;
            write_json(path, &doc)?;
            return Ok(Place::File(path.clone()));
        }
    }
    let path = places
        .docker_config
        .as_ref()
        .ok_or_else(|| RegistryError::CredentialsFile {
            path: PathBuf::from("~/.docker/config.json"),
            problem: "nowhere to store credentials: neither DOCKER_CONFIG, HOME nor REGISTRY_AUTH_FILE is set".into(),
        })?;
    let mut doc = serde_json::json!({});
    set_entry(path, &mut doc, registry, &auth)?;
    write_json(path, &doc)?;
    Ok(Place::File(path.clone()))
}

/// Remove what is stored for `registry` everywhere lookup reads; the
/// places it was removed from.
pub fn remove(places: &CredentialPlaces, registry: &str) -> Result<Vec<Place>, RegistryError> {
    let mut out = Vec::new();
    if let Some(path) = &places.docker_config {
        if let Some(mut doc) = read_json(path)? {
            let mut helpers: Vec<String> = Vec::new();
            for h in [
                doc.get("credHelpers")
                    .and_then(|h| h.get(registry))
                    .and_then(|v| v.as_str()),
                doc.get("credsStore").and_then(|v| v.as_str()),
            ]
            .into_iter()
            .flatten()
            .filter(|h| !h.is_empty())
            {
                if !helpers.iter().any(|x| x == h) {
                    helpers.push(h.to_string());
                }
            }
            for h in helpers {
                if helper_erase(&h, registry)? {
                    out.push(Place::Helper(h));
                }
            }
            if remove_entry(&mut doc, registry) {
                write_json(path, &doc)?;
                out.push(Place::File(path.clone()));
            }
        }
    }
    if let Some(path) = &places.auth_file {
        if let Some(mut doc) = read_json(path)? {
            if remove_entry(&mut doc, registry) {
                write_json(path, &doc)?;
                out.push(Place::File(path.clone()));
            }
        }
    }
    Ok(out)
}

fn file_err(path: &Path, problem: String) -> RegistryError {
    RegistryError::CredentialsFile {
        path: path.into(),
        problem,
    }
}

/// The file as a JSON object; `None` when it does not exist.
fn read_json(path: &Path) -> Result<Option<serde_json::Value>, RegistryError> {
    let bytes = match crate::io::read_regular(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(file_err(path, e.to_string())),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some(serde_json::json!({})));
    }
    // serde_json's message names a line and column, never the content.
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        file_err(
            path,
            format!("expected the JSON of a docker config.json / containers auth.json: {e}"),
        )
    })?;
    if !v.is_object() {
        return Err(file_err(
            path,
            "expected a JSON object (a docker config.json / containers auth.json), found another JSON value".into(),
        ));
    }
    Ok(Some(v))
}

/// `auths.<registry> = {"auth": ...}`, other keys of the entry kept.
fn set_entry(
    path: &Path,
    doc: &mut serde_json::Value,
    registry: &str,
    auth: &str,
) -> Result<(), RegistryError> {
    let obj = doc.as_object_mut().expect("checked to be an object");
    let auths = obj.entry("auths").or_insert_with(|| serde_json::json!({}));
    let auths = auths
        .as_object_mut()
        .ok_or_else(|| file_err(path, "expected `auths` to be a JSON object".into()))?;
    let entry = auths
        .entry(registry.to_string())
        .or_insert_with(|| serde_json::json!({}));
    if !entry.is_object() {
        *entry = serde_json::json!({});
    }
    entry
        .as_object_mut()
        .expect("an object")
        .insert("auth".into(), serde_json::Value::String(auth.to_string()));
    Ok(())
}

/// Drop the `auth` of every `auths` entry for `registry` (its
/// `host[:port]` or a URL of it); whether anything was dropped.
fn remove_entry(doc: &mut serde_json::Value, registry: &str) -> bool {
    let Some(auths) = doc.get_mut("auths").and_then(|a| a.as_object_mut()) else {
        return false;
    };
    let keys: Vec<String> = auths
        .keys()
        .filter(|k| super::auth::auth_key_host(k) == registry)
        .cloned()
        .collect();
    let mut removed = false;
    for k in keys {
        let had_auth = auths
            .get(&k)
            .and_then(|e| e.get("auth"))
            .is_some_and(|a| a.as_str().is_some_and(|s| !s.is_empty()));
        removed |= had_auth;
        let only_auth = auths
            .get(&k)
            .and_then(|e| e.as_object())
            .is_none_or(|o| o.keys().all(|key| key == "auth"));
        if only_auth {
            auths.remove(&k);
        } else if let Some(o) = auths.get_mut(&k).and_then(|e| e.as_object_mut()) {
            o.remove("auth");
        }
    }
    removed
}

/// Write `doc` to `path` atomically with mode 0600 (a new directory
/// 0700).
fn write_json(path: &Path, doc: &serde_json::Value) -> Result<(), RegistryError> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = crate::io::parent_dir(path);
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| file_err(path, format!("creating its directory: {e}")))?;
    }
    let mut bytes = serde_json::to_vec_pretty(doc).expect("JSON values serialize");
    bytes.push(b'\n');
    crate::io::write_atomically_with_mode(path, &bytes, 0o600)
        .map_err(|e| file_err(path, format!("writing it: {e}")))
}

fn helper_program(name: &str, registry: &str) -> Result<String, RegistryError> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(RegistryError::CredentialHelper {
            helper: name.to_string(),
            registry: net::redact(registry),
            problem: "the helper name is not letters, digits, '-', '_' or '.'".into(),
        });
    }
    Ok(format!("docker-credential-{name}"))
}

/// Run `docker-credential-NAME VERB` with `input` on stdin; its exit
/// status and first line of output (redacted, for errors).
fn run_helper(
    name: &str,
    verb: &str,
    registry: &str,
    input: &[u8],
) -> Result<(bool, String), RegistryError> {
    let program = helper_program(name, registry)?;
    let bad = |problem: String| RegistryError::CredentialHelper {
        helper: name.to_string(),
        registry: net::redact(registry),
        problem,
    };
    let mut child = Command::new(&program)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| bad(format!("cannot run {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| bad(format!("waiting for {program}: {e}")))?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let first: String = text
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    Ok((out.status.success(), net::redact(&first)))
}

fn helper_store(name: &str, registry: &str, creds: &Credentials) -> Result<(), RegistryError> {
    let input = serde_json::json!({
        "ServerURL": registry,
        "Username": creds.username,
        "Secret": creds.password,
    })
    .to_string();
    let (ok, said) = run_helper(name, "store", registry, input.as_bytes())?;
    if ok {
        return Ok(());
    }
    // The helper's words may echo its input: say only that it failed
    // unless they hold no secret.
    let said = if said.contains(&creds.password) {
        String::new()
    } else {
        format!(" ({said})")
    };
    Err(RegistryError::CredentialHelper {
        helper: name.to_string(),
        registry: net::redact(registry),
        problem: format!("docker-credential-{name} store failed{said}"),
    })
}

/// Whether the helper erased something.
fn helper_erase(name: &str, registry: &str) -> Result<bool, RegistryError> {
    let (ok, said) = run_helper(name, "erase", registry, registry.as_bytes())?;
    if ok {
        return Ok(true);
    }
    if said.contains("credentials not found") {
        return Ok(false);
    }
    Err(RegistryError::CredentialHelper {
        helper: name.to_string(),
        registry: net::redact(registry),
        problem: format!("docker-credential-{name} erase failed ({said})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(p: &str) -> Credentials {
        Credentials {
            username: "alice".into(),
            password: p.into(),
            source: "test".into(),
        }
    }

    #[test]
    fn login_stores_where_lookup_reads_first_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let docker = dir.path().join("docker/config.json");
        let auth_file = dir.path().join("containers/auth.json");
        let places = CredentialPlaces {
            docker_config: Some(docker.clone()),
            auth_file: Some(auth_file.clone()),
        };
        // Nothing exists, no REGISTRY_AUTH_FILE: a new docker config.
        let at = store(&places, false, "127.0.0.1:5000", &creds("pw-1")).unwrap();
        assert_eq!(at, Place::File(docker.clone()));
        let mode = std::fs::metadata(&docker).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dmode = std::fs::metadata(docker.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dmode & 0o777, 0o700);
        let found = places.lookup("127.0.0.1:5000").unwrap().unwrap();
        assert_eq!(
            (found.username.as_str(), found.password.as_str()),
            ("alice", "pw-1")
        );
        // Other keys of the file are kept; a second login replaces the entry.
        std::fs::write(
            &docker,
            r#"{"auths": {"127.0.0.1:5000": {"auth": "eDp5", "email": "a@b"}}, "psFormat": "x"}"#,
        )
        .unwrap();
        store(&places, false, "127.0.0.1:5000", &creds("pw-2")).unwrap();
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&docker).unwrap()).unwrap();
        assert_eq!(doc["psFormat"], "x");
        assert_eq!(doc["auths"]["127.0.0.1:5000"]["email"], "a@b");
        assert_eq!(
            places.lookup("127.0.0.1:5000").unwrap().unwrap().password,
            "pw-2"
        );
        // logout: gone from the file, other keys stay.
        let removed = remove(&places, "127.0.0.1:5000").unwrap();
        assert_eq!(removed, vec![Place::File(docker.clone())]);
        assert!(places.lookup("127.0.0.1:5000").unwrap().is_none());
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&docker).unwrap()).unwrap();
        assert_eq!(doc["auths"]["127.0.0.1:5000"]["email"], "a@b");
        assert!(remove(&places, "127.0.0.1:5000").unwrap().is_empty());

        // No docker config, REGISTRY_AUTH_FILE named: that file.
        std::fs::remove_file(&docker).unwrap();
        let at = store(&places, true, "[::1]:5000", &creds("pw-3")).unwrap();
        assert_eq!(at, Place::File(auth_file.clone()));
        assert!(!docker.exists());
        let mode = std::fs::metadata(&auth_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            places.lookup("[::1]:5000").unwrap().unwrap().password,
            "pw-3"
        );
        // It exists now: used without being named, too.
        store(&places, false, "h.example:1", &creds("pw-4")).unwrap();
        assert!(!docker.exists());
        assert_eq!(
            places.lookup("h.example:1").unwrap().unwrap().password,
            "pw-4"
        );
        // No leftovers beside the files.
        let names: Vec<_> = std::fs::read_dir(auth_file.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("auth.json")]);
        // A file that is not a JSON object is refused, not overwritten.
        std::fs::write(&auth_file, "[1, 2]").unwrap();
        let e = store(&places, true, "h.example:1", &creds("pw-5")).unwrap_err();
        assert!(e.to_string().contains("expected a JSON object"), "{e}");
        assert!(!e.to_string().contains("pw-5"));
        assert_eq!(std::fs::read(&auth_file).unwrap(), b"[1, 2]");
    }
}
