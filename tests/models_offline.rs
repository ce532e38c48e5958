//! `[models.NAME]` against a loopback hub (tests/common/hub.rs) speaking the
//! used subset of the Hugging Face and ModelScope APIs over generated files:
//! the lock pins every file, realize lays each snapshot out as its client
//! expects (checked with the real clients when a Python with them is found:
//! ENVBUILD_TEST_PYTHON, else python3), changed files are refused, cut
//! downloads resume, a hub that is down is named, the store verifies clean
//! after each, and the model keeps its own layer.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::hub::{sha256_hex, Hub, Repo};
use common::*;

const HF_COMMIT: &str = "3b1f6c0d2e4a5968778695a4b3c2d1e0f9a8b7c6";
const MS_COMMIT: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";
const BIG: usize = 1_500_000;

struct Fixture {
    hf: BTreeMap<String, Vec<u8>>,
    ms: BTreeMap<String, Vec<u8>>,
}

fn fixture(hub: &Hub) -> Fixture {
    let mut rng = Rng::new(7);
    let mut hf = BTreeMap::new();
    hf.insert(
        "config.json".to_string(),
        br#"{"model_type": "bert", "hidden_size": 8}"#.to_vec(),
    );
    hf.insert("model.safetensors".to_string(), rng.bytes(BIG));
    hf.insert(
        "tokenizer/vocab.txt".to_string(),
        b"[PAD]\n[UNK]\nhello\n".to_vec(),
    );
    let mut ms = BTreeMap::new();
    ms.insert(
        "configuration.json".to_string(),
        br#"{"framework": "pytorch", "task": "visual-entailment"}"#.to_vec(),
    );
    ms.insert("pytorch_model.bin".to_string(), rng.bytes(BIG + 17));
    ms.insert("sub/vocab.json".to_string(), br#"{"a": 1}"#.to_vec());
    let lfs = |p: &str| p.ends_with(".safetensors") || p.ends_with(".bin");
    hub.add(
        "hf:acme/tiny-bert",
        Repo {
            commit: HF_COMMIT.into(),
            revisions: vec!["main".into(), "v1".into()],
            files: hf
                .iter()
                .map(|(p, b)| (p.clone(), (b.clone(), lfs(p))))
                .collect(),
        },
    );
    hub.add(
        "ms:iic/ofa.tiny",
        Repo {
            commit: MS_COMMIT.into(),
            revisions: vec!["master".into(), "v1.0.1".into()],
            files: ms
                .iter()
                .map(|(p, b)| (p.clone(), (b.clone(), lfs(p))))
                .collect(),
        },
    );
    Fixture { hf, ms }
}

const MODELS: &str = r#"
[models.bert]
source = "huggingface:acme/tiny-bert"
owner = "appuser"

[models.ofa]
source = "modelscope:iic/ofa.tiny"
revision = "v1.0.1"
owner = "appuser"
"#;

const HF_DIR: &str = "home/appuser/.cache/huggingface/hub/models--acme--tiny-bert";
const MS_DIR: &str = "home/appuser/.cache/modelscope/hub/iic/ofa___tiny";

/// The hello example in `dir` with `models` appended to its spec.
fn spec_with(dir: &Path, models: &str) -> PathBuf {
    let spec = hello_example(dir);
    let mut text = fs::read_to_string(&spec).unwrap();
    text.push_str(models);
    fs::write(&spec, text).unwrap();
    spec
}

const ENDPOINT_VARS: [&str; 4] = [
    "HF_ENDPOINT",
    "ENVBUILD_HF_ENDPOINT",
    "MODELSCOPE_DOMAIN",
    "ENVBUILD_MODELSCOPE_ENDPOINT",
];

/// envbuild with `--store store`, the hub endpoints set to `hub` (or to
/// nothing) and no other hub configuration from the host.
fn eb(store: &Path, hub: Option<&str>) -> Command {
    let mut c = envbuild();
    for v in ENDPOINT_VARS {
        c.env_remove(v);
    }
    if let Some(h) = hub {
        c.env("HF_ENDPOINT", h)
            .env("ENVBUILD_MODELSCOPE_ENDPOINT", h);
    }
    c.arg("--store").arg(store);
    c
}

fn out(c: &mut Command) -> Output {
    c.output().unwrap()
}

fn lock_entries(spec: &Path) -> BTreeMap<String, (String, String, u64)> {
    let lock = envbuild::lock::Lock::read(&spec.with_extension("lock"))
        .unwrap()
        .unwrap();
    envbuild::lock::v1::inputs(&lock)
        .into_iter()
        .map(|(id, source, hash, size)| (id, (source, hash, size)))
        .collect()
}

/// A Python that has `module`, or None with the reason printed.
fn python_with(module: &str) -> Option<String> {
    let py = std::env::var("ENVBUILD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    match Command::new(&py)
        .arg("-c")
        .arg(format!("import {module}"))
        .output()
    {
        Ok(o) if o.status.success() => Some(py),
        Ok(_) => {
            eprintln!("note: {py} has no `{module}`; the real client check is skipped (set ENVBUILD_TEST_PYTHON to a Python with it)");
            None
        }
        Err(e) => {
            eprintln!("note: {py} cannot run ({e}); the real client check is skipped");
            None
        }
    }
}

fn copy_writable(src: &Path, dst: &Path) {
    copy_tree(src, dst);
    for e in walkdir::WalkDir::new(dst) {
        let e = e.unwrap();
        if !e.path_is_symlink() {
            let mut p = fs::metadata(e.path()).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(
                &mut p,
                if e.file_type().is_dir() { 0o755 } else { 0o644 },
            );
            fs::set_permissions(e.path(), p).unwrap();
        }
    }
}

#[test]
fn lock_pins_every_file_and_realize_lays_out_both_clients_caches() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = Hub::start();
    let fx = fixture(&hub);
    let spec = spec_with(tmp.path(), MODELS);
    let store = tmp.path().join("store");

    ok(
        out(eb(&store, Some(&hub.base)).arg("lock").arg(&spec)),
        "lock",
    );
    let lock = lock_entries(&spec);
    assert_eq!(
        lock["model:bert"],
        (
            "huggingface:acme/tiny-bert@main".into(),
            format!("revision:{HF_COMMIT}"),
            3
        )
    );
    assert_eq!(
        lock["model:ofa"],
        (
            "modelscope:iic/ofa.tiny@v1.0.1".into(),
            format!("revision:{MS_COMMIT}"),
            3
        )
    );
    for (name, files) in [("bert", &fx.hf), ("ofa", &fx.ms)] {
        for (p, bytes) in files {
            assert_eq!(
                lock[&format!("model-file:{name}/{p}")],
                (
                    p.clone(),
                    format!("sha256:{}", sha256_hex(bytes)),
                    bytes.len() as u64
                ),
                "{name}/{p}"
            );
        }
    }
    assert!(
        !lock.keys().any(|k| k.contains(".gitattributes")),
        "{lock:?}"
    );
    // The hub gave LFS files' sha256: the lock did not download them; the
    // plain ones were hashed at lock time.
    assert_eq!(hub.downloads_of("model.safetensors"), 0);
    assert_eq!(hub.downloads_of("config.json"), 1);
    assert_eq!(hub.downloads_of("pytorch_model.bin"), 0);

    let rootfs = tmp.path().join("rootfs");
    let o = out(eb(&store, Some(&hub.base))
        .arg("realize")
        .arg(&spec)
        .arg("--format")
        .arg("rootfs")
        .arg("-o")
        .arg(&rootfs));
    ok(o, "realize");
    assert_eq!(
        hub.downloads_of("config.json"),
        1,
        "hashed at lock time, kept"
    );
    assert_eq!(hub.downloads_of("model.safetensors"), 1);
    let hf = rootfs.join(HF_DIR);
    assert_eq!(fs::read_to_string(hf.join("refs/main")).unwrap(), HF_COMMIT);
    for (p, bytes) in &fx.hf {
        assert_eq!(
            &fs::read(hf.join("snapshots").join(HF_COMMIT).join(p)).unwrap(),
            bytes,
            "{p}"
        );
    }
    let ms = rootfs.join(MS_DIR);
    for (p, bytes) in &fx.ms {
        assert_eq!(&fs::read(ms.join(p)).unwrap(), bytes, "{p}");
    }
    // The ModelScope cache index, read the way the client reads it.
    let py = std::env::var("ENVBUILD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let o = Command::new(&py)
        .arg("-c")
        .arg("import pickle,sys; d=sys.argv[1]; print(sorted((k['Path'],k['Revision']) for k in pickle.load(open(d+'/.msc','rb')))); print(pickle.load(open(d+'/.mdl','rb')))")
        .arg(&ms)
        .output();
    match o {
        Ok(o) => {
            let s = ok(o, "reading .msc/.mdl with pickle");
            assert_eq!(
                s,
                format!("[('configuration.json', '{MS_COMMIT}'), ('pytorch_model.bin', '{MS_COMMIT}'), ('sub/vocab.json', '{MS_COMMIT}')]\n{{'id': 'iic/ofa___tiny'}}")
            );
        }
        Err(e) => eprintln!("note: {py} cannot run ({e}); .msc/.mdl not read back"),
    }

    // The real clients, offline, against the realized trees.
    let work = tmp.path().join("clients");
    if let Some(py) = python_with("huggingface_hub") {
        let cache = work.join("hf");
        copy_writable(&rootfs.join("home/appuser/.cache/huggingface/hub"), &cache);
        let o = Command::new(&py)
            .arg("-c")
            .arg("from huggingface_hub import snapshot_download as s; print(s('acme/tiny-bert', local_files_only=True))")
            .env("HF_HUB_CACHE", &cache)
            .env("HF_HUB_OFFLINE", "1")
            .output()
            .unwrap();
        let got = ok(
            o,
            "huggingface_hub snapshot_download(local_files_only=True)",
        );
        assert_eq!(
            PathBuf::from(got.lines().last().unwrap()),
            cache
                .join("models--acme--tiny-bert/snapshots")
                .join(HF_COMMIT)
        );
        eprintln!("checked with the real huggingface_hub client");
    }
    if let Some(py) = python_with("modelscope.hub.snapshot_download") {
        let cache = work.join("ms");
        copy_writable(&rootfs.join("home/appuser/.cache/modelscope/hub"), &cache);
        let o = Command::new(&py)
            .arg("-c")
            .arg("from modelscope.hub.snapshot_download import snapshot_download as s; import os; d=s('iic/ofa.tiny', revision='v1.0.1', local_files_only=True); print(d); print(sorted(os.listdir(d)))")
            .env("MODELSCOPE_CACHE", &cache)
            .output()
            .unwrap();
        let got = ok(o, "modelscope snapshot_download(local_files_only=True)");
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(
            PathBuf::from(lines[lines.len() - 2]),
            cache.join("iic/ofa___tiny")
        );
        assert!(
            lines[lines.len() - 1].contains("'pytorch_model.bin'"),
            "{got}"
        );
        eprintln!("checked with the real modelscope client");
    }
    assert!(verify_clean(&store) > 0);
}

/// Realize with `--json` into an OCI directory; (report, oci dir).
fn realize_json_env(store: &Path, hub: &str, spec: &Path, out_dir: &Path) -> serde_json::Value {
    let o = out(eb(store, Some(hub))
        .arg("--json")
        .arg("realize")
        .arg(spec)
        .arg("--format")
        .arg("oci-dir")
        .arg("-o")
        .arg(out_dir));
    let s = ok(o, "realize --json");
    serde_json::from_str(s.lines().next().unwrap()).unwrap()
}

fn layer_of<'a>(report: &'a serde_json::Value, component: &str) -> &'a serde_json::Value {
    report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| {
            l["components"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c.as_str() == Some(component))
        })
        .unwrap_or_else(|| panic!("no layer holds {component}: {report}"))
}

