//! Python: installing wheels (and, later, resolving and locking them).

pub mod wheel;
