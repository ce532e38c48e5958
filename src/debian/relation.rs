//! Relationship fields (`Depends`, `Pre-Depends`, `Recommends`, `Provides`,
//! `Breaks`, `Build-Depends`, ...) per Debian Policy 7.1 and 7.3 and the
//! build-profile syntax of Policy 7.1 / BuildProfileSpec.
//!
//! Grammar implemented (whitespace, newlines included, may stand between
//! any two tokens, except inside a name, a version or a qualifier):
//!
//! ```text
//! field        = [ group *( "," group ) [ "," ] ]      ; one trailing comma is tolerated
//! group        = relation *( "|" relation )            ; alternatives
//! relation     = name [ ":" archqual ] [ "(" op version ")" ]
//!                [ "[" arch *( arch ) "]" ] *( "<" term *( term ) ">" )
//! name         = [a-z0-9] 1*[a-z0-9+.-]                ; at least two characters
//! archqual     = 1*[a-z0-9-]                           ; "any", "native" or an architecture
//! op           = "<<" / "<=" / "=" / ">=" / ">>"
//! version      = a Debian version (see `version`), up to whitespace or ")"
//! arch         = [ "!" ] 1*[a-z0-9-]                   ; all negated or none
//! term         = [ "!" ] 1*[a-z0-9.+-]                 ; a build profile
//! ```
//!
//! The obsolete operators `<` and `>` are refused, as Policy requires. In an
//! architecture list either every entry is negated or none is. Several
//! `<...>` profile lists are alternatives (any one may hold); the terms
//! inside one list must all hold.
//!
//! [`satisfies`] applies an operator: `<<` strictly earlier, `<=` earlier or
//! equal, `=` equal, `>=` later or equal, `>>` strictly later, by
//! [`Version`]'s Policy 5.6.12 ordering.

use std::fmt;
use std::str::FromStr;

use super::error::{Error, Result};
use super::version::Version;

/// A version comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `<<`
    Lt,
    /// `<=`
    Le,
    /// `=`
    Eq,
    /// `>=`
    Ge,
    /// `>>`
    Gt,
}

impl Op {
    /// The operator as written in control files.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ge => ">=",
            Op::Gt => ">>",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Op {
    type Err = Error;

    fn from_str(s: &str) -> Result<Op> {
        match s {
            "<<" => Ok(Op::Lt),
            "<=" => Ok(Op::Le),
            "=" => Ok(Op::Eq),
            ">=" => Ok(Op::Ge),
            ">>" => Ok(Op::Gt),
            _ => Err(Error::Relation {
                input: s.to_string(),
                position: 0,
                expected: "one of `<<` `<=` `=` `>=` `>>`".to_string(),
                found: format!("`{s}`"),
            }),
        }
    }
}

/// Whether `version` satisfies `op bound` (e.g. `satisfies(2.0, Ge, 1.0)`).
pub fn satisfies(version: &Version, op: Op, bound: &Version) -> bool {
    let ord = version.cmp(bound);
    match op {
        Op::Lt => ord.is_lt(),
        Op::Le => ord.is_le(),
        Op::Eq => ord.is_eq(),
        Op::Ge => ord.is_ge(),
        Op::Gt => ord.is_gt(),
    }
}

/// `(op version)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Constraint {
    pub op: Op,
    pub version: Version,
}

/// One entry of an architecture restriction list: `amd64` or `!amd64`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArchRestriction {
    pub negated: bool,
    pub arch: String,
}

/// One term of a build-profile list: `nocheck` or `!nocheck`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProfileTerm {
    pub negated: bool,
    pub name: String,
}

/// One possible package: `name[:arch] [(op version)] [[arches]] [<profiles>]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Relation {
    pub name: String,
    /// `any`, `native` or an architecture, from `name:qualifier`.
    pub arch_qualifier: Option<String>,
    pub constraint: Option<Constraint>,
    /// Empty when there is no `[...]` list.
    pub arches: Vec<ArchRestriction>,
    /// Each inner list is one `<...>`; empty when there is none.
    pub profiles: Vec<Vec<ProfileTerm>>,
}

