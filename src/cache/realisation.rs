//! Signed realisations: "the step whose derivation hash is K produced the
//! item P", so that another machine can take a step's output from a cache
//! without building it. envbuild's own format (Nix's `.doi` files are for
//! its CA derivations, keyed differently).
//!
//! ```text
//! realisations/<key>!<output>.json
//! {"key":"sha256:<hex>","output":"out","outPath":"<hash>-<name>",
//!  "signatures":["<keyname>:<base64>"],"version":1}
//! ```
//!
//! `key` is a derivation hash (`sha256:<64 hex>`, see
//! `crate::plan::Derivation::hash`) or a fixed-output fetch's key
//! (`fetch:sha256:<64 hex>`); `output` is `out`. Each signature is an
//! ed25519 signature in Nix's key format (`envbuild_store::signing`) of
//! the fingerprint
//!
//! ```text
//! envbuild-realisation-1;<key>;<output>;/nix/store/<outPath>
//! ```
//!
//! A reader accepts a realisation only with a signature by a trusted key,
//! and then only once the item it names has been substituted and verified
//! (its narinfo signed, its NAR's hash checked).

use envbuild_store::signing::{self, PublicKey, SecretKey};
use envbuild_store::StorePath;

/// One realisation as a cache holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Realisation {
    pub version: u32,
    pub key: String,
    pub output: String,
    pub out_path: String,
    pub signatures: Vec<String>,
}

/// Longest realisation file read (a few hundred bytes in practice).
pub const MAX_REALISATION: u64 = 64 * 1024;

/// Whether `key` is a key envbuild writes: `sha256:<64 hex>` or
/// `fetch:sha256:<64 hex>`. Anything else is refused before it is put
/// into a file name or URL.
pub fn valid_key(key: &str) -> bool {
    let hex = key
        .strip_prefix("fetch:sha256:")
        .or_else(|| key.strip_prefix("sha256:"));
    matches!(hex, Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
}

/// Where the realisation of `key`'s `output` lies in a cache.
pub fn file_name(key: &str, output: &str) -> String {
    format!("realisations/{key}!{output}.json")
}

pub fn fingerprint(key: &str, output: &str, out_path: &StorePath) -> String {
    format!(
        "envbuild-realisation-1;{key};{output};{}",
        out_path.to_absolute()
    )
}

impl Realisation {
    /// A realisation signed by `sk`.
    pub fn signed(key: &str, output: &str, out_path: &StorePath, sk: &SecretKey) -> Realisation {
        Realisation {
            version: 1,
            key: key.to_string(),
            output: output.to_string(),
            out_path: out_path.basename(),
            signatures: vec![sk.sign(fingerprint(key, output, out_path).as_bytes())],
        }
    }

    /// Canonical JSON (sorted keys, no whitespace), one line.
    pub fn to_json(&self) -> String {
        serde_json::to_value(self)
            .expect("a realisation serializes")
            .to_string()
    }

    /// The output path, when the file is well formed for `key`/`output`.
    pub fn parse(
        bytes: &[u8],
        key: &str,
        output: &str,
    ) -> Result<(Realisation, StorePath), (&'static str, String)> {
        let r: Realisation = serde_json::from_slice(bytes).map_err(|e| {
            (
                "a realisation JSON object (version, key, output, outPath, signatures)",
                e.to_string(),
            )
        })?;
        if r.version != 1 {
            return Err(("version 1", r.version.to_string()));
        }
        if r.key != key || r.output != output {
            return Err((
                "the realisation asked for",
                format!("{}!{}", r.key, r.output),
            ));
        }
        let p = StorePath::from_basename(&r.out_path)
            .map_err(|_| ("an outPath <hash>-<name>", r.out_path.clone()))?;
        Ok((r, p))
    }

    /// Whether a trusted key signed it.
    pub fn trusted(&self, path: &StorePath, keys: &[PublicKey]) -> bool {
        signing::trusted(
            keys,
            fingerprint(&self.key, &self.output, path).as_bytes(),
            &self.signatures,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_realisation_round_trips_and_any_change_breaks_the_signature() {
        let sk = SecretKey::from_seed("ci-1", [5u8; 32]);
        let key = format!("sha256:{}", "ab".repeat(32));
        let p = StorePath::from_basename("0c6kzph7l0dcbfmjap64f0czdafn3b7x-a").unwrap();
        let r = Realisation::signed(&key, "out", &p, &sk);
        let json = r.to_json();
        let (back, path) = Realisation::parse(json.as_bytes(), &key, "out").unwrap();
        assert_eq!(path, p);
        assert!(back.trusted(&path, &[sk.public()]));
        let other = SecretKey::from_seed("ci-1", [6u8; 32]);
        assert!(!back.trusted(&path, &[other.public()]));
        let q = StorePath::from_basename("1c6kzph7l0dcbfmjap64f0czdafn3b7x-a").unwrap();
        let moved = json.replace(&p.basename(), &q.basename());
        let (m, mp) = Realisation::parse(moved.as_bytes(), &key, "out").unwrap();
        assert!(!m.trusted(&mp, &[sk.public()]));
        assert!(Realisation::parse(json.as_bytes(), "sha256:00", "out").is_err());
        assert!(valid_key(&key) && valid_key(&format!("fetch:{key}")));
        assert!(!valid_key("sha256:../../x") && !valid_key(&key.to_uppercase()));
    }
}
