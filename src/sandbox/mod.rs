//! The one place a bubblewrap command line is made.
//!
//! Every sandbox envbuild starts (an sdist build, `envbuild run`, `shell`,
//! the commands of `check`) is a [`Builder`]: namespaces, uid/gid, mounts,
//! environment and working directory, then [`Builder::command`] adds the
//! JSON status descriptor and the command, giving a [`Sandbox`] to spawn.
//! The builder's operations stay inspectable ([`Builder::ops`]), so tests
//! assert what a sandbox binds without starting it.
//!
//! # Mount layout
//!
//! The sandbox's `/` is bubblewrap's own tmpfs. [`Builder::rootfs`] binds
//! each top-level entry of a rootfs read-only into it (its files are the
//! store's own inodes) and recreates each top-level symlink. A directory on
//! the way to an *open* path (the working directory, a generated
//! `/etc/hosts`, the GPU library directory) is recreated on the tmpfs
//! instead and its entries bound one by one down the path, so that the open
//! path itself can be bound without ever writing into the rootfs: the
//! rootfs is a cache of the store and stays untouched. Callers then add
//! fresh `/proc`, `/dev` and `/tmp` and their own binds.
//!
//! # Network
//!
//! [`Network::Host`] shares the host's network namespace (`run`, `shell`,
//! `check`: a server in the sandbox is reached at 127.0.0.1 on the host, as
//! with `docker run --network host`); [`Network::None`] unshares it, leaving
//! only a loopback interface (sdist builds: nothing can be fetched).
//! [`net`] writes what a container runtime gives a container: `/etc/hosts`,
//! `/etc/resolv.conf`, a CA bundle. [`gpu`] finds the host's NVIDIA devices
//! and driver libraries.
//!
//! # Status
//!
//! Whether bubblewrap set the sandbox up is read from its JSON status
//! descriptor (`--json-status-fd`): a run that never reports a child pid
//! failed before the command started (no user namespaces, for one), which
//! [`Running::exit_code`] tells apart from the command's own exit status.
//! bubblewrap reports the child pid before it mounts anything, so a mount
//! that fails (a bind source missing) still reads as the command's status
//! (1), with bubblewrap's own message on stderr.

pub mod gpu;
pub mod net;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, ExitStatus};

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start bubblewrap ({program}): {source}; install it (Debian package `bubblewrap`) or set ENVBUILD_BWRAP to its path")]
    NoBwrap {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("bubblewrap ({program}) could not set up the sandbox (exit status {code}; its own message is above): expected to create user, mount and PID namespaces as this user, which this machine refused; check that unprivileged user namespaces are enabled (sysctl user.max_user_namespaces > 0, kernel.unprivileged_userns_clone = 1, kernel.apparmor_restrict_unprivileged_userns = 0)")]
    Setup { program: String, code: i32 },
    #[error("--gpus: expected NVIDIA device nodes (nvidia0, nvidiactl, ...) in {dev}, found none; is the NVIDIA driver loaded on this host?")]
    NoGpu { dev: PathBuf },
}

pub(crate) fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> SandboxError + 'a {
    move |source| SandboxError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// The bubblewrap program: `ENVBUILD_BWRAP`, else `bwrap` from PATH.
pub fn bwrap_program() -> String {
    std::env::var("ENVBUILD_BWRAP").unwrap_or_else(|_| "bwrap".into())
}

/// The sandbox's network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// The host's: the sandbox reaches what the host reaches, and the host
    /// reaches a server in the sandbox at 127.0.0.1.
    Host,
    /// A new one with only a loopback interface.
    None,
}

/// One bubblewrap operation: its option and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub option: &'static str,
    pub args: Vec<OsString>,
}

/// A bubblewrap command line being made.
#[derive(Debug, Clone)]
pub struct Builder {
    program: String,
    network: Network,
    ops: Vec<Op>,
}

impl Builder {
    /// User, mount, PID, IPC, UTS and (where the kernel allows) cgroup
    /// namespaces, the network namespace as `network` says; the sandbox
    /// dies with its parent.
    pub fn new(network: Network) -> Self {
        let mut b = Builder {
            program: bwrap_program(),
            network,
            ops: Vec::new(),
        };
        for o in [
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
        ] {
            b.op(o, &[] as &[&OsStr]);
        }
        if network == Network::None {
            b.op("--unshare-net", &[] as &[&OsStr]);
        }
        b.op("--die-with-parent", &[] as &[&OsStr]);
        b
    }

