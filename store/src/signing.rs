//! ed25519 keys and signatures in Nix's format.
//!
//! Grammar (Nix's `libutil/signature/local-keys.cc`, the files
//! `nix-store --generate-binary-cache-key NAME SECRET PUBLIC` writes):
//!
//! ```text
//! secret key = name ":" base64(seed[32] ‖ public[32])   (64 bytes, libsodium's layout)
//! public key = name ":" base64(public[32])
//! signature  = name ":" base64(ed25519(secret, message)[64])
//! name       = 1*(any character but ":"), e.g. "cache.example-1"
//! ```
//!
//! A signature is trusted when a public key of the same name verifies it;
//! signatures of other names are skipped, as Nix skips them. What is signed
//! for a narinfo is [`crate::narinfo::fingerprint`].

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signer, Verifier};

use crate::error::SigningError;

/// A secret (signing) key.
pub struct SecretKey {
    pub name: String,
    key: ed25519_dalek::SigningKey,
}

/// A public (verifying) key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub name: String,
    key: ed25519_dalek::VerifyingKey,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({:?})", self.name)
    }
}

fn split<'a>(
    what: &'static str,
    expected: &'static str,
    s: &'a str,
) -> Result<(&'a str, Vec<u8>), SigningError> {
    let bad = || SigningError::Format {
        what,
        expected,
        // Never echo a secret key's bytes.
        found: if what == "secret key" {
            s.split(':').next().unwrap_or_default().to_string() + ":…"
        } else {
            s.to_string()
        },
    };
    let (name, b64) = s.trim().split_once(':').ok_or_else(bad)?;
    if name.is_empty() {
        return Err(bad());
    }
    let bytes = STANDARD.decode(b64).map_err(|_| bad())?;
    Ok((name, bytes))
}

impl SecretKey {
    /// A key made from 32 random bytes (the caller's: the store crate has
    /// no randomness of its own).
    pub fn from_seed(name: &str, seed: [u8; 32]) -> SecretKey {
        SecretKey {
            name: name.to_string(),
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        }
    }

    /// Parse `name:base64(64 bytes)`.
    pub fn parse(s: &str) -> Result<SecretKey, SigningError> {
        const EXPECTED: &str =
            "NAME:BASE64 of 64 bytes, as nix-store --generate-binary-cache-key writes";
        let (name, bytes) = split("secret key", EXPECTED, s)?;
        let bytes: [u8; 64] = bytes.try_into().map_err(|_| SigningError::Format {
            what: "secret key",
            expected: EXPECTED,
            found: format!("{name}:…"),
        })?;
        let key = ed25519_dalek::SigningKey::from_keypair_bytes(&bytes).map_err(|_| {
            SigningError::InconsistentKey {
                name: name.to_string(),
            }
        })?;
        Ok(SecretKey {
            name: name.to_string(),
            key,
        })
    }

    /// `name:base64(seed ‖ public)`.
    pub fn render(&self) -> String {
        format!(
            "{}:{}",
            self.name,
            STANDARD.encode(self.key.to_keypair_bytes())
        )
    }

    pub fn public(&self) -> PublicKey {
        PublicKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// `name:base64(signature of message)`.
    pub fn sign(&self, message: &[u8]) -> String {
        let sig = self.key.sign(message);
        format!("{}:{}", self.name, STANDARD.encode(sig.to_bytes()))
    }
}

impl PublicKey {
    /// Parse `name:base64(32 bytes)`.
    pub fn parse(s: &str) -> Result<PublicKey, SigningError> {
        const EXPECTED: &str = "NAME:BASE64 of a 32-byte ed25519 public key";
        let (name, bytes) = split("public key", EXPECTED, s)?;
        let bad = || SigningError::Format {
            what: "public key",
            expected: EXPECTED,
            found: s.trim().to_string(),
        };
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| bad())?;
        Ok(PublicKey {
            name: name.to_string(),
            key,
        })
    }

    /// `name:base64(public)`.
    pub fn render(&self) -> String {
        format!("{}:{}", self.name, STANDARD.encode(self.key.as_bytes()))
    }

