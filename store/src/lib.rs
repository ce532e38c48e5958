//! envbuild's store: a hash-addressed store of immutable items whose
//! identities are the Nix content-addressed store paths of their contents.
//!
//! The crate knows nothing about Python, Debian or OCI. Its modules, one per
//! format or concern:
//!
//! - [`nixbase32`]: Nix's base-32 encoding.
//! - [`nar`]: the NAR archive format (streaming writer, reader/restorer).
//! - [`store_path`]: store-path computation and name validation.
//! - [`canonical`]: what an item looks like on disk.
//! - [`store`]: adding, registering, verifying, collecting garbage.
//! - [`hash_cache`]: hashes of paths outside the store, keyed by `lstat`.
//! - [`narinfo`]: Nix binary caches' `.narinfo` files and their fingerprint.
//! - [`signing`]: ed25519 keys and signatures in Nix's format.
//! - `temp_roots`: what running processes use, kept by `gc`.

pub mod canonical;
mod db;
pub mod error;
pub mod hash_cache;
pub mod lock;
pub mod nar;
pub mod narinfo;
pub mod nixbase32;
pub mod signing;
pub mod store;
pub mod store_path;
mod temp_roots;

pub use db::{PathInfo, Root};
pub use error::{NameError, NarError, NarInfoError, Nixbase32Error, SigningError, StoreError};
pub use nar::NarHash;
pub use store::{
    default_root, AddedItem, ExpectedItem, GcOptions, GcReport, PreparedOutput, RestoredNar,
    Scratch, Store, VerifyProblem, VerifyReport, WriteBehind,
};
pub use store_path::{FileIngestion, HashAlgo, StorePath, STORE_DIR};
