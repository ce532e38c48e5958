//! Layer compression: zstd (default), gzip, or none, each with a stable
//! identity string that goes into a layer's derivation.
//!
//! Fixed parameters (changing any of them changes output bytes, so it must
//! also change [`Compression::identity`]):
//! - input: fed to the compressor in [`FEED_CHUNK`] pieces;
//! - zstd: libzstd's multithreaded mode (at least one worker), one frame,
//!   no content size in the frame header, no dictionary id, content checksum
//!   on (xxhash64, so `zstd -t` can verify a blob). In that mode libzstd cuts
//!   the input into jobs by size alone, so the bytes are the same whatever
//!   the number of workers ([`compression_threads`]: one per core, or
//!   `ENVBUILD_COMPRESS_THREADS`); they differ from its single-threaded
//!   mode's, hence the `-mt` in the identity;
//! - gzip: one member of independently deflated 1 MiB blocks, each primed
//!   with the previous block's last 32 KiB, compressed on all cores
//!   ([`super::parallel_gzip`], pigz's method: the bytes do not depend on the
//!   thread count), no file name, no comment, no extra field, mtime 0 and OS
//!   byte 255 ("unknown", as Go's compress/gzip writes); flate2's backend is
//!   zlib-rs (see [`FLATE2_BACKEND`]).
//!
//! Identity strings: `zstd-<libzstd version>-level<N>-mt`,
//! `gzip-<flate2 version>-<backend>-<backend version>-level<N>-blocks1m`, `none`.

use std::io::{self, Write};

use sha2::{Digest, Sha256};

use super::error::OciError;
use super::parallel_gzip::ParallelGzip;

/// The flate2 release in Cargo.lock (checked by a test).
pub const FLATE2_VERSION: &str = "1.1.11";
/// flate2's compression backend and its release in Cargo.lock. flate2 picks
/// its backend by cargo features; zlib-rs is enabled today through `zip`'s
/// `deflate` feature, so dropping `zip` would silently switch to
/// miniz_oxide. The golden-digest test catches such a switch.
pub const FLATE2_BACKEND: &str = "zlib-rs-0.6.8";

/// OCI media type of an uncompressed layer.
pub const MEDIA_TYPE_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI media type of a gzip layer.
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI media type of a zstd layer.
pub const MEDIA_TYPE_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// How a layer tarball is compressed into its blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// zstd at `level` (1..=22; negative "fast" levels are accepted too).
    Zstd { level: i32 },
    /// gzip at `level` (0..=9). Needed for Docker engines before 23.0, whose
    /// `docker load` does not recognize zstd layers.
    Gzip { level: u32 },
    /// The blob is the tar itself.
    None,
}

impl Default for Compression {
    /// zstd level 3. This default is a starting point to be measured later
    /// (speed vs size on real torch/CUDA layers), not a tuned choice.
    fn default() -> Self {
        Compression::Zstd { level: 3 }
    }
}

/// libzstd's version as "major.minor.patch" (from the linked library).
pub fn zstd_version() -> String {
    let n = zstd::zstd_safe::version_number();
    format!("{}.{}.{}", n / 10000, n / 100 % 100, n % 100)
}

impl Compression {
    /// A stable identity: library, version, level and thread mode, e.g.
    /// `zstd-1.5.7-level3-mt`. Part of a layer's derivation.
    pub fn identity(&self) -> String {
        match self {
            Compression::Zstd { level } => format!("zstd-{}-level{level}-mt", zstd_version()),
            Compression::Gzip { level } => {
                format!("gzip-flate2-{FLATE2_VERSION}-{FLATE2_BACKEND}-level{level}-blocks1m")
            }
            Compression::None => "none".to_string(),
        }
    }

    /// The OCI layer media type for blobs compressed this way.
    pub fn media_type(&self) -> &'static str {
        match self {
            Compression::Zstd { .. } => MEDIA_TYPE_LAYER_ZSTD,
            Compression::Gzip { .. } => MEDIA_TYPE_LAYER_GZIP,
            Compression::None => MEDIA_TYPE_LAYER_TAR,
        }
    }

    /// Checks the level is one the library accepts.
    pub fn validate(&self) -> Result<(), OciError> {
        match *self {
            Compression::Zstd { level } => {
                let range = zstd::compression_level_range();
                if !range.contains(&level) || level == 0 {
                    return Err(OciError::invalid(
                        "zstd compression level",
                        format!("{}..={} except 0", range.start(), range.end()),
                        level.to_string(),
                    ));
                }
            }
            Compression::Gzip { level } if level > 9 => {
                return Err(OciError::invalid(
                    "gzip compression level",
                    "0..=9",
                    level.to_string(),
                ))
            }
            _ => {}
        }
        Ok(())
    }
}