/// (path, uid, mode) of every entry of a gzip layer blob.
fn layer_entries(blob: &Path) -> BTreeMap<String, (u64, u32)> {
    let mut data = Vec::new();
    fs::File::open(blob)
        .unwrap()
        .read_to_end(&mut data)
        .unwrap();
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(&data[..]));
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path()
                    .unwrap()
                    .to_string_lossy()
                    .trim_end_matches('/')
                    .to_string(),
                (h.uid().unwrap(), h.mode().unwrap()),
            )
        })
        .collect()
}

#[test]
fn each_model_has_its_own_layer_unchanged_by_an_app_edit_and_owned_by_the_user() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = Hub::start();
    fixture(&hub);
    let spec = spec_with(tmp.path(), MODELS);
    let store = tmp.path().join("store");
    let r1 = realize_json_env(&store, &hub.base, &spec, &tmp.path().join("oci1"));
    let bert = layer_of(&r1, "model bert").clone();
    let ofa = layer_of(&r1, "model ofa").clone();
    assert_eq!(bert["components"].as_array().unwrap().len(), 1, "{bert}");
    assert_eq!(ofa["components"].as_array().unwrap().len(), 1, "{ofa}");
    let app1 = layer_of(&r1, "files /home/appuser/app")["digest"].clone();

    // Ownership in the ModelScope layer: the client writes into the cache
    // root (temp/) and the snapshot (.mdl), so the user owns them; the
    // home stays the user's.
    let digest = ofa["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let entries = layer_entries(&tmp.path().join("oci1/blobs/sha256").join(digest));
    for p in [
        "home/appuser",
        "home/appuser/.cache",
        "home/appuser/.cache/modelscope/hub",
        "home/appuser/.cache/modelscope/hub/iic",
        MS_DIR,
    ] {
        assert_eq!(entries[p], (1001, 0o755), "{p}: {entries:?}");
    }
    assert_eq!(entries[&format!("{MS_DIR}/.mdl")].0, 1001);
    assert_eq!(
        entries[&format!("{MS_DIR}/pytorch_model.bin")],
        (1001, 0o644)
    );
    assert_eq!(entries["home"], (0, 0o755));

    // Edit an app file: the app layer changes, the model layers do not.
    let app_file = fs::read_dir(tmp.path().join("hello/app"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_file())
        .unwrap();
    let mut text = fs::read(&app_file).unwrap();
    text.extend_from_slice(b"\n# edited\n");
    fs::write(&app_file, text).unwrap();
    let r2 = realize_json_env(&store, &hub.base, &spec, &tmp.path().join("oci2"));
    assert_ne!(layer_of(&r2, "files /home/appuser/app")["digest"], app1);
    assert_eq!(layer_of(&r2, "model bert")["digest"], bert["digest"]);
    assert_eq!(layer_of(&r2, "model ofa")["digest"], ofa["digest"]);
    assert_eq!(
        hub.downloads_of("model.safetensors"),
        1,
        "fetched once per store"
    );
    verify_clean(&store);
}

#[test]
fn a_model_file_changed_on_the_server_is_refused_naming_the_file_and_both_hashes() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = Hub::start();
    let fx = fixture(&hub);
    let spec = spec_with(tmp.path(), MODELS);
    ok(
        out(eb(&tmp.path().join("store-a"), Some(&hub.base))
            .arg("lock")
            .arg(&spec)),
        "lock",
    );
    let lock_before = fs::read(spec.with_extension("lock")).unwrap();

    let mut changed = fx.hf["model.safetensors"].clone();
    changed[BIG / 2] ^= 0xff;
    hub.change("hf:acme/tiny-bert", "model.safetensors", changed.clone());
    let store = tmp.path().join("store-b");
    let err = fails(
        out(eb(&store, Some(&hub.base))
            .arg("realize")
            .arg(&spec)
            .arg("-o")
            .arg(tmp.path().join("x.tar"))),
        "realize against a changed file",
    );
    assert!(
        err.contains("model bert: file model.safetensors changed on the server"),
        "{err}"
    );
    assert!(
        err.contains(&sha256_hex(&fx.hf["model.safetensors"])),
        "old hash: {err}"
    );
    assert!(err.contains(&sha256_hex(&changed)), "new hash: {err}");
    assert_eq!(
        fs::read(spec.with_extension("lock")).unwrap(),
        lock_before,
        "lock untouched"
    );
    verify_clean(&store);

    // ModelScope too, in a store of its own (the files that verified above
    // were kept, ModelScope's among them); a file longer than pinned is
    // refused at the pinned size, before it is read to the end.
    let store = tmp.path().join("store-c");
    let mut longer = fx.ms["sub/vocab.json"].clone();
    longer.extend_from_slice(b" ");
    hub.change("ms:iic/ofa.tiny", "sub/vocab.json", longer);
    hub.change(
        "hf:acme/tiny-bert",
        "model.safetensors",
        fx.hf["model.safetensors"].clone(),
    );
    let err = fails(
        out(eb(&store, Some(&hub.base))
            .arg("realize")
            .arg(&spec)
            .arg("-o")
            .arg(tmp.path().join("x.tar"))),
        "realize against a longer ModelScope file",
    );
    assert!(
        err.contains("model ofa: file sub/vocab.json")
            && err.contains(&format!(
                "longer than {} bytes (the pinned size)",
                fx.ms["sub/vocab.json"].len()
            )),
        "{err}"
    );
    verify_clean(&store);
    // Same size, other bytes: the hash tells.
    let mut changed = fx.ms["sub/vocab.json"].clone();
    *changed.last_mut().unwrap() ^= 1;
    hub.change("ms:iic/ofa.tiny", "sub/vocab.json", changed.clone());
    let err = fails(
        out(eb(&store, Some(&hub.base))
            .arg("realize")
            .arg(&spec)
            .arg("-o")
            .arg(tmp.path().join("x.tar"))),
        "realize against a changed ModelScope file",
    );
    assert!(
        err.contains("model ofa: file sub/vocab.json changed on the server"),
        "{err}"
    );
    assert!(
        err.contains(&sha256_hex(&fx.ms["sub/vocab.json"])) && err.contains(&sha256_hex(&changed)),
        "{err}"
    );
    verify_clean(&store);
}

