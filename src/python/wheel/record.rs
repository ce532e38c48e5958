//! RECORD files: CSV rows `path,sha256=<urlsafe-base64-nopad>,size`, read as
//! Python's `csv` module reads them and written the way `installer` writes
//! them (minimal quoting, `\n` line ends).

use std::fmt;

use base64::engine::general_purpose::{URL_SAFE_NO_PAD, URL_SAFE_NO_PAD_INDIFFERENT};
use base64::Engine as _;

/// A file's sha256 and size, as RECORD lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileDigest {
    pub sha256: [u8; 32],
    pub size: u64,
}

impl FileDigest {
    /// The RECORD hash field, `sha256=<urlsafe base64 without padding>`.
    pub fn hash_field(&self) -> String {
        format!("sha256={}", URL_SAFE_NO_PAD.encode(self.sha256))
    }
}

impl fmt::Display for FileDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} bytes)", self.hash_field(), self.size)
    }
}

/// What a RECORD row says about a file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowDigest {
    /// Hash and size both empty (RECORD's own row, or files not shipped).
    Empty,
    Valid(FileDigest),
    /// Something else: another algorithm, a bad encoding, a missing size.
    Invalid,
}

/// One row of a wheel's RECORD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRow {
    pub path: String,
    pub digest: RowDigest,
    /// The hash and size fields as written, for error messages.
    pub raw: String,
}

/// Parse a RECORD. Whether an empty or invalid digest matters depends on the
/// row, so it is the caller's to report; a malformed line is an error
/// (line number and reason).
pub fn parse_record(text: &str) -> Result<Vec<RecordRow>, String> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let fields = parse_csv_line(line).map_err(|e| format!("line {lineno}: {e}"))?;
        let field = |n: usize| fields.get(n).map(String::as_str).unwrap_or("");
        let path = field(0).to_owned();
        if path.is_empty() {
            return Err(format!("line {lineno}: the path field is empty"));
        }
        if fields.len() > 3 {
            return Err(format!(
                "line {lineno}: {} fields (expected path,hash,size)",
                fields.len()
            ));
        }
        let (hash, size) = (field(1), field(2));
        let digest = if hash.is_empty() && size.is_empty() {
            RowDigest::Empty
        } else {
            let size = size
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| size.parse::<u64>().ok())
                .flatten();
            match (parse_hash(hash), size) {
                (Some(sha256), Some(size)) => RowDigest::Valid(FileDigest { sha256, size }),
                _ => RowDigest::Invalid,
            }
        };
        let raw = match digest {
            RowDigest::Valid(d) => d.to_string(),
            _ => format!("hash {hash:?} and size {:?}", field(2)),
        };
        rows.push(RecordRow { path, digest, raw });
    }
    Ok(rows)
}

/// `sha256=<urlsafe base64>` (padding tolerated) to the 32 digest bytes.
fn parse_hash(field: &str) -> Option<[u8; 32]> {
    let value = field.strip_prefix("sha256=")?;
    let bytes = URL_SAFE_NO_PAD_INDIFFERENT.decode(value).ok()?;
    bytes.try_into().ok()
}

/// One line in Python's default (excel) CSV dialect.
fn parse_csv_line(line: &str) -> Result<Vec<String>, &'static str> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("unterminated quoted field"),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(_) => return Err("text after a closing quote"),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

fn csv_field(out: &mut String, field: &str) {
    if field.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

/// Serialize rows `(path, digest)` (already sorted by the caller).
pub fn write_record<'a>(rows: impl IntoIterator<Item = (&'a str, Option<FileDigest>)>) -> String {
    let mut out = String::new();
    for (path, digest) in rows {
        csv_field(&mut out, path);
        out.push(',');
        if let Some(d) = digest {
            out.push_str(&d.hash_field());
            out.push(',');
            out.push_str(&d.size.to_string());
        } else {
            out.push(',');
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip() {
        assert_eq!(parse_csv_line("a,b,c").unwrap(), ["a", "b", "c"]);
        assert_eq!(parse_csv_line("\"a,\"\"b\",,").unwrap(), ["a,\"b", "", ""]);
        assert_eq!(parse_csv_line("a").unwrap(), ["a"]);
        assert!(parse_csv_line("\"a").is_err());
        let d = FileDigest {
            sha256: [0; 32],
            size: 3,
        };
        let text = write_record([("x,y", Some(d)), ("R", None)]);
        assert_eq!(
            text,
            "\"x,y\",sha256=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA,3\nR,,\n"
        );
        let rows = parse_record(&text).unwrap();
        assert_eq!(rows[0].path, "x,y");
        assert_eq!(rows[0].digest, RowDigest::Valid(d));
        assert_eq!(rows[1].digest, RowDigest::Empty);
    }

    #[test]
    fn bad_rows_are_invalid() {
        let rows =
            parse_record("a,md5=xyz,3\r\nb,sha256=AAAA,3\nc,sha256=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA,\nd,,+1\n").unwrap();
        assert!(rows.iter().all(|r| r.digest == RowDigest::Invalid));
        assert!(rows[0].raw.contains("md5=xyz"));
        assert!(parse_record(",,\n").is_err());
        assert!(parse_record("a,b,c,d\n").is_err());
    }
}
