//! The store roots a realize keeps for its spec, and their names (spelled
//! here and nowhere else).
//!
//! Each root is guarded by the spec file: it lives while that file exists,
//! so `envbuild store gc` collects what a deleted spec kept.
//!
//! - `spec:<path>`: the image (and through its references every layer and
//!   the config);
//! - `spec:<path>:volume:<name>`: a model kept out of the image;
//! - `spec:<path>:inputs`: an item `<name>-inputs` that lists and refers to
//!   every input item (fetched .debs, wheels, sdists, model files; local
//!   paths), so that after a gc the spec still realizes `--offline`.
//!   `gc --keep-fetched=false` does not count these roots
//!   ([`is_inputs_root`]).

use std::path::Path;

use envbuild_store::{Root, Store, StoreError, StorePath};

use super::Realized;

const SPEC: &str = "spec:";
const VOLUME: &str = ":volume:";
const INPUTS: &str = ":inputs";

/// Keep what `realized` made for the spec at `spec_path` (absolute) alive
/// while that file exists.
pub fn keep(
    store: &mut Store,
    spec_path: &Path,
    name: &str,
    realized: &Realized,
) -> Result<(), StoreError> {
    let spec = format!("{SPEC}{}", spec_path.display());
    store.add_guarded_root(&spec, &realized.image_item, spec_path)?;
    for v in &realized.volumes {
        store.add_guarded_root(&format!("{spec}{VOLUME}{}", v.name), &v.item, spec_path)?;
    }
    if !realized.inputs.is_empty() {
        let item = inputs_item(store, name, &realized.inputs)?;
        store.add_guarded_root(&format!("{spec}{INPUTS}"), &item, spec_path)?;
    }
    Ok(())
}

/// Whether `root` keeps a spec's inputs (not its image).
pub fn is_inputs_root(root: &Root) -> bool {
    root.name.starts_with(SPEC) && root.name.ends_with(INPUTS)
}

/// An item listing `inputs` (one store path a line) that refers to them.
fn inputs_item(
    store: &mut Store,
    name: &str,
    inputs: &[StorePath],
) -> Result<StorePath, StoreError> {
    let mut text = String::new();
    for p in inputs {
        text.push_str(&p.to_absolute());
        text.push('\n');
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, source }
    };
    let dir = tempfile::tempdir().map_err(io(&std::env::temp_dir()))?;
    let file = dir.path().join("inputs");
    std::fs::write(&file, text).map_err(io(&file))?;
    Ok(store
        .add_path_with_references(&file, &format!("{name}-inputs"), inputs, None)?
        .path)
}