impl Relation {
    /// Whether a package at `version` meets this relation's version
    /// constraint (always true without one). Names are not compared.
    pub fn satisfied_by(&self, version: &Version) -> bool {
        self.constraint
            .as_ref()
            .is_none_or(|c| satisfies(version, c.op, &c.version))
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(q) = &self.arch_qualifier {
            write!(f, ":{q}")?;
        }
        if let Some(c) = &self.constraint {
            write!(f, " ({} {})", c.op, c.version)?;
        }
        if !self.arches.is_empty() {
            f.write_str(" [")?;
            for (i, a) in self.arches.iter().enumerate() {
                let sep = if i > 0 { " " } else { "" };
                let bang = if a.negated { "!" } else { "" };
                write!(f, "{sep}{bang}{}", a.arch)?;
            }
            f.write_str("]")?;
        }
        for list in &self.profiles {
            f.write_str(" <")?;
            for (i, t) in list.iter().enumerate() {
                let sep = if i > 0 { " " } else { "" };
                let bang = if t.negated { "!" } else { "" };
                write!(f, "{sep}{bang}{}", t.name)?;
            }
            f.write_str(">")?;
        }
        Ok(())
    }
}

/// One comma-separated element: alternatives separated by `|`, any one of
/// which satisfies it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dependency {
    pub alternatives: Vec<Relation>,
}

impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.alternatives.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Parses a whole relationship field value (see the module docs).
pub fn parse_relations(input: &str) -> Result<Vec<Dependency>> {
    let mut p = Parser { s: input, pos: 0 };
    let mut out = Vec::new();
    p.ws();
    if p.eof() {
        return Ok(out);
    }
    loop {
        out.push(p.group()?);
        p.ws();
        if p.eof() {
            break;
        }
        p.expect(',', "`,`, `|` or the end of the field")?;
        p.ws();
        if p.eof() {
            break;
        }
    }
    Ok(out)
}

