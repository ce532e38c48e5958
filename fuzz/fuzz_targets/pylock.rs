//! PEP 751 lock files: `envbuild::python::pylock::select_text`, the
//! wheels chosen for CPython 3.11 on x86_64 glibc.
#![no_main]

use envbuild::python::pylock;
use envbuild_fuzz::{label, target, text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(text) = text(data) else { return };
    let _ = pylock::select_text(label("pylock.toml"), text, &target());
});
