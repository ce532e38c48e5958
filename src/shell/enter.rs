//! Entering a rootfs with bubblewrap: user, mount, PID, IPC and UTS
//! namespaces, no root needed.
//!
//! The sandbox's `/` is bubblewrap's own tmpfs. Each top-level entry of the
//! rootfs is bound read-only into it (its files are the store's own inodes)
//! and each top-level symlink is recreated, so the parents of the working
//! directory can be made when the rootfs does not have them; where the
//! working directory lies below a directory of the rootfs, that directory is
//! recreated and its entries are bound one by one down the path. `/proc`,
//! `/dev` and `/tmp` are fresh; the working directory is bound read-write at
//! the same path.
//!
//! Whether bubblewrap set the sandbox up is read from its JSON status
//! descriptor (`--json-status-fd`): a run that never reports a child pid
//! failed before the command started (no user namespaces, for one), which is
//! told apart from the command's own exit status.

use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};

use super::{io_err, ShellError};
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

/// The bubblewrap program: `ENVBUILD_BWRAP`, else `bwrap` from PATH.
pub fn bwrap_program() -> String {
    std::env::var("ENVBUILD_BWRAP").unwrap_or_else(|_| "bwrap".into())
}

/// A sandbox ready to start.
pub struct Sandbox {
    program: String,
    command: Command,
    status: fs::File,
    /// The write end, kept open in this process until the child is spawned.
    status_write: OwnedFd,
}

/// A started sandbox.
pub struct Running {
    pub child: Child,
    program: String,
    status: fs::File,
}

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
    let program = bwrap_program();
    let mut c = Command::new(&program);
    let (uid, gid) = spec
        .image
        .user
        .as_ref()
        .map(|u| (u.uid, u.gid))
        .unwrap_or((0, 0));
    c.args([
        "--unshare-user",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--die-with-parent",
    ]);
    c.args(["--uid", &uid.to_string(), "--gid", &gid.to_string()]);

    let cwd = if opts.as_image {
        None
    } else {
        let cwd = std::env::current_dir().map_err(io_err("reading", Path::new(".")))?;
        (cwd != Path::new("/")).then_some(cwd)
    };
    let cwd_parts: Vec<String> = cwd
        .as_deref()
        .map(|p| {
            p.components()
                .filter_map(|c| match c {
                    std::path::Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    bind_dir(&mut c, rootfs, "", Some(&cwd_parts), true)?;
    c.args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);
    // The user's home, writable (as in the image), bound over the
    // read-only rootfs's.
    if let Some(user) = spec.image.user.as_ref().filter(|u| u.uid != 0) {
        if let Some(home) = super::rootfs::writable_home(rootfs, &user.home)? {
            c.arg("--bind").arg(home).arg(&user.home);
        }
    }
    for (host, inside) in &opts.extra_ro {
        c.arg("--ro-bind").arg(host).arg(inside);
    }
    match &cwd {
        Some(cwd) => {
            c.arg("--bind").arg(cwd).arg(cwd).arg("--chdir").arg(cwd);
        }
        None => {
            let w = spec.image.workdir.as_deref().unwrap_or("/");
            c.args(["--chdir", w]);
        }
    }

    c.arg("--clearenv");
    if opts.as_image {
        let home = spec
            .image
            .user
            .as_ref()
            .map(|u| u.home.as_str())
            .unwrap_or("/root");
        c.args(["--setenv", "HOME", home]);
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
                c.args(["--setenv", &k, &v]);
            }
        }
    }
    if !spec.image.env.contains_key("PATH") {
        c.args(["--setenv", "PATH", crate::sources::DEFAULT_PATH]);
    }
    for (k, v) in &spec.image.env {
        c.args(["--setenv", k, v]);
    }

    let pipe_err = |e: rustix::io::Errno| ShellError::Io {
        what: "making a status pipe for",
        path: PathBuf::from(&program),
        source: e.into(),
    };
    let (status, status_write) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(pipe_err)?;
    // The child inherits the write end at the same number.
    rustix::io::fcntl_setfd(&status_write, rustix::io::FdFlags::empty()).map_err(pipe_err)?;
    let status = fs::File::from(status);
    let fd = std::os::fd::AsRawFd::as_raw_fd(&status_write);
    c.args(["--json-status-fd", &fd.to_string()]);
    c.arg("--").args(cmd);
    Ok(Sandbox {
        program,
        command: c,
        status,
        status_write,
    })
}

/// Bind the entries of `host` (a directory of the rootfs) at `image`:
/// directories and files read-only, symlinks recreated. The directory on
/// the working directory's path (`cwd`, its remaining components) is made
/// anew and filled entry by entry, so the working directory can be bound
/// below it.
fn bind_dir(
    c: &mut Command,
    host: &Path,
    image: &str,
    cwd: Option<&[String]>,
    top: bool,
) -> Result<(), ShellError> {
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(host)
        .map_err(io_err("reading", host))?
        .collect::<Result<_, _>>()
        .map_err(io_err("reading", host))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if top && FRESH.contains(&name.as_str()) {
            continue;
        }
        let at = format!("{image}/{name}");
        let ft = e.file_type().map_err(io_err("reading", &e.path()))?;
        if ft.is_symlink() {
            let target = fs::read_link(e.path()).map_err(io_err("reading", &e.path()))?;
            c.arg("--symlink").arg(target).arg(&at);
        } else if ft.is_dir() && cwd.is_some_and(|rest| rest.len() > 1 && rest[0] == name) {
            c.args(["--dir", &at]);
            bind_dir(c, &e.path(), &at, cwd.map(|r| &r[1..]), false)?;
        } else {
            c.arg("--ro-bind").arg(e.path()).arg(&at);
        }
    }
    Ok(())
}

impl Sandbox {
    /// The bubblewrap command, to set its standard streams.
    pub fn command(&mut self) -> &mut Command {
        &mut self.command
    }

    pub fn spawn(mut self) -> Result<Running, ShellError> {
        let child = self.command.spawn().map_err(|source| ShellError::NoBwrap {
            program: self.program.clone(),
            source,
        })?;
        drop(self.status_write);
        Ok(Running {
            child,
            program: self.program,
            status: self.status,
        })
    }

    /// Run to completion; the command's exit status.
    pub fn run(self) -> Result<i32, ShellError> {
        self.spawn()?.wait()
    }
}

impl Running {
    pub fn wait(mut self) -> Result<i32, ShellError> {
        let status = self
            .child
            .wait()
            .map_err(io_err("waiting for", Path::new(&self.program)))?;
        self.exit_code(status)
    }

    /// The command's exit status (128 + signal when killed), or the reason
    /// the sandbox was never set up.
    pub fn exit_code(&mut self, status: ExitStatus) -> Result<i32, ShellError> {
        // Whatever bubblewrap wrote; the sandboxed command may hold the
        // pipe open, so read only what is there.
        let _ = rustix::io::ioctl_fionbio(&self.status, true);
        let mut text = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.status.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => text.extend_from_slice(&buf[..n]),
            }
        }
        let code = status.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(9)
        });
        if !String::from_utf8_lossy(&text).contains("\"child-pid\"") {
            return Err(ShellError::Sandbox {
                program: self.program.clone(),
                code,
            });
        }
        Ok(code)
    }
}
