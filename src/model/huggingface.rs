//! The Hugging Face hub API, the subset envbuild uses.
//!
//! `GET {endpoint}/api/models/{repo}/revision/{revision}?blobs=true`:
//!
//! ```json
//! {"id": "org/repo", "sha": "<40 hex commit>",
//!  "siblings": [{"rfilename": "config.json", "size": 571, "blobId": "<git sha1>"},
//!               {"rfilename": "model.safetensors", "size": 548105171, "blobId": "…",
//!                "lfs": {"sha256": "<64 hex>", "size": 548105171, "pointerSize": 135}}]}
//! ```
//!
//! Files are downloaded from `{endpoint}/{repo}/resolve/{commit}/{path}`
//! (Range supported), pinned to the commit the revision resolved to.

use super::{encode_path, get_json, safe_relative, Endpoint, Hub, ListedFile, Listing, ModelError};

pub fn listing_url(endpoint: &str, repo: &str, revision: &str) -> String {
    format!(
        "{endpoint}/api/models/{repo}/revision/{}?blobs=true",
        encode_path(revision).replace('/', "%2F")
    )
}

pub fn file_url(endpoint: &str, repo: &str, revision: &str, path: &str) -> String {
    format!(
        "{endpoint}/{repo}/resolve/{}/{}",
        encode_path(revision).replace('/', "%2F"),
        encode_path(path)
    )
}

pub fn list(
    model: &str,
    endpoint: &Endpoint,
    repo: &str,
    revision: &str,
) -> Result<Listing, ModelError> {
    let url = listing_url(&endpoint.url, repo, revision);
    let doc = get_json(Hub::HuggingFace, model, endpoint, &url)?;
    parse(model, &url, &doc)
}

/// The listing in `doc` (the answer from `url`).
pub fn parse(model: &str, url: &str, doc: &serde_json::Value) -> Result<Listing, ModelError> {
    let bad = |message: String| ModelError::BadListing {
        model: model.to_string(),
        hub: Hub::HuggingFace.display(),
        url: url.to_string(),
        message,
    };
    let commit = doc["sha"]
        .as_str()
        .filter(|s| s.len() >= 7 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| {
            bad(format!(
                "expected \"sha\": the commit (hex), found {}",
                doc["sha"]
            ))
        })?
        .to_ascii_lowercase();
    let siblings = doc["siblings"].as_array().ok_or_else(|| {
        bad(format!(
            "expected \"siblings\": a list of files, found {}",
            doc["siblings"]
        ))
    })?;
    let mut files = Vec::new();
    for s in siblings {
        let path = s["rfilename"].as_str().ok_or_else(|| {
            bad(format!(
                "expected \"rfilename\" in every sibling, found {s}"
            ))
        })?;
        if !safe_relative(path) {
            return Err(bad(format!(
                "file name {path:?} is not a relative path without '.' or '..'"
            )));
        }
        let size = s["size"].as_u64().ok_or_else(|| {
            bad(format!(
                "expected \"size\" for {path} (the listing must be asked for with ?blobs=true), found {}",
                s["size"]
            ))
        })?;
        let sha256 = match &s["lfs"] {
            serde_json::Value::Null => None,
            lfs => {
                let sha = lfs["sha256"]
                    .as_str()
                    .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                    .ok_or_else(|| {
                        bad(format!(
                            "expected \"lfs.sha256\" (64 hex digits) for {path}, found {}",
                            lfs["sha256"]
                        ))
                    })?;
                Some(sha.to_ascii_lowercase())
            }
        };
        files.push(ListedFile {
            path: path.to_string(),
            size,
            sha256,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Listing { commit, files })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lfs_and_plain_files() {
        let doc = serde_json::json!({
            "id": "org/repo",
            "sha": "0123456789abcdef0123456789abcdef01234567",
            "siblings": [
                {"rfilename": "model.safetensors", "size": 10, "blobId": "x",
                 "lfs": {"sha256": "a".repeat(64), "size": 10, "pointerSize": 130}},
                {"rfilename": "config.json", "size": 3, "blobId": "y"}
            ]
        });
        let l = parse("m", "u", &doc).unwrap();
        assert_eq!(l.commit, "0123456789abcdef0123456789abcdef01234567");
        assert_eq!(l.files[0].path, "config.json");
        assert_eq!(l.files[0].sha256, None);
        assert_eq!(l.files[1].sha256.as_deref(), Some("a".repeat(64).as_str()));
        let bad = serde_json::json!({"sha": "0123456789", "siblings": [{"rfilename": "../x", "size": 1}]});
        let e = parse("m", "u", &bad).unwrap_err().to_string();
        assert!(e.contains("\"../x\""), "{e}");
        let nosize = serde_json::json!({"sha": "0123456789", "siblings": [{"rfilename": "x"}]});
        let e = parse("m", "u", &nosize).unwrap_err().to_string();
        assert!(e.contains("expected \"size\" for x"), "{e}");
    }

    #[test]
    fn urls() {
        assert_eq!(
            file_url("http://h", "org/r", "abc", "sub/a b.bin"),
            "http://h/org/r/resolve/abc/sub/a%20b.bin"
        );
        assert_eq!(
            listing_url("http://h", "org/r", "refs/pr/1"),
            "http://h/api/models/org/r/revision/refs%2Fpr%2F1?blobs=true"
        );
    }
}
