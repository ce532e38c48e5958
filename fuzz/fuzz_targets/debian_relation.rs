//! Debian relationship fields (`Depends`, `Provides`...):
//! `envbuild::debian::relation::parse_relations`. A parsed field formatted
//! back must parse to the same relations.
#![no_main]

use envbuild::debian::relation::{format_relations, parse_relations};
use envbuild_fuzz::text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(text) = text(data) else { return };
    let Ok(deps) = parse_relations(text) else {
        return;
    };
    let formatted = format_relations(&deps);
    let again = parse_relations(&formatted)
        .unwrap_or_else(|e| panic!("{formatted:?}, formatted from {text:?}, does not parse: {e}"));
    assert_eq!(
        deps, again,
        "relations changed through format: {formatted:?}"
    );
});
