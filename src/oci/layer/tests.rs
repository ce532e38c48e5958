use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use super::*;
use crate::oci::testutil::{read_tar, run, sha256_hex, store_tree, Tmp};

const EPOCH: u64 = 1_700_000_000;

/// The sample tree: names that test bytewise order, UTF-8, an executable,
/// a symlink and an empty directory.
fn sample(root: &Path) {
    store_tree(
        root,
        &[
            ("B", b"upper\n", false),
            ("a/b", b"a slash b\n", false),
            ("a-b", b"a dash b\n", false),
            ("a.b", b"a dot b\n", false),
            ("bin/hello", b"#!/bin/sh\necho hi\n", true),
            ("\u{e9}/\u{fc}.txt", "gr\u{fc}\u{df}e\n".as_bytes(), false),
        ],
        &[("bin/link", "hello")],
        &["empty"],
    );
}

fn src(root: &Path, prefix: &str, label: &str) -> LayerSource {
    LayerSource {
        root: root.to_path_buf(),
        prefix: prefix.to_string(),
        label: label.to_string(),
    }
}

fn layer(sources: &[LayerSource], c: Compression) -> (LayerBlob, Vec<u8>) {
    layer_with(sources, &BTreeMap::new(), c)
}

fn layer_with(
    sources: &[LayerSource],
    overrides: &BTreeMap<String, PathOverride>,
    c: Compression,
) -> (LayerBlob, Vec<u8>) {
    write_layer_to(sources, overrides, EPOCH, c, Vec::new()).unwrap()
}

fn err(sources: &[LayerSource]) -> String {
    write_layer_to(
        sources,
        &BTreeMap::new(),
        EPOCH,
        Compression::None,
        Vec::new(),
    )
    .unwrap_err()
    .to_string()
}

#[test]
fn order_parents_modes() {
    let t = Tmp::new();
    sample(&t.join("item"));
    let (blob, tar) = layer(
        &[src(&t.join("item"), "opt/app", "item")],
        Compression::None,
    );
    let entries = read_tar(&tar);
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "opt/",
            "opt/app/",
            "opt/app/B",
            "opt/app/a/",
            "opt/app/a-b",
            "opt/app/a.b",
            "opt/app/a/b",
            "opt/app/bin/",
            "opt/app/bin/hello",
            "opt/app/bin/link",
            "opt/app/empty/",
            "opt/app/\u{e9}/",
            "opt/app/\u{e9}/\u{fc}.txt",
        ]
    );
    for e in &entries {
        assert_eq!((e.uid, e.gid, e.mtime), (0, 0, EPOCH), "{}", e.path);
        assert!(e.uname.is_empty());
        let want = match e.kind {
            tar::EntryType::Directory => 0o755,
            tar::EntryType::Symlink => 0o777,
            tar::EntryType::Regular if e.path.ends_with("hello") => 0o755,
            tar::EntryType::Regular => 0o644,
            other => panic!("unexpected entry type {other:?}"),
        };
        assert_eq!(e.mode, want, "{}", e.path);
    }
    assert_eq!(entries[9].link.as_deref(), Some("hello"));
    assert_eq!(entries[12].data, "gr\u{fc}\u{df}e\n".as_bytes());
    // Ends with two zero blocks, DiffID = digest for an uncompressed blob.
    assert!(tar.len() % 512 == 0 && tar[tar.len() - 1024..].iter().all(|&b| b == 0));
    assert_eq!(blob.diff_id, format!("sha256:{}", sha256_hex(&tar)));
    assert_eq!(blob.digest, blob.diff_id);
    assert_eq!(blob.size, tar.len() as u64);
    assert_eq!(blob.media_type, "application/vnd.oci.image.layer.v1.tar");
    // GNU tar agrees with the order and types.
    let listing = gnu_tar_list(&tar);
    assert!(listing.contains("drwxr-xr-x 0/0"), "{listing}");
    assert!(listing.contains("-rwxr-xr-x 0/0"), "{listing}");
    assert!(listing.contains("opt/app/bin/link -> hello"), "{listing}");
}

fn gnu_tar_list(tar: &[u8]) -> String {
    let t = Tmp::new();
    let path = t.join("x.tar");
    std::fs::write(&path, tar).unwrap();
    run(Command::new("tar")
        .env("TZ", "UTC")
        .env("LC_ALL", "C.UTF-8")
        .arg("-tvf")
        .arg(&path))
}

