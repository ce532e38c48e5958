//! Export: an `oci-archive` tar and an `oci-dir` directory.
//!
//! Both hold the same files:
//!
//! ```text
//! blobs/sha256/<hex>   config, manifest and layer blobs (each digest once)
//! index.json           OCI index, manifest annotated with the tag
//! manifest.json        docker-archive manifest pointing into blobs/
//! oci-layout           {"imageLayoutVersion":"1.0.0"}
//! ```
//!
//! so one file is at once an OCI image layout (skopeo `oci-archive:`,
//! podman, umoci after unpacking) and a docker archive (`docker load`).
//!
//! The archive tar follows the layer tar rules: entries in bytewise path
//! order (`blobs/`, `blobs/sha256/`, the blobs by hex digest, `index.json`,
//! `manifest.json`, `oci-layout`), directories 0755, files 0644, uid/gid 0,
//! mtime = the image's `created_epoch`. Layer blobs are streamed from their
//! files byte for byte (never re-tarred or recompressed), and their size and
//! sha256 are checked against their descriptors on the way.
//!
//! Docker: engines before 23.0 (e.g. Debian bookworm's 20.10) do not
//! recognize zstd layers in `docker load` ("archive/tar: invalid tar
//! header"); for them the layers must be written with
//! [`super::Compression::Gzip`] (or `None`). The same holds for umoci before
//! 0.5 (Debian bookworm's 0.4.7). podman and skopeo take zstd.
//!
//! In an `oci-dir`, layer blobs are hardlinked from their files when the
//! filesystem allows it and copied (with the same checks) otherwise.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::compression::HashWriter;
use super::error::OciError;
use super::image::{Descriptor, Image, OCI_LAYOUT_JSON};
use super::ustar::{self, Kind};

enum Content<'a> {
    Dir,
    Bytes(Vec<u8>),
    Blob(&'a Descriptor, &'a Path),
}

/// Every file of the layout, sorted by path.
fn layout(image: &Image) -> BTreeMap<String, Content<'_>> {
    let mut files = BTreeMap::new();
    files.insert("blobs".to_string(), Content::Dir);
    files.insert("blobs/sha256".to_string(), Content::Dir);
    let blob = |d: &Descriptor| format!("blobs/sha256/{}", d.hex());
    for (d, path) in &image.layers {
        files.insert(blob(d), Content::Blob(d, path));
    }
    files.insert(
        blob(&image.config),
        Content::Bytes(image.config_json.clone()),
    );
    files.insert(
        blob(&image.manifest),
        Content::Bytes(image.manifest_json.clone()),
    );
    files.insert("index.json".to_string(), Content::Bytes(image.index_json()));
    files.insert(
        "manifest.json".to_string(),
        Content::Bytes(image.docker_manifest_json()),
    );
    files.insert(
        "oci-layout".to_string(),
        Content::Bytes(OCI_LAYOUT_JSON.to_vec()),
    );
    files
}

/// Copies a blob file into `w`, checking its size and digest.
fn copy_blob(
    desc: &Descriptor,
    path: &Path,
    w: &mut impl Write,
    out: &Path,
) -> Result<(), OciError> {
    let mut f = File::open(path).map_err(|e| OciError::io("reading", path, e))?;
    let len = f
        .metadata()
        .map_err(|e| OciError::io("reading", path, e))?
        .len();
    let mismatch = |found: String, found_size: u64| OciError::BlobMismatch {
        path: path.to_path_buf(),
        expected: desc.digest.clone(),
        expected_size: desc.size,
        found,
        found_size,
    };
    if len != desc.size {
        return Err(mismatch("a file of another size".to_string(), len));
    }
    let mut hw = HashWriter::new(w);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = desc.size;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let got = f
            .read(&mut buf[..want])
            .map_err(|e| OciError::io("reading", path, e))?;
        if got == 0 {
            return Err(mismatch("a shorter file".to_string(), desc.size - left));
        }
        hw.write_all(&buf[..got])
            .map_err(|e| OciError::io("writing", out, e))?;
        left -= got as u64;
    }
    let (digest, size, _) = hw.finish();
    if digest != desc.digest {
        return Err(mismatch(digest, size));
    }
    Ok(())
}

