//! Tests of `deb`: packages built with `dpkg-deb --build` unpacked and
//! compared with `dpkg-deb -x`, hostile packages built by hand, malformed
//! packages, and the machine's cached .deb files when there are any.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::*;

// ---------------------------------------------------------------- helpers

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn require(tool: &str) {
    match Command::new(tool).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "`{tool} --version` failed ({}); these tests need {tool}",
            o.status
        ),
        Err(e) => panic!(
            "{tool} is not installed or not on PATH ({e}); these tests compare against it: \
             install dpkg"
        ),
    }
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn write(path: &Path, data: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
    set_mode(path, mode);
}

fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A node of an unpacked tree, for comparison.
#[derive(Debug, PartialEq, Eq)]
enum Node {
    Dir { mode: u32 },
    File { mode: u32, sha256: String },
    Symlink { target: PathBuf },
    Other { kind: String },
}

/// Every path under `root` (the root itself excluded), modes masked to the
/// permission and sticky bits.
fn tree(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).min_depth(1).follow_links(false) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
        let md = e.path().symlink_metadata().unwrap();
        let mode = md.mode() & 0o1777;
        let ft = md.file_type();
        let node = if ft.is_symlink() {
            Node::Symlink {
                target: fs::read_link(e.path()).unwrap(),
            }
        } else if ft.is_dir() {
            Node::Dir { mode }
        } else if ft.is_file() {
            let mut h = Sha256::new();
            let mut f = fs::File::open(e.path()).unwrap();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = std::io::Read::read(&mut f, &mut buf).unwrap();
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            Node::File {
                mode,
                sha256: hex::encode(h.finalize()),
            }
        } else {
            Node::Other {
                kind: format!("{ft:?}"),
            }
        };
        out.insert(rel, node);
    }
    out
}

/// Unpacks `deb` with envbuild and with `dpkg-deb -x` and checks that the
/// trees agree (file list, contents, modes without setuid/setgid, symlink
/// targets), device nodes and FIFOs aside. Returns envbuild's result.
fn compare_with_dpkg_deb(deb: &Path, work: &Path) -> Extracted {
    let ours = work.join("ours");
    let theirs = work.join("theirs");
    let _ = fs::remove_dir_all(&ours);
    let _ = fs::remove_dir_all(&theirs);
    let got = extract(deb, &ours).unwrap_or_else(|e| panic!("{e}"));
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&theirs));

    let ours_tree = tree(&ours);
    let mut theirs_tree = tree(&theirs);
    for s in &got.skipped {
        let node = theirs_tree.remove(&s.path);
        assert!(
            matches!(node, Some(Node::Other { .. }) | None),
            "{}: skipped {:?} is {node:?} in dpkg-deb's tree",
            deb.display(),
            s.path
        );
    }
    for (path, node) in &theirs_tree {
        assert_eq!(
            ours_tree.get(path),
            Some(node),
            "{}: {path:?} differs (left: envbuild, right: dpkg-deb -x)",
            deb.display()
        );
    }
    for path in ours_tree.keys() {
        assert!(
            theirs_tree.contains_key(path),
            "{}: {path:?} unpacked by envbuild only",
            deb.display()
        );
    }
    // Nothing written keeps setuid/setgid bits.
    for e in walkdir::WalkDir::new(&ours).follow_links(false) {
        let e = e.unwrap();
        let md = e.path().symlink_metadata().unwrap();
        if !md.file_type().is_symlink() {
            assert_eq!(
                md.mode() & 0o6000,
                0,
                "{} kept setuid/setgid",
                e.path().display()
            );
        }
    }
    // The entry list matches the tree.
    for entry in &got.entries {
        let node = ours_tree
            .get(&entry.path)
            .unwrap_or_else(|| panic!("listed {:?} missing", entry.path));
        match (&entry.kind, node) {
            (EntryKind::Directory, Node::Dir { .. })
            | (EntryKind::File { .. } | EntryKind::Hardlink { .. }, Node::File { .. }) => {}
            (EntryKind::Symlink { target }, Node::Symlink { target: t }) => assert_eq!(target, t),
            other => panic!(
                "{:?}: listed and unpacked kinds differ: {other:?}",
                entry.path
            ),
        }
    }
    // The control paragraph matches dpkg-deb's view.
    let fields = run(Command::new("dpkg-deb").arg("-f").arg(deb));
    let theirs_control =
        control::parse_one("dpkg-deb -f", &String::from_utf8(fields.stdout).unwrap()).unwrap();
    for f in theirs_control.fields() {
        assert_eq!(
            got.control.control.get(f.name()).map(str::trim),
            Some(f.value().trim()),
            "{}: field {}",
            deb.display(),
            f.name()
        );
    }
    got
}

