//! The export formats, checked against the real consumers: skopeo, umoci,
//! podman and docker. A missing tool fails the test (they are installed here
//! and in CI), except docker, which is skipped with a note when `docker
//! info` fails (no engine running).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::*;
use crate::oci::testutil::{output, read_tar, run, sha256_hex, store_tree, Tmp};
use crate::oci::{build_image, write_layer, Compression, ImageConfig, LayerSource, PathOverride};

const EPOCH: u64 = 1_700_000_000;

const HELLO_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(void) {
    const char *g = getenv("GREETING");
    printf("hello from envbuild: GREETING=%s uid=%d\n", g ? g : "(unset)", (int)getuid());
    return 0;
}
"#;

/// Compiles the static hello program into `dir/hello`.
fn compile_hello(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let c = dir.join("hello.c");
    std::fs::write(&c, HELLO_C).unwrap();
    let exe = dir.join("hello");
    run(Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&exe)
        .arg(&c));
    exe
}

/// A two-layer image: the hello binary, and an app directory owned by 1000.
fn hello_image(t: &Tmp, compression: Compression, reference: &str) -> Image {
    let exe = compile_hello(&t.join("build"));
    let binary = std::fs::read(&exe).unwrap();
    store_tree(
        &t.join("store/aaaa-hello"),
        &[("usr/local/bin/hello", &binary, true)],
        &[],
        &[],
    );
    store_tree(
        &t.join("store/bbbb-app"),
        &[("README", b"the app\n", false)],
        &[],
        &[],
    );
    let mut overrides = BTreeMap::new();
    for p in [
        "home/appuser",
        "home/appuser/app",
        "home/appuser/app/README",
    ] {
        overrides.insert(
            p.to_string(),
            PathOverride {
                uid: Some(1000),
                gid: Some(1000),
                ..Default::default()
            },
        );
    }
    let layer_specs = [("aaaa-hello", ""), ("bbbb-app", "home/appuser/app")];
    let mut layers = Vec::new();
    for (i, (item, prefix)) in layer_specs.iter().enumerate() {
        let out = t.join(&format!("layer{i}.blob"));
        let blob = write_layer(
            &[LayerSource {
                root: t.join(&format!("store/{item}")),
                prefix: prefix.to_string(),
                label: item.to_string(),
            }],
            &overrides,
            EPOCH,
            compression,
            &out,
        )
        .unwrap();
        layers.push((blob, out));
    }
    let config = ImageConfig {
        user: Some("1000:1000".into()),
        env: vec![
            "PATH=/usr/local/bin:/usr/bin:/bin".into(),
            "GREETING=hi".into(),
        ],
        cmd: Some(vec!["hello".into()]),
        working_dir: Some("/home/appuser/app".into()),
        exposed_ports: ["7860/tcp".to_string()].into(),
        labels: [("org.example.app".to_string(), "hello".to_string())].into(),
        ..Default::default()
    };
    build_image(&config, &layers, reference, EPOCH).unwrap()
}

fn unique_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("envbuild-oci-test-{}-{nanos}", std::process::id())
}

fn archive_bytes(image: &Image) -> Vec<u8> {
    let mut v = Vec::new();
    write_oci_archive(image, &mut v).unwrap();
    v
}

