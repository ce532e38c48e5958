//! Python: installing wheels (and, later, resolving and locking them).

pub mod core_metadata;
pub mod index_config;
pub mod pep508;
pub mod pylock;
pub mod requirements_txt;
pub mod resolve;
pub mod sdist;
pub mod wheel;
