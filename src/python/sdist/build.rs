//! Building an sdist into a wheel in a sandbox.
//!
//! The sandbox is bubblewrap (`bwrap`, or `ENVBUILD_BWRAP`), made by
//! [`crate::sandbox::Builder`] with every namespace unshared (user, mount,
//! PID, IPC, UTS, cgroup and network, so nothing can be fetched) and a new
//! session. Its `/` is bwrap's own tmpfs; each top-level entry of the build rootfs (the base's Debian
//! packages, base files and the build requirements' installed wheels) is
//! bound read-only onto it (top-level symlinks such as `/bin -> usr/bin`
//! recreated), so `/build` can be created beside them: the unpacked sdist
//! read-write at `/build/src`, the output at `/build/out`, `HOME` at
//! `/build/home`, the frontend at `/build/frontend.py`. The environment is
//! cleared and set to `SOURCE_DATE_EPOCH` (from the lock),
//! `PYTHONHASHSEED=0`, `HOME`, `TZ=UTC`, `LC_ALL=C.UTF-8`,
//! `PYTHONDONTWRITEBYTECODE=1`, `PATH`, and `PYTHONPATH` = the site-packages
//! the build requirements were installed into.
//!
//! The frontend (`frontend.py`, embedded) imports `build-backend` honouring
//! `backend-path` and calls `build_wheel('/build/out')`. Its output is the
//! build log; a failure names the sdist and shows the log's last lines.
//!
//! The wheel is then **normalized**, so that the same sdist gives the same
//! bytes whatever the file system's order or the clock: members rewritten
//! in sorted order (the `.dist-info` directory last, `RECORD` at the very
//! end), every timestamp `SOURCE_DATE_EPOCH` (at least 1980-01-01, zip's
//! epoch), modes 644/755, deflate, and `RECORD` rewritten with every
//! member's sha256 and size.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::error::{io_err, SdistError};
use super::metadata::BuildSystem;
use crate::sandbox::{Builder, Network};

/// The PEP 517 frontend run inside the sandbox.
pub const FRONTEND: &str = include_str!("frontend.py");

/// Lines of the build log shown in an error.
const TAIL_LINES: usize = 40;

/// One sandboxed build.
#[derive(Debug, Clone)]
pub struct BuildRequest<'a> {
    /// The sdist's file name (for messages, and its archive type).
    pub sdist: &'a str,
    /// The sdist archive.
    pub archive: &'a Path,
    /// The build rootfs: Python and the build requirements.
    pub rootfs: &'a Path,
    /// An empty scratch directory for the tree, output, home and log.
    pub work: &'a Path,
    /// The interpreter inside the rootfs.
    pub python: &'a str,
    /// Where the build requirements are installed inside the rootfs.
    pub site_packages: &'a str,
    pub source_date_epoch: u64,
}

/// A finished build.
#[derive(Debug, Clone)]
pub struct Built {
    /// The normalized wheel, under `work`.
    pub wheel: PathBuf,
    /// Its file name as the backend chose it.
    pub filename: String,
    pub log: PathBuf,
}

