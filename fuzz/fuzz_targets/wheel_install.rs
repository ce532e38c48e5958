//! `envbuild::python::wheel::install_wheel`: the zip reader, RECORD check
//! and `.data` spreading of a wheel, installed into a temp dir; and the
//! resolver's reader of a wheel's `METADATA` member (PEP 658 fallback).
//! An installed tree's NAR hash, computed on the way, must be the hash of
//! what is on disk, and nothing may be written beside the destination.
#![no_main]

use envbuild::python::resolve::parsers;
use envbuild::python::wheel::{install_wheel, InstallOptions, InstallScheme};
use envbuild_fuzz::Scratch;
use libfuzzer_sys::fuzz_target;

const WHEEL: &str = "demo-1.0-py3-none-any.whl";

fuzz_target!(|data: &[u8]| {
    let _ = parsers::wheel_metadata_member(data, "demo");
    let scratch = Scratch::new();
    let wheel = scratch.file(WHEEL);
    std::fs::write(&wheel, data).expect("the wheel is written");
    let opts = InstallOptions {
        scheme: InstallScheme::posix_prefix("usr/local", "3.11"),
        interpreter: "/usr/local/bin/python3".into(),
        installer: "envbuild".into(),
        pinned: false,
    };
    let dest = scratch.out();
    let installed = install_wheel(&wheel, &dest, &opts);
    scratch.assert_contained(&[WHEEL]);
    if let Ok(installed) = installed {
        let on_disk = envbuild_store::nar::hash_path(&dest).expect("the tree hashes");
        assert_eq!(
            installed.tree.nar(),
            on_disk,
            "the hash made on the way differs"
        );
        for f in &installed.files {
            assert!(
                dest.join(f).symlink_metadata().is_ok(),
                "{f} is listed as installed but absent"
            );
        }
    }
});
