//! Where a snapshot appears in the image and how it is laid out, so that the
//! hub's own client finds it offline.
//!
//! ModelScope (client 1.12, `modelscope.hub.snapshot_download` with
//! `local_files_only=True`): the cache root is `$MODELSCOPE_CACHE`, else
//! `~/.cache/modelscope/hub`; a model `OWNER/NAME` lives in
//! `{root}/{OWNER}/{NAME with '.' → '___'}` with its files at their repository
//! paths, `.msc` (a pickle: the list of `{'Path': path, 'Revision': commit}`
//! of the cached files; the client needs it non-empty) and `.mdl` (a pickle:
//! `{'id': 'OWNER/NAME'}`). The client also creates `{root}/temp` and
//! rewrites `.mdl` each time, so the cache directories and the snapshot
//! must be writable by the image user (`owner = "appuser"`).
//!
//! Hugging Face (`huggingface_hub.snapshot_download` with
//! `local_files_only=True`): the cache is `$HF_HUB_CACHE`, else
//! `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else
//! `~/.cache/huggingface/hub`; a repository `ORG/REPO` lives in
//! `{cache}/models--ORG--REPO` with `refs/{revision}` holding the commit and
//! the files in `snapshots/{commit}/` (as regular files, the client's layout
//! where it does not use symlinks into `blobs/`).
//!
//! A spec that sets `path` gets the files at that path as they are (plus the
//! ModelScope meta files for a ModelScope source).

use std::collections::BTreeMap;

use super::Hub;

/// The image path of a hub model's snapshot in its client's cache, from the
/// image environment and the image user's home.
pub fn default_path(
    hub: Hub,
    id: &str,
    env: &BTreeMap<String, String>,
    user_home: Option<&str>,
) -> String {
    let home = user_home
        .map(str::to_string)
        .or_else(|| env.get("HOME").filter(|h| h.starts_with('/')).cloned())
        .unwrap_or_else(|| "/root".into());
    let var = |k: &str| {
        env.get(k)
            .filter(|v| v.starts_with('/'))
            .map(|v| trim_dir(v))
    };
    match hub {
        Hub::ModelScope => {
            let root = var("MODELSCOPE_CACHE")
                .unwrap_or_else(|| format!("{}/.cache/modelscope/hub", trim_dir(&home)));
            let (owner, name) = id.split_once('/').unwrap_or(("damo", id));
            format!("{root}/{owner}/{}", modelscope_dir_name(name))
        }
        Hub::HuggingFace => {
            let cache = var("HF_HUB_CACHE")
                .or_else(|| var("HUGGINGFACE_HUB_CACHE"))
                .or_else(|| var("HF_HOME").map(|h| format!("{h}/hub")))
                .or_else(|| var("XDG_CACHE_HOME").map(|x| format!("{x}/huggingface/hub")))
                .unwrap_or_else(|| format!("{}/.cache/huggingface/hub", trim_dir(&home)));
            format!("{cache}/{}", huggingface_dir_name(id))
        }
    }
}

fn trim_dir(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        String::new()
    } else {
        t.to_string()
    }
}

/// `ofa.large` → `ofa___large`, as the ModelScope client names the folder.
pub fn modelscope_dir_name(name: &str) -> String {
    name.replace('.', "___")
}

/// `org/repo` → `models--org--repo`.
pub fn huggingface_dir_name(id: &str) -> String {
    format!("models--{}", id.replace('/', "--"))
}

/// How many directories above a client-layout snapshot path form the
/// client's cache (and must be writable by the image user): the ModelScope
/// root is two levels up (`{root}/{owner}/{name}`), the Hugging Face cache
/// one (`{cache}/models--…`).
pub fn cache_depth(hub: Hub) -> usize {
    match hub {
        Hub::ModelScope => 2,
        Hub::HuggingFace => 1,
    }
}

/// A snapshot's files and generated meta files, relative to its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// (repository path, relative destination).
    pub files: Vec<(String, String)>,
    /// (relative destination, bytes) of generated files.
    pub generated: Vec<(String, Vec<u8>)>,
}

/// Lay out a hub snapshot: `files` are repository paths, `commit` what the
/// revision resolved to, `revision` as requested.
pub fn plan(
    hub: Hub,
    id: &str,
    revision: &str,
    commit: &str,
    files: &[String],
    client_layout: bool,
) -> Plan {
    match (hub, client_layout) {
        (Hub::HuggingFace, true) => Plan {
            files: files
                .iter()
                .map(|f| (f.clone(), format!("snapshots/{commit}/{f}")))
                .collect(),
            // A revision that is the commit itself needs no ref.
            generated: if revision == commit {
                Vec::new()
            } else {
                vec![(format!("refs/{revision}"), commit.as_bytes().to_vec())]
            },
        },
        (Hub::ModelScope, _) => {
            let (owner, name) = id.split_once('/').unwrap_or(("damo", id));
            let mut meta = BTreeMap::new();
            meta.insert("id", format!("{owner}/{}", modelscope_dir_name(name)));
            let keys: Vec<BTreeMap<&str, String>> = files
                .iter()
                .map(|f| {
                    let mut k = BTreeMap::new();
                    k.insert("Path", f.clone());
                    k.insert("Revision", commit.to_string());
                    k
                })
                .collect();
            Plan {
                files: files.iter().map(|f| (f.clone(), f.clone())).collect(),
                generated: vec![
                    (".mdl".into(), pickle::dict(&meta)),
                    (".msc".into(), pickle::list_of_dicts(&keys)),
                ],
            }
        }
        (Hub::HuggingFace, false) => Plan {
            files: files.iter().map(|f| (f.clone(), f.clone())).collect(),
            generated: Vec::new(),
        },
    }
}