#[test]
fn archive_is_deterministic_layout_and_docker_archive() {
    let (t1, t2) = (Tmp::new(), Tmp::new());
    let a = hello_image(&t1, Compression::default(), "hello:1");
    let b = hello_image(&t2, Compression::default(), "hello:1");
    // gcc output may in principle differ between two compilations; compare
    // the images only when the binaries are equal.
    let bin = |t: &Tmp| std::fs::read(t.join("build/hello")).unwrap();
    let same_binary = bin(&t1) == bin(&t2);
    let bytes = archive_bytes(&a);
    assert_eq!(bytes, archive_bytes(&a), "same image, same archive");
    if same_binary {
        assert_eq!(a.manifest, b.manifest);
        assert_eq!(bytes, archive_bytes(&b), "different physical sources");
    }

    let entries = read_tar(&bytes);
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    let mut blobs: Vec<String> = [&a.config, &a.manifest]
        .into_iter()
        .chain(a.layers.iter().map(|(d, _)| d))
        .map(|d| format!("blobs/sha256/{}", d.hex()))
        .collect();
    blobs.sort();
    let mut want = vec!["blobs/", "blobs/sha256/"];
    want.extend(blobs.iter().map(String::as_str));
    want.extend(["index.json", "manifest.json", "oci-layout"]);
    assert_eq!(paths, want);
    for e in &entries {
        assert_eq!((e.uid, e.gid, e.mtime), (0, 0, EPOCH));
        let mode = if e.path.ends_with('/') { 0o755 } else { 0o644 };
        assert_eq!(e.mode, mode, "{}", e.path);
        if let Some(hex) = e
            .path
            .strip_prefix("blobs/sha256/")
            .filter(|h| !h.is_empty())
        {
            assert_eq!(sha256_hex(&e.data), hex, "blob content matches its name");
        }
    }
    let file = |name: &str| &entries.iter().find(|e| e.path == name).unwrap().data;
    assert_eq!(file("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#);
    let docker: Value = serde_json::from_slice(file("manifest.json")).unwrap();
    assert_eq!(docker[0]["RepoTags"][0], "hello:1");
    assert_eq!(
        docker[0]["Config"],
        format!("blobs/sha256/{}", a.config.hex())
    );
    let index: Value = serde_json::from_slice(file("index.json")).unwrap();
    assert_eq!(index["manifests"][0]["digest"], a.digest());
    // Layer blobs are carried byte for byte.
    for (d, path) in &a.layers {
        assert_eq!(
            file(&format!("blobs/sha256/{}", d.hex())),
            &std::fs::read(path).unwrap()
        );
    }

    // oci-dir: the same files; layers hardlinked (same filesystem here).
    let dir = t1.join("oci-dir");
    write_oci_dir(&a, &dir).unwrap();
    for e in entries.iter().filter(|e| !e.path.ends_with('/')) {
        assert_eq!(
            &std::fs::read(dir.join(&e.path)).unwrap(),
            &e.data,
            "{}",
            e.path
        );
    }
    let (d0, p0) = &a.layers[0];
    let linked = std::fs::metadata(dir.join("blobs/sha256").join(d0.hex())).unwrap();
    assert_eq!(linked.ino(), std::fs::metadata(p0).unwrap().ino());
    // Not into a non-empty directory.
    let e = write_oci_dir(&a, &dir).unwrap_err();
    assert!(
        e.to_string().contains("an empty or missing directory"),
        "{e}"
    );

    // A blob file that does not match its descriptor is refused.
    let mut broken = a.clone();
    broken.layers[1].1 = broken.layers[0].1.clone();
    let e = write_oci_archive(&broken, &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains(&broken.layers[1].0.digest), "{e}");

    // The file writer produces the same bytes.
    let out = t1.join("hello.tar");
    write_oci_archive_file(&a, &out).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
}

#[test]
fn skopeo_inspects_archive() {
    let t = Tmp::new();
    let image = hello_image(&t, Compression::default(), "hello-skopeo:1");
    let archive = t.join("image.tar");
    write_oci_archive_file(&image, &archive).unwrap();
    let arg = format!("oci-archive:{}", archive.display());
    let config: Value = serde_json::from_str(&run(
        Command::new("skopeo").args(["inspect", "--config", &arg])
    ))
    .unwrap();
    assert_eq!(config["config"]["User"], "1000:1000");
    assert_eq!(config["config"]["Env"][1], "GREETING=hi");
    assert_eq!(config["config"]["Cmd"][0], "hello");
    assert!(config["config"]["ExposedPorts"]["7860/tcp"].is_object());
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
    // By tag, and the manifest digest is ours.
    let tagged = format!("{arg}:1");
    let info: Value =
        serde_json::from_str(&run(Command::new("skopeo").args(["inspect", &tagged]))).unwrap();
    assert_eq!(info["Digest"], image.digest());
    assert_eq!(info["Layers"][0], image.layers[0].0.digest);
    assert_eq!(info["Architecture"], "amd64");
    // skopeo copies it to a layout directory unchanged.
    let copied = t.join("copied");
    run(Command::new("skopeo")
        .args(["copy", "--preserve-digests", &tagged])
        .arg(format!("oci:{}:1", copied.display())));
    let index: Value =
        serde_json::from_slice(&std::fs::read(copied.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], image.digest());
}

fn is_root() -> bool {
    run(Command::new("id").arg("-u")).trim() == "0"
}

fn umoci_unpack(layout: &Path, bundle: &Path) -> Result<(), String> {
    let mut cmd = Command::new("umoci");
    cmd.arg("unpack");
    if !is_root() {
        cmd.arg("--rootless");
    }
    let out = output(
        cmd.arg("--image")
            .arg(format!("{}:1", layout.display()))
            .arg(bundle),
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// umoci before 0.5 (Debian bookworm has 0.4.7) knows gzip layers only.
#[test]
fn umoci_unpacks_layout() {
    let t = Tmp::new();
    let image = hello_image(&t, Compression::Gzip { level: 6 }, "hello-umoci:1");
    // The archive, unpacked with tar, is an OCI layout directory.
    let archive = t.join("image.tar");
    write_oci_archive_file(&image, &archive).unwrap();
    let from_archive = t.join("from-archive");
    std::fs::create_dir(&from_archive).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&from_archive));
    let from_dir = t.join("oci-dir");
    write_oci_dir(&image, &from_dir).unwrap();
    for (i, layout) in [from_archive, from_dir].iter().enumerate() {
        let bundle = t.join(&format!("bundle{i}"));
        umoci_unpack(layout, &bundle).unwrap();
        let hello = bundle.join("rootfs/usr/local/bin/hello");
        assert_eq!(
            std::fs::read(&hello).unwrap(),
            std::fs::read(t.join("build/hello")).unwrap()
        );
        let meta = std::fs::metadata(&hello).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o755);
        assert_eq!(
            std::fs::read(bundle.join("rootfs/home/appuser/app/README")).unwrap(),
            b"the app\n"
        );
        if is_root() {
            let app = std::fs::metadata(bundle.join("rootfs/home/appuser/app")).unwrap();
            assert_eq!((app.uid(), app.gid()), (1000, 1000));
        }
        let spec: Value =
            serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
        assert_eq!(spec["process"]["args"][0], "hello");
        assert_eq!(spec["process"]["cwd"], "/home/appuser/app");
        assert!(spec["process"]["env"]
            .as_array()
            .unwrap()
            .contains(&Value::from("GREETING=hi")));
        if is_root() {
            assert_eq!(spec["process"]["user"]["uid"], 1000);
        }
    }
}

/// zstd layers: unpacked by umoci >= 0.5; older versions are reported.
#[test]
fn umoci_and_zstd_layers() {
    let t = Tmp::new();
    let image = hello_image(&t, Compression::Zstd { level: 3 }, "hello-umoci:1");
    let dir = t.join("oci-dir");
    write_oci_dir(&image, &dir).unwrap();
    let version = run(Command::new("umoci").arg("--version"));
    match umoci_unpack(&dir, &t.join("bundle")) {
        Ok(()) => assert!(t.join("bundle/rootfs/usr/local/bin/hello").is_file()),
        Err(e) if e.contains("not correct mediatype") => eprintln!(
            "NOTE: {} cannot unpack zstd layers: {}",
            version.trim(),
            e.trim()
        ),
        Err(e) => panic!("umoci failed on zstd layers: {e}"),
    }
}

#[test]
fn podman_loads_archive() {
    let t = Tmp::new();
    let name = unique_name();
    let image = hello_image(&t, Compression::default(), &format!("{name}:1"));
    let archive = t.join("image.tar");
    write_oci_archive_file(&image, &archive).unwrap();
    // A private, throwaway storage: nothing is left in the user's podman.
    let podman = || {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(t.join("podman/root"))
            .arg("--runroot")
            .arg(t.join("podman/runroot"))
            .args(["--storage-driver", "vfs"]);
        c
    };
    let loaded = run(podman().arg("load").arg("-i").arg(&archive));
    assert!(loaded.contains(&format!("{name}:1")), "{loaded}");
    let inspect: Value = serde_json::from_str(&run(podman()
        .args(["image", "inspect"])
        .arg(format!("{name}:1"))))
    .unwrap();
    assert_eq!(inspect[0]["Config"]["User"], "1000:1000");
    assert_eq!(inspect[0]["Digest"], image.digest());
    let _ = podman().arg("rmi").arg("-af").output();
}

/// Removes a docker image when dropped.
struct DockerImage(String);

impl Drop for DockerImage {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

/// The engine's major version, or None (with a note) when no engine runs.
fn docker_engine() -> Option<u32> {
    let info = output(Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]));
    let version = String::from_utf8_lossy(&info.stdout).trim().to_string();
    if !info.status.success() || version.is_empty() {
        eprintln!(
            "NOTE: skipping the docker check: `docker info` failed: {}",
            String::from_utf8_lossy(&info.stderr).trim()
        );
        return None;
    }
    Some(version.split('.').next().unwrap().parse().unwrap_or(0))
}

