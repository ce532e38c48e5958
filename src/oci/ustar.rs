//! A minimal, deterministic POSIX tar (pax/ustar) header encoder, shared by
//! layer tarballs and the outer image archive.
//!
//! Grammar of what we emit (POSIX.1-2001 "pax" interchange format):
//!
//! ```text
//! archive   = entry* end
//! entry     = [pax-entry] ustar-header data pad
//! pax-entry = ustar-header(typeflag 'x', name "././@PaxHeader") records pad
//! records   = record*            ; "<len> <key>=<value>\n", keys in bytewise order
//! end       = 1024 zero bytes    ; two zero blocks
//! ```
//!
//! Header fields: `magic` "ustar\0", `version` "00", numeric fields as
//! zero-padded octal terminated by NUL, checksum as 6 octal digits, NUL,
//! space; `uname`/`gname` empty; `devmajor`/`devminor` "0000000\0".
//! A path goes into `name` when it fits in 100 bytes, else it is split at the
//! last '/' that leaves a `prefix` of at most 155 bytes and a non-empty `name`
//! of at most 100 bytes; when no split fits, a pax `path` record carries it
//! (and `name` holds its first 100 bytes). Link targets over 100 bytes go into
//! a pax `linkpath` record. Sizes of 8 GiB and more, uids/gids from 2^21
//! and mtimes from 2^33 go into pax `size`/`uid`/`gid`/`mtime` records (the
//! ustar field then holds 0). Names that are not UTF-8 add `hdrcharset=BINARY`.
//! Never written: GNU long names, sparse entries, hardlinks, atime, ctime.

use std::collections::BTreeMap;
use std::io::{self, Write};

pub(crate) const BLOCK: usize = 512;

/// The kind of a tar entry we write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
}

/// One entry's metadata. `path` has no leading or trailing slash; a
/// directory gets its trailing slash here.
pub(crate) struct Header<'a> {
    pub path: &'a [u8],
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: u64,
    pub link: &'a [u8],
}

const NAME_LEN: usize = 100;
const PREFIX_LEN: usize = 155;
const PAX_NAME: &[u8] = b"././@PaxHeader";

/// Largest value an octal field of `len` bytes (len-1 digits + NUL) holds.
fn octal_max(len: usize) -> u64 {
    (1u64 << (3 * (len as u32 - 1))) - 1
}

fn put_octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    debug_assert_eq!(s.len(), digits);
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
}

/// Splits `path` into (prefix, name) for the ustar header, or None.
fn split_ustar(path: &[u8]) -> Option<(&[u8], &[u8])> {
    if path.len() <= NAME_LEN {
        return Some((&[], path));
    }
    // Candidate slashes: not the last byte (a directory's trailing slash).
    let limit = (PREFIX_LEN + 1).min(path.len() - 1);
    let i = path[..limit].iter().rposition(|&b| b == b'/')?;
    let (prefix, name) = (&path[..i], &path[i + 1..]);
    (!name.is_empty() && name.len() <= NAME_LEN && prefix.len() <= PREFIX_LEN)
        .then_some((prefix, name))
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    // "<len> <key>=<value>\n" where <len> counts the whole record.
    let rest = 1 + key.len() + 1 + value.len() + 1;
    let mut len = rest + 1;
    while len.to_string().len() + rest != len {
        len = len.to_string().len() + rest;
    }
    let mut rec = Vec::with_capacity(len);
    rec.extend_from_slice(len.to_string().as_bytes());
    rec.push(b' ');
    rec.extend_from_slice(key.as_bytes());
    rec.push(b'=');
    rec.extend_from_slice(value);
    rec.push(b'\n');
    debug_assert_eq!(rec.len(), len);
    rec
}

#[allow(clippy::too_many_arguments)]
fn ustar_block(
    prefix: &[u8],
    name: &[u8],
    typeflag: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    link: &[u8],
) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    b[..name.len()].copy_from_slice(name);
    put_octal(&mut b[100..108], u64::from(mode));
    put_octal(&mut b[108..116], uid);
    put_octal(&mut b[116..124], gid);
    put_octal(&mut b[124..136], size);
    put_octal(&mut b[136..148], mtime);
    b[156] = typeflag;
    b[157..157 + link.len()].copy_from_slice(link);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    // uname [265..297] and gname [297..329] stay empty.
    put_octal(&mut b[329..337], 0);
    put_octal(&mut b[337..345], 0);
    b[345..345 + prefix.len()].copy_from_slice(prefix);
    b[148..156].copy_from_slice(b"        ");
    let sum: u64 = b.iter().map(|&x| u64::from(x)).sum();
    let chk = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(chk.as_bytes());
    b
}

