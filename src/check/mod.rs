//! `envbuild check`: the spec's `[[checks]]` run inside the closure, and a
//! built-in check that the installed distributions are the locked ones.
//!
//! A check runs as the image would run it: the image's user, environment
//! (no host variable) and working directory, the host's working directory
//! not bound. It passes when the command exits with the expected status
//! within its timeout and, if a pattern is given, its stdout matches it.
//! With `serve`, the image's entrypoint + cmd is started first in the same
//! way, the check waits for the port to accept a connection, runs the
//! command, then stops the server. The server, the probe and the command
//! share one network view: the sandbox shares the host's network namespace
//! ([`shell::enter::NETWORK`]), so the probe connects to 127.0.0.1 from
//! here and the command reaches the server at `localhost` (the sandbox's
//! `/etc/hosts` names it).
//!
//! A check with `gpu = true` runs with the host's GPU; on a host without
//! one it is [`Checked::Skipped`], said so, never passed. With `--gpus` (or
//! an image setting `NVIDIA_VISIBLE_DEVICES` on a host with a GPU) every
//! check gets the GPU.
//!
//! A failure of one check is an [`Outcome`] with its reason; what keeps
//! every check from running (no bubblewrap, no namespaces) is a
//! [`CheckError`].

mod dist_info;

use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

pub use dist_info::{dist_info_check, installed_distributions, DIST_INFO_CHECK};

use crate::sandbox::{gpu::Gpu, Network};
use crate::shell::{self, EnterOptions, Running, ShellError};
use crate::spec::{Check, Spec};

// The probe below connects from the host: it is in the server's network
// view only while the sandbox shares the host's network namespace.
const _: () = assert!(matches!(shell::enter::NETWORK, Network::Host));

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("check {check:?}: {source}")]
    Enter {
        check: String,
        #[source]
        source: ShellError,
    },
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub name: String,
    pub passed: bool,
    /// Why it failed, or what passing means ("exit status 0", ...).
    pub reason: String,
    pub millis: u128,
}

/// What became of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    Ran(Outcome),
    /// Not run, and why (a `gpu = true` check on a host without a GPU).
    Skipped {
        name: String,
        reason: String,
    },
}

/// The GPU the checks may use.
#[derive(Debug, Clone, Default)]
pub struct CheckGpu {
    /// The host's, if it has one.
    pub host: Option<Gpu>,
    /// Every check gets it (`--gpus`, or the image asks for one), not only
    /// those with `gpu = true`.
    pub all: bool,
}

/// How much of a stream a failure quotes.
const TAIL: usize = 400;

fn tail(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let s = s.trim_end();
    let start = s
        .char_indices()
        .rev()
        .nth(TAIL)
        .map(|(i, _)| i)
        .unwrap_or(0);
    let t = &s[start..];
    if t.is_empty() {
        "(nothing)".into()
    } else {
        format!("{:?}", t)
    }
}

/// Errors that stop every check: the sandbox cannot be made at all.
fn fatal(check: &Check, e: ShellError) -> Result<Outcome, CheckError> {
    match e {
        ShellError::Sandbox(_) | ShellError::Io { .. } => Err(CheckError::Enter {
            check: check.name.clone(),
            source: e,
        }),
        other => Ok(failed(check, other.to_string(), Instant::now())),
    }
}

fn failed(check: &Check, reason: String, started: Instant) -> Outcome {
    Outcome {
        name: check.name.clone(),
        passed: false,
        reason,
        millis: started.elapsed().as_millis(),
    }
}

/// Run one check inside `rootfs`, with the GPU if it asks for one or
/// `gpu.all` says so.
pub fn run_check(
    spec: &Spec,
    rootfs: &Path,
    check: &Check,
    gpu: &CheckGpu,
) -> Result<Checked, CheckError> {
    if check.gpu && gpu.host.is_none() {
        return Ok(Checked::Skipped {
            name: check.name.clone(),
            reason: format!(
                "needs a GPU (gpu = true) and this host has none (no NVIDIA device node in {})",
                crate::sandbox::gpu::dev_dir().display()
            ),
        });
    }
    let opts = EnterOptions {
        as_image: true,
        gpu: gpu.host.clone().filter(|_| check.gpu || gpu.all),
        ..EnterOptions::default()
    };
    run_with(spec, rootfs, check, &opts).map(Checked::Ran)
}

