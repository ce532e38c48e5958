//! Helpers shared by the fuzz targets in `fuzz_targets/`: a scratch
//! directory with a fenced-off neighbour, and the target platform the
//! Python parsers read for.

use std::path::{Path, PathBuf};

use envbuild::python::resolve::{Arch, Target};

/// A temporary directory for one run of an extracting target: `out` is
/// where the archive goes (not created), `fence` an empty directory beside
/// it that must stay empty, and `input` a place for the archive file.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix("envbuild-fuzz-")
            .tempdir()
            .expect("a temporary directory");
        std::fs::create_dir(dir.path().join("fence")).expect("the fence directory");
        Scratch { dir }
    }

    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Panics if anything was written beside `out` (into `fence`, or a new
    /// entry next to it other than the files named in `inputs`), or if a
    /// path under `out` is not below it once resolved.
    pub fn assert_contained(&self, inputs: &[&str]) {
        let root = self.dir.path();
        let fence: Vec<_> = std::fs::read_dir(root.join("fence"))
            .expect("the fence is readable")
            .collect();
        assert!(
            fence.is_empty(),
            "something was written into the fence: {fence:?}"
        );
        for entry in std::fs::read_dir(root).expect("the scratch is readable") {
            let name = entry.expect("an entry").file_name();
            let name = name.to_string_lossy();
            assert!(
                name == "out" || name == "fence" || inputs.contains(&name.as_ref()),
                "an entry {name:?} appeared beside the destination"
            );
        }
        let out = self.out();
        if out.exists() {
            for entry in walkdir::WalkDir::new(&out) {
                let Ok(entry) = entry else { continue };
                let path = entry.path();
                assert!(
                    path.starts_with(&out),
                    "{} is outside {}",
                    path.display(),
                    out.display()
                );
                if !entry.file_type().is_symlink() {
                    let real = path.canonicalize().expect("an entry resolves");
                    let real_out = out.canonicalize().expect("out resolves");
                    assert!(
                        real.starts_with(&real_out),
                        "{} resolves outside",
                        path.display()
                    );
                }
            }
        }
    }

    /// Make everything writable again so that the directory can be removed
    /// (extractors leave read-only trees).
    pub fn unlock(&self) {
        for entry in walkdir::WalkDir::new(self.dir.path()).into_iter().flatten() {
            if entry.file_type().is_dir() {
                use std::os::unix::fs::PermissionsExt;
                let _ =
                    std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o755));
            }
        }
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.unlock();
    }
}

/// The platform the Python parsers select for: CPython 3.11, x86_64,
/// glibc 2.36 (Debian bookworm).
pub fn target() -> Target {
    Target::cpython_glibc((3, 11), Arch::X86_64, (2, 36))
}

/// The input as text, or `None` when it is not UTF-8 (the parsers of text
/// formats take `&str`: their callers decode first).
pub fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// A path for messages.
pub fn label(name: &str) -> &Path {
    Path::new(name)
}
