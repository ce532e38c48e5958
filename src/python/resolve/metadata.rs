//! Core metadata (`METADATA`, PEP 566/643): the headers resolution needs.

use std::str::FromStr;

use pep440_rs::Version;
use pep508_rs::{Requirement, VerbatimUrl};

/// What resolution reads from one wheel's `METADATA`.
#[derive(Debug, Clone)]
pub(super) struct CoreMetadata {
    pub name: String,
    pub version: Version,
    /// `Requires-Python`, as written.
    pub requires_python: Option<String>,
    pub requires_dist: Vec<Requirement<VerbatimUrl>>,
}

/// Parse `METADATA`. An unparsable `Requires-Dist` is an error: resolving
/// without one of a package's requirements would be silently wrong.
pub(super) fn parse_core_metadata(text: &str) -> Result<CoreMetadata, String> {
    let headers = crate::python::core_metadata::headers(text)?;
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let name = get("Name").ok_or("it has no Name header")?;
    let version_text = get("Version").ok_or("it has no Version header")?;
    let version = Version::from_str(&version_text)
        .map_err(|e| format!("Version {version_text:?} is not PEP 440: {e}"))?;
    let requires_python = get("Requires-Python").filter(|v| !v.is_empty());
    let mut requires_dist = Vec::new();
    for (k, v) in &headers {
        if k.eq_ignore_ascii_case("Requires-Dist") {
            let req = crate::python::pep508::parse_requirement::<VerbatimUrl>(v)
                .map_err(|e| format!("Requires-Dist {v:?} is not PEP 508: {e}"))?;
            requires_dist.push(req);
        }
    }
    Ok(CoreMetadata {
        name,
        version,
        requires_python,
        requires_dist,
    })
}

/// Whether `Requires-Python` text admits `python`. Text that does not parse
/// admits it, as pip treats an invalid `Requires-Python`.
pub(super) fn requires_python_allows(spec: &str, python: &Version) -> bool {
    match crate::python::pep508::parse_specifiers(spec) {
        Ok(s) => s.contains(python),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_headers() {
        let m = parse_core_metadata(
            "Metadata-Version: 2.1\nName: Foo_Bar\nVersion: 1.0.post1\nRequires-Python: >=3.8\n\
             Requires-Dist: numpy (>=1.2)\nRequires-Dist: pywin32; sys_platform == \"win32\"\n\
             Requires-Dist: pytest ; extra == 'Test_Suite'\nProvides-Extra: test-suite\n\n\
             Requires-Dist: not a header, this is the description\n",
        )
        .unwrap();
        assert_eq!(m.name, "Foo_Bar");
        assert_eq!(m.version.to_string(), "1.0.post1");
        assert_eq!(m.requires_python.as_deref(), Some(">=3.8"));
        assert_eq!(m.requires_dist.len(), 3);
        assert_eq!(m.requires_dist[0].name.as_ref(), "numpy");
        assert!(parse_core_metadata("Name: x\n").is_err());
        assert!(parse_core_metadata("Name: x\nVersion: 1\nRequires-Dist: !!\n").is_err());
    }

    #[test]
    fn requires_python() {
        let py = Version::from_str("3.11.0").unwrap();
        assert!(requires_python_allows(">=3.8", &py));
        assert!(!requires_python_allows(">=3.12", &py));
        assert!(requires_python_allows(">=2.7, !=3.0.*, !=3.1.*", &py));
        assert!(requires_python_allows("this is not a specifier", &py));
    }
}