fn docker_load_and_run(t: &Tmp, compression: Compression) -> Result<String, String> {
    let name = format!("{}:1", unique_name());
    let image = hello_image(t, compression, &name);
    let archive = t.join("image.tar");
    write_oci_archive_file(&image, &archive).unwrap();
    let _guard = DockerImage(name.clone());
    let load = output(Command::new("docker").arg("load").arg("-i").arg(&archive));
    if !load.status.success() {
        return Err(String::from_utf8_lossy(&load.stderr).into_owned());
    }
    let loaded = String::from_utf8_lossy(&load.stdout);
    assert!(
        loaded.contains(&format!("Loaded image: {name}")),
        "{loaded}"
    );
    let id = run(Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", &name]));
    assert_eq!(
        id.trim(),
        image.config.digest,
        "docker's image id is our config digest"
    );
    Ok(run(Command::new("docker").args([
        "run",
        "--rm",
        "--network",
        "none",
        &name,
    ])))
}

#[test]
fn docker_loads_and_runs_gzip_archive() {
    if docker_engine().is_none() {
        return;
    }
    let t = Tmp::new();
    let stdout = docker_load_and_run(&t, Compression::Gzip { level: 6 }).unwrap();
    assert_eq!(stdout, "hello from envbuild: GREETING=hi uid=1000\n");
}

/// zstd layers need Docker 23+; older engines are reported, not failed.
#[test]
fn docker_and_zstd_layers() {
    let Some(major) = docker_engine() else { return };
    let t = Tmp::new();
    match docker_load_and_run(&t, Compression::Zstd { level: 3 }) {
        Ok(stdout) => assert_eq!(stdout, "hello from envbuild: GREETING=hi uid=1000\n"),
        Err(e) if major < 23 => eprintln!(
            "NOTE: docker engine {major}.x cannot load zstd layers (expected before 23.0): {}",
            e.trim()
        ),
        Err(e) => panic!("docker {major}.x failed to load zstd layers: {e}"),
    }
}
