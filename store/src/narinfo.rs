//! `.narinfo` files: what a Nix binary cache says about one store path.
//!
//! Grammar (Nix's `NarInfo::NarInfo(…)` parser, `src/libstore/nar-info.cc`):
//!
//! ```text
//! narinfo    = *line
//! line       = key ": " value "\n"
//! StorePath  = "/nix/store/" basename             (required)
//! URL        = relative path of the file, e.g. "nar/<filehash>.nar.zst"   (required)
//! Compression= "none" | "xz" | "bzip2" | "zstd" | "br" | …   (absent: "bzip2")
//! FileHash   = hash of the file as stored (compressed)
//! FileSize   = decimal byte count of that file
//! NarHash    = hash of the uncompressed NAR          (required)
//! NarSize    = decimal byte count of the NAR         (required, > 0)
//! References = basename *(" " basename)             (may be empty)
//! Deriver    = basename of a .drv                    (optional)
//! Sig        = keyname ":" base64(signature)          (repeatable)
//! CA         = e.g. "fixed:r:sha256:<nix-base32>"    (content-addressed paths)
//! hash       = "sha256:" (52 nix-base32 | 64 hex) | "sha256-" base64 (SRI)
//! ```
//!
//! Unknown keys are ignored, as Nix ignores them; a known key given twice is
//! an error (Nix keeps the last, which would let a second `NarHash` hide
//! behind the first). Hashes are rendered the way Nix writes them,
//! `sha256:<nix-base32>`.
//!
//! The fingerprint a `Sig` signs ([`NarInfo::fingerprint`], Nix's
//! `ValidPathInfo::fingerprint`):
//! `1;<store path>;sha256:<nix-base32 NAR hash>;<NAR size>;<references as
//! full store paths, sorted, comma-separated>`.

use base64::Engine;

use crate::error::NarInfoError;
use crate::nixbase32;
use crate::store_path::{StorePath, STORE_DIR};

/// The parsed contents of a `.narinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NarInfo {
    pub store_path: StorePath,
    pub url: String,
    pub compression: String,
    pub file_hash: Option<[u8; 32]>,
    pub file_size: Option<u64>,
    pub nar_hash: [u8; 32],
    pub nar_size: u64,
    /// Sorted by basename, as Nix sorts them.
    pub references: Vec<StorePath>,
    pub deriver: Option<String>,
    pub sigs: Vec<String>,
    pub ca: Option<String>,
}

/// `sha256:<nix-base32>`, as Nix writes hashes in narinfos.
pub fn render_hash(h: &[u8; 32]) -> String {
    format!("sha256:{}", nixbase32::encode(h))
}

/// A sha256 in any of the forms Nix writes or reads.
pub fn parse_hash(field: &'static str, s: &str) -> Result<[u8; 32], NarInfoError> {
    let bad = || NarInfoError::Value {
        field,
        expected: "a sha256 (sha256:<nix-base32 or hex>, or sha256-<base64>)",
        found: s.to_string(),
    };
    if let Some(rest) = s.strip_prefix("sha256:") {
        if rest.len() == 64 {
            let mut out = [0u8; 32];
            hex::decode_to_slice(rest, &mut out).map_err(|_| bad())?;
            return Ok(out);
        }
        return nixbase32::decode_fixed::<32>(rest).map_err(|_| bad());
    }
    if let Some(rest) = s.strip_prefix("sha256-") {
        let v = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| bad())?;
        return v.try_into().map_err(|_| bad());
    }
    Err(bad())
}

fn sort_refs(refs: &mut [StorePath]) {
    refs.sort_by_key(|r| r.basename());
}

