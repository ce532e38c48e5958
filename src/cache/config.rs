//! The user's binary-cache configuration (never the spec's: what to trust
//! is the user's decision, not the project's).
//!
//! ```toml
//! # $XDG_CONFIG_HOME/envbuild/config.toml (default ~/.config/envbuild/config.toml)
//! [cache]
//! substituters = ["file:///srv/cache", "https://cache.example"]
//! trusted-public-keys = ["ci-1:BASE64..."]
//! ```
//!
//! `ENVBUILD_SUBSTITUTERS` and `ENVBUILD_TRUSTED_PUBLIC_KEYS` (each a list
//! separated by spaces or commas), when set, replace the file's lists;
//! `envbuild realize --substituter URL` adds URLs before all of them.

use std::path::{Path, PathBuf};

use envbuild_store::signing::PublicKey;

use super::CacheError;

pub const SUBSTITUTERS_VAR: &str = "ENVBUILD_SUBSTITUTERS";
pub const TRUSTED_KEYS_VAR: &str = "ENVBUILD_TRUSTED_PUBLIC_KEYS";

/// Substituters and the keys whose signatures are trusted.
#[derive(Debug, Clone, Default)]
pub struct CacheConfig {
    pub substituters: Vec<String>,
    pub trusted_public_keys: Vec<PublicKey>,
    /// Where the configuration file is (read or not), for messages.
    pub path: PathBuf,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    cache: Option<CacheSection>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CacheSection {
    #[serde(default)]
    substituters: Vec<String>,
    #[serde(default)]
    trusted_public_keys: Vec<String>,
}

/// `$XDG_CONFIG_HOME/envbuild/config.toml`, else `~/.config/envbuild/config.toml`.
pub fn config_path(var: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    let base = match var("XDG_CONFIG_HOME").filter(|v| v.starts_with('/')) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(var("HOME").unwrap_or_default()).join(".config"),
    };
    base.join("envbuild/config.toml")
}

fn list(v: &str) -> Vec<String> {
    v.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn keys(items: &[String], what: &str) -> Result<Vec<PublicKey>, CacheError> {
    items
        .iter()
        .map(|k| {
            PublicKey::parse(k).map_err(|source| CacheError::Key {
                what: what.to_string(),
                source,
            })
        })
        .collect()
}

impl CacheConfig {
    /// From the process environment and the configuration file.
    pub fn from_env() -> Result<CacheConfig, CacheError> {
        Self::from_vars(&|k| std::env::var(k).ok())
    }

    pub fn from_vars(var: &dyn Fn(&str) -> Option<String>) -> Result<CacheConfig, CacheError> {
        let path = config_path(var);
        let file = read_file(&path)?;
        let section = file.cache.unwrap_or_default();
        let substituters = match var(SUBSTITUTERS_VAR) {
            Some(v) => list(&v),
            None => section.substituters,
        };
        let trusted_public_keys = match var(TRUSTED_KEYS_VAR) {
            Some(v) => keys(&list(&v), TRUSTED_KEYS_VAR)?,
            None => keys(
                &section.trusted_public_keys,
                &format!("trusted-public-keys in {}", path.display()),
            )?,
        };
        Ok(CacheConfig {
            substituters,
            trusted_public_keys,
            path,
        })
    }
}

fn read_file(path: &Path) -> Result<File, CacheError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(File::default()),
        Err(e) => return Err(CacheError::io(path)(e)),
    };
    toml::from_str(&text).map_err(|e| CacheError::Config {
        path: path.to_path_buf(),
        message: e.to_string().trim().replace('\n', " "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_replace_the_files_lists_and_keys_must_parse() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("envbuild/config.toml");
        std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
        let pk = envbuild_store::signing::SecretKey::from_seed("k-1", [3u8; 32])
            .public()
            .render();
        std::fs::write(
            &conf,
            format!("[cache]\nsubstituters = [\"file:///a\"]\ntrusted-public-keys = [\"{pk}\"]\n"),
        )
        .unwrap();
        let xdg = dir.path().display().to_string();
        let c = CacheConfig::from_vars(&|k| (k == "XDG_CONFIG_HOME").then(|| xdg.clone())).unwrap();
        assert_eq!(c.substituters, ["file:///a"]);
        assert_eq!(c.trusted_public_keys.len(), 1);
        let c = CacheConfig::from_vars(&|k| match k {
            "XDG_CONFIG_HOME" => Some(xdg.clone()),
            SUBSTITUTERS_VAR => Some("file:///b, http://127.0.0.1:1/c".into()),
            TRUSTED_KEYS_VAR => Some(String::new()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.substituters, ["file:///b", "http://127.0.0.1:1/c"]);
        assert!(c.trusted_public_keys.is_empty());
        let e = CacheConfig::from_vars(&|k| match k {
            "XDG_CONFIG_HOME" => Some(xdg.clone()),
            TRUSTED_KEYS_VAR => Some("nocolon".into()),
            _ => None,
        })
        .unwrap_err();
        assert!(e.to_string().contains(TRUSTED_KEYS_VAR), "{e}");
        std::fs::write(&conf, "[cache]\nsubstituter = []\n").unwrap();
        let e =
            CacheConfig::from_vars(&|k| (k == "XDG_CONFIG_HOME").then(|| xdg.clone())).unwrap_err();
        assert!(e.to_string().contains("config.toml"), "{e}");
    }
}
