//! Entering a rootfs: the sandbox of `envbuild run`, `shell` and `check`,
//! made with [`crate::sandbox::Builder`] (see its module for the mount
//! layout and the status descriptor).
//!
//! User, mount, PID, IPC, UTS and cgroup namespaces; the host's network
//! namespace, with `/etc/hosts`, `/etc/resolv.conf` and a CA bundle as a
//! container runtime provides them ([`crate::sandbox::net`]; the hostname
//! is the spec's name). `/proc`, `/dev` and `/tmp` are fresh; the working
//! directory is bound read-write at the same path; the image user's home is
//! writable. With a GPU ([`crate::sandbox::gpu`]) its device nodes and the
//! host driver's libraries are bound in.

use std::path::{Path, PathBuf};

use super::{io_err, ShellError};
use crate::sandbox::{self, gpu::Gpu, net, Builder, Network, Sandbox};
use crate::spec::Spec;

/// How to enter.
#[derive(Debug, Clone, Default)]
pub struct EnterOptions {
    /// Keep only HOME, USER, TERM and DISPLAY from the host (plus `keep`).
    pub pure: bool,
    /// Host variables kept in any case (`--keep VAR`).
    pub keep: Vec<String>,
    /// As the image would run: no host variable at all (HOME is the image
    /// user's), the image's working directory, the host's working directory
    /// not bound. What `envbuild check` uses.
    pub as_image: bool,
    /// Host files placed read-only in the sandbox: (host path, sandbox path).
    /// Bound after `/tmp` is mounted, so they may go there.
    pub extra_ro: Vec<(PathBuf, String)>,
    /// The host's GPU to give the sandbox.
    pub gpu: Option<Gpu>,
}

/// Host variables that would point into the host's file system.
const HOST_ONLY: [&str; 6] = [
    "PATH",
    "LD_LIBRARY_PATH",
    "LD_PRELOAD",
    "PYTHONPATH",
    "PYTHONHOME",
    "VIRTUAL_ENV",
];

/// Whether a host variable's value is an absolute path that the closure
/// lacks (and that is not under the bound working directory): CA bundles
/// (SSL_CERT_FILE, REQUESTS_CA_BUNDLE, ...), tool homes and the like point
/// into the host's file system and would break programs inside.
fn names_a_host_path(value: &str, rootfs: &Path, cwd: Option<&Path>) -> bool {
    if !value.starts_with('/') || value.contains(':') || value.contains('\n') {
        return false;
    }
    let p = Path::new(value);
    // The working directory is bound; /dev and /proc are mounted fresh.
    if cwd.is_some_and(|c| p.starts_with(c)) || p.starts_with("/dev") || p.starts_with("/proc") {
        return false;
    }
    super::rootfs::resolve_in(rootfs, value, 0).is_none()
}

/// What `--pure` keeps.
const PURE_KEEPS: [&str; 4] = ["HOME", "USER", "TERM", "DISPLAY"];

/// Top-level entries that get fresh mounts instead of the rootfs's own.
const FRESH: [&str; 4] = ["proc", "dev", "sys", "tmp"];

/// The PATH commands are looked up in: the spec's, else the default.
pub fn search_path(spec: &Spec) -> &str {
    spec.image
        .env
        .get("PATH")
        .map(String::as_str)
        .unwrap_or(crate::sources::DEFAULT_PATH)
}

/// The network namespace of `run`, `shell` and `check`: the host's, so a
/// server in the sandbox answers on the host's 127.0.0.1 and the sandbox
/// reaches what the host reaches.
pub const NETWORK: Network = Network::Host;

/// Prepare `cmd` to run inside `rootfs` as the spec's user with the spec's
/// environment. The command must resolve inside the rootfs.
pub fn sandbox(
    spec: &Spec,
    rootfs: &Path,
    cmd: &[String],
    opts: &EnterOptions,
) -> Result<Sandbox, ShellError> {
    if cmd.is_empty() {
        return Err(ShellError::NoCommand);
    }
    super::rootfs::find_command(rootfs, &cmd[0], search_path(spec))?;
    let (b, files) = builder(spec, rootfs, opts)?;
    let mut sb = b.command(cmd)?;
    sb.keep(files.into_dir());
    Ok(sb)
}

