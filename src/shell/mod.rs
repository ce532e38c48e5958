//! Entering the closure outside an image: `envbuild run`, `envbuild shell`
//! and the commands of `envbuild check`.
//!
//! [`rootfs`]: the rootfs is assembled from the realized components by
//! hardlinks into the store, cached under the hash of the component list,
//! so a second entry costs one directory lookup. [`enter`]: it is entered
//! with bubblewrap through [`crate::sandbox`] (user, mount and PID
//! namespaces, no root; the host's network with generated `/etc/hosts` and
//! `/etc/resolv.conf`), the rootfs read-only, a fresh `/tmp`, `/proc` and
//! `/dev`, the working directory bound read-write at the same path, the
//! spec's user and environment, the host's GPU when asked for.
//! [`dev_shell`]: what `envbuild shell` runs: the `[shell] hook`, then the
//! command or an interactive shell.

pub mod enter;
pub mod rootfs;

use std::path::{Path, PathBuf};

pub use crate::sandbox::{Running, Sandbox};
pub use enter::{gpu_for, sandbox, EnterOptions};

use crate::sandbox::SandboxError;

use crate::spec::Spec;

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Bubblewrap could not be started or could not set the sandbox up.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),

    #[error("no command given: use `envbuild run SPEC -- CMD [ARGS...]`")]
    NoCommand,
    #[error("command {command:?} is not in the closure (looked in {searched}); add the component that provides it to the spec")]
    NotInClosure { command: String, searched: String },
    #[error("the closure has no shell (looked for bash and sh in {path}): {why}; add one (e.g. [base] debian packages or [shell] packages = [\"bash\"]) or give a command: `envbuild shell SPEC -- CMD`")]
    NoShell { path: String, why: &'static str },
}

pub(crate) fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> ShellError + 'a {
    move |source| ShellError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Run `cmd` inside `rootfs` as the spec's user with the spec's environment;
/// returns the command's exit code.
pub fn run(
    spec: &Spec,
    rootfs: &Path,
    cmd: &[String],
    opts: &EnterOptions,
) -> Result<i32, ShellError> {
    Ok(sandbox(spec, rootfs, cmd, opts)?.run()?)
}

/// Where the hook is placed inside the sandbox (on its fresh `/tmp`).
pub const HOOK_PATH: &str = "/tmp/.envbuild-shell-hook";

/// What `envbuild shell` runs, and the hook file to bind at [`HOOK_PATH`].
pub struct DevShell {
    pub command: Vec<String>,
    /// The hook, written to a host file to bind read-only at [`HOOK_PATH`].
    pub hook_file: Option<tempfile::NamedTempFile>,
}

/// The command line of `envbuild shell`: with `cmd`, the hook (its output
/// sent to stderr, so stdout is the command's alone) then `exec CMD`; without,
/// an interactive `bash` (the hook as its rcfile) or `sh` (the hook as
/// `$ENV`, read by an interactive POSIX shell). A hook needs `sh` in the
/// closure; no hook and a command runs the command directly.
pub fn dev_shell(spec: &Spec, rootfs: &Path, cmd: &[String]) -> Result<DevShell, ShellError> {
    let path = enter::search_path(spec);
    let has = |c: &str| rootfs::find_command(rootfs, c, path).is_ok();
    let hook_file = match &spec.shell.hook {
        None => None,
        Some(h) => {
            let mut f = tempfile::Builder::new()
                .prefix("envbuild-shell-hook")
                .tempfile()
                .map_err(io_err("creating", &std::env::temp_dir()))?;
            std::io::Write::write_all(&mut f, format!("{h}\n").as_bytes())
                .map_err(io_err("writing", f.path()))?;
            Some(f)
        }
    };
    let command = if !cmd.is_empty() {
        if hook_file.is_none() {
            cmd.to_vec()
        } else {
            if !has("sh") {
                return Err(ShellError::NoShell {
                    path: path.to_string(),
                    why: "[shell] hook is run by sh",
                });
            }
            let mut v: Vec<String> = vec![
                "sh".into(),
                "-c".into(),
                format!(". {HOOK_PATH} >&2; exec \"$@\""),
                "envbuild-shell".into(),
            ];
            v.extend(cmd.iter().cloned());
            v
        }
    } else if has("bash") {
        match hook_file {
            Some(_) => vec![
                "bash".into(),
                "--rcfile".into(),
                HOOK_PATH.into(),
                "-i".into(),
            ],
            None => vec!["bash".into(), "-i".into()],
        }
    } else if has("sh") {
        match hook_file {
            Some(_) => vec![
                "sh".into(),
                "-c".into(),
                format!("ENV={HOOK_PATH} exec sh -i"),
            ],
            None => vec!["sh".into(), "-i".into()],
        }
    } else {
        return Err(ShellError::NoShell {
            path: path.to_string(),
            why: "an interactive shell needs one",
        });
    };
    Ok(DevShell { command, hook_file })
}
