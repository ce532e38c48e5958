//! The Nix ARchive format (NAR), version 1.
//!
//! A NAR is a deterministic serialization of a file system tree: no timestamps,
//! owners or permissions other than one "executable" flag. Grammar (every
//! `str` is a little-endian u64 length, the bytes, then zero padding to a
//! multiple of 8):
//!
//! ```text
//! nar       = str("nix-archive-1") node
//! node      = str("(") str("type") body str(")")
//! body      = str("regular") [str("executable") str("")] str("contents") contents
//!           | str("symlink") str("target") str(target)
//!           | str("directory") entry*
//! entry     = str("entry") str("(") str("name") str(name) str("node") node str(")")
//! contents  = u64(size) bytes padding
//! ```
//!
//! Directory entries appear in bytewise order of their names. A regular file is
//! executable iff its owner's x bit is set (Nix 2.8 rule).
//!
//! [`writer`] streams a NAR out of a directory tree in constant memory (and can
//! lay down a canonical copy of the tree while it reads it); [`reader`] parses a
//! NAR stream and restores it as a tree; [`tree_writer`] writes a new tree
//! whose entries arrive in NAR order and hashes its NAR on the way.

pub mod reader;
pub mod tree_writer;
pub mod writer;

pub use reader::restore;
pub use tree_writer::{nar_order, FileWriter, TreeWriter, WrittenTree};
pub use writer::{dump, dump_and_copy, hash_path, NarHash};

pub(crate) const MAGIC: &str = "nix-archive-1";

/// Fill `token` with `s` as the grammar's `str`: length, bytes, padding
/// (one buffer, so each token costs one write).
pub(crate) fn encode_str(token: &mut Vec<u8>, s: &[u8]) {
    let len = s.len() as u64;
    token.clear();
    token.extend_from_slice(&len.to_le_bytes());
    token.extend_from_slice(s);
    token.resize(token.len() + padding(len), 0);
}

/// Zero bytes needed to pad `len` to a multiple of 8.
pub(crate) fn padding(len: u64) -> usize {
    ((8 - (len % 8)) % 8) as usize
}
