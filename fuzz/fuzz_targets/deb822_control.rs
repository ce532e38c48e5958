//! deb822 control data (`Packages`, `Release`, `status`, a .deb's
//! `control`): `envbuild::debian::control::parse` and the streaming
//! `read_paragraphs`. Paragraphs written back must parse to the same
//! fields, and both readers must agree.
#![no_main]

use envbuild::debian::control::{parse, parse_one, read_paragraphs, Paragraph};
use envbuild_fuzz::text;
use libfuzzer_sys::fuzz_target;

fn fields(p: &Paragraph) -> Vec<(String, String)> {
    p.fields()
        .iter()
        .map(|f| (f.name().to_owned(), f.value().to_owned()))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let _ = parse_one("control", &String::from_utf8_lossy(data));
    let Some(text) = text(data) else { return };
    let parsed = parse("Packages", text);
    let streamed: Result<Vec<Paragraph>, _> = read_paragraphs("Packages", data).collect();
    assert_eq!(
        parsed.is_ok(),
        streamed.is_ok(),
        "parse and read_paragraphs disagree"
    );
    let Ok(paragraphs) = parsed else { return };
    let written: Vec<String> = paragraphs.iter().map(ToString::to_string).collect();
    let written = written.join("\n");
    let again = parse("Packages", &written)
        .unwrap_or_else(|e| panic!("written paragraphs do not parse: {e}\n{written}"));
    let before: Vec<_> = paragraphs.iter().map(fields).collect();
    let after: Vec<_> = again.iter().map(fields).collect();
    assert_eq!(before, after, "fields changed through Display:\n{written}");
    for p in &paragraphs {
        for f in p.fields() {
            assert!(p.get(f.name()).is_some());
            let _ = p.version(f.name());
            let _ = p.relations(f.name());
        }
    }
});
