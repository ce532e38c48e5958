//! Bytecode at install: a wheel's modules compiled into `__pycache__` by
//! the target interpreter, in the sandbox, so that no process in the image
//! compiles what it imports (the image's site-packages is not writable by
//! its user, so without this every start pays the compile again).
//!
//! The rules, which make the bytes reproducible:
//!
//! - **Which modules**: the `.py` files a wheel installs into its library
//!   directories (purelib, platlib), as pip compiles them; not scripts, not
//!   data. A module whose `.pyc` the wheel ships itself keeps the wheel's.
//! - **How**: `py_compile` with `PycInvalidationMode.UNCHECKED_HASH`
//!   (PEP 552): the header holds the source's SipHash, not its mtime, and the
//!   interpreter never re-checks it, so the store's fixed mtimes do not
//!   matter and the file is never rewritten. Optimization level 0 only (as
//!   pip). `co_filename` is the module's path in the image (`/usr/...`),
//!   not the sandbox's.
//! - **With what**: the target interpreter of the image's base (Debian's
//!   `python3.X`, or a base image's), run in a sandbox whose root is the
//!   base's rootfs, with no network, `PYTHONHASHSEED=0` (set and frozenset
//!   constants are marshalled in hash order) and a cleared environment. The
//!   host's interpreter is never used.
//! - **Failures**: a module that does not compile (Python 2 code in a test
//!   directory, a template with a `.py` name) is installed without
//!   bytecode, as pip does; the count is logged. The interpreter missing
//!   from the base, or the driver failing, is an error.
//!
//! The driver is `bytecode.py` (embedded): it reads the module paths on
//! stdin and writes the pycs and a manifest, which is checked here: every
//! pyc path must be `<dir>/__pycache__/<name>.<tag>.pyc` of a module that
//! was asked for, and a regular file.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::sandbox::{Builder, Network, SandboxError};

/// The driver the interpreter runs.
const DRIVER: &str = include_str!("bytecode.py");

/// The largest manifest read back (one line per module).
const MANIFEST_LIMIT: u64 = 64 << 20;

/// A module to compile: its path relative to the image root
/// (`usr/local/lib/python3.11/site-packages/six.py`) and its bytes.
#[derive(Debug, Clone)]
pub struct Module {
    pub path: String,
    pub bytes: Vec<u8>,
}

/// A compiled module: the pyc's path relative to the image root and its
/// bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    pub path: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum BytecodeError {
    #[error("compiling bytecode: {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("compiling bytecode with {python}: the sandbox failed: {source}")]
    Sandbox {
        python: String,
        #[source]
        source: SandboxError,
    },
    #[error("compiling bytecode: expected the interpreter {python} in the base (looked in {rootfs}), found nothing there; add it to [base] debian packages, name another with [python] shebang, or set [python] compile-bytecode = false")]
    NoInterpreter { python: String, rootfs: PathBuf },
    #[error("compiling bytecode with {python}: expected exit status 0, found {status}: {tail}")]
    Failed {
        python: String,
        status: i32,
        tail: String,
    },
    #[error("compiling bytecode with {python}: it exited 0 but compiled nothing (expected the driver's manifest); is {python} a Python 3 interpreter? Name the base's with [python] shebang, or set [python] compile-bytecode = false")]
    NoManifest { python: String },
    #[error("compiling bytecode with {python}: its manifest line {line:?} {reason}")]
    BadOutput {
        python: String,
        line: String,
        reason: &'static str,
    },
}

fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> BytecodeError + 'a {
    move |source| BytecodeError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Compiles modules with `python` (an absolute image path) inside `rootfs`
/// (the base's rootfs, assembled), using `work` (an empty scratch
/// directory of the caller's) for the sources and the output.
pub struct Compiler<'a> {
    pub rootfs: &'a Path,
    pub python: &'a str,
    pub work: &'a Path,
}

/// Whether a module path can travel through the manifest (tabs, newlines
/// and NULs separate its fields): a path with one is left uncompiled.
fn travels(path: &str) -> bool {
    !path.contains(['\t', '\n', '\r', '\0'])
}

