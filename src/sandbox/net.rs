//! What a container runtime gives a container so that names resolve and
//! TLS verifies: `/etc/hosts`, `/etc/resolv.conf`, `/etc/nsswitch.conf`
//! (only where the rootfs has none: Debian's is made by a maintainer
//! script, which envbuild does not run), and a CA bundle.
//!
//! The files are written to a temporary directory and bound read-only over
//! the rootfs's paths; nothing is written into the store or the cached
//! rootfs.
//!
//! - `/etc/hosts`: `localhost` at 127.0.0.1 and ::1, the sandbox's hostname
//!   at 127.0.1.1 (on the loopback interface, as Debian does).
//! - `/etc/resolv.conf`: a copy of the host's when the sandbox shares the
//!   host's network; none otherwise (there is no resolver to reach).
//! - CA bundle: the image's own when its rootfs has one at the path the
//!   image uses (`SSL_CERT_FILE` from its environment, else Debian's
//!   `/etc/ssl/certs/ca-certificates.crt`); when it has none, the host's
//!   (`SSL_CERT_FILE` of the host, else the first of [`HOST_CA_BUNDLES`])
//!   is bound there, since the `ca-certificates` package's bundle is made
//!   by `update-ca-certificates`, which no maintainer script ran.

use std::fs;
use std::path::PathBuf;

use super::{io_err, Builder, Network, SandboxError};

/// Where the host's CA bundle is looked for (Debian/Ubuntu, Fedora/RHEL,
/// openSUSE, Alpine/macOS-style), after the host's `SSL_CERT_FILE`.
pub const HOST_CA_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Where Debian's OpenSSL (and so Python's `ssl`) looks for the bundle.
pub const DEFAULT_CA_PATH: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The sandbox's hostname when the spec's name is not a valid one.
pub const DEFAULT_HOSTNAME: &str = "envbuild";

/// A hostname (RFC 1123 label) from an environment's name: lowercase,
/// anything else than letters, digits and `-` made `-`, at most 63
/// characters, no `-` at either end.
pub fn hostname_of(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    let s = s.trim_matches('-');
    if s.is_empty() {
        DEFAULT_HOSTNAME.into()
    } else {
        s.into()
    }
}

/// What the sandbox should get.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    pub hostname: String,
    /// The host's resolv.conf (copied in with [`Network::Host`]).
    pub host_resolv_conf: PathBuf,
    /// Whether the rootfs lacks `/etc/nsswitch.conf`.
    pub add_nsswitch: bool,
    /// A host CA bundle to bind at a sandbox path (when the image has none).
    pub ca_bundle: Option<(PathBuf, String)>,
}

/// The generated files and where they go in the sandbox.
#[derive(Debug)]
pub struct NetworkFiles {
    dir: tempfile::TempDir,
    /// (host file, sandbox path), bound read-only.
    pub binds: Vec<(PathBuf, String)>,
}

impl NetworkFiles {
    /// The sandbox paths the files go to (to be left open in the rootfs).
    pub fn paths(&self) -> Vec<&str> {
        self.binds.iter().map(|(_, at)| at.as_str()).collect()
    }

    /// Bind them read-only (the directory must outlive the sandbox's
    /// start: see [`NetworkFiles::into_dir`] and `Sandbox::keep`).
    pub fn apply(&self, b: &mut Builder) {
        for (host, at) in &self.binds {
            b.ro_bind(host, at);
        }
    }

    pub fn into_dir(self) -> tempfile::TempDir {
        self.dir
    }
}

/// `/etc/hosts` for a sandbox named `hostname`.
pub fn hosts(hostname: &str) -> String {
    format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
    )
}

/// `/etc/nsswitch.conf` as Debian's base-files writes it (files first).
pub const NSSWITCH: &str = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\nethers: files\nrpc: files\n";

/// The host's CA bundle: `SSL_CERT_FILE` if it names a file, else the
/// first of [`HOST_CA_BUNDLES`] that exists.
pub fn host_ca_bundle() -> Option<PathBuf> {
    std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .into_iter()
        .chain(HOST_CA_BUNDLES.iter().map(PathBuf::from))
        .find(|p| p.is_file())
}

