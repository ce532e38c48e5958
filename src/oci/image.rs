//! Image config, manifest and index JSON (OCI image-spec v1), canonical.
//!
//! - config (`application/vnd.oci.image.config.v1+json`): `architecture`,
//!   `os`, `created` (SOURCE_DATE_EPOCH as RFC 3339 UTC, `Z`), `config`
//!   {`User`, `Env`, `Entrypoint`, `Cmd`, `WorkingDir`, `ExposedPorts`,
//!   `Labels`, `Volumes`; unset or empty fields are left out}, `rootfs`
//!   {`type`: "layers", `diff_ids`}, and `history` when the caller gives it
//!   (each entry's `created` is the same epoch);
//! - manifest (`application/vnd.oci.image.manifest.v1+json`):
//!   `schemaVersion` 2, `mediaType`, `config` and `layers` descriptors;
//! - `index.json`: one manifest descriptor annotated with
//!   `org.opencontainers.image.ref.name` = the tag (e.g. `1`), which is what
//!   `skopeo ... oci-archive:FILE:1` and `umoci --image DIR:1` select, and
//!   `io.containerd.image.name` = the full reference (e.g.
//!   `docker.io/library/ofa-ve:1`), which podman and containerd use to
//!   name a loaded image;
//! - docker `manifest.json`: `[{"Config","RepoTags":["name:tag"],"Layers"}]`
//!   with paths into `blobs/sha256/`.
//!
//! All JSON goes through [`super::json::to_canonical_json`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::OciError;
use super::json::to_canonical_json;
use super::layer::LayerBlob;

pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// An OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// `sha256:<hex>`
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    fn of_bytes(media_type: &str, bytes: &[u8]) -> Self {
        Descriptor {
            media_type: media_type.to_string(),
            digest: sha256_digest(bytes),
            size: bytes.len() as u64,
            annotations: BTreeMap::new(),
        }
    }

    /// The hex part of the digest (the blob's file name under blobs/sha256).
    pub fn hex(&self) -> &str {
        self.digest.strip_prefix("sha256:").unwrap_or(&self.digest)
    }
}

pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    let d: [u8; 32] = Sha256::digest(bytes).into();
    format!("sha256:{}", hex::encode(d))
}

/// One `history` entry of the image config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub created_by: String,
    pub comment: Option<String>,
    /// True for an entry that adds no layer.
    pub empty_layer: bool,
}

/// What the image runs and how: the `config` object of the image config,
/// plus platform and history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    /// "amd64" by default.
    pub architecture: String,
    /// "linux" by default.
    pub os: String,
    pub user: Option<String>,
    /// "KEY=value", in the caller's order (the order is kept).
    pub env: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub working_dir: Option<String>,
    /// "7860/tcp" ("7860" alone means tcp).
    pub exposed_ports: BTreeSet<String>,
    pub labels: BTreeMap<String, String>,
    /// Absolute paths.
    pub volumes: BTreeSet<String>,
    /// Empty: no `history` key. Otherwise one entry per layer (those with
    /// `empty_layer` false), in layer order, plus any empty-layer entries.
    pub history: Vec<HistoryEntry>,
}

impl Default for ImageConfig {
    fn default() -> Self {
        ImageConfig {
            architecture: "amd64".to_string(),
            os: "linux".to_string(),
            user: None,
            env: Vec::new(),
            entrypoint: None,
            cmd: None,
            working_dir: None,
            exposed_ports: BTreeSet::new(),
            labels: BTreeMap::new(),
            volumes: BTreeSet::new(),
            history: Vec::new(),
        }
    }
}

/// The `config` object of a base image's config: what an image on that
/// base inherits (Docker's and OCI's field names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseRuntime {
    #[serde(rename = "User", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(rename = "Env", default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(
        rename = "Entrypoint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub working_dir: Option<String>,
    #[serde(
        rename = "ExposedPorts",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(rename = "Labels", default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "Volumes", default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
}