#[test]
fn a_download_cut_in_the_middle_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = Hub::start();
    let fx = fixture(&hub);
    let spec = spec_with(tmp.path(), MODELS);
    let store = tmp.path().join("store");
    hub.cut_once("model.safetensors", 600_000);
    hub.cut_once("pytorch_model.bin", 700_001);
    let rootfs = tmp.path().join("rootfs");
    ok(
        out(eb(&store, Some(&hub.base))
            .arg("realize")
            .arg(&spec)
            .arg("--format")
            .arg("rootfs")
            .arg("-o")
            .arg(&rootfs)),
        "realize with cut downloads",
    );
    let ranges = hub.state.lock().unwrap().ranges.clone();
    assert!(
        ranges.contains(&("model.safetensors".into(), "600000-".into())),
        "{ranges:?}"
    );
    assert!(
        ranges.contains(&("pytorch_model.bin".into(), "700001-".into())),
        "{ranges:?}"
    );
    assert_eq!(
        fs::read(
            rootfs
                .join(HF_DIR)
                .join("snapshots")
                .join(HF_COMMIT)
                .join("model.safetensors")
        )
        .unwrap(),
        fx.hf["model.safetensors"]
    );
    assert_eq!(
        fs::read(rootfs.join(MS_DIR).join("pytorch_model.bin")).unwrap(),
        fx.ms["pytorch_model.bin"]
    );
    verify_clean(&store);
    // Pinned and in the store: no hub, no endpoint needed.
    let requests = hub.state.lock().unwrap().requests.len();
    ok(
        out(eb(&store, None)
            .arg("realize")
            .arg(&spec)
            .arg("--locked")
            .arg("--offline")
            .arg("-o")
            .arg(tmp.path().join("again.tar"))),
        "realize --locked --offline without an endpoint",
    );
    assert_eq!(hub.state.lock().unwrap().requests.len(), requests);
}