fn build_system_of(sdist: &str, src: &Path) -> Result<BuildSystem, SdistError> {
    let path = src.join("pyproject.toml");
    let table = match fs::read_to_string(&path) {
        Ok(text) => {
            Some(
                toml::from_str::<toml::Table>(&text).map_err(|e| SdistError::BadMetadata {
                    sdist: sdist.to_owned(),
                    file: "pyproject.toml".into(),
                    expected: "TOML".into(),
                    found: e.to_string(),
                })?,
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err("reading", &path)(e)),
    };
    super::metadata::build_system(sdist, table.as_ref())
}

/// The last `n` lines of a log.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The bubblewrap command line for a build (without the command): no
/// network, a new session, the build rootfs read-only, the work directory's
/// parts bound at `/build`.
fn sandbox(req: &BuildRequest) -> Result<Builder, SdistError> {
    let mut b = Builder::new(Network::None);
    b.new_session();
    let w = req.work;
    b.rootfs(req.rootfs, &["proc", "dev", "tmp", "build", "sys"], &[])
        .map_err(|source| SdistError::Sandbox {
            sdist: req.sdist.to_owned(),
            source,
        })?;
    b.proc_dev_tmp();
    b.bind(w.join("src"), "/build/src")
        .bind(w.join("out"), "/build/out")
        .bind(w.join("home"), "/build/home")
        .ro_bind(w.join("frontend.py"), "/build/frontend.py");
    b.chdir("/build/src").clearenv();
    let epoch = req.source_date_epoch.to_string();
    for (k, v) in [
        ("SOURCE_DATE_EPOCH", epoch.as_str()),
        ("PYTHONHASHSEED", "0"),
        ("HOME", "/build/home"),
        ("TZ", "UTC"),
        ("LC_ALL", "C.UTF-8"),
        ("PYTHONDONTWRITEBYTECODE", "1"),
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("PYTHONPATH", req.site_packages),
        ("TMPDIR", "/tmp"),
    ] {
        b.setenv(k, v);
    }
    Ok(b)
}

/// Build `req.archive` into a normalized wheel.
pub fn build_wheel(req: &BuildRequest) -> Result<Built, SdistError> {
    let w = req.work;
    let src = w.join("src");
    super::archive::unpack(req.archive, req.sdist, &src)?;
    let bs = build_system_of(req.sdist, &src)?;
    for d in ["out", "home"] {
        let p = w.join(d);
        fs::create_dir_all(&p).map_err(io_err("creating", &p))?;
    }
    let frontend = w.join("frontend.py");
    fs::write(&frontend, FRONTEND).map_err(io_err("writing", &frontend))?;
    let log = w.join("build.log");
    let log_file = fs::File::create(&log).map_err(io_err("creating", &log))?;
    let log_err = log_file.try_clone().map_err(io_err("opening", &log))?;
    let in_sandbox = |source| SdistError::Sandbox {
        sdist: req.sdist.to_owned(),
        source,
    };
    let backend_path = serde_json::to_string(&bs.backend_path).expect("strings serialize");
    let mut sb = sandbox(req)?
        .command(&[req.python, "/build/frontend.py", &bs.backend, &backend_path])
        .map_err(in_sandbox)?;
    sb.command()
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_file))
        .stderr(Stdio::from(log_err));
    let code = sb.run().map_err(in_sandbox)?;
    let text = fs::read_to_string(&log).unwrap_or_default();
    if code != 0 {
        return Err(SdistError::BuildFailed {
            sdist: req.sdist.to_owned(),
            status: format!("exit status {code}"),
            log,
            tail: tail(&text, TAIL_LINES),
        });
    }
    let out = w.join("out");
    let mut wheels: Vec<String> = fs::read_dir(&out)
        .map_err(io_err("reading", &out))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    wheels.sort();
    let filename = match wheels.as_slice() {
        [one] if one.ends_with(".whl") => one.clone(),
        other => {
            return Err(SdistError::NoWheelBuilt {
                sdist: req.sdist.to_owned(),
                found: if other.is_empty() {
                    "nothing".into()
                } else {
                    other.join(", ")
                },
            })
        }
    };
    let normalized_dir = w.join("wheel");
    fs::create_dir_all(&normalized_dir).map_err(io_err("creating", &normalized_dir))?;
    let wheel = normalized_dir.join(&filename);
    normalize_wheel(
        req.sdist,
        &out.join(&filename),
        &wheel,
        req.source_date_epoch,
    )?;
    Ok(Built {
        wheel,
        filename,
        log,
    })
}

/// (year, month, day, hour, minute, second) of a Unix time (UTC).
fn civil(epoch: u64) -> (u16, u8, u8, u8, u8, u8) {
    let days = (epoch / 86400) as i64;
    let secs = epoch % 86400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (
        y as u16,
        m as u8,
        d as u8,
        (secs / 3600) as u8,
        (secs % 3600 / 60) as u8,
        (secs % 60) as u8,
    )
}

