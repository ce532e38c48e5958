//! `[base] image` against Debian's real registry (docker-registry) on
//! loopback, with a hand-made base: two gzip layers, the upper one with a
//! whiteout (`etc/.wh.removed`) and an opaque directory (`opt/lower`), a
//! config with Env, Cmd, WorkingDir, Labels and ExposedPorts.
//!
//! - lock pins the tag's manifest digest and every layer; realizing twice
//!   into two stores gives one digest; the base's layer blobs are in the
//!   output byte for byte, first, with their diff IDs; the config is
//!   inherited under the spec's settings; `envbuild run` and `docker run`
//!   see the base's files and not the whited-out ones; a push to the
//!   registry the base came from skips the base's layers;
//! - `envbuild pull` fetches the layers into the store, verified;
//! - a changed base digest in the lock is named by `realize --locked`;
//! - bad input (a blob whose bytes do not match its digest, a reference
//!   digest that does not match, an index for another platform only, an
//!   unknown tag, `[base] debian` with `[base] image`) is a clear error and
//!   leaves the store clean.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::registry::Registry;
use common::*;
use sha2::{Digest, Sha256};

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A tar of (path, contents or None for a directory, mode).
fn tar_of(entries: &[(&str, Option<&[u8]>, u32)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data, mode) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mode(*mode);
        match data {
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, path, std::io::empty()).unwrap();
            }
            Some(d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(d.len() as u64);
                b.append_data(&mut h, path, *d).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// The hand-made base image.
struct Base {
    /// (gzip blob, uncompressed tar), bottom first.
    layers: Vec<(Vec<u8>, Vec<u8>)>,
    config: Vec<u8>,
    manifest: Vec<u8>,
}

const CHECKED: &[&str] = &[
    "/etc/base-release",
    "/etc/removed",
    "/opt/lower/old",
    "/opt/lower/new",
    "/app/hello.txt",
    "/usr/local/lib/python3.12/dist-packages/greeter/__init__.py",
];

fn static_exists(dir: &Path) -> Vec<u8> {
    let out = dir.join("exists");
    let st = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&out)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exists.c"))
        .status()
        .expect("gcc runs");
    assert!(st.success(), "gcc -static failed (Debian: gcc, libc6-dev)");
    fs::read(out).unwrap()
}

fn make_base(dir: &Path) -> Base {
    let exists = static_exists(dir);
    let lower = tar_of(&[
        ("bin/", None, 0o755),
        ("bin/exists", Some(&exists), 0o755),
        ("etc/", None, 0o755),
        ("etc/base-release", Some(b"base 1\n"), 0o644),
        ("etc/removed", Some(b"whited out above\n"), 0o644),
        ("opt/", None, 0o755),
        ("opt/lower/", None, 0o755),
        ("opt/lower/old", Some(b"hidden by the opaque dir\n"), 0o644),
        // What a Debian-like base has for [python]: an interpreter (any
        // program will do: it is found, not run) and libc6 in the dpkg status.
        ("usr/", None, 0o755),
        ("usr/bin/", None, 0o755),
        ("usr/bin/python3.12", Some(&exists), 0o755),
        ("var/", None, 0o755),
        ("var/lib/", None, 0o755),
        ("var/lib/dpkg/", None, 0o755),
        (
            "var/lib/dpkg/status",
            Some(b"Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9+deb12u4\n\n"),
            0o644,
        ),
    ]);
    let upper = tar_of(&[
        ("etc/", None, 0o755),
        ("etc/.wh.removed", Some(b""), 0o644),
        ("opt/", None, 0o755),
        ("opt/lower/", None, 0o755),
        ("opt/lower/.wh..wh..opq", Some(b""), 0o644),
        ("opt/lower/new", Some(b"new\n"), 0o644),
    ]);
    let layers: Vec<(Vec<u8>, Vec<u8>)> =
        [lower, upper].into_iter().map(|t| (gzip(&t), t)).collect();
    let mut cmd = vec!["/bin/exists".to_string()];
    cmd.extend(CHECKED.iter().map(|s| s.to_string()));
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/bin", "BASE_VAR=from-base"],
            "Cmd": cmd,
            "WorkingDir": "/",
            "Labels": {"base.label": "yes"},
            "ExposedPorts": {"8080/tcp": {}},
        },
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|(_, t)| format!("sha256:{}", sha(t))).collect::<Vec<_>>(),
        },
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{}", sha(&config)),
            "size": config.len(),
        },
        "layers": layers.iter().map(|(g, _)| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": format!("sha256:{}", sha(g)),
            "size": g.len(),
        })).collect::<Vec<_>>(),
    }))
    .unwrap();
    Base {
        layers,
        config,
        manifest,
    }
}

