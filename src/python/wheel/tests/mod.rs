//! Installing wheels built in the tests; `pip` compares with the real pip.

mod fixture;
mod pip;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use fixture::{demo_wheel, record_hash, snapshot, WheelBuilder, DEMO_CLI};

use super::*;

const SITE: &str = "usr/local/lib/python3.11/site-packages";

fn options() -> InstallOptions {
    InstallOptions {
        scheme: InstallScheme::posix_prefix("usr/local", "3.11"),
        interpreter: "/usr/local/bin/python3".to_owned(),
        installer: "envbuild".to_owned(),
        pinned: false,
    }
}

/// Install `b` into a fresh destination; returns the temp dir (holding the
/// wheel and `dest/`) and the result.
fn install(
    b: &WheelBuilder,
    opts: &InstallOptions,
) -> (tempfile::TempDir, Result<InstalledDistribution, WheelError>) {
    let tmp = tempfile::tempdir().unwrap();
    let wheel = b.write_to(tmp.path());
    let dest = tmp.path().join("dest");
    let result = install_wheel(&wheel, &dest, opts);
    (tmp, result)
}

fn install_ok(b: &WheelBuilder) -> (tempfile::TempDir, InstalledDistribution) {
    let (tmp, result) = install(b, &options());
    let dist = result.unwrap_or_else(|e| panic!("install failed: {e}"));
    (tmp, dist)
}

fn install_err(b: &WheelBuilder) -> WheelError {
    match install(b, &options()).1 {
        Ok(d) => panic!("expected an error, installed {:?}", d.files),
        Err(e) => e,
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Check every row of an installed RECORD against the files on disk.
fn check_record(dest: &Path, lib_dir: &str, record: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for line in record.lines() {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), 3, "{line}");
        let path = Path::new(lib_dir).join(fields[0]);
        let path = normalize(&path);
        if fields[0].ends_with("/RECORD") {
            assert_eq!((fields[1], fields[2]), ("", ""), "{line}");
        } else {
            let bytes = fs::read(dest.join(&path)).unwrap();
            assert_eq!(fields[1], record_hash(&bytes), "{line}");
            assert_eq!(fields[2], bytes.len().to_string(), "{line}");
        }
        paths.push(fields[0].to_owned());
    }
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "RECORD rows are sorted");
    paths
}

/// Resolve `..` lexically.
fn normalize(p: &Path) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.to_str().unwrap().split('/') {
        if c == ".." {
            parts.pop();
        } else {
            parts.push(c);
        }
    }
    parts.join("/")
}

