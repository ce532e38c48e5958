//! Realize: execute a [`Plan`] against the store.
//!
//! 1. The inputs the wanted steps need are materialized ([`inputs`]):
//!    fixed-output files the store lacks are located and fetched, local
//!    paths found by their NAR hash or added.
//! 2. The steps run in plan order, each as a derivation whose realisation
//!    is looked up first ([`Realizer`]): an unchanged step is never redone.
//!    Runs of independent unpack steps go to the worker pool, largest
//!    first, and are committed as one batch.
//! 3. The union check, the layers (grouped past the budget) and the image.
//!
//! A dry run ([`dry_run`]) is the same execution that builds nothing: what
//! it would fetch and build is reported instead (`envbuild plan`).
//!
//! The builders live in [`builders`]; what a component is, in
//! [`crate::assemble`]; pinning and planning, in [`crate::sources`].

pub mod builders;
mod error;
pub mod inputs;
mod realizer;
pub mod roots;

use std::collections::BTreeMap;
use std::path::PathBuf;

use envbuild_store::{Store, StoreError, StorePath};

pub use builders::model::Volume;
use builders::wheel::WheelFile;
pub(crate) use error::io_err;
pub use error::RealizeError;
use inputs::{InputItem, PlannedFetch};
pub use realizer::Realizer;

use crate::assemble::{self, Component, Layer, LAYER_BUDGET};
use crate::fetch::FetchOptions;
use crate::lock::{lock_path, Lock, LockError, LOCK_VERSION};
use crate::oci;
use crate::plan::{Builder, InputKind, Plan, Ref, Resolved, StepId, WheelId};
use crate::python::resolve;
use crate::sources::{self, PinContext};
use crate::spec::Spec;

#[derive(Debug, Clone, Default)]
pub struct RealizeOptions {
    /// Fail instead of writing the lock when the spec's inputs changed.
    pub locked: bool,
    /// Never download.
    pub offline: bool,
    /// Draw progress on stderr.
    pub progress: bool,
    /// Resolve as if the index held nothing uploaded after this instant.
    pub exclude_newer: Option<resolve::Timestamp>,
    /// Also realize the shell-only components (`[shell] packages`).
    pub shell: bool,
    /// Which pins a re-lock may move (`--upgrade`, `--upgrade-package`).
    pub upgrade: sources::Upgrade,
    /// Binary caches asked for steps' outputs and fixed-output inputs
    /// before building or fetching them (see [`crate::cache::substitute`]).
    pub substituters: Option<std::sync::Arc<crate::cache::Substituters>>,
}

impl RealizeOptions {
    fn fetch_options(&self) -> FetchOptions {
        FetchOptions {
            offline: self.offline,
            progress: self.progress,
            ..FetchOptions::default()
        }
    }
}

/// What a realize produced.
#[derive(Debug)]
pub struct Realized {
    pub lock: Lock,
    pub lock_written: bool,
    pub components: Vec<Component>,
    pub layers: Vec<Layer>,
    pub image: oci::Image,
    pub image_item: StorePath,
    /// Models kept out of the image (`layer = "volume"`).
    pub volumes: Vec<Volume>,
    /// The inputs' store items (fetched files, local paths), sorted: what
    /// a later realize needs to rebuild offline.
    pub inputs: Vec<StorePath>,
    /// Steps built now / found already realized / taken from a substituter.
    pub built: usize,
    pub reused: usize,
    pub substituted: usize,
    /// Every step's output (sorted): what a cache needs to serve every step.
    pub step_outputs: Vec<StorePath>,
}

/// The closure of a spec: its lock and its components, realized in the
/// store, in rootfs order. What an image, a shell and `envbuild run` share.
#[derive(Debug)]
pub struct Closure {
    pub lock: Lock,
    pub lock_written: bool,
    pub components: Vec<Component>,
    /// Models kept out of the image (`layer = "volume"`).
    pub volumes: Vec<Volume>,
    /// Components of the shell only (`[shell] packages`, with
    /// [`RealizeOptions::shell`]), after `components` in rootfs order.
    pub shell_components: Vec<Component>,
    /// The inputs' store items (fetched files, local paths), sorted;
    /// deferred inputs (not in the store, see [`inputs`]) are not among them.
    pub inputs: Vec<StorePath>,
    /// Steps built now / found already realized / taken from a substituter.
    pub built: usize,
    pub reused: usize,
    pub substituted: usize,
    /// Every step's output (sorted): what a cache needs to serve every step.
    pub step_outputs: Vec<StorePath>,
}

