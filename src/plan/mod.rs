//! The plan: the graph of every input and build step of a spec, made from
//! the spec and its lock before any work starts.
//!
//! ```text
//! Plan   = inputs steps components shell-components volumes image
//! Input  = Fetch(pinned file, origin)        ; fixed-output, keyed fetch:sha256:<hex>
//!        | Local(path, NAR pin)              ; added to the store by content
//!        | InPlace(path, pinned file)        ; a local wheel, read where it is
//! Step   = name builder inputs(Ref*)         ; Ref = an Input or an earlier Step
//! ```
//!
//! Steps are in an order where every input comes first. A step's
//! [`Derivation`] is made from its builder's arguments and the store
//! paths its inputs resolved to (outputs are content-addressed, so an input
//! is known only once it is realized, as with Nix's content-addressed
//! derivations): [`realize`](crate::realize) executes the plan, and
//! `envbuild plan` runs the same execution without building
//! ([`crate::realize::dry_run`]) to tell what is in the store, what will be
//! fetched and what will be built.
//!
//! Union check, layers and image follow the components: layer grouping
//! needs the components' sizes, so it is decided when they are realized
//! (see [`crate::assemble::group_layers`]).

pub mod derivation;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use derivation::Derivation;
use serde::Serialize;

use crate::model::Hub;
use crate::oci::{self, ImageConfig, PathOverride};
use crate::python::resolve::Target;
use crate::python::wheel::InstallScheme;

/// An index into [`Plan::inputs`].
pub type InputId = usize;
/// An index into [`Plan::steps`].
pub type StepId = usize;

/// What a step takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ref {
    Input(InputId),
    Step(StepId),
}

/// A pinned input.
#[derive(Debug, Clone)]
pub struct Input {
    /// The store item's name.
    pub name: String,
    /// What it is, for people: `deb libc6`, `wheel torch-2.1.0-….whl`.
    pub what: String,
    pub kind: InputKind,
}

#[derive(Debug, Clone)]
pub enum InputKind {
    /// A file fetched by its sha256, once per store.
    Fetch {
        /// Its file name.
        file: String,
        sha256: String,
        size: u64,
        origin: Origin,
    },
    /// A local file or tree, added to the store by its content.
    Local { path: PathBuf, nar_sha256: String },
    /// A local wheel, read in place (checked against its sha256 when used).
    InPlace {
        path: PathBuf,
        file: String,
        sha256: String,
        size: u64,
    },
}

/// Where a fetched file is found: the lock names files, not hosts, so the
/// location comes from the user's configuration at fetch time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// This URL (`[[wheels]] url`, a URL model, a pylock's `url`).
    Url(String),
    /// A mirror-relative file of the Debian archive (`[base] debian`).
    DebianMirror {
        /// The spec's mirror, else the configured one.
        mirror: Option<String>,
        suite: String,
        file: String,
    },
    /// A file name looked up through the configured Python index.
    PythonIndex {
        index: Option<String>,
        target: Target,
    },
    /// A wheel chosen by a requirements file (`[python] lock`), found again
    /// through the file's own indexes and `--find-links`.
    RequirementsFile {
        path: PathBuf,
        index: Option<String>,
        target: Target,
    },
    /// A manifest or blob of a base image (`[base] image`), by digest.
    BaseImage {
        source: crate::registry::pull::ImageSource,
        kind: crate::registry::pull::BlobKind,
    },
    /// A file of a model repository at a pinned commit.
    Hub {
        model: String,
        hub: Hub,
        id: String,
        /// The revision to download at (see [`Hub::download_revision`]).
        revision: String,
        path: String,
    },
}

/// A build step.
#[derive(Debug, Clone)]
pub struct Step {
    /// The output item's name.
    pub name: String,
    pub builder: Builder,
    pub inputs: Vec<Ref>,
}

