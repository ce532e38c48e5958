//! Canonical JSON for image config, manifest and index: object keys in
//! bytewise (UTF-8) order at every level, no whitespace, strings escaped as
//! serde_json escapes them, integers as integers.
//!
//! The key order is imposed here, not taken from `serde_json::Map`, so the
//! output stays canonical even if some dependency turns on serde_json's
//! `preserve_order` feature.

use serde::Serialize;
use serde_json::Value;

/// Serializes `value` as canonical JSON.
pub fn to_canonical_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let v = serde_json::to_value(value)?;
    let mut out = Vec::new();
    write_value(&v, &mut out)?;
    Ok(out)
}

fn write_value(v: &Value, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k)?;
                out.push(b':');
                write_value(&map[k], out)?;
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Serialize)]
    struct S {
        zeta: u64,
        #[serde(rename = "Alpha")]
        alpha: Vec<&'static str>,
        map: HashMap<String, u32>,
        empty: serde_json::Map<String, Value>,
        text: &'static str,
    }

    #[test]
    fn sorted_compact() {
        let map: HashMap<String, u32> = (0..50).map(|i| (format!("k{i}"), i)).collect();
        let s = S {
            zeta: 1,
            alpha: vec!["x", "y"],
            map,
            empty: Default::default(),
            text: "é\"\n",
        };
        let out = String::from_utf8(to_canonical_json(&s).unwrap()).unwrap();
        assert!(out.starts_with(r#"{"Alpha":["x","y"],"empty":{},"map":{"k0":0,"k1":1,"k10":10,"#));
        assert!(out.ends_with(r#""k9":9},"text":"é\"\n","zeta":1}"#));
        assert!(!out.contains(' '));
        // Stable across HashMap iteration orders.
        let again = to_canonical_json(&serde_json::from_str::<Value>(&out).unwrap()).unwrap();
        assert_eq!(again, out.as_bytes());
    }
}