#[test]
fn installs_a_pure_wheel() {
    let (tmp, dist) = install_ok(&demo_wheel());
    let dest = tmp.path().join("dest");
    assert_eq!(dist.name, "demo_pkg");
    assert_eq!(dist.version, "1.0");
    assert_eq!(dist.dist_info, format!("{SITE}/demo_pkg-1.0.dist-info"));
    let expected: Vec<String> = [
        "usr/local/bin/demo-cli",
        "usr/local/bin/demo-gui",
        "usr/local/bin/demo-script",
        "usr/local/bin/shell-tool",
        "usr/local/include/python3.11/demo-pkg/demo.h",
        &format!("{SITE}/demo_pkg-1.0.dist-info/INSTALLER"),
        &format!("{SITE}/demo_pkg-1.0.dist-info/METADATA"),
        &format!("{SITE}/demo_pkg-1.0.dist-info/RECORD"),
        &format!("{SITE}/demo_pkg-1.0.dist-info/WHEEL"),
        &format!("{SITE}/demo_pkg-1.0.dist-info/entry_points.txt"),
        &format!("{SITE}/demo_pkg-1.0.dist-info/top_level.txt"),
        &format!("{SITE}/demo_pkg/__init__.py"),
        &format!("{SITE}/demo_pkg/blob.bin"),
        &format!("{SITE}/demo_pkg/cli.py"),
        &format!("{SITE}/demo_pkg/tool.sh"),
        "usr/local/share/demo_pkg/readme.txt",
    ]
    .map(str::to_owned)
    .to_vec();
    assert_eq!(dist.files, expected);
    // Exactly these files, nothing else.
    let on_disk: Vec<String> = snapshot(&dest)
        .into_keys()
        .filter(|k| !k.ends_with('/'))
        .collect();
    assert_eq!(on_disk, expected);

    let read = |p: &str| fs::read_to_string(dest.join(p)).unwrap();
    assert_eq!(read(&format!("{SITE}/demo_pkg/cli.py")), DEMO_CLI);
    assert_eq!(
        fs::read(dest.join(format!("{SITE}/demo_pkg/blob.bin"))).unwrap(),
        [0, 159, 146, 150, 255, 10, 13]
    );
    assert_eq!(
        read("usr/local/bin/demo-script"),
        "#!/usr/local/bin/python3\nimport demo_pkg\ndemo_pkg.main()\n"
    );
    assert_eq!(read("usr/local/bin/shell-tool"), "#!/bin/sh\necho shell\n");
    assert_eq!(
        read("usr/local/bin/demo-cli"),
        "#!/usr/local/bin/python3\n# -*- coding: utf-8 -*-\nimport re\nimport sys\nfrom demo_pkg.cli import main\nif __name__ == \"__main__\":\n    sys.argv[0] = re.sub(r\"(-script\\.pyw|\\.exe)?$\", \"\", sys.argv[0])\n    sys.exit(main())\n"
    );
    let gui = read("usr/local/bin/demo-gui");
    assert!(gui.contains("from demo_pkg import App\n"), "{gui}");
    assert!(gui.contains("sys.exit(App.run())\n"), "{gui}");
    assert_eq!(
        read(&format!("{SITE}/demo_pkg-1.0.dist-info/INSTALLER")),
        "envbuild\n"
    );

    // Canonical modes: scripts, launchers and x-bit members 0555, the rest
    // 0444, directories 0555; every mtime 1.
    for (path, (m, _)) in snapshot(&dest) {
        let want = if path.ends_with('/')
            || path.starts_with("usr/local/bin/")
            || path.ends_with("tool.sh")
        {
            0o555
        } else {
            0o444
        };
        assert_eq!(m, want, "mode of {path}");
        let mtime = fs::symlink_metadata(dest.join(&path)).unwrap().mtime();
        assert_eq!(mtime, 1, "mtime of {path}");
    }

    let record = read(&format!("{SITE}/demo_pkg-1.0.dist-info/RECORD"));
    let rows = check_record(&dest, SITE, &record);
    assert_eq!(
        rows,
        [
            "../../../bin/demo-cli",
            "../../../bin/demo-gui",
            "../../../bin/demo-script",
            "../../../bin/shell-tool",
            "../../../include/python3.11/demo-pkg/demo.h",
            "../../../share/demo_pkg/readme.txt",
            "demo_pkg-1.0.dist-info/INSTALLER",
            "demo_pkg-1.0.dist-info/METADATA",
            "demo_pkg-1.0.dist-info/RECORD",
            "demo_pkg-1.0.dist-info/WHEEL",
            "demo_pkg-1.0.dist-info/entry_points.txt",
            "demo_pkg-1.0.dist-info/top_level.txt",
            "demo_pkg/__init__.py",
            "demo_pkg/blob.bin",
            "demo_pkg/cli.py",
            "demo_pkg/tool.sh",
        ]
    );
    assert!(record.ends_with(&format!(
        "demo_pkg/tool.sh,{},20\n",
        record_hash(b"#!/bin/sh\necho tool\n")
    )));
    assert!(record.contains("\ndemo_pkg-1.0.dist-info/RECORD,,\n"));
    assert!(!record.contains('\r'));
}

#[test]
fn installs_a_platlib_wheel() {
    let mut b = WheelBuilder::new("natpkg", "2.0", "cp311-cp311-linux_x86_64", false);
    b.add("natpkg/__init__.py", b"from ._native import f\n", 0o644)
        .add("natpkg/_native.so", b"\x7fELF fake", 0o755)
        .add("natpkg-2.0.data/purelib/natpkg_pure.py", b"x = 1\n", 0o644)
        .add("natpkg-2.0.data/platlib/natpkg_plat.py", b"y = 2\n", 0o644);
    let mut opts = options();
    opts.scheme.platlib = "usr/local/lib64/python3.11/site-packages".to_owned();
    let (tmp, result) = install(&b, &opts);
    let dist = result.unwrap();
    let dest = tmp.path().join("dest");
    let plat = "usr/local/lib64/python3.11/site-packages";
    assert_eq!(dist.dist_info, format!("{plat}/natpkg-2.0.dist-info"));
    assert!(dist.files.contains(&format!("{plat}/natpkg/_native.so")));
    assert!(dist.files.contains(&format!("{plat}/natpkg_plat.py")));
    assert!(dist.files.contains(&format!("{SITE}/natpkg_pure.py")));
    assert_eq!(mode(&dest.join(format!("{plat}/natpkg/_native.so"))), 0o555);
    let record =
        fs::read_to_string(dest.join(format!("{plat}/natpkg-2.0.dist-info/RECORD"))).unwrap();
    let rows = check_record(&dest, plat, &record);
    assert!(
        rows.contains(&"../../../lib/python3.11/site-packages/natpkg_pure.py".to_owned()),
        "{rows:?}"
    );
    assert!(rows.contains(&"natpkg/_native.so".to_owned()));
}