// ------------------------------------------- packages built by dpkg-deb

const CONTROL: &str = "Package: envbuild-test\nVersion: 1:1.2-3\nArchitecture: all\n\
Maintainer: Test <test@example.invalid>\nDepends: libc6 (>= 2.34), foo | bar\n\
Description: a test package\n built by the envbuild tests.\n";

/// A package tree covering what unpacking has to handle.
fn package_tree(root: &Path) -> PathBuf {
    let long_dir = format!("usr/share/{}/{}", "d".repeat(70), "e".repeat(70));
    fs::create_dir_all(root.join("DEBIAN")).unwrap();
    set_mode(root, 0o755);
    set_mode(&root.join("DEBIAN"), 0o755);
    write(&root.join("DEBIAN/control"), CONTROL.as_bytes(), 0o644);
    write(&root.join("DEBIAN/postinst"), b"#!/bin/sh\nexit 0\n", 0o755);

    write(&root.join("usr/bin/tool"), b"#!/bin/sh\necho hi\n", 0o755);
    write(&root.join("usr/bin/suid"), b"setuid", 0o4755);
    write(&root.join("usr/bin/sgid"), b"setgid", 0o2711);
    fs::hard_link(root.join("usr/bin/tool"), root.join("usr/bin/tool-hard")).unwrap();
    write(&root.join("usr/share/doc/pkg/README"), b"read me\n", 0o644);
    write(&root.join("usr/share/doc/pkg/empty"), b"", 0o644);
    write(&root.join("usr/share/doc/pkg/secret"), b"s", 0o600);
    write(
        &root.join("usr/share/with space \u{fc}.txt"),
        b"unicode",
        0o644,
    );
    write(
        &root.join("usr/share/big.bin"),
        &pseudo_random(3 << 20),
        0o644,
    );
    write(
        &root.join(&long_dir).join("file-with-a-long-path"),
        b"long",
        0o644,
    );
    fs::create_dir_all(root.join("usr/lib/pkg/private")).unwrap();
    set_mode(&root.join("usr/lib/pkg/private"), 0o750);
    write(
        &root.join("usr/lib/pkg/ro/inside"),
        b"in a read-only dir",
        0o444,
    );
    set_mode(&root.join("usr/lib/pkg/ro"), 0o555);
    fs::create_dir_all(root.join("var/tmp")).unwrap();
    set_mode(&root.join("var/tmp"), 0o1777);
    symlink("tool", root.join("usr/bin/alias")).unwrap();
    symlink("/etc/hostname", root.join("usr/lib/abs-link")).unwrap();
    symlink("../share", root.join("usr/lib/up-link")).unwrap();
    symlink("doc/pkg", root.join("usr/share/dir-link")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("var/fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    if is_root() {
        write(&root.join("usr/share/owned"), b"owned", 0o640);
        std::os::unix::fs::chown(root.join("usr/share/owned"), Some(1234), Some(4321)).unwrap();
        // Directories under the package root stay root's.
    }
    PathBuf::from(long_dir)
}

#[test]
fn packages_built_by_dpkg_deb_unpack_like_dpkg_deb_x() {
    require("dpkg-deb");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("pkg");
    let long_dir = package_tree(&root);

    let mut built = 0;
    for (flag, compression) in [
        ("xz", Compression::Xz),
        ("zstd", Compression::Zstd),
        ("gzip", Compression::Gzip),
        ("none", Compression::None),
    ] {
        let deb = tmp.path().join(format!("pkg-{flag}.deb"));
        let out = Command::new("dpkg-deb")
            .arg(format!("-Z{flag}"))
            .arg("--build")
            .arg(&root)
            .arg(&deb)
            .output()
            .expect("running dpkg-deb --build");
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                flag == "zstd" && err.contains("zst"),
                "dpkg-deb -Z{flag} --build failed: {err}"
            );
            println!(
                "note: this dpkg-deb cannot build -Zzstd ({}); skipped",
                err.trim()
            );
            continue;
        }
        built += 1;
        let work = tmp.path().join(format!("work-{flag}"));
        fs::create_dir_all(&work).unwrap();
        let got = compare_with_dpkg_deb(&deb, &work);

        assert_eq!(got.data_compression, compression, "{flag}");
        assert_eq!(got.data_member, format!("data.tar{}", compression.suffix()));
        assert_eq!(got.control.format, "2.0");
        let c = &got.control.control;
        assert_eq!(c.get("package"), Some("envbuild-test"));
        assert_eq!(c.version("Version").unwrap().unwrap().epoch(), 1);
        assert_eq!(c.relations("Depends").unwrap().len(), 2);
        let postinst = got
            .control
            .file("postinst")
            .expect("postinst in control files");
        assert_eq!(postinst.data, b"#!/bin/sh\nexit 0\n");
        assert_eq!(postinst.mode, 0o755);
        assert!(got.control.file("control").is_some());

        // Links, specials, owners and modes.
        let ours = work.join("ours");
        assert_eq!(
            fs::read_link(ours.join("usr/lib/abs-link")).unwrap(),
            Path::new("/etc/hostname")
        );
        let hard: Vec<_> = got
            .entries
            .iter()
            .filter(|e| matches!(e.kind, EntryKind::Hardlink { .. }))
            .collect();
        assert_eq!(hard.len(), 1, "one hard link entry: {hard:?}");
        let a = ours.join("usr/bin/tool");
        let b = ours.join("usr/bin/tool-hard");
        assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
        assert_ne!(
            fs::metadata(&a).unwrap().ino(),
            fs::metadata(&b).unwrap().ino(),
            "copied, not linked"
        );
        assert_eq!(fs::metadata(&b).unwrap().mode() & 0o7777, 0o755);

        assert_eq!(got.skipped.len(), 1);
        assert_eq!(got.skipped[0].path, Path::new("var/fifo"));
        assert_eq!(got.skipped[0].kind, SpecialKind::Fifo);
        assert!(!ours.join("var/fifo").exists());

        let owner = |p: &str| got.owners.iter().find(|o| o.path == Path::new(p));
        assert_eq!(owner("usr/bin/suid").expect("suid listed").mode, 0o4755);
        assert_eq!(owner("usr/bin/sgid").expect("sgid listed").mode, 0o2711);
        assert_eq!(
            fs::metadata(ours.join("usr/bin/suid")).unwrap().mode() & 0o7777,
            0o755
        );
        assert_eq!(
            fs::metadata(ours.join("usr/bin/sgid")).unwrap().mode() & 0o7777,
            0o711
        );
        if is_root() {
            let o = owner("usr/share/owned").expect("non-root file listed");
            assert_eq!((o.uid, o.gid, o.mode), (1234, 4321, 0o640));
            assert!(
                owner("usr/bin/tool").is_none(),
                "root's files are not listed"
            );
            assert_eq!(got.owners.len(), 3, "{:?}", got.owners);
            let md = fs::metadata(ours.join("usr/share/owned")).unwrap();
            assert_eq!((md.uid(), md.gid()), (0, 0), "owners are not applied");
        }
        assert_eq!(
            fs::metadata(ours.join("var/tmp")).unwrap().mode() & 0o7777,
            0o1777
        );
        assert_eq!(
            fs::metadata(ours.join("usr/lib/pkg/ro")).unwrap().mode() & 0o7777,
            0o555
        );
        assert_eq!(
            fs::read(ours.join(&long_dir).join("file-with-a-long-path")).unwrap(),
            b"long"
        );
        assert_eq!(
            fs::read(ours.join("usr/share/big.bin")).unwrap(),
            pseudo_random(3 << 20)
        );

        // read_control reads the same head without the data.
        let head = read_control(&deb).unwrap();
        assert_eq!(head, got.control);
    }
    assert!(built >= 3, "built only {built} packages");
}

