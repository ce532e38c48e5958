//! Python: installing wheels (and, later, resolving and locking them).

pub mod index_config;
pub mod resolve;
pub mod sdist;
pub mod wheel;