#[test]
fn output_is_independent_of_member_order_and_compression() {
    let a = demo_wheel();
    let mut b = demo_wheel();
    b.reverse = true;
    b.compression = zip::CompressionMethod::Stored;
    let mut c = demo_wheel();
    c.record_first = true;
    c.dirs = vec!["demo_pkg/".to_owned(), "demo_pkg-1.0.data/".to_owned()];
    assert_ne!(a.build(), b.build());
    let (ta, da) = install_ok(&a);
    let (tb, db) = install_ok(&b);
    let (tc, dc) = install_ok(&c);
    // The same distribution and the same NAR; only where it lies differs.
    let same = |d: &InstalledDistribution| {
        (
            d.name.clone(),
            d.version.clone(),
            d.files.clone(),
            d.tree.nar(),
        )
    };
    assert_eq!(same(&da), same(&db));
    assert_eq!(same(&da), same(&dc));
    assert_eq!(
        da.tree.nar(),
        envbuild_store::nar::hash_path(&ta.path().join("dest")).unwrap()
    );
    let sa = snapshot(&ta.path().join("dest"));
    assert_eq!(sa, snapshot(&tb.path().join("dest")));
    assert_eq!(sa, snapshot(&tc.path().join("dest")));
}

fn assert_message(e: &WheelError, parts: &[&str]) {
    let msg = e.to_string();
    for p in parts {
        assert!(msg.contains(p), "{msg:?} does not mention {p:?}");
    }
    assert!(!msg.contains('\n'), "one paragraph: {msg:?}");
}

#[test]
fn tampered_member_is_refused() {
    let mut b = demo_wheel();
    b.tampered.push((
        "demo_pkg/cli.py".to_owned(),
        b"import os; os.system('evil')\n".to_vec(),
    ));
    let e = install_err(&b);
    assert!(matches!(e, WheelError::HashMismatch { .. }), "{e:?}");
    assert_message(
        &e,
        &[
            "demo_pkg-1.0-py3-none-any.whl",
            "demo_pkg/cli.py",
            &record_hash(DEMO_CLI.as_bytes()),
            &format!("({} bytes)", DEMO_CLI.len()),
            &record_hash(b"import os; os.system('evil')\n"),
            "(29 bytes)",
        ],
    );

    // Larger than recorded: reading stops after the recorded size.
    let mut b = demo_wheel();
    b.tampered
        .push(("demo_pkg/blob.bin".to_owned(), vec![7; 100_000]));
    let e = install_err(&b);
    assert_message(&e, &["demo_pkg/blob.bin", "more than 7 bytes"]);

    // Same size, different bytes, in a script (the rewriting path).
    let mut b = demo_wheel();
    b.tampered.push((
        "demo_pkg-1.0.data/scripts/demo-script".to_owned(),
        b"#!python\nimport demo_pkg\ndemo_pkg.evil()\n".to_vec(),
    ));
    assert_message(
        &install_err(&b),
        &["demo_pkg-1.0.data/scripts/demo-script", "sha256="],
    );

    // A member that is only verified (setuptools' wrapper) is still verified.
    let mut b = demo_wheel();
    b.tampered.push((
        "demo_pkg-1.0.data/scripts/demo-cli".to_owned(),
        b"#!python\n# tampered wrapper; pip does not install it at all\n".to_vec(),
    ));
    assert_message(&install_err(&b), &["demo_pkg-1.0.data/scripts/demo-cli"]);
}

