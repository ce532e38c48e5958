//! What a binary cache serves, all of it untrusted: a `.narinfo`
//! (`envbuild_store::narinfo::NarInfo::parse`, then rendered and parsed
//! again: the same value), the public keys a user configures
//! (`signing::PublicKey::parse`), envbuild's realisation files
//! (`envbuild::cache::realisation::Realisation::parse`), and an `oci://`
//! cache's artifact manifests (`envbuild::cache::oci::parse_manifest`; a
//! manifest that parses has its text checked to be the annotation).
#![no_main]

use envbuild::cache::oci;
use envbuild::cache::realisation::Realisation;
use envbuild_fuzz::text;
use envbuild_store::narinfo::NarInfo;
use envbuild_store::signing::PublicKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Realisation::parse(data, "fetch:sha256:00", "out");
    if let Ok(text) = oci::parse_manifest(data, "nix-cache-info", oci::ARTIFACT_CACHE_INFO) {
        let again = oci::render_manifest("nix-cache-info", oci::ARTIFACT_CACHE_INFO, &text, None);
        let back = oci::parse_manifest(&again, "nix-cache-info", oci::ARTIFACT_CACHE_INFO);
        assert_eq!(back.as_deref(), Ok(text.as_str()), "a rendered manifest parses");
    }
    if let Some(text) = text(data) {
        let _ = oci::object_of(text);
    }
    let Some(text) = text(data) else { return };
    let _ = PublicKey::parse(text);
    if let Ok(info) = NarInfo::parse(text) {
        let again = NarInfo::parse(&info.render()).expect("a rendered narinfo parses");
        assert_eq!(again.render(), info.render(), "render is stable");
    }
});
