//! A tiny HTTP/1.1 file server on loopback for fetch tests: each path has a
//! behaviour (serve with Range support, fail with a status, cut the body
//! short always or once), and the server counts requests and Range headers.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub enum Behaviour {
    Serve(Vec<u8>),
    Status(u16),
    /// Announce the full length, send only `cut` bytes, close. Every time.
    TruncateAlways(Vec<u8>, usize),
    /// Like TruncateAlways on the first request; later ones serve (with Range).
    TruncateOnce(Vec<u8>, usize),
}

#[derive(Default)]
pub struct Log {
    pub requests: HashMap<String, usize>,
    pub ranges: Vec<(String, String)>,
}

pub struct Server {
    pub base: String,
    pub log: Arc<Mutex<Log>>,
}

pub fn serve<S: Into<String>>(routes: Vec<(S, Behaviour)>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let routes: Arc<HashMap<String, Behaviour>> =
        Arc::new(routes.into_iter().map(|(p, b)| (p.into(), b)).collect());
    let log = Arc::new(Mutex::new(Log::default()));
    let log2 = Arc::clone(&log);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let routes = Arc::clone(&routes);
            let log = Arc::clone(&log2);
            std::thread::spawn(move || {
                let _ = handle(stream, &routes, &log);
            });
        }
    });
    Server { base, log }
}

fn handle(
    mut stream: TcpStream,
    routes: &HashMap<String, Behaviour>,
    log: &Mutex<Log>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range_start: Option<usize> = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
            range_start = v.trim().trim_end_matches('-').parse().ok();
            log.lock()
                .unwrap()
                .ranges
                .push((path.clone(), v.trim().to_string()));
        }
    }
    let n = {
        let mut l = log.lock().unwrap();
        let c = l.requests.entry(path.clone()).or_default();
        *c += 1;
        *c
    };
    let send = |stream: &mut TcpStream,
                data: &[u8],
                start: usize,
                cut: Option<usize>|
     -> std::io::Result<()> {
        let body = &data[start.min(data.len())..];
        let head = if start > 0 {
            format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {}-{}/{}\r\nConnection: close\r\n\r\n",
                body.len(), start, data.len() - 1, data.len()
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
    };
    match routes.get(&path) {
        None => stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
        Some(Behaviour::Status(code)) => stream.write_all(
            format!("HTTP/1.1 {code} Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        ),
        Some(Behaviour::Serve(d)) => send(&mut stream, d, range_start.unwrap_or(0), None),
        Some(Behaviour::TruncateAlways(d, cut)) => send(&mut stream, d, 0, Some(*cut)),
        Some(Behaviour::TruncateOnce(d, cut)) => {
            if n == 1 {
                send(&mut stream, d, 0, Some(*cut))
            } else {
                send(&mut stream, d, range_start.unwrap_or(0), None)
            }
        }
    }
}
