//! `[base] image`: an image whose layers are the bottom of the rootfs.
//!
//! Lock time: the reference is resolved ([`crate::registry::pull::resolve`]:
//! a tag to its manifest, an index to its linux/amd64 manifest) and pinned
//! whole: the manifest, the config and every layer by digest and size. A
//! lock whose `request` is the spec's `[base] image` is kept as it is
//! (nothing is asked of the registry).
//!
//! Plan time: the manifest, the config and the layers are fixed-output
//! inputs (fetched by digest from where the reference points); one
//! `unpack-base-image` step makes the rootfs view of the base (its layers
//! unpacked in order, whiteouts and opaque directories applied), the first
//! component: what the union check, `run`, `shell` and `check` see. The
//! image itself gets the layer blobs as they are ([`crate::realize`]).

use std::collections::BTreeMap;
use std::io::Read;

use super::{PinContext, PlanContext, Source, SourceError};
use crate::fetch::FetchError;
use crate::lock::BasePython;
use crate::lock::{BaseImageLock, LayerPin, Lock, PinnedFile};
use crate::plan::{item_name, BaseImagePlan, Builder, Input, InputKind, Origin, Plan};
use crate::registry::pull::{self, BlobKind, ImageSource};
use crate::registry::CredentialPlaces;
use crate::spec::BaseImage;

pub struct BaseImageSource<'a>(pub &'a BaseImage);

fn pinned(digest: &str, size: u64) -> PinnedFile {
    PinnedFile {
        file: digest.to_string(),
        sha256: digest.strip_prefix("sha256:").unwrap_or(digest).to_string(),
        size,
    }
}

impl Source for BaseImageSource<'_> {
    fn pin(&self, cx: &mut PinContext, lock: &mut Lock) -> Result<(), SourceError> {
        let request = &self.0.request;
        if let Some(old) = cx
            .old
            .and_then(|l| l.base_image.as_ref())
            .filter(|b| b.request == *request)
        {
            let mut pin = old.clone();
            if uses_python(cx.spec) && pin.python.is_none() {
                let source = ImageSource::parse(request, &self.0.dir)?;
                pin.python = Some(inspect(cx, &source, &pin)?);
            }
            lock.base_image = Some(pin);
            return Ok(());
        }
        let source = ImageSource::parse(request, &self.0.dir)?;
        if cx.fetch.offline && matches!(source, ImageSource::Registry(_)) {
            return Err(FetchError::Offline {
                url: format!("base image {}", source.shown()),
            }
            .into());
        }
        let client = crate::net::Client::from_env().map_err(|e| FetchError::Net {
            file: source.shown(),
            source: e,
        })?;
        let r = pull::resolve(&client, &source, CredentialPlaces::from_env())?;
        let mut pin = BaseImageLock {
            request: request.clone(),
            digest: r.digest.clone(),
            manifest: pinned(&r.manifest.digest, r.manifest.size),
            config: pinned(&r.config.digest, r.config.size),
            layers: r
                .layers
                .iter()
                .map(|l| LayerPin {
                    media_type: l.media_type.clone(),
                    file: pinned(&l.digest, l.size),
                })
                .collect(),
            python: None,
        };
        if uses_python(cx.spec) {
            pin.python = Some(inspect(cx, &source, &pin)?);
        }
        lock.base_image = Some(pin);
        Ok(())
    }

    fn plan(&self, _cx: &mut PlanContext, lock: &Lock, plan: &mut Plan) -> Result<(), SourceError> {
        let pin = lock
            .base_image
            .as_ref()
            .filter(|b| b.request == self.0.request)
            .ok_or_else(|| SourceError::LockMismatch {
                what: "[base] image".into(),
                expected: self.0.request.clone(),
                found: lock
                    .base_image
                    .as_ref()
                    .map(|b| b.request.clone())
                    .unwrap_or_else(|| "nothing".into()),
            })?;
        let source = ImageSource::parse(&self.0.request, &self.0.dir)?;
        let mut add = |what: &str, kind: BlobKind, f: &PinnedFile| {
            plan.add_input(Input {
                name: pull::blob_item_name(what, &f.sha256),
                what: format!("base image {what} {}", f.file),
                kind: InputKind::Fetch {
                    file: f.file.clone(),
                    sha256: f.sha256.clone(),
                    size: f.size,
                    origin: Origin::BaseImage {
                        source: source.clone(),
                        kind,
                    },
                },
            })
        };
        let mut inputs = vec![
            add("manifest", BlobKind::Manifest, &pin.manifest),
            add("config", BlobKind::Blob, &pin.config),
        ];
        for l in &pin.layers {
            inputs.push(add("layer", BlobKind::Blob, &l.file));
        }
        let repo = match &source {
            ImageSource::Registry(r) => r
                .repository
                .rsplit('/')
                .next()
                .unwrap_or("image")
                .to_string(),
            ImageSource::Layout { .. } | ImageSource::Archive { .. } => "image".into(),
        };
        let step = plan.add_step(
            item_name(&format!("base-{repo}")),
            Builder::UnpackBaseImage {
                image: source.shown(),
                manifest: pin.manifest.file.clone(),
                config: pin.config.file.clone(),
                layers: pin.layers.clone(),
            },
            inputs,
        );
        plan.components.push(step);
        plan.base_image = Some(BaseImagePlan { step });
        Ok(())
    }
}

