//! Every fetcher against every fault of `common::faults`: a clear error
//! within 60 s, or success where a retry or a restart is right; nothing
//! partial in the store (`Store::verify` clean, nothing registered after a
//! failure) and nothing written outside it.
//!
//! The stall timeout is 1 s here (`ENVBUILD_NET_STALL_TIMEOUT`), the
//! document limit 4 MiB (`ENVBUILD_NET_MAX_DOCUMENT`).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::faults::{Fault, FaultServer};
use envbuild::fetch::{self, FetchOptions};
use envbuild_store::Store;
use sha2::Digest;

/// The environment of every test, set once before any request is made;
/// returns the directory `TMPDIR` points to, which must stay empty.
fn setup() -> &'static Path {
    static OUTSIDE: OnceLock<PathBuf> = OnceLock::new();
    OUTSIDE.get_or_init(|| {
        let outside = tempfile::tempdir().unwrap().keep();
        // Edition 2021: set_var is safe. Every test calls setup() before
        // anything else and waits for this initialisation, so no thread
        // reads the environment while it changes.
        std::env::set_var("ENVBUILD_NET_STALL_TIMEOUT", "1");
        std::env::set_var("ENVBUILD_NET_RETRY_TIME", "30");
        std::env::set_var("ENVBUILD_NET_MAX_DOCUMENT", (4u64 << 20).to_string());
        std::env::set_var("TMPDIR", &outside);
        outside
    })
}

/// What a case must end in.
#[derive(Debug, Clone, Copy)]
enum Want {
    Ok,
    /// Not a fault for this fetcher (extra bytes in an unpinned document
    /// are the parser's or the signature's business).
    Skip,
    /// An error whose text (with its sources) contains this.
    Err(&'static str),
}

/// The faults every fetcher meets, and what a fetcher that downloads a
/// pinned file (resumable, size known) must do with each.
fn faults() -> Vec<(Fault, Want, Want)> {
    // (fault, for a pinned resumable download, for a whole document)
    vec![
        (
            Fault::StallBeforeHeaders,
            Want::Err("no data for 1 s"),
            Want::Err("no data for 1 s"),
        ),
        (
            Fault::StallMidBody(100),
            Want::Err("no data for 1 s"),
            Want::Err("no data for 1 s"),
        ),
        (
            Fault::ResetMidBody(100),
            Want::Err("gave up after"),
            Want::Err("gave up after"),
        ),
        // Announced 100 bytes longer than the pinned size: refused at once.
        (
            Fault::WrongLength,
            Want::Err("is longer than"),
            Want::Err("gave up after"),
        ),
        (Fault::StatusThen(503, 2), Want::Ok, Want::Ok),
        (Fault::TooManyThen(1), Want::Ok, Want::Ok),
        (
            Fault::StatusThen(500, 99),
            Want::Err("500 (expected"),
            Want::Err("500 (expected"),
        ),
        (
            Fault::RedirectLoop,
            Want::Err("redirect"),
            Want::Err("redirect"),
        ),
        (Fault::RangeAnsweredWith200(100), Want::Ok, Want::Ok),
        (
            Fault::RangeFromWrongOffset(100),
            Want::Err("Content-Range"),
            Want::Ok,
        ),
        (
            Fault::Gzip,
            Want::Err("Content-Encoding \"gzip\""),
            Want::Err("Content-Encoding \"gzip\""),
        ),
        (
            Fault::Endless,
            Want::Err("is longer than"),
            Want::Err("is longer than 4194304 bytes"),
        ),
        (
            Fault::Longer(10),
            Want::Err("(the pinned size)"),
            Want::Skip,
        ),
        (Fault::None, Want::Ok, Want::Ok),
    ]
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

/// Deterministic bytes that are not all alike.
fn payload(n: usize) -> Vec<u8> {
    let mut rng = common::Rng::new(n as u64);
    rng.bytes(n)
}

fn check(what: &str, fault: Fault, want: Want, started: Instant, got: Result<(), String>) {
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(60),
        "{what} with {fault:?} took {took:?}"
    );
    match (want, got) {
        (Want::Skip, _) => {}
        (Want::Ok, Ok(())) => {}
        (Want::Err(needle), Err(text)) => assert!(
            text.contains(needle),
            "{what} with {fault:?}: expected an error containing {needle:?}, got: {text}"
        ),
        (want, got) => panic!("{what} with {fault:?}: expected {want:?}, got {got:?}"),
    }
}

/// The store holds exactly `items` valid items and nothing half-added.
fn assert_store_clean(store: &Store, items: usize, what: &str) {
    let report = store.verify(|_, _, _| {}).unwrap();
    assert!(
        report.problems.is_empty() && report.unregistered.is_empty() && report.checked == items,
        "{what}: store not clean: {} checked (expected {items}), problems {:?}, unregistered {:?}",
        report.checked,
        report.problems,
        report.unregistered
    );
}

fn assert_nothing_outside(what: &str) {
    let left: Vec<_> = std::fs::read_dir(setup())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "{what} wrote outside the store: {left:?}");
}

