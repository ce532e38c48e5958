//! A fault-injecting HTTP/1.1 server on loopback: each path serves a body
//! with one fault (a stall, a cut, a lie about the length or the range, a
//! status, a redirect loop, a foreign encoding, an endless body), and counts
//! the requests it got. The query string is ignored for routing.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Serve the body (200, or 206 with Content-Range for a Range).
    None,
    /// Read the request, then say nothing.
    StallBeforeHeaders,
    /// Headers and the first `n` bytes of every answer, then silence.
    StallMidBody(usize),
    /// Headers and the first `n` bytes of every answer, then close.
    ResetMidBody(usize),
    /// Content-Length 100 more than the body, the body, then close.
    WrongLength,
    /// The body followed by `n` more bytes (the longer length announced).
    Longer(usize),
    /// `times` answers with `status`, then serve.
    StatusThen(u16, usize),
    /// One 429 with `Retry-After: secs`, then serve.
    TooManyThen(u64),
    /// A 302 to the same path, forever.
    RedirectLoop,
    /// The first answer cut after `n` bytes; later ones 200 with the whole
    /// body, Range or not.
    RangeAnsweredWith200(usize),
    /// The first answer cut after `n` bytes; a later Range answered 206 from
    /// offset 0 (Content-Range says so).
    RangeFromWrongOffset(usize),
    /// The body gzip-compressed, with `Content-Encoding: gzip`.
    Gzip,
    /// 200 without a length and bytes until the client hangs up.
    Endless,
}

struct Route {
    body: Vec<u8>,
    content_type: String,
    fault: Fault,
    requests: usize,
}

pub struct FaultServer {
    pub base: String,
    routes: Arc<Mutex<HashMap<String, Route>>>,
}

/// How long a stalled answer stays silent (far beyond the client's stall
/// timeout in the tests).
const STALL: Duration = Duration::from_secs(120);

impl FaultServer {
    pub fn start() -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let routes: Arc<Mutex<HashMap<String, Route>>> = Arc::default();
        let r = Arc::clone(&routes);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let r = Arc::clone(&r);
                std::thread::spawn(move || {
                    let _ = handle(stream, &r);
                });
            }
        });
        FaultServer { base, routes }
    }

    /// Serve `body` at `path` with `fault`.
    pub fn route(&self, path: &str, body: Vec<u8>, content_type: &str, fault: Fault) {
        self.routes.lock().unwrap().insert(
            path.to_string(),
            Route {
                body,
                content_type: content_type.to_string(),
                fault,
                requests: 0,
            },
        );
    }

    pub fn requests(&self, path: &str) -> usize {
        self.routes
            .lock()
            .unwrap()
            .get(path)
            .map_or(0, |r| r.requests)
    }
}

