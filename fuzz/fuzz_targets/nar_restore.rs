//! `envbuild_store::nar::restore`: a NAR stream restored into a temp dir.
//! A NAR that restores must dump back to exactly the bytes it was read
//! from (the format has one serialization per tree), and nothing may be
//! written beside the destination.
#![no_main]

use std::io::Cursor;

use envbuild_fuzz::Scratch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let scratch = Scratch::new();
    let dst = scratch.out();
    let mut input = Cursor::new(data);
    let restored = envbuild_store::nar::restore(&mut input, &dst);
    scratch.assert_contained(&[]);
    if restored.is_ok() {
        let consumed = input.position() as usize;
        let mut dumped = Vec::new();
        envbuild_store::nar::dump(&dst, &mut dumped).expect("a restored tree dumps");
        assert_eq!(
            dumped,
            &data[..consumed],
            "restore then dump is not the identity"
        );
    }
});
