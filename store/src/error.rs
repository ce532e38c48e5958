//! The store crate's errors: one enum per format plus [`StoreError`] for the
//! store itself. Every variant names the input it is about.

use std::path::PathBuf;

/// A nix-base32 string that cannot be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Nixbase32Error {
    #[error("invalid nix-base32 length {length}: no byte string encodes to that many characters")]
    Length { length: usize },
    #[error("invalid nix-base32 character {character:?} at position {position} (expected one of 0-9 a-z without e, o, u, t)")]
    Character { character: char, position: usize },
    #[error("non-canonical nix-base32: the unused high bits of the first character are set")]
    TrailingBits,
}

/// An item name or store path that Nix would refuse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("invalid item name {name:?}: it is empty (expected 1 to 211 characters of A-Z a-z 0-9 + - . _ ? =)")]
    Empty { name: String },
    #[error("invalid item name {name:?}: it is {length} characters long (expected at most 211)")]
    TooLong { name: String, length: usize },
    #[error("invalid item name {name:?}: character {character:?} is not allowed (expected only A-Z a-z 0-9 + - . _ ? =)")]
    Character { name: String, character: char },
    #[error("invalid item name {name:?}: it starts with a period, which Nix does not allow")]
    LeadingPeriod { name: String },
    #[error("invalid store path {path:?}: expected <32 nix-base32 characters>-<name>")]
    Malformed { path: String },
    #[error("invalid store path {path:?}: {source}")]
    Digest {
        path: String,
        #[source]
        source: Nixbase32Error,
    },
}

/// Errors from reading or writing NAR archives.
#[derive(Debug, thiserror::Error)]
pub enum NarError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is a {kind}; a store item may hold only regular files, directories and symlinks"
    )]
    UnsupportedFileType { path: PathBuf, kind: &'static str },
    #[error("{path}: file name {name:?} cannot be stored in a NAR (expected a name other than \"\", \".\", \"..\" and without '/' or NUL)")]
    BadEntryName { path: PathBuf, name: String },
    #[error("{path} changed while it was being read (size was {expected} bytes, read {found})")]
    Changed {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("malformed NAR at byte {offset}: expected {expected}, found {found}")]
    Malformed {
        offset: u64,
        expected: String,
        found: String,
    },
    #[error("cannot write NAR output: {0}")]
    Write(#[source] std::io::Error),
    #[error("tree {root}: cannot write {path:?}: {reason}")]
    TreeOrder {
        root: PathBuf,
        path: String,
        reason: String,
    },
}

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store root {root}: {action} failed: {source}")]
    Root {
        root: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("store database {path}: {source}")]
    Database {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("store database {path} has schema version {found}; this envbuild understands up to {expected}")]
    SchemaVersion {
        path: PathBuf,
        expected: i64,
        found: i64,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot add {path}: it does not exist")]
    Missing { path: PathBuf },
    #[error(transparent)]
    Nar(#[from] NarError),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("{path} is not an item of the store at {root} (expected <root>/<hash>-<name>, /nix/store/<hash>-<name> or <hash>-<name>)")]
    NotInStore { path: String, root: PathBuf },
    #[error("{path} is not a valid (registered) item of the store at {root}")]
    NotValid { path: String, root: PathBuf },
    #[error("reference {reference} of {item} is not a valid item of the store")]
    MissingReference { item: String, reference: String },
    #[error(
        "{item}: the NAR given for it has {what} {found}, expected {expected}; nothing was added"
    )]
    ImportMismatch {
        item: String,
        what: &'static str,
        expected: String,
        found: String,
    },
    #[error("root {name:?} does not exist (see `envbuild store root list`)")]
    NoSuchRoot { name: String },
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { path, source }
    }
}

/// A `.narinfo` that does not follow the grammar in [`crate::narinfo`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NarInfoError {
    #[error("narinfo line {line}: {found:?} is not `Key: value`")]
    Line { line: usize, found: String },
    #[error("narinfo: the field {field} is missing (expected StorePath, URL, NarHash and NarSize at least)")]
    Missing { field: &'static str },
    #[error("narinfo: the field {field} appears twice")]
    Duplicate { field: &'static str },
    #[error("narinfo field {field}: {found:?} is not {expected}")]
    Value {
        field: &'static str,
        expected: &'static str,
        found: String,
    },
}

/// A key, signature or signed record that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigningError {
    #[error("{what} {found:?} is not `NAME:BASE64` (expected {expected})")]
    Format {
        what: &'static str,
        expected: &'static str,
        found: String,
    },
    #[error("secret key {name:?}: its public half does not match its seed (expected the 64 bytes nix-store --generate-binary-cache-key writes)")]
    InconsistentKey { name: String },
}
