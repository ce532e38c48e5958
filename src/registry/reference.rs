//! Image references to push to: `HOST[:PORT]/REPO[:TAG][@sha256:HEX]`.
//!
//! The registry host is required (there is no default registry); the
//! repository path follows the distribution grammar the spec's image names
//! are checked against ([`crate::spec`]); a bracketed IPv6 host
//! (`[::1]:5000`) is accepted. Without a tag or digest the tag is `latest`.

use std::net::IpAddr;

use super::RegistryError;
use crate::spec::{is_hex64, oci_name_problem, oci_tag_ok};

/// A parsed push reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]` as written (an IPv6 host in brackets).
    pub registry: String,
    /// The host alone (without brackets or port).
    pub host: String,
    pub repository: String,
    /// The tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// `sha256:<hex>` when the reference pins the manifest.
    pub digest: Option<String>,
}

impl Reference {
    pub fn parse(reference: &str) -> Result<Reference, RegistryError> {
        let bad = |problem: String| RegistryError::BadReference {
            reference: reference.to_string(),
            problem,
        };
        if reference
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(bad("it contains whitespace or control characters".into()));
        }
        let (rest, digest) = match reference.split_once('@') {
            Some((r, d)) => {
                let hex = d.strip_prefix("sha256:").ok_or_else(|| {
                    bad(format!(
                        "its digest {d:?} is not sha256:<64 lowercase hex digits>"
                    ))
                })?;
                if !is_hex64(hex) {
                    return Err(bad(format!(
                        "its digest {d:?} is not sha256:<64 lowercase hex digits>"
                    )));
                }
                (r, Some(d.to_string()))
            }
            None => (reference, None),
        };
        // The registry: everything up to the first '/', which must look like
        // a host (a '.', a ':' port, `localhost`, or a bracketed IPv6).
        let (registry, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("it names no registry host".into()))?;
        let (host, port) = split_host_port(registry).ok_or_else(|| {
            bad(format!(
                "its registry {registry:?} is not HOST, HOST:PORT or [IPv6]:PORT"
            ))
        })?;
        if let Some(p) = port {
            if p.parse::<u16>().map_or(true, |n| n == 0) {
                return Err(bad(format!(
                    "its registry port {p:?} is not a number in 1..=65535"
                )));
            }
        }
        let bracketed = registry.starts_with('[');
        if !bracketed && !registry.contains(['.', ':']) && registry != "localhost" {
            return Err(bad(format!(
                "its first component {registry:?} is not a registry host (expected a name with a '.' or a ':PORT', or localhost; there is no default registry)"
            )));
        }
        // The tag: after the last ':' of the path's last component.
        let last = path.rfind('/').map_or(0, |i| i + 1);
        let (repo, tag) = match path[last..].rfind(':') {
            Some(i) => (&path[..last + i], Some(&path[last + i + 1..])),
            None => (path, None),
        };
        if let Some(t) = tag {
            if !oci_tag_ok(t) {
                return Err(bad(format!(
                    "its tag {t:?} is not [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"
                )));
            }
        }
        // The repository path, checked with its host (an IPv6 one as
        // `localhost`, which the name grammar knows).
        let checked = if bracketed {
            format!("localhost/{repo}")
        } else {
            format!("{registry}/{repo}")
        };
        if repo.is_empty() {
            return Err(bad("it names no repository".into()));
        }
        if let Some(problem) = oci_name_problem(&checked) {
            return Err(bad(problem));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_string()),
        };
        Ok(Reference {
            registry: registry.to_string(),
            host: host.to_string(),
            repository: repo.to_string(),
            tag,
            digest,
        })
    }

    /// A registry alone, `HOST[:PORT]` (as `envbuild login` takes it; a
    /// `https://` or `http://` prefix and a path after the host, as
    /// `docker login` accepts them, are dropped). Its repository is empty.
    pub fn registry_only(text: &str) -> Result<Reference, RegistryError> {
        let bad = |problem: String| RegistryError::BadRegistry {
            registry: text.to_string(),
            problem,
        };
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it contains whitespace or control characters".into()));
        }
        let rest = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"))
            .unwrap_or(text);
        let registry = rest.split('/').next().unwrap_or("");
        if registry.is_empty() {
            return Err(bad("it names no host".into()));
        }
        if registry.contains('@') {
            return Err(bad(
                "it holds user information (pass --username instead)".into()
            ));
        }
        let (host, port) = split_host_port(registry)
            .ok_or_else(|| bad("it is not HOST, HOST:PORT or [IPv6]:PORT".into()))?;
        if let Some(p) = port {
            if p.parse::<u16>().map_or(true, |n| n == 0) {
                return Err(bad(format!("its port {p:?} is not a number in 1..=65535")));
            }
        }
        Ok(Reference {
            registry: registry.to_string(),
            host: host.to_string(),
            repository: String::new(),
            tag: None,
            digest: None,
        })
    }

    /// Whether the registry is on this machine (127.0.0.0/8, ::1,
    /// localhost): plain HTTP is used for it.
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

