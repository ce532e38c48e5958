//! `envbuild plan SPEC`: a dry run of the plan. On an empty store it lists
//! every file to fetch with its size and every step to build, and builds
//! nothing; after a realize it says there is nothing to do.

mod common;

use std::fs;
use std::path::Path;

use common::http::{serve, Behaviour};
use common::*;

const WHEEL: &str = "planned-1.0-py3-none-any.whl";

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

fn plan_json(store: &Path, spec: &Path) -> serde_json::Value {
    let o = run(store, &[&"--json", &"plan", &spec]);
    serde_json::from_str(ok(o, "plan --json").lines().next().unwrap()).unwrap()
}

fn builders(plan: &serde_json::Value) -> Vec<String> {
    plan["build"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["builder"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn plan_lists_fetches_with_sizes_and_builds_on_an_empty_store_and_nothing_after_a_realize() {
    let t = tempfile::tempdir().unwrap();
    let bytes = build_wheel(
        "planned",
        "1.0",
        &[("planned/__init__.py", b"x = 1\n")],
        &[],
    );
    let server = serve(vec![(
        format!("/w/{WHEEL}"),
        Behaviour::Serve(bytes.clone()),
    )]);
    let dir = t.path().join("spec");
    write(dir.join("app/hello.txt"), b"hi\n", 0o644);
    let spec = dir.join("p.toml");
    fs::write(
        &spec,
        format!(
            "[env]\nname = \"p\"\nsystem = \"x86_64-linux\"\nsource-date-epoch = 1700000000\n\n\
             [[files]]\nsrc = \"app\"\ndst = \"/app\"\n\n\
             [[wheels]]\nurl = \"{}/w/{WHEEL}\"\nsha256 = \"{}\"\n",
            server.base,
            sha256_hex(&bytes)
        ),
    )
    .unwrap();
    // The lock is made with one store; the plan is asked of another.
    ok(run(&t.path().join("lock-store"), &[&"lock", &spec]), "lock");
    let store = t.path().join("store");
    let requests_before = server.log.lock().unwrap().requests.clone();

    let cold = plan_json(&store, &spec);
    assert_eq!(cold["nothingToDo"], false, "{cold}");
    let fetch = cold["fetch"].as_array().unwrap();
    assert_eq!(fetch.len(), 1, "{cold}");
    assert_eq!(fetch[0]["file"], WHEEL);
    assert_eq!(fetch[0]["size"], bytes.len() as u64);
    assert_eq!(fetch[0]["sha256"], sha256_hex(&bytes));
    assert_eq!(cold["fetchBytes"], bytes.len() as u64);
    let b = builders(&cold);
    for builder in [
        "base-files",
        "unpack-wheel",
        "copy-files",
        "union-check",
        "layer",
        "image",
    ] {
        assert!(
            b.iter().any(|x| x == builder),
            "{builder} not planned: {cold}"
        );
    }
    assert_eq!(cold["present"], 0, "{cold}");
    assert_eq!(cold["lockChanges"].as_array().unwrap().len(), 0, "{cold}");
    assert_eq!(
        server.log.lock().unwrap().requests,
        requests_before,
        "a dry run downloads nothing"
    );

    realize_json(&store, &spec, &t.path().join("p.tar"));
    let warm = plan_json(&store, &spec);
    assert_eq!(warm["nothingToDo"], true, "{warm}");
    assert!(warm["fetch"].as_array().unwrap().is_empty(), "{warm}");
    assert!(warm["build"].as_array().unwrap().is_empty(), "{warm}");
    // base-files, the wheel, the files, the union check, 3 layers, the image.
    assert_eq!(warm["present"], 8, "{warm}");
    assert_eq!(warm["layers"].as_array().unwrap().len(), 3, "{warm}");
    let text = ok(run(&store, &[&"plan", &spec]), "plan");
    assert!(text.starts_with("nothing to do"), "{text}");

    // A changed file: the plan names the lock change and the steps to build.
    write(dir.join("app/hello.txt"), b"changed\n", 0o644);
    let edited = plan_json(&store, &spec);
    assert_eq!(edited["nothingToDo"], false, "{edited}");
    assert!(
        edited["lockChanges"][0]
            .as_str()
            .unwrap()
            .contains("files /app"),
        "{edited}"
    );
    assert!(
        builders(&edited).iter().any(|b| b == "copy-files"),
        "{edited}"
    );
    assert!(
        !builders(&edited).iter().any(|b| b == "unpack-wheel"),
        "{edited}"
    );
    verify_clean(&store);
}