/// What builds a step, with every argument its derivation hashes.
#[derive(Debug, Clone)]
pub enum Builder {
    /// Unpack a .deb's data (no maintainer scripts). Input: the .deb.
    UnpackDeb { filename: String },
    /// `/etc/passwd`, `/etc/group` and the directories an image needs.
    BaseFiles(BaseFiles),
    /// Install a wheel. Inputs: the wheel file (fetched, in place, or the
    /// output of a `BuildSdist` step), then, when its modules are compiled
    /// to bytecode, the base's components the interpreter runs in.
    UnpackWheel {
        scheme: InstallScheme,
        shebang: String,
        /// The interpreter (an image path) that compiles the wheel's
        /// modules to bytecode ([`crate::python::bytecode`]), if any.
        bytecode: Option<String>,
    },
    /// Build a wheel from an sdist in the sandbox. Inputs: the sdist, then
    /// its build closure's components (the base's, the build
    /// requirements').
    BuildSdist {
        sdist: String,
        source_date_epoch: u64,
        python: String,
        site_packages: String,
    },
    /// A model snapshot laid out as its client expects. Inputs: its files.
    ModelSnapshot(ModelSnapshot),
    /// The rootfs view of a base image: its layers unpacked in order,
    /// whiteouts and opaque directories applied. Inputs: the manifest, the
    /// config, the layer blobs (bottom first).
    UnpackBaseImage {
        /// For messages (not hashed: the same image read from elsewhere is
        /// the same derivation).
        image: String,
        manifest: String,
        config: String,
        layers: Vec<crate::lock::LayerPin>,
    },
    /// The Debian base's Python modules (`/usr/lib/python3*`: the standard
    /// library, Debian's `python3-*` packages) compiled to bytecode, as
    /// Debian's `py3compile` does at install (a maintainer script envbuild
    /// does not run): a component of `__pycache__/*.pyc` files only.
    /// Inputs: the base's components, the interpreter among them.
    DebianBytecode {
        /// The interpreter (an image path) that compiles.
        python: String,
    },
    /// A `[[files]]` entry at its destination. Input: the local item.
    CopyFiles {
        dst: String,
        owner: Option<(u32, u32)>,
        mode: Option<u32>,
    },
}

impl Builder {
    /// The builder's name, as derivations carry it.
    pub fn name(&self) -> &'static str {
        match self {
            Builder::UnpackDeb { .. } => "unpack-deb",
            Builder::BaseFiles(_) => "base-files",
            Builder::UnpackWheel { .. } => "unpack-wheel",
            Builder::BuildSdist { .. } => "build-sdist",
            Builder::ModelSnapshot(_) => "model-snapshot",
            Builder::CopyFiles { .. } => "copy-files",
            Builder::UnpackBaseImage { .. } => "unpack-base-image",
            Builder::DebianBytecode { .. } => "debian-bytecode",
        }
    }
}

/// The generated base files.
#[derive(Debug, Clone)]
pub struct BaseFiles {
    pub passwd: String,
    pub group: String,
    pub dirs: Vec<String>,
    pub overrides: BTreeMap<String, PathOverride>,
}

/// How a model snapshot is laid out and owned.
#[derive(Debug, Clone)]
pub struct ModelSnapshot {
    pub model: String,
    /// Where it goes in the image.
    pub path: String,
    pub layout: ModelLayout,
    /// Owner of the snapshot and of the directories its client writes in.
    pub owner: Option<(u32, u32)>,
    /// The image user (home, uid, gid): its home keeps its owner.
    pub user: Option<(String, u32, u32)>,
    /// How many directories above `path` the hub's client writes in.
    pub cache_levels: usize,
    /// Kept out of the image (`layer = "volume"`).
    pub volume: bool,
}

#[derive(Debug, Clone)]
pub enum ModelLayout {
    /// A hub snapshot; inputs are its files in `files` order.
    Hub {
        hub: Hub,
        id: String,
        revision: String,
        commit: String,
        client_layout: bool,
        /// Repository paths, one per input.
        files: Vec<String>,
    },
    /// One file by URL (its name).
    File { name: String },
    /// A local directory.
    Directory,
}

