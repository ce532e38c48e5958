//! Helpers shared by the integration tests: running the envbuild binary and
//! the real Nix, and building fixture trees.
#![allow(dead_code)]

pub mod cache_server;
pub mod debian;
pub mod faults;
pub mod http;
pub mod hub;
pub mod index;
pub mod mirror;
pub mod registry;
pub mod shell;

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// envbuild with no progress on stderr (tests read stderr's reports and
/// errors; tests/progress_output.rs checks the progress modes) and no log
/// filter from the caller's environment.
pub fn envbuild() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_envbuild"));
    c.env_remove("ENVBUILD_STORE")
        .env_remove("ENVBUILD_LOG")
        .env("ENVBUILD_PROGRESS", "none");
    c
}

/// Run envbuild with `--store store` and the given arguments.
pub fn run(store: &Path, args: &[&dyn AsRef<OsStr>]) -> Output {
    let mut c = envbuild();
    c.arg("--store").arg(store);
    for a in args {
        c.arg(a.as_ref());
    }
    c.output().expect("envbuild runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Assert success and return trimmed stdout.
pub fn ok(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    stdout(&o).trim().to_string()
}

/// Assert failure with a one-paragraph error and return stderr.
pub fn fails(o: Output, what: &str) -> String {
    let err = stderr(&o);
    assert!(
        !o.status.success(),
        "{what} unexpectedly succeeded: stdout {}",
        stdout(&o)
    );
    assert!(
        err.trim_start().starts_with("error:"),
        "{what}: error should start with 'error:': {err:?}"
    );
    assert!(
        !err.trim().contains("\n\n"),
        "{what}: error should be one paragraph: {err:?}"
    );
    err
}

/// A command for the real Nix, with the new CLI enabled.
pub fn nix(program: &str) -> Command {
    let mut c = Command::new(program);
    c.env("NIX_CONFIG", "experimental-features = nix-command");
    c
}

pub fn require_tool(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is not installed: install the Debian package `{package}` (.ci/run does)"
    );
}

/// Basename of a path printed by a command.
pub fn basename(p: &str) -> String {
    Path::new(p.trim())
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// Compare two commands' stdout byte for byte without holding either in
/// memory; panics naming the first differing offset.
pub fn assert_same_stdout(mut a: Command, mut b: Command, what: &str) {
    let mut ca = a
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut cb = b
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ra = ca.stdout.take().unwrap();
    let mut rb = cb.stdout.take().unwrap();
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    let mut offset: u64 = 0;
    loop {
        let na = read_full(&mut ra, &mut ba);
        let nb = read_full(&mut rb, &mut bb);
        if let Some(i) = ba[..na.min(nb)]
            .iter()
            .zip(&bb[..na.min(nb)])
            .position(|(x, y)| x != y)
        {
            panic!("{what}: outputs differ at byte {}", offset + i as u64);
        }
        assert_eq!(
            na,
            nb,
            "{what}: one output ends at byte {}",
            offset + na.min(nb) as u64
        );
        if na == 0 {
            break;
        }
        offset += na as u64;
    }
    let sa = ca.wait_with_output().unwrap();
    let sb = cb.wait_with_output().unwrap();
    assert!(
        sa.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&sa.stderr)
    );
    assert!(
        sb.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&sb.stderr)
    );
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]).unwrap() {
            0 => break,
            k => n += k,
        }
    }
    n
}

/// A small deterministic PRNG (xorshift64*) for fixture contents.
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

