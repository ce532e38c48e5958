//! deb822 control data: the format of `Packages` indices, `Release` /
//! `InRelease` bodies (after the signature has been checked and removed),
//! `/var/lib/dpkg/status` and the `control` file inside a .deb.
//!
//! Grammar implemented (Debian Policy 5.1 and deb822(5)):
//!
//! - The input is UTF-8 text made of lines ending in `\n` (a `\r` before it
//!   is dropped; the last line may lack the `\n`). Any other `\r` is an
//!   error.
//! - A *paragraph* is a run of field lines. Paragraphs are separated by one
//!   or more *blank lines*: lines that are empty or hold only spaces and tabs.
//!   Blank lines before the first and after the last paragraph are ignored.
//! - A *comment* is a line whose first character is `#`; it is skipped
//!   wherever it stands and does not end a paragraph or a field.
//! - A *field line* is `Name:value`. The name is one or more printable
//!   US-ASCII characters (`!` to `~`) other than `:`, and must not begin
//!   with `#` or `-`. The value is the rest of the line with leading and
//!   trailing spaces and tabs removed; it may be empty.
//! - A *continuation line* begins with a space or a tab and continues the
//!   value of the field above it. The value then holds `\n` followed by the
//!   continuation line with its trailing whitespace removed and its leading
//!   whitespace kept (so `Description`'s ` .` lines survive as they are, and
//!   a folded `Depends` parses with the relation parser, which treats
//!   newlines as whitespace). A continuation line with no field above it is
//!   an error.
//! - Field names compare case-insensitively (`package` finds `Package`);
//!   the spelling and order of the input are kept. The same name twice in
//!   one paragraph is an error, as in dpkg.
//!
//! Every error names the input's label, the 1-based line, what was expected
//! and what was found. A clearsigned `InRelease` fed in whole therefore fails
//! on its first line: strip and verify the signature first.

use std::fmt;
use std::io::BufRead;
use std::sync::Arc;

use super::error::{Error, Result};
use super::relation::{parse_relations, Dependency};
use super::version::Version;

/// One `Name: value` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    name: String,
    value: String,
    line: usize,
}

impl Field {
    /// The name as spelled in the input.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value: the first line trimmed, then `\n` + each continuation line
    /// (leading whitespace kept, trailing whitespace removed).
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The 1-based line of the input where the field starts.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The value's lines, each trimmed of surrounding whitespace, leaving
    /// out an empty first line (as in `Release`'s `SHA256:` lists, whose
    /// entries are all on continuation lines).
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        let mut lines = self.value.split('\n').map(|l| l.trim_matches([' ', '\t']));
        let first = lines.next().filter(|l| !l.is_empty());
        first.into_iter().chain(lines)
    }
}

/// A paragraph: fields in input order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paragraph {
    label: Arc<str>,
    line: usize,
    fields: Vec<Field>,
}

impl Paragraph {
    /// The label of the input this paragraph came from.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The 1-based line of the input where the paragraph starts.
    pub fn line(&self) -> usize {
        self.line
    }

    /// All fields, in input order.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether the paragraph has no field (never true for a parsed one).
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The field called `name`, compared case-insensitively.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// The value of the field called `name`, compared case-insensitively.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.field(name).map(|f| f.value.as_str())
    }

    /// The value of a field that must be there.
    pub fn require(&self, name: &str) -> Result<&str> {
        self.get(name).ok_or_else(|| Error::Syntax {
            label: self.label.to_string(),
            line: self.line,
            expected: format!("a `{name}` field in the paragraph starting here"),
            found: "a paragraph without it".to_string(),
        })
    }

    /// The field `name` parsed as a Debian version, if present.
    pub fn version(&self, name: &str) -> Result<Option<Version>> {
        self.field(name)
            .map(|f| Version::parse(&f.value).map_err(|e| self.field_error(f, e)))
            .transpose()
    }

    /// The field `name` parsed as a relationship field (Depends,
    /// Pre-Depends, Provides, ...); an absent field is an empty list.
    pub fn relations(&self, name: &str) -> Result<Vec<Dependency>> {
        match self.field(name) {
            None => Ok(Vec::new()),
            Some(f) => parse_relations(&f.value).map_err(|e| self.field_error(f, e)),
        }
    }

    /// Appends a field (for writing control data, such as a dpkg status
    /// database). Fails on a name that the parser would refuse or that the
    /// paragraph already has, and on a value with a blank continuation line.
    pub fn push(&mut self, name: &str, value: &str) -> Result<()> {
        let err = |expected: &str, found: String| Error::Syntax {
            label: self.label.to_string(),
            line: self.line,
            expected: expected.to_string(),
            found,
        };
        check_name(name).map_err(|e| err(e, format!("field name `{name}`")))?;
        if let Some(first) = self.field(name) {
            return Err(Error::DuplicateField {
                label: self.label.to_string(),
                line: self.line,
                field: name.to_string(),
                first_line: first.line,
            });
        }
        for (i, l) in value.split('\n').enumerate() {
            if i > 0 && (l.trim_matches([' ', '\t']).is_empty() || !l.starts_with([' ', '\t'])) {
                return Err(err(
                    "continuation lines that start with a space or tab and are not blank",
                    format!("`{l}` in the value of `{name}`"),
                ));
            }
        }
        self.fields.push(Field {
            name: name.to_string(),
            value: value.to_string(),
            line: self.line,
        });
        Ok(())
    }

    /// An empty paragraph to fill with [`Paragraph::push`].
    pub fn new(label: &str) -> Paragraph {
        Paragraph {
            label: Arc::from(label),
            line: 0,
            fields: Vec::new(),
        }
    }

    fn field_error(&self, f: &Field, e: Error) -> Error {
        Error::Field {
            label: self.label.to_string(),
            line: f.line,
            field: f.name.clone(),
            source: Box::new(e),
        }
    }
}

