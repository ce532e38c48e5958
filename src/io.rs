//! Small I/O helpers shared by the stages.

use std::io::{self, Read};

/// Read until `buf` is full or the input ends; returns how many bytes were
/// read (less than `buf.len()` only at the end of the input).
pub fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
