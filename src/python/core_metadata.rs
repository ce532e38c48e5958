//! The header block of core metadata (`METADATA`, `PKG-INFO`): RFC 822
//! style `Name: value` lines, read the way Python's `email` parser reads
//! them, which is what pip and the build backends use.
//!
//! ```text
//! block        = *(header / continuation) [empty-line body]
//! header       = name ":" value LF
//! continuation = (SP / HTAB) *any LF     ; folded into the previous value,
//!                                        ; even when it is all whitespace
//! empty-line   = LF                      ; (or CR LF): the headers end here
//! ```
//!
//! A line of spaces is a continuation, not the end of the headers: a
//! multi-line `License:` with blank paragraphs (pandas writes one) must not
//! hide the `Requires-Dist` lines after it.

/// The headers in order, with continuation lines folded into their header's
/// value (joined by a space). Stops at the first empty line. A line that is
/// neither a header nor a continuation, or a continuation before any
/// header, is an error naming the line.
pub fn headers(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            match out.last_mut() {
                Some((_, v)) => {
                    let more = line.trim();
                    if !more.is_empty() {
                        v.push(' ');
                        v.push_str(more);
                    }
                }
                None => {
                    return Err(format!(
                        "line {}: continuation line before any header",
                        i + 1
                    ))
                }
            }
            continue;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| format!("line {}: {line:?} is not `Name: value`", i + 1))?;
        out.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    Ok(out)
}

/// The first value of a header, by case-insensitive name.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_of_spaces_inside_a_folded_header_does_not_end_the_headers() {
        // As pandas 2.3.3's METADATA: a License with blank paragraphs.
        let text = "Metadata-Version: 2.1\nName: pandas\nLicense: BSD\n         \n         Copyright\n         \nRequires-Dist: pytz>=2020.1\nRequires-Dist: tzdata>=2022.7\n\nbody: not a header\n";
        let h = headers(text).unwrap();
        assert_eq!(header(&h, "license"), Some("BSD Copyright"));
        let reqs: Vec<&str> = h
            .iter()
            .filter(|(k, _)| k == "Requires-Dist")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(reqs, ["pytz>=2020.1", "tzdata>=2022.7"]);
        assert!(header(&h, "body").is_none(), "the body is not read");
    }

    #[test]
    fn crlf_lines_and_bad_lines() {
        let h = headers("Name: a\r\nVersion: 1\r\n\r\nbody").unwrap();
        assert_eq!(header(&h, "version"), Some("1"));
        assert!(headers(" folded first\n").unwrap_err().contains("line 1"));
        assert!(headers("Name: a\nnot a header\n")
            .unwrap_err()
            .contains("line 2"));
    }
}
