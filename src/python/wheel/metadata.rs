//! The `.dist-info/WHEEL` file (RFC 822 headers) and `entry_points.txt`
//! (INI sections read the way `importlib.metadata` reads them).

use crate::python::core_metadata::header;

/// What `WHEEL` says that installing depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelInfo {
    /// `Wheel-Version` as written (trimmed).
    pub version: String,
    pub major: u32,
    /// `Root-Is-Purelib: true` (case-insensitive); anything else, or no
    /// header, means platlib, as pip decides.
    pub root_is_purelib: bool,
}

/// Parse `WHEEL`. The caller checks `major`.
pub fn parse_wheel_info(text: &str) -> Result<WheelInfo, String> {
    let headers = crate::python::core_metadata::headers(text)?;
    let version = header(&headers, "Wheel-Version")
        .ok_or("it has no Wheel-Version header")?
        .to_owned();
    let numbers: Option<Vec<u32>> = version.split('.').map(|p| p.parse().ok()).collect();
    let major = match numbers.as_deref() {
        Some([major, ..]) => *major,
        _ => return Err(format!("Wheel-Version {version:?} is not dotted numbers")),
    };
    let root_is_purelib =
        header(&headers, "Root-Is-Purelib").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    Ok(WheelInfo {
        version,
        major,
        root_is_purelib,
    })
}

/// A console or GUI script entry point: `name = module:attr.path [extras]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptEntry {
    /// `console_scripts` or `gui_scripts`.
    pub group: &'static str,
    pub name: String,
    /// The value as written, for error messages.
    pub value: String,
    pub module: String,
    pub attr: String,
}

/// An entry point that cannot become a launcher: (group, name, value, reason).
pub type EntryError = (&'static str, String, String, &'static str);

/// The `[console_scripts]` and `[gui_scripts]` entries of `entry_points.txt`,
/// in file order. Other sections are not interpreted.
pub fn parse_script_entries(text: &str) -> Result<Vec<ScriptEntry>, EntryError> {
    let mut entries = Vec::new();
    let mut group: Option<&'static str> = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            group = match line.trim_matches(['[', ']']).trim() {
                "console_scripts" => Some("console_scripts"),
                "gui_scripts" => Some("gui_scripts"),
                _ => None,
            };
            continue;
        }
        let Some(group) = group else { continue };
        let Some((name, value)) = line.split_once('=') else {
            return Err((group, line.to_owned(), String::new(), "the line has no `=`"));
        };
        let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
        let fail = |reason| Err((group, name.clone(), value.clone(), reason));
        if name.is_empty()
            || name.contains(['/', '\\', '\0'])
            || name == "."
            || name == ".."
            || name.starts_with('[')
        {
            return fail(
                "the script name must be a plain file name (no `/`, `\\`, NUL, `.` or `..`)",
            );
        }
        // Extras in brackets are allowed and mean nothing to a launcher.
        let callable = match value.find('[') {
            Some(i) if value.ends_with(']') => value[..i].trim(),
            Some(_) => return fail("text after the extras in brackets"),
            None => value.as_str(),
        };
        let Some((module, attr)) = callable.split_once(':') else {
            return fail("a script entry point needs a callable: `module:function`");
        };
        let (module, attr) = (module.trim(), attr.trim());
        if !is_dotted_identifier(module) || !is_dotted_identifier(attr) {
            return fail("module and attribute must be dotted Python identifiers");
        }
        entries.push(ScriptEntry {
            group,
            module: module.to_owned(),
            attr: attr.to_owned(),
            name,
            value,
        });
    }
    Ok(entries)
}

/// `a.b.c` where each part is an identifier (`[^\W\d]\w*`, Unicode).
fn is_dotted_identifier(s: &str) -> bool {
    s.split('.').all(|part| {
        let mut chars = part.chars();
        chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
            && chars.all(|c| c == '_' || c.is_alphanumeric())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_file() {
        let w = parse_wheel_info(
            "Wheel-Version: 1.0\nGenerator: bdist_wheel (0.41)\nRoot-Is-Purelib: True\nTag: py3-none-any\n\nbody: x\n",
        )
        .unwrap();
        assert_eq!((w.major, w.root_is_purelib), (1, true));
        assert_eq!(w.version, "1.0");
        let w = parse_wheel_info("wheel-version: 2.1\n").unwrap();
        assert_eq!((w.major, w.root_is_purelib), (2, false));
        assert!(parse_wheel_info("Generator: x\n").is_err());
        assert!(parse_wheel_info("Wheel-Version: one\n").is_err());
        assert!(parse_wheel_info("garbage\n").is_err());
    }

    #[test]
    fn entry_points() {
        let text = "[console_scripts]\nfoo = pkg.cli:main\n# c\nbar=pkg:obj.run [extra]\n\n[gui_scripts]\ng = pkg.gui : start\n[other]\nx = not valid at all\n";
        let e = parse_script_entries(text).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!((e[0].group, e[0].name.as_str()), ("console_scripts", "foo"));
        assert_eq!(
            (e[0].module.as_str(), e[0].attr.as_str()),
            ("pkg.cli", "main")
        );
        assert_eq!(
            (e[1].module.as_str(), e[1].attr.as_str()),
            ("pkg", "obj.run")
        );
        assert_eq!((e[2].group, e[2].attr.as_str()), ("gui_scripts", "start"));

        let err = parse_script_entries("[console_scripts]\nfoo = pkg.cli\n").unwrap_err();
        assert_eq!((err.1.as_str(), err.2.as_str()), ("foo", "pkg.cli"));
        assert!(parse_script_entries("[console_scripts]\na/b = m:f\n").is_err());
        assert!(parse_script_entries("[console_scripts]\nx = m:f; import os\n").is_err());
        assert!(parse_script_entries("[console_scripts]\nx = m:f()\n").is_err());
        assert!(parse_script_entries("[console_scripts]\nx = 1m:f\n").is_err());
    }
}
