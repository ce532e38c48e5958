//! A loopback PEP 691 index serving wheels the tests build: files under
//! `/files/`, one JSON page per project under `/simple/NAME/`.

use super::build_wheel;
use super::http::{serve, Behaviour, Server};

pub fn sha(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

pub struct Wheel {
    pub filename: String,
    pub data: Vec<u8>,
    /// The index's `upload-time` for the file (RFC 3339).
    pub uploaded: String,
}

pub fn wheel(name: &str, version: &str, tag: &str, marker_file: &str) -> Wheel {
    let module = format!("{name}/__init__.py");
    let body = format!("WHICH = {marker_file:?}\n");
    Wheel {
        filename: format!("{name}-{version}-{tag}.whl"),
        data: build_wheel(name, version, &[(module.as_str(), body.as_bytes())], &[]),
        uploaded: "2024-01-01T00:00:00Z".into(),
    }
}

/// Files under /files/, and a PEP 691 page per project under /simple/.
pub fn index(wheels: &[&Wheel]) -> Server {
    // The base URL is known only once the server listens, so pages use
    // relative file URLs (resolved against the page).
    let mut routes: Vec<(String, Behaviour)> = Vec::new();
    let mut projects: std::collections::BTreeMap<String, Vec<serde_json::Value>> =
        Default::default();
    for w in wheels {
        routes.push((
            format!("/files/{}", w.filename),
            Behaviour::Serve(w.data.clone()),
        ));
        let project = w.filename.split('-').next().unwrap().replace('_', "-");
        projects
            .entry(project)
            .or_default()
            .push(serde_json::json!({
                "filename": w.filename,
                "url": format!("../../files/{}", w.filename),
                "hashes": { "sha256": sha(&w.data) },
                "size": w.data.len(),
                "upload-time": w.uploaded,
            }));
    }
    for (p, files) in projects {
        let page = serde_json::json!({
            "meta": { "api-version": "1.1" },
            "name": p,
            "files": files,
        });
        routes.push((
            format!("/simple/{p}/"),
            Behaviour::Serve(serde_json::to_vec(&page).unwrap()),
        ));
    }
    serve(routes)
}
