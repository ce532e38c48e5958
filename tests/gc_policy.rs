//! `envbuild store gc` keeps what a team needs: a live spec's fetched inputs
//! (so it still realizes `--offline`), nothing in a dry run; and it lets go
//! of what a deleted spec kept, within the age and size limits asked.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::http::{serve, Behaviour};
use common::*;

/// A spec with one app file and one wheel fetched from `url`.
fn url_wheel_spec(dir: &Path, name: &str, url: &str, sha256: &str) -> PathBuf {
    write(dir.join("app/hello.txt"), name.as_bytes(), 0o644);
    let spec = dir.join(format!("{name}.toml"));
    fs::write(
        &spec,
        format!(
            "[env]\nname = \"{name}\"\nsystem = \"x86_64-linux\"\nsource-date-epoch = 1700000000\n\n\
             [[files]]\nsrc = \"app\"\ndst = \"/app\"\n\n[[wheels]]\nurl = \"{url}\"\nsha256 = \"{sha256}\"\n"
        ),
    )
    .unwrap();
    spec
}

fn gc(store: &Path, args: &[&str]) -> serde_json::Value {
    let mut all: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"--json", &"store", &"gc"];
    for a in args {
        all.push(a);
    }
    let out = ok(run(store, &all), "store gc");
    serde_json::from_str(&out).expect("gc --json prints JSON")
}

fn items(store: &Path) -> usize {
    fs::read_dir(store)
        .unwrap()
        .filter(|e| {
            !e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count()
}

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    store: PathBuf,
    server: common::http::Server,
    sha: String,
}

fn fixture() -> Fixture {
    let wheel = build_wheel(
        "remote",
        "1.0",
        &[("remote/__init__.py", b"print('remote')\n")],
        &[],
    );
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&wheel));
    let server = serve(vec![(
        "/remote-1.0-py3-none-any.whl",
        Behaviour::Serve(wheel),
    )]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    Fixture {
        store: dir.join("store"),
        dir,
        _tmp: tmp,
        server,
        sha,
    }
}

#[test]
fn after_gc_a_live_spec_still_realizes_offline_and_keep_fetched_false_lets_the_wheel_go() {
    let f = fixture();
    let url = format!("{}/remote-1.0-py3-none-any.whl", f.server.base);
    let spec = url_wheel_spec(&f.dir.join("a"), "a", &url, &f.sha);
    let out = f.dir.join("a.tar");
    let digest = realize(&f.store, &spec, &out, &[]);
    // The fetched wheel is a file item (its unpacked tree a directory).
    let fetched = |store: &Path| {
        fs::read_dir(store)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| {
                e.file_type().unwrap().is_file()
                    && e.file_name()
                        .to_string_lossy()
                        .ends_with("remote-1.0-py3-none-any.whl")
            })
            .count()
    };
    assert_eq!(fetched(&f.store), 1);

    let report = gc(&f.store, &[]);
    assert!(
        report["deadRoots"].as_array().unwrap().is_empty(),
        "{report}"
    );
    assert_eq!(
        fetched(&f.store),
        1,
        "gc removed a live spec's fetched wheel: {report}"
    );
    verify_clean(&f.store);
    drop(f.server);
    fs::remove_file(&out).unwrap();
    assert_eq!(
        realize(&f.store, &spec, &out, &["--offline"]),
        digest,
        "an offline realize after gc"
    );

    let report = gc(&f.store, &["--keep-fetched=false"]);
    assert_eq!(fetched(&f.store), 0, "{report}");
    let o = run(
        &f.store,
        &[&"realize", &spec, &"-o", &f.dir.join("b.tar"), &"--offline"],
    );
    let err = fails(o, "offline realize without the wheel");
    assert!(err.contains("remote-1.0-py3-none-any.whl"), "{err}");
    verify_clean(&f.store);
}

