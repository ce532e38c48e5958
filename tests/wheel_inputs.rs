//! Where a wheel's bytes come from does not matter to what is built, and
//! what was already written is not written again:
//! - a local wheel is unpacked in place, never copied into the store;
//! - the unpack step is keyed by the wheel's sha256, so the same wheel from
//!   a URL reuses it (and the whole image);
//! - a local wheel that changes after it was pinned is refused, naming both
//!   hashes;
//! - an export that still holds the same image is not written again.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::http::{serve, Behaviour};
use common::*;
use envbuild::plan::{Builder, Step, WheelId};
use envbuild::realize::builders::wheel::{unpack_wheel, WheelFile};
use envbuild::realize::{RealizeError, Realizer};

const WHEEL: &str = "inplace-1.0-py3-none-any.whl";

fn wheel_bytes() -> Vec<u8> {
    build_wheel(
        "inplace",
        "1.0",
        &[("inplace/__init__.py", b"print('in place')\n")],
        &[],
    )
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// A spec directory with one app file and `wheel` (a `[[wheels]]` body).
fn spec(dir: &Path, wheel: &str) -> std::path::PathBuf {
    write(dir.join("app/hello.txt"), b"hi\n", 0o644);
    let spec = dir.join("w.toml");
    fs::write(
        &spec,
        format!(
            "[env]\nname = \"w\"\nsystem = \"x86_64-linux\"\nsource-date-epoch = 1700000000\n\n\
             [[files]]\nsrc = \"app\"\ndst = \"/app\"\n\n[[wheels]]\n{wheel}\n"
        ),
    )
    .unwrap();
    spec
}

fn store_names(store: &Path) -> Vec<String> {
    fs::read_dir(store)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect()
}

#[test]
fn a_local_wheel_is_unpacked_in_place_and_the_same_bytes_from_a_url_reuse_every_step() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let bytes = wheel_bytes();
    let local = t.path().join("local");
    write(local.join(WHEEL), &bytes, 0o644);
    let local_spec = spec(&local, &format!("path = \"{WHEEL}\""));
    let first = realize_json(&store, &local_spec, &t.path().join("a.tar"));
    let names = store_names(&store);
    assert!(
        names
            .iter()
            .all(|n| n.split_once('-').map(|x| x.1) != Some(WHEEL)),
        "the wheel file itself entered the store: {names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n.ends_with("-inplace-1.0-py3-none-any")),
        "no unpacked wheel in {names:?}"
    );
    let server = serve(vec![(
        format!("/w/{WHEEL}"),
        Behaviour::Serve(bytes.clone()),
    )]);
    let remote = t.path().join("remote");
    let remote_spec = spec(
        &remote,
        &format!(
            "url = \"{}/w/{WHEEL}\"\nsha256 = \"{}\"",
            server.base,
            sha256_hex(&bytes)
        ),
    );
    let second = realize_json(&store, &remote_spec, &t.path().join("b.tar"));
    assert_eq!(second["built"], 0, "{second}");
    assert_eq!(first["reference"], second["reference"]);
    assert_eq!(first["layers"], second["layers"]);
    verify_clean(&store);
}

#[test]
fn a_local_wheel_changed_since_it_was_pinned_is_refused_naming_both_hashes() {
    let t = tempfile::tempdir().unwrap();
    let bytes = wheel_bytes();
    let dir = t.path().join("spec");
    write(dir.join(WHEEL), &bytes, 0o644);
    let spec_path = spec(&dir, &format!("path = \"{WHEEL}\""));
    let spec = envbuild::spec::Spec::load(&spec_path).unwrap();
    let mut store = envbuild_store::Store::open(t.path().join("store")).unwrap();
    let pinned = sha256_hex(&bytes);
    // Pinned, then replaced by another wheel of the same name.
    let other = build_wheel(
        "inplace",
        "1.0",
        &[("inplace/__init__.py", b"print('swapped')\n")],
        &[],
    );
    write(dir.join(WHEEL), &other, 0o644);
    let wheel = WheelFile {
        filename: WHEEL.into(),
        sha256: pinned.clone(),
        size: bytes.len() as u64,
        path: dir.join(WHEEL),
        in_place: true,
        pinned: true,
    };
    let (scheme, shebang) = (
        envbuild::sources::python::scheme(&spec),
        spec.python.shebang.clone(),
    );
    let step = Step {
        name: WHEEL.into(),
        builder: Builder::UnpackWheel {
            scheme: scheme.clone(),
            shebang: shebang.clone(),
            bytecode: None,
        },
        inputs: Vec::new(),
    };
    let drv = step.derivation(
        &[],
        Some(WheelId {
            filename: WHEEL,
            sha256: &pinned,
        }),
    );
    let mut r = Realizer::new(&mut store, false);
    match unpack_wheel(&mut r, &drv, &scheme, &shebang, &wheel, None) {
        Err(e) if matches!(e.cause(), RealizeError::InputChanged { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("unpack-wheel"),
                "the failing step is named: {msg}"
            );
            assert!(msg.contains(&pinned), "{msg}");
            assert!(msg.contains(&sha256_hex(&other)), "{msg}");
            assert!(msg.contains(WHEEL), "{msg}");
        }
        other => panic!("expected InputChanged, got {other:?}"),
    }
    assert_eq!(r.built, 0);
    let report = store.verify(|_, _, _| {}).unwrap();
    assert_eq!(report.checked, 0, "nothing may enter the store");
}

#[test]
fn an_export_still_holding_the_image_is_not_written_again() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let dir = t.path().join("spec");
    write(dir.join(WHEEL), wheel_bytes(), 0o644);
    let spec_path = spec(&dir, &format!("path = \"{WHEEL}\""));
    let out = t.path().join("w.tar");
    let first = realize_json(&store, &spec_path, &out);
    assert_eq!(first["outputWritten"], true);
    let bytes = fs::read(&out).unwrap();
    let ino = fs::metadata(&out).unwrap().ino();
    let again = realize_json(&store, &spec_path, &out);
    assert_eq!(again["outputWritten"], false, "{again}");
    assert_eq!(fs::metadata(&out).unwrap().ino(), ino, "rewritten");
    // Changed behind envbuild's back (same size): written again, whole.
    let mut damaged = bytes.clone();
    damaged[1000] ^= 0xff;
    fs::write(&out, &damaged).unwrap();
    let repaired = realize_json(&store, &spec_path, &out);
    assert_eq!(repaired["outputWritten"], true, "{repaired}");
    assert_eq!(fs::read(&out).unwrap(), bytes);
    // Removed: written again.
    fs::remove_file(&out).unwrap();
    assert_eq!(
        realize_json(&store, &spec_path, &out)["outputWritten"],
        true
    );
    // An OCI directory likewise; a file added inside it is a change.
    let oci = t.path().join("w-oci");
    let realize_dir = || {
        envbuild()
            .arg("--store")
            .arg(&store)
            .arg("--json")
            .arg("realize")
            .arg(&spec_path)
            .arg("--format")
            .arg("oci-dir")
            .arg("-o")
            .arg(&oci)
            .output()
            .unwrap()
    };
    let o = realize_dir();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = realize_dir();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("\"outputWritten\":false"),
        "{}",
        stdout(&o)
    );
    write(oci.join("stray"), b"x", 0o644);
    let o = realize_dir();
    assert!(!o.status.success());
    // --json: the error is the JSON object on stdout.
    let e: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(e["error"]["kind"], "export", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already exists and is not empty"),
        "{e}"
    );
}
