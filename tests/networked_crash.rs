//! NETWORKED (only to fill the first store): kill -9 of `envbuild realize`
//! of examples/python-numpy.toml at 30 instants spread over its downloads,
//! unpacking, layers and export. After each kill `store verify` is clean,
//! the output path holds nothing, the old output or the new complete one
//! (never a partial file), and a realize to completion prints the digest of
//! the uninterrupted realize, leaves no temp file beside the output, and
//! `store verify` is clean again.
//!
//! Ignored by default; run with
//! `cargo test --test networked_crash -- --ignored` (.ci/run does). The
//! archive and the index are reached once, for the lock and the first
//! store; the killed realizes and the completing ones are served by a
//! loopback mirror of that store's locked files (`ENVBUILD_DEBIAN_MIRROR`,
//! `ENVBUILD_INDEX_URL`). `ENVBUILD_CRASH_SEED=N` replays a run's instants.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// How far a realize got, read from its store and its output directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Pinning and planning: nothing in the store yet.
    Starting,
    /// Some locked files fetched (or being fetched), not all.
    Downloads,
    /// Every file fetched; the components not all there.
    Unpacking,
    /// Every component there; the layers not all.
    Layers,
    /// Every layer there; no image item yet.
    Image,
    /// The image item there; the output not yet in place.
    Export,
    /// The output in place (the kill came while rooting or printing).
    Done,
}

/// What kind of item a store entry is, by its name and type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fetched,
    Component,
    Layer,
    Image,
}

fn kind_of(store: &Path, name: &str) -> Kind {
    let rest = name.split_once('-').map(|(_, r)| r).unwrap_or(name);
    if rest.starts_with("layer-") {
        Kind::Layer
    } else if rest.starts_with("image-") {
        Kind::Image
    } else if store.join(name).is_file() {
        Kind::Fetched
    } else {
        Kind::Component
    }
}

/// The entries of the store's root (items and unregistered leftovers).
fn entries(store: &Path) -> BTreeSet<String> {
    fs::read_dir(store)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

fn scratch_count(store: &Path) -> usize {
    fs::read_dir(store.join(".envbuild/tmp"))
        .map(|rd| rd.count())
        .unwrap_or(0)
}

/// The complete store of an uninterrupted realize, by kind.
struct Reference {
    kinds: BTreeMap<String, Kind>,
}

impl Reference {
    fn new(store: &Path) -> Reference {
        let kinds = entries(store)
            .into_iter()
            .map(|n| {
                let k = kind_of(store, &n);
                (n, k)
            })
            .collect();
        Reference { kinds }
    }
    fn count(&self, kind: Kind) -> usize {
        self.kinds.values().filter(|&&k| k == kind).count()
    }
    fn present(&self, have: &BTreeSet<String>, kind: Kind) -> usize {
        self.kinds
            .iter()
            .filter(|(n, &k)| k == kind && have.contains(*n))
            .count()
    }
    /// The phase a realize into `store` had reached.
    fn phase(&self, store: &Path, output_in_place: bool) -> Phase {
        let have = entries(store);
        let all = |k| self.present(&have, k) == self.count(k);
        if output_in_place {
            Phase::Done
        } else if self.present(&have, Kind::Image) > 0 {
            Phase::Export
        } else if all(Kind::Layer) {
            Phase::Image
        } else if all(Kind::Component) {
            Phase::Layers
        } else if all(Kind::Fetched) {
            Phase::Unpacking
        } else if self.present(&have, Kind::Fetched) > 0 || scratch_count(store) > 0 {
            Phase::Downloads
        } else {
            Phase::Starting
        }
    }
    /// What was there, for the per-kill line.
    fn describe(&self, store: &Path) -> String {
        let have = entries(store);
        format!(
            "fetched {}/{}, components {}/{}, layers {}/{}, image {}, scratch {}",
            self.present(&have, Kind::Fetched),
            self.count(Kind::Fetched),
            self.present(&have, Kind::Component),
            self.count(Kind::Component),
            self.present(&have, Kind::Layer),
            self.count(Kind::Layer),
            self.present(&have, Kind::Image),
            scratch_count(store),
        )
    }
}

/// `realize --locked SPEC -o OUT` into `store` from the loopback mirror.
fn realize_cmd(store: &Path, spec: &Path, out: &Path, mirror: &str) -> Command {
    let mut c = envbuild();
    c.arg("--store")
        .arg(store)
        .arg("realize")
        .arg(spec)
        .arg("-o")
        .arg(out)
        .arg("--locked")
        .env("ENVBUILD_DEBIAN_MIRROR", format!("{mirror}/debian"))
        .env("ENVBUILD_INDEX_URL", format!("{mirror}/simple"));
    c
}

fn digest_of(stdout: &str) -> String {
    stdout.trim().lines().last().unwrap_or_default().to_string()
}

fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    use std::io::Read;
    let mut f = fs::File::open(path).unwrap();
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match f.read(&mut buf).unwrap() {
            0 => break,
            n => h.update(&buf[..n]),
        }
    }
    hex::encode(h.finalize())
}