pub fn write(path: impl AsRef<Path>, data: impl AsRef<[u8]>, mode: u32) {
    let path = path.as_ref();
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn link(target: &str, at: impl AsRef<Path>) {
    let at = at.as_ref();
    if let Some(p) = at.parent() {
        fs::create_dir_all(p).unwrap();
    }
    symlink(target, at).unwrap();
}

/// A tree of `files` small files spread over subdirectories.
pub fn many_files(root: &Path, files: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    for i in 0..files {
        let dir = root.join(format!("d{:03}", i % 250));
        let len = rng.below(600) as usize;
        write(dir.join(format!("f{i:05}.py")), rng.bytes(len), 0o644);
    }
}

/// The entries (name list) of a store root and its scratch area, to check
/// that a failed command left the store unchanged.
pub fn store_snapshot(store: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(rd) = fs::read_dir(store) {
        for e in rd {
            v.push(e.unwrap().path());
        }
    }
    if let Ok(rd) = fs::read_dir(store.join(".envbuild/tmp")) {
        for e in rd {
            v.push(e.unwrap().path());
        }
    }
    v.sort();
    v
}

/// `store verify --json` → number of items checked; asserts exit 0.
pub fn verify_clean(store: &Path) -> u64 {
    let o = run(store, &[&"--json", &"store", &"verify"]);
    let out = ok(o, "store verify");
    let v: serde_json::Value = serde_json::from_str(&out).expect("verify --json prints JSON");
    v["checked"].as_u64().unwrap()
}

/// Copy the hello example (spec, app, wheel) into `dir` and build its static
/// program there; returns the spec path.
/// [`hello_example`] with the image tag `tag` (unique per test, so that
/// parallel runs loading it into docker do not collide).
pub fn hello_example_tagged(dir: &Path, tag: &str) -> PathBuf {
    let spec = hello_example(dir);
    let text = fs::read_to_string(&spec)
        .unwrap()
        .replace("[image]\n", &format!("[image]\ntag = \"{tag}\"\n"));
    fs::write(&spec, text).unwrap();
    spec
}

pub fn hello_example(dir: &Path) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_tree(&repo.join("examples/hello"), &dir.join("hello"));
    let _ = fs::remove_dir_all(dir.join("hello/bin"));
    fs::create_dir_all(dir.join("hello/bin")).unwrap();
    let st = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(dir.join("hello/bin/hello"))
        .arg(dir.join("hello/hello.c"))
        .status()
        .expect("gcc runs");
    assert!(st.success(), "gcc -static failed (Debian: gcc, libc6-dev)");
    let spec = dir.join("hello.toml");
    fs::copy(repo.join("examples/hello.toml"), &spec).unwrap();
    spec
}

pub fn copy_tree(src: &Path, dst: &Path) {
    for e in walkdir::WalkDir::new(src) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(src).unwrap();
        let t = dst.join(rel);
        if e.file_type().is_dir() {
            fs::create_dir_all(&t).unwrap();
        } else if e.file_type().is_symlink() {
            symlink(fs::read_link(e.path()).unwrap(), &t).unwrap();
        } else {
            fs::copy(e.path(), &t).unwrap();
        }
    }
}

/// Realize `spec` into `out`; returns the digest (the last stdout line).
pub fn realize(store: &Path, spec: &Path, out: &Path, extra: &[&str]) -> String {
    let mut c = envbuild();
    c.arg("--store")
        .arg(store)
        .arg("realize")
        .arg(spec)
        .arg("-o")
        .arg(out)
        .args(extra);
    let o = c.output().unwrap();
    let s = ok(o, &format!("realize {}", spec.display()));
    let last = s.lines().last().unwrap_or_default().to_string();
    assert!(
        last.starts_with("sha256:") && last.len() == 71,
        "last line is not a digest: {s:?}"
    );
    last
}

/// `realize --json` → the parsed report (the digest line is last).
pub fn realize_json(store: &Path, spec: &Path, out: &Path) -> serde_json::Value {
    let o = envbuild()
        .arg("--store")
        .arg(store)
        .arg("--json")
        .arg("realize")
        .arg(spec)
        .arg("-o")
        .arg(out)
        .output()
        .unwrap();
    let s = ok(o, "realize --json");
    serde_json::from_str(s.lines().next().unwrap()).unwrap()
}