// ------------------------------------------- hand-built (hostile) packages

struct Raw<'a> {
    path: &'a [u8],
    kind: tar::EntryType,
    data: &'a [u8],
    link: &'a [u8],
    mode: u32,
}

fn file<'a>(path: &'a str, data: &'a [u8]) -> Raw<'a> {
    Raw {
        path: path.as_bytes(),
        kind: tar::EntryType::Regular,
        data,
        link: b"",
        mode: 0o644,
    }
}

fn dir(path: &str) -> Raw<'_> {
    Raw {
        path: path.as_bytes(),
        kind: tar::EntryType::Directory,
        data: b"",
        link: b"",
        mode: 0o755,
    }
}

fn symlink_entry<'a>(path: &'a str, target: &'a str) -> Raw<'a> {
    Raw {
        path: path.as_bytes(),
        kind: tar::EntryType::Symlink,
        data: b"",
        link: target.as_bytes(),
        mode: 0o777,
    }
}

fn hardlink_entry<'a>(path: &'a str, target: &'a str) -> Raw<'a> {
    Raw {
        path: path.as_bytes(),
        kind: tar::EntryType::Link,
        data: b"",
        link: target.as_bytes(),
        mode: 0o644,
    }
}

/// A tar whose names are written byte for byte (the tar crate's own
/// builder refuses `..` and absolute paths, which is what we need here).
fn raw_tar(entries: &[Raw]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        {
            let g = h.as_gnu_mut().unwrap();
            g.name[..e.path.len()].copy_from_slice(e.path);
            g.linkname[..e.link.len()].copy_from_slice(e.link);
        }
        h.set_entry_type(e.kind);
        if matches!(e.kind, tar::EntryType::Char | tar::EntryType::Block) {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        h.set_size(e.data.len() as u64);
        h.set_mode(e.mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        b.append(&h, e.data).unwrap();
    }
    b.into_inner().unwrap()
}

fn ar_archive(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    for (name, data) in members {
        let h = format!(
            "{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            0,
            0,
            0,
            100644,
            data.len()
        );
        assert_eq!(h.len(), 60);
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

fn control_tar() -> Vec<u8> {
    raw_tar(&[
        dir("./"),
        file(
            "./control",
            b"Package: evil\nVersion: 1.0\nArchitecture: all\n",
        ),
    ])
}

fn deb_with_data(data_member: &str, data: &[u8]) -> Vec<u8> {
    ar_archive(&[
        ("debian-binary", b"2.0\n"),
        ("control.tar", &control_tar()),
        (data_member, data),
    ])
}

fn hostile(entries: &[Raw]) -> Vec<u8> {
    deb_with_data("data.tar", &raw_tar(entries))
}

struct Sandbox {
    _tmp: tempfile::TempDir,
    dest: PathBuf,
    outside: PathBuf,
}

fn sandbox() -> Sandbox {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), b"untouched").unwrap();
    Sandbox {
        dest: tmp.path().join("dest"),
        outside,
        _tmp: tmp,
    }
}

impl Sandbox {
    fn extract(&self, deb: &[u8]) -> Result<Extracted> {
        extract_from("evil.deb", deb, &self.dest)
    }

    /// `outside` still holds only `secret`, unchanged.
    fn check_outside(&self) {
        let names: Vec<_> = fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            ["secret"],
            "something was written outside the destination"
        );
        assert_eq!(fs::read(self.outside.join("secret")).unwrap(), b"untouched");
        // And nothing landed next to the destination either.
        let parent = self.dest.parent().unwrap();
        let mut around: Vec<_> = fs::read_dir(parent)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        around.sort();
        assert_eq!(around, ["dest", "outside"]);
    }

    fn refused(&self, deb: &[u8], entry: &str, reason: &str) {
        let e = self
            .extract(deb)
            .expect_err("a hostile package must be refused");
        let msg = e.to_string();
        println!("refused: {msg}");
        let prefix = format!("evil.deb: member `data.tar`: entry `{entry}`: ");
        assert!(
            msg.starts_with(&prefix),
            "`{msg}` should start with `{prefix}`"
        );
        assert!(msg.contains(reason), "`{msg}` should say `{reason}`");
        self.check_outside();
    }
}