impl Reference {
    /// `http` for a loopback registry or one named in `insecure` (as
    /// `host` or `host:port`), else `https`.
    pub fn scheme(&self, insecure: &[String]) -> &'static str {
        let named = insecure
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&self.registry) || h.eq_ignore_ascii_case(&self.host));
        if self.is_loopback() || named {
            "http"
        } else {
            "https"
        }
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// `host[:port]` or `[v6]:port` → (host, port).
fn split_host_port(registry: &str) -> Option<(&str, Option<&str>)> {
    if let Some(inner) = registry.strip_prefix('[') {
        let (v6, after) = inner.split_once(']')?;
        v6.parse::<std::net::Ipv6Addr>().ok()?;
        return match after {
            "" => Some((v6, None)),
            p => Some((v6, Some(p.strip_prefix(':')?))),
        };
    }
    let (host, port) = match registry.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (registry, None),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.split('.').all(label_ok) {
        Some((host, port))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_references_parse() {
        let r = Reference::parse("registry.example:5000/team/app:1.2").unwrap();
        assert_eq!(r.registry, "registry.example:5000");
        assert_eq!(r.host, "registry.example");
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.tag.as_deref(), Some("1.2"));
        assert_eq!(r.digest, None);
        assert!(!r.is_loopback());

        let r = Reference::parse("127.0.0.1:5000/hello").unwrap();
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert!(r.is_loopback());
        assert_eq!(r.to_string(), "127.0.0.1:5000/hello:latest");

        let d = format!("sha256:{}", "ab".repeat(32));
        let r = Reference::parse(&format!("localhost/a/b@{d}")).unwrap();
        assert_eq!((r.tag, r.digest.as_deref()), (None, Some(d.as_str())));
        assert!(Reference::parse("localhost/a").unwrap().is_loopback());

        let r = Reference::parse(&format!("[::1]:5000/x/y:t@{d}")).unwrap();
        assert_eq!(r.host, "::1");
        assert_eq!(r.registry, "[::1]:5000");
        assert_eq!(r.tag.as_deref(), Some("t"));
        assert!(r.is_loopback());
        assert!(Reference::parse("127.1.2.3:80/x").unwrap().is_loopback());
    }

    #[test]
    fn plain_http_only_for_loopback_or_a_registry_named_insecure() {
        let r = |s: &str| Reference::parse(s).unwrap();
        let none: &[String] = &[];
        assert_eq!(r("127.0.0.1:5000/a").scheme(none), "http");
        assert_eq!(r("127.9.9.9/a").scheme(none), "http");
        assert_eq!(r("[::1]:5000/a").scheme(none), "http");
        assert_eq!(r("localhost:5000/a").scheme(none), "http");
        assert_eq!(r("registry.example:5000/a").scheme(none), "https");
        assert_eq!(r("10.0.0.1:5000/a").scheme(none), "https");
        assert_eq!(r("[::2]:5000/a").scheme(none), "https");
        let insecure = ["registry.example:5000".to_string()];
        assert_eq!(r("registry.example:5000/a").scheme(&insecure), "http");
        assert_eq!(r("registry.example:5001/a").scheme(&insecure), "https");
        let by_host = ["registry.example".to_string()];
        assert_eq!(r("registry.example:5001/a").scheme(&by_host), "http");
        assert_eq!(r("other.example/a").scheme(&by_host), "https");
    }

    #[test]
    fn registries_for_login_parse_and_bad_ones_say_why() {
        let r = Reference::registry_only("127.0.0.1:5000").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.host.as_str()),
            ("127.0.0.1:5000", "127.0.0.1")
        );
        assert!(r.repository.is_empty() && r.is_loopback());
        let r = Reference::registry_only("https://registry.example/v1/").unwrap();
        assert_eq!(r.registry, "registry.example");
        assert_eq!(Reference::registry_only("[::1]:5000").unwrap().host, "::1");
        for (text, why) in [
            ("", "names no host"),
            ("https://", "names no host"),
            ("registry.example:0", "port \"0\""),
            ("a b", "whitespace"),
            ("user:pw@registry.example", "user information"),
            ("-x.example", "is not HOST"),
        ] {
            let e = Reference::registry_only(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text:?}: {e}");
            assert!(e.contains("expected HOST[:PORT]"), "{e}");
        }
        let e = Reference::registry_only("user:pw@registry.example")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("pw@"), "{e}");
    }

    #[test]
    fn bad_references_say_why() {
        let cases = [
            ("hello:1", "names no registry host"),
            ("team/app:1", "is not a registry host"),
            ("registry.example:5000/", "names no repository"),
            ("registry.example:5000/App:1", "path component \"App\""),
            ("registry.example:5000/app:-x", "its tag \"-x\""),
            ("registry.example:5000/app@sha256:abc", "is not sha256:<64"),
            ("registry.example:5000/app@md5:abc", "is not sha256:<64"),
            ("registry.example:99999/app", "port \"99999\""),
            ("registry.example:/app", "port \"\""),
            ("-bad.example/app", "is not HOST, HOST:PORT"),
            ("[::1/app", "is not HOST, HOST:PORT"),
            ("registry.example/a b", "whitespace"),
        ];
        for (reference, why) in cases {
            let e = Reference::parse(reference).unwrap_err().to_string();
            assert!(e.contains(why), "{reference:?}: {e}");
            assert!(e.contains(&format!("{reference:?}")), "{reference:?}: {e}");
            assert!(e.contains("HOST[:PORT]/REPO"), "{e}");
        }
    }
}
