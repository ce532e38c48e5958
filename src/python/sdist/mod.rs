//! Source distributions: reading their static metadata ([`metadata`]) and
//! building them into wheels in a sandbox ([`build`]).
//!
//! An sdist is `{name}-{version}.tar.gz` (or `.zip`) with one top-level
//! directory holding `PKG-INFO`, and usually `pyproject.toml` and/or
//! `setup.py`. Resolution uses an sdist only when the chosen version has
//! no wheel for the target; its requirements must be declared statically
//! (see [`metadata`]), its build requirements are resolved as wheels, and
//! the build runs as a derivation (see [`build`]).

pub mod archive;
pub mod build;
mod error;
pub mod metadata;

pub use archive::{metadata_files, unpack, MetadataFiles};
pub use error::SdistError;
pub use metadata::{read_metadata, BuildSystem, MetadataSource, SdistMetadata};

use std::str::FromStr;

/// Whether a file name is an sdist's (`.tar.gz` or `.zip`).
pub fn is_sdist(filename: &str) -> bool {
    filename.ends_with(".tar.gz") || filename.ends_with(".zip")
}

/// (normalized name, version) of `{name}-{version}.tar.gz` / `.zip`: the
/// first `-` after which a PEP 440 version follows.
pub fn parse_filename(filename: &str) -> Option<(String, String)> {
    let stem = filename
        .strip_suffix(".tar.gz")
        .or_else(|| filename.strip_suffix(".zip"))?;
    stem.match_indices('-').find_map(|(i, _)| {
        let v = &stem[i + 1..];
        pep440_rs::Version::from_str(v).ok().map(|_| {
            (
                crate::python::wheel::normalize_name(&stem[..i]),
                v.to_owned(),
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdist_file_names() {
        assert_eq!(
            parse_filename("aliyun-python-sdk-core-2.16.0.tar.gz"),
            Some(("aliyun-python-sdk-core".into(), "2.16.0".into()))
        );
        assert_eq!(
            parse_filename("crcmod-1.7.tar.gz"),
            Some(("crcmod".into(), "1.7".into()))
        );
        assert_eq!(
            parse_filename("Foo_Bar-1.0rc1.zip"),
            Some(("foo-bar".into(), "1.0rc1".into()))
        );
        assert_eq!(parse_filename("x-1.0-py3-none-any.whl"), None);
        assert!(is_sdist("a-1.tar.gz") && !is_sdist("a-1-py3-none-any.whl"));
    }
}