#[test]
fn parent_directory_components_are_refused() {
    let s = sandbox();
    for path in [
        "./../evil",
        "../evil",
        "a/../../evil",
        "./usr/../../../outside/secret",
        "x/..",
    ] {
        let deb = hostile(&[dir("./"), file(path, b"pwned")]);
        s.refused(
            &deb,
            path,
            "`..` component; refusing to write outside the destination",
        );
    }
    let deb = hostile(&[dir("./"), dir("./../up")]);
    s.refused(&deb, "./../up", "`..` component");
}

#[test]
fn absolute_paths_are_refused() {
    let s = sandbox();
    let target = format!("{}/secret", s.outside.display());
    let deb = hostile(&[dir("./"), file(&target, b"pwned")]);
    s.refused(
        &deb,
        &target,
        "absolute path; refusing to write outside the destination",
    );
    let deb = hostile(&[file("/etc/evil", b"pwned")]);
    s.refused(&deb, "/etc/evil", "absolute path");
}

#[test]
fn writing_through_a_symlink_is_refused() {
    let s = sandbox();
    let outside = s.outside.display().to_string();
    // Absolute symlink to a directory outside, then a file through it.
    let deb = hostile(&[
        dir("./"),
        symlink_entry("./link", &outside),
        file("./link/pwned", b"pwned"),
    ]);
    s.refused(
        &deb,
        "./link/pwned",
        "`link` is a symbolic link; refusing to write through it",
    );

    // Relative `..` symlink, then a file through it.
    let _ = fs::remove_dir_all(&s.dest);
    let deb = hostile(&[symlink_entry("./up", ".."), file("./up/escaped", b"x")]);
    s.refused(&deb, "./up/escaped", "`up` is a symbolic link");

    // Deeper: the symlink is in the middle of the chain.
    let _ = fs::remove_dir_all(&s.dest);
    let deb = hostile(&[
        dir("./d"),
        symlink_entry("./d/l", "../../outside"),
        dir("./d/l/sub"),
    ]);
    s.refused(&deb, "./d/l/sub", "`d/l` is a symbolic link");
    let _ = fs::remove_dir_all(&s.dest);
    let deb = hostile(&[
        dir("./d"),
        symlink_entry("./d/l", "../../outside"),
        symlink_entry("./d/l/x", "/etc/passwd"),
    ]);
    s.refused(&deb, "./d/l/x", "`d/l` is a symbolic link");

    // A hard link placed through a symlink.
    let _ = fs::remove_dir_all(&s.dest);
    let deb = hostile(&[
        symlink_entry("./l", &outside),
        file("./f", b"f"),
        hardlink_entry("./l/f", "./f"),
    ]);
    s.refused(&deb, "./l/f", "`l` is a symbolic link");

    // A directory entry where a symlink was unpacked.
    let _ = fs::remove_dir_all(&s.dest);
    let deb = hostile(&[symlink_entry("./d2", &outside), dir("./d2")]);
    s.refused(
        &deb,
        "./d2",
        "a non-directory of that name was unpacked before",
    );
}

