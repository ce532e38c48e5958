//! PEP 691 JSON project pages: the resolver's `parse_project_page`
//! (through `envbuild::python::resolve::parsers::project_page`), each
//! version's wheel chosen for CPython 3.11 on x86_64 glibc. Versions come
//! out ascending, and a chosen wheel or sdist is a file of that version.
#![no_main]

use envbuild::python::resolve::parsers;
use envbuild_fuzz::target;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(versions) = parsers::project_page(
        "demo",
        "https://index.invalid/simple/demo/",
        data,
        &target(),
    ) else {
        return;
    };
    let mut seen = std::collections::BTreeSet::new();
    for v in &versions {
        assert!(
            seen.insert(v.version.clone()),
            "version {} listed twice",
            v.version
        );
        if let Some(w) = &v.wheel {
            assert!(w.ends_with(".whl"), "the chosen wheel {w:?} is not a wheel");
        }
        if let Some(s) = &v.sdist {
            assert!(!s.ends_with(".whl"), "the chosen sdist {s:?} is a wheel");
        }
    }
});
