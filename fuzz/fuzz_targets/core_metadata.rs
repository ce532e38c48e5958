//! Core metadata (`METADATA`, `PKG-INFO`): the header reader
//! `envbuild::python::core_metadata::headers` and the resolver's
//! `parse_core_metadata` (name, PEP 440 version, PEP 508 `Requires-Dist`).
#![no_main]

use envbuild::python::core_metadata::{header, headers};
use envbuild::python::resolve::parsers;
use envbuild_fuzz::text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(text) = text(data) else { return };
    if let Ok(h) = headers(text) {
        for (name, value) in &h {
            assert!(!name.contains('\n') && !value.contains('\n'));
            assert!(header(&h, name).is_some());
        }
    }
    let _ = parsers::core_metadata(text);
});
