//! The model hubs' listing answers: `envbuild::model::huggingface::parse`
//! and `envbuild::model::modelscope::parse`, on the JSON the hub sent.
//! Every listed path must be safe to place under a directory.
#![no_main]

use envbuild::model::{huggingface, modelscope, Listing};
use libfuzzer_sys::fuzz_target;

fn assert_safe(listing: &Listing) {
    for f in &listing.files {
        let p = &f.path;
        assert!(
            !p.is_empty()
                && !p.starts_with('/')
                && !p.contains(['\\', '\0'])
                && p.split('/').all(|s| !s.is_empty() && s != "." && s != ".."),
            "the listing holds an unsafe path {p:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(l) = huggingface::parse(
        "hf:org/demo",
        "https://hub.invalid/api/models/org/demo",
        &doc,
    ) {
        assert_safe(&l);
    }
    if let Ok(l) = modelscope::parse(
        "ms:org/demo",
        "https://hub.invalid/api/v1/models/org/demo/repo/files",
        "master",
        &doc,
    ) {
        assert_safe(&l);
    }
});