#[test]
fn hostile_hard_links_are_refused() {
    let s = sandbox();
    let deb = hostile(&[hardlink_entry("./h", "../outside/secret")]);
    s.refused(
        &deb,
        "./h",
        "hard link target `../outside/secret`: `..` component",
    );
    let _ = fs::remove_dir_all(&s.dest);
    let deb = hostile(&[hardlink_entry("./h", "/etc/passwd")]);
    s.refused(&deb, "./h", "hard link target `/etc/passwd`: absolute path");
    let _ = fs::remove_dir_all(&s.dest);
    let secret = format!("{}/secret", s.outside.display());
    let deb = hostile(&[symlink_entry("./s", &secret), hardlink_entry("./h", "./s")]);
    s.refused(
        &deb,
        "./h",
        "hard link to `./s`, which is not a regular file unpacked before it",
    );
    let _ = fs::remove_dir_all(&s.dest);
    let deb = hostile(&[
        file("./t", b"x"),
        symlink_entry("./t", &secret),
        hardlink_entry("./h", "./t"),
    ]);
    s.refused(
        &deb,
        "./h",
        "hard link to `./t`, which is not a regular file unpacked before it",
    );
    let _ = fs::remove_dir_all(&s.dest);
    let deb = hostile(&[hardlink_entry("./h", "./later"), file("./later", b"x")]);
    s.refused(&deb, "./h", "not a regular file unpacked before it");
    let _ = fs::remove_dir_all(&s.dest);
    let deb = hostile(&[file("./h", b"x"), hardlink_entry("./h", "./h")]);
    s.refused(&deb, "./h", "a hard link to itself");
}

