//! A loopback HTTP binary cache backed by a directory: GET and HEAD read
//! files (404 when absent), PUT writes them (201), like a WebDAV or S3-ish
//! endpoint a CI pushes to. Counts requests per method. It ignores `Range`
//! (a resumed download starts over), and can cut one large answer short.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub struct CacheServer {
    pub base: String,
    pub dir: PathBuf,
    pub counts: Arc<Mutex<HashMap<String, usize>>>,
    /// When set, the next GET of a file longer than this many bytes sends
    /// its whole `Content-Length` but only half the body, then closes
    /// (once: the setting is cleared).
    pub cut_next: Arc<Mutex<Option<usize>>>,
}

impl CacheServer {
    pub fn start(dir: &Path) -> CacheServer {
        std::fs::create_dir_all(dir).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/cache", listener.local_addr().unwrap());
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let cut_next = Arc::new(Mutex::new(None));
        let (root, c2, cut2) = (
            dir.to_path_buf(),
            Arc::clone(&counts),
            Arc::clone(&cut_next),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (root, counts, cut) = (root.clone(), Arc::clone(&c2), Arc::clone(&cut2));
                std::thread::spawn(move || {
                    let _ = handle(stream, &root, &counts, &cut);
                });
            }
        });
        CacheServer {
            base,
            dir: dir.to_path_buf(),
            counts,
            cut_next,
        }
    }

    pub fn count(&self, method: &str) -> usize {
        *self.counts.lock().unwrap().get(method).unwrap_or(&0)
    }
}

fn handle(
    stream: TcpStream,
    root: &Path,
    counts: &Mutex<HashMap<String, usize>>,
    cut_next: &Mutex<Option<usize>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    *counts.lock().unwrap().entry(method.clone()).or_default() += 1;
    let rel = target.strip_prefix("/cache/").unwrap_or("");
    if rel.is_empty() || rel.split('/').any(|c| c == ".." || c.is_empty()) {
        return out.write_all(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    }
    let path = root.join(rel);
    match method.as_str() {
        "GET" | "HEAD" => match std::fs::read(&path) {
            Ok(body) => {
                write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )?;
                if method == "GET" {
                    let mut cut = cut_next.lock().unwrap();
                    if cut.is_some_and(|over| body.len() > over) {
                        *cut = None;
                        *counts.lock().unwrap().entry("cut".into()).or_default() += 1;
                        return out.write_all(&body[..body.len() / 2]);
                    }
                    drop(cut);
                    out.write_all(&body)?;
                }
                out.flush()
            }
            Err(_) => out.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            ),
        },
        "PUT" => {
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body)?;
            std::fs::create_dir_all(path.parent().unwrap())?;
            std::fs::write(&path, body)?;
            out.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        }
        _ => out.write_all(
            b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        ),
    }
}