/// Whether the spec installs Python distributions (and so needs to know
/// the base's interpreter and glibc).
fn uses_python(spec: &crate::spec::Spec) -> bool {
    !spec.python.requirements.is_empty() || spec.python.lock.is_some() || !spec.wheels.is_empty()
}

/// A path of a layer that matters for [`inspect`].
#[derive(Debug, Clone)]
enum Seen {
    /// A regular file (its bytes when they are needed: the dpkg status,
    /// libc.so.6).
    File(Vec<u8>),
    Symlink(String),
}

fn interesting(path: &str) -> Option<bool> {
    // Some(true): keep the bytes.
    const LIBC: &[&str] = &[
        "lib/x86_64-linux-gnu/libc.so.6",
        "usr/lib/x86_64-linux-gnu/libc.so.6",
        "lib64/libc.so.6",
        "usr/lib64/libc.so.6",
    ];
    if path == "var/lib/dpkg/status" || LIBC.contains(&path) {
        return Some(true);
    }
    let name = path.rsplit('/').next()?;
    let dir = &path[..path.len() - name.len()];
    let minor = name.strip_prefix("python3.")?;
    if (dir == "usr/bin/" || dir == "usr/local/bin/")
        && !minor.is_empty()
        && minor.bytes().all(|b| b.is_ascii_digit())
    {
        return Some(false);
    }
    None
}

/// Read the base's layers (fetched into the store now: they are inputs of
/// the image anyway) for its `python3.X` interpreters and its glibc, with
/// whiteouts applied. Nothing is unpacked: the tar streams are only read.
fn inspect(
    cx: &mut PinContext,
    source: &ImageSource,
    pin: &BaseImageLock,
) -> Result<BasePython, SourceError> {
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    for l in &pin.layers {
        let name = pull::blob_item_name("layer", &l.file.sha256);
        let f = pull::fetch(
            cx.store,
            source,
            BlobKind::Blob,
            &l.file.sha256,
            l.file.size,
            &name,
            &cx.fetch,
        )?;
        let path = cx.store.physical_path(&f.item);
        let io = |e: std::io::Error| SourceError::Io {
            what: "reading the base image layer",
            path: path.clone(),
            source: e,
        };
        let file = std::io::BufReader::new(std::fs::File::open(&path).map_err(io)?);
        let reader: Box<dyn Read> = if l.media_type.ends_with("gzip") {
            Box::new(flate2::read::MultiGzDecoder::new(file))
        } else if l.media_type.ends_with("zstd") {
            Box::new(zstd::stream::read::Decoder::new(file).map_err(io)?)
        } else {
            Box::new(file)
        };
        let mut layer: BTreeMap<String, Seen> = BTreeMap::new();
        let mut whiteouts: Vec<String> = Vec::new();
        let mut opaque: Vec<String> = Vec::new();
        let mut archive = tar::Archive::new(reader);
        for entry in archive.entries().map_err(io)? {
            let mut entry = entry.map_err(io)?;
            let raw = entry.path_bytes().into_owned();
            let Ok(comps) =
                crate::unpack::member_components(&raw, crate::unpack::PathRule::Lenient)
            else {
                continue;
            };
            let p = String::from_utf8_lossy(&comps.join(&b'/')).into_owned();
            let (dir, name) = match p.rsplit_once('/') {
                Some((d, n)) => (format!("{d}/"), n.to_string()),
                None => (String::new(), p.clone()),
            };
            if name == ".wh..wh..opq" {
                opaque.push(dir);
                continue;
            }
            if let Some(hidden) = name.strip_prefix(".wh.") {
                whiteouts.push(format!("{dir}{hidden}"));
                continue;
            }
            let Some(keep) = interesting(&p) else {
                continue;
            };
            let kind = entry.header().entry_type();
            if kind.is_symlink() {
                let t = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                layer.insert(p, Seen::Symlink(t));
            } else if kind.is_file() || kind.is_hard_link() {
                let mut bytes = Vec::new();
                if keep {
                    entry
                        .by_ref()
                        .take(64 << 20)
                        .read_to_end(&mut bytes)
                        .map_err(io)?;
                }
                layer.insert(p, Seen::File(bytes));
            }
        }
        for d in &opaque {
            seen.retain(|k, _| !k.starts_with(d.as_str()));
        }
        for w in &whiteouts {
            seen.retain(|k, _| k != w && !k.starts_with(&format!("{w}/")));
        }
        seen.extend(layer);
    }
    Ok(BasePython {
        interpreter: interpreter(cx.spec, &seen),
        glibc: glibc_in(&seen).map(|(a, b)| format!("{a}.{b}")),
    })
}

