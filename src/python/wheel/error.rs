//! Errors from installing a wheel. Every variant names the wheel file (its
//! file name, as the lock records it) and, where there is one, the archive
//! member or installed path it is about, with the expected and the found value.

use std::io;

/// Why a wheel could not be installed. The destination directory may hold a
/// partial install afterwards; the caller removes it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WheelError {
    #[error("wheel {wheel}: the file name is not a wheel name (expected {{name}}-{{version}}(-{{build}})?-{{python}}-{{abi}}-{{platform}}.whl): {reason}")]
    Filename { wheel: String, reason: String },

    #[error("wheel {wheel}: invalid install option {option} = {value:?}: {reason}")]
    Options {
        wheel: String,
        option: &'static str,
        value: String,
        reason: &'static str,
    },

    #[error("wheel {wheel}: the destination {dest} exists (expected a path that does not exist yet: the installed tree is created there)")]
    DestinationExists { wheel: String, dest: String },

    #[error("wheel {wheel}: writing the installed tree failed: {source}")]
    Tree {
        wheel: String,
        #[source]
        source: envbuild_store::NarError,
    },

    #[error("wheel {wheel}: {action} failed: {source}")]
    Io {
        wheel: String,
        action: String,
        #[source]
        source: io::Error,
    },

    #[error("wheel {wheel}: not a readable zip archive: {source}")]
    Archive {
        wheel: String,
        #[source]
        source: zip::result::ZipError,
    },

    #[error("wheel {wheel}: cannot read member {member}: {source}")]
    Read {
        wheel: String,
        member: String,
        #[source]
        source: io::Error,
    },

    #[error(
        "wheel {wheel}: the zip central directory {found} (expected one entry per distinct name)"
    )]
    CentralDirectory { wheel: String, found: String },

    #[error("wheel {wheel}: member {member} appears more than once in the archive (expected every name once)")]
    DuplicateMember { wheel: String, member: String },

    #[error("wheel {wheel}: refusing member {member:?}: {reason}")]
    UnsafePath {
        wheel: String,
        member: String,
        reason: &'static str,
    },

    #[error("wheel {wheel}: refusing member {member}: it is a symbolic link (expected only regular files and directories)")]
    Symlink { wheel: String, member: String },

    #[error("wheel {wheel}: expected exactly one top-level .dist-info directory for {expected}, found {found}")]
    DistInfo {
        wheel: String,
        expected: String,
        found: String,
    },

    #[error("wheel {wheel}: required member {member} is missing")]
    MissingMetadata { wheel: String, member: String },

    #[error("wheel {wheel}: member {member} is malformed: {reason}")]
    Metadata {
        wheel: String,
        member: String,
        reason: String,
    },

    #[error("wheel {wheel}: {member} has Wheel-Version {found} (expected 1.x)")]
    WheelVersion {
        wheel: String,
        member: String,
        found: String,
    },

    #[error("wheel {wheel}: RECORD says {member} has {expected}, the archive holds {found}")]
    HashMismatch {
        wheel: String,
        member: String,
        expected: String,
        found: String,
    },

    #[error("wheel {wheel}: {source}")]
    Bytecode {
        wheel: String,
        #[source]
        source: crate::python::bytecode::BytecodeError,
    },

    #[error("wheel {wheel}: member {member} is not listed in RECORD (expected every member but RECORD, RECORD.jws and RECORD.p7s to be listed with its sha256 and size)")]
    NotInRecord { wheel: String, member: String },

    #[error("wheel {wheel}: RECORD lists {member} with {found} (expected sha256=<urlsafe base64> and a size in bytes)")]
    RecordRowIncomplete {
        wheel: String,
        member: String,
        found: String,
    },

    #[error(
        "wheel {wheel}: RECORD lists {member} with {expected}, but the archive holds no such file"
    )]
    MissingFromArchive {
        wheel: String,
        member: String,
        expected: String,
    },

    #[error("wheel {wheel}: member {member} is under the unknown .data key {key:?} (expected one of purelib, platlib, scripts, data, headers)")]
    UnknownDataKey {
        wheel: String,
        member: String,
        key: String,
    },

    #[error("wheel {wheel}: member {member} is not in a scheme directory (expected {expected})")]
    StrayData {
        wheel: String,
        member: String,
        expected: String,
    },

    #[error("wheel {wheel}: {path} would be written twice, from {first} and from {second}")]
    Conflict {
        wheel: String,
        path: String,
        first: String,
        second: String,
    },

    #[error("wheel {wheel}: entry point {name:?} = {value:?} in [{group}] of entry_points.txt is invalid: {reason}")]
    EntryPoint {
        wheel: String,
        group: String,
        name: String,
        value: String,
        reason: &'static str,
    },

    #[error("wheel {wheel}: script {member}: {reason}")]
    Script {
        wheel: String,
        member: String,
        reason: &'static str,
    },
}