/// Whether a working Docker engine is reachable.
pub fn docker_works() -> bool {
    Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Build a wheel with the given members (name, bytes), a WHEEL file and a
/// correct RECORD, then apply `tamper` to the member bytes after RECORD was
/// computed. Returns the wheel's bytes.
pub fn build_wheel(
    name: &str,
    version: &str,
    members: &[(&str, &[u8])],
    tamper: &[(&str, &[u8])],
) -> Vec<u8> {
    use base64::Engine;
    use sha2::Digest;
    use std::io::Write;
    let dist = format!("{name}-{version}.dist-info");
    let mut all: Vec<(String, Vec<u8>)> = members
        .iter()
        .map(|(n, d)| (n.to_string(), d.to_vec()))
        .collect();
    all.push((
        format!("{dist}/METADATA"),
        format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n").into_bytes(),
    ));
    all.push((
        format!("{dist}/WHEEL"),
        b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n".to_vec(),
    ));
    let mut record = String::new();
    for (n, d) in &all {
        let h = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(d));
        record.push_str(&format!("{n},sha256={h},{}\n", d.len()));
    }
    record.push_str(&format!("{dist}/RECORD,,\n"));
    for (n, d) in tamper {
        for m in all.iter_mut() {
            if m.0 == *n {
                m.1 = d.to_vec();
            }
        }
    }
    all.push((format!("{dist}/RECORD"), record.into_bytes()));
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (n, d) in &all {
            z.start_file(n.as_str(), opts).unwrap();
            z.write_all(d).unwrap();
        }
        z.finish().unwrap();
    }
    buf.into_inner()
}

/// `envbuild --store STORE run SPEC -- CMD...` in `cwd`.
pub fn run_in_closure(store: &Path, spec: &Path, cwd: &Path, cmd: &[&str]) -> Output {
    envbuild()
        .arg("--store")
        .arg(store)
        .arg("run")
        .arg(spec)
        .arg("--")
        .args(cmd)
        .current_dir(cwd)
        .output()
        .unwrap()
}

/// `docker load` the archive, `docker run --rm IMAGE`, remove the image and
/// return what it printed; `None` (with a note) where `docker info` fails.
pub fn docker_load_and_run(tar: &Path, image: &str) -> Option<String> {
    docker_run(tar, image, &[])
}

/// `docker load` the archive, `docker run --rm IMAGE CMD...` (the image's
/// own CMD when `cmd` is empty), remove the image and return what it
/// printed; `None` (with a note) where `docker info` fails.
pub fn docker_run(tar: &Path, image: &str, cmd: &[&str]) -> Option<String> {
    if !docker_works() {
        eprintln!("note: `docker info` fails here; docker load/run was not checked");
        return None;
    }
    let o = Command::new("docker")
        .arg("load")
        .arg("-i")
        .arg(tar)
        .output()
        .unwrap();
    ok(o, "docker load");
    let o = Command::new("docker")
        .args(["run", "--rm", image])
        .args(cmd)
        .output()
        .unwrap();
    let _ = Command::new("docker").args(["rmi", "-f", image]).output();
    Some(ok(o, "docker run"))
}

/// A lock file's pins as version 1 listed them, rendered as version-1 TOML
/// (`[[input]]` with `id`, `source`, `hash`, `size`): what tests written
/// against version 1 read. The ids come from the library's one v1 mapping.
#[allow(dead_code)]
pub fn lock_as_v1(text: &str) -> String {
    let read = envbuild::lock::Lock::parse(std::path::Path::new("test.lock"), text).unwrap();
    let mut out = format!(
        "version = 1\nsource-date-epoch = {}\n",
        read.lock.source_date_epoch
    );
    for (id, source, hash, size) in envbuild::lock::v1::inputs(&read.lock) {
        out.push_str(&format!(
            "\n[[input]]\nid = {id:?}\nsource = {source:?}\nhash = {hash:?}\nsize = {size}\n"
        ));
    }
    out
}
