//! A real registry (Debian's docker-registry, the registry:2 binary) on
//! loopback, for push and pull tests.
#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::require_tool;

/// A registry serving from a temp directory on 127.0.0.1; killed on drop.
pub struct Registry {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `auth:` section for basic authentication by the htpasswd `entry`
/// (written into `dir`), or none.
fn htpasswd_auth(dir: &tempfile::TempDir, entry: Option<&str>) -> String {
    let Some(entry) = entry else {
        return String::new();
    };
    let path = dir.path().join("htpasswd");
    fs::write(&path, entry).unwrap();
    format!(
        "auth:\n  htpasswd:\n    realm: envbuild-test\n    path: {}\n",
        path.display()
    )
}

impl Registry {
    /// Start one; with `htpasswd`, basic authentication with that file.
    pub fn start(htpasswd: Option<&str>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let auth = htpasswd_auth(&dir, htpasswd);
        Registry::start_in(dir, &auth)
    }

    /// Start one with this `auth:` section of its configuration.
    pub fn start_with_auth(auth: &str) -> Registry {
        Registry::start_in(tempfile::tempdir().unwrap(), auth)
    }

    pub fn start_in(dir: tempfile::TempDir, auth: &str) -> Registry {
        Registry::start_full(dir, auth, None)
    }

    /// Start one serving TLS with this certificate and key (PEM files),
    /// with basic authentication by `htpasswd` when given.
    pub fn start_tls(htpasswd: Option<&str>, cert: &Path, key: &Path) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let auth = htpasswd_auth(&dir, htpasswd);
        Registry::start_full(dir, &auth, Some((cert, key)))
    }

    fn start_full(dir: tempfile::TempDir, auth: &str, tls: Option<(&Path, &Path)>) -> Registry {
        require_tool("docker-registry", "docker-registry");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: envbuild-test-secret\n{}{auth}",
                dir.path().join("data").display(),
                match tls {
                    Some((c, k)) => format!(
                        "  tls:\n    certificate: {}\n    key: {}\n",
                        c.display(),
                        k.display()
                    ),
                    None => String::new(),
                }
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry starts");
        let mut reg = Registry {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = reg.child.try_wait().unwrap() {
                panic!("docker-registry exited at once: {status}");
            }
            if let Ok((status, _, _)) = reg.get("/v2/", &[]) {
                // A TLS one answers a plain request 400.
                if status == 200 || status == 401 || (tls.is_some() && status == 400) {
                    return reg;
                }
            }
            assert!(Instant::now() < deadline, "docker-registry never answered");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A plain HTTP/1.0 GET: (status, headers lowercased, body).
    #[allow(clippy::type_complexity)]
    pub fn get(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> std::io::Result<(u16, Vec<(String, String)>, Vec<u8>)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n", self.port);
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes())?;
        let mut all = Vec::new();
        s.read_to_end(&mut all)?;
        let split = all
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| std::io::Error::other("no header end"))?;
        let head = String::from_utf8_lossy(&all[..split]).into_owned();
        let body = all[split + 4..].to_vec();
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other("no status"))?;
        let hs = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Ok((status, hs, body))
    }
}

/// What the proxy does to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Answer this status (with an error document) instead of forwarding.
    Status(u16),
    /// Close the connection once the request's head is read, forwarding
    /// nothing (the registry never sees it).
    DropBeforeForward,
    /// Forward the head and half the body, then close both connections
    /// (the registry sees a client that went away mid-body).
    CutMidBody,
}

/// A fault: the `nth` (1-based) request whose method is `method` and whose
/// path contains `path` gets `action`; `times` requests from there on.
#[derive(Clone, Debug)]
pub struct Fault {
    pub method: &'static str,
    pub path: &'static str,
    pub nth: usize,
    pub times: usize,
    pub action: Action,
}

/// One request the proxy saw: method, path (with query), body bytes
/// received from the client, and the status answered (0 when it cut the
/// connection).
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub body: u64,
    pub status: u16,
}

/// A loopback HTTP/1.1 proxy in front of a registry that counts the
/// requests (one per connection: it forwards each with `Connection:
/// close`) and injects [`Fault`]s.
pub struct Proxy {
    pub ip: std::net::IpAddr,
    pub port: u16,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
    faults: std::sync::Arc<std::sync::Mutex<Vec<(Fault, usize)>>>,
}

