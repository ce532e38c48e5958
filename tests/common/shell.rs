//! Fixtures for the shell and check tests: static programs from
//! tests/fixtures, host programs with their libc (dash as an in-closure
//! shell, getent), and spec text appended to a copied example.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Compile tests/fixtures/NAME.c statically into `dir/bin/NAME`.
pub fn static_program(dir: &Path, name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{name}.c"));
    let out = dir.join("bin").join(name);
    fs::create_dir_all(out.parent().unwrap()).unwrap();
    let st = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("gcc runs");
    assert!(
        st.success(),
        "gcc -static {name}.c failed (Debian: gcc, libc6-dev)"
    );
    out
}

/// Append TOML to the spec.
pub fn append(spec: &Path, text: &str) {
    let mut s = fs::read_to_string(spec).unwrap();
    s.push('\n');
    s.push_str(text);
    fs::write(spec, s).unwrap();
}

/// Add `[[files]]` entries (host path, image path) to the spec.
pub fn add_files(spec: &Path, files: &[(&Path, &str)]) {
    let mut text = String::new();
    for (src, dst) in files {
        text.push_str(&format!(
            "[[files]]\nsrc = \"{}\"\ndst = \"{dst}\"\n\n",
            src.display()
        ));
    }
    append(spec, &text);
}

/// The host's dash, its libc and loader, as `/bin/sh` in the closure.
pub fn add_dash(dir: &Path, spec: &Path) {
    add_host_programs(dir, spec, &[("/usr/bin/dash", "/bin/sh")]);
}

/// Dynamically linked host programs that need only libc (dash, getent):
/// each (host path, closure path), then libc and the loader, added once.
pub fn add_host_programs(dir: &Path, spec: &Path, programs: &[(&str, &str)]) {
    let copies = dir.join("host-programs");
    fs::create_dir_all(&copies).unwrap();
    let mut parts: Vec<(&str, &str)> = programs.to_vec();
    parts.extend([
        (
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib/x86_64-linux-gnu/libc.so.6",
        ),
        ("/lib64/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2"),
    ]);
    let mut files: Vec<(PathBuf, &str)> = Vec::new();
    for (host, dst) in parts {
        assert!(
            Path::new(host).exists(),
            "{host} is missing (Debian: dash, libc-bin, libc6)"
        );
        let copy = copies.join(Path::new(host).file_name().unwrap());
        fs::copy(host, &copy).unwrap();
        files.push((copy, dst));
    }
    let refs: Vec<(&Path, &str)> = files.iter().map(|(p, d)| (p.as_path(), *d)).collect();
    add_files(spec, &refs);
}
