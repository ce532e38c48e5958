//! A .deb: `envbuild::debian::deb::read_control_from` (ar, `debian-binary`,
//! `control.tar*`, the control paragraph) and `extract_from` (the data
//! tar unpacked into a temp dir). Nothing may be written beside the
//! destination, and every entry reported as written must be there.
#![no_main]

use envbuild::debian::deb::{extract_from, read_control_from};
use envbuild_fuzz::Scratch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = read_control_from("fuzz.deb", data);
    let scratch = Scratch::new();
    let dest = scratch.out();
    let extracted = extract_from("fuzz.deb", data, &dest);
    scratch.assert_contained(&[]);
    if let Ok(x) = extracted {
        for e in &x.entries {
            assert!(
                dest.join(&e.path).symlink_metadata().is_ok(),
                "{} is reported as written but absent",
                e.path.display()
            );
        }
    }
});
