//! A loopback mirror of a realized store's locked files: a Debian pool under
//! /debian and a PEP 691 index under /simple, served from 127.0.0.1 by
//! [`super::http`], so that a locked realize pointed at it
//! (`ENVBUILD_DEBIAN_MIRROR`, `ENVBUILD_INDEX_URL`) reaches no network.

use std::fs;
use std::path::Path;

/// Serve copies of the locked files (taken from `store`) as a Debian pool
/// under /debian and a PEP 691 index under /simple. `lock` is the lock as
/// version 1 listed it ([`super::lock_as_v1`]).
pub fn loopback_mirror(store: &Path, lock: &str) -> super::http::Server {
    use super::http::Behaviour;
    let items: Vec<std::path::PathBuf> = fs::read_dir(store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let find = |file: &str| -> Vec<u8> {
        // Item names keep only the characters Nix allows.
        let name: String = file
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "+-._?=".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let suffix = format!("-{name}");
        let p = items
            .iter()
            .find(|p| p.file_name().unwrap().to_string_lossy().ends_with(&suffix) && p.is_file())
            .unwrap_or_else(|| panic!("{file} is not in the store"));
        fs::read(p).unwrap()
    };
    let parsed: toml::Value = toml::from_str(lock).unwrap();
    let mut routes: Vec<(String, Behaviour)> = Vec::new();
    let mut projects: std::collections::BTreeMap<String, Vec<serde_json::Value>> =
        Default::default();
    for input in parsed["input"].as_array().unwrap() {
        let id = input["id"].as_str().unwrap();
        let source = input["source"].as_str().unwrap();
        let sha = input["hash"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        if id.starts_with("deb:") {
            let base = source.rsplit('/').next().unwrap();
            routes.push((format!("/debian/{source}"), Behaviour::Serve(find(base))));
        } else if id.starts_with("pypi:") {
            let project = source
                .split('-')
                .next()
                .unwrap()
                .replace('_', "-")
                .to_lowercase();
            routes.push((format!("/files/{source}"), Behaviour::Serve(find(source))));
            projects.entry(project).or_default().push(serde_json::json!({
                "filename": source, "url": format!("/files/{source}"), "hashes": {"sha256": sha},
            }));
        }
    }
    for (name, files) in projects {
        let page =
            serde_json::json!({"meta": {"api-version": "1.0"}, "name": name, "files": files});
        routes.push((
            format!("/simple/{name}/"),
            Behaviour::Serve(page.to_string().into_bytes()),
        ));
    }
    super::http::serve(routes)
}
