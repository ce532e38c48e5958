//! Python: resolving and locking distributions, installing wheels, compiling
//! their bytecode, building sdists.

pub mod bytecode;
pub mod core_metadata;
pub mod index_config;
pub mod pep508;
pub mod pylock;
pub mod requirements_txt;
pub mod resolve;
pub mod sdist;
pub mod wheel;
