//! A Debian archive's indices: `envbuild::debian::archive::parse_release`
//! (a Release body and its SHA256 list) and `parse_index` (a `Packages`
//! index, with `Provides`), then `PackageIndex::closure` over the first
//! packages it holds (relations resolved against versions). The input is a
//! Release, a NUL byte, then a Packages index.
#![no_main]

use envbuild::debian::archive::{parse_index, parse_release};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (release, packages) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    if let Ok(text) = std::str::from_utf8(release) {
        if let Ok(r) = parse_release("Release", text) {
            for (name, (hash, _)) in &r.sha256 {
                assert!(!name.contains(char::is_whitespace) && !hash.is_empty());
            }
        }
    }
    let Ok(index) = parse_index("fuzz", "main", "Packages", packages) else {
        return;
    };
    let roots: Vec<String> = index.packages.keys().take(4).cloned().collect();
    let _ = index.closure(&roots);
});