/// Writes the header block(s) for one entry: a pax extended header first
/// when some value does not fit ustar.
pub(crate) fn write_header(w: &mut impl Write, h: &Header<'_>) -> io::Result<()> {
    let mut full = h.path.to_vec();
    if h.kind == Kind::Dir && !full.is_empty() {
        full.push(b'/');
    }
    let mut pax: BTreeMap<&'static str, Vec<u8>> = BTreeMap::new();
    let (prefix, name) = match split_ustar(&full) {
        Some(split) => split,
        None => {
            pax.insert("path", full.clone());
            (&[][..], &full[..NAME_LEN])
        }
    };
    let link = if h.link.len() > NAME_LEN {
        pax.insert("linkpath", h.link.to_vec());
        &h.link[..NAME_LEN]
    } else {
        h.link
    };
    let mut fit = |key: &'static str, value: u64, len: usize| {
        if value > octal_max(len) {
            pax.insert(key, value.to_string().into_bytes());
            0
        } else {
            value
        }
    };
    let size = fit("size", h.size, 12);
    let uid = fit("uid", h.uid, 8);
    let gid = fit("gid", h.gid, 8);
    let mtime = fit("mtime", h.mtime, 12);
    if (pax.contains_key("path") && std::str::from_utf8(&full).is_err())
        || (pax.contains_key("linkpath") && std::str::from_utf8(h.link).is_err())
    {
        pax.insert("hdrcharset", b"BINARY".to_vec());
    }
    if !pax.is_empty() {
        let records: Vec<u8> = pax.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
        let pax_mtime = h.mtime.min(octal_max(12));
        let block = ustar_block(
            &[],
            PAX_NAME,
            b'x',
            0o644,
            0,
            0,
            records.len() as u64,
            pax_mtime,
            &[],
        );
        w.write_all(&block)?;
        w.write_all(&records)?;
        write_padding(w, records.len() as u64)?;
    }
    let typeflag = match h.kind {
        Kind::File => b'0',
        Kind::Dir => b'5',
        Kind::Symlink => b'2',
    };
    w.write_all(&ustar_block(
        prefix, name, typeflag, h.mode, uid, gid, size, mtime, link,
    ))
}

/// Zero bytes that pad `size` bytes of data to a whole block.
pub(crate) fn write_padding(w: &mut impl Write, size: u64) -> io::Result<()> {
    let rem = (size % BLOCK as u64) as usize;
    if rem != 0 {
        w.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
    }
    Ok(())
}

/// The end-of-archive marker: two zero blocks.
pub(crate) fn write_end(w: &mut impl Write) -> io::Result<()> {
    w.write_all(&[0u8; 2 * BLOCK])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(h: &Header<'_>) -> Vec<u8> {
        let mut v = Vec::new();
        write_header(&mut v, h).unwrap();
        v
    }

    fn file(path: &[u8]) -> Header<'_> {
        Header {
            path,
            kind: Kind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 1,
            link: b"",
        }
    }

    #[test]
    fn pax_record_lengths() {
        assert_eq!(pax_record("path", b"abc"), b"12 path=abc\n");
        // A record whose length crosses a power of ten.
        // No record can be 100 bytes long: 98 bytes + "100" would be 101.
        for (value_len, want) in [(90, "99"), (91, "101"), (92, "102")] {
            let r = pax_record("path", &vec![b'a'; value_len]);
            assert_eq!(r.len().to_string(), want);
            assert!(r.starts_with(format!("{want} path=").as_bytes()));
        }
    }

    #[test]
    fn short_name_is_plain_ustar() {
        let b = one(&file(b"usr/bin/x"));
        assert_eq!(b.len(), BLOCK);
        assert_eq!(&b[..9], b"usr/bin/x");
        assert_eq!(&b[257..265], b"ustar\x0000");
        assert_eq!(&b[100..108], b"0000644\0");
        assert_eq!(&b[136..148], b"00000000001\0");
        // checksum verifies
        let mut c = b.clone();
        c[148..156].copy_from_slice(b"        ");
        let sum: u64 = c.iter().map(|&x| u64::from(x)).sum();
        assert_eq!(&b[148..156], format!("{sum:06o}\0 ").as_bytes());
    }

    #[test]
    fn split_into_prefix_and_name() {
        let dir = "d".repeat(120);
        let path = format!("{dir}/file");
        let b = one(&file(path.as_bytes()));
        assert_eq!(b.len(), BLOCK, "no pax header needed");
        assert_eq!(&b[..5], b"file\0");
        assert_eq!(&b[345..345 + 120], dir.as_bytes());
    }

    #[test]
    fn long_single_component_uses_pax() {
        let name = "n".repeat(150);
        let b = one(&file(name.as_bytes()));
        assert_eq!(b.len(), 3 * BLOCK);
        assert_eq!(&b[..14], PAX_NAME);
        assert_eq!(b[156], b'x');
        assert!(b[BLOCK..].starts_with(format!("160 path={name}\n").as_bytes()));
    }

    #[test]
    fn big_size_uses_pax() {
        let mut h = file(b"big");
        h.size = 8 << 30;
        let b = one(&h);
        assert!(b[BLOCK..].starts_with(b"19 size=8589934592\n"));
        assert_eq!(&b[2 * BLOCK + 124..2 * BLOCK + 136], b"00000000000\0");
        h.size = (8 << 30) - 1;
        assert_eq!(one(&h).len(), BLOCK);
    }
}