#[test]
fn replacing_a_symlink_never_follows_it() {
    let s = sandbox();
    let secret = format!("{}/secret", s.outside.display());
    // A file over a symlink to an outside file replaces the link.
    let deb = hostile(&[symlink_entry("./link", &secret), file("./link", b"inside")]);
    let got = s.extract(&deb).unwrap();
    s.check_outside();
    let md = fs::symlink_metadata(s.dest.join("link")).unwrap();
    assert!(md.file_type().is_file());
    assert_eq!(fs::read(s.dest.join("link")).unwrap(), b"inside");
    assert_eq!(got.entries.len(), 2);
    // A symlink over a symlink, too.
    let deb = hostile(&[
        symlink_entry("./l2", &secret),
        symlink_entry("./l2", "elsewhere"),
    ]);
    s.extract(&deb).unwrap();
    assert_eq!(
        fs::read_link(s.dest.join("l2")).unwrap(),
        Path::new("elsewhere")
    );
    // A file over a directory is refused.
    let deb = hostile(&[dir("./d"), file("./d", b"x")]);
    let e = s.extract(&deb).unwrap_err().to_string();
    assert!(
        e.contains("entry `./d`: a directory of that name was unpacked before"),
        "{e}"
    );
    s.check_outside();
}

#[test]
fn devices_and_fifos_are_listed_not_created() {
    let s = sandbox();
    let special = |path: &'static str, kind| Raw {
        path: path.as_bytes(),
        kind,
        data: b"",
        link: b"",
        mode: 0o666,
    };
    let deb = hostile(&[
        dir("./dev"),
        special("./dev/null", tar::EntryType::Char),
        special("./dev/sda", tar::EntryType::Block),
    ]);
    let got = s.extract(&deb).unwrap();
    assert_eq!(got.skipped.len(), 2);
    assert_eq!(got.skipped[0].path, Path::new("dev/null"));
    assert_eq!(got.skipped[0].kind, SpecialKind::CharDevice);
    assert_eq!(got.skipped[0].device, Some((1, 3)));
    assert!(got.skipped[0].note.contains("not created"));
    assert_eq!(got.skipped[1].kind, SpecialKind::BlockDevice);
    assert!(!s.dest.join("dev/null").exists());
    assert!(s.dest.join("dev").is_dir());
}

#[test]
fn modes_and_owners_from_hand_built_archives() {
    let s = sandbox();
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, mode: u32, uid: u64, user: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).unwrap();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(1);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_username(user).unwrap();
        h.set_groupname(user).unwrap();
        h.set_cksum();
        tar.append(&h, &b"x"[..]).unwrap();
    };
    add("./plain", 0o644, 0, "root");
    add("./setuid", 0o4755, 0, "root");
    add("./sticky-file", 0o1644, 0, "root");
    add("./by-name", 0o640, 0, "shadow");
    add("./by-id", 0o600, 100, "");
    let deb = deb_with_data("data.tar", &tar.into_inner().unwrap());
    let got = s.extract(&deb).unwrap();
    let owners: Vec<_> = got
        .owners
        .iter()
        .map(|o| (o.path.to_str().unwrap(), o.uid, o.user.as_deref(), o.mode))
        .collect();
    assert_eq!(
        owners,
        [
            ("setuid", 0, Some("root"), 0o4755),
            ("by-name", 0, Some("shadow"), 0o640),
            ("by-id", 100, None, 0o600),
        ]
    );
    let mode = |p: &str| fs::metadata(s.dest.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("setuid"), 0o755);
    assert_eq!(mode("sticky-file"), 0o1644);
    assert_eq!(mode("by-id"), 0o600);
}

// ------------------------------------------------- compressions by hand