/// A lock made for a spec now.
struct Pinned {
    lock: Lock,
    written: bool,
    /// Where resolving found files (sha256 → URL).
    urls: BTreeMap<String, String>,
}

/// Pin the spec's inputs against its lock and write the lock when the pins
/// changed (or, with `upgrade`, when it is of an older version); with
/// `--locked`, refuse a change instead.
fn pin(
    store: &mut Store,
    spec: &Spec,
    opts: &RealizeOptions,
    upgrade: bool,
) -> Result<Pinned, RealizeError> {
    let path = lock_path(&spec.path);
    let old = Lock::read_versioned(&path)?;
    if opts.locked && old.is_none() {
        return Err(LockError::Missing {
            spec: spec.path.clone(),
            lock: path,
        }
        .into());
    }
    let mut cx = PinContext {
        store,
        spec,
        old: old.as_ref().map(|o| &o.lock),
        exclude_newer: opts.exclude_newer,
        upgrade: opts.upgrade.clone(),
        fetch: opts.fetch_options(),
        urls: BTreeMap::new(),
        python_warmup: None,
    };
    let lock = sources::pin(&mut cx)?;
    let urls = cx.urls;
    let written = match &old {
        Some(o) if o.lock == lock && (o.version == LOCK_VERSION || !upgrade) => false,
        Some(o) if opts.locked && o.lock != lock => {
            return Err(LockError::Changed {
                spec: spec.path.clone(),
                lock: path,
                changes: o.lock.differences(&lock),
            }
            .into())
        }
        _ => {
            lock.write(&path)?;
            true
        }
    };
    Ok(Pinned {
        lock,
        written,
        urls,
    })
}

/// `envbuild lock`: pin every input and write the lock beside the spec
/// (a version-1 lock is rewritten as version 2, its pins kept).
pub fn lock(
    store: &mut Store,
    spec: &Spec,
    opts: &RealizeOptions,
) -> Result<(Lock, bool), RealizeError> {
    let opts = RealizeOptions {
        locked: false,
        ..opts.clone()
    };
    let p = pin(store, spec, &opts, true)?;
    Ok((p.lock, p.written))
}

/// Pin the inputs (checking or writing the lock) and realize the
/// components and their union check: everything but layers and image.
pub fn realize_closure(
    store: &mut Store,
    spec: &Spec,
    opts: &RealizeOptions,
) -> Result<Closure, RealizeError> {
    Ok(closure_and_plan(store, spec, opts)?.0)
}

fn closure_and_plan(
    store: &mut Store,
    spec: &Spec,
    opts: &RealizeOptions,
) -> Result<(Closure, Plan), RealizeError> {
    let pinned = pin(store, spec, opts, false)?;
    let plan = sources::plan(spec, &pinned.lock)?;
    let mut r = Realizer::new(store, opts.progress);
    r.subst = opts.substituters.clone();
    let mut exec = Execution::new(&plan);
    let roots = exec.roots(opts.shell);
    exec.run(&mut r, &roots, &pinned.urls, &opts.fetch_options())?;
    let components = exec.components(&plan.components);
    if opts.progress {
        // The union check (and the shell's, counted when it runs).
        crate::progress::plan_steps(1);
    }
    let volumes = plan
        .volumes
        .iter()
        .filter_map(|&s| exec.volume(s))
        .collect();
    let mut components = components;
    builders::union_check(&mut r, &components)?;
    share_directory_overrides(&mut r, &mut components);
    // The shell's own packages, less any .deb the image already has.
    let mut shell_components = Vec::new();
    if opts.shell {
        let image_items: std::collections::BTreeSet<&StorePath> =
            components.iter().map(|c| &c.item).collect();
        shell_components = exec.components(&plan.shell_components);
        shell_components.retain(|c| !image_items.contains(&c.item));
        if !shell_components.is_empty() {
            if opts.progress {
                crate::progress::plan_steps(1);
            }
            let all: Vec<Component> = components
                .iter()
                .chain(&shell_components)
                .cloned()
                .collect();
            builders::union_check(&mut r, &all)?;
        }
    }
    let (built, reused, substituted) = (r.built, r.reused, r.substituted);
    let mut step_outputs = std::mem::take(&mut r.outputs);
    step_outputs.sort();
    step_outputs.dedup();
    let mut inputs: Vec<StorePath> = exec
        .inputs
        .iter()
        .flatten()
        .filter_map(|i| match i {
            InputItem::Item(p) => Some(p.clone()),
            // Not in the store: every step using it was found or substituted.
            InputItem::InPlace(_) | InputItem::Deferred(_) => None,
        })
        .collect();
    inputs.sort();
    inputs.dedup();
    let closure = Closure {
        lock: pinned.lock,
        lock_written: pinned.written,
        components,
        shell_components,
        inputs,
        volumes,
        built,
        reused,
        substituted,
        step_outputs,
    };
    Ok((closure, plan))
}