/// Run `case` for every fault at once (most of a case's time is spent
/// waiting for timeouts and backoffs), each on its own thread.
fn for_every_fault(case: impl Fn(usize, Fault, Want, Want) + Sync) {
    std::thread::scope(|scope| {
        let case = &case;
        for (i, (fault, pinned, document)) in faults().into_iter().enumerate() {
            scope.spawn(move || case(i, fault, pinned, document));
        }
    });
}

/// A fixed-output fetch (pinned sha256 and size) of each kind of file.
#[test]
fn fixed_output_fetches_of_a_wheel_a_deb_and_a_model_file_survive_every_fault() {
    setup();
    let server = FaultServer::start();
    let body = payload(300_000);
    let sha = sha256_hex(&body);
    for_every_fault(|i, fault, want, _| {
        for name in [
            "alpha-1.0-py3-none-any.whl",
            "hello_1.0_amd64.deb",
            "model.safetensors",
        ] {
            let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
            let mut store = Store::open(tmp.path().join("store")).unwrap();
            let path = format!("/files/{i}/{name}");
            server.route(&path, body.clone(), "application/octet-stream", fault);
            let url = format!("{}{path}?token=s3cret", server.base);
            let started = Instant::now();
            let got = fetch::fetch_sized(
                &mut store,
                &url,
                &sha,
                Some(body.len() as u64),
                name,
                &FetchOptions::default(),
            )
            .map(|f| {
                let on_disk = std::fs::read(store.physical_path(&f.item)).unwrap();
                assert!(on_disk == body, "{name} with {fault:?}: wrong bytes stored");
            })
            .map_err(|e| chain(&e));
            if let Err(text) = &got {
                assert!(!text.contains("s3cret"), "token shown: {text}");
            }
            let ok = got.is_ok();
            check(name, fault, want, started, got);
            assert_store_clean(&store, usize::from(ok), name);
            if fault == Fault::StatusThen(503, 2) {
                assert_eq!(server.requests(&path), 3, "503 twice, then served");
            }
        }
    });
    assert_nothing_outside("fixed-output fetch");
}