/// Writes the image as one deterministic tar that is both an OCI layout
/// and a docker archive. Write errors name `<oci-archive output>`.
pub fn write_oci_archive<W: Write>(image: &Image, out: &mut W) -> Result<(), OciError> {
    write_archive_inner(image, out, Path::new("<oci-archive output>"))
}

/// [`write_oci_archive`] into the file `path` (created or truncated, synced;
/// removed again on error).
pub fn write_oci_archive_file(image: &Image, path: &Path) -> Result<(), OciError> {
    let file = File::create(path).map_err(|e| OciError::io("creating", path, e))?;
    let result = (|| {
        let mut w = BufWriter::with_capacity(1 << 20, file);
        write_archive_inner(image, &mut w, path)?;
        let file = w
            .into_inner()
            .map_err(|e| OciError::io("writing", path, e.into_error()))?;
        file.sync_all()
            .map_err(|e| OciError::io("writing", path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(path);
    }
    result
}

fn write_archive_inner<W: Write>(image: &Image, out: &mut W, name: &Path) -> Result<(), OciError> {
    let werr = |e: io::Error| OciError::io("writing", name, e);
    for (path, content) in layout(image) {
        let (kind, mode, size) = match &content {
            Content::Dir => (Kind::Dir, 0o755, 0),
            Content::Bytes(b) => (Kind::File, 0o644, b.len() as u64),
            Content::Blob(d, _) => (Kind::File, 0o644, d.size),
        };
        let header = ustar::Header {
            path: path.as_bytes(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            size,
            mtime: image.created_epoch,
            link: b"",
        };
        ustar::write_header(out, &header).map_err(werr)?;
        match content {
            Content::Dir => {}
            Content::Bytes(b) => out.write_all(&b).map_err(werr)?,
            Content::Blob(d, p) => copy_blob(d, p, out, name)?,
        }
        ustar::write_padding(out, size).map_err(werr)?;
    }
    ustar::write_end(out).map_err(werr)?;
    out.flush().map_err(werr)
}

/// Writes the image as an OCI layout directory `dir` (created if missing;
/// must be empty). Layer blobs are hardlinked from their files, or copied
/// when a hardlink is not possible (another filesystem, protected_hardlinks).
pub fn write_oci_dir(image: &Image, dir: &Path) -> Result<(), OciError> {
    fs::create_dir_all(dir).map_err(|e| OciError::io("creating", dir, e))?;
    let mut listing = fs::read_dir(dir).map_err(|e| OciError::io("reading", dir, e))?;
    if let Some(first) = listing.next() {
        let first = first.map_err(|e| OciError::io("reading", dir, e))?;
        return Err(OciError::invalid(
            format!("oci-dir output {}", dir.display()),
            "an empty or missing directory",
            format!("a directory holding {:?}", first.file_name()),
        ));
    }
    for (rel, content) in layout(image) {
        let path: PathBuf = dir.join(&rel);
        match content {
            Content::Dir => {
                fs::create_dir(&path).map_err(|e| OciError::io("creating", &path, e))?
            }
            Content::Bytes(b) => {
                fs::write(&path, b).map_err(|e| OciError::io("writing", &path, e))?
            }
            Content::Blob(d, src) => {
                let len = fs::metadata(src)
                    .map_err(|e| OciError::io("reading", src, e))?
                    .len();
                if len != d.size {
                    return Err(OciError::BlobMismatch {
                        path: src.to_path_buf(),
                        expected: d.digest.clone(),
                        expected_size: d.size,
                        found: "a file of another size".to_string(),
                        found_size: len,
                    });
                }
                if fs::hard_link(src, &path).is_err() {
                    let result = (|| {
                        let file =
                            File::create(&path).map_err(|e| OciError::io("creating", &path, e))?;
                        let mut w = BufWriter::with_capacity(1 << 20, file);
                        copy_blob(d, src, &mut w, &path)?;
                        w.into_inner()
                            .map_err(|e| OciError::io("writing", &path, e.into_error()))?
                            .sync_all()
                            .map_err(|e| OciError::io("writing", &path, e))
                    })();
                    if result.is_err() {
                        let _ = fs::remove_file(&path);
                    }
                    result?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