#[test]
fn a_dry_run_lists_what_would_go_and_removes_nothing_then_a_deleted_specs_items_go() {
    let f = fixture();
    let url = format!("{}/remote-1.0-py3-none-any.whl", f.server.base);
    let keep = url_wheel_spec(&f.dir.join("keep"), "keep", &url, &f.sha);
    let gone = url_wheel_spec(&f.dir.join("gone"), "gone", &url, &f.sha);
    realize(&f.store, &keep, &f.dir.join("keep.tar"), &[]);
    realize(&f.store, &gone, &f.dir.join("gone.tar"), &[]);
    fs::remove_file(&gone).unwrap();
    let before = items(&f.store);

    let dry = gc(&f.store, &["--dry-run"]);
    assert_eq!(dry["dryRun"], true);
    let dead_root = format!("spec:{}", gone.display());
    assert!(
        dry["deadRoots"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == &dead_root),
        "{dry}"
    );
    let would = dry["removed"].as_array().unwrap().len();
    assert!(would > 0, "{dry}");
    assert_eq!(items(&f.store), before, "a dry run removed items");
    let roots = ok(run(&f.store, &[&"store", &"root", &"list"]), "root list");
    assert!(
        roots.contains(&dead_root),
        "a dry run removed a root: {roots}"
    );

    let real = gc(&f.store, &[]);
    assert_eq!(
        real["removed"], dry["removed"],
        "the dry run said what gc does"
    );
    assert_eq!(real["bytesFreed"], dry["bytesFreed"]);
    assert!(real["bytesFreed"].as_u64().unwrap() > 0);
    assert_eq!(items(&f.store), before - would);
    let roots = ok(run(&f.store, &[&"store", &"root", &"list"]), "root list");
    assert!(!roots.contains(&dead_root), "{roots}");
    // The live spec's image is untouched: a locked, offline realize builds
    // nothing new into its layers.
    drop(f.server);
    realize(
        &f.store,
        &keep,
        &f.dir.join("keep2.tar"),
        &["--locked", "--offline"],
    );
    verify_clean(&f.store);
}

#[test]
fn max_size_and_older_than_limit_what_goes_and_never_break_references() {
    let f = fixture();
    let url = format!("{}/remote-1.0-py3-none-any.whl", f.server.base);
    let spec = url_wheel_spec(&f.dir.join("s"), "s", &url, &f.sha);
    realize(&f.store, &spec, &f.dir.join("s.tar"), &[]);
    fs::remove_file(&spec).unwrap();

    // Everything is younger than a day: nothing goes.
    let young = gc(&f.store, &["--older-than", "1d"]);
    assert!(young["removed"].as_array().unwrap().is_empty(), "{young}");
    assert!(young["keptGarbage"].as_u64().unwrap() > 0, "{young}");
    verify_clean(&f.store);

    // A limit above the store's size: nothing goes either.
    let all = gc(&f.store, &["--dry-run"]);
    let total = all["bytesFreed"].as_u64().unwrap() + all["bytesLeft"].as_u64().unwrap();
    let roomy = gc(&f.store, &["--max-size", &total.to_string()]);
    assert!(roomy["removed"].as_array().unwrap().is_empty(), "{roomy}");

    // Just under it: some go, the rest fits, and what stays is closed
    // under references (verify checks them).
    let tight = gc(&f.store, &["--max-size", &(total - 1).to_string()]);
    let removed = tight["removed"].as_array().unwrap().len();
    assert!(removed >= 1, "{tight}");
    assert!(tight["bytesLeft"].as_u64().unwrap() < total, "{tight}");
    assert!(tight["keptGarbage"].as_u64().unwrap() > 0, "{tight}");
    verify_clean(&f.store);

    // No limit: the rest of the garbage goes.
    let rest = gc(&f.store, &["--max-size", "0"]);
    assert_eq!(rest["keptGarbage"], 0, "{rest}");
    assert_eq!(items(&f.store), 0, "{rest}");
    verify_clean(&f.store);
}