/// Directories shared by several components get one owner and mode (see
/// [`assemble::share_directory_overrides`]).
fn share_directory_overrides(r: &mut Realizer, components: &mut [Component]) {
    let trees: Vec<PathBuf> = components.iter().map(|c| c.tree(r.store)).collect();
    let mut overrides: Vec<_> = components
        .iter_mut()
        .map(|c| std::mem::take(&mut c.overrides))
        .collect();
    assemble::share_directory_overrides(&trees, &mut overrides);
    for (c, o) in components.iter_mut().zip(overrides) {
        c.overrides = o;
    }
}

/// `envbuild realize`: the closure, its layers and the image (export is
/// separate).
pub fn realize(
    store: &mut Store,
    spec: &Spec,
    opts: &RealizeOptions,
) -> Result<Realized, RealizeError> {
    let (closure, plan) = closure_and_plan(store, spec, opts)?;
    let epoch = closure.lock.source_date_epoch;
    let components = closure.components;
    let mut r = Realizer::new(store, opts.progress);
    r.subst = opts.substituters.clone();
    r.built = closure.built;
    r.reused = closure.reused;
    r.substituted = closure.substituted;
    let (base, own) = split_base(&plan, &components);
    let mut layers = match base {
        Some(b) => base_layers(&r, b)?,
        None => Vec::new(),
    };
    // The base's layers count against the budget.
    let budget = LAYER_BUDGET.saturating_sub(layers.len()).max(1);
    layers.extend(
        realize_layers(&mut r, own, epoch, plan.image.compression, budget)?
            .into_iter()
            .map(|l| l.expect("a realize builds every layer")),
    );
    if opts.progress {
        crate::progress::plan_steps(1);
    }
    let image_plan = image_plan_over_base(&r, &plan, base)?;
    let (image, image_item) = builders::image(&mut r, &image_plan, &layers, epoch)?;
    let (built, reused, substituted) = (r.built, r.reused, r.substituted);
    let mut step_outputs = closure.step_outputs;
    step_outputs.append(&mut r.outputs);
    step_outputs.sort();
    step_outputs.dedup();
    Ok(Realized {
        lock: closure.lock,
        lock_written: closure.lock_written,
        components,
        layers,
        image,
        image_item,
        volumes: closure.volumes,
        inputs: closure.inputs,
        built,
        reused,
        substituted,
        step_outputs,
    })
}

/// The spec as `run`, `shell` and `check` enter its closure: on a base
/// image, the base's `Env` (each variable the spec does not set) and
/// `WorkingDir` (when the spec sets none) apply, as they do in the image.
pub fn spec_over_base(store: &Store, spec: &Spec, closure: &Closure) -> Result<Spec, RealizeError> {
    let mut s = spec.clone();
    let (true, Some(base)) = (spec.base_image.is_some(), closure.components.first()) else {
        return Ok(s);
    };
    let meta = builders::base_image::base_meta(store, &base.item)?;
    for e in meta.runtime.env.iter().flatten() {
        if let Some((k, v)) = e.split_once('=') {
            s.image
                .env
                .entry(k.to_string())
                .or_insert_with(|| v.to_string());
        }
    }
    if s.image.workdir.is_none() {
        s.image.workdir = meta.runtime.working_dir.filter(|w| w.starts_with('/'));
    }
    Ok(s)
}

/// The base image's component (the first, with `[base] image`) and the
/// rest: the base's layers go into the image as they are, the rest are
/// layered.
fn split_base<'c>(
    plan: &Plan,
    components: &'c [Component],
) -> (Option<&'c Component>, &'c [Component]) {
    match (&plan.base_image, components.split_first()) {
        (Some(_), Some((first, rest))) => (Some(first), rest),
        _ => (None, components),
    }
}

