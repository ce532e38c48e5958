//! What a binary cache serves, all of it untrusted: a `.narinfo`
//! (`envbuild_store::narinfo::NarInfo::parse`, then rendered and parsed
//! again: the same value), the public keys a user configures
//! (`signing::PublicKey::parse`), and envbuild's realisation files
//! (`envbuild::cache::realisation::Realisation::parse`).
#![no_main]

use envbuild::cache::realisation::Realisation;
use envbuild_fuzz::text;
use envbuild_store::narinfo::NarInfo;
use envbuild_store::signing::PublicKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Realisation::parse(data, "fetch:sha256:00", "out");
    let Some(text) = text(data) else { return };
    let _ = PublicKey::parse(text);
    if let Ok(info) = NarInfo::parse(text) {
        let again = NarInfo::parse(&info.render()).expect("a rendered narinfo parses");
        assert_eq!(again.render(), info.render(), "render is stable");
    }
});
