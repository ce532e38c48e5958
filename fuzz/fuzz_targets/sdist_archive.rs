//! An sdist archive: `envbuild::python::sdist::metadata_files` (the
//! members metadata is read from), `read_metadata` on them, and `unpack`
//! into a temp dir. The first byte chooses the format: even, the rest is a
//! tar that the target gzips (so the fuzzer works on tar structure); odd,
//! the rest is a zip. Nothing may be written beside the destination.
#![no_main]

use std::io::Write;

use envbuild::python::sdist;
use envbuild_fuzz::Scratch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let (name, bytes) = if kind % 2 == 0 {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(rest).expect("gzip into memory");
        ("demo-1.0.tar.gz", gz.finish().expect("gzip into memory"))
    } else {
        ("demo-1.0.zip", rest.to_vec())
    };
    let scratch = Scratch::new();
    let path = scratch.file(name);
    std::fs::write(&path, &bytes).expect("the sdist is written");
    if let Ok(files) = sdist::metadata_files(&path, name) {
        let _ = sdist::read_metadata(name, &files);
    }
    let _ = sdist::unpack(&path, name, &scratch.out());
    scratch.assert_contained(&[name]);
});
