//! The realizer: looks a derivation's realisation up, else builds it into
//! a scratch directory and registers the output, alone or in a batch.

use std::path::{Path, PathBuf};

use envbuild_store::nar::WrittenTree;
use envbuild_store::{Store, StorePath};

use super::RealizeError;
use crate::plan::Derivation;

/// Drives derivations against the store.
pub struct Realizer<'s> {
    pub store: &'s mut Store,
    pub built: usize,
    pub reused: usize,
    pub progress: bool,
    /// Build nothing: a step not yet realized is recorded in `not_built`
    /// and fails with [`RealizeError::NotBuilt`] (`envbuild plan`).
    pub dry_run: bool,
    pub not_built: Vec<super::PlannedBuild>,
    /// Binary caches asked for a step's output before it is built.
    pub subst: Option<std::sync::Arc<crate::cache::Substituters>>,
    /// Steps whose output came from a substituter.
    pub substituted: usize,
    /// The output of every step realized (found, substituted or built):
    /// what `envbuild cache push SPEC` pushes with its realisation.
    pub outputs: Vec<StorePath>,
    /// Outputs built and hashed but not yet in the store, when steps run
    /// batched (see [`Realizer::in_parallel_batched`]).
    batch: Option<Vec<PendingOutput>>,
    /// The step at hand has deferred inputs (not in the store): it may be
    /// found or substituted, but building it fails with
    /// [`RealizeError::InputsDeferred`].
    pub no_build: bool,
}

/// A built output waiting for its batch's commit.
struct PendingOutput {
    /// Holds the output (and the gc lock) until the commit.
    scratch: envbuild_store::Scratch,
    prepared: envbuild_store::PreparedOutput,
    drv_hash: String,
}

impl<'s> Realizer<'s> {
    pub fn new(store: &'s mut Store, progress: bool) -> Self {
        Realizer {
            store,
            built: 0,
            reused: 0,
            progress,
            dry_run: false,
            not_built: Vec::new(),
            subst: None,
            substituted: 0,
            outputs: Vec::new(),
            batch: None,
            no_build: false,
        }
    }

    /// Run `step` for every job in parallel (see
    /// [`crate::workers::on_store_workers`]);
    /// step counts are added to this realizer's. Each output is in the
    /// store when its step returns.
    pub fn in_parallel<J: Sync, T: Send>(
        &mut self,
        jobs: &[J],
        step: impl Fn(&mut Realizer, &J) -> Result<T, RealizeError> + Sync,
    ) -> Result<Vec<T>, RealizeError> {
        self.run_workers(jobs, None, false, step)
    }

    /// Like [`Realizer::in_parallel`], but jobs start largest `cost` first,
    /// and the outputs are committed to the store together when every step
    /// is done: one `syncfs` and one registration for the batch instead of
    /// one each, while a write-behind thread keeps the disk busy. Until
    /// this returns, a step finds the files of an output it realized at
    /// [`Realizer::output_path`], not at the item's physical path.
    pub fn in_parallel_batched<J: Sync, T: Send>(
        &mut self,
        jobs: &[J],
        cost: impl Fn(&J) -> u64,
        step: impl Fn(&mut Realizer, &J) -> Result<T, RealizeError> + Sync,
    ) -> Result<Vec<T>, RealizeError> {
        let mut order: Vec<usize> = (0..jobs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(cost(&jobs[i])));
        self.run_workers(jobs, Some(&order), true, step)
    }

    fn run_workers<J: Sync, T: Send>(
        &mut self,
        jobs: &[J],
        order: Option<&[usize]>,
        batched: bool,
        step: impl Fn(&mut Realizer, &J) -> Result<T, RealizeError> + Sync,
    ) -> Result<Vec<T>, RealizeError> {
        let built = std::sync::atomic::AtomicUsize::new(0);
        let reused = std::sync::atomic::AtomicUsize::new(0);
        let substituted = std::sync::atomic::AtomicUsize::new(0);
        let outputs = std::sync::Mutex::new(Vec::new());
        let subst = self.subst.clone();
        let pending = std::sync::Mutex::new(Vec::new());
        let progress = self.progress;
        let root = self.store.root().to_path_buf();
        let write_behind = batched.then(|| self.store.write_behind());
        let out = crate::workers::on_store_workers(&root, jobs, order, |store, job| {
            let mut r = Realizer::new(store, progress);
            r.subst = subst.clone();
            if batched {
                r.batch = Some(Vec::new());
            }
            let result = step(&mut r, job);
            built.fetch_add(r.built, std::sync::atomic::Ordering::Relaxed);
            reused.fetch_add(r.reused, std::sync::atomic::Ordering::Relaxed);
            substituted.fetch_add(r.substituted, std::sync::atomic::Ordering::Relaxed);
            outputs.lock().expect("outputs lock").append(&mut r.outputs);
            if let Some(b) = r.batch.take() {
                pending.lock().expect("pending lock").extend(b);
            }
            result
        });
        drop(write_behind);
        let out = out?;
        self.commit(pending.into_inner().expect("pending lock"))?;
        self.built += built.into_inner();
        self.reused += reused.into_inner();
        self.substituted += substituted.into_inner();
        self.outputs
            .append(&mut outputs.into_inner().expect("outputs lock"));
        Ok(out)
    }