/// A pinned wheel (its sha256 matched the lock) is not hashed again
/// against RECORD: a same-size change installs with RECORD's digest in the
/// installed RECORD; a size that differs from RECORD is still refused.
#[test]
fn a_pinned_wheel_skips_record_hashes_but_not_sizes() {
    let pinned = InstallOptions {
        pinned: true,
        ..options()
    };
    let same_size: Vec<u8> = DEMO_CLI.replace("ok", "OK").into_bytes();
    assert_ne!(same_size, DEMO_CLI.as_bytes());
    let mut b = demo_wheel();
    b.tampered
        .push(("demo_pkg/cli.py".to_owned(), same_size.clone()));
    let (_tmp, result) = install(&b, &pinned);
    let dist = result.unwrap_or_else(|e| panic!("a pinned wheel installs: {e}"));
    assert!(dist.files.iter().any(|f| f.ends_with("demo_pkg/cli.py")));
    // Unpinned, the same wheel is refused.
    assert!(matches!(install_err(&b), WheelError::HashMismatch { .. }));

    let mut b = demo_wheel();
    b.tampered.push((
        "demo_pkg/cli.py".to_owned(),
        b"longer than recorded\n".repeat(10),
    ));
    match install(&b, &pinned).1 {
        Err(WheelError::HashMismatch { .. }) => {}
        other => panic!("a size unlike RECORD's is refused, pinned or not: {other:?}"),
    }
}

#[test]
fn record_must_list_every_member() {
    let mut b = demo_wheel();
    b.unrecorded.push("demo_pkg/blob.bin".to_owned());
    let e = install_err(&b);
    assert!(matches!(e, WheelError::NotInRecord { .. }), "{e:?}");
    assert_message(&e, &["demo_pkg-1.0-py3-none-any.whl", "demo_pkg/blob.bin"]);

    // A row without a hash for a shipped member is not enough.
    let mut b = demo_wheel();
    b.unrecorded.push("demo_pkg/blob.bin".to_owned());
    b.extra_rows.push("demo_pkg/blob.bin,,".to_owned());
    let e = install_err(&b);
    assert!(matches!(e, WheelError::RecordRowIncomplete { .. }), "{e:?}");
    assert_message(&e, &["demo_pkg/blob.bin"]);

    // Nor one with another algorithm.
    let mut b = demo_wheel();
    b.unrecorded.push("demo_pkg/blob.bin".to_owned());
    b.extra_rows
        .push("demo_pkg/blob.bin,md5=1B2M2Y8AsgTpgAmY7PhCfg,7".to_owned());
    assert_message(&install_err(&b), &["demo_pkg/blob.bin", "md5="]);

    // RECORD itself missing.
    let mut b = demo_wheel();
    b.patches.push((
        "demo_pkg-1.0.dist-info/RECORD".to_owned(),
        "demo_pkg-1.0.dist-info/RECORX".to_owned(),
    ));
    let e = install_err(&b);
    assert!(matches!(e, WheelError::MissingMetadata { .. }), "{e:?}");
}

#[test]
fn record_rows_must_exist_in_the_archive() {
    let mut b = demo_wheel();
    b.extra_rows
        .push(format!("demo_pkg/gone.py,{},3", record_hash(b"x=1")));
    let e = install_err(&b);
    assert!(matches!(e, WheelError::MissingFromArchive { .. }), "{e:?}");
    assert_message(
        &e,
        &[
            "demo_pkg-1.0-py3-none-any.whl",
            "demo_pkg/gone.py",
            &record_hash(b"x=1"),
        ],
    );

    // Rows without a hash for files not shipped (old bdist_wheel listed .pyc
    // that way) are fine.
    let mut b = demo_wheel();
    b.extra_rows
        .push("demo_pkg/__pycache__/cli.cpython-311.pyc,,".to_owned());
    install_ok(&b);
}

