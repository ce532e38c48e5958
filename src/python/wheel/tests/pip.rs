//! The same wheels installed by the real pip (`python3 -m pip`, pip 23 on
//! this machine) and by us must give the same files, the same bytes (but for
//! the launchers' quote style) and the same RECORD rows; our launchers must
//! run. These tests need `python3` with pip and fail, saying so, without it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::fixture::{demo_wheel, snapshot};
use super::*;

struct Python {
    /// `sys.executable`: absolute, used as the shebang, as pip uses it.
    exe: String,
    /// `X.Y`.
    version: String,
}

fn python() -> Python {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, pip; print(sys.executable); print('%d.%d' % sys.version_info[:2])",
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!("this test compares with the real pip: it needs `python3` (with pip) on PATH, and running it failed: {e}")
        });
    assert!(
        out.status.success(),
        "this test compares with the real pip: `python3 -c 'import pip'` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    Python {
        exe: lines.next().unwrap().to_owned(),
        version: lines.next().unwrap().to_owned(),
    }
}

impl Python {
    fn pip_install(&self, wheel: &Path, args: &[&str]) {
        let out = Command::new(&self.exe)
            .args([
                "-m",
                "pip",
                "--isolated",
                "install",
                "--no-deps",
                "--ignore-installed",
                "--no-compile",
                "--no-index",
                "--no-cache-dir",
                "--disable-pip-version-check",
                "--no-warn-script-location",
            ])
            .args(args)
            .arg(wheel)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pip install {} failed: {}{}",
            wheel.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn options(&self) -> InstallOptions {
        InstallOptions {
            scheme: InstallScheme::posix_prefix("usr/local", &self.version),
            interpreter: self.exe.clone(),
            installer: "envbuild".to_owned(),
            pinned: false,
        }
    }

    /// The wheels bundled with this Python (ensurepip, or Debian's copy).
    fn bundled_wheels(&self) -> Vec<PathBuf> {
        let out = Command::new(&self.exe)
            .args([
                "-c",
                "import ensurepip, glob, os; print('\\n'.join(glob.glob(os.path.join(os.path.dirname(ensurepip.__file__), '_bundled', '*.whl'))))",
            ])
            .output()
            .unwrap();
        let mut wheels: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(PathBuf::from)
            .collect();
        if let Ok(dir) = fs::read_dir("/usr/share/python-wheels") {
            wheels.extend(dir.flatten().map(|e| e.path()));
        }
        wheels.retain(|w| {
            let name = w.file_name().unwrap().to_string_lossy().into_owned();
            name.ends_with(".whl") && (name.starts_with("pip-") || name.starts_with("setuptools-"))
        });
        wheels.sort();
        wheels
    }
}

/// Files pip and we write differently by design, and bytecode.
fn ignored(path: &str) -> bool {
    let base = path.rsplit('/').next().unwrap_or(path);
    let in_dist_info = path
        .rsplit('/')
        .nth(1)
        .is_some_and(|d| d.ends_with(".dist-info"));
    path.contains("__pycache__")
        || (in_dist_info
            && matches!(
                base,
                "RECORD" | "INSTALLER" | "REQUESTED" | "direct_url.json"
            ))
        || is_versioned_pip_script(path)
}

/// pip rewrites pip's own versioned script names for the running Python.
fn is_versioned_pip_script(path: &str) -> bool {
    let base = path.rsplit('/').next().unwrap_or(path);
    let rest = base
        .strip_prefix("pip")
        .or_else(|| base.strip_prefix("easy_install-"));
    path.contains("bin/")
        && rest
            .is_some_and(|r| r.contains('.') && r.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

/// pip's launchers quote with `'`, ours (like installer and uv) with `"`.
fn unquote_launcher(bytes: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes);
    if text.contains("\nimport re\nimport sys\nfrom ") {
        text.replace('\'', "\"").into_bytes()
    } else {
        bytes.to_vec()
    }
}

fn umask() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Umask:"))?;
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn same_site_packages_as_pip_target_and_launchers_run() {
    let py = python();
    let tmp = tempfile::tempdir().unwrap();
    let wheel = demo_wheel().write_to(tmp.path());
    let dest = tmp.path().join("dest");
    let opts = py.options();
    install_wheel(&wheel, &dest, &opts).unwrap();
    let target = tmp.path().join("target");
    py.pip_install(&wheel, &["--target", target.to_str().unwrap()]);

    let site = dest.join(&opts.scheme.purelib);
    let ours: BTreeMap<String, (u32, Vec<u8>)> = snapshot(&site)
        .into_iter()
        .filter(|(p, _)| !ignored(p))
        .collect();
    // --target puts scripts, data and headers beside the packages.
    let theirs: BTreeMap<String, (u32, Vec<u8>)> = snapshot(&target)
        .into_iter()
        .filter(|(p, _)| {
            !ignored(p)
                && !["bin/", "share/", "include/"]
                    .iter()
                    .any(|d| p.starts_with(d))
        })
        .collect();
    let names = |m: &BTreeMap<String, (u32, Vec<u8>)>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&ours), names(&theirs));
    for (path, (_, bytes)) in &ours {
        assert_eq!(bytes, &theirs[path].1, "content of {path}");
    }

