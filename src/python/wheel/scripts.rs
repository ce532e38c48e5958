//! Scripts: the `#!python` shebang rewrite for `.data/scripts/` members and
//! the launchers generated for console and GUI entry points.

use std::io::{self, BufRead, Read, Write};

/// Longest first line looked at for `#!python`; a longer one starting with it
/// is refused rather than buffered.
const MAX_SHEBANG_LINE: u64 = 64 * 1024;

/// Why an interpreter path cannot go after `#!`, or `None`. The kernel
/// limits the line (historically 127 bytes) and splits it at whitespace.
pub(super) fn interpreter_problem(interpreter: &str) -> Option<&'static str> {
    if !interpreter.starts_with('/') {
        Some("the interpreter must be an absolute path in the image")
    } else if interpreter.chars().any(char::is_whitespace) || interpreter.contains('\0') {
        Some("a shebang interpreter path cannot contain whitespace or NUL")
    } else if interpreter.len() + 3 > 127 {
        Some("`#!` + the interpreter path + newline must fit in 127 bytes")
    } else {
        None
    }
}

/// The launcher pip / installer / uv write for `module:attr`; an attribute
/// path `a.b` imports `a` and calls `a.b()`.
pub(super) fn launcher(interpreter: &str, module: &str, attr: &str) -> String {
    let import_name = attr.split('.').next().unwrap_or(attr);
    format!(
        "#!{interpreter}\n\
         # -*- coding: utf-8 -*-\n\
         import re\n\
         import sys\n\
         from {module} import {import_name}\n\
         if __name__ == \"__main__\":\n\
         \x20   sys.argv[0] = re.sub(r\"(-script\\.pyw|\\.exe)?$\", \"\", sys.argv[0])\n\
         \x20   sys.exit({attr}())\n"
    )
}

/// How [`copy_script`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Copied {
    Done,
    /// The first line starts with `#!python` but is too long to look at.
    ShebangTooLong,
}

/// Copy a script, replacing a first line that starts with `#!python`
/// (`#!python`, `#!pythonw`, `#!python3 -u`, ...) by `#!<interpreter>\n`, as
/// pip does.
pub(super) fn copy_script(
    src: &mut impl BufRead,
    dst: &mut impl Write,
    interpreter: &str,
    buf: &mut [u8],
) -> io::Result<Copied> {
    let mut first = Vec::new();
    Read::take(&mut *src, MAX_SHEBANG_LINE).read_until(b'\n', &mut first)?;
    if first.starts_with(b"#!python") {
        if !first.ends_with(b"\n") && first.len() as u64 == MAX_SHEBANG_LINE {
            return Ok(Copied::ShebangTooLong);
        }
        dst.write_all(format!("#!{interpreter}\n").as_bytes())?;
    } else {
        dst.write_all(&first)?;
    }
    loop {
        let n = src.read(buf)?;
        if n == 0 {
            return Ok(Copied::Done);
        }
        dst.write_all(&buf[..n])?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fix(input: &[u8]) -> (Vec<u8>, Copied) {
        let mut out = Vec::new();
        let mut buf = [0u8; 7];
        let r = copy_script(&mut &input[..], &mut out, "/usr/bin/python3", &mut buf).unwrap();
        (out, r)
    }

    #[test]
    fn shebangs() {
        assert_eq!(
            fix(b"#!python\nprint(1)\n"),
            (b"#!/usr/bin/python3\nprint(1)\n".to_vec(), Copied::Done)
        );
        assert_eq!(
            fix(b"#!pythonw -E\r\nx"),
            (b"#!/usr/bin/python3\nx".to_vec(), Copied::Done)
        );
        assert_eq!(
            fix(b"#!python"),
            (b"#!/usr/bin/python3\n".to_vec(), Copied::Done)
        );
        assert_eq!(
            fix(b"#!/bin/sh\necho\n"),
            (b"#!/bin/sh\necho\n".to_vec(), Copied::Done)
        );
        assert_eq!(fix(b""), (Vec::new(), Copied::Done));
        let mut long = b"#!python".to_vec();
        long.resize(MAX_SHEBANG_LINE as usize + 10, b'x');
        assert_eq!(fix(&long).1, Copied::ShebangTooLong);
    }

    #[test]
    fn launcher_text() {
        assert_eq!(
            launcher("/usr/local/bin/python3", "mod.sub", "func"),
            "#!/usr/local/bin/python3\n# -*- coding: utf-8 -*-\nimport re\nimport sys\nfrom mod.sub import func\nif __name__ == \"__main__\":\n    sys.argv[0] = re.sub(r\"(-script\\.pyw|\\.exe)?$\", \"\", sys.argv[0])\n    sys.exit(func())\n"
        );
        assert!(launcher("/p", "m", "obj.run").contains("from m import obj\n"));
        assert!(launcher("/p", "m", "obj.run").contains("sys.exit(obj.run())\n"));
        assert!(interpreter_problem("/usr/local/bin/python3").is_none());
        assert!(interpreter_problem("python3").is_some());
        assert!(interpreter_problem("/a b/python").is_some());
        assert!(interpreter_problem(&format!("/{}", "x".repeat(130))).is_some());
    }
}