/// Writes the paragraph back as deb822 text (one `Name: value` line per
/// field, continuation lines as kept), without a trailing blank line.
impl fmt::Display for Paragraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for field in &self.fields {
            if field.value.is_empty() || field.value.starts_with('\n') {
                writeln!(f, "{}:{}", field.name, field.value)?;
            } else {
                writeln!(f, "{}: {}", field.name, field.value)?;
            }
        }
        Ok(())
    }
}

/// Parses every paragraph of `text`. `label` names the input in errors.
pub fn parse(label: &str, text: &str) -> Result<Vec<Paragraph>> {
    read_paragraphs(label, text.as_bytes()).collect()
}

/// Parses text that must hold exactly one paragraph (a .deb's `control`
/// file, a `Release` body).
pub fn parse_one(label: &str, text: &str) -> Result<Paragraph> {
    let mut it = read_paragraphs(label, text.as_bytes());
    let first = it.next().transpose()?.ok_or_else(|| Error::Syntax {
        label: label.to_string(),
        line: text.lines().count().max(1),
        expected: "one paragraph".to_string(),
        found: "no field at all".to_string(),
    })?;
    if let Some(second) = it.next().transpose()? {
        return Err(Error::Syntax {
            label: label.to_string(),
            line: second.line,
            expected: "a single paragraph".to_string(),
            found: "a second paragraph".to_string(),
        });
    }
    Ok(first)
}

/// Streams paragraphs from a reader (for large `Packages` indices read
/// through a decompressor): memory holds one paragraph at a time.
pub fn read_paragraphs<R: BufRead>(label: &str, reader: R) -> Paragraphs<R> {
    Paragraphs {
        label: Arc::from(label),
        reader,
        buf: Vec::new(),
        line: 0,
        current: None,
        done: false,
    }
}

/// Iterator returned by [`read_paragraphs`].
pub struct Paragraphs<R> {
    label: Arc<str>,
    reader: R,
    buf: Vec<u8>,
    line: usize,
    current: Option<Paragraph>,
    done: bool,
}

impl<R: BufRead> Paragraphs<R> {
    fn syntax(&self, expected: &str, found: String) -> Error {
        Error::Syntax {
            label: self.label.to_string(),
            line: self.line,
            expected: expected.to_string(),
            found,
        }
    }

    /// Feeds one line; returns a paragraph when this line ends one.
    fn line(&mut self, line: &str) -> Result<Option<Paragraph>> {
        if line.trim_matches([' ', '\t']).is_empty() {
            return Ok(self.current.take());
        }
        if line.starts_with('#') {
            return Ok(None);
        }
        if line.starts_with([' ', '\t']) {
            let Some(field) = self.current.as_mut().and_then(|p| p.fields.last_mut()) else {
                return Err(self.syntax(
                    "a field (`Name: value`)",
                    format!("continuation line `{}`", shorten(line)),
                ));
            };
            field.value.push('\n');
            field.value.push_str(line.trim_end_matches([' ', '\t']));
            return Ok(None);
        }
        if line.starts_with("-----BEGIN PGP") {
            return Err(self.syntax(
                "a field (`Name: value`)",
                format!("`{}`: strip and verify the signature first", shorten(line)),
            ));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(self.syntax(
                "a field (`Name: value`), a continuation line or a blank line",
                format!("`{}` (no colon)", shorten(line)),
            ));
        };
        if let Err(expected) = check_name(name) {
            return Err(self.syntax(expected, format!("field name `{}`", shorten(name))));
        }
        let line_no = self.line;
        let label = self.label.clone();
        let paragraph = self.current.get_or_insert_with(|| Paragraph {
            label,
            line: line_no,
            fields: Vec::new(),
        });
        if let Some(first) = paragraph
            .fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
        {
            return Err(Error::DuplicateField {
                label: self.label.to_string(),
                line: line_no,
                field: name.to_string(),
                first_line: first.line,
            });
        }
        paragraph.fields.push(Field {
            name: name.to_string(),
            value: value.trim_matches([' ', '\t']).to_string(),
            line: line_no,
        });
        Ok(None)
    }
}

