//! Store paths: `/nix/store/<digest>-<name>`, computed exactly as Nix does.
//!
//! Grammar:
//!
//! ```text
//! store-path  = store-dir "/" basename
//! basename    = digest "-" name
//! digest      = 32 nix-base32 characters (20 bytes)
//! name        = 1*211 ( ALPHA / DIGIT / "+" / "-" / "." / "_" / "?" / "=" ), not starting with "."
//! fingerprint = type ":" "sha256" ":" hex(inner-sha256) ":" store-dir ":" name
//! type        = "source" *( ":" reference ) [ ":self" ]
//!             | "text" *( ":" reference )
//!             | "output:out"
//! digest      = nix-base32( xor-fold-to-20-bytes( sha256( fingerprint ) ) )
//! ```
//!
//! The store directory in every fingerprint is `/nix/store`, whatever the
//! store's physical root: identities are comparable with the real Nix.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::error::NameError;
use crate::nixbase32;

/// The logical store directory used in every fingerprint.
pub const STORE_DIR: &str = "/nix/store";
/// Nix's limit on the length of a name (Nix 2.8: `StorePath::MaxPathLen`).
pub const MAX_NAME_LEN: usize = 211;
/// Length in characters of the digest part of a basename.
pub const DIGEST_CHARS: usize = 32;

/// A store path's identity: its 20-byte digest and its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorePath {
    digest: [u8; 20],
    name: String,
}

/// Check an item name against Nix 2.8's rules.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { name: name.into() });
    }
    let length = name.chars().count();
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong {
            name: name.into(),
            length,
        });
    }
    if let Some(character) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || "+-._?=".contains(c)))
    {
        return Err(NameError::Character {
            name: name.into(),
            character,
        });
    }
    if name.starts_with('.') {
        return Err(NameError::LeadingPeriod { name: name.into() });
    }
    Ok(())
}

/// A hash algorithm Nix knows, for fixed-output paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgo {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl HashAlgo {
    pub fn name(self) -> &'static str {
        match self {
            HashAlgo::Md5 => "md5",
            HashAlgo::Sha1 => "sha1",
            HashAlgo::Sha256 => "sha256",
            HashAlgo::Sha512 => "sha512",
        }
    }
    pub fn digest_len(self) -> usize {
        match self {
            HashAlgo::Md5 => 16,
            HashAlgo::Sha1 => 20,
            HashAlgo::Sha256 => 32,
            HashAlgo::Sha512 => 64,
        }
    }
}

/// How a fixed-output item's hash was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileIngestion {
    /// The hash of the file's bytes.
    Flat,
    /// The hash of the NAR serialization.
    Recursive,
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn compress(hash: &[u8; 32]) -> [u8; 20] {
    let mut out = [0u8; 20];
    for (i, b) in hash.iter().enumerate() {
        out[i % 20] ^= b;
    }
    out
}

impl StorePath {
    fn make(kind: &str, inner_sha256: &[u8; 32], name: &str) -> Result<StorePath, NameError> {
        validate_name(name)?;
        let fingerprint = format!(
            "{kind}:sha256:{}:{STORE_DIR}:{name}",
            hex::encode(inner_sha256)
        );
        Ok(StorePath {
            digest: compress(&sha256(fingerprint.as_bytes())),
            name: name.to_string(),
        })
    }

    fn with_references(mut kind: String, references: &[StorePath]) -> String {
        let mut refs: Vec<String> = references.iter().map(|r| r.to_absolute()).collect();
        refs.sort();
        refs.dedup();
        for r in refs {
            kind.push(':');
            kind.push_str(&r);
        }
        kind
    }

    /// A content-addressed "source" path: `nar_sha256` is the sha256 of the
    /// item's NAR. This is what `nix-store --add-fixed --recursive sha256`
    /// and `builtins.path` produce.
    pub fn source(
        name: &str,
        nar_sha256: &[u8; 32],
        references: &[StorePath],
        self_reference: bool,
    ) -> Result<StorePath, NameError> {
        let mut kind = Self::with_references("source".into(), references);
        if self_reference {
            kind.push_str(":self");
        }
        Self::make(&kind, nar_sha256, name)
    }