/// A RECORD field, quoted when CSV needs it.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Rewrite the wheel at `from` into `to` deterministically (see the module
/// documentation).
pub fn normalize_wheel(sdist: &str, from: &Path, to: &Path, epoch: u64) -> Result<(), SdistError> {
    let bad = |message: String| SdistError::Normalize {
        sdist: sdist.to_owned(),
        wheel: from.display().to_string(),
        message,
    };
    let f = fs::File::open(from).map_err(io_err("opening", from))?;
    let mut z = zip::ZipArchive::new(f).map_err(|e| bad(e.to_string()))?;
    let mut members: Vec<(String, Vec<u8>, bool)> = Vec::new();
    let mut dist_info: Option<String> = None;
    for i in 0..z.len() {
        let mut m = z.by_index(i).map_err(|e| bad(e.to_string()))?;
        if m.is_dir() {
            continue;
        }
        let name = m.name().to_owned();
        let top = name.split('/').next().unwrap_or("");
        if top.ends_with(".dist-info")
            && name.ends_with("/RECORD")
            && name.matches('/').count() == 1
        {
            dist_info = Some(top.to_owned());
            continue;
        }
        let exec = m.unix_mode().is_some_and(|mode| mode & 0o111 != 0);
        let mut data = Vec::new();
        m.read_to_end(&mut data)
            .map_err(|e| bad(format!("reading {name}: {e}")))?;
        members.push((name, data, exec));
    }
    let dist_info = dist_info.ok_or_else(|| bad("it has no *.dist-info/RECORD".into()))?;
    let is_meta = |n: &str| n.starts_with(&format!("{dist_info}/"));
    members.sort_by(|a, b| (is_meta(&a.0), &a.0).cmp(&(is_meta(&b.0), &b.0)));
    let (y, mo, d, h, mi, s) = civil(epoch.max(315_532_800));
    let time = zip::DateTime::from_date_and_time(y, mo, d, h, mi, s)
        .map_err(|e| bad(format!("SOURCE_DATE_EPOCH {epoch} as a zip time: {e}")))?;
    let opts = |exec: bool| {
        zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(time)
            .unix_permissions(if exec { 0o755 } else { 0o644 })
    };
    let tmp = to.with_extension("whl.tmp");
    let out = fs::File::create(&tmp).map_err(io_err("creating", &tmp))?;
    let mut zw = zip::ZipWriter::new(std::io::BufWriter::new(out));
    let mut record = String::new();
    for (name, data, exec) in &members {
        zw.start_file(name.as_str(), opts(*exec))
            .map_err(|e| bad(e.to_string()))?;
        zw.write_all(data).map_err(io_err("writing", &tmp))?;
        let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(data));
        record.push_str(&format!(
            "{},sha256={hash},{}\n",
            csv_field(name),
            data.len()
        ));
    }
    let record_name = format!("{dist_info}/RECORD");
    record.push_str(&format!("{},,\n", csv_field(&record_name)));
    zw.start_file(record_name.as_str(), opts(false))
        .map_err(|e| bad(e.to_string()))?;
    zw.write_all(record.as_bytes())
        .map_err(io_err("writing", &tmp))?;
    let mut w = zw.finish().map_err(|e| bad(e.to_string()))?;
    w.flush().map_err(io_err("writing", &tmp))?;
    drop(w);
    fs::rename(&tmp, to).map_err(io_err("moving into place", to))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_sandbox_has_no_network_and_binds_only_the_build_tree_writable() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        for d in ["usr/bin", "etc", "tmp", "build"] {
            fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        let work = dir.path().join("work");
        let req = BuildRequest {
            sdist: "x-1.0.tar.gz",
            archive: &dir.path().join("x-1.0.tar.gz"),
            rootfs: &rootfs,
            work: &work,
            python: "/usr/bin/python3",
            site_packages: "/usr/lib/python3/dist-packages",
            source_date_epoch: 1_700_000_000,
        };
        let b = sandbox(&req).unwrap();
        assert_eq!(b.network(), Network::None);
        let args = b.args();
        assert!(args.iter().any(|a| a == "--unshare-net"));
        assert!(args.iter().any(|a| a == "--new-session"));
        let rw: Vec<(PathBuf, PathBuf)> = b.binds("--bind");
        assert_eq!(
            rw,
            [
                (work.join("src"), PathBuf::from("/build/src")),
                (work.join("out"), PathBuf::from("/build/out")),
                (work.join("home"), PathBuf::from("/build/home")),
            ]
        );
        let ro: Vec<PathBuf> = b.binds("--ro-bind").into_iter().map(|(_, at)| at).collect();
        // The rootfs's own tmp and build are not bound; no /etc/hosts or
        // resolv.conf is added.
        assert_eq!(
            ro,
            [
                PathBuf::from("/etc"),
                PathBuf::from("/usr"),
                PathBuf::from("/build/frontend.py")
            ]
        );
        assert_eq!(
            b.env("SOURCE_DATE_EPOCH"),
            Some(std::ffi::OsStr::new("1700000000"))
        );
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil(1_700_000_000), (2023, 11, 14, 22, 13, 20));
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0, 0));
    }

    fn wheel_bytes(order: &[&str], time: zip::DateTime) -> Vec<u8> {
        let mut zw = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let o = zip::write::SimpleFileOptions::default().last_modified_time(time);
        for n in order {
            zw.start_file(*n, o).unwrap();
            zw.write_all(n.as_bytes()).unwrap();
        }
        zw.finish().unwrap().into_inner()
    }

    #[test]
    fn normalizing_gives_the_same_bytes_whatever_the_order_and_times() {
        let dir = tempfile::tempdir().unwrap();
        let names = [
            "a/__init__.py",
            "a-1.0.dist-info/METADATA",
            "a-1.0.dist-info/RECORD",
            "a/z.py",
        ];
        let mut rev = names;
        rev.reverse();
        let t1 = zip::DateTime::from_date_and_time(2020, 1, 1, 0, 0, 0).unwrap();
        let t2 = zip::DateTime::from_date_and_time(2024, 5, 6, 7, 8, 10).unwrap();
        let mut outs = Vec::new();
        for (i, (order, t)) in [(names, t1), (rev, t2)].into_iter().enumerate() {
            let from = dir.path().join(format!("in{i}.whl"));
            fs::write(&from, wheel_bytes(&order, t)).unwrap();
            let to = dir.path().join(format!("out{i}.whl"));
            normalize_wheel("a-1.0.tar.gz", &from, &to, 1_700_000_000).unwrap();
            outs.push(fs::read(&to).unwrap());
        }
        assert_eq!(outs[0], outs[1]);
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(outs[0].clone())).unwrap();
        let order: Vec<String> = (0..z.len())
            .map(|i| z.by_index(i).unwrap().name().to_owned())
            .collect();
        assert_eq!(
            order,
            [
                "a/__init__.py",
                "a/z.py",
                "a-1.0.dist-info/METADATA",
                "a-1.0.dist-info/RECORD"
            ]
        );
        let mut record = String::new();
        z.by_name("a-1.0.dist-info/RECORD")
            .unwrap()
            .read_to_string(&mut record)
            .unwrap();
        let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(b"a/__init__.py"));
        assert!(
            record.starts_with(&format!("a/__init__.py,sha256={expected},13\n")),
            "{record}"
        );
        assert!(record.ends_with("a-1.0.dist-info/RECORD,,\n"));
        assert_eq!(z.by_index(0).unwrap().last_modified().unwrap().year(), 2023);
    }

    #[test]
    fn a_wheel_without_record_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("in.whl");
        let t = zip::DateTime::from_date_and_time(2020, 1, 1, 0, 0, 0).unwrap();
        fs::write(&from, wheel_bytes(&["a/__init__.py"], t)).unwrap();
        let e = normalize_wheel("a-1.0.tar.gz", &from, &dir.path().join("o.whl"), 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a-1.0.tar.gz") && e.contains("RECORD"), "{e}");
    }
}
