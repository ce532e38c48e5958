//! Errors of the Debian library. Every variant names where the problem is:
//! the input's label and line for deb822 text, the text for versions and
//! relations, the .deb plus the ar member and tar entry for packages.

use std::io;

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// deb822 text that does not follow the grammar.
    #[error("{label}:{line}: expected {expected}, found {found}")]
    Syntax {
        label: String,
        line: usize,
        expected: String,
        found: String,
    },

    /// The same field twice in one paragraph.
    #[error("{label}:{line}: duplicate field `{field}` (first given at line {first_line})")]
    DuplicateField {
        label: String,
        line: usize,
        field: String,
        first_line: usize,
    },

    /// Reading deb822 text failed.
    #[error("{label}: cannot read: {source}")]
    Read {
        label: String,
        #[source]
        source: io::Error,
    },

    /// A version string outside Debian Policy 5.6.12.
    #[error("invalid version `{version}`: {reason}")]
    Version { version: String, reason: String },

    /// A relationship field (Depends, Pre-Depends, ...) outside Policy 7.1.
    #[error("invalid relationship field at byte {position} of `{input}`: expected {expected}, found {found}")]
    Relation {
        input: String,
        position: usize,
        expected: String,
        found: String,
    },

    /// A field of a deb822 paragraph whose value does not parse.
    #[error("{label}:{line}: field `{field}`: {source}")]
    Field {
        label: String,
        line: usize,
        field: String,
        #[source]
        source: Box<Error>,
    },

    /// A .deb whose ar structure or members are not what deb(5) says.
    #[error("{deb}: {reason}")]
    DebFormat { deb: String, reason: String },

    /// A problem inside one ar member of a .deb (not tied to one tar entry).
    #[error("{deb}: member `{member}`: {reason}")]
    Member {
        deb: String,
        member: String,
        reason: String,
    },

    /// Reading the .deb or one of its members failed.
    #[error("{deb}: member `{member}`: {source}")]
    MemberIo {
        deb: String,
        member: String,
        #[source]
        source: io::Error,
    },

    /// A tar entry refused as unsafe or malformed (nothing is written for it).
    #[error("{deb}: member `{member}`: entry `{entry}`: {reason}")]
    Entry {
        deb: String,
        member: String,
        entry: String,
        reason: String,
    },

    /// Reading or writing one tar entry failed.
    #[error("{deb}: member `{member}`: entry `{entry}`: {source}")]
    EntryIo {
        deb: String,
        member: String,
        entry: String,
        #[source]
        source: io::Error,
    },

    /// Opening the .deb or the destination failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}
