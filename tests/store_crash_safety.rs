//! kill -9 of `envbuild store add` at any instant leaves a store that
//! `store verify` passes, with nothing half-written registered; a later add
//! returns the same item.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

fn large_tree(root: &Path) {
    many_files(&root.join("small"), 4000, 7);
    let mut rng = Rng::new(8);
    for i in 0..12 {
        write(
            root.join(format!("blobs/blob{i:02}.bin")),
            rng.bytes(6 << 20),
            0o644,
        );
    }
}

fn item_count(store: &Path) -> u64 {
    verify_clean(store)
}

#[test]
fn sigkill_during_add_at_random_instants_leaves_a_verifiable_store() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("big-tree");
    large_tree(&tree);

    // How long one uninterrupted add takes, and what it yields.
    let reference = tmp.path().join("reference-store");
    let started = Instant::now();
    let expected = basename(&ok(
        run(&reference, &[&"store", &"add", &tree]),
        "reference add",
    ));
    let duration = started.elapsed();
    eprintln!("an uninterrupted add takes {duration:?}");

    let store = tmp.path().join("store");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("seed {seed}");
    let mut rng = Rng::new(seed);
    let mut completed = 0;
    for round in 0..24 {
        let delay = Duration::from_micros(rng.below(duration.as_micros() as u64 * 11 / 10 + 1));
        let mut child = envbuild()
            .arg("--store")
            .arg(&store)
            .args(["store", "add"])
            .arg(&tree)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        let items = item_count(&store);
        assert!(items <= 1, "round {round}: {items} items registered");
        eprintln!("round {round}: killed after {delay:?} ({status}), {items} item(s) valid");
        if items == 1 {
            completed += 1;
            let info = ok(
                run(&store, &[&"store", &"path-info", &expected]),
                "path-info of the completed item",
            );
            assert!(info.contains(&expected));
            // Remove it again so the next round exercises a real add.
            ok(run(&store, &[&"store", &"gc"]), "gc");
            assert_eq!(item_count(&store), 0);
        }
    }
    eprintln!("{completed} of 24 adds completed before their kill");
    let again = basename(&ok(run(&store, &[&"store", &"add", &tree]), "final add"));
    assert_eq!(again, expected);
    assert_eq!(item_count(&store), 1);
}
