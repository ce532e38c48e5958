//! pip's hash-checked requirements files:
//! `envbuild::python::requirements_txt::parse` for CPython 3.11 on
//! x86_64 glibc (markers evaluated, options, continuations, hashes).
#![no_main]

use envbuild::python::requirements_txt;
use envbuild_fuzz::{label, target, text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(text) = text(data) else { return };
    let _ = requirements_txt::parse(label("requirements.txt"), text, &target());
});