/// The little of Python's pickle format (protocol 2) the ModelScope cache
/// files need: string-keyed dicts of strings, and a list of them.
pub mod pickle {
    use std::collections::BTreeMap;

    const PROTO: u8 = 0x80;
    const EMPTY_LIST: u8 = b']';
    const EMPTY_DICT: u8 = b'}';
    const MARK: u8 = b'(';
    const BINUNICODE: u8 = b'X';
    const SETITEMS: u8 = b'u';
    const APPENDS: u8 = b'e';
    const STOP: u8 = b'.';

    fn string(out: &mut Vec<u8>, s: &str) {
        out.push(BINUNICODE);
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }

    fn dict_body(out: &mut Vec<u8>, d: &BTreeMap<&str, String>) {
        out.push(EMPTY_DICT);
        if d.is_empty() {
            return;
        }
        out.push(MARK);
        for (k, v) in d {
            string(out, k);
            string(out, v);
        }
        out.push(SETITEMS);
    }

    /// `pickle.dumps(d, protocol=2)` up to memo opcodes.
    pub fn dict(d: &BTreeMap<&str, String>) -> Vec<u8> {
        let mut out = vec![PROTO, 2];
        dict_body(&mut out, d);
        out.push(STOP);
        out
    }

    /// `pickle.dumps(list_of_dicts, protocol=2)` up to memo opcodes.
    pub fn list_of_dicts(items: &[BTreeMap<&str, String>]) -> Vec<u8> {
        let mut out = vec![PROTO, 2, EMPTY_LIST];
        if !items.is_empty() {
            out.push(MARK);
            for d in items {
                dict_body(&mut out, d);
            }
            out.push(APPENDS);
        }
        out.push(STOP);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn default_paths_follow_the_clients() {
        assert_eq!(
            default_path(Hub::ModelScope, "iic/ofa.v1", &env(&[]), Some("/home/u")),
            "/home/u/.cache/modelscope/hub/iic/ofa___v1"
        );
        assert_eq!(
            default_path(
                Hub::ModelScope,
                "iic/m",
                &env(&[("MODELSCOPE_CACHE", "/models/")]),
                Some("/home/u")
            ),
            "/models/iic/m"
        );
        assert_eq!(
            default_path(Hub::HuggingFace, "org/r", &env(&[]), None),
            "/root/.cache/huggingface/hub/models--org--r"
        );
        assert_eq!(
            default_path(
                Hub::HuggingFace,
                "org/r",
                &env(&[("HF_HOME", "/hf")]),
                Some("/home/u")
            ),
            "/hf/hub/models--org--r"
        );
        assert_eq!(
            default_path(
                Hub::HuggingFace,
                "gpt2",
                &env(&[("HF_HOME", "/hf"), ("HF_HUB_CACHE", "/c")]),
                None
            ),
            "/c/models--gpt2"
        );
    }

    #[test]
    fn pickles_match_what_python_writes_without_memo() {
        let mut d = BTreeMap::new();
        d.insert("id", "a/b".to_string());
        assert_eq!(
            dict_bytes(&d),
            b"\x80\x02}(X\x02\x00\x00\x00idX\x03\x00\x00\x00a/bu."
        );
        assert_eq!(pickle::list_of_dicts(&[]), b"\x80\x02].");
    }

    fn dict_bytes(d: &BTreeMap<&str, String>) -> Vec<u8> {
        pickle::dict(d)
    }

    #[test]
    fn plans() {
        let files = vec!["a.json".to_string(), "sub/w.bin".to_string()];
        let p = plan(Hub::HuggingFace, "o/r", "main", "c0ffee", &files, true);
        assert_eq!(p.files[1].1, "snapshots/c0ffee/sub/w.bin");
        assert_eq!(
            p.generated,
            vec![("refs/main".to_string(), b"c0ffee".to_vec())]
        );
        let p = plan(Hub::HuggingFace, "o/r", "c0ffee", "c0ffee", &files, true);
        assert!(p.generated.is_empty());
        let p = plan(Hub::ModelScope, "o/r.x", "v1", "c1", &files, false);
        assert_eq!(p.files[0].1, "a.json");
        assert_eq!(p.generated[0].0, ".mdl");
        assert_eq!(p.generated[1].0, ".msc");
    }
}