    /// Where the files of `item`, realized by this realizer or before, are
    /// now: still in their scratch directory while a batch is pending,
    /// else in the store.
    pub fn output_path(&self, item: &StorePath) -> PathBuf {
        self.batch
            .iter()
            .flatten()
            .find(|p| p.prepared.path() == item)
            .map(|p| p.prepared.location().to_path_buf())
            .unwrap_or_else(|| self.store.physical_path(item))
    }

    /// Move a batch of built outputs into the store and record their
    /// realisations.
    fn commit(&mut self, pending: Vec<PendingOutput>) -> Result<(), RealizeError> {
        let mut scratches = Vec::with_capacity(pending.len());
        let mut prepared = Vec::with_capacity(pending.len());
        let mut hashes = Vec::with_capacity(pending.len());
        for p in pending {
            scratches.push(p.scratch);
            prepared.push(p.prepared);
            hashes.push(p.drv_hash);
        }
        let added = self.store.commit_outputs(prepared)?;
        for (hash, a) in hashes.iter().zip(&added) {
            self.store.add_realisation(hash, "out", &a.path)?;
        }
        drop(scratches);
        Ok(())
    }

    /// The output of `drv`: its realisation if there is one, else built by
    /// `build` into an empty directory `out` and added to the store (or,
    /// batched, hashed and left for the batch's commit).
    pub fn realize(
        &mut self,
        drv: &Derivation,
        references: &[StorePath],
        build: impl FnOnce(&mut Store, &Path) -> Result<(), RealizeError>,
    ) -> Result<StorePath, RealizeError> {
        self.realize_output(drv, references, |store, out| {
            build(store, out).map(|()| None)
        })
    }

    /// [`Realizer::realize`] for a builder that writes its output at `out`
    /// (which does not exist yet) with the store's
    /// [`TreeWriter`](envbuild_store::nar::TreeWriter): the tree's NAR hash
    /// was computed as it was written, so it is not read back.
    pub fn realize_written(
        &mut self,
        drv: &Derivation,
        references: &[StorePath],
        build: impl FnOnce(&mut Store, &Path) -> Result<WrittenTree, RealizeError>,
    ) -> Result<StorePath, RealizeError> {
        self.realize_output(drv, references, |store, out| build(store, out).map(Some))
    }

    fn realize_output(
        &mut self,
        drv: &Derivation,
        references: &[StorePath],
        build: impl FnOnce(&mut Store, &Path) -> Result<Option<WrittenTree>, RealizeError>,
    ) -> Result<StorePath, RealizeError> {
        let hash = drv.hash();
        if let Some(item) = self.store.realisation(&hash, "out")? {
            self.reused += 1;
            self.outputs.push(item.clone());
            if self.progress {
                crate::progress::step_reused();
            }
            tracing::trace!(step = %drv.name, builder = drv.builder, drv = %hash, "step already realized");
            return Ok(item);
        }
        if self.dry_run {
            let substituter = self.subst.as_ref().and_then(|s| s.has_realisation(&hash));
            let served = substituter.is_some();
            self.not_built.push(super::PlannedBuild {
                name: drv.name.clone(),
                builder: drv.builder,
                substituter,
            });
            // A step that will be built needs its deferred inputs: the
            // dry run lists them as fetches.
            if self.no_build && !served {
                return Err(RealizeError::InputsDeferred);
            }
            return Err(RealizeError::NotBuilt);
        }
        if let Some(subst) = self.subst.clone() {
            let what = format!("step {} ({})", drv.name, drv.builder);
            if let Some(item) = subst.realisation(self.store, &hash, &what)? {
                self.substituted += 1;
                self.outputs.push(item.clone());
                if self.progress {
                    crate::progress::step_reused();
                }
                tracing::debug!(step = %drv.name, builder = drv.builder, drv = %hash, out = %item, "step substituted");
                return Ok(item);
            }
        }
        if self.no_build {
            tracing::debug!(step = %drv.name, builder = drv.builder, drv = %hash, "not served: its deferred inputs are needed");
            return Err(RealizeError::InputsDeferred);
        }
        let step = self
            .progress
            .then(|| crate::progress::step(drv.builder, &drv.name));
        tracing::debug!(step = %drv.name, builder = drv.builder, drv = %hash, "step started");
        let started = std::time::Instant::now();
        let scratch = self.store.scratch(&drv.name)?;
        let out = scratch.path().join("out");
        let written = build(self.store, &out).map_err(|e| {
            tracing::debug!(step = %drv.name, builder = drv.builder, drv = %hash, error = %e, "step failed");
            e.in_step(&drv.name, drv.builder)
        })?;
        self.built += 1;
        // The output is ours alone: moved into the store, not copied.
        let prepared = match written {
            Some(tree) => {
                self.store
                    .prepare_written_output(tree, &drv.name, references, Some(&hash))?
            }
            None => self
                .store
                .prepare_scratch_output(&out, &drv.name, references, Some(&hash))?,
        };
        let path = prepared.path().clone();
        self.outputs.push(path.clone());
        tracing::debug!(
            step = %drv.name,
            builder = drv.builder,
            drv = %hash,
            out = %path,
            seconds = started.elapsed().as_secs_f64(),
            "step finished"
        );
        if let Some(step) = step {
            step.done_with_size(prepared.nar_size());
        }
        if let Some(batch) = &mut self.batch {
            batch.push(PendingOutput {
                scratch,
                prepared,
                drv_hash: hash,
            });
            return Ok(path);
        }
        self.store.commit_outputs(vec![prepared])?;
        self.store.add_realisation(&hash, "out", &path)?;
        Ok(path)
    }
}