#[test]
fn hostile_entries_are_refused() {
    for (name, what) in [
        ("../evil", "`..`"),
        ("/abs/evil", "absolute"),
        ("demo_pkg/../../evil", "`..`"),
        ("..\\..\\evil", "`\\`"),
        ("C:/evil", "absolute"),
        ("demo_pkg//x", "empty"),
    ] {
        let mut b = demo_wheel();
        b.add(name, b"pwned\n", 0o644);
        let e = install_err(&b);
        assert!(matches!(e, WheelError::UnsafePath { .. }), "{name}: {e:?}");
        assert_message(
            &e,
            &[
                "demo_pkg-1.0-py3-none-any.whl",
                name.replace('\\', "\\\\").as_str(),
                what,
            ],
        );
    }

    let mut b = demo_wheel();
    b.symlinks
        .push(("demo_pkg/link".to_owned(), "/etc/passwd".to_owned()));
    let e = install_err(&b);
    assert!(matches!(e, WheelError::Symlink { .. }), "{e:?}");
    assert_message(&e, &["demo_pkg-1.0-py3-none-any.whl", "demo_pkg/link"]);

    // Two entries named demo_pkg/dupA.py: the zip writer refuses, so forge it.
    let mut b = demo_wheel();
    b.add("demo_pkg/dupA.py", b"a = 1\n", 0o644)
        .add("demo_pkg/dupB.py", b"b = 2\n", 0o644);
    b.patches
        .push(("demo_pkg/dupB.py".to_owned(), "demo_pkg/dupA.py".to_owned()));
    let e = install_err(&b);
    assert!(matches!(e, WheelError::DuplicateMember { .. }), "{e:?}");
    assert_message(&e, &["demo_pkg-1.0-py3-none-any.whl", "demo_pkg/dupA.py"]);

    // Unknown .data key, a file directly under .data, a foreign .data dir.
    let mut b = demo_wheel();
    b.add("demo_pkg-1.0.data/etc/passwd", b"root\n", 0o644);
    let e = install_err(&b);
    assert!(matches!(e, WheelError::UnknownDataKey { .. }), "{e:?}");
    assert_message(&e, &["demo_pkg-1.0.data/etc/passwd", "\"etc\"", "purelib"]);
    let mut b = demo_wheel();
    b.add("demo_pkg-1.0.data/loose", b"x\n", 0o644);
    assert_message(&install_err(&b), &["demo_pkg-1.0.data/loose"]);
    let mut b = demo_wheel();
    b.add("other-1.0.data/scripts/x", b"x\n", 0o644);
    assert_message(&install_err(&b), &["other-1.0.data/scripts/x"]);

    // Two sources for one installed path.
    let mut b = demo_wheel();
    b.add(
        "demo_pkg-1.0.data/purelib/demo_pkg/cli.py",
        DEMO_CLI.as_bytes(),
        0o644,
    );
    let e = install_err(&b);
    assert!(matches!(e, WheelError::Conflict { .. }), "{e:?}");
    assert_message(
        &e,
        &[
            "demo_pkg/cli.py",
            "demo_pkg-1.0.data/purelib/demo_pkg/cli.py",
        ],
    );
    let mut b = demo_wheel();
    b.add("demo_pkg-1.0.data/data/bin/demo-gui", b"x\n", 0o644);
    assert_message(
        &install_err(&b),
        &[
            "usr/local/bin/demo-gui",
            "[gui_scripts] entry point demo-gui",
        ],
    );
    let mut b = demo_wheel();
    b.add("demo_pkg/cli.py/inner", b"x\n", 0o644);
    assert!(matches!(install_err(&b), WheelError::Conflict { .. }));
}

#[test]
fn wheel_metadata_is_checked() {
    let mut b = demo_wheel();
    b.set(
        "demo_pkg-1.0.dist-info/WHEEL",
        b"Wheel-Version: 2.0\nRoot-Is-Purelib: true\n",
    );
    let e = install_err(&b);
    assert!(matches!(e, WheelError::WheelVersion { .. }), "{e:?}");
    assert_message(
        &e,
        &[
            "demo_pkg-1.0-py3-none-any.whl",
            "demo_pkg-1.0.dist-info/WHEEL",
            "2.0",
            "1.x",
        ],
    );

    let mut b = demo_wheel();
    b.set("demo_pkg-1.0.dist-info/WHEEL", b"Root-Is-Purelib: true\n");
    assert_message(&install_err(&b), &["WHEEL", "Wheel-Version"]);

    // No .dist-info for this name, or two of them.
    let mut b = demo_wheel();
    b.filename = "other_pkg-1.0-py3-none-any.whl".to_owned();
    let e = install_err(&b);
    assert!(matches!(e, WheelError::DistInfo { .. }), "{e:?}");
    assert_message(
        &e,
        &[
            "other_pkg-1.0-py3-none-any.whl",
            "other-pkg",
            "demo_pkg-1.0.dist-info",
        ],
    );
    let mut b = demo_wheel();
    b.add("extra-1.0.dist-info/METADATA", b"x", 0o644);
    assert_message(
        &install_err(&b),
        &["demo_pkg-1.0.dist-info, extra-1.0.dist-info"],
    );

    // The .dist-info is found by normalized name, as pip finds it.
    let mut b = demo_wheel();
    b.filename = "Demo.Pkg-1.0-py3-none-any.whl".to_owned();
    install_ok(&b);

    // Bad file names.
    let mut b = demo_wheel();
    b.filename = "demo_pkg-1.0.whl".to_owned();
    assert!(matches!(install_err(&b), WheelError::Filename { .. }));
}