impl ImageConfig {
    /// This config (the spec's) over a base image's: `User`, `WorkingDir`
    /// and `Entrypoint` are the spec's when it sets them, else the base's;
    /// `Cmd` likewise, except that a spec setting `Entrypoint` without
    /// `Cmd` drops the base's `Cmd` (as a Dockerfile `ENTRYPOINT` does);
    /// `Env` is the base's with each variable the spec sets replaced in
    /// place or appended, and `PATH=default_path` first when neither sets
    /// PATH; `Labels` are merged (the spec's win); `ExposedPorts` and
    /// `Volumes` are the union.
    pub fn over_base(&self, base: &BaseRuntime, default_path: &str) -> ImageConfig {
        let mut c = self.clone();
        let key = |e: &str| e.split('=').next().unwrap_or("").to_string();
        let mut env: Vec<String> = base.env.clone().unwrap_or_default();
        for kv in &self.env {
            match env.iter().position(|e| key(e) == key(kv)) {
                Some(i) => env[i] = kv.clone(),
                None => env.push(kv.clone()),
            }
        }
        if !env.iter().any(|e| key(e) == "PATH") {
            env.insert(0, format!("PATH={default_path}"));
        }
        c.env = env;
        let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        c.user = self.user.clone().or_else(|| nonempty(&base.user));
        c.working_dir = self
            .working_dir
            .clone()
            .or_else(|| nonempty(&base.working_dir));
        if self.entrypoint.is_none() {
            c.entrypoint = base.entrypoint.clone();
            c.cmd = self.cmd.clone().or_else(|| base.cmd.clone());
        }
        let mut labels = base.labels.clone().unwrap_or_default();
        labels.extend(self.labels.clone());
        c.labels = labels;
        c.exposed_ports
            .extend(base.exposed_ports.iter().flatten().map(|(k, _)| k.clone()));
        c.volumes
            .extend(base.volumes.iter().flatten().map(|(k, _)| k.clone()));
        c
    }
}

/// An assembled image: its JSON documents and where its layer blobs are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// "name:tag" as given (with ":latest" added when no tag was given).
    pub reference: String,
    /// SOURCE_DATE_EPOCH: `created` in the config, and the mtime of the
    /// export archive's entries.
    pub created_epoch: u64,
    pub config_json: Vec<u8>,
    pub config: Descriptor,
    pub manifest_json: Vec<u8>,
    /// The manifest's descriptor: its digest is the image's identity.
    pub manifest: Descriptor,
    /// Each layer's descriptor and the file holding its blob.
    pub layers: Vec<(Descriptor, PathBuf)>,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RuntimeJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    env: &'a Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entrypoint: Option<&'a Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cmd: Option<&'a Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    working_dir: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    exposed_ports: BTreeMap<String, Empty>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    volumes: BTreeMap<&'a str, Empty>,
}

#[derive(Serialize)]
struct RootFs<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<&'a str>,
}

#[derive(Serialize)]
struct HistoryJson<'a> {
    created: &'a str,
    created_by: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    empty_layer: bool,
}

