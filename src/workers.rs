//! The worker pool every parallel stage uses: up to four workers, each with
//! its own store handle (a SQLite connection is not shared between
//! threads).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use envbuild_store::{Store, StoreError};

/// How many workers at most.
pub const MAX_WORKERS: usize = 4;

/// Why a pool returned fewer results than jobs.
#[derive(Debug, thiserror::Error)]
#[error("a parallel step stopped after an earlier step failed")]
pub struct Stopped;

/// Run `step` for every job on up to [`MAX_WORKERS`] workers, starting
/// jobs in `order` (default: job order); results in job order. After a
/// failure the remaining jobs are skipped and the first failure in job
/// order is returned.
pub fn on_store_workers<J: Sync, T: Send, E: Send + From<StoreError> + From<Stopped>>(
    root: &Path,
    jobs: &[J],
    order: Option<&[usize]>,
    step: impl Fn(&mut Store, &J) -> Result<T, E> + Sync,
) -> Result<Vec<T>, E> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let workers = jobs.len().clamp(1, MAX_WORKERS);
    let stores = (0..workers)
        .map(|_| Store::open(root))
        .collect::<Result<Vec<_>, _>>()?;
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<T, E>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for mut store in stores {
            let (next, results, step) = (&next, &results, &step);
            s.spawn(move || loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= jobs.len() {
                    return;
                }
                let i = order.map_or(n, |o| o[n]);
                let out = step(&mut store, &jobs[i]);
                if out.is_err() {
                    next.store(jobs.len(), Ordering::Relaxed);
                }
                results.lock().expect("results lock")[i] = Some(out);
            });
        }
    });
    let mut out = Vec::with_capacity(jobs.len());
    for r in results
        .into_inner()
        .expect("results lock")
        .into_iter()
        .flatten()
    {
        out.push(r?);
    }
    if out.len() != jobs.len() {
        return Err(Stopped.into());
    }
    Ok(out)
}