fn simple_data() -> Vec<u8> {
    raw_tar(&[dir("./"), dir("./usr"), file("./usr/hello", b"hello\n")])
}

#[test]
fn every_data_compression_reads() {
    let data = simple_data();
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&data).unwrap();
        e.finish().unwrap()
    };
    let xz = {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
        e.write_all(&data).unwrap();
        e.finish().unwrap()
    };
    let zst = zstd::encode_all(&data[..], 3).unwrap();
    let bz2 = {
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        e.write_all(&data).unwrap();
        e.finish().unwrap()
    };
    let lzma = {
        let opts = liblzma::stream::LzmaOptions::new_preset(6).unwrap();
        let stream = liblzma::stream::Stream::new_lzma_encoder(&opts).unwrap();
        let mut e = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
        e.write_all(&data).unwrap();
        e.finish().unwrap()
    };
    for (name, bytes, c) in [
        ("data.tar", &data, Compression::None),
        ("data.tar.gz", &gz, Compression::Gzip),
        ("data.tar.xz", &xz, Compression::Xz),
        ("data.tar.zst", &zst, Compression::Zstd),
        ("data.tar.bz2", &bz2, Compression::Bzip2),
        ("data.tar.lzma", &lzma, Compression::Lzma),
    ] {
        let s = sandbox();
        let got = s
            .extract(&deb_with_data(name, bytes))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.data_compression, c);
        assert_eq!(
            fs::read(s.dest.join("usr/hello")).unwrap(),
            b"hello\n",
            "{name}"
        );
        assert_eq!(got.entries.len(), 2);
    }
}

// --------------------------------------------------------- malformed

fn format_error(deb: &[u8]) -> String {
    let s = sandbox();
    let e = s
        .extract(deb)
        .expect_err("a malformed package must be refused")
        .to_string();
    s.check_outside();
    println!("refused: {e}");
    e
}

#[test]
fn malformed_packages_are_refused_by_name() {
    let data = simple_data();
    let ctl = control_tar();

    let e = format_error(b"hello, world");
    assert!(
        e.starts_with("evil.deb: not a .deb: expected the ar magic"),
        "{e}"
    );

    let e = format_error(&ar_archive(&[("control.tar", &ctl), ("data.tar", &data)]));
    assert_eq!(
        e,
        "evil.deb: expected member `debian-binary` first, found `control.tar`"
    );

    let e = format_error(&ar_archive(&[
        ("debian-binary", b"3.0\n"),
        ("control.tar", &ctl),
    ]));
    assert!(
        e.starts_with("evil.deb: member `debian-binary`: expected format version `2.0`"),
        "{e}"
    );
    assert!(e.contains("found \"3.0\\n\""), "{e}");

    let e = format_error(&ar_archive(&[
        ("debian-binary", b"2.0\n"),
        ("data.tar", &data),
    ]));
    assert!(e.contains("after `debian-binary`, found `data.tar`"), "{e}");

    let e = format_error(&ar_archive(&[
        ("debian-binary", b"2.0\n"),
        ("control.tar", &ctl),
    ]));
    assert!(e.contains("no data member"), "{e}");

    let e = format_error(&deb_with_data("data.tar.lz4", &data));
    assert!(e.contains("found `data.tar.lz4`"), "{e}");

    let no_control = raw_tar(&[file("./md5sums", b"")]);
    let e = format_error(&ar_archive(&[
        ("debian-binary", b"2.0\n"),
        ("control.tar", &no_control),
        ("data.tar", &data),
    ]));
    assert_eq!(
        e,
        "evil.deb: member `control.tar`: expected a `control` file, found none"
    );

    let bad_control = raw_tar(&[file("./control", b"Package: x\nbad line\n")]);
    let e = format_error(&ar_archive(&[
        ("debian-binary", b"2.0\n"),
        ("control.tar", &bad_control),
        ("data.tar", &data),
    ]));
    assert!(
        e.starts_with("evil.deb:control.tar:control:2: expected a field"),
        "{e}"
    );

    // Truncated in the middle of a file's data.
    let mut big = raw_tar(&[file("./big", &pseudo_random(10_000))]);
    big.truncate(4096);
    let e = format_error(&deb_with_data("data.tar", &big));
    assert!(
        e.starts_with("evil.deb: member `data.tar`: entry `./big`: truncated"),
        "{e}"
    );

    // Corrupt compressed data.
    let mut xz = {
        let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 6);
        enc.write_all(&raw_tar(&[file("./f", &pseudo_random(100_000))]))
            .unwrap();
        enc.finish().unwrap()
    };
    let mid = xz.len() / 2;
    xz[mid] ^= 0xff;
    let e = format_error(&deb_with_data("data.tar.xz", &xz));
    assert!(e.starts_with("evil.deb: member `data.tar.xz`"), "{e}");

    // A truncated ar header.
    let mut deb = deb_with_data("data.tar", &data);
    deb.truncate(8 + 60 + 4 + 30);
    let e = format_error(&deb);
    assert!(e.contains("truncated member header"), "{e}");
}

