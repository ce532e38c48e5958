//! `debian-bytecode`: the Debian base's Python modules compiled to
//! bytecode, into a component of `__pycache__/*.pyc` files only.
//!
//! Debian ships its standard library (and every `python3-*` package)
//! without bytecode: `py3compile` writes it from a maintainer script at
//! install, and envbuild runs none. Without this step every process in the
//! image compiles each standard module it imports, and cannot keep the
//! result (the image's `/usr/lib` is not writable by its user).
//!
//! Which modules: every regular `.py` file below `usr/lib/python3*/` in the
//! base's components (`python3.X` is the standard library, `python3` is
//! `dist-packages`) whose pyc no component ships. How: the rules of
//! [`crate::python::bytecode`] (unchecked-hash pycs, the base's interpreter
//! in the sandbox over the base's rootfs, a module that does not compile is
//! left without bytecode).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use super::{mkdirs, write_file};
use crate::assemble::Component;
use crate::plan::Derivation;
use crate::python::bytecode::{Compiler, Module};
use crate::realize::{io_err, RealizeError, Realizer};

const BUILDER: &str = "debian-bytecode";

/// Compile the modules of `base` (the base's components, in rootfs order)
/// with `python`.
pub fn debian_bytecode(
    r: &mut Realizer,
    drv: &Derivation,
    python: &str,
    base: &[Component],
) -> Result<Component, RealizeError> {
    let progress = r.progress;
    let bad = |what: String| RealizeError::BadItem {
        item: drv.name.clone(),
        builder: BUILDER,
        what,
    };
    let item = r.realize(drv, &[], |store, out| {
        let modules = base_modules(store, base)?;
        mkdirs(out)?;
        if modules.is_empty() {
            return Ok(());
        }
        // The same rootfs (cached by closure) the wheels compile in.
        let cache = store.cache_dir("rootfs")?;
        let rootfs = crate::assemble::rootfs(store, base, &cache, progress).map_err(|e| {
            bad(format!(
                "the rootfs to compile in could not be assembled: {e}"
            ))
        })?;
        let work = store.scratch("bytecode")?;
        let compiler = Compiler {
            rootfs: &rootfs,
            python,
            work: work.path(),
        };
        let compiled = compiler.compile(&modules).map_err(|e| bad(e.to_string()))?;
        tracing::debug!(
            modules = modules.len(),
            compiled = compiled.len(),
            "the Debian base's modules compiled"
        );
        for pyc in compiled {
            let at = out.join(&pyc.path);
            if let Some(parent) = at.parent() {
                mkdirs(parent)?;
            }
            write_file(&at, &pyc.bytes)?;
        }
        Ok(())
    })?;
    Ok(Component {
        subdir: "",
        label: "debian python bytecode".into(),
        group_key: "debian python bytecode".into(),
        item,
        overrides: BTreeMap::new(),
        own_layer: false,
        amends: Vec::new(),
    })
}

/// The modules to compile: `.py` files below `usr/lib/python3*/` of every
/// component, less those a component ships a pyc for.
fn base_modules(
    store: &envbuild_store::Store,
    base: &[Component],
) -> Result<Vec<Module>, RealizeError> {
    let mut found: BTreeMap<String, std::path::PathBuf> = BTreeMap::new();
    let mut shipped: BTreeSet<String> = BTreeSet::new();
    for c in base {
        let lib = c.tree(store).join("usr/lib");
        let Ok(entries) = fs::read_dir(&lib) else {
            continue;
        };
        for e in entries {
            let e = e.map_err(io_err("listing", &lib))?;
            let name = e.file_name();
            let name = name.to_string_lossy();
            if !name.starts_with("python3")
                || !e
                    .file_type()
                    .map_err(io_err("reading", &e.path()))?
                    .is_dir()
            {
                continue;
            }
            for f in walkdir::WalkDir::new(e.path()).sort_by_file_name() {
                let f = f.map_err(|err| {
                    let path = err.path().unwrap_or(&lib).to_path_buf();
                    io_err("walking", &path)(std::io::Error::other(err.to_string()))
                })?;
                if !f.file_type().is_file() {
                    continue;
                }
                let rel = f
                    .path()
                    .strip_prefix(c.tree(store))
                    .expect("below the tree")
                    .to_string_lossy()
                    .into_owned();
                if rel.ends_with(".py") {
                    found.entry(rel).or_insert_with(|| f.path().to_path_buf());
                } else if rel.ends_with(".pyc") {
                    shipped.insert(rel);
                }
            }
        }
    }
    let has_pyc = |module: &str| {
        let (dir, file) = module.rsplit_once('/').unwrap_or(("", module));
        let stem = file.trim_end_matches(".py");
        let prefix = format!("{dir}/__pycache__/{stem}.");
        shipped
            .range(prefix.clone()..)
            .next()
            .is_some_and(|p| p.starts_with(&prefix))
    };
    let mut modules = Vec::new();
    for (path, on_disk) in found {
        if has_pyc(&path) {
            continue;
        }
        let bytes = fs::read(&on_disk).map_err(io_err("reading", &on_disk))?;
        modules.push(Module { path, bytes });
    }
    Ok(modules)
}