impl NarInfo {
    /// Parse a narinfo's text.
    pub fn parse(text: &str) -> Result<NarInfo, NarInfoError> {
        let mut store_path = None;
        let mut url = None;
        let mut compression = None;
        let mut file_hash = None;
        let mut file_size = None;
        let mut nar_hash = None;
        let mut nar_size = None;
        let mut references = None;
        let mut deriver = None;
        let mut sigs = Vec::new();
        let mut ca = None;
        fn once<T>(slot: &mut Option<T>, field: &'static str, v: T) -> Result<(), NarInfoError> {
            if slot.replace(v).is_some() {
                return Err(NarInfoError::Duplicate { field });
            }
            Ok(())
        }
        let number = |field: &'static str, v: &str| {
            v.parse::<u64>().map_err(|_| NarInfoError::Value {
                field,
                expected: "a decimal byte count",
                found: v.to_string(),
            })
        };
        for (i, line) in text.lines().enumerate() {
            if line.is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once(": ").or_else(|| {
                // `References:` with no reference has nothing after the colon.
                line.strip_suffix(':').map(|k| (k, ""))
            }) else {
                return Err(NarInfoError::Line {
                    line: i + 1,
                    found: line.to_string(),
                });
            };
            match key {
                "StorePath" => {
                    let p = StorePath::from_absolute(value).map_err(|_| NarInfoError::Value {
                        field: "StorePath",
                        expected: "/nix/store/<hash>-<name>",
                        found: value.to_string(),
                    })?;
                    once(&mut store_path, "StorePath", p)?
                }
                "URL" => {
                    if value.is_empty() {
                        return Err(NarInfoError::Value {
                            field: "URL",
                            expected: "a relative path",
                            found: String::new(),
                        });
                    }
                    once(&mut url, "URL", value.to_string())?
                }
                "Compression" => once(&mut compression, "Compression", value.to_string())?,
                "FileHash" => once(&mut file_hash, "FileHash", parse_hash("FileHash", value)?)?,
                "FileSize" => once(&mut file_size, "FileSize", number("FileSize", value)?)?,
                "NarHash" => once(&mut nar_hash, "NarHash", parse_hash("NarHash", value)?)?,
                "NarSize" => once(&mut nar_size, "NarSize", number("NarSize", value)?)?,
                "References" => {
                    let refs = value
                        .split(' ')
                        .filter(|r| !r.is_empty())
                        .map(|r| {
                            StorePath::from_basename(r).map_err(|_| NarInfoError::Value {
                                field: "References",
                                expected: "basenames <hash>-<name> separated by spaces",
                                found: r.to_string(),
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    once(&mut references, "References", refs)?
                }
                "Deriver" if value != "unknown-deriver" => {
                    once(&mut deriver, "Deriver", value.to_string())?
                }
                "Sig" => sigs.push(value.to_string()),
                "CA" => once(&mut ca, "CA", value.to_string())?,
                _ => {}
            }
        }
        let nar_size = nar_size.ok_or(NarInfoError::Missing { field: "NarSize" })?;
        if nar_size == 0 {
            return Err(NarInfoError::Value {
                field: "NarSize",
                expected: "a positive byte count",
                found: "0".into(),
            });
        }
        let mut references = references.unwrap_or_default();
        sort_refs(&mut references);
        Ok(NarInfo {
            store_path: store_path.ok_or(NarInfoError::Missing { field: "StorePath" })?,
            url: url.ok_or(NarInfoError::Missing { field: "URL" })?,
            compression: compression.unwrap_or_else(|| "bzip2".into()),
            file_hash,
            file_size,
            nar_hash: nar_hash.ok_or(NarInfoError::Missing { field: "NarHash" })?,
            nar_size,
            references,
            deriver,
            sigs,
            ca,
        })
    }

    /// The text Nix writes, fields in Nix's order.
    pub fn render(&self) -> String {
        let mut s = format!(
            "StorePath: {}\nURL: {}\nCompression: {}\n",
            self.store_path.to_absolute(),
            self.url,
            self.compression
        );
        if let Some(h) = &self.file_hash {
            s += &format!("FileHash: {}\n", render_hash(h));
        }
        if let Some(n) = self.file_size {
            s += &format!("FileSize: {n}\n");
        }
        s += &format!(
            "NarHash: {}\nNarSize: {}\nReferences: {}\n",
            render_hash(&self.nar_hash),
            self.nar_size,
            self.references
                .iter()
                .map(|r| r.basename())
                .collect::<Vec<_>>()
                .join(" ")
        );
        if let Some(d) = &self.deriver {
            s += &format!("Deriver: {d}\n");
        }
        for sig in &self.sigs {
            s += &format!("Sig: {sig}\n");
        }
        if let Some(ca) = &self.ca {
            s += &format!("CA: {ca}\n");
        }
        s
    }

    /// What a `Sig` signs: Nix's path-info fingerprint.
    pub fn fingerprint(&self) -> String {
        fingerprint(
            &self.store_path,
            &self.nar_hash,
            self.nar_size,
            &self.references,
        )
    }
}

/// Nix's fingerprint of a path's info: `1;<path>;sha256:<nix-base32>;<size>;<refs>`.
pub fn fingerprint(
    path: &StorePath,
    nar_hash: &[u8; 32],
    nar_size: u64,
    references: &[StorePath],
) -> String {
    let mut refs: Vec<String> = references
        .iter()
        .map(|r| format!("{STORE_DIR}/{}", r.basename()))
        .collect();
    refs.sort();
    format!(
        "1;{};{};{nar_size};{}",
        path.to_absolute(),
        render_hash(nar_hash),
        refs.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by Nix 2.x (`nix copy --to file://…` of a path added with
    /// `nix store add-path`, then `nix store sign`): the fixture beside
    /// this module.
    const FROM_NIX: &str = include_str!("narinfo/nix-written.narinfo");

    #[test]
    fn parses_what_nix_writes_and_renders_it_back_byte_for_byte() {
        let n = NarInfo::parse(FROM_NIX).unwrap();
        assert_eq!(n.compression, "xz");
        assert!(n.url.starts_with("nar/") && n.url.ends_with(".nar.xz"));
        assert!(n.ca.as_deref().unwrap().starts_with("fixed:r:sha256:"));
        assert_eq!(n.sigs.len(), 1);
        assert_eq!(n.render(), FROM_NIX);
    }

    #[test]
    fn hashes_parse_in_every_form_nix_uses() {
        let h = [7u8; 32];
        let b32 = render_hash(&h);
        let hx = format!("sha256:{}", hex::encode(h));
        let sri = format!(
            "sha256-{}",
            base64::engine::general_purpose::STANDARD.encode(h)
        );
        for s in [b32, hx, sri] {
            assert_eq!(parse_hash("NarHash", &s).unwrap(), h, "{s}");
        }
        assert!(parse_hash("NarHash", "md5:abc").is_err());
        assert!(parse_hash("NarHash", "sha256:zz").is_err());
    }

    #[test]
    fn refuses_duplicates_missing_fields_and_bad_values() {
        let twice = FROM_NIX.to_string() + "NarSize: 1\n";
        assert_eq!(
            NarInfo::parse(&twice).unwrap_err(),
            NarInfoError::Duplicate { field: "NarSize" }
        );
        let no_hash: String = FROM_NIX
            .lines()
            .filter(|l| !l.starts_with("NarHash"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            NarInfo::parse(&no_hash).unwrap_err(),
            NarInfoError::Missing { field: "NarHash" }
        );
        let bad_path = FROM_NIX.replacen("StorePath: /nix/store/", "StorePath: /tmp/", 1);
        assert!(matches!(
            NarInfo::parse(&bad_path).unwrap_err(),
            NarInfoError::Value {
                field: "StorePath",
                ..
            }
        ));
        let bad_ref = FROM_NIX.replacen("References: ", "References: ../../etc ", 1);
        assert!(matches!(
            NarInfo::parse(&bad_ref).unwrap_err(),
            NarInfoError::Value {
                field: "References",
                ..
            }
        ));
        assert!(matches!(
            NarInfo::parse("no colon here\n").unwrap_err(),
            NarInfoError::Line { line: 1, .. }
        ));
    }
}
