//! The spec: `envbuild::spec::Spec::parse` (TOML, then validation of
//! every section).
#![no_main]

use envbuild::spec::Spec;
use envbuild_fuzz::{label, text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(text) = text(data) else { return };
    let _ = Spec::parse(label("/nonexistent/fuzz/envbuild.toml"), text);
});