#[derive(Serialize)]
struct ConfigJson<'a> {
    architecture: &'a str,
    os: &'a str,
    created: &'a str,
    config: RuntimeJson<'a>,
    rootfs: RootFs<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    history: Vec<HistoryJson<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestJson<'a> {
    schema_version: u32,
    media_type: &'static str,
    config: &'a Descriptor,
    layers: Vec<&'a Descriptor>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IndexJson<'a> {
    schema_version: u32,
    media_type: &'static str,
    manifests: [&'a Descriptor; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry<'a> {
    config: String,
    repo_tags: [&'a str; 1],
    layers: Vec<String>,
}

/// Seconds since the epoch as RFC 3339 UTC: "2023-11-14T22:13:20Z".
pub fn rfc3339_utc(epoch: u64) -> String {
    let days = (epoch / 86_400) as i64;
    let secs = epoch % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Splits "name:tag" (adding "latest" when no tag follows the last '/')
/// and checks both against the Docker reference grammar (lowercase
/// repository path, optional registry `host[:port]`; tag
/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`).
pub fn parse_reference(reference: &str) -> Result<(String, String), OciError> {
    let bad = |why: &str| {
        OciError::invalid(
            format!("image reference {reference:?}"),
            format!("NAME[:TAG] with a lowercase repository name and a valid tag ({why})"),
            reference.to_string(),
        )
    };
    let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match reference[last_slash..].rfind(':') {
        Some(i) => (
            &reference[..last_slash + i],
            &reference[last_slash + i + 1..],
        ),
        None => (reference, "latest"),
    };
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && !tag.starts_with(['.', '-']);
    if !tag_ok {
        return Err(bad("bad tag"));
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    // A first component with '.' or ':' or "localhost" is a registry
    // host[:port].
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        let (host, port) = parts[0].split_once(':').unwrap_or((parts[0], "1"));
        let host_ok = !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !host_ok || port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("bad registry host"));
        }
        parts.remove(0);
    }
    let component_ok = |c: &str| {
        let bytes = c.as_bytes();
        !c.is_empty()
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric()
            && bytes
                .iter()
                .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    };
    if name.is_empty() || !parts.iter().all(|c| component_ok(c)) {
        return Err(bad("bad repository name"));
    }
    Ok((name.to_string(), tag.to_string()))
}

/// The containerd-style full name: "docker.io/library/x:tag" for "x:tag".
fn full_name(name: &str, tag: &str) -> String {
    let first = name.split('/').next().unwrap_or("");
    let has_host = name.contains('/') && (first.contains(['.', ':']) || first == "localhost");
    if has_host {
        format!("{name}:{tag}")
    } else if name.contains('/') {
        format!("docker.io/{name}:{tag}")
    } else {
        format!("docker.io/library/{name}:{tag}")
    }
}

fn check_config(config: &ImageConfig, layers: usize) -> Result<(), OciError> {
    if let Some(bad) = config
        .env
        .iter()
        .find(|e| !e.contains('=') || e.starts_with('='))
    {
        return Err(OciError::invalid(
            "image config Env entry",
            "KEY=value",
            format!("{bad:?}"),
        ));
    }
    for port in &config.exposed_ports {
        let (num, proto) = port.split_once('/').unwrap_or((port, "tcp"));
        let ok = num.parse::<u16>().is_ok_and(|n| n > 0) && ["tcp", "udp", "sctp"].contains(&proto);
        if !ok {
            return Err(OciError::invalid(
                "image config ExposedPorts entry",
                "PORT[/tcp|/udp|/sctp] with PORT in 1..=65535",
                format!("{port:?}"),
            ));
        }
    }
    for path in config.volumes.iter().chain(config.working_dir.as_ref()) {
        if !path.starts_with('/') {
            return Err(OciError::invalid(
                "image config Volumes/WorkingDir entry",
                "an absolute path",
                format!("{path:?}"),
            ));
        }
    }
    let with_layer = config.history.iter().filter(|h| !h.empty_layer).count();
    if !config.history.is_empty() && with_layer != layers {
        return Err(OciError::invalid(
            "image config history",
            format!("{layers} entries that add a layer (one per layer)"),
            format!("{with_layer}"),
        ));
    }
    Ok(())
}

fn json(what: &'static str, value: &impl Serialize) -> Result<Vec<u8>, OciError> {
    to_canonical_json(value).map_err(|source| OciError::Json { what, source })
}

/// Builds the config and manifest for `layers` (each layer's blob and the
/// file that holds it), named `reference` ("name:tag").
pub fn build_image(
    config: &ImageConfig,
    layers: &[(LayerBlob, PathBuf)],
    reference: &str,
    created_epoch: u64,
) -> Result<Image, OciError> {
    let (name, tag) = parse_reference(reference)?;
    check_config(config, layers.len())?;
    let created = rfc3339_utc(created_epoch);
    let config_doc = ConfigJson {
        architecture: &config.architecture,
        os: &config.os,
        created: &created,
        config: RuntimeJson {
            user: config.user.as_deref(),
            env: &config.env,
            entrypoint: config.entrypoint.as_ref(),
            cmd: config.cmd.as_ref(),
            working_dir: config.working_dir.as_deref(),
            exposed_ports: config
                .exposed_ports
                .iter()
                .map(|p| {
                    let p = if p.contains('/') {
                        p.clone()
                    } else {
                        format!("{p}/tcp")
                    };
                    (p, Empty {})
                })
                .collect(),
            labels: &config.labels,
            volumes: config
                .volumes
                .iter()
                .map(|v| (v.as_str(), Empty {}))
                .collect(),
        },
        rootfs: RootFs {
            kind: "layers",
            diff_ids: layers.iter().map(|(l, _)| l.diff_id.as_str()).collect(),
        },
        history: config
            .history
            .iter()
            .map(|h| HistoryJson {
                created: &created,
                created_by: &h.created_by,
                comment: h.comment.as_deref(),
                empty_layer: h.empty_layer,
            })
            .collect(),
    };
    let config_json = json("image config", &config_doc)?;
    let config_desc = Descriptor::of_bytes(MEDIA_TYPE_CONFIG, &config_json);
    let layer_descs: Vec<(Descriptor, PathBuf)> = layers
        .iter()
        .map(|(l, path)| {
            (
                Descriptor {
                    media_type: l.media_type.clone(),
                    digest: l.digest.clone(),
                    size: l.size,
                    annotations: BTreeMap::new(),
                },
                path.clone(),
            )
        })
        .collect();
    let manifest_json = json(
        "image manifest",
        &ManifestJson {
            schema_version: 2,
            media_type: MEDIA_TYPE_MANIFEST,
            config: &config_desc,
            layers: layer_descs.iter().map(|(d, _)| d).collect(),
        },
    )?;
    let manifest = Descriptor::of_bytes(MEDIA_TYPE_MANIFEST, &manifest_json);
    Ok(Image {
        reference: format!("{name}:{tag}"),
        created_epoch,
        config_json,
        config: config_desc,
        manifest_json,
        manifest,
        layers: layer_descs,
    })
}

impl Image {
    /// The manifest digest, `sha256:<hex>`: what `envbuild realize` prints.
    pub fn digest(&self) -> &str {
        &self.manifest.digest
    }

    /// (repository name, tag).
    pub fn name_and_tag(&self) -> (&str, &str) {
        self.reference
            .rsplit_once(':')
            .expect("reference was normalized to name:tag")
    }

    /// `index.json` of the OCI layout.
    pub fn index_json(&self) -> Vec<u8> {
        let (name, tag) = self.name_and_tag();
        let mut desc = self.manifest.clone();
        desc.annotations
            .insert(ANNOTATION_REF_NAME.to_string(), tag.to_string());
        desc.annotations
            .insert(ANNOTATION_CONTAINERD_NAME.to_string(), full_name(name, tag));
        json(
            "image index",
            &IndexJson {
                schema_version: 2,
                media_type: MEDIA_TYPE_INDEX,
                manifests: [&desc],
            },
        )
        .expect("index JSON of plain strings serializes")
    }

    /// Docker's `manifest.json` (docker-archive view), paths into blobs/.
    pub fn docker_manifest_json(&self) -> Vec<u8> {
        let blob = |d: &Descriptor| format!("blobs/sha256/{}", d.hex());
        json(
            "docker manifest.json",
            &[DockerManifestEntry {
                config: blob(&self.config),
                repo_tags: [&self.reference],
                layers: self.layers.iter().map(|(d, _)| blob(d)).collect(),
            }],
        )
        .expect("manifest.json of plain strings serializes")
    }
}

/// `oci-layout`.
pub const OCI_LAYOUT_JSON: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(n: u8) -> (LayerBlob, PathBuf) {
        (
            LayerBlob {
                diff_id: format!("sha256:{}", hex::encode([n; 32])),
                digest: format!("sha256:{}", hex::encode([n + 100; 32])),
                size: 1000 + u64::from(n),
                tar_size: 2000,
                media_type: "application/vnd.oci.image.layer.v1.tar+zstd".to_string(),
                compression: "zstd-1.5.7-level3-st".to_string(),
            },
            PathBuf::from(format!("/store/layer{n}")),
        )
    }

    fn sample_config() -> ImageConfig {
        ImageConfig {
            user: Some("1000:1000".into()),
            env: vec!["PATH=/usr/bin:/bin".into(), "A=1".into()],
            cmd: Some(vec!["python".into(), "app.py".into()]),
            working_dir: Some("/home/appuser/app".into()),
            exposed_ports: ["7860/tcp".to_string()].into(),
            labels: [("z".to_string(), "1".to_string()), ("a".into(), "2".into())].into(),
            volumes: ["/data".to_string()].into(),
            ..Default::default()
        }
    }

    #[test]
    fn rfc3339() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(4_107_542_399), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn references() {
        let p = |r: &str| parse_reference(r).map_err(|e| e.to_string());
        assert_eq!(p("ofa-ve:1").unwrap(), ("ofa-ve".into(), "1".into()));
        assert_eq!(p("ofa-ve").unwrap(), ("ofa-ve".into(), "latest".into()));
        assert_eq!(
            p("registry.example:5000/team/ofa-ve:1.2").unwrap(),
            ("registry.example:5000/team/ofa-ve".into(), "1.2".into())
        );
        assert_eq!(
            p("localhost:5000/x").unwrap(),
            ("localhost:5000/x".into(), "latest".into())
        );
        for bad in [
            "OFA:1", "ofa:", "ofa:-x", "-ofa:1", "a//b:1", ":1", "ofa:a/b",
        ] {
            assert!(p(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(full_name("ofa", "1"), "docker.io/library/ofa:1");
        assert_eq!(full_name("team/ofa", "1"), "docker.io/team/ofa:1");
        assert_eq!(full_name("reg.io:5000/ofa", "1"), "reg.io:5000/ofa:1");
    }

    #[test]
    fn config_manifest_index_golden() {
        let layers = [blob(1), blob(2)];
        let image = build_image(&sample_config(), &layers, "ofa-ve:1", 1_700_000_000).unwrap();
        let config = String::from_utf8(image.config_json.clone()).unwrap();
        assert_eq!(
            config,
            concat!(
                r#"{"architecture":"amd64","config":{"Cmd":["python","app.py"],"#,
                r#""Env":["PATH=/usr/bin:/bin","A=1"],"ExposedPorts":{"7860/tcp":{}},"#,
                r#""Labels":{"a":"2","z":"1"},"User":"1000:1000","Volumes":{"/data":{}},"#,
                r#""WorkingDir":"/home/appuser/app"},"created":"2023-11-14T22:13:20Z","#,
                r#""os":"linux","rootfs":{"diff_ids":["sha256:0101010101010101010101010101010101010101010101010101010101010101","#,
                r#""sha256:0202020202020202020202020202020202020202020202020202020202020202"],"type":"layers"}}"#
            )
        );
        let manifest: serde_json::Value = serde_json::from_slice(&image.manifest_json).unwrap();
        assert_eq!(manifest["schemaVersion"], 2);
        assert_eq!(manifest["mediaType"], MEDIA_TYPE_MANIFEST);
        assert_eq!(manifest["config"]["digest"], image.config.digest.as_str());
        assert_eq!(manifest["config"]["mediaType"], MEDIA_TYPE_CONFIG);
        assert_eq!(manifest["config"]["size"], image.config_json.len());
        assert_eq!(manifest["layers"][1]["size"], 1002);
        assert_eq!(
            manifest["layers"][0]["digest"],
            format!("sha256:{}", hex::encode([101u8; 32]))
        );
        assert_eq!(image.digest(), sha256_digest(&image.manifest_json));
        assert!(!String::from_utf8(image.manifest_json.clone())
            .unwrap()
            .contains(' '));
        let index = String::from_utf8(image.index_json()).unwrap();
        assert_eq!(
            index,
            format!(
                concat!(
                    r#"{{"manifests":[{{"annotations":{{"io.containerd.image.name":"docker.io/library/ofa-ve:1","#,
                    r#""org.opencontainers.image.ref.name":"1"}},"digest":"{}","#,
                    r#""mediaType":"application/vnd.oci.image.manifest.v1+json","size":{}}}],"#,
                    r#""mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}}"#
                ),
                image.digest(),
                image.manifest_json.len()
            )
        );
        let docker = String::from_utf8(image.docker_manifest_json()).unwrap();
        assert_eq!(
            docker,
            format!(
                r#"[{{"Config":"blobs/sha256/{}","Layers":["blobs/sha256/{}","blobs/sha256/{}"],"RepoTags":["ofa-ve:1"]}}]"#,
                image.config.hex(),
                hex::encode([101u8; 32]),
                hex::encode([102u8; 32])
            )
        );
        // Same input, same bytes.
        let again = build_image(&sample_config(), &layers, "ofa-ve:1", 1_700_000_000).unwrap();
        assert_eq!(again, image);
    }

    #[test]
    fn history_and_validation() {
        let layers = [blob(1)];
        let mut c = sample_config();
        c.history = vec![
            HistoryEntry {
                created_by: "envbuild layer python".into(),
                comment: Some("store item x".into()),
                empty_layer: false,
            },
            HistoryEntry {
                created_by: "envbuild config".into(),
                comment: None,
                empty_layer: true,
            },
        ];
        let image = build_image(&c, &layers, "x:1", 0).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&image.config_json).unwrap();
        assert_eq!(
            v["history"],
            serde_json::json!([
                {"created":"1970-01-01T00:00:00Z","created_by":"envbuild layer python","comment":"store item x"},
                {"created":"1970-01-01T00:00:00Z","created_by":"envbuild config","empty_layer":true}
            ])
        );
        let err = build_image(&c, &[blob(1), blob(2)], "x:1", 0).unwrap_err();
        assert!(err.to_string().contains("history"), "{err}");
        let mut c = sample_config();
        c.exposed_ports.insert("http".into());
        assert!(build_image(&c, &layers, "x:1", 0).is_err());
        let mut c = sample_config();
        c.env.push("NOEQUALS".into());
        assert!(build_image(&c, &layers, "x:1", 0).is_err());
        let mut c = sample_config();
        c.exposed_ports = ["8080".to_string()].into();
        let image = build_image(&c, &layers, "x:1", 0).unwrap();
        assert!(String::from_utf8(image.config_json)
            .unwrap()
            .contains(r#""ExposedPorts":{"8080/tcp":{}}"#));
    }
}
