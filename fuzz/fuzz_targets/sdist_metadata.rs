//! An sdist's static metadata: `envbuild::python::sdist::read_metadata`
//! (PKG-INFO, pyproject `[project]` and `[build-system]`, egg-info
//! `requires.txt`) and `parse_requires_txt`. The input is up to three
//! files separated by NUL bytes: PKG-INFO, pyproject.toml, requires.txt.
#![no_main]

use envbuild::python::sdist::{self, metadata::parse_requires_txt, MetadataFiles};
use envbuild_fuzz::text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(text) = text(data) else { return };
    let mut parts = text.splitn(3, '\0');
    let mut files = MetadataFiles::default();
    for name in ["PKG-INFO", "pyproject.toml", "demo.egg-info/requires.txt"] {
        if let Some(part) = parts.next() {
            files.files.insert(name.to_owned(), part.to_owned());
        }
    }
    if let Some(requires) = files.get("demo.egg-info/requires.txt") {
        let _ = parse_requires_txt(requires);
    }
    let _ = sdist::read_metadata("demo-1.0.tar.gz", &files);
});