/// The base image's layers, as its blobs are in the store (fetched by
/// digest: never re-tarred or recompressed), with the diff IDs its config
/// gives and the unpacking checked.
fn base_layers(r: &Realizer, base: &Component) -> Result<Vec<Layer>, RealizeError> {
    let meta = builders::base_image::base_meta(r.store, &base.item)?;
    meta.layers
        .iter()
        .map(|l| {
            let hex = l.digest.strip_prefix("sha256:").unwrap_or(&l.digest);
            let item = r
                .store
                .realisation(&format!("fetch:sha256:{hex}"), "out")?
                .ok_or_else(|| RealizeError::BadItem {
                    item: base.item.basename(),
                    builder: "unpack-base-image",
                    what: format!("its layer {} is not in the store", l.digest),
                })?;
            let blob_path = r.store.physical_path(&item);
            // Docker's gzip layer type is OCI's tar+gzip: the same bytes.
            let media_type = match l.media_type.as_str() {
                "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
                    "application/vnd.oci.image.layer.v1.tar+gzip".to_string()
                }
                t => t.to_string(),
            };
            Ok(Layer {
                item,
                blob: oci::LayerBlob {
                    diff_id: l.diff_id.clone(),
                    digest: l.digest.clone(),
                    size: l.size,
                    tar_size: l.tar_size,
                    media_type,
                    compression: "base-image".into(),
                },
                blob_path,
                components: vec![base.label.clone()],
            })
        })
        .collect()
}

/// The image settings: the spec's, over the base image's config when
/// there is one.
fn image_plan_over_base(
    r: &Realizer,
    plan: &Plan,
    base: Option<&Component>,
) -> Result<crate::plan::ImagePlan, RealizeError> {
    let mut p = plan.image.clone();
    if let Some(b) = base {
        let meta = builders::base_image::base_meta(r.store, &b.item)?;
        p.config = p.config.over_base(&meta.runtime, sources::DEFAULT_PATH);
    }
    Ok(p)
}

/// The layers of `components`, grouped under the budget, compressed on the
/// worker pool (the largest first; their order in the image is the
/// components' order). In a dry run, `None` for a layer not yet built.
fn realize_layers(
    r: &mut Realizer,
    components: &[Component],
    epoch: u64,
    compression: oci::Compression,
    budget: usize,
) -> Result<Vec<Option<Layer>>, RealizeError> {
    let groups = layer_groups(r.store, components, budget)?;
    if r.progress && !r.dry_run {
        crate::progress::plan_steps(groups.len());
    }
    let sizes: Vec<u64> = groups
        .iter()
        .map(|g| g.iter().map(|&(_, size)| size).sum())
        .collect();
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by_key(|&g| std::cmp::Reverse(sizes[g]));
    let layer = |r: &mut Realizer, g: usize| {
        let members: Vec<&Component> = groups[g].iter().map(|&(i, _)| &components[i]).collect();
        not_built_is_none(builders::layer(r, &members, epoch, compression))
    };
    let built = if r.dry_run {
        order
            .iter()
            .map(|&g| layer(r, g).map(|l| (g, l)))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        r.in_parallel(&order, |r, &g| layer(r, g).map(|l| (g, l)))?
    };
    let mut layers: Vec<Option<Layer>> = (0..groups.len()).map(|_| None).collect();
    for (g, layer) in built {
        layers[g] = layer;
    }
    Ok(layers)
}