#[test]
fn entry_points_are_validated() {
    for (line, name) in [
        ("demo-x = demo_pkg.cli", "demo-x"),
        ("bad/name = demo_pkg.cli:main", "bad/name"),
        ("demo-y = demo_pkg.cli:main; import os", "demo-y"),
    ] {
        let mut b = demo_wheel();
        b.set(
            "demo_pkg-1.0.dist-info/entry_points.txt",
            format!("[console_scripts]\n{line}\n").as_bytes(),
        );
        let e = install_err(&b);
        assert!(matches!(e, WheelError::EntryPoint { .. }), "{e:?}");
        assert_message(
            &e,
            &["demo_pkg-1.0-py3-none-any.whl", name, "console_scripts"],
        );
    }
    let mut b = demo_wheel();
    b.set(
        "demo_pkg-1.0.dist-info/entry_points.txt",
        b"[console_scripts]\ndup = a:b\n[gui_scripts]\ndup = c:d\n",
    );
    assert_message(
        &install_err(&b),
        &[
            "usr/local/bin/dup",
            "[console_scripts] entry point dup",
            "[gui_scripts] entry point dup",
        ],
    );
}

#[test]
fn options_and_destination_are_checked() {
    let b = demo_wheel();
    let mut opts = options();
    opts.interpreter = "python3".to_owned();
    assert!(matches!(
        install(&b, &opts).1,
        Err(WheelError::Options { .. })
    ));
    let mut opts = options();
    opts.scheme.scripts = "../bin".to_owned();
    assert!(matches!(
        install(&b, &opts).1,
        Err(WheelError::Options { .. })
    ));

    let tmp = tempfile::tempdir().unwrap();
    let wheel = b.write_to(tmp.path());
    let e = install_wheel(&wheel, tmp.path(), &options()).unwrap_err();
    assert!(matches!(e, WheelError::DestinationExists { .. }), "{e:?}");

    // posix_prefix takes the prefix with or without slashes around it.
    assert_eq!(
        InstallScheme::posix_prefix("/usr/local/", "3.11"),
        InstallScheme::posix_prefix("usr/local", "3.11")
    );
    assert_eq!(InstallScheme::posix_prefix("", "3.12").scripts, "bin");
}

#[test]
fn a_corrupt_archive_is_an_error() {
    let b = demo_wheel();
    let tmp = tempfile::tempdir().unwrap();
    let wheel = tmp.path().join(&b.filename);
    let mut bytes = b.build();
    bytes.truncate(bytes.len() / 2);
    fs::write(&wheel, bytes).unwrap();
    let dest = tmp.path().join("dest");
    let e = install_wheel(&wheel, &dest, &options()).unwrap_err();
    assert!(matches!(e, WheelError::Archive { .. }), "{e:?}");
    assert_message(&e, &["demo_pkg-1.0-py3-none-any.whl"]);
}

