//! Registry credentials and challenges.
//!
//! Credentials are looked up for a registry's `host[:port]` in, first to
//! last: `$DOCKER_CONFIG/config.json` (else `~/.docker/config.json`):
//! `credHelpers.<host>`, then `auths.<host>.auth` (base64 `user:password`),
//! then `credsStore`; then `$REGISTRY_AUTH_FILE`, else
//! `$XDG_RUNTIME_DIR/containers/auth.json` (`auths.<host>.auth`). A helper
//! is run as `docker-credential-<name> get` with the host on stdin and
//! answers `{"Username": ..., "Secret": ...}`.
//!
//! [`Credentials`] has no `Debug` that shows its secret and is never put in
//! an error; only [`Credentials::source`] (where it came from) is shown.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;

use super::RegistryError;

/// A user name and password (or token) for one registry.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// Where they came from (a file or a helper), for messages.
    pub source: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// `Basic base64(user:password)`.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// Where credentials are looked for: the environment's variables, read
/// once (tests pass their own).
#[derive(Debug, Clone, Default)]
pub struct CredentialPlaces {
    /// `$DOCKER_CONFIG/config.json` or `$HOME/.docker/config.json`.
    pub docker_config: Option<PathBuf>,
    /// `$REGISTRY_AUTH_FILE` or `$XDG_RUNTIME_DIR/containers/auth.json`.
    pub auth_file: Option<PathBuf>,
}

impl CredentialPlaces {
    pub fn from_env() -> CredentialPlaces {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        CredentialPlaces {
            docker_config: var("DOCKER_CONFIG")
                .map(|d| PathBuf::from(d).join("config.json"))
                .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))),
            auth_file: var("REGISTRY_AUTH_FILE").map(PathBuf::from).or_else(|| {
                var("XDG_RUNTIME_DIR").map(|d| PathBuf::from(d).join("containers/auth.json"))
            }),
        }
    }

    /// The credentials for `registry` (`host[:port]`), if any are
    /// configured.
    pub fn lookup(&self, registry: &str) -> Result<Option<Credentials>, RegistryError> {
        if let Some(path) = &self.docker_config {
            if let Some(config) = read_config(path)? {
                if let Some(helper) = config.cred_helpers.get(registry) {
                    if let Some(c) = run_helper(helper, registry)? {
                        return Ok(Some(c));
                    }
                }
                if let Some(c) = from_auths(&config.auths, registry, path)? {
                    return Ok(Some(c));
                }
                if let Some(store) = &config.creds_store {
                    if let Some(c) = run_helper(store, registry)? {
                        return Ok(Some(c));
                    }
                }
            }
        }
        if let Some(path) = &self.auth_file {
            if let Some(config) = read_config(path)? {
                return from_auths(&config.auths, registry, path);
            }
        }
        Ok(None)
    }
}

/// No `Debug`: it holds secrets.
#[derive(Default, serde::Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(serde::Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
}

fn read_config(path: &Path) -> Result<Option<ConfigFile>, RegistryError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(RegistryError::CredentialsFile {
                path: path.into(),
                problem: e.to_string(),
            })
        }
    };
    // serde_json's message names a line and column, never the content.
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| RegistryError::CredentialsFile {
            path: path.into(),
            problem: format!(
                "expected the JSON of a docker config.json / containers auth.json: {e}"
            ),
        })
}