    /// A "text" path (`builtins.toFile`): the sha256 of the file's contents.
    pub fn text(
        name: &str,
        content_sha256: &[u8; 32],
        references: &[StorePath],
    ) -> Result<StorePath, NameError> {
        Self::make(
            &Self::with_references("text".into(), references),
            content_sha256,
            name,
        )
    }

    /// A fixed-output path, as `nix-store --print-fixed-path` computes it.
    pub fn fixed_output(
        name: &str,
        ingestion: FileIngestion,
        algo: HashAlgo,
        digest: &[u8],
    ) -> Result<StorePath, NameError> {
        if ingestion == FileIngestion::Recursive && algo == HashAlgo::Sha256 {
            let mut d = [0u8; 32];
            d.copy_from_slice(digest);
            return Self::source(name, &d, &[], false);
        }
        let inner = format!(
            "fixed:out:{}{}:{}:",
            if ingestion == FileIngestion::Recursive {
                "r:"
            } else {
                ""
            },
            algo.name(),
            hex::encode(digest)
        );
        Self::make("output:out", &sha256(inner.as_bytes()), name)
    }

    /// Parse `<digest>-<name>` (a basename).
    pub fn from_basename(s: &str) -> Result<StorePath, NameError> {
        let malformed = || NameError::Malformed { path: s.into() };
        if s.len() < DIGEST_CHARS + 2 || s.as_bytes()[DIGEST_CHARS] != b'-' {
            return Err(malformed());
        }
        let (digest, name) = (&s[..DIGEST_CHARS], &s[DIGEST_CHARS + 1..]);
        let digest = nixbase32::decode_fixed::<20>(digest).map_err(|source| NameError::Digest {
            path: s.into(),
            source,
        })?;
        validate_name(name)?;
        Ok(StorePath {
            digest,
            name: name.into(),
        })
    }