/// The bubblewrap command line for entering `rootfs` (without the
/// command), and the generated network files it binds, which must outlive
/// the sandbox's start.
pub fn builder(
    spec: &Spec,
    rootfs: &Path,
    opts: &EnterOptions,
) -> Result<(Builder, net::NetworkFiles), ShellError> {
    let network = NETWORK;
    let mut b = Builder::new(network);
    let (uid, gid) = spec
        .image
        .user
        .as_ref()
        .map(|u| (u.uid, u.gid))
        .unwrap_or((0, 0));
    b.ids(uid, gid);
    let hostname = net::hostname_of(&spec.name);
    b.hostname(&hostname);

    let cwd = if opts.as_image {
        None
    } else {
        let cwd = std::env::current_dir().map_err(io_err("reading", Path::new(".")))?;
        (cwd != Path::new("/")).then_some(cwd)
    };
    let files = net::files(
        network,
        &net::NetworkConfig {
            hostname,
            host_resolv_conf: PathBuf::from("/etc/resolv.conf"),
            add_nsswitch: super::rootfs::resolve_in(rootfs, "/etc/nsswitch.conf", 0).is_none(),
            ca_bundle: ca_bundle(spec, rootfs),
        },
    )?;
    let gpu_open = opts.gpu.as_ref().map(Gpu::open_paths).unwrap_or_default();
    let mut open: Vec<&str> = files.paths();
    open.extend(gpu_open.iter().map(String::as_str));
    let cwd_str = cwd.as_deref().map(|c| c.to_string_lossy().into_owned());
    open.extend(cwd_str.as_deref());
    b.rootfs(rootfs, &FRESH, &open)?;
    b.proc_dev_tmp();
    // The user's home, writable (as in the image), bound over the
    // read-only rootfs's.
    if let Some(user) = spec.image.user.as_ref().filter(|u| u.uid != 0) {
        if let Some(home) = super::rootfs::writable_home(rootfs, &user.home)? {
            b.bind(home, &user.home);
        }
    }
    for (host, inside) in &opts.extra_ro {
        b.ro_bind(host, inside);
    }
    files.apply(&mut b);
    match &cwd {
        Some(cwd) => {
            b.bind(cwd, cwd).chdir(cwd);
        }
        None => {
            b.chdir(spec.image.workdir.as_deref().unwrap_or("/"));
        }
    }

    b.clearenv();
    let mut env: Vec<(String, String)> = Vec::new();
    if opts.as_image {
        let home = spec
            .image
            .user
            .as_ref()
            .map(|u| u.home.as_str())
            .unwrap_or("/root");
        env.push(("HOME".into(), home.into()));
    } else {
        for (k, v) in std::env::vars() {
            let kept = opts.keep.contains(&k)
                || if opts.pure {
                    PURE_KEEPS.contains(&k.as_str())
                } else {
                    !HOST_ONLY.contains(&k.as_str())
                        && !names_a_host_path(&v, rootfs, cwd.as_deref())
                };
            if kept {
                env.push((k, v));
            }
        }
    }
    if !spec.image.env.contains_key("PATH") {
        env.push(("PATH".into(), crate::sources::DEFAULT_PATH.into()));
    }
    env.extend(spec.image.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(gpu) = &opts.gpu {
        let current = env
            .iter()
            .rev()
            .find(|(k, _)| k == "LD_LIBRARY_PATH")
            .map(|(_, v)| v.as_str());
        if let Some(ld) = gpu.apply(&mut b, current) {
            env.push(("LD_LIBRARY_PATH".into(), ld));
        }
    }
    for (k, v) in &env {
        b.setenv(k, v);
    }
    Ok((b, files))
}

/// The host's CA bundle and where to bind it, when the image has none
/// where it looks for one (its `SSL_CERT_FILE`, else Debian's path); the
/// image's own bundle is used as it is.
fn ca_bundle(spec: &Spec, rootfs: &Path) -> Option<(PathBuf, String)> {
    let at = spec
        .image
        .env
        .get("SSL_CERT_FILE")
        .filter(|p| p.starts_with('/'))
        .map(String::as_str)
        .unwrap_or(net::DEFAULT_CA_PATH);
    if super::rootfs::resolve_in(rootfs, at, 0).is_some_and(|p| p.is_file()) {
        return None;
    }
    net::host_ca_bundle().map(|host| (host, at.to_string()))
}

/// Whether `--gpus` or the image asks for a GPU: the host's GPU with
/// `--gpus` (an error when it has none), else when the image's environment
/// sets `NVIDIA_VISIBLE_DEVICES` and the host has one.
pub fn gpu_for(spec: &Spec, gpus_flag: bool) -> Result<Option<Gpu>, ShellError> {
    if gpus_flag {
        return Ok(Some(Gpu::required()?));
    }
    if sandbox::gpu::image_wants_gpu(&spec.image.env) {
        return Ok(Gpu::from_host()?);
    }
    Ok(None)
}