impl Proxy {
    pub fn start(upstream: u16) -> Proxy {
        Proxy::start_at("127.0.0.1".parse().unwrap(), upstream)
    }

    /// A proxy listening on `ip` (only there).
    pub fn start_at(ip: std::net::IpAddr, upstream: u16) -> Proxy {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>> = Default::default();
        let faults: std::sync::Arc<std::sync::Mutex<Vec<(Fault, usize)>>> = Default::default();
        let (s2, f2) = (seen.clone(), faults.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (s, f) = (s2.clone(), f2.clone());
                std::thread::spawn(move || {
                    let _ = proxy_one(stream, upstream, &s, &f);
                });
            }
        });
        Proxy {
            ip,
            port,
            seen,
            faults,
        }
    }

    pub fn host(&self) -> String {
        match self.ip {
            std::net::IpAddr::V4(v4) => format!("{v4}:{}", self.port),
            std::net::IpAddr::V6(v6) => format!("[{v6}]:{}", self.port),
        }
    }

    pub fn fault(&self, f: Fault) {
        self.faults.lock().unwrap().push((f, 0));
    }

    pub fn clear_faults(&self) {
        self.faults.lock().unwrap().clear();
    }

    /// The requests so far, and forget them.
    pub fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

fn proxy_one(
    client: TcpStream,
    upstream: u16,
    seen: &std::sync::Mutex<Vec<Seen>>,
    faults: &std::sync::Mutex<Vec<(Fault, usize)>>,
) -> std::io::Result<()> {
    use std::io::BufRead;
    client.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = std::io::BufReader::new(client.try_clone()?);
    // A TLS hello (a client asking whether the registry speaks TLS): a
    // plain HTTP 400, as an HTTP server answers bytes it cannot parse.
    if reader.fill_buf()?.first() == Some(&0x16) {
        let mut c = client;
        let _ = c.write_all(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        return Ok(());
    }
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(());
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        // Not HTTP (a TLS hello): hang up.
        return Ok(());
    };
    let (method, path) = (method.to_string(), path.to_string());
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    let mut len: u64 = 0;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if lower.starts_with("connection:") || lower.starts_with("keep-alive:") {
            continue;
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        head.push_str(&h);
    }
    head.push_str("Connection: close\r\n\r\n");
    let action = {
        let mut fs = faults.lock().unwrap();
        let mut action = None;
        for (f, count) in fs.iter_mut() {
            if f.method == method && path.contains(f.path) {
                *count += 1;
                if *count >= f.nth && *count < f.nth + f.times && action.is_none() {
                    action = Some(f.action);
                }
            }
        }
        action
    };
    let record = |body: u64, status: u16| {
        seen.lock().unwrap().push(Seen {
            method: method.clone(),
            path: path.clone(),
            body,
            status,
        })
    };
    let mut client_w = client;
    match action {
        Some(Action::DropBeforeForward) => {
            record(0, 0);
            let _ = client_w.shutdown(std::net::Shutdown::Both);
            return Ok(());
        }
        Some(Action::Status(code)) => {
            let mut body = vec![0u8; len as usize];
            reader.read_exact(&mut body)?;
            record(len, code);
            let doc = r#"{"errors":[{"code":"UNKNOWN","message":"injected by the test proxy"}]}"#;
            write!(
                client_w,
                "HTTP/1.1 {code} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{doc}",
                doc.len()
            )?;
            return Ok(());
        }
        _ => {}
    }
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    up.write_all(head.as_bytes())?;
    let send = if action == Some(Action::CutMidBody) {
        len / 2
    } else {
        len
    };
    let mut left = send;
    let mut buf = vec![0u8; 256 * 1024];
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = reader.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        up.write_all(&buf[..n])?;
        left -= n as u64;
    }
    if action == Some(Action::CutMidBody) {
        record(send - left, 0);
        std::thread::sleep(Duration::from_millis(50));
        let _ = up.shutdown(std::net::Shutdown::Both);
        let _ = client_w.shutdown(std::net::Shutdown::Both);
        return Ok(());
    }
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    let status = std::str::from_utf8(&answer[..answer.len().min(64)])
        .ok()
        .and_then(|t| t.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    record(send - left, status);
    client_w.write_all(&answer)?;
    Ok(())
}
