//! What every command prints with `--json`, snapshotted on the hello example
//! (offline): one JSON document on stdout per command, the same shape every
//! time. Values that depend on the host (the static hello's bytes move every
//! hash, size and time) are masked; keys and structure are pinned. Three
//! errors are pinned too. Commands whose output is not a report — `run`,
//! `shell` (the command's own output), `store dump` (a NAR), `completions`,
//! `man`, `export pylock` to stdout (the file itself) — answer `--json` for
//! errors only (tests/cli_edges.rs). `init --json` is pinned in
//! tests/init_translation.rs, `push --json` in tests/registry_push.rs.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// Numbers that are sizes, times or counts of bytes: masked.
const VOLATILE: &[&str] = &[
    "size",
    "narSize",
    "bytes",
    "fetchBytes",
    "freedBytes",
    "bytesLeft",
    "bytesFreed",
    "millis",
    "ms",
    "seconds",
    "secs",
    "elapsedMs",
    "registrationTime",
];

fn mask(v: &Value, tmp: &Path) -> Value {
    let hex = regex::Regex::new(r"[0-9a-f]{64}").unwrap();
    let sri = regex::Regex::new(r"sha256-[A-Za-z0-9+/]{43}=").unwrap();
    let item = regex::Regex::new(r"(^|/)[0-9abcdfghijklmnpqrsvwxyz]{32}-").unwrap();
    let tmp = tmp.display().to_string();
    fn walk(v: &Value, key: Option<&str>, f: &dyn Fn(&str) -> String) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), walk(v, Some(k), f)))
                    .collect(),
            ),
            Value::Array(a) => {
                let mut items: Vec<Value> = a.iter().map(|v| walk(v, key, f)).collect();
                // gc's order follows registration times and hashes: the set is pinned.
                if key == Some("removed") {
                    items.sort_by_key(|v| v.to_string());
                }
                Value::Array(items)
            }
            Value::Number(_) if key.is_some_and(|k| VOLATILE.contains(&k)) => {
                Value::String("[N]".into())
            }
            Value::String(s) => Value::String(f(s)),
            other => other.clone(),
        }
    }
    walk(v, None, &|s: &str| {
        let s = s.replace(&tmp, "[TMP]");
        let s = hex.replace_all(&s, "[HEX]");
        let s = sri.replace_all(&s, "[SRI]");
        item.replace_all(&s, "${1}[HASH]-").into_owned()
    })
}

/// Run `envbuild --json --store STORE ARGS`, require `success`, and return
/// its stdout's JSON, masked.
fn json(store: &Path, tmp: &Path, args: &[&dyn AsRef<std::ffi::OsStr>], success: bool) -> String {
    let mut c = envbuild();
    c.arg("--json").arg("--store").arg(store);
    for a in args {
        c.arg(a.as_ref());
    }
    let shown_args: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    let o = c.output().unwrap();
    assert_eq!(
        o.status.success(),
        success,
        "{shown_args:?}: {}\n{}",
        stdout(&o),
        stderr(&o)
    );
    let text = stdout(&o);
    let docs: Vec<Value> = serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .map(|d| d.unwrap_or_else(|e| panic!("{shown_args:?} printed {text:?}, not JSON: {e}")))
        .collect();
    // One document (realize, whose last line is the bare digest, is read
    // apart).
    let shown: Vec<String> = docs
        .iter()
        .map(|d| serde_json::to_string_pretty(&mask(d, tmp)).unwrap())
        .collect();
    shown.join("\n")
}

#[test]
fn every_command_answers_json_of_a_stable_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let spec = hello_example(t);
    let store = t.join("store");
    let s = &store;
    let snap = |name: &str, text: String| insta::assert_snapshot!(format!("json_{name}"), text);

    snap("lock", json(s, t, &[&"lock", &spec], true));
    snap("plan", json(s, t, &[&"plan", &spec], true));
    // realize: the report, then the digest as the last line (not JSON).
    let o = envbuild()
        .arg("--json")
        .arg("--store")
        .arg(s)
        .arg("realize")
        .arg(&spec)
        .arg("-o")
        .arg(t.join("hello.tar"))
        .output()
        .unwrap();
    let out = ok(o, "realize --json");
    let (report, digest) = out.rsplit_once('\n').expect("a report and a digest line");
    assert!(digest.starts_with("sha256:"), "{out}");
    let report: Value = serde_json::from_str(report).unwrap();
    snap(
        "realize",
        serde_json::to_string_pretty(&mask(&report, t)).unwrap(),
    );
    snap("closure", json(s, t, &[&"closure", &spec], true));
    snap("check", json(s, t, &[&"check", &spec, &"--locked"], true));
    snap(
        "export_pylock",
        json(
            s,
            t,
            &[&"export", &"pylock", &spec, &"-o", &t.join("pylock.toml")],
            true,
        ),
    );

    let added = t.join("added.txt");
    std::fs::write(&added, "an item\n").unwrap();
    snap("store_add", json(s, t, &[&"store", &"add", &added], true));
    snap("store_hash", json(s, t, &[&"store", &"hash", &added], true));
    let item = ok(run(s, &[&"store", &"add", &added]), "store add (plain)");
    snap(
        "store_path_info",
        json(s, t, &[&"store", &"path-info", &item], true),
    );
    snap(
        "store_closure",
        json(s, t, &[&"store", &"closure", &item], true),
    );
    snap(
        "store_root_add",
        json(
            s,
            t,
            &[&"store", &"root", &"add", &item, &"--name", &"kept"],
            true,
        ),
    );
    snap(
        "store_root_list",
        json(s, t, &[&"store", &"root", &"list"], true),
    );
    snap(
        "store_root_remove",
        json(s, t, &[&"store", &"root", &"remove", &"kept"], true),
    );
    snap(
        "store_gc_dry_run",
        json(s, t, &[&"store", &"gc", &"--dry-run"], true),
    );
    snap("store_verify", json(s, t, &[&"store", &"verify"], true));
}

#[test]
fn three_errors_answer_json_with_kind_input_and_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let store = t.join("store");
    let spec = hello_example(t);

    // 1. A spec with an unknown key: kind spec, the span in the message.
    let bad = t.join("bad.toml");
    std::fs::write(
        &bad,
        "[env]\nname = \"x\"\nsystem = \"x86_64-linux\"\ncolour = \"blue\"\n",
    )
    .unwrap();
    let a = json(&store, t, &[&"lock", &bad], false);
    // 2. --locked without a lock: kind lock, a hint.
    let b = json(
        &store,
        t,
        &[&"realize", &spec, &"--locked", &"-o", &t.join("x.tar")],
        false,
    );
    // 3. A path that is not a store item: kind store.
    let c = json(
        &store,
        t,
        &[&"store", &"path-info", &t.join("nowhere")],
        false,
    );
    insta::assert_snapshot!("json_errors", [a, b, c].join("\n"));
}