fn run_with(
    spec: &Spec,
    rootfs: &Path,
    check: &Check,
    opts: &EnterOptions,
) -> Result<Outcome, CheckError> {
    let started = Instant::now();
    let mut server = None;
    if let Some(serve) = &check.serve {
        let addr = SocketAddr::from(([127, 0, 0, 1], serve.port));
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(failed(
                check,
                format!("port {} already answers on this host before the server started (expected it free); stop what listens there", serve.port),
                started,
            ));
        }
        let argv: Vec<String> = spec
            .image
            .entrypoint
            .iter()
            .flatten()
            .chain(spec.image.cmd.iter().flatten())
            .cloned()
            .collect();
        let log = match tempfile::tempfile() {
            Ok(f) => f,
            Err(e) => {
                return fatal(
                    check,
                    ShellError::Io {
                        what: "creating a log file in",
                        path: std::env::temp_dir(),
                        source: e,
                    },
                )
            }
        };
        let mut sb = match shell::sandbox(spec, rootfs, &argv, opts) {
            Ok(s) => s,
            Err(e) => return fatal(check, e),
        };
        let (out, err) = match (log.try_clone(), log.try_clone()) {
            (Ok(a), Ok(b)) => (a, b),
            _ => {
                return Ok(failed(
                    check,
                    "cannot duplicate the log file".into(),
                    started,
                ))
            }
        };
        own_group(&mut sb);
        sb.command()
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let mut running = match sb.spawn() {
            Ok(r) => r,
            Err(e) => return fatal(check, e.into()),
        };
        let deadline = Instant::now() + serve.timeout;
        loop {
            if let Ok(Some(status)) = running.child.try_wait() {
                let code = match running.exit_code(status) {
                    Ok(c) => c,
                    Err(e) => return fatal(check, e.into()),
                };
                return Ok(failed(
                    check,
                    format!(
                        "the server {argv:?} exited with status {code} before port {} answered; its output ends: {}",
                        serve.port,
                        read_log(log)
                    ),
                    started,
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if Instant::now() >= deadline {
                stop(&mut running);
                return Ok(failed(
                    check,
                    format!(
                        "port {} did not answer within {:?} of starting {argv:?}; its output ends: {}",
                        serve.port,
                        serve.timeout,
                        read_log(log)
                    ),
                    started,
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        server = Some(running);
    }
    let result = run_command(spec, rootfs, check, opts, started);
    if let (Some(mut s), Some(serve)) = (server, &check.serve) {
        stop(&mut s);
        // Until the port is free again, for the next check.
        let addr = SocketAddr::from(([127, 0, 0, 1], serve.port));
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until
            && TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    result
}

fn read_log(mut f: fs::File) -> String {
    use std::io::Seek;
    let mut buf = Vec::new();
    let _ = f.seek(std::io::SeekFrom::Start(0));
    let _ = f.read_to_end(&mut buf);
    tail(&buf)
}

/// Kill the sandbox and everything in it (its process group: bubblewrap,
/// its init and the command), then reap bubblewrap.
fn stop(r: &mut Running) {
    let pid = rustix::process::Pid::from_child(&r.child);
    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    let _ = r.child.kill();
    let _ = r.child.wait();
}

/// Start the sandbox in a process group of its own, so [`stop`] reaches
/// every process in it.
fn own_group(sb: &mut shell::Sandbox) {
    std::os::unix::process::CommandExt::process_group(sb.command(), 0);
}

fn run_command(
    spec: &Spec,
    rootfs: &Path,
    check: &Check,
    opts: &EnterOptions,
    started: Instant,
) -> Result<Outcome, CheckError> {
    let mut sb = match shell::sandbox(spec, rootfs, &check.command, opts) {
        Ok(s) => s,
        Err(e) => return fatal(check, e),
    };
    own_group(&mut sb);
    sb.command()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut running = match sb.spawn() {
        Ok(r) => r,
        Err(e) => return fatal(check, e.into()),
    };
    let reader = |s: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut s) = s {
                let _ = s.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = reader(
        running
            .child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = reader(
        running
            .child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + check.timeout;
    let status = loop {
        match running.child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => break None,
        }
    };
    let Some(status) = status else {
        stop(&mut running);
        let stdout = out.join().unwrap_or_default();
        return Ok(failed(
            check,
            format!(
                "timed out after {:?} (expected it to finish within the check's timeout); stdout ends: {}",
                check.timeout,
                tail(&stdout)
            ),
            started,
        ));
    };
    let code = match running.exit_code(status) {
        Ok(c) => c,
        Err(e) => return fatal(check, e.into()),
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if code != check.exit {
        return Ok(failed(
            check,
            format!(
                "exit status {code}, expected {}; stderr ends: {}",
                check.exit,
                tail(&stderr)
            ),
            started,
        ));
    }
    if let Some(p) = &check.stdout {
        // Validated when the spec was loaded.
        let re = regex::Regex::new(p).map_err(|e| CheckError::Enter {
            check: check.name.clone(),
            source: ShellError::Io {
                what: "compiling the stdout pattern of",
                path: spec.path.clone(),
                source: std::io::Error::other(e),
            },
        })?;
        // Without its final line ends, so `$` means the end of the output.
        let text = String::from_utf8_lossy(&stdout);
        if !re.is_match(text.trim_end_matches(['\n', '\r'])) {
            return Ok(failed(
                check,
                format!(
                    "stdout does not match {p:?}; stdout ends: {}",
                    tail(&stdout)
                ),
                started,
            ));
        }
    }
    Ok(Outcome {
        name: check.name.clone(),
        passed: true,
        reason: match (&check.stdout, &check.serve) {
            (None, None) => format!("exit status {code}"),
            (Some(p), None) => format!("exit status {code}, stdout matches {p:?}"),
            (None, Some(s)) => format!("port {} answered; exit status {code}", s.port),
            (Some(p), Some(s)) => format!(
                "port {} answered; exit status {code}, stdout matches {p:?}",
                s.port
            ),
        },
        millis: started.elapsed().as_millis(),
    })
}
