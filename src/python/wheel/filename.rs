//! Wheel file names (`{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`)
//! and PEP 503 name normalization.

use super::WheelError;

/// The parts of a wheel's file name, as spelled in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelFilename {
    /// Distribution name, escaped as in the file name (`foo_bar`).
    pub name: String,
    pub version: String,
    /// Optional build tag; it starts with a digit.
    pub build: Option<String>,
    /// Python tag(s), e.g. `py3` or `cp311` (compressed sets like `py2.py3` kept as is).
    pub python: String,
    pub abi: String,
    pub platform: String,
}

impl WheelFilename {
    /// Parse a wheel file name (no directory part).
    pub fn parse(filename: &str) -> Result<Self, WheelError> {
        let err = |reason: &str| WheelError::Filename {
            wheel: filename.to_owned(),
            reason: reason.to_owned(),
        };
        let stem = filename
            .strip_suffix(".whl")
            .ok_or_else(|| err("it does not end in .whl"))?;
        let parts: Vec<&str> = stem.split('-').collect();
        let (name, version, build, python, abi, platform) = match parts.as_slice() {
            [n, v, p, a, pl] => (*n, *v, None, *p, *a, *pl),
            [n, v, b, p, a, pl] => (*n, *v, Some(*b), *p, *a, *pl),
            _ => {
                return Err(err(&format!(
                    "it has {} dash-separated parts, expected 5 or 6",
                    parts.len()
                )))
            }
        };
        if parts.iter().any(|p| p.is_empty()) {
            return Err(err("one of its parts is empty"));
        }
        if let Some(b) = build {
            if !b.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(err(&format!("build tag {b:?} does not start with a digit")));
            }
        }
        if filename.contains(['/', '\\', '\0']) {
            return Err(err("it contains a path separator or NUL"));
        }
        Ok(WheelFilename {
            name: name.to_owned(),
            version: version.to_owned(),
            build: build.map(str::to_owned),
            python: python.to_owned(),
            abi: abi.to_owned(),
            platform: platform.to_owned(),
        })
    }
}

/// PEP 503 normalization: lower case, every run of `-`, `_` and `.` becomes one `-`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_run {
                out.push('-');
            }
            in_run = true;
        } else {
            out.extend(c.to_lowercase());
            in_run = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        let w = WheelFilename::parse("torch-2.1.0+cu121-cp311-cp311-linux_x86_64.whl").unwrap();
        assert_eq!(w.name, "torch");
        assert_eq!(w.version, "2.1.0+cu121");
        assert_eq!(w.build, None);
        assert_eq!(w.python, "cp311");
        assert_eq!(w.platform, "linux_x86_64");
        let w = WheelFilename::parse("foo_bar-1.0-1local-py2.py3-none-any.whl").unwrap();
        assert_eq!(w.build.as_deref(), Some("1local"));
        assert_eq!(w.python, "py2.py3");
        for bad in [
            "foo-1.0-py3-none-any.zip",
            "foo-1.0-py3-any.whl",
            "foo-1.0-x-py3-none-any.whl",
            "foo--py3-none-any.whl",
            "a-b-c-d-e-f-g.whl",
        ] {
            let e = WheelFilename::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn normalizes_names() {
        assert_eq!(normalize_name("Foo__Bar.-baz"), "foo-bar-baz");
        assert_eq!(normalize_name("zope.interface"), "zope-interface");
        assert_eq!(normalize_name("PyYAML"), "pyyaml");
    }
}
