//! `envbuild init`: the seed's Dockerfile (tests/fixtures/seed-dockerfile, a
//! copy of what OFA-VE's users build today) translated into a spec that
//! loads, with its report pinned; a small Dockerfile's translation locked
//! and realized offline, its image config what the Dockerfile said;
//! requirements files (plain and hash-checked); and the errors.
//! scripts/ofa-ve-e2e.py locks and realizes the seed's translation against
//! the real index and archive.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

const SEED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/seed-dockerfile"
);

/// The seed's build context in `dir`, with the `assets/` and `css/` its
/// COPY lines name (the fixture has only the Dockerfile's own files).
fn seed_context(dir: &Path) -> PathBuf {
    let ctx = dir.join("ofa-ve");
    copy_tree(Path::new(SEED), &ctx);
    write(ctx.join("assets/logo.svg"), "<svg/>", 0o644);
    write(ctx.join("css/app.css"), "body { margin: 0 }\n", 0o644);
    ctx
}

fn init(args: &[&dyn AsRef<std::ffi::OsStr>]) -> std::process::Output {
    let mut c = envbuild();
    c.arg("init");
    for a in args {
        c.arg(a.as_ref());
    }
    c.output().expect("envbuild runs")
}

fn masked(text: &str, tmp: &Path) -> String {
    text.replace(&tmp.display().to_string(), "[TMP]")
}

#[test]
fn the_seed_dockerfile_becomes_a_spec_that_loads_and_its_report_is_pinned() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = seed_context(tmp.path());
    let o = init(&[&"--from-dockerfile", &ctx.join("Dockerfile")]);
    let report = stderr(&o);
    let out = ok(o, "init --from-dockerfile");
    let spec_path = ctx.join("envbuild.toml");
    assert_eq!(out, spec_path.display().to_string());
    let text = fs::read_to_string(&spec_path).unwrap();
    insta::assert_snapshot!("seed_dockerfile_spec", text);
    insta::assert_snapshot!("seed_dockerfile_report", masked(&report, tmp.path()));
    // It loads as a spec: every key valid, every [[files]] source there.
    let spec = envbuild::spec::Spec::load(&spec_path).expect("the translation loads");
    assert_eq!(spec.image.user.as_ref().map(|u| u.uid), Some(1001));
    assert!(!report.contains("the spec does not load"), "{report}");
    // A second init does not overwrite the spec.
    let o = init(&[&"--from-dockerfile", &ctx.join("Dockerfile")]);
    let err = fails(o, "init over an existing spec");
    assert!(err.contains("--force"), "{err}");
}

#[test]
fn the_seed_translation_as_json_names_every_note() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = seed_context(tmp.path());
    let spec = tmp.path().join("elsewhere/seed.toml");
    fs::create_dir_all(spec.parent().unwrap()).unwrap();
    let o = envbuild()
        .args(["--json", "init", "--name", "ofa-ve", "-o"])
        .arg(&spec)
        .arg("--from-dockerfile")
        .arg(ctx.join("Dockerfile"))
        .output()
        .unwrap();
    let out = ok(o, "init --json");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    insta::assert_snapshot!(
        "seed_dockerfile_json",
        masked(&serde_json::to_string_pretty(&v).unwrap(), tmp.path())
    );
    // Written elsewhere, the [[files]] sources are relative to the spec.
    let text = fs::read_to_string(&spec).unwrap();
    assert!(text.contains("src = \"../ofa-ve/assets\""), "{text}");
    envbuild::spec::Spec::load(&spec).expect("loads from another directory");
}

