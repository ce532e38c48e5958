//! envbuild: a TOML spec locked to content hashes, realized into a
//! Nix-compatible store, assembled into a rootfs or an OCI image.
//!
//! The modules follow the pipeline (docs/architecture.md):
//! spec → lock → (sources) → plan → realize → assemble → export.

pub mod assemble;
pub mod cache;
pub mod check;
pub mod debian;
pub mod export;
pub mod fetch;
pub mod init;
pub mod io;
pub mod lock;
pub mod model;
pub mod net;
pub mod oci;
pub mod plan;
pub mod progress;
pub mod python;
pub mod realize;
pub mod registry;
pub mod sandbox;
pub mod shell;
pub mod sources;
pub mod spec;
pub mod unpack;
pub mod workers;
