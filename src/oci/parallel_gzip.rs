//! gzip on all cores, the bytes independent of how many (pigz's method).
//!
//! The input is cut into blocks of [`BLOCK`] bytes. Each block is deflated
//! on its own (raw deflate, zlib-rs through flate2) with the last
//! [`DICTIONARY`] bytes of the block before it as the preset dictionary,
//! and ended with a sync flush (an empty stored block, so it ends on a byte
//! boundary); the block after the last full one (the rest, possibly empty)
//! is the final block. The deflate streams concatenated, between a fixed
//! 10-byte header (no name, no comment, mtime 0, XFL 0, OS 255) and the
//! CRC-32 and length of the whole input, are one gzip member that any
//! gunzip reads.
//!
//! A block's bytes depend only on its data, the dictionary and the level:
//! a full block is always ended with a sync flush, even when no more data
//! follows, so the output is the same whatever the number of threads and
//! however the input is written. Blocks are compressed in batches of
//! [`BLOCKS_PER_THREAD`] per thread, and written in order.

use std::io::{self, Write};

use flate2::{Compress, FlushCompress, Status};

/// The size of one independently compressed block. Part of the output's
/// contract (and of the compression identity).
pub const BLOCK: usize = 1 << 20;
/// How much of the previous block primes the next (deflate's window).
pub const DICTIONARY: usize = 32 << 10;
/// Blocks handed to each thread per batch.
const BLOCKS_PER_THREAD: usize = 4;

/// The gzip header: magic, deflate, no flags, mtime 0, XFL 0, OS 255.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// A gzip writer compressing on `threads` threads.
pub struct ParallelGzip<W: Write> {
    out: W,
    level: u32,
    threads: usize,
    /// Full blocks not yet compressed, and the block being filled.
    full: Vec<Vec<u8>>,
    current: Vec<u8>,
    /// The tail of the last block compressed (the next one's dictionary).
    tail: Vec<u8>,
    crc: flate2::Crc,
}

impl<W: Write> ParallelGzip<W> {
    pub fn new(mut out: W, level: u32, threads: u32) -> io::Result<Self> {
        out.write_all(&HEADER)?;
        Ok(ParallelGzip {
            out,
            level,
            threads: threads.max(1) as usize,
            full: Vec::new(),
            current: Vec::with_capacity(BLOCK),
            tail: Vec::new(),
            crc: flate2::Crc::new(),
        })
    }

    /// Compress the full blocks waiting and write them in order.
    fn compress_full(&mut self) -> io::Result<()> {
        if self.full.is_empty() {
            return Ok(());
        }
        let blocks = std::mem::take(&mut self.full);
        // Each block's dictionary: the tail of the block before it.
        let dicts: Vec<&[u8]> = std::iter::once(self.tail.as_slice())
            .chain(
                blocks
                    .iter()
                    .map(|b| &b[b.len() - DICTIONARY.min(b.len())..]),
            )
            .take(blocks.len())
            .collect();
        let level = self.level;
        let per = blocks.len().div_ceil(self.threads);
        let outputs: Vec<io::Result<Vec<u8>>> = std::thread::scope(|s| {
            let handles: Vec<_> = blocks
                .chunks(per)
                .zip(dicts.chunks(per))
                .map(|(bs, ds)| {
                    s.spawn(move || {
                        bs.iter()
                            .zip(ds)
                            .map(|(b, d)| deflate_block(level, d, b, false))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("a compression thread panicked"))
                .collect()
        });
        for o in outputs {
            self.out.write_all(&o?)?;
        }
        let last = blocks.last().expect("not empty");
        self.tail = last[last.len() - DICTIONARY.min(last.len())..].to_vec();
        Ok(())
    }

    /// The final block, the trailer; returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.compress_full()?;
        let last = deflate_block(self.level, &self.tail, &self.current, true)?;
        self.out.write_all(&last)?;
        self.out.write_all(&self.crc.sum().to_le_bytes())?;
        self.out.write_all(&self.crc.amount().to_le_bytes())?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.crc.update(buf);
        let mut rest = buf;
        while !rest.is_empty() {
            let take = (BLOCK - self.current.len()).min(rest.len());
            self.current.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.current.len() == BLOCK {
                let block = std::mem::replace(&mut self.current, Vec::with_capacity(BLOCK));
                self.full.push(block);
                if self.full.len() >= self.threads * BLOCKS_PER_THREAD {
                    self.compress_full()?;
                }
            }
        }
        Ok(buf.len())
    }

    /// Compressed blocks are written as they are made; the block being
    /// filled stays (flushing it would change the bytes).
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// One block as raw deflate, primed with `dict`: ended by a sync flush, or
/// the final block when `last`.
fn deflate_block(level: u32, dict: &[u8], data: &[u8], last: bool) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(flate2::Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(data.len() + data.len() / 16 + 1024);
    loop {
        let consumed = c.total_in() as usize;
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = c.total_in() as usize == data.len();
        let room_left = out.len() < out.capacity();
        match status {
            Status::StreamEnd => break,
            _ if !last && all_in && room_left => break,
            _ => out.reserve(out.capacity().max(64 << 10)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gzip(data: &[u8], threads: u32, chunk: usize) -> Vec<u8> {
        let mut g = ParallelGzip::new(Vec::new(), 6, threads).unwrap();
        for c in data.chunks(chunk.max(1)) {
            g.write_all(c).unwrap();
        }
        g.finish().unwrap()
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn sample(len: usize) -> Vec<u8> {
        (0u64..)
            .flat_map(|i| format!("row {} {}\n", i, (i * 7919) % 1013).into_bytes())
            .take(len)
            .collect()
    }

    #[test]
    fn the_bytes_do_not_depend_on_threads_or_write_sizes_and_gunzip_reads_them() {
        for len in [0, 1, 1000, BLOCK, BLOCK + 1, 3 * BLOCK, 9 * BLOCK + 12345] {
            let data = sample(len);
            let one = gzip(&data, 1, 1 << 16);
            assert_eq!(gunzip(&one), data, "round trip, {len} bytes");
            assert_eq!(gzip(&data, 4, 1 << 16), one, "4 threads, {len} bytes");
            assert_eq!(
                gzip(&data, 3, 777),
                one,
                "3 threads, small writes, {len} bytes"
            );
            assert_eq!(&one[..10], &HEADER);
        }
    }

    #[test]
    fn the_system_gunzip_reads_the_stream() {
        let data = sample(5 * BLOCK + 99);
        let gz = gzip(&data, 2, 1 << 20);
        let mut child = std::process::Command::new("gzip")
            .args(["-d", "-c"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("gzip is installed");
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&gz).unwrap());
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, data);
    }

    #[test]
    fn the_dictionary_keeps_the_ratio_near_one_stream() {
        let data = sample(8 * BLOCK);
        let ours = gzip(&data, 2, 1 << 20).len();
        let mut one = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        one.write_all(&data).unwrap();
        let single = one.finish().unwrap().len();
        assert!(
            (ours as f64) < single as f64 * 1.02,
            "blocks {ours} vs one stream {single}"
        );
    }
}