/// When each phase ended in one uninterrupted realize (since its spawn).
#[derive(Debug)]
struct Timeline {
    fetched: Duration,
    unpacked: Duration,
    layered: Duration,
    imaged: Duration,
    exported: Duration,
    total: Duration,
}

/// Run the realize, listing the store every few milliseconds to see when
/// each item appeared; the phases' ends follow from the final store.
fn timed_realize(
    store: &Path,
    spec: &Path,
    out: &Path,
    mirror: &str,
) -> (String, Timeline, Reference) {
    let seen: Arc<Mutex<BTreeMap<String, Duration>>> = Default::default();
    let out_seen: Arc<Mutex<Option<Duration>>> = Default::default();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let child = realize_cmd(store, spec, out, mirror)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let poller = {
        let (seen, out_seen, stop) = (seen.clone(), out_seen.clone(), stop.clone());
        let (store, out) = (store.to_path_buf(), out.to_path_buf());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let now = started.elapsed();
                let mut s = seen.lock().unwrap();
                for n in entries(&store) {
                    s.entry(n).or_insert(now);
                }
                drop(s);
                let mut o = out_seen.lock().unwrap();
                if o.is_none() && out.exists() {
                    *o = Some(now);
                }
                drop(o);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let o = child.wait_with_output().unwrap();
    let total = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    poller.join().unwrap();
    let digest = digest_of(&ok(o, "uninterrupted realize from the loopback mirror"));
    let reference = Reference::new(store);
    let seen = seen.lock().unwrap();
    let last = |kind: Kind| {
        reference
            .kinds
            .iter()
            .filter(|(_, &k)| k == kind)
            .filter_map(|(n, _)| seen.get(n).copied())
            .max()
            .unwrap_or_default()
    };
    let timeline = Timeline {
        fetched: last(Kind::Fetched),
        unpacked: last(Kind::Component),
        layered: last(Kind::Layer),
        imaged: last(Kind::Image),
        exported: out_seen.lock().unwrap().unwrap_or(total),
        total,
    };
    (digest, timeline, reference)
}

/// What the output path held after a kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Nothing,
    Old,
    New,
}

const OLD_OUTPUT: &[u8] = b"the output of an earlier export (not this image)\n";

