//! Where the package index is: never in the code, always from configuration.
//!
//! In order: the spec's `[python] index`, `ENVBUILD_INDEX_URL`,
//! `PIP_INDEX_URL`, `UV_INDEX_URL`, `index-url` in pip's configuration files
//! (`$PIP_CONFIG_FILE`, else `/etc/pip.conf`, `/etc/xdg/pip/pip.conf`,
//! `~/.config/pip/pip.conf`, `~/.pip/pip.conf`; later files win, as in pip),
//! and last the default of the host's own pip, as pip reports it.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

#[derive(Debug, thiserror::Error)]
#[error("no package index configured: set [python] index in the spec, ENVBUILD_INDEX_URL, PIP_INDEX_URL or UV_INDEX_URL, or index-url in pip.conf (asking the host's pip for its default failed: {detail})")]
pub struct NoIndex {
    pub detail: String,
}

/// The index URL and where it came from.
pub fn index_url(spec_index: Option<&str>) -> Result<(String, String), NoIndex> {
    if let Some(i) = spec_index {
        return Ok((i.to_string(), "the spec".into()));
    }
    for var in ["ENVBUILD_INDEX_URL", "PIP_INDEX_URL", "UV_INDEX_URL"] {
        if let Some(v) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
            return Ok((v.trim_end_matches('/').to_string(), var.into()));
        }
    }
    if let Some((url, file)) = from_pip_conf() {
        return Ok((url, file));
    }
    Ok((host_pip_default()?, "the host pip's default".into()))
}

/// The host pip's default index, asked once per process (starting
/// `python3` and importing pip takes most of a second, and a lock and a
/// realize may both need it).
fn host_pip_default() -> Result<String, NoIndex> {
    static ANSWER: OnceLock<Result<String, String>> = OnceLock::new();
    ANSWER
        .get_or_init(ask_host_pip)
        .clone()
        .map_err(|detail| NoIndex { detail })
}

fn ask_host_pip() -> Result<String, String> {
    let out = Command::new("python3")
        .args([
            "-c",
            "from pip._internal.models.index import PyPI; print(PyPI.simple_url)",
        ])
        .output()
        .map_err(|e| e.to_string())?;
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || !url.starts_with("http") {
        return Err(String::from_utf8_lossy(&out.stderr)
            .trim()
            .lines()
            .last()
            .unwrap_or("no output")
            .to_string());
    }
    Ok(url.trim_end_matches('/').to_string())
}

fn from_pip_conf() -> Option<(String, String)> {
    let files: Vec<PathBuf> = match std::env::var_os("PIP_CONFIG_FILE") {
        Some(f) => vec![PathBuf::from(f)],
        None => {
            let mut v = vec![
                PathBuf::from("/etc/pip.conf"),
                PathBuf::from("/etc/xdg/pip/pip.conf"),
            ];
            if let Some(home) = std::env::var_os("HOME") {
                let home = PathBuf::from(home);
                v.push(home.join(".config/pip/pip.conf"));
                v.push(home.join(".pip/pip.conf"));
            }
            v
        }
    };
    let mut found = None;
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        if let Some(url) = index_url_in(&text) {
            found = Some((url, f.display().to_string()));
        }
    }
    found
}

/// `index-url` (or `index_url`) in the `[global]` or `[install]` section.
fn index_url_in(ini: &str) -> Option<String> {
    let mut section = String::new();
    let mut found = None;
    for line in ini.lines() {
        let line = line.trim();
        if line.starts_with('[') && line.ends_with(']') {
            section = line[1..line.len() - 1].trim().to_lowercase();
        } else if let Some((k, v)) = line.split_once('=') {
            let k = k.trim().replace('_', "-");
            if k == "index-url" && (section == "global" || section == "install") {
                found = Some(v.trim().trim_end_matches('/').to_string());
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pip_conf_index_url_is_read_from_global_or_install() {
        let ini = "[global]\ntimeout = 60\nindex-url = http://127.0.0.1:3141/simple/\n[freeze]\nindex-url = http://ignored\n";
        assert_eq!(
            index_url_in(ini).as_deref(),
            Some("http://127.0.0.1:3141/simple")
        );
        assert_eq!(
            index_url_in("[install]\nindex_url=http://127.0.0.2/s\n").as_deref(),
            Some("http://127.0.0.2/s")
        );
        assert_eq!(index_url_in("[freeze]\nindex-url = http://x\n"), None);
    }

    #[test]
    fn the_spec_wins() {
        assert_eq!(
            index_url(Some("http://127.0.0.1:1/simple")).unwrap().0,
            "http://127.0.0.1:1/simple"
        );
    }
}
