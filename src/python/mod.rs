//! Python: installing wheels (and, later, resolving and locking them).

pub mod resolve;
pub mod wheel;
