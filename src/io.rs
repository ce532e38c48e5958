//! Small I/O helpers shared by the stages.
//!
//! Every read of a file the user named (the spec, the lock, a pylock or
//! requirements file, a local wheel) goes through [`open_regular`]: the
//! file is opened without blocking and its type checked on the open
//! descriptor, so a FIFO (or a device, a socket, a directory) is an error
//! naming the path and what it is, never a read that hangs.
//!
//! Every small file envbuild writes for the user (the lock, an exported
//! pylock, the index metadata cache) goes through [`write_atomically`]: a
//! temporary file beside the destination, synced, renamed into place, with
//! the mode a new file gets from the user's umask (0644 under 022).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// What a file type is called in errors ("a FIFO", "a directory", ...).
pub fn file_type_name(t: std::fs::FileType) -> &'static str {
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "an unknown kind of file"
    }
}

/// The error for `path` being `t` where a regular file (or, if
/// `dir_ok`, a directory) was expected.
pub fn wrong_type(path: &Path, t: std::fs::FileType, dir_ok: bool) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is {}, expected a regular file{}",
            path.display(),
            file_type_name(t),
            if dir_ok { " or directory" } else { "" }
        ),
    )
}

/// Opens `path` (following symlinks) for reading if it is a regular file;
/// anything else is an [`io::ErrorKind::InvalidInput`] error naming the
/// path and what it is. The open does not block on a FIFO, and the type is
/// checked on the descriptor opened, so nothing can be swapped in between.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    let t = file.metadata()?.file_type();
    if !t.is_file() {
        return Err(wrong_type(path, t, false));
    }
    // Regular files ignore O_NONBLOCK; clear it anyway for the reader.
    rustix::fs::fcntl_setfl(&file, rustix::fs::OFlags::empty())?;
    Ok(file)
}

/// The bytes of the regular file at `path` (see [`open_regular`]).
pub fn read_regular(path: &Path) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    open_regular(path)?.read_to_end(&mut out)?;
    Ok(out)
}

/// The text of the regular file at `path` (see [`open_regular`]); not
/// UTF-8 is an [`io::ErrorKind::InvalidData`] error.
pub fn read_regular_to_string(path: &Path) -> io::Result<String> {
    let mut out = String::new();
    open_regular(path)?.read_to_string(&mut out)?;
    Ok(out)
}

/// Write `bytes` to `path` atomically: a temporary file in the same
/// directory (created with mode 0666 less the umask, as `open(2)` creates
/// any new file), synced, then renamed over `path`, and the directory
/// synced. Readers see the old contents or the new, never a part; on error
/// nothing is left behind.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomically_with_mode(path, bytes, 0o666)
}

/// [`write_atomically`] with the new file created with `mode` (less the
/// umask): 0600 for a file that holds secrets, which is never readable by
/// others, not even for a moment.
pub fn write_atomically_with_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = parent_dir(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".envbuild-")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// The directory `path` names an entry of: its parent, or `.` for a bare
/// file name.
pub fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Make the entries of `dir` durable (a file just renamed into it survives
/// a crash under its new name): `fsync` on the directory.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

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

/// The sha256 (lowercase hex) of the regular file at `path` (see
/// [`open_regular`]), read in 1 MiB blocks.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    use sha2::Digest;
    let mut f = open_regular(path)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hex::encode(h.finalize()))
}

/// A reader that gives at most `limit` bytes of `inner` and then fails,
/// naming `what`, if `inner` has more: a stream that must not grow without
/// bound (a decompressed index) is cut loudly, never truncated quietly.
pub struct AtMost<R> {
    inner: io::Take<R>,
    limit: u64,
    what: String,
}

impl<R: Read> AtMost<R> {
    pub fn new(inner: R, limit: u64, what: impl Into<String>) -> Self {
        AtMost {
            inner: inner.take(limit),
            limit,
            what: what.into(),
        }
    }
}

impl<R: Read> Read for AtMost<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.inner.limit() == 0 && !buf.is_empty() {
            let mut probe = [0u8; 1];
            if self.inner.get_mut().read(&mut probe)? > 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is larger than {} bytes", self.what, self.limit),
                ));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_take_their_mode_from_the_umask_and_leave_no_temp_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.lock");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        // Read, not set: setting the umask would race the other tests.
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let umask = status
            .lines()
            .find_map(|l| l.strip_prefix("Umask:"))
            .map(|v| u32::from_str_radix(v.trim(), 8).unwrap())
            .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !umask, "mode {mode:o} under umask {umask:o}");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.lock"]);
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let t = tempfile::tempdir().unwrap();
        let fifo = t.path().join("spec.toml");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        // Without a writer, a blocking open would hang here forever.
        let e = read_regular_to_string(&fifo).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            e.to_string(),
            format!("{} is a FIFO, expected a regular file", fifo.display())
        );
        assert!(sha256_file(&fifo)
            .unwrap_err()
            .to_string()
            .contains("a FIFO"));
        let e = read_regular(t.path()).unwrap_err().to_string();
        assert!(
            e.ends_with("is a directory, expected a regular file"),
            "{e}"
        );
        let f = t.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        assert_eq!(read_regular(&f).unwrap(), b"x");
    }

    #[test]
    fn at_most_gives_the_limit_and_fails_naming_the_stream_past_it() {
        let mut out = Vec::new();
        AtMost::new(&b"12345"[..], 5, "the index")
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"12345");
        let mut out = Vec::new();
        let e = AtMost::new(&b"123456"[..], 5, "the index")
            .read_to_end(&mut out)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(e.to_string(), "the index is larger than 5 bytes");
    }
}