impl<R: BufRead> Iterator for Paragraphs<R> {
    type Item = Result<Paragraph>;

    fn next(&mut self) -> Option<Result<Paragraph>> {
        if self.done {
            return None;
        }
        loop {
            self.buf.clear();
            let n = match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(n) => n,
                Err(source) => {
                    self.done = true;
                    return Some(Err(Error::Read {
                        label: self.label.to_string(),
                        source,
                    }));
                }
            };
            if n == 0 {
                self.done = true;
                return self.current.take().map(Ok);
            }
            self.line += 1;
            let mut bytes = std::mem::take(&mut self.buf);
            if bytes.last() == Some(&b'\n') {
                bytes.pop();
            }
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
            let result = match std::str::from_utf8(&bytes) {
                // A carriage return is only part of a line ending: one
                // inside a line would not survive being written back.
                Ok(line) if line.contains('\r') => Err(self.syntax(
                    "a line without a carriage return inside it",
                    format!(
                        "a carriage return at column {}",
                        line.find('\r').unwrap_or(0) + 1
                    ),
                )),
                Ok(line) => self.line(line),
                Err(e) => Err(self.syntax(
                    "UTF-8 text",
                    format!("an invalid byte at column {}", e.valid_up_to() + 1),
                )),
            };
            self.buf = bytes;
            match result {
                Ok(None) => continue,
                Ok(Some(p)) => return Some(Ok(p)),
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Checks a field name; on failure returns what was expected.
fn check_name(name: &str) -> std::result::Result<(), &'static str> {
    const EXPECTED: &str =
        "a field name of printable ASCII without spaces or colons, not starting with `-` or `#`";
    if name.is_empty()
        || name.starts_with(['-', '#'])
        || !name
            .bytes()
            .all(|b| (b'!'..=b'~').contains(&b) && b != b':')
    {
        return Err(EXPECTED);
    }
    Ok(())
}

fn shorten(s: &str) -> String {
    const MAX: usize = 60;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_carriage_return_inside_a_line_is_refused_so_written_paragraphs_parse_back_the_same() {
        // Found by the deb822_control fuzz target: "\r\r" at the end of the
        // input lost one "\r" as a line ending, and written back the other.
        for text in ["Paize:\0\0\r\r", "A: x\ry\n", "A: 1\n b\r\r\n"] {
            let e = parse("Packages", text).unwrap_err().to_string();
            assert!(e.contains("carriage return"), "{text:?}: {e}");
        }
        let ok = parse("Packages", "A: 1\r\nB: 2\r\n").unwrap();
        assert_eq!(ok[0].get("B"), Some("2"));
    }

    #[test]
    fn fields_order_case_and_continuations() {
        let text = "\n\nPackage: hello\nversion:  2.10-3 \nDescription: greet\n the world\n .\n more\t \nDepends: libc6 (>= 2.34),\n\tfoo | bar\n";
        let p = parse_one("t", text).unwrap();
        assert_eq!(p.line(), 3);
        let names: Vec<_> = p.fields().iter().map(Field::name).collect();
        assert_eq!(names, ["Package", "version", "Description", "Depends"]);
        assert_eq!(p.get("VERSION"), Some("2.10-3"));
        assert_eq!(p.get("description"), Some("greet\n the world\n .\n more"));
        assert_eq!(p.field("Depends").unwrap().line(), 9);
        let lines: Vec<_> = p.field("Description").unwrap().lines().collect();
        assert_eq!(lines, ["greet", "the world", ".", "more"]);
        assert_eq!(p.relations("Depends").unwrap().len(), 2);
        assert_eq!(p.version("Version").unwrap().unwrap().to_string(), "2.10-3");
        assert_eq!(p.get("Missing"), None);
        assert!(p.relations("Pre-Depends").unwrap().is_empty());
    }

    #[test]
    fn paragraphs_comments_and_blank_lines() {
        let text = "# leading comment\nA: 1\n# inside\nB:\n x\n \t \n\n\nA: 2\r\nC: 3\r\n\n  \n";
        let ps = parse("t", text).unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].get("a"), Some("1"));
        assert_eq!(ps[0].get("b"), Some("\n x"));
        assert_eq!(ps[0].field("B").unwrap().lines().collect::<Vec<_>>(), ["x"]);
        assert_eq!(ps[1].get("A"), Some("2"));
        assert_eq!(ps[1].get("C"), Some("3"));
        assert_eq!(ps[1].line(), 9);
        assert!(parse("t", "").unwrap().is_empty());
        assert!(parse("t", "\n \n# only a comment\n").unwrap().is_empty());
        // No final newline.
        assert_eq!(parse("t", "A: b").unwrap()[0].get("A"), Some("b"));
    }