    // The launchers run, directly (shebang + mode) and through python3, and
    // print what pip's launcher prints.
    let bin = dest.join(&opts.scheme.scripts);
    let env = |c: &mut Command, path: &Path| {
        c.env("PYTHONPATH", path)
            .env("PYTHONDONTWRITEBYTECODE", "1");
    };
    for (script, expected) in [
        ("demo-cli", "demo cli ok\n"),
        ("demo-gui", "gui app ran\n"),
        ("demo-script", "hello from demo_pkg\n"),
    ] {
        let mut direct = Command::new(bin.join(script));
        env(&mut direct, &site);
        assert_eq!(run(&mut direct), expected, "{script}");
        let mut via_python = Command::new("python3");
        via_python.arg(bin.join(script));
        env(&mut via_python, &site);
        assert_eq!(run(&mut via_python), expected, "python3 {script}");
        let mut pips = Command::new(target.join("bin").join(script));
        env(&mut pips, &target);
        assert_eq!(run(&mut pips), expected, "pip's {script}");
    }
}

/// Install `wheel` with pip `--prefix P` and with us under `usr/local`, and
/// compare the whole trees and the RECORDs.
fn compare_with_pip_prefix(py: &Python, wheel: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dest");
    let opts = py.options();
    let dist = install_wheel(wheel, &dest, &opts)
        .unwrap_or_else(|e| panic!("installing {}: {e}", wheel.display()));
    let prefix = tmp.path().join("prefix");
    py.pip_install(wheel, &["--prefix", prefix.to_str().unwrap()]);

    let ours: BTreeMap<String, (u32, Vec<u8>)> = snapshot(&dest.join("usr/local"))
        .into_iter()
        .filter(|(p, _)| !ignored(p))
        .collect();
    let theirs: BTreeMap<String, (u32, Vec<u8>)> = snapshot(&prefix)
        .into_iter()
        .filter(|(p, _)| !ignored(p))
        .collect();
    let names = |m: &BTreeMap<String, (u32, Vec<u8>)>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&ours), names(&theirs), "{}", wheel.display());
    let files = ours.keys().filter(|p| !p.ends_with('/')).count();
    let compared = dist
        .files
        .iter()
        .filter(|f| !ignored(f.strip_prefix("usr/local/").unwrap()))
        .count();
    assert_eq!(files, compared, "{}", wheel.display());
    eprintln!("{}: {files} files identical to pip's", wheel.display());
    let same_umask = umask() == Some(0o022);
    for (path, (mode, bytes)) in &ours {
        let (their_mode, their_bytes) = &theirs[path];
        assert!(
            unquote_launcher(bytes) == unquote_launcher(their_bytes),
            "{}: content of {path} differs:\nours:\n{}\npip's:\n{}",
            wheel.display(),
            String::from_utf8_lossy(bytes),
            String::from_utf8_lossy(their_bytes)
        );
        // Ours are canonical (0555/0444), pip's follow the umask: the
        // owner's x bit is what both must agree on.
        if same_umask {
            assert_eq!(
                mode & 0o100,
                their_mode & 0o100,
                "{}: x bit of {path}",
                wheel.display()
            );
        }
    }

    // RECORD: the same rows, but for files written differently by design.
    let record = |path: PathBuf| -> BTreeSet<String> {
        fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .lines()
            .filter(|l| !ignored(l.split(',').next().unwrap()) || l.contains("/RECORD,"))
            // pip keeps the row of a setuptools wrapper it skipped (it never
            // installs anything from `.data/` under that name); we drop it.
            .filter(|l| !l.split('/').next().unwrap().ends_with(".data"))
            .map(|l| {
                let path = l.split(',').next().unwrap();
                if path.starts_with("../../../bin/") || path.ends_with("/INSTALLER") {
                    path.to_owned()
                } else {
                    l.to_owned()
                }
            })
            .collect()
    };
    let in_prefix = dist.dist_info.strip_prefix("usr/local/").unwrap();
    let ours = record(dest.join(&dist.dist_info).join("RECORD"));
    let theirs = record(prefix.join(in_prefix).join("RECORD"));
    assert_eq!(ours, theirs, "{}", wheel.display());
}

#[test]
fn same_tree_as_pip_prefix_for_the_demo_wheel() {
    let py = python();
    let tmp = tempfile::tempdir().unwrap();
    let wheel = demo_wheel().write_to(tmp.path());
    compare_with_pip_prefix(&py, &wheel);
}

#[test]
fn same_tree_as_pip_prefix_for_real_wheels() {
    let py = python();
    let wheels = py.bundled_wheels();
    assert!(
        !wheels.is_empty(),
        "this test installs the pip and setuptools wheels bundled with python3 (ensurepip/_bundled or /usr/share/python-wheels); none found"
    );
    for wheel in wheels {
        compare_with_pip_prefix(&py, &wheel);
    }
}