/// The base's `python3.X`: the spec's version when it names one, else the
/// newest; `/usr/local/bin` before `/usr/bin` (a python.org build over the
/// distribution's).
fn interpreter(spec: &crate::spec::Spec, seen: &BTreeMap<String, Seen>) -> Option<String> {
    let mut found: Vec<(u32, bool, String)> = seen
        .keys()
        .filter_map(|p| {
            let minor: u32 = p.rsplit_once("/python3.")?.1.parse().ok()?;
            Some((minor, p.starts_with("usr/local/"), format!("/{p}")))
        })
        .collect();
    if spec.python.named.version {
        let (major, minor) = spec.python.version;
        found.retain(|(m, _, _)| major == 3 && *m == minor);
    }
    found.sort();
    found.pop().map(|(_, _, p)| p)
}

/// glibc's MAJOR.MINOR: libc6's version in the dpkg status, else the
/// `libc-2.N.so` a libc.so.6 link names, else the version string in
/// libc.so.6.
fn glibc_in(seen: &BTreeMap<String, Seen>) -> Option<(u32, u32)> {
    let parse = |v: &str| -> Option<(u32, u32)> {
        let (a, rest) = v.split_once('.')?;
        let b: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        Some((a.parse().ok()?, b.parse().ok()?))
    };
    if let Some(Seen::File(status)) = seen.get("var/lib/dpkg/status") {
        let text = String::from_utf8_lossy(status);
        for para in text.split("\n\n") {
            let field = |k: &str| {
                para.lines()
                    .find_map(|l| l.strip_prefix(k))
                    .map(|v| v.trim().to_string())
            };
            if field("Package:").as_deref() == Some("libc6")
                && field("Status:").is_some_and(|s| s.ends_with(" installed"))
            {
                if let Some(v) =
                    field("Version:").and_then(|v| parse(v.rsplit(':').next().unwrap_or(&v)))
                {
                    return Some(v);
                }
            }
        }
    }
    for (p, s) in seen {
        if !p.ends_with("libc.so.6") {
            continue;
        }
        match s {
            Seen::Symlink(t) => {
                if let Some(v) = t
                    .rsplit('/')
                    .next()
                    .and_then(|n| n.strip_prefix("libc-"))
                    .and_then(|n| n.strip_suffix(".so"))
                    .and_then(parse)
                {
                    return Some(v);
                }
            }
            Seen::File(bytes) => {
                let needle = b"GNU C Library";
                if let Some(i) = bytes.windows(needle.len()).position(|w| w == needle) {
                    let tail =
                        String::from_utf8_lossy(&bytes[i..bytes.len().min(i + 200)]).into_owned();
                    if let Some(v) = tail.split("version ").nth(1).and_then(parse) {
                        return Some(v);
                    }
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_comes_from_the_dpkg_status_else_libc_so_6() {
        let mut seen = BTreeMap::new();
        seen.insert(
            "lib/x86_64-linux-gnu/libc.so.6".to_string(),
            Seen::Symlink("libc-2.31.so".into()),
        );
        assert_eq!(glibc_in(&seen), Some((2, 31)));
        seen.insert(
            "var/lib/dpkg/status".to_string(),
            Seen::File(b"Package: libc-bin\nStatus: install ok installed\nVersion: 2.30-1\n\nPackage: libc6\nStatus: install ok installed\nVersion: 2.35-0ubuntu3.8\n".to_vec()),
        );
        assert_eq!(glibc_in(&seen), Some((2, 35)));
        let mut only_file = BTreeMap::new();
        only_file.insert(
            "usr/lib64/libc.so.6".to_string(),
            Seen::File(
                b"\x7fELF...GNU C Library (GNU libc) stable release version 2.36.\n".to_vec(),
            ),
        );
        assert_eq!(glibc_in(&only_file), Some((2, 36)));
        assert_eq!(glibc_in(&BTreeMap::new()), None);
    }

    #[test]
    fn only_python3_minor_interpreters_in_bin_directories_count() {
        assert_eq!(interesting("usr/bin/python3.11"), Some(false));
        assert_eq!(interesting("usr/local/bin/python3.12"), Some(false));
        assert_eq!(interesting("usr/bin/python3.11-config"), None);
        assert_eq!(interesting("opt/bin/python3.11"), None);
        assert_eq!(interesting("var/lib/dpkg/status"), Some(true));
    }
}