impl Base {
    fn manifest_digest(&self) -> String {
        format!("sha256:{}", sha(&self.manifest))
    }

    fn layer_digests(&self) -> Vec<String> {
        self.layers
            .iter()
            .map(|(g, _)| format!("sha256:{}", sha(g)))
            .collect()
    }

    /// Push it as `repo:tag` (its manifest, or `top`: another document
    /// with `top_type` over the same blobs) through envbuild's own client.
    fn push(&self, reg: &Registry, dir: &Path, repo_tag: &str, top: Option<(&[u8], &str)>) {
        let desc = |media: &str, bytes: &[u8]| envbuild::oci::Descriptor {
            media_type: media.into(),
            digest: format!("sha256:{}", sha(bytes)),
            size: bytes.len() as u64,
            annotations: Default::default(),
        };
        let layers = self
            .layers
            .iter()
            .map(|(g, _)| {
                let p = dir.join(sha(g));
                fs::write(&p, g).unwrap();
                (desc("application/vnd.oci.image.layer.v1.tar+gzip", g), p)
            })
            .collect();
        let (manifest_json, media) = match top {
            Some((bytes, media)) => (bytes.to_vec(), media),
            None => (
                self.manifest.clone(),
                "application/vnd.oci.image.manifest.v1+json",
            ),
        };
        let image = envbuild::oci::Image {
            reference: repo_tag.into(),
            created_epoch: 0,
            config_json: self.config.clone(),
            config: desc("application/vnd.oci.image.config.v1+json", &self.config),
            manifest: desc(media, &manifest_json),
            manifest_json,
            layers,
        };
        let client = envbuild::net::Client::from_env().unwrap();
        let reference =
            envbuild::registry::Reference::parse(&format!("{}/{repo_tag}", reg.host())).unwrap();
        envbuild::registry::push(&client, &image, &reference, &Default::default()).unwrap();
    }

    /// Write it as an OCI layout directory.
    fn layout(&self, dir: &Path) {
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).unwrap();
        for b in self
            .layers
            .iter()
            .map(|(g, _)| g)
            .chain([&self.config, &self.manifest])
        {
            fs::write(blobs.join(sha(b)), b).unwrap();
        }
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": self.manifest_digest(),
                "size": self.manifest.len(),
            }],
        });
        fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    }
}

fn spec_on(dir: &Path, image: &str, tag: &str) -> PathBuf {
    fs::create_dir_all(dir.join("app")).unwrap();
    fs::write(dir.join("app/hello.txt"), "hello from the app\n").unwrap();
    fs::create_dir_all(dir.join("wheels")).unwrap();
    fs::write(
        dir.join("wheels/greeter-1.0-py3-none-any.whl"),
        build_wheel(
            "greeter",
            "1.0",
            &[("greeter/__init__.py", b"GREETING = 'hi'\n")],
            &[],
        ),
    )
    .unwrap();
    let spec = dir.join("onbase.toml");
    fs::write(
        &spec,
        format!(
            r#"[env]
name = "onbase"
system = "x86_64-linux"
source-date-epoch = 1700000000

[base]
image = "{image}"

[[files]]
src = "app"
dst = "/app"

[[wheels]]
path = "wheels/greeter-1.0-py3-none-any.whl"

[python]
# The base's "interpreter" is a stand-in program: found, never run.
compile-bytecode = false

[image]
tag = "{tag}"
env = {{ APP_VAR = "from-spec" }}
"#
        ),
    )
    .unwrap();
    spec
}