/// `auths` keys may be `host[:port]` or a URL (`https://host/v1/`).
pub(super) fn auth_key_host(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

fn from_auths(
    auths: &BTreeMap<String, AuthEntry>,
    registry: &str,
    path: &Path,
) -> Result<Option<Credentials>, RegistryError> {
    let Some(entry) = auths
        .get(registry)
        .or_else(|| {
            auths
                .iter()
                .find(|(k, _)| auth_key_host(k) == registry)
                .map(|(_, v)| v)
        })
        .and_then(|e| e.auth.as_deref())
        .filter(|a| !a.is_empty())
    else {
        return Ok(None);
    };
    let bad = || RegistryError::CredentialsFile {
        path: path.into(),
        problem: format!("auths.{registry:?}.auth is not base64 of user:password"),
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(entry.trim())
        .map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (user, pass) = raw.split_once(':').ok_or_else(bad)?;
    Ok(Some(Credentials {
        username: user.to_string(),
        password: pass.to_string(),
        source: path.display().to_string(),
    }))
}

/// `docker-credential-<name> get`, the host on stdin; `None` when the
/// helper has nothing for it.
fn run_helper(name: &str, registry: &str) -> Result<Option<Credentials>, RegistryError> {
    let bad = |problem: String| RegistryError::CredentialHelper {
        helper: name.to_string(),
        registry: crate::net::redact(registry),
        problem,
    };
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(bad(
            "the helper name is not letters, digits, '-', '_' or '.'".into(),
        ));
    }
    let program = format!("docker-credential-{name}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| bad(format!("cannot run {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading is judged by its status.
        let _ = stdin.write_all(registry.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| bad(format!("waiting for {program}: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        if err.contains("credentials not found") {
            return Ok(None);
        }
        // The helper's own words, but never more than a line of them.
        let first = err
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect::<String>();
        return Err(bad(format!(
            "{program} get exited with {} ({})",
            out.status,
            crate::net::redact(&first)
        )));
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let a: Answer = serde_json::from_slice(&out.stdout).map_err(|_| {
        bad("expected the JSON {\"Username\": ..., \"Secret\": ...} on its stdout".into())
    })?;
    Ok(Some(Credentials {
        username: a.username,
        password: a.secret,
        source: program,
    }))
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    /// The token flow: GET `realm` with `service` and `scope`.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parse `Basic realm="..."` or `Bearer realm="...",service="...",scope="..."`
/// (parameters in any order, quoted or bare, commas inside quotes kept).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header
        .split_once(char::is_whitespace)
        .unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest)?;
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    Some(Challenge::Bearer {
        realm: get("realm").filter(|r| !r.is_empty())?,
        service: get("service"),
        scope: get("scope"),
    })
}

/// `k1="v1", k2=v2, ...`; `None` when it does not parse.
fn parse_params(text: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            name.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') || name.is_empty() {
            return None;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((name, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.registry.example/token",service="registry.example",scope="repository:team/app:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.registry.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:team/app:pull,push".into()),
            })
        );
        // Any order, spaces, bare values, escapes; scope absent.
        assert_eq!(
            parse_challenge(r#"bearer  service = "a\"b" , realm=http://127.0.0.1:9/t"#),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:9/t".into(),
                service: Some("a\"b".into()),
                scope: None,
            })
        );
        assert_eq!(parse_challenge("Bearer service=\"x\""), None, "no realm");
        assert_eq!(parse_challenge("Bearer realm=\"unterminated"), None);
        assert_eq!(parse_challenge("Negotiate abc"), None);
    }

    #[test]
    fn auths_entries_decode_and_never_show_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cr3t-pw");
        std::fs::write(
            &path,
            format!(r#"{{"auths": {{"https://registry.example:5000/v1/": {{"auth": "{auth}"}}, "bad.example": {{"auth": "!!"}}}}}}"#),
        )
        .unwrap();
        let places = CredentialPlaces {
            docker_config: Some(path.clone()),
            auth_file: None,
        };
        let c = places.lookup("registry.example:5000").unwrap().unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("alice", "s3cr3t-pw")
        );
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert!(places.lookup("other.example").unwrap().is_none());
        let e = places.lookup("bad.example").unwrap_err().to_string();
        assert!(e.contains("not base64"), "{e}");
        // A second file is read when the first has nothing.
        let places = CredentialPlaces {
            docker_config: Some(dir.path().join("absent.json")),
            auth_file: Some(path),
        };
        assert!(places.lookup("registry.example:5000").unwrap().is_some());
    }
}