/// Write the files for `network` into a new temporary directory.
pub fn files(network: Network, cfg: &NetworkConfig) -> Result<NetworkFiles, SandboxError> {
    let dir = tempfile::Builder::new()
        .prefix("envbuild-net")
        .tempdir()
        .map_err(io_err("creating a directory in", &std::env::temp_dir()))?;
    let mut binds = Vec::new();
    let mut write = |name: &str, text: &[u8], at: &str| -> Result<(), SandboxError> {
        let p = dir.path().join(name);
        fs::write(&p, text).map_err(io_err("writing", &p))?;
        binds.push((p, at.to_string()));
        Ok(())
    };
    write("hosts", hosts(&cfg.hostname).as_bytes(), "/etc/hosts")?;
    if network == Network::Host {
        // A copy, as container runtimes make: the host's may be a symlink
        // into /run, which the sandbox does not have.
        match fs::read(&cfg.host_resolv_conf) {
            Ok(text) => write("resolv.conf", &text, "/etc/resolv.conf")?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("reading", &cfg.host_resolv_conf)(e)),
        }
    }
    if cfg.add_nsswitch {
        write("nsswitch.conf", NSSWITCH.as_bytes(), "/etc/nsswitch.conf")?;
    }
    if let Some((host, at)) = &cfg.ca_bundle {
        binds.push((host.clone(), at.clone()));
    }
    Ok(NetworkFiles { dir, binds })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg(dir: &Path) -> NetworkConfig {
        let resolv = dir.join("resolv.conf");
        fs::write(&resolv, "nameserver 192.0.2.53\n").unwrap();
        NetworkConfig {
            hostname: "ofa-ve".into(),
            host_resolv_conf: resolv,
            add_nsswitch: true,
            ca_bundle: Some((dir.join("ca.pem"), DEFAULT_CA_PATH.into())),
        }
    }

    #[test]
    fn hosts_names_localhost_on_both_loopbacks_and_the_hostname() {
        let h = hosts("box");
        let lines: Vec<&str> = h.lines().collect();
        assert_eq!(lines[0], "127.0.0.1\tlocalhost");
        assert!(lines[1].starts_with("::1\tlocalhost"));
        assert_eq!(lines[2], "127.0.1.1\tbox");
    }

    #[test]
    fn hostnames_are_valid_labels() {
        assert_eq!(hostname_of("ofa-ve"), "ofa-ve");
        assert_eq!(hostname_of("My_App 2"), "my-app-2");
        assert_eq!(hostname_of("--"), DEFAULT_HOSTNAME);
        assert_eq!(hostname_of(&"a".repeat(80)).len(), 63);
    }

    #[test]
    fn the_host_network_gets_a_copy_of_resolv_conf_and_no_network_gets_none() {
        let tmp = tempfile::tempdir().unwrap();
        let c = cfg(tmp.path());
        let shared = files(Network::Host, &c).unwrap();
        assert_eq!(
            shared.paths(),
            [
                "/etc/hosts",
                "/etc/resolv.conf",
                "/etc/nsswitch.conf",
                DEFAULT_CA_PATH
            ]
        );
        let (copy, _) = &shared.binds[1];
        assert!(copy.starts_with(shared.dir.path()));
        assert_eq!(fs::read_to_string(copy).unwrap(), "nameserver 192.0.2.53\n");
        assert_eq!(shared.binds[3].0, tmp.path().join("ca.pem"));

        let none = files(Network::None, &c).unwrap();
        assert!(!none.paths().contains(&"/etc/resolv.conf"));
        assert!(none.paths().contains(&"/etc/hosts"));
    }

    #[test]
    fn files_are_bound_read_only() {
        let tmp = tempfile::tempdir().unwrap();
        let f = files(Network::Host, &cfg(tmp.path())).unwrap();
        let mut b = Builder::new(Network::Host);
        f.apply(&mut b);
        let ro = b.binds("--ro-bind");
        assert_eq!(ro.len(), 4);
        assert_eq!(ro[0].1, Path::new("/etc/hosts"));
        assert!(b.binds("--bind").is_empty());
    }
}