    fn op<S: AsRef<OsStr>>(&mut self, option: &'static str, args: &[S]) -> &mut Self {
        self.ops.push(Op {
            option,
            args: args.iter().map(|a| a.as_ref().to_os_string()).collect(),
        });
        self
    }

    pub fn network(&self) -> Network {
        self.network
    }

    /// The operations so far, in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// The (source, destination) pairs of one bind option (`--ro-bind`,
    /// `--bind`, `--dev-bind`), in order.
    pub fn binds(&self, option: &str) -> Vec<(PathBuf, PathBuf)> {
        self.ops
            .iter()
            .filter(|o| o.option == option && o.args.len() == 2)
            .map(|o| (PathBuf::from(&o.args[0]), PathBuf::from(&o.args[1])))
            .collect()
    }

    /// The value of `--setenv NAME` (the last one wins, as in bubblewrap).
    pub fn env(&self, name: &str) -> Option<&OsStr> {
        self.ops
            .iter()
            .rev()
            .find(|o| o.option == "--setenv" && o.args[0] == name)
            .map(|o| o.args[1].as_os_str())
    }

    /// The command line so far (without the program).
    pub fn args(&self) -> Vec<OsString> {
        let mut v = Vec::new();
        for o in &self.ops {
            v.push(OsString::from(o.option));
            v.extend(o.args.iter().cloned());
        }
        v
    }

    /// A new session: the sandbox cannot reach the terminal (TIOCSTI).
    pub fn new_session(&mut self) -> &mut Self {
        self.op("--new-session", &[] as &[&OsStr])
    }

    pub fn ids(&mut self, uid: u32, gid: u32) -> &mut Self {
        self.op("--uid", &[uid.to_string()])
            .op("--gid", &[gid.to_string()])
    }

    pub fn hostname(&mut self, name: &str) -> &mut Self {
        self.op("--hostname", &[name])
    }

    pub fn ro_bind(&mut self, host: impl AsRef<OsStr>, at: impl AsRef<OsStr>) -> &mut Self {
        self.op("--ro-bind", &[host.as_ref(), at.as_ref()])
    }

    pub fn bind(&mut self, host: impl AsRef<OsStr>, at: impl AsRef<OsStr>) -> &mut Self {
        self.op("--bind", &[host.as_ref(), at.as_ref()])
    }

    /// A bind that keeps device nodes usable (GPU devices).
    pub fn dev_bind(&mut self, host: impl AsRef<OsStr>, at: impl AsRef<OsStr>) -> &mut Self {
        self.op("--dev-bind", &[host.as_ref(), at.as_ref()])
    }

    pub fn dir(&mut self, at: impl AsRef<OsStr>) -> &mut Self {
        self.op("--dir", &[at.as_ref()])
    }

    pub fn symlink(&mut self, target: impl AsRef<OsStr>, at: impl AsRef<OsStr>) -> &mut Self {
        self.op("--symlink", &[target.as_ref(), at.as_ref()])
    }

    pub fn tmpfs(&mut self, at: &str) -> &mut Self {
        self.op("--tmpfs", &[at])
    }

    /// Fresh `/proc`, `/dev` (bubblewrap's minimal one) and `/tmp`.
    pub fn proc_dev_tmp(&mut self) -> &mut Self {
        self.op("--proc", &["/proc"])
            .op("--dev", &["/dev"])
            .tmpfs("/tmp")
    }

    pub fn chdir(&mut self, at: impl AsRef<OsStr>) -> &mut Self {
        self.op("--chdir", &[at.as_ref()])
    }

    /// Start from an empty environment.
    pub fn clearenv(&mut self) -> &mut Self {
        self.op("--clearenv", &[] as &[&OsStr])
    }

    pub fn setenv(&mut self, name: &str, value: impl AsRef<OsStr>) -> &mut Self {
        self.op("--setenv", &[OsStr::new(name), value.as_ref()])
    }