#[test]
fn a_hub_that_is_down_gives_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = spec_with(tmp.path(), MODELS);
    let store = tmp.path().join("store");
    // A port nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let err = fails(
        out(eb(&store, Some(&dead)).arg("lock").arg(&spec)),
        "lock with the hub down",
    );
    assert!(
        err.contains(&format!(
            "endpoint {dead} (from HF_ENDPOINT) cannot be reached"
        )),
        "{err}"
    );
    assert!(
        err.contains("HF_ENDPOINT=URL") && err.contains("source = \"./dir\""),
        "{err}"
    );
    verify_clean(&store);

    // No endpoint configured at all: the variables to set are named.
    let err = fails(
        out(eb(&store, None).arg("lock").arg(&spec)),
        "lock with no endpoint",
    );
    assert!(err.contains("HF_ENDPOINT or ENVBUILD_HF_ENDPOINT"), "{err}");
    assert!(!spec.with_extension("lock").exists());

    // Locked while the hub was up, realized on a fresh store while it is down.
    let hub = Hub::start();
    fixture(&hub);
    ok(
        out(eb(&tmp.path().join("store-a"), Some(&hub.base))
            .arg("lock")
            .arg(&spec)),
        "lock",
    );
    let err = fails(
        out(eb(&store, Some(&dead))
            .arg("realize")
            .arg(&spec)
            .arg("-o")
            .arg(tmp.path().join("x.tar"))),
        "realize with the hub down",
    );
    assert!(
        err.contains(&format!("endpoint {dead}")) && err.contains("cannot be reached"),
        "{err}"
    );
    assert!(err.contains("source = \"./dir\""), "{err}");
    verify_clean(&store);
}

