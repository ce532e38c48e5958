//! Dockerfiles: `envbuild::init::dockerfile::parse` and the whole
//! translation `envbuild init --from-dockerfile` makes of them
//! (`envbuild::init::translate_dockerfile`, with a build context that does
//! not exist, so nothing is read but the bytes), then the spec it renders,
//! which must be TOML.
#![no_main]

use std::path::Path;

use envbuild::init::{self, InitOptions};
use envbuild_fuzz::text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(text) = text(data) else { return };
    let _ = init::dockerfile::parse(text);
    let _ = init::dockerfile::key_values(text);
    let opts = InitOptions {
        name: Some("fuzz".into()),
        spec_dir: "/nonexistent-envbuild-fuzz".into(),
    };
    let context = Path::new("/nonexistent-envbuild-fuzz/context");
    if let Ok(t) = init::translate_dockerfile(Path::new("Dockerfile"), text, context, &opts) {
        let rendered = t.draft.render();
        toml::from_str::<toml::Table>(&rendered).expect("a rendered spec is TOML");
    }
});