    /// Parse `/nix/store/<digest>-<name>`.
    pub fn from_absolute(s: &str) -> Result<StorePath, NameError> {
        match s.strip_prefix(STORE_DIR).and_then(|r| r.strip_prefix('/')) {
            Some(base) if !base.contains('/') => Self::from_basename(base),
            _ => Err(NameError::Malformed { path: s.into() }),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn digest(&self) -> &[u8; 20] {
        &self.digest
    }
    /// `<digest>-<name>`.
    pub fn basename(&self) -> String {
        format!("{}-{}", nixbase32::encode(&self.digest), self.name)
    }
    /// `/nix/store/<digest>-<name>`.
    pub fn to_absolute(&self) -> String {
        format!("{STORE_DIR}/{}", self.basename())
    }
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.basename())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(hex_str: &str) -> [u8; 32] {
        hex::decode(hex_str).unwrap().try_into().unwrap()
    }

    #[test]
    fn names_follow_nix_2_8_rules() {
        for ok in ["a", "hello-1.0", "x+y_z?w=v", "A.B", &"n".repeat(211)] {
            validate_name(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        assert!(matches!(validate_name(""), Err(NameError::Empty { .. })));
        assert!(matches!(
            validate_name(&"n".repeat(212)),
            Err(NameError::TooLong { .. })
        ));
        for bad in ["a b", "a/b", "é", "a:b", "a*", "a\n"] {
            assert!(
                matches!(validate_name(bad), Err(NameError::Character { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(
            validate_name(".hidden"),
            Err(NameError::LeadingPeriod { .. })
        ));
    }

    #[test]
    fn basename_round_trips_and_rejects_garbage() {
        let p =
            StorePath::from_basename("7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-konsole-18.12.3").unwrap();
        assert_eq!(p.name(), "konsole-18.12.3");
        assert_eq!(
            p.basename(),
            "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-konsole-18.12.3"
        );
        assert_eq!(
            StorePath::from_absolute("/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-konsole-18.12.3")
                .unwrap(),
            p
        );
        for bad in [
            "",
            "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz",
            "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-",
            "7h7qgvs4kgzsn8a6rb273saxyqh4jxlzXkonsole",
            "eh7qgvs4kgzsn8a6rb273saxyqh4jxlz-konsole",
            "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-kon sole",
        ] {
            assert!(StorePath::from_basename(bad).is_err(), "{bad:?}");
        }
        assert!(StorePath::from_absolute("/gnu/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-a").is_err());
    }

    // Vectors printed by the real Nix 2.8 (Debian nix-bin):
    //   nix-instantiate --eval --expr 'builtins.toFile "foo" "bar"'
    //   nix-store --print-fixed-path [--recursive] ALGO HASH NAME
    //   nix hash path /empty-dir; nix-store --add-fixed --recursive sha256 /empty-dir
    #[test]
    fn text_path_matches_builtins_to_file() {
        // sha256("bar")
        let content = h("fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9");
        assert_eq!(
            StorePath::text("foo", &content, &[]).unwrap().to_absolute(),
            "/nix/store/vxjiwkjkn7x4079qvh1jkl5pn05j2aw0-foo"
        );
        let hello = sha256(b"Hello, world!\n");
        assert_eq!(
            StorePath::text("hello.txt", &hello, &[])
                .unwrap()
                .to_absolute(),
            "/nix/store/i3vl5f9f521bladwcs3zi5gmc1pd6qr6-hello.txt"
        );
    }

    #[test]
    fn text_path_with_a_reference_matches_nix() {
        // builtins.toFile "x" "${builtins.toFile "foo" "bar"}"
        let foo =
            StorePath::from_absolute("/nix/store/vxjiwkjkn7x4079qvh1jkl5pn05j2aw0-foo").unwrap();
        let content = sha256(foo.to_absolute().as_bytes());
        assert_eq!(
            StorePath::text("x", &content, &[foo]).unwrap().basename(),
            "qrv7jlcvgrwxhxqjq74rbi9czmlp48zf-x"
        );
    }

    #[test]
    fn fixed_output_paths_match_print_fixed_path() {
        let abc256 = sha256(b"abc");
        let abc1 = hex::decode("a9993e364706816aba3e25717850c26c9cd0d89d").unwrap();
        let cases: [(FileIngestion, HashAlgo, &[u8], &str, &str); 4] = [
            (
                FileIngestion::Flat,
                HashAlgo::Sha256,
                &abc256,
                "abc",
                "0y839a054fcnhjcd2w1pb6a4k4fl38iw-abc",
            ),
            (
                FileIngestion::Recursive,
                HashAlgo::Sha256,
                &abc256,
                "abc",
                "6w4qlk5yb14djbl1971fhnsxlvxrj22i-abc",
            ),
            (
                FileIngestion::Flat,
                HashAlgo::Sha1,
                &abc1,
                "abc.txt",
                "2z24icq5179a43d0n6i4piwsgnc1ky4l-abc.txt",
            ),
            (
                FileIngestion::Recursive,
                HashAlgo::Sha1,
                &abc1,
                "abc.txt",
                "fw84lyh3jf522spplh03aglkimlh2gq0-abc.txt",
            ),
        ];
        for (ing, algo, digest, name, want) in cases {
            assert_eq!(
                StorePath::fixed_output(name, ing, algo, digest)
                    .unwrap()
                    .basename(),
                want,
                "{ing:?} {algo:?}"
            );
        }
    }

    #[test]
    fn source_path_of_empty_directory_matches_nix() {
        // `nix hash path --base32` of an empty directory.
        let nar = crate::nixbase32::decode_fixed::<32>(
            "0sjjj9z1dhilhpc8pq4154czrb79z9cm044jvn75kxcjv6v5l2m5",
        )
        .unwrap();
        assert_eq!(
            StorePath::source("e", &nar, &[], false).unwrap().basename(),
            "6pz32ybplcw63394flag7cnimw02ii52-e"
        );
    }
}