fn handle(mut stream: TcpStream, routes: &Mutex<HashMap<String, Route>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let head_only = line.starts_with("HEAD ");
    let path = target.split('?').next().unwrap_or("/").to_string();
    let mut range: Option<(usize, Option<usize>)> = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
            let (a, b) = v.trim().split_once('-').unwrap_or((v.trim(), ""));
            range = a.parse().ok().map(|a| (a, b.parse().ok()));
        }
    }
    let (body, content_type, fault, n) = {
        let mut routes = routes.lock().unwrap();
        let Some(r) = routes.get_mut(&path) else {
            return stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        };
        r.requests += 1;
        (r.body.clone(), r.content_type.clone(), r.fault, r.requests)
    };
    let ct = format!("Content-Type: {content_type}\r\n");
    // The answer to the request as asked: (status line, extra headers, bytes).
    let normal = |range: Option<(usize, Option<usize>)>| -> (String, String, Vec<u8>) {
        match range {
            Some((a, b)) if a < body.len() => {
                let last = b.unwrap_or(body.len() - 1).min(body.len() - 1);
                (
                    "206 Partial Content".into(),
                    format!("Content-Range: bytes {a}-{last}/{}\r\n", body.len()),
                    body[a..=last].to_vec(),
                )
            }
            Some(_) => (
                "416 Range Not Satisfiable".into(),
                format!("Content-Range: bytes */{}\r\n", body.len()),
                Vec::new(),
            ),
            None => ("200 OK".into(), String::new(), body.clone()),
        }
    };
    let send = |stream: &mut TcpStream,
                status: &str,
                extra: &str,
                length: Option<usize>,
                bytes: &[u8]|
     -> std::io::Result<()> {
        let length = length
            .map(|l| format!("Content-Length: {l}\r\n"))
            .unwrap_or_default();
        stream.write_all(
            format!("HTTP/1.1 {status}\r\n{ct}{extra}{length}Connection: close\r\n\r\n").as_bytes(),
        )?;
        if !head_only {
            stream.write_all(bytes)?;
        }
        stream.flush()
    };
    match fault {
        Fault::None => {
            let (s, e, b) = normal(range);
            send(&mut stream, &s, &e, Some(b.len()), &b)
        }
        Fault::StallBeforeHeaders => {
            std::thread::sleep(STALL);
            Ok(())
        }
        Fault::StallMidBody(cut) | Fault::ResetMidBody(cut) => {
            let (s, e, b) = normal(range);
            send(&mut stream, &s, &e, Some(b.len()), &b[..cut.min(b.len())])?;
            if matches!(fault, Fault::StallMidBody(_)) {
                std::thread::sleep(STALL);
            }
            Ok(())
        }
        Fault::WrongLength => {
            let (s, e, b) = normal(range);
            send(&mut stream, &s, &e, Some(b.len() + 100), &b)
        }
        Fault::Longer(extra) => {
            let mut b = body.clone();
            b.extend(std::iter::repeat_n(b'x', extra));
            send(&mut stream, "200 OK", "", Some(b.len()), &b)
        }
        Fault::StatusThen(status, times) if n <= times => {
            send(&mut stream, &format!("{status} Injected"), "", Some(0), b"")
        }
        Fault::TooManyThen(secs) if n == 1 => send(
            &mut stream,
            "429 Too Many Requests",
            &format!("Retry-After: {secs}\r\n"),
            Some(0),
            b"",
        ),
        Fault::StatusThen(..) | Fault::TooManyThen(_) => {
            let (s, e, b) = normal(range);
            send(&mut stream, &s, &e, Some(b.len()), &b)
        }
        Fault::RedirectLoop => send(
            &mut stream,
            "302 Found",
            &format!("Location: {target}\r\n"),
            Some(0),
            b"",
        ),
        Fault::RangeAnsweredWith200(cut) | Fault::RangeFromWrongOffset(cut) if n == 1 => {
            let cut = cut.min(body.len());
            send(&mut stream, "200 OK", "", Some(body.len()), &body[..cut])
        }
        Fault::RangeAnsweredWith200(_) => send(&mut stream, "200 OK", "", Some(body.len()), &body),
        Fault::RangeFromWrongOffset(_) => match range {
            Some(_) => send(
                &mut stream,
                "206 Partial Content",
                &format!(
                    "Content-Range: bytes 0-{}/{}\r\n",
                    body.len() - 1,
                    body.len()
                ),
                Some(body.len()),
                &body,
            ),
            None => send(&mut stream, "200 OK", "", Some(body.len()), &body),
        },
        Fault::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&body)?;
            let b = gz.finish()?;
            send(
                &mut stream,
                "200 OK",
                "Content-Encoding: gzip\r\n",
                Some(b.len()),
                &b,
            )
        }
        Fault::Endless => {
            stream.write_all(
                format!("HTTP/1.1 200 OK\r\n{ct}Connection: close\r\n\r\n").as_bytes(),
            )?;
            let chunk = vec![b'{'; 64 * 1024];
            loop {
                stream.write_all(&chunk)?;
            }
        }
    }
}
