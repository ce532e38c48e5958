//! Wheels built in the tests with the zip crate's writer, with a correct
//! RECORD by default and knobs to tamper with it.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Cursor, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

pub fn record_hash(bytes: &[u8]) -> String {
    format!("sha256={}", URL_SAFE_NO_PAD.encode(Sha256::digest(bytes)))
}

#[derive(Clone)]
pub struct WheelBuilder {
    pub filename: String,
    pub dist_info: String,
    /// (name, bytes, unix mode) in archive order; RECORD is appended last
    /// unless `record_first`.
    pub members: Vec<(String, Vec<u8>, u32)>,
    /// Members left out of the generated RECORD.
    pub unrecorded: Vec<String>,
    /// Raw lines appended to the generated RECORD.
    pub extra_rows: Vec<String>,
    /// Member contents replaced after RECORD was computed.
    pub tampered: Vec<(String, Vec<u8>)>,
    /// Replaces the generated RECORD entirely.
    pub record_override: Option<String>,
    pub symlinks: Vec<(String, String)>,
    pub dirs: Vec<String>,
    pub reverse: bool,
    pub record_first: bool,
    pub compression: CompressionMethod,
    /// Byte replacements applied to the finished archive (same length), to
    /// forge what the zip writer refuses to write (duplicate names).
    pub patches: Vec<(String, String)>,
}

impl WheelBuilder {
    /// An empty wheel `{name}-{version}-{tag}.whl` with METADATA and a WHEEL
    /// file (`Wheel-Version: 1.0`, `Root-Is-Purelib: {purelib}`).
    pub fn new(name: &str, version: &str, tag: &str, purelib: bool) -> Self {
        let dist_info = format!("{name}-{version}.dist-info");
        let mut b = WheelBuilder {
            filename: format!("{name}-{version}-{tag}.whl"),
            dist_info: dist_info.clone(),
            members: Vec::new(),
            unrecorded: Vec::new(),
            extra_rows: Vec::new(),
            tampered: Vec::new(),
            record_override: None,
            symlinks: Vec::new(),
            dirs: Vec::new(),
            reverse: false,
            record_first: false,
            compression: CompressionMethod::Deflated,
            patches: Vec::new(),
        };
        b.add(
            &format!("{dist_info}/METADATA"),
            format!(
                "Metadata-Version: 2.1\nName: {}\nVersion: {version}\n",
                name.replace('_', "-")
            )
            .as_bytes(),
            0o644,
        );
        b.add(
            &format!("{dist_info}/WHEEL"),
            format!(
                "Wheel-Version: 1.0\nGenerator: envbuild-tests\nRoot-Is-Purelib: {purelib}\nTag: {tag}\n"
            )
            .as_bytes(),
            0o644,
        );
        b
    }

    pub fn add(&mut self, name: &str, bytes: &[u8], mode: u32) -> &mut Self {
        self.members.push((name.to_owned(), bytes.to_vec(), mode));
        self
    }

    /// Replace (or add) a member's bytes, RECORD following.
    pub fn set(&mut self, name: &str, bytes: &[u8]) -> &mut Self {
        match self.members.iter_mut().find(|m| m.0 == name) {
            Some(m) => m.1 = bytes.to_vec(),
            None => self.members.push((name.to_owned(), bytes.to_vec(), 0o644)),
        }
        self
    }

    pub fn record_text(&self) -> String {
        if let Some(text) = &self.record_override {
            return text.clone();
        }
        let mut text = String::new();
        for (name, bytes, _) in &self.members {
            if !self.unrecorded.contains(name) {
                text += &format!("{name},{},{}\n", record_hash(bytes), bytes.len());
            }
        }
        for row in &self.extra_rows {
            text += row;
            text.push('\n');
        }
        text += &format!("{}/RECORD,,\n", self.dist_info);
        text
    }