/// `InRelease` (a whole document, gpgv-verified) and `Packages` (a
/// fixed-output fetch pinned by the Release).
#[test]
fn debian_inrelease_and_packages_fetches_survive_every_fault() {
    setup();
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let archive = common::debian::build_archive(
        &tmp.path().join("archive"),
        "testing",
        // Three packages: an index longer than five cuts of the mid-body
        // faults, so that resuming cannot complete it.
        &["hello", "world", "again"].map(|name| common::debian::Pkg {
            name,
            version: "1.0",
            depends: None,
            files: vec![("/usr/share/doc/README", b"hi\n".to_vec(), 0o644)],
        }),
    );
    let file = |suffix: &str| {
        archive
            .routes
            .iter()
            .find(|(p, _)| p.ends_with(suffix))
            .and_then(|(_, b)| match b {
                common::http::Behaviour::Serve(d) => Some(d.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("the test archive has {suffix}"))
    };
    let inrelease = file("/dists/testing/InRelease");
    let packages = file("/main/binary-amd64/Packages");
    let server = FaultServer::start();
    for_every_fault(|i, fault, for_packages, for_inrelease| {
        let mirror = format!("{}/m{i}", server.base);
        // InRelease with the fault.
        server.route(
            &format!("/m{i}/dists/testing/InRelease"),
            inrelease.clone(),
            "text/plain",
            fault,
        );
        let scratch = tmp.path().join(format!("scratch-{i}"));
        std::fs::create_dir_all(&scratch).unwrap();
        let started = Instant::now();
        let got = envbuild::debian::archive::fetch_release(
            &mirror,
            "testing",
            &archive.keyring,
            &scratch,
        )
        .map(|r| assert!(r.sha256.contains_key("main/binary-amd64/Packages")))
        .map_err(|e| chain(&e));
        check("InRelease", fault, for_inrelease, started, got);

        // Packages with the fault, pinned by a Release.
        server.route(
            &format!("/m{i}/dists/testing/main/binary-amd64/Packages"),
            packages.clone(),
            "application/octet-stream",
            fault,
        );
        let release = envbuild::debian::archive::Release {
            fields: envbuild::debian::control::parse_one("Release", "Suite: testing\n").unwrap(),
            sha256: BTreeMap::from([(
                "main/binary-amd64/Packages".to_string(),
                (sha256_hex(&packages), packages.len() as u64),
            )]),
        };
        let mut store = Store::open(tmp.path().join(format!("store-{i}"))).unwrap();
        let started = Instant::now();
        let got = envbuild::debian::archive::fetch_index(
            &mut store,
            &mirror,
            "testing",
            "main",
            &release,
            &FetchOptions::default(),
        )
        .map(|index| assert!(index.packages.contains_key("hello")))
        .map_err(|e| chain(&e));
        let ok = got.is_ok();
        check("Packages", fault, for_packages, started, got);
        assert_store_clean(&store, usize::from(ok), "Packages");
    });
    assert_nothing_outside("Debian fetches");
}

/// A PEP 691 project page, then the PEP 658 metadata of its wheel, through
/// an index URL with credentials.
#[test]
fn python_index_page_and_metadata_fetches_survive_every_fault() {
    setup();
    use envbuild::python::resolve::{self, Arch, ResolveOptions, Target};
    let server = FaultServer::start();
    // Longer than the cut of the mid-body faults.
    let metadata = format!(
        "Metadata-Version: 2.1\nName: alpha\nVersion: 1.0\nSummary: {}\n",
        "a package ".repeat(20)
    )
    .into_bytes();
    for_every_fault(|i, fault, _, want| {
        for faulty in ["page", "metadata"] {
            let root = format!("/{faulty}{i}");
            let wheel = format!("{root}/files/alpha-1.0-py3-none-any.whl");
            let page = serde_json::json!({
                "meta": {"api-version": "1.0"},
                "name": "alpha",
                "files": [{
                    "filename": "alpha-1.0-py3-none-any.whl",
                    "url": wheel,
                    "hashes": {"sha256": "00".repeat(32)},
                    "core-metadata": {"sha256": sha256_hex(&metadata)},
                    "size": 1000,
                }],
            });
            let (page_fault, meta_fault) = match faulty {
                "page" => (fault, Fault::None),
                _ => (Fault::None, fault),
            };
            server.route(
                &format!("{root}/simple/alpha/"),
                page.to_string().into_bytes(),
                "application/vnd.pypi.simple.v1+json",
                page_fault,
            );
            server.route(
                &format!("{wheel}.metadata"),
                metadata.clone(),
                "text/plain",
                meta_fault,
            );
            let host = server.base.trim_start_matches("http://");
            let mut options = ResolveOptions::new(
                format!("http://user:hunter2@{host}{root}/simple/"),
                Target::cpython_glibc((3, 11), Arch::X86_64, (2, 17)),
            );
            options.prefetch_threads = 0;
            let started = Instant::now();
            let got = resolve::resolve(&["alpha"], &options)
                .map(|r| assert_eq!(r.packages[0].version, "1.0"))
                .map_err(|e| chain(&e));
            if let Err(text) = &got {
                assert!(!text.contains("hunter2"), "password shown: {text}");
            }
            check(&format!("the index {faulty}"), fault, want, started, got);
        }
    });
    assert_nothing_outside("the Python index client");
}

/// The Hugging Face listing API.
#[test]
fn hub_listing_fetch_survives_every_fault() {
    setup();
    use envbuild::model::{Endpoint, Hub};
    let server = FaultServer::start();
    let listing = serde_json::json!({
        "sha": "0123456789abcdef0123456789abcdef01234567",
        "siblings": [{"rfilename": "config.json", "size": 2}],
        // Longer than the cut of the mid-body faults.
        "cardData": {"note": "x".repeat(300)},
    });
    for_every_fault(|i, fault, _, want| {
        server.route(
            &format!("/h{i}/api/models/org/repo/revision/main"),
            listing.to_string().into_bytes(),
            "application/json",
            fault,
        );
        let endpoint = Endpoint {
            url: format!("{}/h{i}", server.base),
            var: "HF_ENDPOINT",
        };
        let started = Instant::now();
        let got = Hub::HuggingFace
            .list("m", &endpoint, "org/repo", "main")
            .map(|l| assert_eq!(l.files.len(), 1))
            .map_err(|e| chain(&e));
        check("the hub listing", fault, want, started, got);
    });
    assert_nothing_outside("the hub listing");
}