/// The pyc path `importlib.util.cache_from_source` gives `module` for some
/// tag, if `pyc` is one: `<dir>/__pycache__/<stem>.<tag>.pyc`, the tag one
/// of ASCII letters, digits, `-` and `_`.
fn is_cache_path_of(module: &str, pyc: &str) -> bool {
    let (dir, file) = match module.rsplit_once('/') {
        Some((d, f)) => (Some(d), f),
        None => (None, module),
    };
    let Some(stem) = file.strip_suffix(".py") else {
        return false;
    };
    let prefix = match dir {
        Some(d) => format!("{d}/__pycache__/{stem}."),
        None => format!("__pycache__/{stem}."),
    };
    pyc.strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(".pyc"))
        .is_some_and(|tag| {
            !tag.is_empty()
                && tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl Compiler<'_> {
    /// Compile `modules`; the pycs of those that compiled, sorted by path.
    pub fn compile(&self, modules: &[Module]) -> Result<Vec<Compiled>, BytecodeError> {
        let modules: Vec<&Module> = modules.iter().filter(|m| travels(&m.path)).collect();
        if modules.is_empty() {
            return Ok(Vec::new());
        }
        let python_on_host = self.rootfs.join(self.python.trim_start_matches('/'));
        if !python_on_host.exists() && fs::symlink_metadata(&python_on_host).is_err() {
            return Err(BytecodeError::NoInterpreter {
                python: self.python.to_string(),
                rootfs: self.rootfs.to_path_buf(),
            });
        }
        let (src, out) = (self.work.join("src"), self.work.join("out"));
        for m in &modules {
            let at = src.join(&m.path);
            if let Some(parent) = at.parent() {
                fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
            }
            fs::write(&at, &m.bytes).map_err(io_err("writing", &at))?;
        }
        fs::create_dir_all(&out).map_err(io_err("creating", &out))?;
        let driver = self.work.join("bytecode.py");
        fs::write(&driver, DRIVER).map_err(io_err("writing", &driver))?;

        let in_sandbox = |source| BytecodeError::Sandbox {
            python: self.python.to_string(),
            source,
        };
        let mut b = Builder::new(Network::None);
        b.new_session();
        b.rootfs(self.rootfs, &["proc", "dev", "tmp", "build", "sys"], &[])
            .map_err(in_sandbox)?;
        b.proc_dev_tmp();
        b.ro_bind(&src, "/build/src")
            .bind(&out, "/build/out")
            .ro_bind(&driver, "/build/bytecode.py");
        b.chdir("/build").clearenv();
        for (k, v) in [
            ("PYTHONHASHSEED", "0"),
            ("LC_ALL", "C.UTF-8"),
            ("TZ", "UTC"),
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ("TMPDIR", "/tmp"),
        ] {
            b.setenv(k, v);
        }
        // -S: no site (nothing but the standard library is needed); not -E
        // or -I, which would ignore PYTHONHASHSEED.
        let mut sb = b
            .command(&[
                self.python,
                "-S",
                "/build/bytecode.py",
                "/build/src",
                "/build/out",
            ])
            .map_err(in_sandbox)?;
        let log = self.work.join("bytecode.log");
        let log_file = fs::File::create(&log).map_err(io_err("creating", &log))?;
        let log_err = log_file.try_clone().map_err(io_err("opening", &log))?;
        sb.command()
            .stdin(Stdio::piped())
            .stdout(Stdio::from(log_file))
            .stderr(Stdio::from(log_err));
        let mut running = sb.spawn().map_err(in_sandbox)?;
        let list: Vec<u8> = modules
            .iter()
            .flat_map(|m| m.path.bytes().chain([0]))
            .collect();
        let mut stdin = running.child.stdin.take().expect("stdin is piped");
        // A driver that died early closes its stdin: its status says why.
        let _ = stdin.write_all(&list);
        drop(stdin);
        let status = running.wait().map_err(in_sandbox)?;
        if status != 0 {
            let text = fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            return Err(BytecodeError::Failed {
                python: self.python.to_string(),
                status,
                tail: lines[lines.len().saturating_sub(8)..].join("\n"),
            });
        }
        self.read_output(&out, &modules)
    }

    /// The pycs the manifest lists, each checked to be the cache path of a
    /// module asked for and a regular file.
    fn read_output(&self, out: &Path, modules: &[&Module]) -> Result<Vec<Compiled>, BytecodeError> {
        let asked: BTreeSet<&str> = modules.iter().map(|m| m.path.as_str()).collect();
        let manifest = out.join(".manifest");
        let size = match fs::symlink_metadata(&manifest) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BytecodeError::NoManifest {
                    python: self.python.to_string(),
                })
            }
            Err(e) => return Err(io_err("reading", &manifest)(e)),
        };
        if size > MANIFEST_LIMIT {
            return Err(io_err("reading", &manifest)(std::io::Error::other(
                format!("expected at most {MANIFEST_LIMIT} bytes, found {size}"),
            )));
        }
        let text =
            crate::io::read_regular_to_string(&manifest).map_err(io_err("reading", &manifest))?;
        let bad = |line: &str, reason| BytecodeError::BadOutput {
            python: self.python.to_string(),
            line: line.chars().take(300).collect(),
            reason,
        };
        let mut compiled = Vec::new();
        let mut skipped = 0usize;
        for line in text.lines() {
            let mut fields = line.splitn(3, '\t');
            let (kind, module, rest) = (fields.next(), fields.next(), fields.next());
            let (Some(kind), Some(module), Some(rest)) = (kind, module, rest) else {
                return Err(bad(line, "is not KIND<TAB>MODULE<TAB>VALUE"));
            };
            if !asked.contains(module) {
                return Err(bad(line, "names a module that was not asked for"));
            }
            match kind {
                "skip" => {
                    skipped += 1;
                    tracing::debug!(module, why = rest, "module left without bytecode");
                }
                "ok" => {
                    if !is_cache_path_of(module, rest) {
                        return Err(bad(
                            line,
                            "gives a pyc path that is not the module's __pycache__ entry",
                        ));
                    }
                    let at = out.join(rest);
                    let meta = fs::symlink_metadata(&at).map_err(io_err("reading", &at))?;
                    if !meta.is_file() {
                        return Err(bad(line, "gives a pyc that is not a regular file"));
                    }
                    let bytes = crate::io::read_regular(&at).map_err(io_err("reading", &at))?;
                    compiled.push(Compiled {
                        path: rest.to_string(),
                        bytes,
                    });
                }
                _ => return Err(bad(line, "has a kind other than ok or skip")),
            }
        }
        if skipped > 0 {
            tracing::info!(
                skipped,
                compiled = compiled.len(),
                "modules that did not compile are installed without bytecode"
            );
        }
        compiled.sort_by(|a, b| a.path.cmp(&b.path));
        compiled.dedup_by(|a, b| a.path == b.path);
        Ok(compiled)
    }
}