    pub fn build(&self) -> Vec<u8> {
        let record = self.record_text();
        let mut members: Vec<(String, Vec<u8>, u32)> = self
            .members
            .iter()
            .map(|(n, b, m)| {
                let b = self
                    .tampered
                    .iter()
                    .find(|t| &t.0 == n)
                    .map_or_else(|| b.clone(), |t| t.1.clone());
                (n.clone(), b, *m)
            })
            .collect();
        let record_member = (
            format!("{}/RECORD", self.dist_info),
            record.into_bytes(),
            0o644,
        );
        if self.record_first {
            members.insert(0, record_member);
        } else {
            members.push(record_member);
        }
        if self.reverse {
            members.reverse();
        }
        let mut zw = ZipWriter::new(Cursor::new(Vec::new()));
        let base = SimpleFileOptions::default().compression_method(self.compression);
        for d in &self.dirs {
            zw.add_directory(d.as_str(), base).unwrap();
        }
        for (name, bytes, mode) in &members {
            zw.start_file(name.as_str(), base.unix_permissions(*mode))
                .unwrap();
            zw.write_all(bytes).unwrap();
        }
        for (name, target) in &self.symlinks {
            zw.add_symlink(name.as_str(), target.as_str(), base)
                .unwrap();
        }
        let mut bytes = zw.finish().unwrap().into_inner();
        for (from, to) in &self.patches {
            assert_eq!(from.len(), to.len());
            let (from, to) = (from.as_bytes(), to.as_bytes());
            let mut i = 0;
            while i + from.len() <= bytes.len() {
                if &bytes[i..i + from.len()] == from {
                    bytes[i..i + from.len()].copy_from_slice(to);
                }
                i += 1;
            }
        }
        bytes
    }

    /// Write the wheel into `dir` under its file name.
    pub fn write_to(&self, dir: &Path) -> PathBuf {
        let path = dir.join(&self.filename);
        fs::write(&path, self.build()).unwrap();
        path
    }
}

pub const DEMO_INIT: &str = "def main():\n    print(\"hello from demo_pkg\")\n    return 0\n\n\nclass App:\n    @staticmethod\n    def run():\n        print(\"gui app ran\")\n        return 0\n";
pub const DEMO_CLI: &str = "def main():\n    print(\"demo cli ok\")\n    return 0\n";

/// A pure wheel: a package (with a binary and an executable file), a
/// `#!python` script and a shell script in `.data/scripts`, a setuptools
/// wrapper for an entry point (skipped, as pip skips it), `.data/data` and
/// `.data/headers` files, console and GUI entry points.
pub fn demo_wheel() -> WheelBuilder {
    let mut b = WheelBuilder::new("demo_pkg", "1.0", "py3-none-any", true);
    let di = b.dist_info.clone();
    b.add("demo_pkg/__init__.py", DEMO_INIT.as_bytes(), 0o644)
        .add("demo_pkg/cli.py", DEMO_CLI.as_bytes(), 0o644)
        .add("demo_pkg/blob.bin", &[0, 159, 146, 150, 255, 10, 13], 0o644)
        .add("demo_pkg/tool.sh", b"#!/bin/sh\necho tool\n", 0o755)
        .add(
            "demo_pkg-1.0.data/scripts/demo-script",
            b"#!python\nimport demo_pkg\ndemo_pkg.main()\n",
            0o755,
        )
        .add("demo_pkg-1.0.data/scripts/shell-tool", b"#!/bin/sh\necho shell\n", 0o755)
        .add(
            "demo_pkg-1.0.data/scripts/demo-cli",
            b"#!python\n# setuptools-generated wrapper; pip does not install it\n",
            0o755,
        )
        .add("demo_pkg-1.0.data/data/share/demo_pkg/readme.txt", b"read me\n", 0o644)
        .add("demo_pkg-1.0.data/headers/demo.h", b"int demo(void);\n", 0o644)
        .add(
            &format!("{di}/entry_points.txt"),
            b"[console_scripts]\ndemo-cli = demo_pkg.cli:main\n\n[gui_scripts]\ndemo-gui = demo_pkg:App.run\n\n[demo.plugins]\nignored = demo_pkg:whatever\n",
            0o644,
        )
        .add(&format!("{di}/top_level.txt"), b"demo_pkg\n", 0o644);
    b
}

/// Every file and directory under `root`: path -> (mode, bytes; dirs empty).
pub fn snapshot(root: &Path) -> BTreeMap<String, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).min_depth(1) {
        let entry = entry.unwrap();
        let rel = entry
            .path()
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        let bytes = if meta.is_file() {
            fs::read(entry.path()).unwrap()
        } else {
            assert!(meta.is_dir(), "{rel} is neither a file nor a directory");
            Vec::new()
        };
        let key = if meta.is_dir() {
            format!("{rel}/")
        } else {
            rel
        };
        out.insert(key, (mode, bytes));
    }
    out
}
