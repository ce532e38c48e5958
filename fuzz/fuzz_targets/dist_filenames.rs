//! File names from an index or a Debian pool: wheel names
//! (`envbuild::python::wheel::WheelFilename::parse`), sdist names
//! (`envbuild::python::sdist::parse_filename`) and .deb names
//! (`envbuild::lock::deb_version_arch`).
#![no_main]

use envbuild::lock::deb_version_arch;
use envbuild::python::sdist;
use envbuild::python::wheel::{normalize_name, WheelFilename};
use envbuild_fuzz::text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(text) = text(data) else { return };
    if let Ok(w) = WheelFilename::parse(text) {
        let n = normalize_name(&w.name);
        assert_eq!(normalize_name(&n), n, "normalize_name is not idempotent");
    }
    let _ = sdist::parse_filename(text);
    let _ = deb_version_arch(text);
});
