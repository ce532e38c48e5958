//! Debian packages without dpkg: deb822 control data, versions, relationship
//! fields and .deb unpacking, the library part of a Debian base built from
//! the signed archive (DESIGN.md §6). Mirrors, signatures and dependency
//! closure live elsewhere; nothing here touches the network.
//!
//! - [`control`]: deb822 paragraphs (`Packages`, `Release` bodies, `status`,
//!   a .deb's `control`).
//! - [`version`]: Debian versions, compared as Policy 5.6.12 and dpkg do.
//! - [`relation`]: `Depends`-style fields and [`relation::satisfies`].
//! - [`deb`]: reading a .deb and unpacking its data safely.
//! - [`error`]: the one error type, [`Error`].

pub mod archive;
pub mod control;
pub mod deb;
pub mod error;
pub mod relation;
pub mod version;

pub use control::{Field, Paragraph};
pub use deb::{extract, read_control, DebControl, Extracted};
pub use error::{Error, Result};
pub use relation::{parse_relations, satisfies, Dependency, Op, Relation};
pub use version::Version;