#[test]
fn a_volume_model_is_kept_out_of_the_image_and_named_in_realize_output() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = Hub::start();
    let fx = fixture(&hub);
    let spec = spec_with(
        tmp.path(),
        "\n[models.bert]\nsource = \"huggingface:acme/tiny-bert\"\nrevision = \"v1\"\nlayer = \"volume\"\n",
    );
    let store = tmp.path().join("store");
    let o = out(eb(&store, Some(&hub.base))
        .arg("realize")
        .arg(&spec)
        .arg("-o")
        .arg(tmp.path().join("img.tar")));
    let s = ok(o, "realize with a volume");
    let target = format!("/{HF_DIR}");
    let line = s
        .lines()
        .find(|l| l.starts_with("volume bert: mount "))
        .unwrap_or_else(|| panic!("no volume line: {s}"));
    let (src, at) = line["volume bert: mount ".len()..]
        .split_once(" at ")
        .unwrap();
    assert_eq!(at, target);
    assert!(s.lines().last().unwrap().starts_with("sha256:"), "{s}");
    let src = PathBuf::from(src);
    assert!(src.starts_with(&store), "{src:?}");
    assert_eq!(fs::read_to_string(src.join("refs/v1")).unwrap(), HF_COMMIT);
    assert_eq!(
        fs::read(
            src.join("snapshots")
                .join(HF_COMMIT)
                .join("model.safetensors")
        )
        .unwrap(),
        fx.hf["model.safetensors"]
    );
    // Not in the image.
    let r = realize_json_env(&store, &hub.base, &spec, &tmp.path().join("oci"));
    assert!(!r.to_string().contains("model bert\""), "{r}");
    assert_eq!(r["volumes"][0]["path"], target.as_str());
    for l in r["layers"].as_array().unwrap() {
        let d = l["digest"].as_str().unwrap().trim_start_matches("sha256:");
        let entries = layer_entries(&tmp.path().join("oci/blobs/sha256").join(d));
        assert!(
            !entries.keys().any(|p| p.contains("models--acme")),
            "{entries:?}"
        );
    }
    // gc keeps it (realize rooted it).
    ok(out(eb(&store, None).arg("store").arg("gc")), "gc");
    assert!(src.join("refs/v1").exists());
    verify_clean(&store);
}