#[test]
fn large_members_stream_and_signatures_are_not_installed() {
    // 24 MiB that compresses well, plus a stored copy: streamed, not buffered.
    let big: Vec<u8> = (0..24u32 << 20).map(|i| (i % 251) as u8).collect();
    let mut b = demo_wheel();
    b.add("demo_pkg/big.bin", &big, 0o644)
        // Signatures of RECORD need no row; INSTALLER shipped in a wheel is
        // verified and replaced by ours.
        .add("demo_pkg-1.0.dist-info/RECORD.jws", b"{}", 0o644)
        .add("demo_pkg-1.0.dist-info/INSTALLER", b"pip\n", 0o644);
    b.unrecorded
        .push("demo_pkg-1.0.dist-info/RECORD.jws".to_owned());
    let (tmp, dist) = install_ok(&b);
    let dest = tmp.path().join("dest");
    assert_eq!(
        fs::read(dest.join(format!("{SITE}/demo_pkg/big.bin"))).unwrap(),
        big
    );
    assert!(!dist.files.iter().any(|f| f.ends_with("RECORD.jws")));
    assert_eq!(
        fs::read_to_string(dest.join(format!("{SITE}/demo_pkg-1.0.dist-info/INSTALLER"))).unwrap(),
        "envbuild\n"
    );
    let record =
        fs::read_to_string(dest.join(format!("{SITE}/demo_pkg-1.0.dist-info/RECORD"))).unwrap();
    check_record(&dest, SITE, &record);

    let mut b = b.clone();
    b.tampered.push((
        "demo_pkg-1.0.dist-info/INSTALLER".to_owned(),
        b"xyz\n".to_vec(),
    ));
    assert_message(&install_err(&b), &["demo_pkg-1.0.dist-info/INSTALLER"]);
}

#[test]
fn compiling_writes_library_pycs_into_the_tree_and_record_and_keeps_shipped_ones() {
    if !crate::python::bytecode::host_can_compile() {
        eprintln!("skipped: needs /usr/bin/python3.11 and bubblewrap");
        return;
    }
    let mut b = demo_wheel();
    // A pyc the wheel ships itself is kept as it is.
    let shipped = b"not compiled by us";
    b.add("demo_pkg/__pycache__/cli.cpython-311.pyc", shipped, 0o644);
    let tmp = tempfile::tempdir().unwrap();
    let wheel = b.write_to(tmp.path());
    let install_into = |name: &str| {
        let dest = tmp.path().join(name);
        let work = tmp.path().join(format!("{name}-work"));
        fs::create_dir(&work).unwrap();
        let compiler = Compiler {
            rootfs: Path::new("/"),
            python: crate::python::bytecode::HOST_PYTHON,
            work: &work,
        };
        let dist = install_wheel_compiling(&wheel, &dest, &options(), &compiler)
            .unwrap_or_else(|e| panic!("install failed: {e}"));
        (dest, dist)
    };
    let (dest, dist) = install_into("one");
    let init_pyc = format!("{SITE}/demo_pkg/__pycache__/__init__.cpython-311.pyc");
    let cli_pyc = format!("{SITE}/demo_pkg/__pycache__/cli.cpython-311.pyc");
    assert!(dist.files.contains(&init_pyc), "{:?}", dist.files);
    let pyc = fs::read(dest.join(&init_pyc)).unwrap();
    assert_eq!(&pyc[4..8], &[1, 0, 0, 0], "an unchecked-hash pyc (PEP 552)");
    assert_eq!(mode(&dest.join(&init_pyc)), 0o444);
    assert_eq!(fs::read(dest.join(&cli_pyc)).unwrap(), shipped);
    // Scripts and data are not compiled.
    let pycs: Vec<String> = dist
        .files
        .iter()
        .filter(|f| f.ends_with(".pyc"))
        .cloned()
        .collect();
    assert_eq!(pycs, [init_pyc.clone(), cli_pyc]);
    // RECORD lists the pyc with its hash, and the tree's NAR hash is the
    // tree's as written.
    let record =
        fs::read_to_string(dest.join(format!("{SITE}/demo_pkg-1.0.dist-info/RECORD"))).unwrap();
    let rows = check_record(&dest, SITE, &record);
    assert!(rows.contains(&"demo_pkg/__pycache__/__init__.cpython-311.pyc".to_owned()));
    assert_eq!(
        dist.tree.nar().to_sri(),
        envbuild_store::nar::hash_path(&dest).unwrap().to_sri()
    );
    // The same wheel compiled again elsewhere gives the same tree.
    let (_, again) = install_into("two");
    assert_eq!(dist.tree.nar().to_sri(), again.tree.nar().to_sri());
    // And the interpreter imports the module from it without compiling.
    let out = std::process::Command::new("/usr/bin/python3.11")
        .args(["-B", "-v", "-c", "import demo_pkg"])
        .env("PYTHONPATH", dest.join(SITE))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("code object from") && log.contains("__init__.cpython-311.pyc"),
        "{log}"
    );
}