/// The host's interpreter the tests compile with (in the sandbox, the
/// host's root as its rootfs).
#[cfg(test)]
pub(crate) const HOST_PYTHON: &str = "/usr/bin/python3.11";

/// Whether the tests can compile: the host has [`HOST_PYTHON`] and
/// bubblewrap runs.
#[cfg(test)]
pub(crate) fn host_can_compile() -> bool {
    Path::new(HOST_PYTHON).exists()
        && std::process::Command::new(crate::sandbox::bwrap_program())
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_paths_are_the_modules_pycache_entries_only() {
        assert!(is_cache_path_of(
            "usr/lib/p/six.py",
            "usr/lib/p/__pycache__/six.cpython-311.pyc"
        ));
        assert!(is_cache_path_of(
            "six.py",
            "__pycache__/six.cpython-311.pyc"
        ));
        for other in [
            "usr/lib/p/__pycache__/seven.cpython-311.pyc",
            "usr/lib/__pycache__/six.cpython-311.pyc",
            "usr/lib/p/__pycache__/six..pyc",
            "usr/lib/p/__pycache__/six.cpython/../../x.pyc",
            "usr/lib/p/six.pyc",
        ] {
            assert!(!is_cache_path_of("usr/lib/p/six.py", other), "{other}");
        }
        assert!(!is_cache_path_of(
            "usr/lib/p/six.txt",
            "usr/lib/p/__pycache__/six.cpython-311.pyc"
        ));
    }

    /// The host's python3.11, in the sandbox with the host's root as the
    /// rootfs: the real compiler, as a base's interpreter runs it.
    fn compile_with_host_python(
        work: &Path,
        modules: &[Module],
    ) -> Result<Vec<Compiled>, BytecodeError> {
        Compiler {
            rootfs: Path::new("/"),
            python: HOST_PYTHON,
            work,
        }
        .compile(modules)
    }

    #[test]
    fn modules_compile_to_unchecked_hash_pycs_named_by_their_image_path_and_reproducibly() {
        if !host_can_compile() {
            eprintln!("skipped: needs /usr/bin/python3.11 and bubblewrap");
            return;
        }
        let modules = vec![
            Module {
                path: "usr/lib/python3/dist-packages/demo/__init__.py".into(),
                bytes: b"X = {'a', 'b', 'c', 'd'}\ndef f(x):\n    return x in {'p', 'q', 'r'}\n"
                    .to_vec(),
            },
            Module {
                path: "usr/lib/python3/dist-packages/demo/py2.py".into(),
                bytes: b"print 'python 2'\n".to_vec(),
            },
        ];
        let one = tempfile::tempdir().unwrap();
        let two = tempfile::tempdir().unwrap();
        let a = compile_with_host_python(one.path(), &modules).unwrap();
        let b = compile_with_host_python(two.path(), &modules).unwrap();
        assert_eq!(a, b, "two compiles give the same bytes");
        assert_eq!(a.len(), 1, "the Python 2 module is left uncompiled");
        let pyc = &a[0];
        assert!(pyc
            .path
            .starts_with("usr/lib/python3/dist-packages/demo/__pycache__/__init__.cpython-3"));
        // PEP 552: flags word 0b01 = hash-based, not checked against the source.
        assert_eq!(&pyc.bytes[4..8], &[1, 0, 0, 0]);
        let filename = b"/usr/lib/python3/dist-packages/demo/__init__.py";
        assert!(
            pyc.bytes.windows(filename.len()).any(|w| w == filename),
            "co_filename is the image path"
        );
    }

    #[test]
    fn a_missing_interpreter_is_named() {
        let work = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let err = Compiler {
            rootfs: root.path(),
            python: "/usr/bin/python3.11",
            work: work.path(),
        }
        .compile(&[Module {
            path: "a.py".into(),
            bytes: b"x = 1\n".to_vec(),
        }])
        .unwrap_err();
        assert!(matches!(err, BytecodeError::NoInterpreter { .. }), "{err}");
        assert!(err.to_string().contains("compile-bytecode = false"));
    }
}
