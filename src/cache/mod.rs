//! Binary caches in Nix's layout: pushing a closure (`envbuild cache
//! push`), keys (`envbuild cache keygen`), and substitution during a
//! realize. See docs/binary-cache.md.
//!
//! - [`backend`]: `file://DIR`, `http(s)://` (GET, HEAD, PUT through
//!   [`crate::net::Client`]) and `oci://HOST[:PORT]/REPO` ([`oci`]: a
//!   registry repository, through [`crate::registry`]'s sessions), every
//!   read capped.
//! - [`config`]: substituters and trusted keys from the user's
//!   configuration (`ENVBUILD_SUBSTITUTERS`, `ENVBUILD_TRUSTED_PUBLIC_KEYS`,
//!   `$XDG_CONFIG_HOME/envbuild/config.toml`).
//! - [`push`]: narinfos (signed, `CA:`), compressed NARs, realisations.
//! - [`realisation`]: envbuild's signed realisation files.
//! - [`substitute`]: asking substituters, verifying, importing through the
//!   store's NAR reader.
//!
//! The narinfo grammar and Nix's signatures live in the store crate
//! (`envbuild_store::narinfo`, `envbuild_store::signing`).

pub mod backend;
pub mod config;
pub mod error;
pub mod oci;
pub mod push;
pub mod realisation;
pub mod substitute;

pub use backend::Backend;
pub use config::CacheConfig;
pub use error::CacheError;
pub use push::{push, Compression, PushReport};
pub use substitute::Substituters;
