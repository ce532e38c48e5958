//! Debian package versions, parsed and compared per Debian Policy 5.6.12
//! (the same algorithm as dpkg's `verrevcmp`).
//!
//! Syntax: `[epoch:]upstream_version[-debian_revision]`, with no whitespace.
//!
//! - `epoch`: everything before the first `:`; one or more ASCII digits, at
//!   most 2147483647 (dpkg's limit). Absent means 0.
//! - `debian_revision`: everything after the last `-`; when there is a `-`
//!   it must be non-empty and use only `A-Za-z0-9+.~`. Absent compares equal
//!   to `0` (so `1.0` = `1.0-0`).
//! - `upstream_version`: what is left; non-empty, starts with a digit, and
//!   uses only `A-Za-z0-9.+~-:` (a `:` can only occur with an epoch and a `-`
//!   only with a revision, by the two splits above).
//!
//! Comparison: epochs numerically; then upstream versions, then revisions,
//! each with this loop until both strings are used up: compare the initial
//! runs of non-digits character by character, where `~` sorts before
//! everything (even the end of the string), the end of the string and a
//! digit come next, then letters (ASCII order), then all other characters
//! (ASCII order); then compare the following runs of digits as numbers (an
//! empty run is 0, so leading zeros do not matter and numbers of any length
//! work). Thus `1.0~rc1 < 1.0 < 1.0+b1 < 1.0.1`, `1.01 = 1.1` and `1.0 = 1.`
//! hold here as in dpkg.
//!
//! [`Version`]'s `Eq`, `Ord` and `Hash` follow this comparison, not the
//! spelling: `0:1.0`, `1.0` and `1.00-0` are one key in a map.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use super::error::{Error, Result};

/// A parsed Debian version. `Display` gives back the string as parsed.
#[derive(Clone)]
pub struct Version {
    raw: String,
    epoch: u32,
    /// Byte range of the upstream version in `raw`.
    upstream: (usize, usize),
    /// Start of the revision in `raw`, if there is one.
    revision: Option<usize>,
}

impl Version {
    /// Parses a version, refusing anything outside Policy 5.6.12.
    pub fn parse(s: &str) -> Result<Version> {
        let err = |reason: &str| Error::Version {
            version: s.to_string(),
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(err("the version is empty"));
        }
        if s.chars().any(char::is_whitespace) {
            return Err(err("a version contains no whitespace"));
        }
        let (epoch, start) = match s.find(':') {
            None => (0, 0),
            Some(colon) => {
                let e = &s[..colon];
                if e.is_empty() {
                    return Err(err("the epoch before `:` is empty"));
                }
                if !e.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err("the epoch before `:` must be a number"));
                }
                let epoch = e
                    .parse::<u32>()
                    .ok()
                    .filter(|&n| n <= i32::MAX as u32)
                    .ok_or_else(|| err("the epoch is larger than 2147483647"))?;
                (epoch, colon + 1)
            }
        };
        let rest = &s[start..];
        let (upstream_len, revision) = match rest.rfind('-') {
            None => (rest.len(), None),
            Some(h) => {
                let rev = &rest[h + 1..];
                if rev.is_empty() {
                    return Err(err("the revision after the last `-` is empty"));
                }
                if let Some(c) = rev
                    .chars()
                    .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '~')))
                {
                    return Err(err(&format!(
                        "the revision may hold only letters, digits and `+ . ~`, not `{c}`"
                    )));
                }
                (h, Some(start + h + 1))
            }
        };
        let upstream = &rest[..upstream_len];
        match upstream.chars().next() {
            None => return Err(err("the upstream version is empty")),
            Some(c) if !c.is_ascii_digit() => {
                return Err(err(&format!(
                    "the upstream version must start with a digit, not `{c}`"
                )))
            }
            _ => {}
        }
        if let Some(c) = upstream
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '~' | '-' | ':')))
        {
            return Err(err(&format!(
                "the upstream version may hold only letters, digits and `. + ~ - :`, not `{c}`"
            )));
        }
        Ok(Version {
            raw: s.to_string(),
            epoch,
            upstream: (start, start + upstream_len),
            revision,
        })
    }

    /// The epoch (0 when absent).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The upstream version.
    pub fn upstream(&self) -> &str {
        &self.raw[self.upstream.0..self.upstream.1]
    }

    /// The Debian revision, if the version has one.
    pub fn revision(&self) -> Option<&str> {
        self.revision.map(|r| &self.raw[r..])
    }

    /// The version as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