/// The members of a tar file, by path.
fn members(tar_path: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut a = tar::Archive::new(fs::File::open(tar_path).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        out.insert(p, data);
    }
    out
}

fn expected_lines() -> String {
    "/etc/base-release yes\n/etc/removed no\n/opt/lower/old no\n/opt/lower/new yes\n/app/hello.txt yes\n/usr/local/lib/python3.12/dist-packages/greeter/__init__.py yes\nBASE_VAR=from-base\nAPP_VAR=from-spec".to_string()
}

fn base_items(store: &Path) -> Vec<String> {
    fs::read_dir(store)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains("-oci-") || n.contains("-base-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_base_image_by_tag_is_pinned_reproducible_kept_as_is_and_seen_by_run() {
    let t = tempfile::tempdir().unwrap();
    let reg = Registry::start(None);
    let base = make_base(t.path());
    base.push(&reg, t.path(), "base:1", None);
    let dir = t.path().join("spec");
    let spec = spec_on(&dir, &format!("{}/base:1", reg.host()), "t1");
    let store_a = t.path().join("store-a");
    let store_b = t.path().join("store-b");

    // lock pins the tag's manifest and every layer.
    ok(run(&store_a, &[&"lock", &spec]), "lock");
    let lock_text = fs::read_to_string(dir.join("onbase.lock")).unwrap();
    let lock: toml::Table = toml::from_str(&lock_text).unwrap();
    let b = lock["base-image"].as_table().unwrap();
    assert_eq!(b["digest"].as_str(), Some(base.manifest_digest().as_str()));
    assert_eq!(
        b["manifest"]["file"].as_str(),
        Some(base.manifest_digest().as_str())
    );
    let pinned: Vec<&str> = b["layer"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["file"].as_str().unwrap())
        .collect();
    assert_eq!(pinned, base.layer_digests());
    // [python] on the base: its interpreter and glibc, read from its layers.
    assert_eq!(
        b["python"]["interpreter"].as_str(),
        Some("/usr/bin/python3.12")
    );
    assert_eq!(b["python"]["glibc"].as_str(), Some("2.36"));

    // Two stores, one digest.
    let out_a = t.path().join("a.tar");
    let out_b = t.path().join("b.tar");
    let da = realize(&store_a, &spec, &out_a, &["--locked"]);
    let db = realize(&store_b, &spec, &out_b, &["--locked"]);
    assert_eq!(da, db, "two stores give two digests");
    assert_eq!(fs::read(&out_a).unwrap(), fs::read(&out_b).unwrap());

    // The base's blobs are in the image byte for byte, first, with their
    // diff IDs; the config is inherited under the spec's.
    let m = members(&out_a);
    let docker: serde_json::Value = serde_json::from_slice(&m["manifest.json"]).unwrap();
    let layer_paths: Vec<&str> = docker[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(layer_paths.len() >= 4, "{layer_paths:?}");
    for (i, (gz, _)) in base.layers.iter().enumerate() {
        assert_eq!(layer_paths[i], format!("blobs/sha256/{}", sha(gz)));
        assert!(
            m[layer_paths[i]] == *gz,
            "layer {i} is not the base's blob byte for byte"
        );
    }
    let config: serde_json::Value =
        serde_json::from_slice(&m[docker[0]["Config"].as_str().unwrap()]).unwrap();
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    for (i, (_, tar)) in base.layers.iter().enumerate() {
        assert_eq!(diff_ids[i], format!("sha256:{}", sha(tar)));
    }
    let c = &config["config"];
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        env,
        ["PATH=/bin", "BASE_VAR=from-base", "APP_VAR=from-spec"]
    );
    assert_eq!(c["Cmd"][0], "/bin/exists");
    assert_eq!(c["WorkingDir"], "/");
    assert_eq!(c["Labels"]["base.label"], "yes");
    assert!(c["ExposedPorts"].get("8080/tcp").is_some(), "{c}");

    // `envbuild run` sees the base's files, not the whited-out ones.
    let mut cmd = vec!["/bin/exists"];
    cmd.extend(CHECKED);
    let o = run_in_closure(&store_a, &spec, &dir, &cmd);
    let shown = ok(o, "envbuild run /bin/exists");
    // ... and the base's Env under the spec's, as the image has them.
    assert_eq!(shown, expected_lines());

    // docker runs the image (the base's Cmd, the merged Env).
    if let Some(out) = docker_run(&out_a, "onbase:t1", &[]) {
        assert_eq!(out.trim(), expected_lines());
    }

    // A push to the registry the base came from skips its layers.
    let o = envbuild()
        .arg("--store")
        .arg(&store_a)
        .arg("--json")
        .arg("push")
        .arg(&spec)
        .arg(format!("{}/base:app", reg.host()))
        .arg("--locked")
        .output()
        .unwrap();
    let s = ok(o, "push");
    let report: serde_json::Value = serde_json::from_str(s.lines().next().unwrap()).unwrap();
    for d in base.layer_digests() {
        let blob = report["blobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["digest"] == d)
            .expect("the base layer is in the push");
        assert_eq!(blob["outcome"], "skipped", "{report}");
    }
    assert_eq!(s.lines().last().unwrap(), da);
    // To another repository of that registry: the base's layers are
    // mounted from the one they were pulled from, not uploaded.
    let o = run(
        &store_a,
        &[
            &"--json",
            &"push",
            &spec,
            &format!("{}/other:1", reg.host()),
            &"--locked",
        ],
    );
    let s = ok(o, "push to another repository");
    let report: serde_json::Value = serde_json::from_str(s.lines().next().unwrap()).unwrap();
    for d in base.layer_digests() {
        let blob = report["blobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["digest"] == d)
            .expect("the base layer is in the push");
        assert_eq!(blob["outcome"], "mounted", "{report}");
    }
    // Offline, from the store alone: the same image.
    assert_eq!(realize(&store_a, &spec, &out_a, &["--offline"]), da);

    // A changed base digest in the lock: --locked names it.
    let fake = format!("sha256:{}", "0".repeat(64));
    let edited = lock_text.replace(&base.manifest_digest(), &fake).replace(
        &base.manifest_digest()["sha256:".len()..],
        &fake["sha256:".len()..],
    );
    fs::write(dir.join("onbase.lock"), &edited).unwrap();
    let before = store_snapshot(&store_b);
    let err = fails(
        run(
            &store_b,
            &[
                &"realize",
                &spec,
                &"--locked",
                &"-o",
                &t.path().join("c.tar"),
            ],
        ),
        "realize --locked with an edited lock",
    );
    assert!(err.contains(&fake) && err.contains("base"), "{err}");
    assert_eq!(
        store_snapshot(&store_b),
        before,
        "the failure changed the store"
    );
    verify_clean(&store_b);
    let _ = fs::remove_file(&out_b);
}

#[test]
fn envbuild_pull_fetches_the_layers_verified_and_prints_the_digest() {
    let t = tempfile::tempdir().unwrap();
    let reg = Registry::start(None);
    let base = make_base(t.path());
    base.push(&reg, t.path(), "base:1", None);
    let store = t.path().join("store");
    let reference = format!("{}/base:1", reg.host());
    let o = envbuild()
        .arg("--store")
        .arg(&store)
        .arg("--json")
        .arg("pull")
        .arg(&reference)
        .output()
        .unwrap();
    let s = ok(o, "pull");
    assert_eq!(s.lines().last().unwrap(), base.manifest_digest());
    let v: serde_json::Value = serde_json::from_str(s.lines().next().unwrap()).unwrap();
    assert_eq!(v["downloaded"], 4, "{v}");
    for (l, (gz, _)) in v["layers"].as_array().unwrap().iter().zip(&base.layers) {
        assert_eq!(fs::read(l["path"].as_str().unwrap()).unwrap(), *gz);
    }
    verify_clean(&store);
    // Again: everything is in the store already.
    let o = run(&store, &[&"--json", &"pull", &reference]);
    let s = ok(o, "second pull");
    let v: serde_json::Value = serde_json::from_str(s.lines().next().unwrap()).unwrap();
    assert_eq!(v["downloaded"], 0, "{v}");
}

#[test]
fn bad_base_images_are_refused_naming_the_input_and_leave_the_store_clean() {
    let t = tempfile::tempdir().unwrap();
    let reg = Registry::start(None);
    let base = make_base(t.path());
    base.push(&reg, t.path(), "base:1", None);
    let store = t.path().join("store");
    let bare = |name: &str, image: &str| {
        let spec = t.path().join(format!("{name}.toml"));
        fs::write(
            &spec,
            format!(
                "[env]\nname = \"bad\"\nsystem = \"x86_64-linux\"\nsource-date-epoch = 1700000000\n\n[base]\nimage = \"{image}\"\n"
            ),
        )
        .unwrap();
        spec
    };
    // Clean: `store verify` passes, no scratch is left, and nothing of the
    // bad input is an item (the blobs that did verify may stay).
    let check_clean = |bad: &str| {
        let bad = &bad[bad.len().min("sha256:".len())..];
        let short = &bad[..bad.len().min(16)];
        let items = base_items(&store);
        assert!(
            short.is_empty() || !items.iter().any(|n| n.contains(short)),
            "{items:?}"
        );
        if store.exists() {
            verify_clean(&store);
            let tmp = store.join(".envbuild/tmp");
            let left: Vec<_> = fs::read_dir(&tmp)
                .map(|r| r.filter_map(|e| e.ok()).map(|e| e.path()).collect())
                .unwrap_or_default();
            assert!(left.is_empty(), "scratch left behind: {left:?}");
        }
    };

    // A blob whose bytes do not match its digest (an OCI layout with one
    // layer file changed): the fetch refuses it.
    let layout = t.path().join("layout");
    base.layout(&layout);
    let bottom = base.layer_digests()[0].clone();
    let blob = layout.join("blobs/sha256").join(&bottom["sha256:".len()..]);
    let mut bytes = fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&blob, &bytes).unwrap();
    let spec = bare("tampered", "oci-layout:layout");
    ok(run(&store, &[&"lock", &spec]), "lock of the layout");
    let err = fails(
        run(&store, &[&"realize", &spec, &"-o", &t.path().join("x.tar")]),
        "realize with a tampered layer",
    );
    assert!(
        err.contains("layout")
            && err.contains(&bottom["sha256:".len()..])
            && err.contains("mismatch"),
        "{err}"
    );
    check_clean(&bottom);

    // A reference digest the manifest does not have.
    let wrong = format!("sha256:{}", "1".repeat(64));
    let spec = bare("wrong-digest", &format!("{}/base:1@{wrong}", reg.host()));
    let err = fails(run(&store, &[&"lock", &spec]), "lock with a wrong digest");
    assert!(
        err.contains(&wrong) && err.contains(&base.manifest_digest()) && err.contains("base"),
        "{err}"
    );
    check_clean(&wrong);

    // An index with a manifest for another platform only.
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": base.manifest_digest(),
            "size": base.manifest.len(),
            "platform": {"architecture": "arm64", "os": "linux"},
        }],
    }))
    .unwrap();
    base.push(
        &reg,
        t.path(),
        "base:arm",
        Some((&index, "application/vnd.oci.image.index.v1+json")),
    );
    let spec = bare("arm", &format!("{}/base:arm", reg.host()));
    let err = fails(
        run(&store, &[&"lock", &spec]),
        "lock of an arm64-only index",
    );
    assert!(
        err.contains("linux/amd64") && err.contains("linux/arm64") && err.contains("base:arm"),
        "{err}"
    );
    check_clean("");

    // An unknown tag names the repository and the tag.
    let spec = bare("unknown", &format!("{}/base:nope", reg.host()));
    let err = fails(run(&store, &[&"lock", &spec]), "lock of an unknown tag");
    assert!(
        err.contains("repository base") && err.contains("nope"),
        "{err}"
    );
    check_clean("");

    // [base] debian and [base] image together.
    let spec = t.path().join("both.toml");
    fs::write(
        &spec,
        "[env]\nname = \"bad\"\nsystem = \"x86_64-linux\"\n\n[base]\ndebian = { suite = \"bookworm\", packages = [\"libc6\"] }\nimage = \"oci-layout:layout\"\n",
    )
    .unwrap();
    let err = fails(run(&store, &[&"lock", &spec]), "lock with debian and image");
    assert!(err.contains("both debian and image"), "{err}");
    check_clean("");
}