    /// Bind the rootfs at `/` as the module documentation describes: its
    /// top-level entries read-only (except `skip`, which the caller mounts
    /// fresh), the directories on the way to each of `open` (absolute
    /// sandbox paths) recreated, and each open path itself left for the
    /// caller to bind.
    pub fn rootfs(
        &mut self,
        rootfs: &Path,
        skip: &[&str],
        open: &[&str],
    ) -> Result<&mut Self, SandboxError> {
        let open: Vec<Vec<String>> = open.iter().map(|p| components(p)).collect();
        let open: Vec<&[String]> = open.iter().map(Vec::as_slice).collect();
        self.bind_dir(rootfs, "", skip, &open)?;
        Ok(self)
    }

    fn bind_dir(
        &mut self,
        host: &Path,
        at: &str,
        skip: &[&str],
        open: &[&[String]],
    ) -> Result<(), SandboxError> {
        let mut entries: Vec<fs::DirEntry> = fs::read_dir(host)
            .map_err(io_err("reading", host))?
            .collect::<Result<_, _>>()
            .map_err(io_err("reading", host))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            if skip.contains(&name.as_str()) {
                continue;
            }
            let here = format!("{at}/{name}");
            // The open paths going through this entry, less this entry.
            let below: Vec<&[String]> = open
                .iter()
                .filter(|p| p.first() == Some(&name))
                .map(|p| &p[1..])
                .collect();
            if below.iter().any(|rest| rest.is_empty()) {
                // An open path itself: the caller binds it.
                continue;
            }
            let ft = e.file_type().map_err(io_err("reading", &e.path()))?;
            if ft.is_symlink() {
                let target = fs::read_link(e.path()).map_err(io_err("reading", &e.path()))?;
                self.symlink(target, &here);
            } else if ft.is_dir() && !below.is_empty() {
                self.dir(&here);
                self.bind_dir(&e.path(), &here, &[], &below)?;
            } else {
                self.ro_bind(e.path(), &here);
            }
        }
        Ok(())
    }

    /// The command to run: adds the JSON status descriptor, then `cmd`.
    pub fn command<S: AsRef<OsStr>>(self, cmd: &[S]) -> Result<Sandbox, SandboxError> {
        let program = self.program.clone();
        let pipe_err = |e: rustix::io::Errno| SandboxError::Io {
            what: "making a status pipe for",
            path: PathBuf::from(&program),
            source: e.into(),
        };
        let (status, status_write) =
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(pipe_err)?;
        // The child inherits the write end at the same number.
        rustix::io::fcntl_setfd(&status_write, rustix::io::FdFlags::empty()).map_err(pipe_err)?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&status_write);
        let mut c = Command::new(&program);
        c.args(self.args());
        c.args(["--json-status-fd", &fd.to_string()]);
        c.arg("--").args(cmd);
        Ok(Sandbox {
            program,
            command: c,
            status: fs::File::from(status),
            status_write,
            keep: Vec::new(),
        })
    }
}

/// The normal components of an absolute path.
fn components(p: &str) -> Vec<String> {
    Path::new(p)
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect()
}

/// A sandbox ready to start.
pub struct Sandbox {
    program: String,
    command: Command,
    status: fs::File,
    /// The write end, kept open in this process until the child is spawned.
    status_write: OwnedFd,
    /// Host directories the sandbox binds from (generated files), removed
    /// when the sandbox is done with.
    keep: Vec<tempfile::TempDir>,
}

/// A started sandbox.
pub struct Running {
    pub child: Child,
    program: String,
    status: fs::File,
    _keep: Vec<tempfile::TempDir>,
}

impl Sandbox {
    /// The bubblewrap command, to set its standard streams.
    pub fn command(&mut self) -> &mut Command {
        &mut self.command
    }

    /// Keep `dir` until the sandbox has finished.
    pub fn keep(&mut self, dir: tempfile::TempDir) {
        self.keep.push(dir);
    }

    pub fn spawn(mut self) -> Result<Running, SandboxError> {
        let child = self
            .command
            .spawn()
            .map_err(|source| SandboxError::NoBwrap {
                program: self.program.clone(),
                source,
            })?;
        drop(self.status_write);
        Ok(Running {
            child,
            program: self.program,
            status: self.status,
            _keep: self.keep,
        })
    }

    /// Run to completion; the command's exit status.
    pub fn run(self) -> Result<i32, SandboxError> {
        self.spawn()?.wait()
    }
}

impl Running {
    pub fn wait(mut self) -> Result<i32, SandboxError> {
        let status = self
            .child
            .wait()
            .map_err(io_err("waiting for", Path::new(&self.program)))?;
        self.exit_code(status)
    }

