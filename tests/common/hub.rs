//! A loopback model hub for tests: speaks the subset of the Hugging Face and
//! ModelScope APIs envbuild uses (revision listing with sizes, sha256 and
//! LFS info; file download with Range; revision names resolving to a
//! commit) over files the test generates. Files can be changed while it
//! runs, and a download can be cut in the middle once.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use sha2::Digest;

/// One repository: a commit, the revision names that resolve to it, files.
#[derive(Clone)]
pub struct Repo {
    pub commit: String,
    pub revisions: Vec<String>,
    /// path → (bytes, stored with LFS: the listing carries its sha256).
    pub files: BTreeMap<String, (Vec<u8>, bool)>,
}

#[derive(Default)]
pub struct State {
    /// "hf:org/repo" or "ms:owner/name" → repository.
    pub repos: HashMap<String, Repo>,
    /// Paths (repository file paths) whose next download is cut after this
    /// many bytes (then served normally, with Range).
    pub cut_once: HashMap<String, usize>,
    /// Every request line's target, in order.
    pub requests: Vec<String>,
    /// (file path, Range header value) of ranged downloads.
    pub ranges: Vec<(String, String)>,
}

pub struct Hub {
    pub base: String,
    pub state: Arc<Mutex<State>>,
}

impl Hub {
    pub fn start() -> Hub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let st = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let st = Arc::clone(&st);
                std::thread::spawn(move || {
                    let _ = handle(stream, &st);
                });
            }
        });
        Hub { base, state }
    }

    pub fn add(&self, key: &str, repo: Repo) {
        self.state
            .lock()
            .unwrap()
            .repos
            .insert(key.to_string(), repo);
    }

    /// Replace one file's bytes (same commit: a hub that changed under a pin).
    pub fn change(&self, key: &str, path: &str, bytes: Vec<u8>) {
        let mut s = self.state.lock().unwrap();
        let f = s.repos.get_mut(key).unwrap().files.get_mut(path).unwrap();
        f.0 = bytes;
    }

    pub fn cut_once(&self, path: &str, after: usize) {
        self.state
            .lock()
            .unwrap()
            .cut_once
            .insert(path.to_string(), after);
    }

    pub fn downloads_of(&self, path: &str) -> usize {
        let s = self.state.lock().unwrap();
        s.requests
            .iter()
            .filter(|r| {
                let d = decode(r);
                d.ends_with(&format!("/{path}")) || d.ends_with(&format!("FilePath={path}"))
            })
            .count()
    }
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex_encode(&sha2::Sha256::digest(b))
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn respond(stream: &mut TcpStream, status: &str, ctype: &str, body: &[u8]) -> std::io::Result<()> {
    stream.write_all(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )?;
    stream.write_all(body)?;
    stream.flush()
}

fn not_found(stream: &mut TcpStream, what: &str) -> std::io::Result<()> {
    respond(
        stream,
        "404 Not Found",
        "application/json",
        serde_json::json!({"error": what}).to_string().as_bytes(),
    )
}

