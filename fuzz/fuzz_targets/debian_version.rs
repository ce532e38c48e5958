//! Debian versions: `envbuild::debian::Version::parse` and the Policy
//! 5.6.12 order. Up to three versions, one per line. A version displays as
//! it was parsed; the order is antisymmetric and transitive; equal
//! versions hash equal; `satisfies` agrees with the order.
#![no_main]

use std::cmp::Ordering;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use envbuild::debian::relation::{satisfies, Op};
use envbuild::debian::version::{compare, Version};
use envbuild_fuzz::text;
use libfuzzer_sys::fuzz_target;

fn hash(v: &Version) -> u64 {
    let mut h = DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

fuzz_target!(|data: &[u8]| {
    let Some(text) = text(data) else { return };
    let versions: Vec<Version> = text
        .splitn(3, '\n')
        .filter_map(|s| Version::parse(s).ok())
        .collect();
    for v in &versions {
        assert_eq!(v.to_string(), v.as_str());
        let again = Version::parse(v.as_str()).expect("a displayed version parses");
        assert_eq!(again.cmp(v), Ordering::Equal);
        assert_eq!(v.cmp(v), Ordering::Equal);
    }
    for a in &versions {
        for b in &versions {
            let ab = a.cmp(b);
            assert_eq!(ab, b.cmp(a).reverse(), "{a} vs {b} is not antisymmetric");
            assert_eq!(compare(a.as_str(), b.as_str()).expect("both parse"), ab);
            if ab == Ordering::Equal {
                assert_eq!(hash(a), hash(b), "{a} == {b} but their hashes differ");
            }
            assert_eq!(satisfies(a, Op::Lt, b), ab.is_lt());
            assert_eq!(satisfies(a, Op::Le, b), ab.is_le());
            assert_eq!(satisfies(a, Op::Eq, b), ab.is_eq());
            assert_eq!(satisfies(a, Op::Ge, b), ab.is_ge());
            assert_eq!(satisfies(a, Op::Gt, b), ab.is_gt());
            for c in &versions {
                if a <= b && b <= c {
                    assert!(a <= c, "{a} <= {b} <= {c} but not {a} <= {c}");
                }
            }
        }
    }
});