/// The image: settings from the spec.
#[derive(Debug, Clone)]
pub struct ImagePlan {
    /// The config less its history (made per layer when layers are known).
    pub config: ImageConfig,
    pub reference: String,
    pub compression: oci::Compression,
}

/// A base image in the plan: its `unpack-base-image` step (the first
/// component); its layers go into the image as they are.
#[derive(Debug, Clone)]
pub struct BaseImagePlan {
    pub step: StepId,
}

/// The whole plan of a spec.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Every timestamp in the image.
    pub source_date_epoch: u64,
    pub inputs: Vec<Input>,
    pub steps: Vec<Step>,
    /// The image's components, in rootfs order.
    pub components: Vec<StepId>,
    /// Models kept out of the image, in spec order.
    pub volumes: Vec<StepId>,
    /// The shell's own components (`[shell] packages`), after the image's.
    pub shell_components: Vec<StepId>,
    pub image: ImagePlan,
    /// `[base] image`, when the spec has one.
    pub base_image: Option<BaseImagePlan>,
}

impl Plan {
    pub fn new(source_date_epoch: u64, image: ImagePlan) -> Plan {
        Plan {
            source_date_epoch,
            inputs: Vec::new(),
            steps: Vec::new(),
            components: Vec::new(),
            volumes: Vec::new(),
            shell_components: Vec::new(),
            image,
            base_image: None,
        }
    }

    pub fn add_input(&mut self, input: Input) -> Ref {
        self.inputs.push(input);
        Ref::Input(self.inputs.len() - 1)
    }

    /// Add a step; every input must already be in the plan.
    pub fn add_step(
        &mut self,
        name: impl Into<String>,
        builder: Builder,
        inputs: Vec<Ref>,
    ) -> StepId {
        for r in &inputs {
            match *r {
                Ref::Input(i) => {
                    assert!(i < self.inputs.len(), "input {i} of a step is not planned")
                }
                Ref::Step(s) => assert!(s < self.steps.len(), "step {s} of a step is not planned"),
            }
        }
        self.steps.push(Step {
            name: name.into(),
            builder,
            inputs,
        });
        self.steps.len() - 1
    }
}

/// A store item name made from free text.
pub fn item_name(s: &str) -> String {
    let mut n: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+-._?=".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    n = n.trim_start_matches(['.', '-']).to_string();
    n.truncate(200);
    if n.is_empty() {
        "item".into()
    } else {
        n
    }
}

/// What a step's inputs resolved to, for its derivation.
#[derive(Debug, Clone, Copy)]
pub enum Resolved<'a> {
    /// A store item (a fetched or local input, or a step's output).
    Item(&'a envbuild_store::StorePath),
    /// A local wheel read in place: keyed by its content.
    InPlace,
}

/// The wheel an `unpack-wheel` step installs: its file name and sha256.
#[derive(Debug, Clone, Copy)]
pub struct WheelId<'a> {
    pub filename: &'a str,
    pub sha256: &'a str,
}

impl Step {
    /// The output item's name (an `unpack-wheel` step is named by its wheel).
    pub fn output_name(&self, wheel: Option<WheelId>) -> String {
        match (&self.builder, wheel) {
            (Builder::UnpackWheel { .. }, Some(w)) => {
                item_name(w.filename.trim_end_matches(".whl"))
            }
            _ => self.name.clone(),
        }
    }