fn handle(mut stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range_start: Option<usize> = None;
    let mut range_raw = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
            range_start = v.trim().trim_end_matches('-').parse().ok();
            range_raw = Some(v.trim().to_string());
        }
    }
    state.lock().unwrap().requests.push(target.clone());
    let (path, q) = target.split_once('?').unwrap_or((&target, ""));
    let q = query(q);
    let path = decode(path);

    // ModelScope: /api/v1/models/{owner}/{name}/repo/files and .../repo
    if let Some(rest) = path.strip_prefix("/api/v1/models/") {
        let (id, what) = match rest.rsplit_once("/repo") {
            Some((id, what)) => (id.to_string(), what.to_string()),
            None => return not_found(&mut stream, "no such API"),
        };
        let repo = state
            .lock()
            .unwrap()
            .repos
            .get(&format!("ms:{id}"))
            .cloned();
        let Some(repo) = repo else {
            return respond(
                &mut stream,
                "200 OK",
                "application/json",
                serde_json::json!({"Code": 10010205, "Message": format!("model {id} not found"), "Success": false})
                    .to_string()
                    .as_bytes(),
            );
        };
        let rev = q
            .get("Revision")
            .cloned()
            .unwrap_or_else(|| "master".into());
        if !repo.revisions.contains(&rev) && rev != repo.commit {
            return respond(
                &mut stream,
                "200 OK",
                "application/json",
                serde_json::json!({"Code": 10010205, "Message": format!("revision {rev} not found"), "Success": false})
                    .to_string()
                    .as_bytes(),
            );
        }
        if what == "/files" {
            let mut files = Vec::new();
            let mut dirs = std::collections::BTreeSet::new();
            for (p, (bytes, lfs)) in &repo.files {
                let mut d = p.as_str();
                while let Some(i) = d.rfind('/') {
                    d = &d[..i];
                    dirs.insert(d.to_string());
                }
                files.push(serde_json::json!({
                    "Name": p.rsplit('/').next().unwrap(), "Path": p, "Type": "blob",
                    "Size": bytes.len(), "Sha256": sha256_hex(bytes), "Revision": repo.commit,
                    "IsLFS": lfs, "Mode": "33188", "CommitMessage": "fixture",
                }));
            }
            for d in dirs {
                files.push(serde_json::json!({
                    "Name": d.rsplit('/').next().unwrap(), "Path": d, "Type": "tree",
                    "Size": 0, "Sha256": "", "Revision": repo.commit,
                }));
            }
            files.push(serde_json::json!({
                "Name": ".gitattributes", "Path": ".gitattributes", "Type": "blob",
                "Size": 5, "Sha256": sha256_hex(b"*.bin"), "Revision": repo.commit,
            }));
            let body = serde_json::json!({"Code": 200, "Data": {"Files": files}, "Success": true});
            return respond(
                &mut stream,
                "200 OK",
                "application/json",
                body.to_string().as_bytes(),
            );
        }
        if what.is_empty() {
            let fp = q.get("FilePath").cloned().unwrap_or_default();
            return serve_file(&mut stream, state, &repo, &fp, range_start, range_raw);
        }
        return not_found(&mut stream, "no such API");
    }
    // Hugging Face: /api/models/{repo}/revision/{rev}
    if let Some(rest) = path.strip_prefix("/api/models/") {
        let Some((id, rev)) = rest.split_once("/revision/") else {
            return not_found(&mut stream, "no such API");
        };
        let repo = state
            .lock()
            .unwrap()
            .repos
            .get(&format!("hf:{id}"))
            .cloned();
        let Some(repo) = repo.filter(|r| r.revisions.iter().any(|x| x == rev) || r.commit == rev)
        else {
            return not_found(&mut stream, "Revision Not Found");
        };
        let siblings: Vec<_> = repo
            .files
            .iter()
            .map(|(p, (bytes, lfs))| {
                let mut s = serde_json::json!({"rfilename": p, "size": bytes.len(), "blobId": "0".repeat(40)});
                if *lfs {
                    s["lfs"] = serde_json::json!({"sha256": sha256_hex(bytes), "size": bytes.len(), "pointerSize": 134});
                }
                s
            })
            .collect();
        let body = serde_json::json!({"id": id, "sha": repo.commit, "siblings": siblings});
        return respond(
            &mut stream,
            "200 OK",
            "application/json",
            body.to_string().as_bytes(),
        );
    }
    // Hugging Face: /{repo}/resolve/{rev}/{path}
    if let Some((id, rest)) = path.trim_start_matches('/').split_once("/resolve/") {
        let repo = state
            .lock()
            .unwrap()
            .repos
            .get(&format!("hf:{id}"))
            .cloned();
        let Some((rev, fp)) = rest.split_once('/') else {
            return not_found(&mut stream, "no file");
        };
        let Some(repo) = repo.filter(|r| r.revisions.iter().any(|x| x == rev) || r.commit == rev)
        else {
            return not_found(&mut stream, "Revision Not Found");
        };
        return serve_file(&mut stream, state, &repo, fp, range_start, range_raw);
    }
    not_found(&mut stream, "no such API")
}

fn serve_file(
    stream: &mut TcpStream,
    state: &Mutex<State>,
    repo: &Repo,
    path: &str,
    range_start: Option<usize>,
    range_raw: Option<String>,
) -> std::io::Result<()> {
    let Some((data, _)) = repo.files.get(path) else {
        return not_found(stream, "Entry not found");
    };
    let cut = {
        let mut s = state.lock().unwrap();
        if let Some(r) = range_raw {
            s.ranges.push((path.to_string(), r));
        }
        s.cut_once.remove(path)
    };
    let start = range_start.unwrap_or(0).min(data.len());
    let body = &data[start..];
    let head = if start > 0 {
        format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {}-{}/{}\r\nConnection: close\r\n\r\n",
            body.len(),
            start,
            data.len() - 1,
            data.len()
        )
    } else {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
    };
    stream.write_all(head.as_bytes())?;
    let end = cut.map(|c| c.min(body.len())).unwrap_or(body.len());
    stream.write_all(&body[..end])?;
    stream.flush()
}