#[test]
fn url_and_local_directory_models() {
    let tmp = tempfile::tempdir().unwrap();
    let weights = Rng::new(3).bytes(200_000);
    let server = http::serve(vec![(
        "/files/w.bin",
        http::Behaviour::Serve(weights.clone()),
    )]);
    let spec = spec_with(
        tmp.path(),
        &format!(
            "\n[models.w]\nsource = \"{}/files/w.bin\"\nsha256 = \"{}\"\npath = \"/opt/models/w\"\n\n[models.local]\nsource = \"model-dir\"\npath = \"/opt/models/local\"\nowner = \"appuser\"\n",
            server.base,
            sha256_hex(&weights)
        ),
    );
    write(tmp.path().join("model-dir/config.json"), b"{}", 0o644);
    write(tmp.path().join("model-dir/sub/weights.bin"), b"0123", 0o644);
    let store = tmp.path().join("store");
    let rootfs = tmp.path().join("rootfs");
    ok(
        out(eb(&store, None)
            .arg("realize")
            .arg(&spec)
            .arg("--format")
            .arg("rootfs")
            .arg("-o")
            .arg(&rootfs)),
        "realize",
    );
    let lock = lock_entries(&spec);
    assert_eq!(
        lock["model:w"],
        (
            format!("{}/files/w.bin", server.base),
            format!("sha256:{}", sha256_hex(&weights)),
            200_000
        )
    );
    assert_eq!(lock["model:local"].0, "model-dir");
    assert!(lock["model:local"].1.starts_with("nar-sha256:"), "{lock:?}");
    assert_eq!(
        fs::read(rootfs.join("opt/models/w/w.bin")).unwrap(),
        weights
    );
    assert_eq!(
        fs::read(rootfs.join("opt/models/local/sub/weights.bin")).unwrap(),
        b"0123"
    );
    verify_clean(&store);
}

