//! What a registry (or a user) hands the registry client as text: an
//! upload's `Range` (`envbuild::registry::upload::parse_range`), a
//! `WWW-Authenticate` challenge (`auth::parse_challenge`), an image
//! reference (`Reference::parse`, whose printed form must parse back to the
//! same reference) and a registry for `login` (`Reference::registry_only`).
#![no_main]

use envbuild::registry::{auth, upload, Reference};
use envbuild_fuzz::text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(text) = text(data) else { return };
    if let Some(last) = upload::parse_range(text) {
        assert!(text.contains(&last.to_string()), "a range end that is in the text");
    }
    if let Some(auth::Challenge::Bearer { realm, .. }) = auth::parse_challenge(text) {
        assert!(!realm.is_empty(), "a bearer challenge has a realm");
    }
    if let Ok(r) = Reference::parse(text) {
        let again = Reference::parse(&r.to_string()).expect("a printed reference parses");
        assert_eq!(again, r, "a reference round-trips through its printed form");
        assert!(!r.repository.is_empty());
    }
    if let Ok(r) = Reference::registry_only(text) {
        assert!(r.repository.is_empty());
        assert!(!r.registry.contains('/') && !r.registry.contains('@'));
    }
});