/// Formats a list of dependencies back as a field value.
pub fn format_relations(deps: &[Dependency]) -> String {
    deps.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn eof(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn ws(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_ascii_whitespace() {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    fn err(&self, at: usize, expected: &str) -> Error {
        let found = match self.s[at..].chars().next() {
            None => "the end of the field".to_string(),
            Some(c) => {
                let rest: String = self.s[at..]
                    .chars()
                    .take_while(|c| !c.is_ascii_whitespace())
                    .take(20)
                    .collect();
                if rest.chars().count() > 1 {
                    format!("`{c}` (in `{rest}`)")
                } else {
                    format!("`{c}`")
                }
            }
        };
        Error::Relation {
            input: self.s.to_string(),
            position: at,
            expected: expected.to_string(),
            found,
        }
    }

    fn expect(&mut self, c: char, expected: &str) -> Result<()> {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            Ok(())
        } else {
            Err(self.err(self.pos, expected))
        }
    }

    /// Takes the longest run of characters accepted by `ok`.
    fn take_while(&mut self, ok: impl Fn(char) -> bool) -> &str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if ok(c) {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
        &self.s[start..self.pos]
    }

    fn group(&mut self) -> Result<Dependency> {
        let mut alternatives = vec![self.relation()?];
        loop {
            self.ws();
            if self.peek() != Some('|') {
                break;
            }
            self.pos += 1;
            self.ws();
            alternatives.push(self.relation()?);
        }
        Ok(Dependency { alternatives })
    }

    fn relation(&mut self) -> Result<Relation> {
        const NAME: &str = "a package name (`[a-z0-9][a-z0-9+.-]+`)";
        let start = self.pos;
        let name = self
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
            .to_string();
        if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(self.err(start, NAME));
        }
        match self.peek() {
            None | Some(':' | '(' | '[' | '<' | ',' | '|') => {}
            Some(c) if c.is_ascii_whitespace() => {}
            Some(_) => return Err(self.err(self.pos, NAME)),
        }
        if name.len() < 2 {
            return Err(self.err(start, "a package name of at least two characters"));
        }
        let mut relation = Relation {
            name,
            arch_qualifier: None,
            constraint: None,
            arches: Vec::new(),
            profiles: Vec::new(),
        };
        if self.peek() == Some(':') {
            self.pos += 1;
            let at = self.pos;
            let q = self.take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if q.is_empty() {
                return Err(self.err(
                    at,
                    "an architecture qualifier after `:` (`any`, `native` or an architecture)",
                ));
            }
            relation.arch_qualifier = Some(q.to_string());
        }
        self.ws();
        if self.peek() == Some('(') {
            self.pos += 1;
            self.ws();
            let at = self.pos;
            let op = self.take_while(|c| "<=>".contains(c));
            let op = match op {
                "<<" => Op::Lt,
                "<=" => Op::Le,
                "=" => Op::Eq,
                ">=" => Op::Ge,
                ">>" => Op::Gt,
                _ => return Err(self.err(at, "a version operator, one of `<<` `<=` `=` `>=` `>>`")),
            };
            self.ws();
            let at = self.pos;
            let v = self.take_while(|c| !c.is_ascii_whitespace() && c != ')');
            if v.is_empty() {
                return Err(self.err(at, "a version"));
            }
            let version = Version::parse(v).map_err(|e| {
                let reason = match e {
                    Error::Version { reason, .. } => reason,
                    other => other.to_string(),
                };
                self.err(at, &format!("a valid version ({reason})"))
            })?;
            self.ws();
            self.expect(')', "`)` after the version")?;
            relation.constraint = Some(Constraint { op, version });
            self.ws();
        }
        if self.peek() == Some('[') {
            self.pos += 1;
            loop {
                self.ws();
                if self.peek() == Some(']') && !relation.arches.is_empty() {
                    self.pos += 1;
                    break;
                }
                let at = self.pos;
                let negated = self.peek() == Some('!');
                if negated {
                    self.pos += 1;
                }
                let arch =
                    self.take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
                if arch.is_empty() {
                    let what = if relation.arches.is_empty() {
                        "an architecture name"
                    } else {
                        "an architecture name or `]`"
                    };
                    return Err(self.err(self.pos, what));
                }
                let arch = arch.to_string();
                if relation
                    .arches
                    .first()
                    .is_some_and(|a| a.negated != negated)
                {
                    return Err(self.err(
                        at,
                        "architectures that are either all negated with `!` or none",
                    ));
                }
                relation.arches.push(ArchRestriction { negated, arch });
            }
            self.ws();
        }
        while self.peek() == Some('<') {
            self.pos += 1;
            let mut terms = Vec::new();
            loop {
                self.ws();
                if self.peek() == Some('>') && !terms.is_empty() {
                    self.pos += 1;
                    break;
                }
                let negated = self.peek() == Some('!');
                if negated {
                    self.pos += 1;
                }
                let name = self.take_while(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || ".+-".contains(c)
                });
                if name.is_empty() {
                    let what = if terms.is_empty() {
                        "a build profile name"
                    } else {
                        "a build profile name or `>`"
                    };
                    return Err(self.err(self.pos, what));
                }
                terms.push(ProfileTerm {
                    negated,
                    name: name.to_string(),
                });
            }
            relation.profiles.push(terms);
            self.ws();
        }
        Ok(relation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debian::control::read_paragraphs;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn simple_and_alternatives() {
        let d = parse_relations(
            "libc6 (>= 2.34), libgcc-s1 (>= 3.0) | libgcc1,\n python3:any (<< 3.12~),\tfoo:amd64,bar",
        )
        .unwrap();
        assert_eq!(d.len(), 5);
        assert_eq!(d[0].alternatives[0].name, "libc6");
        let c = d[0].alternatives[0].constraint.as_ref().unwrap();
        assert_eq!((c.op, c.version.as_str()), (Op::Ge, "2.34"));
        assert_eq!(d[1].alternatives.len(), 2);
        assert_eq!(d[1].alternatives[1].name, "libgcc1");
        assert!(d[1].alternatives[1].constraint.is_none());
        let py = &d[2].alternatives[0];
        assert_eq!(py.arch_qualifier.as_deref(), Some("any"));
        assert_eq!(py.constraint.as_ref().unwrap().op, Op::Lt);
        assert_eq!(
            d[3].alternatives[0].arch_qualifier.as_deref(),
            Some("amd64")
        );
        assert_eq!(d[4].alternatives[0].name, "bar");
        assert_eq!(
            format_relations(&d),
            "libc6 (>= 2.34), libgcc-s1 (>= 3.0) | libgcc1, python3:any (<< 3.12~), foo:amd64, bar"
        );
    }

    #[test]
    fn all_operators_and_spacing() {
        for (text, op) in [
            ("a0 (<< 1)", Op::Lt),
            ("a0 (<= 1)", Op::Le),
            ("a0 (= 1)", Op::Eq),
            ("a0 (>= 1)", Op::Ge),
            ("a0 (>> 1)", Op::Gt),
            ("a0(>>1)", Op::Gt),
            ("a0 (  >>\n 1 \n )", Op::Gt),
        ] {
            let d = parse_relations(text).unwrap();
            assert_eq!(
                d[0].alternatives[0].constraint.as_ref().unwrap().op,
                op,
                "{text}"
            );
            assert_eq!(op.as_str().parse::<Op>().unwrap(), op);
        }
        assert!(parse_relations("").unwrap().is_empty());
        assert!(parse_relations(" \n ").unwrap().is_empty());
        assert_eq!(parse_relations("a0, b0 ,").unwrap().len(), 2);
    }

    #[test]
    fn arch_lists_and_profiles() {
        let d = parse_relations(
            "gcc-12:native (>= 12) [amd64 arm64] <!nocheck> <cross pkg.foo.bar>, dh [!hurd-any !kfreebsd-any]",
        )
        .unwrap();
        let r = &d[0].alternatives[0];
        assert_eq!(r.arch_qualifier.as_deref(), Some("native"));
        assert_eq!(
            r.arches,
            [
                ArchRestriction {
                    negated: false,
                    arch: "amd64".into()
                },
                ArchRestriction {
                    negated: false,
                    arch: "arm64".into()
                }
            ]
        );
        assert_eq!(r.profiles.len(), 2);
        assert_eq!(
            r.profiles[0],
            [ProfileTerm {
                negated: true,
                name: "nocheck".into()
            }]
        );
        assert_eq!(r.profiles[1][1].name, "pkg.foo.bar");
        assert!(d[1].alternatives[0].arches.iter().all(|a| a.negated));
        assert_eq!(
            d[0].to_string(),
            "gcc-12:native (>= 12) [amd64 arm64] <!nocheck> <cross pkg.foo.bar>"
        );
    }

    #[test]
    fn satisfies_each_operator() {
        let (one, two) = (v("1.0"), v("2.0"));
        assert!(satisfies(&one, Op::Lt, &two));
        assert!(!satisfies(&two, Op::Lt, &two));
        assert!(satisfies(&two, Op::Le, &two));
        assert!(satisfies(&one, Op::Le, &two));
        assert!(!satisfies(&two, Op::Le, &one));
        assert!(satisfies(&v("1.00-0"), Op::Eq, &one));
        assert!(!satisfies(&two, Op::Eq, &one));
        assert!(satisfies(&two, Op::Ge, &two));
        assert!(satisfies(&two, Op::Ge, &one));
        assert!(!satisfies(&one, Op::Ge, &two));
        assert!(satisfies(&two, Op::Gt, &one));
        assert!(!satisfies(&two, Op::Gt, &two));
        assert!(!satisfies(&v("3.12~rc1"), Op::Lt, &v("3.12~")));
        assert!(satisfies(&v("3.11.2-6"), Op::Lt, &v("3.12~")));
        assert!(satisfies(&v("1:0.1"), Op::Gt, &v("9.9")));
        let r = &parse_relations("libc6 (>= 2.34)").unwrap()[0].alternatives[0];
        assert!(r.satisfied_by(&v("2.36-9+deb12u4")));
        assert!(!r.satisfied_by(&v("2.31-13")));
        let r = &parse_relations("libc6").unwrap()[0].alternatives[0];
        assert!(r.satisfied_by(&v("0")));
    }

    fn err(text: &str) -> String {
        parse_relations(text).unwrap_err().to_string()
    }

    #[test]
    fn errors_say_where_and_what() {
        let e = err("a0 (< 1)");
        assert!(e.contains("at byte 4 of `a0 (< 1)`"), "{e}");
        assert!(
            e.contains("expected a version operator, one of `<<` `<=` `=` `>=` `>>`, found `<`"),
            "{e}"
        );
        assert!(err("a0 (> 1)").contains("found `>`"));
        assert!(err("a0 (=> 1)").contains("found `=`"));
        let e = err("a0 (>= )");
        assert!(e.contains("expected a version, found `)`"), "{e}");
        let e = err("a0 (>= 1.0");
        assert!(
            e.contains("expected `)` after the version, found the end of the field"),
            "{e}"
        );
        let e = err("a0 (>= x1)");
        assert!(
            e.contains("expected a valid version (the upstream version must start with a digit"),
            "{e}"
        );
        let e = err("a0 b0");
        assert!(e.contains("at byte 3"), "{e}");
        assert!(
            e.contains("expected `,`, `|` or the end of the field, found `b` (in `b0`)"),
            "{e}"
        );
        assert!(err("a0,,b0").contains("expected a package name"));
        assert!(err("a0 | , b0").contains("at byte 5"));
        assert!(err("Foo").contains("expected a package name"));
        assert!(err("a").contains("at least two characters"));
        assert!(err("-ab").contains("expected a package name"));
        assert!(err("a_b").contains("found `_`"));
        assert!(err("a0:").contains("architecture qualifier"));
        assert!(err("a0 [amd64 !i386]").contains("all negated"));
        assert!(err("a0 []").contains("expected an architecture name, found `]`"));
        assert!(err("a0 [amd64").contains("expected an architecture name or `]`, found the end"));
        assert!(err("a0 <>").contains("expected a build profile name, found `>`"));
        assert!(err("a0 <!nocheck").contains("or `>`"));
        assert!(err("a0 (>= 1) (<< 2)").contains("found `(`"));
    }

    /// Every relationship field of the machine's dpkg database parses, and
    /// prints back to something that parses to the same thing.
    #[test]
    fn parses_every_relation_field_of_the_dpkg_status_file() {
        let path = "/var/lib/dpkg/status";
        let Ok(file) = std::fs::File::open(path) else {
            println!("note: {path} is absent; skipping");
            return;
        };
        let fields = [
            "Depends",
            "Pre-Depends",
            "Recommends",
            "Suggests",
            "Enhances",
            "Breaks",
            "Conflicts",
            "Replaces",
            "Provides",
        ];
        let (mut counted, mut depends) = (0, 0);
        for p in read_paragraphs(path, std::io::BufReader::new(file)) {
            let p = p.unwrap();
            for name in fields {
                let deps = p.relations(name).unwrap_or_else(|e| panic!("{e}"));
                if deps.is_empty() {
                    continue;
                }
                counted += deps.len();
                if name == "Depends" || name == "Pre-Depends" {
                    depends += 1;
                }
                let again = parse_relations(&format_relations(&deps)).unwrap();
                assert_eq!(again, deps, "{name} of {:?}", p.get("Package"));
            }
        }
        assert!(depends > 0, "{path} has no Depends/Pre-Depends field");
        println!("{path}: {depends} Depends/Pre-Depends fields, {counted} relations in all");
    }

    /// A few real fields, as found in the dpkg database of Debian systems.
    #[test]
    fn real_fields() {
        for text in [
            "libc6 (>= 2.34), libpcre2-8-0 (>= 10.22), libselinux1 (>= 3.1~)",
            "libc6 (>= 2.36), libssl3 (>= 3.0.0), debconf (>= 0.5) | debconf-2.0",
            "python3.11 (>= 3.11.2-1~), libpython3-stdlib (= 3.11.2-1+b1)",
            "perl-base (>= 5.36.0-7+deb12u1), init-system-helpers (>= 1.54~)",
            "dpkg (>= 1.19.1), libc6 (>= 2.34), libcrypt1 (>= 1:4.1.0), libpam0g (>= 0.99.7.1)",
            "gcc-12-base (= 12.2.0-14), libc6 (>= 2.14)",
            "libsqlite3-0 (>= 3.36.0), libssl3 (>= 3.0.0), mime-support | media-types (>= 1.1.0)",
        ] {
            let d = parse_relations(text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(format_relations(&d), text);
        }
    }
}