#[test]
#[ignore = "networked: reaches the Debian archive and the package index (once)"]
fn realize_killed_at_30_random_instants_leaves_a_verifiable_store_and_the_same_digest() {
    let test_started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("python-numpy.toml");
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python-numpy.toml"),
        &spec,
    )
    .unwrap();

    // 1. Lock and realize once from the configured archive and index.
    let store_a = tmp.path().join("store-a");
    ok(run(&store_a, &[&"lock", &spec]), "lock");
    let started = Instant::now();
    let digest = realize(&store_a, &spec, &tmp.path().join("a.tar"), &["--locked"]);
    eprintln!(
        "uninterrupted realize from the network: {digest} in {:.1?}",
        started.elapsed()
    );
    let output_sha = sha256_file(&tmp.path().join("a.tar"));

    // 2. The same from a loopback mirror of store A's locked files, into a
    // fresh store: the digest D, the time T_m, and when each phase ends.
    let lock = lock_as_v1(&fs::read_to_string(tmp.path().join("python-numpy.lock")).unwrap());
    let server = common::mirror::loopback_mirror(&store_a, &lock);
    let mirror = server.base.clone();
    let store_m = tmp.path().join("store-m");
    let (d_m, t, reference) = timed_realize(&store_m, &spec, &tmp.path().join("m.tar"), &mirror);
    assert_eq!(d_m, digest, "the loopback mirror gives the same digest");
    assert_eq!(
        sha256_file(&tmp.path().join("m.tar")),
        output_sha,
        "the same archive"
    );
    eprintln!(
        "uninterrupted realize from the loopback mirror: {:.2?} (downloads end {:.2?}, unpacking {:.2?}, layers {:.2?}, image {:.2?}, export {:.2?}); {} files, {} components, {} layers",
        t.total, t.fetched, t.unpacked, t.layered, t.imaged, t.exported,
        reference.count(Kind::Fetched), reference.count(Kind::Component), reference.count(Kind::Layer),
    );
    for k in [Kind::Fetched, Kind::Component, Kind::Layer, Kind::Image] {
        assert!(reference.count(k) > 0, "no {k:?} item in {}", store_m.display());
    }
    let verify_started = Instant::now();
    verify_clean(&store_m);
    eprintln!("store verify of a complete store: {:.2?}", verify_started.elapsed());
    envbuild_store::canonical::remove_tree(&store_m).unwrap();

    // 3. The instants, stratified by phase so that each is hit whatever the
    // phases' relative lengths: 6 in [0, downloads end], 8 in unpacking,
    // 8 in layers and image, 6 in export, 2 anywhere in [0, T_m].
    let seed = std::env::var("ENVBUILD_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("seed {seed} (ENVBUILD_CRASH_SEED={seed} replays these instants)");
    let mut rng = Rng::new(seed);
    let mut between = |a: Duration, b: Duration| {
        let span = b.saturating_sub(a).as_micros() as u64;
        a + Duration::from_micros(rng.below(span.max(1)))
    };
    let mut instants: Vec<Duration> = Vec::new();
    for (n, a, b) in [
        (6, Duration::ZERO, t.fetched),
        (8, t.fetched, t.unpacked),
        (8, t.unpacked, t.imaged),
        (6, t.imaged, t.exported),
        (2, Duration::ZERO, t.total),
    ] {
        for _ in 0..n {
            instants.push(between(a, b));
        }
    }
    instants.sort();

    // Each kill goes to a fresh store: a store a previous round completed
    // would make the next realize a no-op, so only a fresh one exercises
    // downloads, unpacking and layers at every instant, and the rounds can
    // be spread over every phase. (Continuing in one store would cover only
    // the export after the first completion.) The output path is shared:
    // even rounds start without one, odd rounds with an old file there, so
    // both "nothing" and "the old output" are what a kill may leave.
    let out_dir = tmp.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("image.tar");
    let mut hits: BTreeMap<Phase, usize> = BTreeMap::new();
    let mut outputs: BTreeMap<String, usize> = BTreeMap::new();
    for (round, &instant) in instants.iter().enumerate() {
        let store = tmp.path().join(format!("store-{round:02}"));
        for e in fs::read_dir(&out_dir).unwrap() {
            fs::remove_file(e.unwrap().path()).unwrap();
        }
        if round % 2 == 1 {
            fs::write(&out, OLD_OUTPUT).unwrap();
        }
        let log = tmp.path().join(format!("killed-{round:02}.log"));
        let mut child = realize_cmd(&store, &spec, &out, &mirror)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let spawned = Instant::now();
        std::thread::sleep(instant);
        let _ = child.kill(); // SIGKILL (an error: it had already exited)
        let status = child.wait().unwrap();
        let lived = spawned.elapsed();

        // What the output path holds: never a partial file.
        let held = match fs::read(&out) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Output::Nothing,
            Err(e) => panic!("round {round}: reading {}: {e}", out.display()),
            Ok(bytes) if bytes == OLD_OUTPUT => Output::Old,
            Ok(bytes) => {
                use sha2::Digest;
                assert_eq!(
                    hex::encode(sha2::Sha256::digest(&bytes)),
                    output_sha,
                    "round {round}: killed at {instant:?}, {} holds {} bytes that are neither the old output nor the new one",
                    out.display(),
                    bytes.len()
                );
                Output::New
            }
        };
        if round % 2 == 0 {
            assert_ne!(held, Output::Old, "round {round}");
        }
        let phase = reference.phase(&store, held == Output::New);
        let stray: Vec<String> = fs::read_dir(&out_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "image.tar")
            .collect();
        eprintln!(
            "round {round:2}: killed at {instant:>10.3?} (lived {lived:.3?}, {status}) in {phase:?}: {}; output {held:?}{}",
            reference.describe(&store),
            if stray.is_empty() {
                String::new()
            } else {
                format!(", beside it {stray:?}")
            }
        );
        *hits.entry(phase).or_default() += 1;
        *outputs.entry(format!("{held:?}")).or_default() += 1;

        // The killed store verifies (if the kill came before the store was
        // made there is nothing to verify).
        if store.exists() {
            verify_clean(&store);
        }

        // A realize to completion gives the uninterrupted digest and the
        // complete output, with nothing left beside it.
        let o = realize_cmd(&store, &spec, &out, &mirror).output().unwrap();
        let d = digest_of(&ok(
            o,
            &format!("round {round}: realize after the kill at {instant:?} ({phase:?})"),
        ));
        assert_eq!(
            d, digest,
            "round {round}: killed at {instant:?} ({phase:?}), the next realize gives another digest"
        );
        verify_clean(&store);
        assert_eq!(
            sha256_file(&out),
            output_sha,
            "round {round}: the completed output"
        );
        let beside: Vec<String> = fs::read_dir(&out_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            beside,
            ["image.tar"],
            "round {round}: killed at {instant:?} ({phase:?}), the completing realize left files beside its output"
        );
        envbuild_store::canonical::remove_tree(&store).unwrap();
        let _ = fs::remove_file(&log);
    }

    eprintln!(
        "summary: 30 kills (seed {seed}) by phase reached: {hits:?}; output after the kill: {outputs:?}; the test took {:.1?}",
        test_started.elapsed()
    );
    for phase in [
        Phase::Downloads,
        Phase::Unpacking,
        Phase::Layers,
        Phase::Export,
    ] {
        assert!(
            hits.get(&phase).copied().unwrap_or(0) > 0,
            "no kill came during {phase:?}: {hits:?} (timeline {t:?})"
        );
    }
}