#[test]
fn an_oci_archive_envbuild_wrote_is_a_base_image_whose_layers_are_kept() {
    // The base from an OCI layout, realized into an archive; that archive
    // is the base of a second spec, whose image starts with all its layers.
    let t = tempfile::tempdir().unwrap();
    let base = make_base(t.path());
    base.layout(&t.path().join("layout"));
    let first = spec_on(&t.path().join("one"), "oci-layout:../layout", "one");
    let store = t.path().join("store");
    let one = t.path().join("one.tar");
    realize(&store, &first, &one, &[]);
    let m1 = members(&one);
    let d1: serde_json::Value = serde_json::from_slice(&m1["manifest.json"]).unwrap();
    let layers1: Vec<String> = d1[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();

    let dir2 = t.path().join("two");
    fs::create_dir_all(dir2.join("app")).unwrap();
    fs::write(dir2.join("app/second.txt"), "second\n").unwrap();
    let second = dir2.join("two.toml");
    fs::write(
        &second,
        "[env]\nname = \"two\"\nsystem = \"x86_64-linux\"\nsource-date-epoch = 1700000000\n\n[base]\nimage = \"oci-archive:../one.tar\"\n\n[[files]]\nsrc = \"app\"\ndst = \"/second\"\n",
    )
    .unwrap();
    let two = t.path().join("two.tar");
    realize(&store, &second, &two, &[]);
    let m2 = members(&two);
    let d2: serde_json::Value = serde_json::from_slice(&m2["manifest.json"]).unwrap();
    let layers2: Vec<String> = d2[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(layers2.len() > layers1.len());
    assert_eq!(&layers2[..layers1.len()], &layers1[..]);
    for l in &layers1 {
        assert!(m1[l] == m2[l], "{l} differs");
    }
    // The second image runs the first one's files and its own.
    let o = run_in_closure(
        &store,
        &second,
        &dir2,
        &[
            "/bin/exists",
            "/app/hello.txt",
            "/second/second.txt",
            "/etc/removed",
        ],
    );
    let shown = ok(o, "run on the archive base");
    assert!(
        shown.starts_with("/app/hello.txt yes\n/second/second.txt yes\n/etc/removed no"),
        "{shown}"
    );
}

#[test]
fn the_cuda_spec_parses_and_without_a_registry_says_which_variable_names_one() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let spec = repo.join("specs/ofa-ve-cuda.toml");
    let parsed = envbuild::spec::Spec::load(&spec).unwrap();
    assert_eq!(
        parsed.base_image.as_ref().map(|b| b.request.as_str()),
        Some("nvidia/cuda:12.1.1-runtime-ubuntu22.04")
    );
    // Locking a copy (no lock is written beside the checked-in spec).
    let t = tempfile::tempdir().unwrap();
    copy_tree(&repo.join("specs/ofa-ve"), &t.path().join("ofa-ve"));
    let copy = t.path().join("ofa-ve-cuda.toml");
    fs::copy(&spec, &copy).unwrap();
    let o = envbuild()
        .arg("--store")
        .arg(t.path().join("store"))
        .arg("lock")
        .arg(&copy)
        .env_remove("ENVBUILD_BASE_REGISTRY")
        .output()
        .unwrap();
    let err = fails(o, "lock of the CUDA spec without a registry");
    assert!(
        err.contains("ENVBUILD_BASE_REGISTRY") && err.contains("nvidia/cuda"),
        "{err}"
    );
    assert!(!t.path().join("ofa-ve-cuda.lock").exists());
}