    /// The step's derivation, from its arguments and what its inputs
    /// resolved to (`wheel`: for `unpack-wheel`, the wheel it installs).
    pub fn derivation(&self, inputs: &[Resolved], wheel: Option<WheelId>) -> Derivation {
        let items = || {
            inputs.iter().filter_map(|r| match r {
                Resolved::Item(i) => Some((*i).clone()),
                Resolved::InPlace => None,
            })
        };
        let mut d = Derivation::new(
            self.builder.name(),
            self.builder.version(),
            self.output_name(wheel),
        );
        match &self.builder {
            Builder::UnpackDeb { filename } => {
                d = d.arg("filename", filename.clone());
            }
            Builder::BaseFiles(b) => {
                d = d
                    .arg("passwd", b.passwd.clone())
                    .arg("group", b.group.clone())
                    .arg("dirs", b.dirs.join(":"));
                // On a base image its view is the input (its /etc/passwd and
                // /etc/group are extended); otherwise there is none.
            }
            Builder::UnpackWheel {
                scheme,
                shebang,
                bytecode,
            } => {
                let w = wheel.expect("an unpack-wheel derivation names its wheel");
                // Keyed by the wheel's content, not by where it came from:
                // the first input (the wheel's item) is not hashed.
                d = d
                    .arg("filename", w.filename)
                    .arg("sha256", w.sha256)
                    .arg("purelib", scheme.purelib.clone())
                    .arg("platlib", scheme.platlib.clone())
                    .arg("scripts", scheme.scripts.clone())
                    .arg("data", scheme.data.clone())
                    .arg("headers", scheme.headers.clone())
                    .arg("shebang", shebang.clone());
                if let Some(python) = bytecode {
                    d = d
                        .arg("bytecode", "unchecked-hash")
                        .arg("bytecode-python", python.clone());
                    for item in inputs.iter().skip(1).filter_map(|r| match r {
                        Resolved::Item(i) => Some((*i).clone()),
                        Resolved::InPlace => None,
                    }) {
                        d = d.input(item);
                    }
                }
                return d;
            }
            Builder::BuildSdist {
                sdist,
                source_date_epoch,
                python,
                site_packages,
            } => {
                d = d
                    .arg("sdist", sdist.clone())
                    .arg("source-date-epoch", source_date_epoch.to_string())
                    .arg("python", python.clone())
                    .arg("site-packages", site_packages.clone());
            }
            Builder::ModelSnapshot(m) => {
                d = d.arg("path", m.path.clone());
                d = match &m.layout {
                    ModelLayout::Hub {
                        hub,
                        id,
                        revision,
                        commit,
                        client_layout,
                        files,
                    } => {
                        let laid = crate::model::layout::plan(
                            *hub,
                            id,
                            revision,
                            commit,
                            files,
                            *client_layout,
                        );
                        let by_path: BTreeMap<&String, String> = files
                            .iter()
                            .zip(items())
                            .map(|(f, item)| (f, item.basename()))
                            .collect();
                        let placed: BTreeMap<&String, &String> = laid
                            .files
                            .iter()
                            .map(|(src, dst)| (dst, &by_path[src]))
                            .collect();
                        d.arg(
                            "layout",
                            format!(
                                "{}{}",
                                hub.prefix(),
                                if *client_layout { "-cache" } else { "" }
                            ),
                        )
                        .arg("id", id.clone())
                        .arg("revision", revision.clone())
                        .arg("commit", commit.clone())
                        .arg("files", serde_json::to_string(&placed).expect("serializes"))
                    }
                    ModelLayout::File { name } => d.arg("layout", "file").arg("file", name.clone()),
                    ModelLayout::Directory => d.arg("layout", "directory"),
                };
            }
            Builder::CopyFiles { dst, .. } => {
                d = d.arg("dst", dst.clone());
            }
            Builder::DebianBytecode { python } => {
                d = d
                    .arg("bytecode", "unchecked-hash")
                    .arg("python", python.clone());
            }
            Builder::UnpackBaseImage {
                manifest,
                config,
                layers,
                ..
            } => {
                d = d
                    .arg("manifest", manifest.clone())
                    .arg("config", config.clone())
                    .arg(
                        "layers",
                        layers
                            .iter()
                            .map(|l| format!("{} {}", l.media_type, l.file.file))
                            .collect::<Vec<_>>()
                            .join(","),
                    );
            }
        }
        for item in items() {
            d = d.input(item);
        }
        d
    }
}

impl Builder {
    /// Bumped whenever the builder's output for the same inputs changes.
    pub fn version(&self) -> u32 {
        match self {
            Builder::UnpackWheel { .. } => 2,
            _ => 1,
        }
    }
}
