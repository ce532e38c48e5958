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

use super::{PinContext, PlanContext, Source, SourceError};
use crate::fetch::FetchError;
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
            lock.base_image = Some(old.clone());
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
        lock.base_image = Some(BaseImageLock {
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
        });
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
            ImageSource::Registry(r) => r.repository.rsplit('/').next().unwrap_or("image").to_string(),
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