    #[test]
    fn release_hash_lists() {
        let text = "Origin: Debian\nSHA256:\n 0123 45 main/binary-amd64/Packages\n 4567 89 main/binary-amd64/Packages.xz\n";
        let p = parse_one("Release", text).unwrap();
        let lines: Vec<_> = p.field("sha256").unwrap().lines().collect();
        assert_eq!(
            lines,
            [
                "0123 45 main/binary-amd64/Packages",
                "4567 89 main/binary-amd64/Packages.xz"
            ]
        );
    }

    #[test]
    fn round_trip_display() {
        let text = "Package: a\nDescription: s\n long\n .\nSHA256:\n 00 1 x\nEmpty:\n";
        let p = parse_one("t", text).unwrap();
        assert_eq!(p.to_string(), text);
        assert_eq!(
            parse_one("again", &p.to_string()).unwrap().fields(),
            p.fields()
        );
    }

    #[test]
    fn push_builds_paragraphs() {
        let mut p = Paragraph::new("status");
        p.push("Package", "a").unwrap();
        p.push("Description", "x\n more").unwrap();
        assert!(p.push("package", "b").is_err());
        assert!(p.push("Bad Name", "b").is_err());
        assert!(p.push("X", "a\n\nb").is_err());
        assert!(p.push("X", "a\nb").is_err());
        assert_eq!(p.to_string(), "Package: a\nDescription: x\n more\n");
    }

    fn err(text: &str) -> String {
        parse("input.txt", text).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_label_line_expected_found() {
        let e = err("A: 1\nnot a field\n");
        assert!(e.starts_with("input.txt:2: expected a field"), "{e}");
        assert!(e.contains("found `not a field` (no colon)"), "{e}");

        let e = err(" continued\n");
        assert!(e.starts_with("input.txt:1: expected a field"), "{e}");
        assert!(e.contains("continuation line"), "{e}");

        let e = err("A: 1\n\n continued\n");
        assert!(e.starts_with("input.txt:3:"), "{e}");

        let e = err("A: 1\nB: 2\na: 3\n");
        assert_eq!(
            e,
            "input.txt:3: duplicate field `a` (first given at line 1)"
        );

        let e = err("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n");
        assert!(e.starts_with("input.txt:1: expected a field"), "{e}");
        assert!(e.contains("strip and verify the signature first"), "{e}");
        let e = err("-Name: x\n");
        assert!(e.starts_with("input.txt:1: expected a field name"), "{e}");

        let e = err("Bad Name: x\n");
        assert!(e.contains("found field name `Bad Name`"), "{e}");

        let e = err(": x\n");
        assert!(e.contains("found field name ``"), "{e}");

        let e = read_paragraphs("bin", &b"A: 1\nB: \xff\n"[..])
            .collect::<Result<Vec<_>>>()
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "bin:2: expected UTF-8 text, found an invalid byte at column 4"
        );

        let e = parse_one("one", "A: 1\n\nB: 2\n").unwrap_err().to_string();
        assert_eq!(
            e,
            "one:3: expected a single paragraph, found a second paragraph"
        );
        let e = parse_one("one", "\n").unwrap_err().to_string();
        assert_eq!(e, "one:1: expected one paragraph, found no field at all");

        let p = parse_one("c", "A: 1\nDepends: a (>> )\n").unwrap();
        let e = p.relations("depends").unwrap_err().to_string();
        assert!(
            e.starts_with("c:2: field `Depends`: invalid relationship"),
            "{e}"
        );
        let e = p.require("Package").unwrap_err().to_string();
        assert_eq!(
            e,
            "c:1: expected a `Package` field in the paragraph starting here, found a paragraph without it"
        );
    }

    #[test]
    fn parses_the_dpkg_status_file() {
        let path = "/var/lib/dpkg/status";
        let Ok(file) = std::fs::File::open(path) else {
            println!("note: {path} is absent; skipping");
            return;
        };
        let mut n = 0;
        for p in read_paragraphs(path, std::io::BufReader::new(file)) {
            let p = p.unwrap();
            p.require("Package").unwrap();
            if let Some(v) = p.get("Version") {
                Version::parse(v).unwrap();
            }
            n += 1;
        }
        assert!(n > 0, "{path} holds no paragraph");
    }
}
