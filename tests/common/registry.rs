//! A real registry (Debian's docker-registry, the registry:2 binary) on
//! loopback, for push and pull tests.
#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
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

impl Registry {
    /// Start one; with `htpasswd`, basic authentication with that file.
    pub fn start(htpasswd: Option<&str>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let auth = match htpasswd {
            Some(entry) => {
                let path = dir.path().join("htpasswd");
                fs::write(&path, entry).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: envbuild-test\n    path: {}\n",
                    path.display()
                )
            }
            None => String::new(),
        };
        Registry::start_in(dir, &auth)
    }

    /// Start one with this `auth:` section of its configuration.
    pub fn start_with_auth(auth: &str) -> Registry {
        Registry::start_in(tempfile::tempdir().unwrap(), auth)
    }

    pub fn start_in(dir: tempfile::TempDir, auth: &str) -> Registry {
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
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}",
                dir.path().join("data").display()
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
                if status == 200 || status == 401 {
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