    /// Whether `sig` (`name:base64`) is this key's signature of `message`.
    /// A signature of another name, or one that does not parse, is not.
    pub fn verifies(&self, message: &[u8], sig: &str) -> bool {
        let Some((name, b64)) = sig.trim().split_once(':') else {
            return false;
        };
        if name != self.name {
            return false;
        }
        let Ok(bytes) = STANDARD.decode(b64) else {
            return false;
        };
        let Ok(bytes) = <[u8; 64]>::try_from(bytes) else {
            return false;
        };
        let sig = ed25519_dalek::Signature::from_bytes(&bytes);
        self.key.verify(message, &sig).is_ok()
    }
}

/// Whether any of `sigs` is a valid signature of `message` by one of `keys`.
pub fn trusted(keys: &[PublicKey], message: &[u8], sigs: &[String]) -> bool {
    sigs.iter()
        .any(|s| keys.iter().any(|k| k.verifies(message, s)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::narinfo::NarInfo;

    /// The key pair the fixture narinfo was signed with: made by
    /// `nix-store --generate-binary-cache-key fixture-1 sk pk`.
    const NIX_SECRET: &str = include_str!("narinfo/fixture-1.secret");
    const NIX_PUBLIC: &str = include_str!("narinfo/fixture-1.public");
    const FROM_NIX: &str = include_str!("narinfo/nix-written.narinfo");

    #[test]
    fn reads_nixs_key_files_and_the_public_half_matches() {
        let sk = SecretKey::parse(NIX_SECRET).unwrap();
        let pk = PublicKey::parse(NIX_PUBLIC).unwrap();
        assert_eq!(sk.name, "fixture-1");
        assert_eq!(sk.public(), pk);
        assert_eq!(sk.render(), NIX_SECRET.trim());
        assert_eq!(pk.render(), NIX_PUBLIC.trim());
    }

    #[test]
    fn nixs_signature_verifies_against_our_fingerprint_and_ours_equals_it() {
        let n = NarInfo::parse(FROM_NIX).unwrap();
        let pk = PublicKey::parse(NIX_PUBLIC).unwrap();
        let fp = n.fingerprint();
        assert!(pk.verifies(fp.as_bytes(), &n.sigs[0]), "fingerprint {fp}");
        // ed25519 is deterministic: our signature is nix's, byte for byte.
        let sk = SecretKey::parse(NIX_SECRET).unwrap();
        assert_eq!(sk.sign(fp.as_bytes()), n.sigs[0]);
    }

    #[test]
    fn a_changed_message_another_key_or_a_mangled_signature_do_not_verify() {
        let n = NarInfo::parse(FROM_NIX).unwrap();
        let pk = PublicKey::parse(NIX_PUBLIC).unwrap();
        let other = SecretKey::from_seed("fixture-1", [9u8; 32]);
        let fp = n.fingerprint();
        assert!(!pk.verifies((fp.clone() + "x").as_bytes(), &n.sigs[0]));
        assert!(!other.public().verifies(fp.as_bytes(), &n.sigs[0]));
        let renamed = n.sigs[0].replacen("fixture-1:", "fixture-2:", 1);
        assert!(!pk.verifies(fp.as_bytes(), &renamed));
        assert!(!pk.verifies(fp.as_bytes(), "fixture-1:AAAA"));
        assert!(!trusted(&[], fp.as_bytes(), &n.sigs));
        assert!(trusted(&[other.public(), pk], fp.as_bytes(), &n.sigs));
    }

    #[test]
    fn malformed_keys_are_refused_without_echoing_a_secret() {
        let e = SecretKey::parse("k:c2VjcmV0").unwrap_err();
        assert!(!e.to_string().contains("c2VjcmV0"), "{e}");
        assert!(PublicKey::parse("nocolon").is_err());
        assert!(PublicKey::parse(":AAAA").is_err());
        let mut bytes = SecretKey::from_seed("k", [1u8; 32]).key.to_keypair_bytes();
        bytes[40] ^= 1;
        let e = SecretKey::parse(&format!("k:{}", STANDARD.encode(bytes))).unwrap_err();
        assert_eq!(e, SigningError::InconsistentKey { name: "k".into() });
    }
}