    /// The command's exit status (128 + signal when killed), or the reason
    /// the sandbox was never set up.
    pub fn exit_code(&mut self, status: ExitStatus) -> Result<i32, SandboxError> {
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
            return Err(SandboxError::Setup {
                program: self.program.clone(),
                code,
            });
        }
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs(dir: &Path) -> PathBuf {
        let r = dir.join("rootfs");
        for d in ["etc/ssl", "usr/bin", "usr/local/lib", "home/u/work", "proc"] {
            fs::create_dir_all(r.join(d)).unwrap();
        }
        for f in [
            "etc/passwd",
            "etc/hosts",
            "usr/bin/python3",
            "etc/ssl/openssl.cnf",
        ] {
            fs::write(r.join(f), "x").unwrap();
        }
        std::os::unix::fs::symlink("usr/bin", r.join("bin")).unwrap();
        r
    }

    #[test]
    fn rootfs_binds_top_level_entries_and_recreates_directories_on_open_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let r = rootfs(tmp.path());
        let mut b = Builder::new(Network::Host);
        b.rootfs(&r, &["proc"], &["/etc/hosts", "/home/u/work"])
            .unwrap();
        let ro: Vec<(PathBuf, PathBuf)> = b.binds("--ro-bind");
        let at: Vec<&Path> = ro.iter().map(|(_, a)| a.as_path()).collect();
        assert_eq!(
            at,
            [
                Path::new("/etc/passwd"),
                Path::new("/etc/ssl"),
                Path::new("/usr")
            ]
        );
        assert_eq!(ro[0].0, r.join("etc/passwd"));
        let dirs: Vec<&OsString> = b
            .ops()
            .iter()
            .filter(|o| o.option == "--dir")
            .map(|o| &o.args[0])
            .collect();
        assert_eq!(dirs, ["/etc", "/home", "/home/u"]);
        assert!(b.ops().contains(&Op {
            option: "--symlink",
            args: vec!["usr/bin".into(), "/bin".into()]
        }));
        // Skipped, and the open paths themselves left to the caller.
        assert!(!b
            .args()
            .iter()
            .any(|a| a == "/proc" || a == "/etc/hosts" || a == "/home/u/work"));
    }

    #[test]
    fn network_none_unshares_the_network_and_host_does_not() {
        let none = Builder::new(Network::None).args();
        let host = Builder::new(Network::Host).args();
        assert!(none.iter().any(|a| a == "--unshare-net"));
        assert!(!host
            .iter()
            .any(|a| a == "--unshare-net" || a == "--unshare-all"));
        for a in [&none, &host] {
            assert!(a.iter().any(|a| a == "--unshare-user"));
            assert!(a.iter().any(|a| a == "--unshare-pid"));
        }
    }

    /// Run `sh -c script` from the host's (merged) /usr in a sandbox.
    fn run_host_sh(network: Network, script: &str) -> (i32, String) {
        let mut b = Builder::new(network);
        b.ro_bind("/usr", "/usr");
        for l in ["bin", "lib", "lib64"] {
            b.symlink(format!("usr/{l}"), format!("/{l}"));
        }
        b.proc_dev_tmp();
        let mut sb = b.command(&["sh", "-c", script]).unwrap();
        sb.command().stdout(std::process::Stdio::piped());
        let mut r = sb.spawn().expect("bwrap is installed (Debian: bubblewrap)");
        let mut out = String::new();
        r.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        (r.wait().unwrap(), out)
    }

    #[test]
    fn without_network_only_loopback_is_there_and_the_exit_status_passes_through() {
        let (code, out) = run_host_sh(Network::None, "cat /proc/net/dev; exit 7");
        assert_eq!(code, 7, "{out}");
        let interfaces: Vec<&str> = out
            .lines()
            .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim()))
            .collect();
        assert_eq!(interfaces, ["lo"], "{out}");
    }

    #[test]
    fn the_last_setenv_of_a_name_is_its_value() {
        let mut b = Builder::new(Network::None);
        b.clearenv()
            .setenv("A", "1")
            .setenv("B", "2")
            .setenv("A", "3");
        assert_eq!(b.env("A"), Some(OsStr::new("3")));
        assert_eq!(b.env("C"), None);
    }
}
