//! The text files of a wheel's `.dist-info`: `RECORD` (CSV,
//! `envbuild::python::wheel::record::parse_record`), `WHEEL`
//! (`metadata::parse_wheel_info`) and `entry_points.txt`
//! (`metadata::parse_script_entries`). A RECORD written back from its
//! rows must read as the same rows.
#![no_main]

use envbuild::python::wheel::{metadata, record};
use envbuild_fuzz::text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(text) = text(data) else { return };
    let _ = metadata::parse_wheel_info(text);
    let _ = metadata::parse_script_entries(text);
    let Ok(rows) = record::parse_record(text) else {
        return;
    };
    let kept: Vec<(&str, Option<record::FileDigest>)> = rows
        .iter()
        .filter_map(|r| match r.digest {
            record::RowDigest::Valid(d) => Some((r.path.as_str(), Some(d))),
            record::RowDigest::Empty => Some((r.path.as_str(), None)),
            record::RowDigest::Invalid => None,
        })
        .collect();
    let written = record::write_record(kept.iter().copied());
    let again = record::parse_record(&written).expect("a written RECORD reads");
    let again: Vec<(&str, Option<record::FileDigest>)> = again
        .iter()
        .map(|r| match r.digest {
            record::RowDigest::Valid(d) => (r.path.as_str(), Some(d)),
            record::RowDigest::Empty => (r.path.as_str(), None),
            record::RowDigest::Invalid => panic!("a written row is invalid: {:?}", r.raw),
        })
        .collect();
    assert_eq!(
        kept, again,
        "RECORD rows changed through write and read:\n{written}"
    );
});
