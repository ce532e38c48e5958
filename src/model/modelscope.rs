//! The ModelScope hub API, the subset envbuild uses (as the ModelScope
//! client 1.12 calls it).
//!
//! `GET {endpoint}/api/v1/models/{owner}/{name}/repo/files?Revision={rev}&Recursive=true`:
//!
//! ```json
//! {"Code": 200, "Success": true,
//!  "Data": {"Files": [{"Name": "pytorch_model.bin", "Path": "pytorch_model.bin",
//!                      "Type": "blob", "Size": 123, "Sha256": "<64 hex>",
//!                      "Revision": "<commit>", "IsLFS": true}, …]}}
//! ```
//!
//! `Type: "tree"` entries are directories (skipped), `.gitignore` and
//! `.gitattributes` are skipped as the client does. Files are downloaded from
//! `{endpoint}/api/v1/models/{id}/repo?Revision={rev}&FilePath={path}`.

use super::{encode_path, get_json, safe_relative, Endpoint, Hub, ListedFile, Listing, ModelError};

pub fn listing_url(endpoint: &str, id: &str, revision: &str) -> String {
    format!(
        "{endpoint}/api/v1/models/{id}/repo/files?Revision={}&Recursive=true",
        encode_path(revision)
    )
}

pub fn file_url(endpoint: &str, id: &str, revision: &str, path: &str) -> String {
    format!(
        "{endpoint}/api/v1/models/{id}/repo?Revision={}&FilePath={}",
        encode_path(revision),
        encode_path(path)
    )
}

pub fn list(
    model: &str,
    endpoint: &Endpoint,
    id: &str,
    revision: &str,
) -> Result<Listing, ModelError> {
    let url = listing_url(&endpoint.url, id, revision);
    let doc = get_json(Hub::ModelScope, model, endpoint, &url)?;
    parse(model, &url, revision, &doc)
}

/// The listing in `doc` (the answer from `url` for `revision`).
pub fn parse(
    model: &str,
    url: &str,
    revision: &str,
    doc: &serde_json::Value,
) -> Result<Listing, ModelError> {
    let bad = |message: String| ModelError::BadListing {
        model: model.to_string(),
        hub: Hub::ModelScope.display(),
        url: url.to_string(),
        message,
    };
    if doc["Code"].as_u64() != Some(200) {
        return Err(bad(format!(
            "expected \"Code\": 200, found {} (message: {})",
            doc["Code"], doc["Message"]
        )));
    }
    let entries = doc["Data"]["Files"].as_array().ok_or_else(|| {
        bad(format!(
            "expected \"Data\": {{\"Files\": [...]}}, found {}",
            doc["Data"]
        ))
    })?;
    let mut files = Vec::new();
    let mut commits = std::collections::BTreeSet::new();
    for f in entries {
        if f["Type"].as_str() == Some("tree") {
            continue;
        }
        let name = f["Name"].as_str().unwrap_or_default();
        if name == ".gitignore" || name == ".gitattributes" {
            continue;
        }
        let path = f["Path"]
            .as_str()
            .ok_or_else(|| bad(format!("expected \"Path\" in every file, found {f}")))?;
        if !safe_relative(path) {
            return Err(bad(format!(
                "file path {path:?} is not a relative path without '.' or '..'"
            )));
        }
        let size = f["Size"]
            .as_u64()
            .ok_or_else(|| bad(format!("expected \"Size\" for {path}, found {}", f["Size"])))?;
        let sha256 = match &f["Sha256"] {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) if s.is_empty() => None,
            v => Some(
                v.as_str()
                    .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                    .ok_or_else(|| {
                        bad(format!(
                            "expected \"Sha256\" (64 hex digits) for {path}, found {v}"
                        ))
                    })?
                    .to_ascii_lowercase(),
            ),
        };
        if let Some(c) = f["Revision"].as_str().filter(|c| !c.is_empty()) {
            commits.insert(c.to_string());
        }
        files.push(ListedFile {
            path: path.to_string(),
            size,
            sha256,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    // Every file names the commit the revision resolved to.
    let commit = match commits.len() {
        1 => commits.into_iter().next().expect("one commit"),
        _ => revision.to_string(),
    };
    Ok(Listing { commit, files })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_files_skipping_trees_and_git_files() {
        let doc = serde_json::json!({"Code": 200, "Data": {"Files": [
            {"Name": "sub", "Path": "sub", "Type": "tree", "Size": 0, "Revision": "c1"},
            {"Name": ".gitattributes", "Path": ".gitattributes", "Type": "blob", "Size": 5, "Revision": "c1"},
            {"Name": "w.bin", "Path": "sub/w.bin", "Type": "blob", "Size": 7, "Sha256": "B".repeat(64), "Revision": "c1"},
            {"Name": "a.json", "Path": "a.json", "Type": "blob", "Size": 2, "Sha256": "", "Revision": "c1"}
        ]}});
        let l = parse("m", "u", "v1", &doc).unwrap();
        assert_eq!(l.commit, "c1");
        let paths: Vec<_> = l.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a.json", "sub/w.bin"]);
        assert_eq!(l.files[0].sha256, None);
        assert_eq!(l.files[1].sha256, Some("b".repeat(64)));
        let e = parse(
            "m",
            "u",
            "v1",
            &serde_json::json!({"Code": 10010, "Message": "no such model"}),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no such model"), "{e}");
    }

    #[test]
    fn urls() {
        assert_eq!(
            file_url("http://h", "o/n", "v1.0.1", "sub/x.bin"),
            "http://h/api/v1/models/o/n/repo?Revision=v1.0.1&FilePath=sub/x.bin"
        );
    }
}