/// A writer that hashes (sha256) and counts what passes through it.
pub(crate) struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// ("sha256:<hex>", byte count, inner writer).
    pub(crate) fn finish(self) -> (String, u64, W) {
        let digest: [u8; 32] = self.hasher.finalize().into();
        (
            format!("sha256:{}", hex::encode(digest)),
            self.count,
            self.inner,
        )
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum Encoder<W: Write> {
    Zstd(zstd::stream::write::Encoder<'static, HashWriter<W>>),
    Gzip(ParallelGzip<HashWriter<W>>),
    /// The blob is the tar: its digest is the DiffID, no second hash.
    None(W),
}

/// The compressor is always fed whole chunks of this size (the last one
/// excepted), whatever the sizes of the writes into the layer sink: zlib-rs
/// (like zlib-ng) emits different deflate streams for different input
/// chunkings, so chunking is fixed here and part of the output's contract.
/// 128 KiB is zstd's block size. Changing it changes gzip bytes, so it must
/// change [`Compression::identity`] too.
pub const FEED_CHUNK: usize = 128 << 10;

/// Where a layer tar goes: the tar bytes are hashed (DiffID) and fed, in
/// [`FEED_CHUNK`]-sized pieces, to the compressor, whose output is hashed
/// (blob digest) and written to `W`. `flush` does not flush the compressor
/// (that would end a block and change the bytes); call `finish`.
pub(crate) struct LayerSink<W: Write> {
    tar_hash: Sha256,
    tar_size: u64,
    pending: Vec<u8>,
    enc: Encoder<W>,
}

/// What a finished [`LayerSink`] reports.
pub(crate) struct SinkResult<W> {
    pub diff_id: String,
    pub tar_size: u64,
    pub digest: String,
    pub size: u64,
    pub inner: W,
}

impl<W: Write> Encoder<W> {
    fn feed(&mut self, chunk: &[u8]) -> io::Result<()> {
        match self {
            Encoder::Zstd(e) => e.write_all(chunk),
            Encoder::Gzip(e) => e.write_all(chunk),
            Encoder::None(w) => w.write_all(chunk),
        }
    }
}

/// How many threads compress one layer: `ENVBUILD_COMPRESS_THREADS`
/// if set to a positive number, else one per available core. The bytes do
/// not depend on it.
pub fn compression_threads() -> u32 {
    std::env::var("ENVBUILD_COMPRESS_THREADS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1)
        })
}

impl<W: Write> LayerSink<W> {
    pub(crate) fn new(compression: Compression, out: W) -> io::Result<Self> {
        Self::with_threads(compression, compression_threads(), out)
    }

    /// A sink whose compressor runs `threads` workers (at least one).
    pub(crate) fn with_threads(compression: Compression, threads: u32, out: W) -> io::Result<Self> {
        let enc = match compression {
            Compression::Zstd { level } => {
                let mut e = zstd::stream::write::Encoder::new(HashWriter::new(out), level)?;
                e.multithread(threads.max(1))?;
                e.include_checksum(true)?;
                e.include_contentsize(false)?;
                e.include_dictid(false)?;
                Encoder::Zstd(e)
            }
            Compression::Gzip { level } => {
                Encoder::Gzip(ParallelGzip::new(HashWriter::new(out), level, threads)?)
            }
            Compression::None => Encoder::None(out),
        };
        Ok(LayerSink {
            tar_hash: Sha256::new(),
            tar_size: 0,
            pending: Vec::with_capacity(FEED_CHUNK),
            enc,
        })
    }

    pub(crate) fn finish(mut self) -> io::Result<SinkResult<W>> {
        if !self.pending.is_empty() {
            self.enc.feed(&self.pending)?;
        }
        let tar_digest: [u8; 32] = self.tar_hash.finalize().into();
        let diff_id = format!("sha256:{}", hex::encode(tar_digest));
        let (digest, size, mut inner) = match self.enc {
            Encoder::Zstd(e) => e.finish()?.finish(),
            Encoder::Gzip(e) => e.finish()?.finish(),
            Encoder::None(w) => (diff_id.clone(), self.tar_size, w),
        };
        inner.flush()?;
        Ok(SinkResult {
            diff_id,
            tar_size: self.tar_size,
            digest,
            size,
            inner,
        })
    }
}

impl<W: Write> Write for LayerSink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        if !self.pending.is_empty() {
            let take = (FEED_CHUNK - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == FEED_CHUNK {
                self.enc.feed(&self.pending)?;
                self.pending.clear();
            }
        }
        while rest.len() >= FEED_CHUNK {
            self.enc.feed(&rest[..FEED_CHUNK])?;
            rest = &rest[FEED_CHUNK..];
        }
        self.pending.extend_from_slice(rest);
        // Everything is accepted (or an error returned): hash it all.
        self.tar_hash.update(buf);
        self.tar_size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compress(c: Compression, data: &[u8]) -> SinkResult<Vec<u8>> {
        let mut s = LayerSink::new(c, Vec::new()).unwrap();
        // Uneven chunking must not matter.
        for chunk in data.chunks(7777) {
            s.write_all(chunk).unwrap();
        }
        s.finish().unwrap()
    }

    fn sample() -> Vec<u8> {
        (0u32..200_000)
            .flat_map(|i| format!("line {} {}\n", i, i % 13).into_bytes())
            .collect()
    }

    #[test]
    fn identities_and_media_types() {
        assert_eq!(Compression::default(), Compression::Zstd { level: 3 });
        assert_eq!(
            Compression::Zstd { level: 3 }.identity(),
            format!("zstd-{}-level3-mt", zstd_version())
        );
        assert_eq!(
            Compression::Gzip { level: 6 }.identity(),
            "gzip-flate2-1.1.11-zlib-rs-0.6.8-level6-blocks1m"
        );
        assert_eq!(Compression::None.identity(), "none");
        assert_eq!(
            Compression::default().media_type(),
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
        assert!(Compression::Gzip { level: 10 }.validate().is_err());
        assert!(Compression::Zstd { level: 23 }.validate().is_err());
        assert!(Compression::Zstd { level: 19 }.validate().is_ok());
    }

    /// The pinned versions in the identity strings match Cargo.lock.
    #[test]
    fn versions_match_cargo_lock() {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock"))
            .expect("Cargo.lock");
        let version_of = |name: &str| {
            let needle = format!("name = \"{name}\"\nversion = \"");
            let at = lock
                .find(&needle)
                .unwrap_or_else(|| panic!("{name} in lock"))
                + needle.len();
            lock[at..].split('"').next().unwrap().to_string()
        };
        assert_eq!(version_of("flate2"), FLATE2_VERSION);
        assert_eq!(format!("zlib-rs-{}", version_of("zlib-rs")), FLATE2_BACKEND);
        let sys = version_of("zstd-sys");
        assert!(
            sys.ends_with(&format!("+zstd.{}", zstd_version())),
            "zstd-sys {sys} vs linked libzstd {}",
            zstd_version()
        );
    }

    /// Golden digests: a change of library, backend or frame parameters
    /// shows up here and must come with a new identity string.
    #[test]
    fn golden_digests() {
        let data = sample();
        let z = compress(Compression::Zstd { level: 3 }, &data);
        let g = compress(Compression::Gzip { level: 6 }, &data);
        let n = compress(Compression::None, &data);
        assert_eq!(z.diff_id, n.diff_id);
        assert_eq!(g.diff_id, n.diff_id);
        assert_eq!(n.digest, n.diff_id);
        assert_eq!(n.size, data.len() as u64);
        assert_eq!(n.tar_size, data.len() as u64);
        assert_eq!(z.size, z.inner.len() as u64);
        // gzip header: magic, deflate, no flags, mtime 0, xfl, OS 255.
        assert_eq!(&g.inner[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
        assert_eq!(
            (z.digest.as_str(), g.digest.as_str()),
            (GOLDEN_ZSTD3, GOLDEN_GZIP6),
            "compressed bytes changed: update the identity strings, then these digests"
        );
        // One-shot and streamed (different chunking) agree.
        for (c, want) in [
            (Compression::Zstd { level: 3 }, &z.digest),
            (Compression::Gzip { level: 6 }, &g.digest),
        ] {
            let mut s = LayerSink::new(c, Vec::new()).unwrap();
            s.write_all(&data).unwrap();
            assert_eq!(&s.finish().unwrap().digest, want, "{c:?}");
        }
    }

    /// The zstd bytes are the same with one worker and with four, and
    /// whatever the chunking of the writes.
    #[test]
    fn zstd_bytes_do_not_depend_on_the_thread_count() {
        // Larger than several zstd jobs at level 3 (a job is 4 windows).
        let data: Vec<u8> = (0u64..3_000_000)
            .flat_map(|i| (i.wrapping_mul(0x9e3779b97f4a7c15) >> 40).to_le_bytes())
            .collect();
        let run = |threads: u32, chunk: usize| {
            let mut s =
                LayerSink::with_threads(Compression::Zstd { level: 3 }, threads, Vec::new())
                    .unwrap();
            for c in data.chunks(chunk) {
                s.write_all(c).unwrap();
            }
            let r = s.finish().unwrap();
            let mut back = Vec::new();
            zstd::stream::copy_decode(&r.inner[..], &mut back).unwrap();
            assert_eq!(back, data, "round trip");
            r.digest
        };
        let one = run(1, 1 << 20);
        assert_eq!(run(4, 1 << 20), one);
        assert_eq!(run(4, 4099), one);
        assert_eq!(run(2, 65536), one);
    }

    const GOLDEN_ZSTD3: &str =
        "sha256:49abe47e38fef10b3f8e0f532e615cd936e6644f34048538633f2bdfd0ad0366";
    const GOLDEN_GZIP6: &str =
        "sha256:2cbd75cf809c5b58d2a611587f2c3347bac046509ef08ceb3514c489bf8ce59d";
}