/// A Dockerfile whose translation realizes offline: the image config is
/// what its instructions said.
#[test]
fn a_small_dockerfile_locks_and_realizes_with_its_user_env_ports_and_cmd() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("svc");
    write(ctx.join("run.sh"), "#!/bin/sh\necho hi\n", 0o644);
    write(ctx.join("app/data.txt"), "data\n", 0o644);
    write(
        ctx.join("Dockerfile"),
        r#"# syntax=docker/dockerfile:1
FROM scratch
RUN groupadd -g 2000 svc && useradd -u 2000 -g svc -m -d /srv/svc svc
WORKDIR /srv/svc
COPY --chown=svc:svc app/ ./app/
COPY run.sh /usr/local/bin/run.sh
RUN chmod +x /usr/local/bin/run.sh
USER svc
ENV MODE=production \
    GREETING="hello world"
LABEL org.opencontainers.image.title="svc"
EXPOSE 8080 53/udp
VOLUME ["/srv/svc/data"]
HEALTHCHECK CMD curl -f http://localhost:8080/
CMD ["/usr/local/bin/run.sh"]
"#,
        0o644,
    );
    let o = init(&[&"--from-dockerfile", &ctx.join("Dockerfile")]);
    let report = stderr(&o);
    let spec = PathBuf::from(ok(o, "init"));
    assert!(
        report.contains("not translated  line 14: HEALTHCHECK"),
        "{report}"
    );
    // FROM scratch: nothing provides run.sh's /bin/sh, and init says so.
    assert!(
        report.contains("the base is empty: nothing provides its interpreter"),
        "{report}"
    );
    let text = fs::read_to_string(&spec).unwrap();
    assert!(text.contains("mode = \"0755\""), "{text}");

    let store = tmp.path().join("store");
    let out = tmp.path().join("oci");
    let digest = realize(&store, &spec, &out, &["--format", "oci-dir"]);
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest);
    let blob = |d: &str| {
        out.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(blob(&digest)).unwrap()).unwrap();
    let config: serde_json::Value = serde_json::from_slice(
        &fs::read(blob(manifest["config"]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let c = &config["config"];
    assert_eq!(c["User"], "svc");
    assert_eq!(c["WorkingDir"], "/srv/svc");
    assert_eq!(c["Cmd"], serde_json::json!(["/usr/local/bin/run.sh"]));
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        env.contains(&"MODE=production") && env.contains(&"GREETING=hello world"),
        "{env:?}"
    );
    assert!(
        c["ExposedPorts"].get("8080/tcp").is_some() && c["ExposedPorts"].get("53/udp").is_some(),
        "{c}"
    );
    assert!(c["Volumes"].get("/srv/svc/data").is_some(), "{c}");
    assert_eq!(c["Labels"]["org.opencontainers.image.title"], "svc");
    // The script is executable and the user's in the rootfs.
    let rootfs = tmp.path().join("rootfs");
    realize(&store, &spec, &rootfs, &["--format", "rootfs"]);
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(rootfs.join("usr/local/bin/run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    let passwd = fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.contains("svc:x:2000:2000::/srv/svc:"), "{passwd}");
}

#[test]
fn requirements_files_become_python_specs_and_hashed_ones_a_python_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app");
    write(
        dir.join("requirements.txt"),
        "# pinned\nnumpy==1.24.4\npillow==10.2.0 ; python_version >= \"3.8\"\n--index-url https://index.invalid/simple\nnot a requirement!\n",
        0o644,
    );
    let o = init(&[&"--from-requirements", &dir.join("requirements.txt")]);
    let report = stderr(&o);
    let spec = PathBuf::from(ok(o, "init --from-requirements"));
    let text = fs::read_to_string(&spec).unwrap();
    insta::assert_snapshot!("requirements_spec", text);
    assert!(report.contains("line 4: --index-url"), "{report}");
    assert!(
        report.contains("line 5: not a requirement!: not a PEP 508"),
        "{report}"
    );
    envbuild::spec::Spec::load(&spec).expect("loads");

    let hashed = tmp.path().join("locked");
    write(
        hashed.join("requirements.txt"),
        "numpy==1.24.4 \\\n    --hash=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
        0o644,
    );
    let o = init(&[&"--from-requirements", &hashed.join("requirements.txt")]);
    let spec = PathBuf::from(ok(o, "init of a hashed file"));
    let text = fs::read_to_string(&spec).unwrap();
    assert!(text.contains("lock = \"requirements.txt\""), "{text}");
    assert!(!text.contains("requirements = ["), "{text}");
    envbuild::spec::Spec::load(&spec).expect("loads");
}

#[test]
fn a_dockerfile_envbuild_cannot_read_is_an_error_naming_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let df = tmp.path().join("Dockerfile");
    write(
        &df,
        "FROM debian:bookworm\nRUN <<EOF\napt-get install -y curl\nEOF\n",
        0o644,
    );
    let err = fails(init(&[&"--from-dockerfile", &df]), "init of a heredoc");
    assert!(
        err.contains(&df.display().to_string())
            && err.contains("line 2")
            && err.contains("heredoc"),
        "{err}"
    );
    assert!(
        !tmp.path().join("envbuild.toml").exists(),
        "nothing is written on error"
    );

    write(&df, "# only a comment\nRUN true\n", 0o644);
    let err = fails(init(&[&"--from-dockerfile", &df]), "init without FROM");
    assert!(err.contains("no FROM"), "{err}");

    let o = envbuild()
        .args(["--json", "init", "--from-dockerfile"])
        .arg(tmp.path().join("missing/Dockerfile"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["error"]["kind"], "init");
    assert!(
        v["error"]["input"]
            .as_str()
            .unwrap()
            .ends_with("missing/Dockerfile"),
        "{v}"
    );
}