#[test]
fn model_spec_errors_name_the_key_the_expected_and_the_found() {
    let tmp = tempfile::tempdir().unwrap();
    let base = "[env]\nname = \"m\"\nsystem = \"x86_64-linux\"\n";
    let cases = [
        (
            "[models.a]\nsource = \"https://h/x.bin\"\npath = \"/m\"\n",
            "models.a.source: a model given by URL needs sha256",
        ),
        (
            "[models.a]\nsource = \"hug:org/x\"\n",
            "unknown hub \"hug\"",
        ),
        (
            "[models.a]\nsource = \"modelscope:justname\"\n",
            "is not a ModelScope repository id (expected \"OWNER/NAME\")",
        ),
        (
            "[models.a]\nsource = \"huggingface:o/r\"\nlayer = \"shared\"\n",
            "models.a.layer \"shared\" is not \"own\" or \"volume\"",
        ),
        (
            "[models.a]\nsource = \"huggingface:o/r\"\npath = \"rel\"\n",
            "models.a.path \"rel\" must be an absolute image path",
        ),
        (
            "[models.a]\nsource = \"nowhere\"\npath = \"/m\"\n",
            "models.a.source \"nowhere\" is not a directory",
        ),
        (
            "[models.a]\nsource = \"huggingface:o/r\"\nowner = \"bob\"\n",
            "models.a.owner \"bob\" is not \"root\"",
        ),
        (
            "[models.a]\nsource = \"huggingface:o/r\"\nmirror = \"x\"\n",
            "unknown field `mirror`",
        ),
    ];
    for (toml, want) in cases {
        let p = tmp.path().join("s.toml");
        fs::write(&p, format!("{base}{toml}")).unwrap();
        let e = envbuild::spec::Spec::load(&p).unwrap_err().to_string();
        assert!(e.contains(want), "{toml}: {e}");
        assert!(e.contains("s.toml:"), "located: {e}");
    }
}

#[test]
fn the_ofa_ve_draft_spec_parses_and_validates() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let spec = envbuild::spec::Spec::load(&repo.join("specs/ofa-ve.toml")).unwrap();
    assert_eq!(spec.models.len(), 1);
    let m = &spec.models[0];
    assert_eq!(m.name, "ofa");
    assert_eq!(
        m.path,
        "/home/appuser/.cache/modelscope/iic/ofa_visual-entailment_snli-ve_large_en"
    );
    assert_eq!(m.owner, Some((1001, 1001)));
    assert_eq!(m.layer, envbuild::spec::ModelLayer::Own);
    assert!(matches!(
        m.source,
        envbuild::spec::ModelSource::Local { .. }
    ));
}
