//! OCI images: deterministic layer tarballs, image JSON, archive export.
//!
//! The same inputs give the same bytes on any machine, any day: a layer
//! blob depends only on its sources' file types, owner-x bits, contents and
//! symlink targets, the caller's overrides, the mtime (SOURCE_DATE_EPOCH)
//! and the compressor identity; config, manifest and index are canonical
//! JSON; the export archive is a deterministic tar around them.
//!
//! - [`layer`]: [`write_layer`] turns ordered [`LayerSource`]s into one tar
//!   (bytewise path order, explicit parents, uid/gid 0, modes 0755/0644/0777
//!   unless overridden, fixed mtime, PAX for long names and >= 8 GiB files,
//!   conflicts between sources are errors) and compresses it in the same
//!   pass, returning the DiffID, the blob digest and size ([`LayerBlob`]).
//! - [`compression`]: [`Compression`] (zstd by default, gzip, none) with a
//!   stable identity string (library, version, level, thread mode).
//! - [`image`]: [`ImageConfig`] → config + manifest JSON ([`build_image`]
//!   gives an [`Image`]; its manifest digest is the image's identity).
//! - [`archive`]: [`write_oci_archive`] (one tar that is both an OCI layout
//!   and a docker archive) and [`write_oci_dir`].
//! - [`json`]: canonical JSON (sorted keys, no whitespace).
//!
//! zstd layers are not read by Docker engines before 23.0 (`docker load`
//! fails with "archive/tar: invalid tar header"; Debian bookworm ships
//! 20.10) nor by umoci before 0.5 ("blob is not correct mediatype"; bookworm
//! ships 0.4.7). podman and skopeo read them. Build the layers with
//! [`Compression::Gzip`] for those consumers.

pub mod archive;
pub mod compression;
pub mod error;
pub mod image;
pub mod json;
pub mod layer;
pub mod parallel_gzip;
mod ustar;

#[cfg(test)]
pub(crate) mod testutil;

pub use archive::{write_oci_archive, write_oci_archive_file, write_oci_dir};
pub use compression::Compression;
pub use error::OciError;
pub use image::{build_image, BaseRuntime, Descriptor, HistoryEntry, Image, ImageConfig};
pub use layer::{write_layer, write_layer_to, LayerBlob, LayerSource, PathOverride};
