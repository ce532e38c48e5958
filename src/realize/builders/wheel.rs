//! `unpack-wheel`: install one wheel into a component of its own (the
//! installing itself is [`crate::python::wheel::install_wheel`]), its
//! modules compiled to bytecode in the sandbox with the base's interpreter
//! ([`crate::python::bytecode`]) unless the spec turns that off.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{mkdirs, sha256_file};
use crate::assemble::Component;
use crate::plan::Derivation;
use crate::python::bytecode::Compiler;
use crate::python::wheel::{install_wheel, install_wheel_compiling, InstallOptions, InstallScheme};
use crate::realize::{io_err, RealizeError, Realizer};

/// A wheel to install: its file name, sha256 (hex), size, and where its
/// bytes are.
#[derive(Debug, Clone)]
pub struct WheelFile {
    pub filename: String,
    pub sha256: String,
    pub size: u64,
    pub path: PathBuf,
    /// A file of the user's (`[[wheels]] path`, a pylock `path`), read in
    /// place and never copied into the store: when it is unpacked it must
    /// still have the locked sha256 (checked through the store's hash
    /// cache, so an unchanged file is not read twice). Else a store item.
    pub in_place: bool,
    /// Its sha256 is the lock's (a fetched or local pinned wheel): RECORD's
    /// hashes need no second proof. False for a wheel an sdist build made.
    pub pinned: bool,
}

/// The interpreter that compiles a wheel's modules to bytecode, and the
/// base's components it runs in (in rootfs order).
pub struct Bytecode<'a> {
    pub python: &'a str,
    pub closure: &'a [Component],
}

/// Install `wheel`, its modules compiled to bytecode when `bytecode` says
/// with what. The step is keyed by the wheel's sha256, not by where the
/// file came from: a wheel installed once from a mirror, a URL or a local
/// file is not installed again.
pub fn unpack_wheel(
    r: &mut Realizer,
    drv: &Derivation,
    scheme: &InstallScheme,
    shebang: &str,
    wheel: &WheelFile,
    bytecode: Option<&Bytecode>,
) -> Result<Component, RealizeError> {
    let filename = wheel.filename.as_str();
    let progress = r.progress;
    let item = r.realize_written(drv, &[], |store, out| {
        let source = &wheel.path;
        if wheel.in_place {
            let found = store.cached_hash(source, "sha256", |_| sha256_file(source))?;
            if found != wheel.sha256 {
                return Err(RealizeError::InputChanged {
                    path: source.clone(),
                    expected: wheel.sha256.clone(),
                    found,
                });
            }
        }
        // The installer reads the distribution's name from the file name.
        let named_dir = out.with_file_name("wheel");
        mkdirs(&named_dir)?;
        let named = named_dir.join(filename);
        std::os::unix::fs::symlink(source, &named).map_err(io_err("linking", &named))?;
        let opts = InstallOptions {
            scheme: scheme.clone(),
            interpreter: shebang.to_string(),
            installer: "envbuild".into(),
            pinned: wheel.pinned,
        };
        let Some(b) = bytecode else {
            return Ok(install_wheel(&named, out, &opts)?.tree);
        };
        // The base's rootfs is assembled once (cached by closure) and
        // shared by every wheel's compile.
        let cache = store.cache_dir("rootfs")?;
        let rootfs = crate::assemble::rootfs(store, b.closure, &cache, progress).map_err(|e| {
            RealizeError::BadItem {
                item: filename.to_string(),
                builder: "unpack-wheel",
                what: format!("the rootfs its bytecode is compiled in could not be assembled: {e}"),
            }
        })?;
        let work = store.scratch("bytecode")?;
        let compiler = Compiler {
            rootfs: &rootfs,
            python: b.python,
            work: work.path(),
        };
        Ok(install_wheel_compiling(&named, out, &opts, &compiler)?.tree)
    })?;
    Ok(Component {
        subdir: "",
        label: format!("wheel {filename}"),
        // The distribution's name: a bump keeps it (a name the wheel's own
        // filename does not parse to keeps the whole name, which still
        // groups stably).
        group_key: format!(
            "wheel {}",
            crate::python::wheel::WheelFilename::parse(filename)
                .map(|w| crate::python::wheel::normalize_name(&w.name))
                .unwrap_or_else(|_| filename.to_string())
        ),
        item,
        overrides: BTreeMap::new(),
        own_layer: false,
        amends: Vec::new(),
    })
}
