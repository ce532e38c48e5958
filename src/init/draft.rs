//! A spec being written by `envbuild init`: the keys a translation fills
//! in, rendered as TOML in the order docs/spec-reference.md documents them,
//! with comments where a human should look.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecDraft {
    /// `[env] name`.
    pub name: String,
    /// Comment lines at the top of the file (without `# `).
    pub header: Vec<String>,
    /// `[base] debian`: suite and packages, in the order first asked for.
    pub debian: Option<DebianDraft>,
    /// Comment lines placed in `[base]` (e.g. the base-image route).
    pub base_comment: Vec<String>,
    pub python: Option<PythonDraft>,
    pub models: Vec<ModelDraft>,
    pub files: Vec<FileDraft>,
    pub image: ImageDraft,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebianDraft {
    pub suite: String,
    pub packages: Vec<String>,
}

impl DebianDraft {
    /// Add `package` unless it is there; whether it was added.
    pub fn add(&mut self, package: &str) -> bool {
        if self.packages.iter().any(|p| p == package) {
            return false;
        }
        self.packages.push(package.to_string());
        true
    }

    pub fn has(&self, package: &str) -> bool {
        self.packages.iter().any(|p| p == package)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PythonDraft {
    pub requirements: Vec<String>,
    /// `[python] lock`: a hash-checked requirements file, relative to the spec.
    pub lock: Option<String>,
    pub version: String,
    pub site_packages: String,
    pub shebang: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDraft {
    pub name: String,
    pub source: String,
    pub revision: Option<String>,
    pub path: Option<String>,
    pub owner: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDraft {
    /// Relative to the spec's directory.
    pub src: String,
    pub dst: String,
    pub owner: Option<String>,
    pub mode: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageDraft {
    pub user: Option<UserDraft>,
    pub workdir: Option<String>,
    pub env: Vec<(String, String)>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// A number (`7860`) or a string (`"53/udp"`).
    pub ports: Vec<Port>,
    pub labels: Vec<(String, String)>,
    pub volumes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Port {
    Tcp(u16),
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDraft {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Only when it is not `/home/NAME`.
    pub home: Option<String>,
}

/// A TOML basic string.
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A TOML key: bare when it can be.
fn key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        k.to_string()
    } else {
        q(k)
    }
}

fn array(items: &[String]) -> String {
    format!(
        "[{}]",
        items.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
    )
}

fn inline_table(pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return "{}".to_string();
    }
    // Later assignments win, as in a Dockerfile; TOML refuses duplicate keys.
    let mut seen = BTreeMap::new();
    let mut order = Vec::new();
    for (k, v) in pairs {
        if seen.insert(k.clone(), v.clone()).is_none() {
            order.push(k.clone());
        }
    }
    format!(
        "{{ {} }}",
        order
            .iter()
            .map(|k| format!("{} = {}", key(k), q(&seen[k])))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// `line` as one TOML comment line. A comment may hold no control
/// character but a tab, and the notes quote the Dockerfile, whose bytes
/// can be anything: the others are written escaped (`\u{0}`).
fn comment(line: &str) -> String {
    let mut out = String::from("# ");
    for c in line.trim_end().chars() {
        if c.is_control() && c != '\t' {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out.push('\n');
    out
}

impl SpecDraft {
    /// The spec as TOML text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // A note may hold a multi-line message: each line its own comment.
        for line in self.header.iter().flat_map(|l| l.split('\n')) {
            if line.trim().is_empty() {
                out.push_str("#\n");
            } else {
                out.push_str(&comment(line));
            }
        }
        if !self.header.is_empty() {
            out.push('\n');
        }
        out.push_str("[env]\n");
        out.push_str(&format!("name = {}\n", q(&self.name)));
        out.push_str("system = \"x86_64-linux\"\n");
        out.push_str(
            "# source-date-epoch = 1700000000  # fix every timestamp; else the lock pins the time of locking\n",
        );

        if self.debian.is_some() || !self.base_comment.is_empty() {
            out.push_str("\n[base]\n");
            for line in self.base_comment.iter().flat_map(|l| l.split('\n')) {
                out.push_str(&comment(line));
            }
            if let Some(d) = &self.debian {
                out.push_str(&format!(
                    "debian = {{ suite = {}, packages = {} }}\n",
                    q(&d.suite),
                    array(&d.packages)
                ));
            }
        }

        if let Some(p) = &self.python {
            out.push_str("\n[python]\n");
            if let Some(lock) = &p.lock {
                out.push_str(&format!("lock = {}\n", q(lock)));
            } else {
                out.push_str("requirements = [\n");
                for r in &p.requirements {
                    out.push_str(&format!("  {},\n", q(r)));
                }
                out.push_str("]\n");
            }
            out.push_str(&format!("version = {}\n", q(&p.version)));
            out.push_str(&format!("site-packages = {}\n", q(&p.site_packages)));
            out.push_str(&format!("shebang = {}\n", q(&p.shebang)));
        }

        for m in &self.models {
            out.push_str(&format!("\n[models.{}]\n", key(&m.name)));
            out.push_str(&format!("source = {}\n", q(&m.source)));
            if let Some(r) = &m.revision {
                out.push_str(&format!("revision = {}\n", q(r)));
            }
            if let Some(p) = &m.path {
                out.push_str(&format!("path = {}\n", q(p)));
            }
            if let Some(o) = &m.owner {
                out.push_str(&format!("owner = {}\n", q(o)));
            }
        }

        for f in &self.files {
            out.push_str("\n[[files]]\n");
            out.push_str(&format!("src = {}\n", q(&f.src)));
            out.push_str(&format!("dst = {}\n", q(&f.dst)));
            if let Some(o) = &f.owner {
                out.push_str(&format!("owner = {}\n", q(o)));
            }
            if let Some(m) = &f.mode {
                out.push_str(&format!("mode = {}\n", q(m)));
            }
        }

        out.push_str("\n[image]\n");
        out.push_str(&format!("name = {}\n", q(&self.name)));
        let img = &self.image;
        if let Some(u) = &img.user {
            let home = u
                .home
                .as_ref()
                .map(|h| format!(", home = {}", q(h)))
                .unwrap_or_default();
            out.push_str(&format!(
                "user = {{ name = {}, uid = {}, gid = {}{home} }}\n",
                q(&u.name),
                u.uid,
                u.gid
            ));
        }
        if let Some(w) = &img.workdir {
            out.push_str(&format!("workdir = {}\n", q(w)));
        }
        if !img.env.is_empty() {
            out.push_str(&format!("env = {}\n", inline_table(&img.env)));
        }
        if let Some(e) = &img.entrypoint {
            out.push_str(&format!("entrypoint = {}\n", array(e)));
        }
        if let Some(c) = &img.cmd {
            out.push_str(&format!("cmd = {}\n", array(c)));
        }
        if !img.ports.is_empty() {
            let ports: Vec<String> = img
                .ports
                .iter()
                .map(|p| match p {
                    Port::Tcp(n) => n.to_string(),
                    Port::Other(s) => q(s),
                })
                .collect();
            out.push_str(&format!("ports = [{}]\n", ports.join(", ")));
        }
        if !img.labels.is_empty() {
            out.push_str(&format!("labels = {}\n", inline_table(&img.labels)));
        }
        if !img.volumes.is_empty() {
            out.push_str(&format!("volumes = {}\n", array(&img.volumes)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_notes_are_escaped_so_the_draft_stays_toml() {
        // Found by fuzzing: a Dockerfile line with NULs, quoted in a note.
        let d = SpecDraft {
            name: "x".into(),
            header: vec!["FROM deps\0\0 AS x\r\u{7f}\tend".into()],
            base_comment: vec!["from \u{1b}[31m".into()],
            ..Default::default()
        };
        let text = d.render();
        assert!(
            text.contains("# FROM deps\\u{0}\\u{0} AS x\\u{d}\\u{7f}\tend\n"),
            "{text}"
        );
        assert!(text.contains("# from \\u{1b}[31m\n"), "{text}");
        toml::from_str::<toml::Table>(&text).expect("the draft is TOML");
    }

    #[test]
    fn strings_are_escaped_and_keys_quoted_only_when_they_must_be() {
        let mut d = SpecDraft {
            name: "x".into(),
            ..Default::default()
        };
        d.header = vec!["a note\nover two lines".into()];
        d.image.env = vec![
            ("PLAIN_KEY".into(), "a \"quoted\" \\ value".into()),
            ("dotted.key".into(), "1".into()),
            ("PLAIN_KEY".into(), "later wins".into()),
        ];
        let text = d.render();
        let v: toml::Table = toml::from_str(&text).expect("valid TOML");
        let env = v["image"]["env"].as_table().unwrap();
        assert_eq!(env["PLAIN_KEY"].as_str(), Some("later wins"));
        assert_eq!(env["dotted.key"].as_str(), Some("1"));
        assert!(text.contains("\"dotted.key\" = "), "{text}");
        assert!(text.starts_with("# a note\n# over two lines\n"), "{text}");
    }
}