/// Compares two version strings as dpkg does; fails if either is invalid.
pub fn compare(a: &str, b: &str) -> Result<Ordering> {
    Ok(Version::parse(a)?.cmp(&Version::parse(b)?))
}

/// The sort weight of one character of a non-digit run (dpkg's `order`);
/// `None` stands for the end of the string or a digit.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp`, on one part (upstream version or revision).
fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        // Non-digit runs, character by character.
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = order(a.get(i).copied());
            let bc = order(b.get(j).copied());
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        // Digit runs, as numbers.
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while i < a.len() && a[i].is_ascii_digit() && j < b.len() && b[j].is_ascii_digit() {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if i < a.len() && a[i].is_ascii_digit() {
            return Ordering::Greater;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

/// Feeds the canonical form of one part to a hasher: the sequence of
/// (non-digit run, number without leading zeros) pairs that `verrevcmp`
/// walks, without trailing ("", 0) pairs, which compare equal to nothing.
fn hash_part<H: Hasher>(part: &[u8], state: &mut H) {
    let mut pairs: Vec<(&[u8], &[u8])> = Vec::new();
    let mut i = 0;
    while i < part.len() {
        let s = i;
        while i < part.len() && !part[i].is_ascii_digit() {
            i += 1;
        }
        let text = &part[s..i];
        while i < part.len() && part[i] == b'0' {
            i += 1;
        }
        let d = i;
        while i < part.len() && part[i].is_ascii_digit() {
            i += 1;
        }
        pairs.push((text, &part[d..i]));
    }
    while pairs
        .last()
        .is_some_and(|(t, n)| t.is_empty() && n.is_empty())
    {
        pairs.pop();
    }
    state.write_usize(pairs.len());
    for (t, n) in pairs {
        state.write(t);
        state.write_u8(0xff);
        state.write(n);
        state.write_u8(0xff);
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Version) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(self.upstream().as_bytes(), other.upstream().as_bytes()))
            .then_with(|| {
                verrevcmp(
                    self.revision().unwrap_or("").as_bytes(),
                    other.revision().unwrap_or("").as_bytes(),
                )
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Version) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl Hash for Version {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u32(self.epoch);
        hash_part(self.upstream().as_bytes(), state);
        hash_part(self.revision().unwrap_or("").as_bytes(), state);
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({:?})", self.raw)
    }
}

impl FromStr for Version {
    type Err = Error;

    fn from_str(s: &str) -> Result<Version> {
        Version::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;
    use std::process::Command;
    use Ordering::{Equal as Eq_, Greater as Gt, Less as Lt};

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    /// (a, b, expected ordering of a against b)
    const TABLE: &[(&str, &str, Ordering)] = &[
        // Plain numbers and leading zeros.
        ("1", "1", Eq_),
        ("1", "2", Lt),
        ("10", "9", Gt),
        ("1.0", "1.00", Eq_),
        ("1.01", "1.1", Eq_),
        ("1.001", "1.1", Eq_),
        ("1.010", "1.10", Eq_),
        ("1.010", "1.9", Gt),
        ("007", "7", Eq_),
        ("0", "00", Eq_),
        ("1.0", "1.", Eq_),
        ("1.0", "1.0.0", Lt),
        ("1.2.3", "1.2.10", Lt),
        ("2.0", "10.0", Lt),
        ("12345678901234567890", "12345678901234567891", Lt),
        ("99999999999999999999", "100000000000000000000", Lt),
        // Epochs.
        ("0:1.0", "1.0", Eq_),
        ("1:1.0", "2.0", Gt),
        ("1:0.1", "0:9.9", Gt),
        ("2:1", "10:1", Lt),
        ("00:1.0", "0:1.0", Eq_),
        ("1:1.0-1", "1:1.0-2", Lt),
        ("1:2:3", "1:2:4", Lt),
        ("1:2.0:1", "1:2.0", Gt),
        // Revisions.
        ("1.0", "1.0-0", Eq_),
        ("1.0-1", "1.0", Gt),
        ("1.0-1", "1.0-2", Lt),
        ("1.0-10", "1.0-9", Gt),
        ("1.0-1.1", "1.0-1", Gt),
        ("1.0-1+b1", "1.0-1", Gt),
        ("1.0-1+b2", "1.0-1+b10", Lt),
        ("1.0-1~bpo1", "1.0-1", Lt),
        ("1.0-1ubuntu1", "1.0-1", Gt),
        ("1.0-1ubuntu1", "1.0-2", Lt),
        ("1.0-a", "1.0-b", Lt),
        ("2.30-1-1", "2.30-2", Gt),
        ("1-2-3", "1-2-3", Eq_),
        ("1-2-3", "1-2", Gt),
        ("1.0-0.1", "1.0-0", Gt),
        ("1.0-00", "1.0", Eq_),
        // Tilde.
        ("1.0~rc1", "1.0", Lt),
        ("1.0~rc1", "1.0~rc2", Lt),
        ("1.0~~", "1.0~~a", Lt),
        ("1.0~~a", "1.0~", Lt),
        ("1.0~", "1.0", Lt),
        ("1.0~beta", "1.0~alpha", Gt),
        ("1~", "1~~", Gt),
        ("1.0~rc1-1", "1.0-1", Lt),
        ("1.0-1~", "1.0-1", Lt),
        ("1.0~1", "1.0~0", Gt),
        ("2~1", "1.9", Gt),
        // Letters before non-letters, `+` and `.`.
        ("1.0a", "1.0", Gt),
        ("1.0a", "1.0.", Lt),
        ("1.0a", "1.0+", Lt),
        ("1.0+", "1.0.", Lt),
        ("1.0+dfsg", "1.0", Gt),
        ("1.0+dfsg", "1.0.1", Lt),
        ("1.0+dfsg1", "1.0+dfsg", Gt),
        ("1.0+b1", "1.0.b1", Lt),
        ("1.0A", "1.0a", Lt),
        ("1.0Z", "1.0a", Lt),
        ("1.0z", "1.0+", Lt),
        ("1.a", "1.+", Lt),
        ("1a", "1b", Lt),
        ("1aa", "1a", Gt),
        ("1a1", "1a", Gt),
        ("1:1.0:1", "1:1.0.1", Gt),
        ("1:1.0-1", "1:1.0+1-1", Lt),
        ("4.19.0+really4.18-1", "4.19.0-1", Gt),
        ("2.36.1-8+deb12u1", "2.36.1-8", Gt),
        ("3.0.11-1~deb12u2", "3.0.11-1", Lt),
        ("1:8.9p1-3", "1:9.2p1-2", Lt),
        ("7.88.1-10+deb12u5", "7.88.1-10+deb12u12", Lt),
        ("0.0~git20230101.abc-1", "0.0~git20230102.aaa-1", Lt),
        ("1.2.3.4.5.6.7.8.9", "1.2.3.4.5.6.7.8.10", Lt),
    ];

    #[test]
    fn table_matches_expectations_and_is_long_enough() {
        assert!(TABLE.len() >= 60);
        for &(a, b, want) in TABLE {
            assert_eq!(v(a).cmp(&v(b)), want, "{a} vs {b}");
            assert_eq!(v(b).cmp(&v(a)), want.reverse(), "{b} vs {a}");
            assert_eq!(compare(a, b).unwrap(), want);
        }
    }

    fn dpkg_available() {
        match Command::new("dpkg").arg("--version").output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "`dpkg --version` failed ({}); these tests compare against dpkg --compare-versions",
                o.status
            ),
            Err(e) => panic!(
                "dpkg is not installed or not on PATH ({e}); these tests compare against \
                 `dpkg --compare-versions`: install dpkg"
            ),
        }
    }

    /// The ordering dpkg gives, asking `lt` and `eq`.
    fn dpkg_order(a: &str, b: &str) -> Ordering {
        let ask = |op: &str| {
            let out = Command::new("dpkg")
                .args(["--compare-versions", a, op, b])
                .output()
                .expect("running dpkg");
            assert!(
                out.stderr.is_empty(),
                "dpkg complained about {a} {op} {b}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            match out.status.code() {
                Some(0) => true,
                Some(1) => false,
                other => panic!("dpkg --compare-versions {a} {op} {b} exited {other:?}"),
            }
        };
        if ask("lt") {
            Lt
        } else if ask("eq") {
            Eq_
        } else {
            Gt
        }
    }

    #[test]
    fn table_matches_dpkg() {
        dpkg_available();
        for &(a, b, want) in TABLE {
            assert_eq!(
                dpkg_order(a, b),
                want,
                "dpkg disagrees with the table on {a} vs {b}"
            );
        }
    }

    /// Pseudo-random versions built from tricky pieces, checked against dpkg.
    #[test]
    fn generated_pairs_match_dpkg() {
        dpkg_available();
        const UP: &[&str] = &[
            "0", "1", "01", "10", "9", ".", "+", "~", "a", "Z", "b", ":", "-",
        ];
        const REV: &[&str] = &["0", "1", "00", "2", ".", "+", "~", "a", "B"];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut gen = move || loop {
            let mut s = String::new();
            let epoch = next(4);
            if epoch > 1 {
                s.push_str(&format!("{}:", epoch - 2));
            }
            s.push_str(["1", "0", "2", "01"][next(4)]);
            for _ in 0..next(5) {
                let piece = UP[next(UP.len())];
                if piece == ":" && epoch <= 1 {
                    continue;
                }
                s.push_str(piece);
            }
            if next(2) == 1 {
                s.push('-');
                s.push_str(["1", "0", "a"][next(3)]);
                for _ in 0..next(4) {
                    s.push_str(REV[next(REV.len())]);
                }
            }
            if Version::parse(&s).is_ok() {
                return s;
            }
        };
        for _ in 0..150 {
            let (a, b) = (gen(), gen());
            assert_eq!(v(&a).cmp(&v(&b)), dpkg_order(&a, &b), "{a} vs {b}");
        }
    }

    #[test]
    fn parts() {
        let x = v("1:2.3-4-5");
        assert_eq!(
            (x.epoch(), x.upstream(), x.revision()),
            (1, "2.3-4", Some("5"))
        );
        let x = v("2.3");
        assert_eq!((x.epoch(), x.upstream(), x.revision()), (0, "2.3", None));
        assert_eq!(x.to_string(), "2.3");
        assert_eq!("0:2.3".parse::<Version>().unwrap(), x);
        assert_eq!(format!("{x:?}"), "Version(\"2.3\")");
    }

    #[test]
    fn equal_versions_hash_equal() {
        let h = |s: &str| {
            let mut st = DefaultHasher::new();
            v(s).hash(&mut st);
            st.finish()
        };
        for group in [
            &["1.0", "0:1.0", "1.00", "1.0-0", "1.", "01.0-00"][..],
            &["1.01-1", "1.1-01", "0:1.001-1"],
            &["2~a1", "2~a01"],
        ] {
            for s in group {
                assert_eq!(v(s), v(group[0]));
                assert_eq!(h(s), h(group[0]), "{s} vs {}", group[0]);
            }
        }
        for &(a, b, want) in TABLE {
            if want == Eq_ {
                assert_eq!(h(a), h(b), "{a} vs {b}");
            }
        }
        assert_ne!(h("1.0"), h("1.0.0"));
        assert_ne!(h("1.0"), h("1.0~"));
    }

    #[test]
    fn invalid_versions_are_refused_with_reasons() {
        for (s, reason) in [
            ("", "empty"),
            ("1 0", "whitespace"),
            (":1", "epoch before `:` is empty"),
            ("a:1", "epoch before `:` must be a number"),
            ("-1:1", "epoch before `:` must be a number"),
            ("99999999999:1", "larger than"),
            ("1:", "upstream version is empty"),
            ("1.0-", "revision after the last `-` is empty"),
            ("-1", "upstream version is empty"),
            ("a1.0", "must start with a digit, not `a`"),
            ("1.0_1", "not `_`"),
            ("1.0-1=2", "revision may hold only"),
            ("1.0-1_2", "revision may hold only"),
            ("1.0\u{e9}", "not `\u{e9}`"),
        ] {
            let e = Version::parse(s).unwrap_err().to_string();
            assert!(e.starts_with(&format!("invalid version `{s}`: ")), "{e}");
            assert!(e.contains(reason), "{s}: {e}");
        }
    }
}
