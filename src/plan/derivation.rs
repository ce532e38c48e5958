//! A derivation: one build step as data (builder name and version,
//! arguments, input items), hashed canonically. The hash keys a realisation
//! in the store (derivation → output item), so a step whose builder and
//! inputs did not change is never redone. Outputs are content-addressed:
//! a rebuild that yields identical bytes leaves every downstream hash, and
//! so every downstream step, untouched (early cutoff).

use std::collections::BTreeMap;

use envbuild_store::StorePath;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// One build step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Derivation {
    /// The builder, e.g. `unpack-wheel`.
    pub builder: &'static str,
    /// Bumped whenever the builder's output for the same inputs changes.
    pub builder_version: u32,
    /// The output item's name.
    pub name: String,
    /// Everything else the output depends on, as strings.
    pub args: BTreeMap<String, String>,
    /// Input items, by their `/nix/store/...` identity.
    #[serde(serialize_with = "ser_inputs")]
    pub inputs: Vec<StorePath>,
}

fn ser_inputs<S: serde::Serializer>(v: &[StorePath], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(StorePath::to_absolute))
}

impl Derivation {
    pub fn new(builder: &'static str, builder_version: u32, name: impl Into<String>) -> Derivation {
        Derivation {
            builder,
            builder_version,
            name: name.into(),
            args: BTreeMap::new(),
            inputs: Vec::new(),
        }
    }

    pub fn arg(mut self, key: &str, value: impl Into<String>) -> Self {
        self.args.insert(key.to_string(), value.into());
        self
    }

    pub fn input(mut self, item: StorePath) -> Self {
        self.inputs.push(item);
        self
    }

    /// The canonical serialization: JSON with sorted keys, no whitespace.
    pub fn canonical(&self) -> Vec<u8> {
        let v = serde_json::to_value(self).expect("a derivation serializes");
        serde_json::to_vec(&v).expect("a JSON value serializes")
    }

    /// `sha256:<hex>` of the canonical serialization.
    pub fn hash(&self) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(self.canonical())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_ignores_argument_insertion_order_but_not_values() {
        let a = Derivation::new("copy-files", 1, "x")
            .arg("a", "1")
            .arg("b", "2");
        let b = Derivation::new("copy-files", 1, "x")
            .arg("b", "2")
            .arg("a", "1");
        assert_eq!(a.hash(), b.hash());
        let c = Derivation::new("copy-files", 1, "x")
            .arg("a", "1")
            .arg("b", "3");
        assert_ne!(a.hash(), c.hash());
        let d = Derivation::new("copy-files", 2, "x")
            .arg("a", "1")
            .arg("b", "2");
        assert_ne!(
            a.hash(),
            d.hash(),
            "the builder version is part of the hash"
        );
    }

    #[test]
    fn canonical_form_is_sorted_and_compact() {
        let p = StorePath::from_basename("00000000000000000000000000000000-in").unwrap();
        let d = Derivation::new("layer", 1, "out").arg("z", "1").input(p);
        assert_eq!(
            String::from_utf8(d.canonical()).unwrap(),
            r#"{"args":{"z":"1"},"builder":"layer","builder_version":1,"inputs":["/nix/store/00000000000000000000000000000000-in"],"name":"out"}"#
        );
    }
}
