//! The lock file, version 1 and 2: `envbuild::lock::Lock::parse`. A lock
//! that parses, written as version 2, must parse back to the same lock,
//! and write the same text again.
#![no_main]

use envbuild::lock::Lock;
use envbuild_fuzz::{label, text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(text) = text(data) else { return };
    let Ok(read) = Lock::parse(label("envbuild.lock"), text) else {
        return;
    };
    let _ = read.lock.entries();
    let written = read.lock.to_toml();
    let again = Lock::parse(label("envbuild.lock"), &written)
        .unwrap_or_else(|e| panic!("a written lock does not parse: {e}\n{written}"));
    assert_eq!(again.version, 2);
    assert_eq!(
        read.lock, again.lock,
        "the lock changed through to_toml:\n{written}"
    );
    assert_eq!(written, again.lock.to_toml());
});