/// The layer groups of `components`: (component index, NAR size) each, at
/// most `budget` of them.
fn layer_groups(
    store: &Store,
    components: &[Component],
    budget: usize,
) -> Result<Vec<Vec<(usize, u64)>>, RealizeError> {
    let inputs: Vec<assemble::GroupInput> = components
        .iter()
        .map(|c| {
            Ok(assemble::GroupInput {
                key: c.group_key.clone(),
                size: store.path_info(&c.item)?.nar_size,
                own: c.own_layer,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(assemble::group_layers(&inputs, budget)
        .into_iter()
        .map(|g| g.into_iter().map(|i| (i, inputs[i].size)).collect())
        .collect())
}

/// A dry run's "not built" as `None`.
fn not_built_is_none<T>(r: Result<T, RealizeError>) -> Result<Option<T>, RealizeError> {
    match r {
        Ok(t) => Ok(Some(t)),
        Err(RealizeError::NotBuilt) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What a realize of the spec would do (`envbuild plan`).
#[derive(Debug, serde::Serialize)]
pub struct DryRun {
    /// Files to download (not in the store), with sizes.
    pub fetch: Vec<PlannedFetch>,
    /// Local paths to add to the store.
    pub add: Vec<String>,
    /// Steps to build: (item name, builder), in plan order.
    pub build: Vec<PlannedBuild>,
    /// Steps already realized in the store.
    pub present: usize,
    /// The layer grouping (component labels per layer), when every
    /// component is in the store; else unknown until they are built.
    pub layers: Option<Vec<Vec<String>>>,
    /// Whether the lock would be written (the spec's pins changed).
    pub lock_changes: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PlannedBuild {
    pub name: String,
    pub builder: &'static str,
    /// A substituter with a trusted realisation of the step (it would be
    /// substituted, not built).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub substituter: Option<String>,
}

impl DryRun {
    /// Whether a realize would do nothing.
    pub fn is_empty(&self) -> bool {
        self.fetch.is_empty() && self.add.is_empty() && self.build.is_empty()
    }
}

/// A realize that builds nothing: pins (reading, never writing, the lock)
/// and walks the plan to tell what is in the store and what would be
/// fetched and built, layers and image included.
pub fn dry_run(
    store: &mut Store,
    spec: &Spec,
    opts: &RealizeOptions,
) -> Result<DryRun, RealizeError> {
    let path = lock_path(&spec.path);
    let old = Lock::read(&path)?;
    let mut cx = PinContext {
        store,
        spec,
        old: old.as_ref(),
        exclude_newer: opts.exclude_newer,
        upgrade: opts.upgrade.clone(),
        // A dry run pins from the lock: only a changed spec resolves.
        fetch: opts.fetch_options(),
        urls: BTreeMap::new(),
        python_warmup: None,
    };
    let lock = sources::pin(&mut cx)?;
    let lock_changes = match &old {
        Some(o) => o.differences(&lock),
        None => vec![format!("{} would be written", path.display())],
    };
    let plan = sources::plan(spec, &lock)?;
    let mut r = Realizer::new(store, false);
    r.dry_run = true;
    r.subst = opts.substituters.clone();
    let mut exec = Execution::new(&plan);
    let roots = exec.roots(opts.shell);
    let (fetch, add) = exec.run(&mut r, &roots, &BTreeMap::new(), &opts.fetch_options())?;
    let complete = plan.components.iter().all(|&s| exec.done[s].is_some());
    let mut layers = None;
    let mut image_built = false;
    if complete {
        let mut components = exec.components(&plan.components);
        if not_built_is_none(builders::union_check(&mut r, &components))?.is_some() {
            share_directory_overrides(&mut r, &mut components);
            let (base, own) = split_base(&plan, &components);
            let base_layers = match base {
                Some(b) => base_layers(&r, b)?,
                None => Vec::new(),
            };
            let budget = LAYER_BUDGET.saturating_sub(base_layers.len()).max(1);
            let groups = layer_groups(r.store, own, budget)?;
            layers = Some(
                base_layers
                    .iter()
                    .map(|l| vec![format!("{} ({})", l.components[0], l.blob.digest)])
                    .chain(
                        groups
                            .iter()
                            .map(|g| g.iter().map(|&(i, _)| own[i].label.clone()).collect()),
                    )
                    .collect(),
            );
            let epoch = plan.source_date_epoch;
            let built = realize_layers(&mut r, own, epoch, plan.image.compression, budget)?;
            if built.iter().all(Option::is_some) {
                let built: Vec<Layer> = base_layers
                    .into_iter()
                    .chain(built.into_iter().flatten())
                    .collect();
                let image_plan = image_plan_over_base(&r, &plan, base)?;
                image_built =
                    not_built_is_none(builders::image(&mut r, &image_plan, &built, epoch))?
                        .is_some();
            }
        }
    }
    let mut build = std::mem::take(&mut r.not_built);
    if !complete {
        build.push(PlannedBuild {
            name: "rootfs-union-check".into(),
            builder: "union-check",
            substituter: None,
        });
    }
    if layers.is_none() {
        build.push(PlannedBuild {
            name: format!("the layers (at most {LAYER_BUDGET})"),
            builder: "layer",
            substituter: None,
        });
    }
    if !image_built && !build.iter().any(|b| b.builder == "image") {
        build.push(PlannedBuild {
            name: "the image".into(),
            builder: "image",
            substituter: None,
        });
    }
    Ok(DryRun {
        fetch,
        add,
        build,
        present: r.reused,
        layers,
        lock_changes,
    })
}

/// A realized step.
#[derive(Debug, Clone)]
enum Done {
    Component(Component),
    /// A built wheel (`build-sdist`): its item and the wheel in it.
    Wheel(StorePath, WheelFile),
    Volume(Volume),
}

impl Done {
    fn item(&self) -> &StorePath {
        match self {
            Done::Component(c) => &c.item,
            Done::Wheel(item, _) => item,
            Done::Volume(v) => &v.item,
        }
    }
}

/// One execution of a plan.
struct Execution<'p> {
    plan: &'p Plan,
    inputs: Vec<Option<InputItem>>,
    done: Vec<Option<Done>>,
    /// Steps not served by a substituter whose deferred inputs must be
    /// materialized before they are built.
    waiting: std::sync::Mutex<Vec<StepId>>,
}

impl<'p> Execution<'p> {
    fn new(plan: &'p Plan) -> Self {
        Execution {
            plan,
            inputs: vec![None; plan.inputs.len()],
            done: vec![None; plan.steps.len()],
            waiting: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The steps a realize wants: the image's components and volumes, and
    /// with `shell` the shell's.
    fn roots(&self, shell: bool) -> Vec<StepId> {
        let p = self.plan;
        let mut roots: Vec<StepId> = p.components.iter().chain(&p.volumes).copied().collect();
        if shell {
            roots.extend(&p.shell_components);
        }
        roots
    }

    /// Materialize the inputs `roots` need and run their steps; returns
    /// what was (or, dry, would be) fetched and added.
    fn run(
        &mut self,
        r: &mut Realizer,
        roots: &[StepId],
        urls: &BTreeMap<String, String>,
        fetch: &FetchOptions,
    ) -> Result<(Vec<PlannedFetch>, Vec<String>), RealizeError> {
        let plan = self.plan;
        let mut needed_steps = vec![false; plan.steps.len()];
        let mut needed_inputs = vec![false; plan.inputs.len()];
        let mut stack: Vec<StepId> = roots.to_vec();
        while let Some(s) = stack.pop() {
            if std::mem::replace(&mut needed_steps[s], true) {
                continue;
            }
            for r in &plan.steps[s].inputs {
                match *r {
                    Ref::Input(i) => needed_inputs[i] = true,
                    Ref::Step(t) => stack.push(t),
                }
            }
        }
        if r.progress && !r.dry_run {
            crate::progress::plan_steps(needed_steps.iter().filter(|&&n| n).count());
        }
        // A file whose item a trusted realisation names is deferred: a
        // step the substituters serve does not need it (a dry run lists
        // it only when a step that is not served uses it).
        let m = inputs::materialize(
            r.store,
            plan,
            &needed_inputs,
            urls,
            fetch,
            r.dry_run,
            r.subst.as_deref(),
            true,
        )?;
        self.inputs = m.items;
        let (mut fetched, mut added) = (m.fetched, m.added);
        let order: Vec<StepId> = (0..plan.steps.len()).filter(|&s| needed_steps[s]).collect();
        let mut k = 0;
        while k < order.len() {
            // A run of unpack steps of one kind whose inputs are all
            // inputs or steps done before the run (a wheel's bytecode
            // closure) goes to the worker pool as one batch.
            let done = &self.done;
            let batchable = |s: StepId| {
                let step = &plan.steps[s];
                matches!(
                    step.builder,
                    Builder::UnpackDeb { .. } | Builder::UnpackWheel { .. }
                ) && step.inputs.iter().all(|r| match *r {
                    Ref::Input(_) => true,
                    Ref::Step(t) => done[t].is_some(),
                })
            };
            let mut end = k + 1;
            if batchable(order[k]) && !r.dry_run {
                let kind = std::mem::discriminant(&plan.steps[order[k]].builder);
                while end < order.len()
                    && batchable(order[end])
                    && std::mem::discriminant(&plan.steps[order[end]].builder) == kind
                {
                    end += 1;
                }
            }
            let mut run = order[k..end].to_vec();
            // Twice at most: the steps no substituter served need their
            // deferred inputs, materialized after the first pass.
            for pass in 0..2 {
                self.run_steps(r, &run)?;
                let waiting = std::mem::take(&mut *self.waiting.lock().expect("waiting lock"));
                if waiting.is_empty() {
                    break;
                }
                if pass == 1 {
                    return Err(RealizeError::InputsDeferred);
                }
                let mut want = vec![false; plan.inputs.len()];
                for &s in &waiting {
                    for input in &plan.steps[s].inputs {
                        if let Ref::Input(i) = *input {
                            want[i] = matches!(self.inputs[i], Some(InputItem::Deferred(_)));
                        }
                    }
                }
                tracing::debug!(
                    steps = waiting.len(),
                    inputs = want.iter().filter(|&&w| w).count(),
                    "steps not served: materializing their deferred inputs"
                );
                let m = inputs::materialize(
                    r.store,
                    plan,
                    &want,
                    urls,
                    fetch,
                    r.dry_run,
                    r.subst.as_deref(),
                    false,
                )?;
                if r.dry_run {
                    // Listed as fetches; the steps are listed as builds.
                    fetched.extend(m.fetched);
                    added.extend(m.added);
                    break;
                }
                for (i, item) in m.items.into_iter().enumerate() {
                    if want[i] {
                        self.inputs[i] = item;
                    }
                }
                fetched.extend(m.fetched);
                added.extend(m.added);
                run = waiting;
            }
            k = end;
        }
        Ok((fetched, added))
    }

    /// Run `steps` (one alone, or several as a batch on the worker pool).
    /// A step that would have to be built but has deferred inputs is left
    /// undone and listed in `waiting`.
    fn run_steps(&mut self, r: &mut Realizer, steps: &[StepId]) -> Result<(), RealizeError> {
        if steps.len() > 1 {
            let this = &*self;
            let outs = r.in_parallel_batched(steps, |&s| this.cost(s), |r, &s| this.step(r, s))?;
            for (&s, out) in steps.iter().zip(outs) {
                self.done[s] = out;
            }
        } else if let [s] = *steps {
            self.done[s] = self.step(r, s)?;
        }
        Ok(())
    }

    /// What a step is worth scheduling first: its input's size.
    fn cost(&self, s: StepId) -> u64 {
        match &self.plan.steps[s].builder {
            Builder::UnpackWheel { .. } => self.plan.steps[s]
                .inputs
                .iter()
                .map(|r| match *r {
                    Ref::Input(i) => match &self.plan.inputs[i].kind {
                        InputKind::Fetch { size, .. } | InputKind::InPlace { size, .. } => *size,
                        InputKind::Local { .. } => 0,
                    },
                    Ref::Step(_) => 0,
                })
                .sum(),
            _ => 0,
        }
    }

    /// The wheel an `unpack-wheel` step installs.
    fn wheel(&self, r: &Realizer, input: Ref) -> Option<WheelFile> {
        match input {
            Ref::Step(s) => match self.done[s].as_ref()? {
                Done::Wheel(_, w) => Some(w.clone()),
                _ => None,
            },
            Ref::Input(i) => {
                let (file, sha256, size, in_place) = match &self.plan.inputs[i].kind {
                    InputKind::Fetch {
                        file, sha256, size, ..
                    } => (file, sha256, *size, false),
                    InputKind::InPlace {
                        file, sha256, size, ..
                    } => (file, sha256, *size, true),
                    InputKind::Local { .. } => return None,
                };
                let path = match self.inputs[i].as_ref()? {
                    InputItem::Item(item) | InputItem::Deferred(item) => {
                        r.store.physical_path(item)
                    }
                    InputItem::InPlace(p) => p.clone(),
                };
                Some(WheelFile {
                    filename: file.clone(),
                    sha256: sha256.clone(),
                    size,
                    path,
                    in_place,
                    // Fetched files enter the store only with the pinned
                    // sha256; in-place files are checked against it.
                    pinned: true,
                })
            }
        }
    }

    /// Run one step whose inputs are realized; `None` when a dry run finds
    /// it (or an input) not built.
    fn step(&self, r: &mut Realizer, s: StepId) -> Result<Option<Done>, RealizeError> {
        let step = &self.plan.steps[s];
        let mut items: Vec<StorePath> = Vec::new();
        let mut deferred = false;
        for input in &step.inputs {
            let item = match *input {
                Ref::Input(i) => match self.inputs[i].as_ref() {
                    Some(InputItem::Item(item)) => Some(item.clone()),
                    Some(InputItem::Deferred(item)) => {
                        deferred = true;
                        Some(item.clone())
                    }
                    Some(InputItem::InPlace(_)) => None,
                    None => return Ok(self.not_built(r, s)),
                },
                Ref::Step(t) => match self.done[t].as_ref() {
                    Some(d) => Some(d.item().clone()),
                    None => return Ok(self.not_built(r, s)),
                },
            };
            items.extend(item);
        }
        let mut next_item = items.iter();
        let resolved: Vec<Resolved> = step
            .inputs
            .iter()
            .map(|input| match *input {
                Ref::Input(i) if matches!(self.inputs[i], Some(InputItem::InPlace(_))) => {
                    Resolved::InPlace
                }
                _ => Resolved::Item(next_item.next().expect("one item per input")),
            })
            .collect();
        let wheel = match &step.builder {
            Builder::UnpackWheel { .. } => self.wheel(r, step.inputs[0]),
            _ => None,
        };
        let drv = step.derivation(
            &resolved,
            wheel.as_ref().map(|w| WheelId {
                filename: &w.filename,
                sha256: &w.sha256,
            }),
        );
        r.no_build = deferred;
        let done = self.build_step(r, s, &drv, &items, wheel);
        r.no_build = false;
        match done {
            Err(RealizeError::InputsDeferred) => {
                self.waiting.lock().expect("waiting lock").push(s);
                Ok(None)
            }
            done => not_built_is_none(done),
        }
    }

    /// The builder of step `s`, for its derivation `drv`.
    fn build_step(
        &self,
        r: &mut Realizer,
        s: StepId,
        drv: &crate::plan::Derivation,
        items: &[StorePath],
        wheel: Option<WheelFile>,
    ) -> Result<Done, RealizeError> {
        let step = &self.plan.steps[s];
        let done = match &step.builder {
            Builder::UnpackDeb { filename } => {
                builders::unpack_deb(r, drv, filename, &items[0]).map(Done::Component)
            }
            Builder::BaseFiles(b) => {
                let base = items.first().map(|i| r.store.physical_path(i).join("tree"));
                builders::base_files(r, drv, b, base.as_deref()).map(Done::Component)
            }
            Builder::UnpackBaseImage {
                image,
                manifest,
                config,
                layers,
            } => builders::base_image::unpack_base_image(
                r,
                drv,
                &builders::base_image::BaseImageStep {
                    image,
                    manifest,
                    config,
                    layers,
                },
                items,
            )
            .map(Done::Component),
            Builder::UnpackWheel {
                scheme,
                shebang,
                bytecode,
            } => {
                let wheel = wheel.expect("an unpack-wheel step's input is a wheel");
                let closure = self.step_components(&step.inputs[1..]);
                let bytecode = bytecode.as_deref().map(|python| builders::wheel::Bytecode {
                    python,
                    closure: &closure,
                });
                builders::wheel::unpack_wheel(r, drv, scheme, shebang, &wheel, bytecode.as_ref())
                    .map(Done::Component)
            }
            Builder::BuildSdist {
                sdist,
                source_date_epoch,
                python,
                site_packages,
            } => {
                let closure = self.step_components(&step.inputs[1..]);
                builders::sdist::build_sdist(
                    r,
                    drv,
                    &builders::sdist::SdistBuild {
                        sdist,
                        item: &items[0],
                        closure: &closure,
                        python,
                        site_packages,
                        source_date_epoch: *source_date_epoch,
                    },
                )
                .and_then(|item| {
                    let w = builders::sdist::built_wheel(r, &item)?;
                    Ok(Done::Wheel(item, w))
                })
            }
            Builder::ModelSnapshot(m) => {
                builders::model::model_snapshot(r, drv, m, items).map(|s| match s {
                    builders::model::Snapshot::Component(c) => Done::Component(c),
                    builders::model::Snapshot::Volume(v) => Done::Volume(v),
                })
            }
            Builder::CopyFiles { dst, owner, mode } => {
                builders::copy_files(r, drv, dst, *owner, *mode, &items[0]).map(Done::Component)
            }
            Builder::DebianBytecode { python } => {
                let base = self.step_components(&step.inputs);
                builders::debian_bytecode::debian_bytecode(r, drv, python, &base)
                    .map(Done::Component)
            }
        };
        done
    }

    /// The components of the steps among `inputs`, in order (a build
    /// closure).
    fn step_components(&self, inputs: &[Ref]) -> Vec<Component> {
        inputs
            .iter()
            .filter_map(|r| match *r {
                Ref::Step(t) => match &self.done[t] {
                    Some(Done::Component(c)) => Some(c.clone()),
                    _ => None,
                },
                Ref::Input(_) => None,
            })
            .collect()
    }

    /// A dry run's step whose inputs are not built: it will be built.
    fn not_built(&self, r: &mut Realizer, s: StepId) -> Option<Done> {
        let step = &self.plan.steps[s];
        r.not_built.push(PlannedBuild {
            name: step.name.clone(),
            builder: step.builder.name(),
            substituter: None,
        });
        None
    }

    /// The components of `steps`, in order (those realized).
    fn components(&self, steps: &[StepId]) -> Vec<Component> {
        steps
            .iter()
            .filter_map(|&s| match &self.done[s] {
                Some(Done::Component(c)) => Some(c.clone()),
                _ => None,
            })
            .collect()
    }

    fn volume(&self, s: StepId) -> Option<Volume> {
        match &self.done[s] {
            Some(Done::Volume(v)) => Some(v.clone()),
            _ => None,
        }
    }
}