#[test]
fn reserved_members_and_gnu_names_are_accepted() {
    let data = simple_data();
    let deb = ar_archive(&[
        ("debian-binary/", b"2.0\n"),
        ("_gpgorigin", b"signature"),
        ("control.tar/", &control_tar()),
        ("_extra", b"odd"),
        ("data.tar/", &data),
        ("trailing", b"ignored"),
    ]);
    let s = sandbox();
    let got = s.extract(&deb).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.control.control_member, "control.tar");
    assert_eq!(got.control.control.get("Package"), Some("evil"));
    assert_eq!(fs::read(s.dest.join("usr/hello")).unwrap(), b"hello\n");
    let head = read_control_from("evil.deb", &deb[..]).unwrap();
    assert_eq!(head, got.control);
}

// ------------------------------------------------ the machine's .deb files

/// Unpacks the .deb files cached by apt (or those in
/// `ENVBUILD_TEST_DEB_DIR`) and compares each with `dpkg-deb -x`.
#[test]
fn cached_debs_unpack_like_dpkg_deb_x() {
    let dir = std::env::var_os("ENVBUILD_TEST_DEB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/apt/archives"));
    let mut debs: Vec<PathBuf> = fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "deb"))
                .collect()
        })
        .unwrap_or_default();
    if debs.is_empty() {
        println!(
            "note: no .deb files in {}; skipping the real-package check",
            dir.display()
        );
        return;
    }
    require("dpkg-deb");
    debs.sort();
    // Keep the run short: at most eight, spread over the list.
    let step = debs.len().div_ceil(8);
    let tmp = tempfile::tempdir().unwrap();
    for deb in debs.iter().step_by(step) {
        let got = compare_with_dpkg_deb(deb, tmp.path());
        println!(
            "{}: {} entries, {} owners noted, {} skipped",
            deb.display(),
            got.entries.len(),
            got.owners.len(),
            got.skipped.len()
        );
    }
}

#[test]
fn a_data_member_declared_longer_than_the_file_is_refused() {
    let data = simple_data();
    let mut deb = deb_with_data("data.tar", &data);
    // The data member is last: its header is the last `data.tar` name.
    let at = deb
        .windows(16)
        .rposition(|w| w == b"data.tar        ")
        .expect("the data member's header");
    let declared = data.len() as u64 + 1_000_000;
    let size = format!("{declared:<10}");
    deb[at + 48..at + 58].copy_from_slice(size.as_bytes());
    let e = format_error(&deb);
    assert_eq!(
        e,
        format!(
            "evil.deb: member `data.tar`: the ar header declares {declared} bytes, the file holds {}",
            data.len()
        )
    );
}

#[test]
fn lzma_data_asking_for_a_4_gib_dictionary_is_refused_instead_of_allocating_it() {
    // A .lzma header: properties, a dictionary of 4 GiB - 1, unknown size.
    let mut lzma = vec![0x5d];
    lzma.extend_from_slice(&u32::MAX.to_le_bytes());
    lzma.extend_from_slice(&[0xff; 8]);
    lzma.extend_from_slice(&[0; 32]);
    let e = format_error(&deb_with_data("data.tar.lzma", &lzma));
    assert!(e.starts_with("evil.deb: member `data.tar.lzma`"), "{e}");
    assert!(e.to_lowercase().contains("memory"), "{e}");
}