#[test]
fn root_prefix_has_no_root_entry() {
    let t = Tmp::new();
    sample(&t.join("item"));
    let (_, tar) = layer(&[src(&t.join("item"), "/", "item")], Compression::None);
    let entries = read_tar(&tar);
    assert_eq!(entries[0].path, "B");
    assert_eq!(entries[1].path, "a/");
    assert_eq!(entries.len(), 11);
}

#[test]
fn same_bytes_regardless_of_source_metadata() {
    let t = Tmp::new();
    // Two physical copies, the second with other mtimes and permissions
    // (only the owner-x bit matters) and created in another order.
    sample(&t.join("one"));
    let two = t.join("two");
    std::fs::create_dir_all(two.join("empty")).unwrap();
    for (p, data, mode) in [
        ("\u{e9}/\u{fc}.txt", "gr\u{fc}\u{df}e\n".as_bytes(), 0o600),
        ("bin/hello", b"#!/bin/sh\necho hi\n", 0o700),
        ("a.b", b"a dot b\n", 0o666),
        ("a-b", b"a dash b\n", 0o640),
        ("a/b", b"a slash b\n", 0o604),
        ("B", b"upper\n", 0o444),
    ] {
        let path = two.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, data).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    std::os::unix::fs::symlink("hello", two.join("bin/link")).unwrap();
    run(Command::new("touch")
        .args(["-h", "-d", "2001-02-03 04:05:06"])
        .arg(two.join("bin/link"))
        .arg(two.join("a"))
        .arg(two.join("B")));
    for c in [
        Compression::None,
        Compression::Zstd { level: 3 },
        Compression::Gzip { level: 6 },
    ] {
        let (b1, t1) = layer(&[src(&t.join("one"), "", "one")], c);
        let (b1again, t1again) = layer(&[src(&t.join("one"), "", "one")], c);
        let (b2, t2) = layer(&[src(&two, "", "two")], c);
        assert_eq!(t1, t1again);
        assert_eq!(b1, b1again);
        assert_eq!(t1, t2, "{c:?}");
        assert_eq!(b1, b2);
    }
    // Another process with another umask and time zone: same bytes.
    let out = t.join("child.tar.zst");
    let exe = std::env::current_exe().unwrap();
    run(Command::new("sh")
        .arg("-c")
        .arg(r#"umask 077; exec "$0" --exact oci::layer::tests::child_writes_layer --test-threads=1 -q"#)
        .arg(&exe)
        .env("TZ", "Pacific/Chatham")
        .env("ENVBUILD_OCI_CHILD_SRC", t.join("one"))
        .env("ENVBUILD_OCI_CHILD_OUT", &out)
        .stdout(Stdio::piped()));
    let child = std::fs::read(&out).unwrap();
    let (_, here) = layer(&[src(&two, "", "two")], Compression::default());
    assert_eq!(child, here);
}

/// Writes a layer when run as a child of the test above; a no-op otherwise.
#[test]
fn child_writes_layer() {
    let (Some(src_dir), Some(out)) = (
        std::env::var_os("ENVBUILD_OCI_CHILD_SRC"),
        std::env::var_os("ENVBUILD_OCI_CHILD_OUT"),
    ) else {
        return;
    };
    write_layer(
        &[src(Path::new(&src_dir), "", "child")],
        &BTreeMap::new(),
        EPOCH,
        Compression::default(),
        Path::new(&out),
    )
    .unwrap();
}

#[test]
fn long_names_use_pax_and_round_trip() {
    let t = Tmp::new();
    let long_file = "f".repeat(150);
    let long_dir = "d".repeat(160);
    let deep = format!("{long_dir}/{}", "g".repeat(120));
    let split = format!("{}/{}/leaf", "p".repeat(60), "q".repeat(60));
    let target = format!("../{}/{}", "t".repeat(100), "u".repeat(100));
    let files: Vec<(&str, &[u8], bool)> = vec![
        (&long_file, b"150\n", false),
        (&deep, b"deep\n", false),
        (&split, b"split\n", true),
    ];
    store_tree(&t.join("item"), &files, &[("link", &target)], &[]);
    let (_, tar) = layer(&[src(&t.join("item"), "", "item")], Compression::None);
    let raw = String::from_utf8_lossy(&tar);
    assert!(raw.contains("././@PaxHeader"));
    assert!(raw.contains(&format!(" path={long_file}\n")));
    assert!(raw.contains(&format!(" path={deep}\n")));
    assert!(raw.contains(&format!(" linkpath={target}\n")));
    assert!(!raw.contains("././@LongLink"), "no GNU long names");
    assert!(
        !raw.contains(&format!("path={split}")),
        "a path that fits prefix+name needs no pax"
    );
    let entries = read_tar(&tar);
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    let dir_entry = format!("{long_dir}/");
    let p_dir = format!("{}/", "p".repeat(60));
    let q_dir = format!("{}/{}/", "p".repeat(60), "q".repeat(60));
    assert_eq!(
        paths,
        [
            dir_entry.as_str(),
            deep.as_str(),
            long_file.as_str(),
            "link",
            p_dir.as_str(),
            q_dir.as_str(),
            split.as_str()
        ]
    );
    assert_eq!(entries[1].data, b"deep\n");
    assert_eq!(entries[3].link.as_deref(), Some(target.as_str()));
    assert_eq!(entries[6].mode, 0o755);
    let listing = gnu_tar_list(&tar);
    for name in [&long_file, &deep, &split] {
        assert!(
            listing.lines().any(|l| l.ends_with(name.as_str())),
            "{name} in {listing}"
        );
    }
    assert!(listing.contains(&format!("link -> {target}")), "{listing}");
}

#[test]
fn overrides_apply() {
    let t = Tmp::new();
    sample(&t.join("item"));
    let mut o = BTreeMap::new();
    o.insert(
        "/opt/app/bin/hello".to_string(),
        PathOverride {
            mode: Some(0o4750),
            uid: Some(1000),
            gid: Some(1001),
        },
    );
    o.insert(
        "opt/".to_string(),
        PathOverride {
            mode: Some(0o1777),
            ..Default::default()
        },
    );
    o.insert(
        "not/in/this/layer".to_string(),
        PathOverride {
            uid: Some(5),
            ..Default::default()
        },
    );
    o.insert(
        "opt/app/B".to_string(),
        PathOverride {
            uid: Some(3_000_000),
            ..Default::default()
        },
    );
    let (_, tar) = layer_with(
        &[src(&t.join("item"), "opt/app", "item")],
        &o,
        Compression::None,
    );
    let entries = read_tar(&tar);
    let get = |p: &str| entries.iter().find(|e| e.path == p).unwrap();
    let hello = get("opt/app/bin/hello");
    assert_eq!((hello.mode, hello.uid, hello.gid), (0o4750, 1000, 1001));
    assert_eq!(get("opt/").mode, 0o1777);
    // A uid beyond ustar's 7 octal digits goes into a pax record.
    assert_eq!(get("opt/app/B").uid, 3_000_000);
    assert_eq!(get("opt/app/a-b").uid, 0);

    // Bad overrides.
    let bad = |path: &str, mode: u32| {
        let mut o = BTreeMap::new();
        o.insert(
            path.to_string(),
            PathOverride {
                mode: Some(mode),
                ..Default::default()
            },
        );
        write_layer_to(
            &[src(&t.join("item"), "", "item")],
            &o,
            EPOCH,
            Compression::None,
            Vec::new(),
        )
        .unwrap_err()
        .to_string()
    };
    assert!(bad("B", 0o10000).contains("0o10000"));
    assert!(bad("a/../B", 0o644).contains("a/../B"));
    assert!(bad("/", 0o644).contains("below the image root"));
    let mut twice = BTreeMap::new();
    twice.insert("B".to_string(), PathOverride::default());
    twice.insert("/B".to_string(), PathOverride::default());
    let e = write_layer_to(
        &[src(&t.join("item"), "", "item")],
        &twice,
        EPOCH,
        Compression::None,
        Vec::new(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("one override per image path"), "{e}");
}

#[test]
fn duplicates_identical_and_different() {
    let t = Tmp::new();
    let shared = b"# nvidia namespace\n";
    store_tree(
        &t.join("one"),
        &[
            ("nvidia/__init__.py", shared, false),
            ("nvidia/cublas/x", b"1", false),
        ],
        &[("lib", "usr/lib")],
        &[],
    );
    store_tree(
        &t.join("two"),
        &[
            ("nvidia/__init__.py", shared, false),
            ("nvidia/cudnn/y", b"2", false),
        ],
        &[("lib", "usr/lib")],
        &[],
    );
    let (_, tar) = layer(
        &[
            src(&t.join("one"), "", "one"),
            src(&t.join("two"), "", "two"),
        ],
        Compression::None,
    );
    let paths: Vec<String> = read_tar(&tar).into_iter().map(|e| e.path).collect();
    assert_eq!(
        paths,
        [
            "lib",
            "nvidia/",
            "nvidia/__init__.py",
            "nvidia/cublas/",
            "nvidia/cublas/x",
            "nvidia/cudnn/",
            "nvidia/cudnn/y"
        ]
    );

    store_tree(
        &t.join("three"),
        &[("nvidia/__init__.py", b"# NVIDIA namespace\n", false)],
        &[],
        &[],
    );
    let e = err(&[
        src(&t.join("one"), "", "one"),
        src(&t.join("three"), "", "three"),
    ]);
    assert!(e.contains("/nvidia/__init__.py"), "{e}");
    assert!(e.contains("one (") && e.contains("three ("), "{e}");
    assert!(e.contains("differ from offset 2"), "{e}");

    store_tree(
        &t.join("four"),
        &[("nvidia/__init__.py", shared, true)],
        &[],
        &[],
    );
    let e = err(&[
        src(&t.join("one"), "", "one"),
        src(&t.join("four"), "", "four"),
    ]);
    assert!(
        e.contains("not executable") && e.contains(", executable"),
        "{e}"
    );

    // A directory where the other source has a symlink.
    store_tree(&t.join("five"), &[("lib/libz.so", b"z", false)], &[], &[]);
    let e = err(&[
        src(&t.join("one"), "", "one"),
        src(&t.join("five"), "", "five"),
    ]);
    assert!(
        e.contains("/lib ") && e.contains("a symlink to \"usr/lib\"") && e.contains("a directory"),
        "{e}"
    );

    // A file where another source's prefix needs a parent directory.
    let e = err(&[
        src(&t.join("one"), "", "one"),
        src(&t.join("two"), "nvidia/__init__.py/sub", "two"),
    ]);
    assert!(e.contains("parent directory of its prefix"), "{e}");

    // Different symlink targets.
    store_tree(&t.join("six"), &[], &[("lib", "usr/lib64")], &[]);
    let e = err(&[
        src(&t.join("one"), "", "one"),
        src(&t.join("six"), "", "six"),
    ]);
    assert!(e.contains("usr/lib64"), "{e}");
}

#[test]
fn file_and_symlink_sources_and_hardlinks() {
    let t = Tmp::new();
    std::fs::write(t.join("passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
    std::os::unix::fs::symlink("/usr/bin/python3.11", t.join("pylink")).unwrap();
    // Hardlinked files on disk become two regular entries.
    std::fs::create_dir(t.join("hl")).unwrap();
    std::fs::write(t.join("hl/a"), b"same inode\n").unwrap();
    std::fs::hard_link(t.join("hl/a"), t.join("hl/b")).unwrap();
    let (_, tar) = layer(
        &[
            src(&t.join("passwd"), "etc/passwd", "passwd"),
            src(&t.join("pylink"), "usr/bin/python", "pylink"),
            src(&t.join("hl"), "", "hl"),
        ],
        Compression::None,
    );
    let entries = read_tar(&tar);
    let summary: Vec<(&str, tar::EntryType)> =
        entries.iter().map(|e| (e.path.as_str(), e.kind)).collect();
    use tar::EntryType::*;
    assert_eq!(
        summary,
        [
            ("a", Regular),
            ("b", Regular),
            ("etc/", Directory),
            ("etc/passwd", Regular),
            ("usr/", Directory),
            ("usr/bin/", Directory),
            ("usr/bin/python", Symlink)
        ]
    );
    assert_eq!(entries[1].data, b"same inode\n");
    // A file cannot be the image root.
    let e = err(&[src(&t.join("passwd"), "", "passwd")]);
    assert!(
        e.contains("a directory, since its prefix is the image root"),
        "{e}"
    );
    // Bad prefixes.
    let e = err(&[src(&t.join("hl"), "usr/../etc", "hl")]);
    assert!(e.contains("prefix of layer source hl"), "{e}");
    // Missing source.
    let e = err(&[src(&t.join("missing"), "", "gone")]);
    assert!(e.contains("missing"), "{e}");
}

#[test]
fn special_files_are_rejected() {
    let t = Tmp::new();
    std::fs::create_dir(t.join("item")).unwrap();
    run(Command::new("mkfifo").arg(t.join("item/fifo")));
    let e = err(&[src(&t.join("item"), "", "weird-item")]);
    assert!(
        e.contains("weird-item") && e.contains("a FIFO") && e.contains("fifo"),
        "{e}"
    );
}

#[test]
fn compressed_blobs_decompress_to_the_diff_id() {
    let t = Tmp::new();
    sample(&t.join("item"));
    let sources = [src(&t.join("item"), "", "item")];
    let (plain, tar) = layer(&sources, Compression::None);
    for (c, tool) in [
        (Compression::Zstd { level: 3 }, "zstd"),
        (Compression::Zstd { level: 19 }, "zstd"),
        (Compression::Gzip { level: 6 }, "gzip"),
        (Compression::Gzip { level: 9 }, "gzip"),
    ] {
        let out = t.join("blob");
        let blob = write_layer(&sources, &BTreeMap::new(), EPOCH, c, &out).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(blob.diff_id, plain.diff_id, "{c:?}");
        assert_eq!(blob.digest, format!("sha256:{}", sha256_hex(&bytes)));
        assert_eq!(blob.size, bytes.len() as u64);
        assert_eq!(blob.media_type, c.media_type());
        assert_eq!(blob.compression, c.identity());
        let cmd = crate::oci::testutil::output(Command::new(tool).args(["-d", "-c"]).arg(&out));
        assert!(
            cmd.status.success(),
            "{tool}: {}",
            String::from_utf8_lossy(&cmd.stderr)
        );
        assert_eq!(cmd.stdout, tar, "{c:?}");
        assert_eq!(format!("sha256:{}", sha256_hex(&cmd.stdout)), blob.diff_id);
        if tool == "zstd" {
            run(Command::new("zstd").arg("-t").arg(&out));
        }
        std::fs::remove_file(&out).unwrap();
    }
    // Invalid levels are refused before anything is written.
    let e = write_layer(
        &sources,
        &BTreeMap::new(),
        EPOCH,
        Compression::Zstd { level: 99 },
        &t.join("never"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("zstd compression level"), "{e}");
}

#[test]
fn empty_layer() {
    let (blob, tar) = layer(&[], Compression::None);
    assert_eq!(tar, vec![0u8; 1024]);
    assert_eq!(
        blob.diff_id,
        "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
    );
}

/// Keeps the first 64 KiB written and counts the rest.
struct Head {
    head: Vec<u8>,
    total: u64,
}

impl Write for Head {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = (64usize << 10)
            .saturating_sub(self.head.len())
            .min(buf.len());
        self.head.extend_from_slice(&buf[..room]);
        self.total += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A file of 8 GiB + 1 (sparse on disk) needs a pax `size` record; memory
/// stays flat. Slow (hashes 8 GiB): `cargo test --lib -- --ignored huge`.
#[test]
#[ignore]
fn huge_file_streams_with_pax_size() {
    let t = Tmp::new();
    std::fs::create_dir(t.join("item")).unwrap();
    let f = std::fs::File::create(t.join("item/weights.bin")).unwrap();
    f.set_len((8 << 30) + 1).unwrap();
    drop(f);
    let start = std::time::Instant::now();
    let (blob, head) = write_layer_to(
        &[src(&t.join("item"), "", "item")],
        &BTreeMap::new(),
        EPOCH,
        Compression::None,
        Head {
            head: Vec::new(),
            total: 0,
        },
    )
    .unwrap();
    assert!(String::from_utf8_lossy(&head.head).contains("19 size=8589934593\n"));
    assert_eq!(blob.tar_size, head.total);
    assert_eq!(head.total, 512 * 3 + (8 << 30) + 512 + 1024);
    eprintln!(
        "8 GiB + 1 uncompressed: {:?}, peak RSS {} MiB",
        start.elapsed(),
        peak_rss_kib() >> 10
    );
    assert!(peak_rss_kib() < 512 << 10, "memory grew with the file");
}

/// A 2 GiB file through zstd level 3 into a file: reports time and memory.
#[test]
#[ignore]
fn two_gib_zstd_streams() {
    let t = Tmp::new();
    std::fs::create_dir(t.join("item")).unwrap();
    // Incompressible-ish but cheap: a 1 MiB pseudo-random block repeated
    // beyond zstd's window, so compression really works.
    let mut block = vec![0u8; 1 << 20];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for b in block.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 56) as u8;
    }
    let mut f = std::fs::File::create(t.join("item/model.bin")).unwrap();
    for i in 0..2048u32 {
        block[..4].copy_from_slice(&i.to_le_bytes());
        f.write_all(&block).unwrap();
    }
    drop(f);
    let start = std::time::Instant::now();
    let blob = write_layer(
        &[src(&t.join("item"), "", "item")],
        &BTreeMap::new(),
        EPOCH,
        Compression::default(),
        &t.join("blob"),
    )
    .unwrap();
    eprintln!(
        "2 GiB zstd-3: {:?}, blob {} bytes, peak RSS {} MiB",
        start.elapsed(),
        blob.size,
        peak_rss_kib() >> 10
    );
    assert!(peak_rss_kib() < 512 << 10, "memory grew with the file");
}
