//! NVIDIA GPUs in the sandbox, found the way nvidia-container-toolkit finds
//! them: the device nodes in `/dev`, the driver's user-space libraries from
//! the host's ldconfig cache (`ldconfig -p`).
//!
//! The device nodes (`nvidia[0-9]*`, `nvidiactl`, `nvidia-uvm`,
//! `nvidia-uvm-tools`, `nvidia-modeset`, the `nvidia-caps` and `dri`
//! directories) are bound with `--dev-bind` at the same names under the
//! sandbox's `/dev`. The libraries are bound read-only into [`LIB_DIR`],
//! which the NVIDIA CUDA images put on `LD_LIBRARY_PATH` and which is put
//! first on it here (the driver must match the host's kernel module, so it
//! always comes from the host).
//!
//! Two variables replace the host's view, for tests and unusual hosts:
//! `ENVBUILD_GPU_DEV_DIR` (a directory instead of `/dev`) and
//! `ENVBUILD_GPU_LIB_DIRS` (`:`-separated directories whose matching files
//! are taken instead of `ldconfig -p`'s).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{io_err, Builder, SandboxError};

/// Where the driver libraries appear in the sandbox.
pub const LIB_DIR: &str = "/usr/local/nvidia/lib64";

/// The driver's user-space libraries (file name prefixes), as the toolkit
/// lists them for the `compute` and `utility` capabilities.
pub const DRIVER_LIBRARIES: [&str; 15] = [
    "libcuda.so",
    "libcudadebugger.so",
    "libnvidia-ml.so",
    "libnvidia-ptxjitcompiler.so",
    "libnvidia-nvvm.so",
    "libnvidia-gpucomp.so",
    "libnvidia-cfg.so",
    "libnvidia-allocator.so",
    "libnvidia-opencl.so",
    "libnvidia-compiler.so",
    "libnvidia-fatbinaryloader.so",
    "libnvidia-opticalflow.so",
    "libnvidia-encode.so",
    "libnvcuvid.so",
    "libnvidia-pkcs11.so",
];

/// A host GPU setup to give the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    /// Device nodes and directories: (host path, name under `/dev`).
    pub devices: Vec<(PathBuf, String)>,
    /// Driver libraries: (host file, name in [`LIB_DIR`]).
    pub libraries: Vec<(PathBuf, String)>,
}

/// The device directory: `ENVBUILD_GPU_DEV_DIR`, else `/dev`.
pub fn dev_dir() -> PathBuf {
    std::env::var_os("ENVBUILD_GPU_DEV_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/dev"))
}

fn is_gpu_device(name: &str) -> bool {
    name.strip_prefix("nvidia").is_some_and(|n| {
        (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            || ["ctl", "-uvm", "-uvm-tools", "-modeset", "-caps"].contains(&n)
    }) || name == "dri"
}

/// The NVIDIA device nodes in `dev`, sorted; empty when there is no GPU
/// (`dri` alone does not make one).
pub fn devices_in(dev: &Path) -> Vec<(PathBuf, String)> {
    let Ok(rd) = fs::read_dir(dev) else {
        return Vec::new();
    };
    let mut v: Vec<(PathBuf, String)> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| is_gpu_device(n))
        .map(|n| (dev.join(&n), n))
        .collect();
    v.sort();
    if v.iter().any(|(_, n)| n.starts_with("nvidia")) {
        v
    } else {
        Vec::new()
    }
}

fn is_driver_library(name: &str) -> bool {
    DRIVER_LIBRARIES.iter().any(|p| {
        name.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    })
}

/// Parse `ldconfig -p`: the driver libraries of this machine's
/// architecture, (path, name) in the cache's order, the first of a name.
pub fn parse_ldconfig(text: &str) -> Vec<(PathBuf, String)> {
    let arch = if cfg!(target_arch = "x86_64") {
        "x86-64"
    } else if cfg!(target_arch = "aarch64") {
        "AArch64"
    } else {
        ""
    };
    let mut out: Vec<(PathBuf, String)> = Vec::new();
    for line in text.lines() {
        // "\tlibcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1"
        let Some((left, path)) = line.trim().split_once(" => ") else {
            continue;
        };
        let Some((name, hint)) = left.split_once(" (") else {
            continue;
        };
        if !hint.contains(arch) || !is_driver_library(name) {
            continue;
        }
        if !out.iter().any(|(_, n)| n == name) {
            out.push((PathBuf::from(path), name.to_string()));
        }
    }
    out
}

/// The driver libraries in `dirs` (files and symlinks named like one),
/// sorted by name, the first directory's winning.
pub fn libraries_in(dirs: &[PathBuf]) -> Vec<(PathBuf, String)> {
    let mut out: Vec<(PathBuf, String)> = Vec::new();
    for d in dirs {
        let Ok(rd) = fs::read_dir(d) else { continue };
        let mut names: Vec<String> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| is_driver_library(n))
            .collect();
        names.sort();
        for n in names {
            if !out.iter().any(|(_, m)| *m == n) {
                out.push((d.join(&n), n));
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

/// The host's driver libraries: `ENVBUILD_GPU_LIB_DIRS`, else `ldconfig -p`
/// (`/sbin/ldconfig` when `ldconfig` is not on PATH).
pub fn host_libraries() -> Result<Vec<(PathBuf, String)>, SandboxError> {
    if let Some(dirs) = std::env::var_os("ENVBUILD_GPU_LIB_DIRS") {
        let dirs: Vec<PathBuf> = std::env::split_paths(&dirs).collect();
        return Ok(libraries_in(&dirs));
    }
    let mut last = None;
    for program in ["ldconfig", "/sbin/ldconfig"] {
        match Command::new(program).arg("-p").output() {
            Ok(o) => return Ok(parse_ldconfig(&String::from_utf8_lossy(&o.stdout))),
            Err(e) => last = Some(e),
        }
    }
    Err(io_err("running", Path::new("ldconfig -p"))(
        last.expect("tried at least one"),
    ))
}

impl Gpu {
    /// The host's GPUs, or `None` when it has no NVIDIA device node.
    pub fn from_host() -> Result<Option<Gpu>, SandboxError> {
        let devices = devices_in(&dev_dir());
        if devices.is_empty() {
            return Ok(None);
        }
        let libraries = host_libraries()?;
        Ok(Some(Gpu { devices, libraries }))
    }

    /// The host's GPUs, an error naming the device directory when there is
    /// none (`--gpus` asked for them).
    pub fn required() -> Result<Gpu, SandboxError> {
        Gpu::from_host()?.ok_or_else(|| SandboxError::NoGpu { dev: dev_dir() })
    }

    /// The sandbox paths the libraries go to (left open in the rootfs).
    pub fn open_paths(&self) -> Vec<String> {
        if self.libraries.is_empty() {
            Vec::new()
        } else {
            vec![LIB_DIR.to_string()]
        }
    }

    /// Bind the devices (after `/dev` is mounted) and the libraries; the
    /// new `LD_LIBRARY_PATH` given the sandbox's current one.
    pub fn apply(&self, b: &mut Builder, ld_library_path: Option<&str>) -> Option<String> {
        for (host, name) in &self.devices {
            b.dev_bind(host, format!("/dev/{name}"));
        }
        if self.libraries.is_empty() {
            return ld_library_path.map(str::to_string);
        }
        for (host, name) in &self.libraries {
            // The file itself: a symlink's target may not exist inside.
            let real = fs::canonicalize(host).unwrap_or_else(|_| host.clone());
            b.ro_bind(real, format!("{LIB_DIR}/{name}"));
        }
        Some(match ld_library_path.filter(|p| !p.is_empty()) {
            Some(p) => format!("{LIB_DIR}:{p}"),
            None => LIB_DIR.to_string(),
        })
    }
}

/// Whether the spec's image asks for GPUs the way the NVIDIA images do:
/// `NVIDIA_VISIBLE_DEVICES` set, and not to `void` or nothing.
pub fn image_wants_gpu(env: &std::collections::BTreeMap<String, String>) -> bool {
    env.get("NVIDIA_VISIBLE_DEVICES")
        .is_some_and(|v| !v.trim().is_empty() && v.trim() != "void")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::Network;

    const LDCONFIG: &str = "1234 libs found in cache `/etc/ld.so.cache'
\tlibz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1
\tlibnvidia-ml.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1
\tlibnvidia-ml.so.1 (libc6) => /usr/lib/i386-linux-gnu/libnvidia-ml.so.1
\tlibnvidia-mlx.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libnvidia-mlx.so.1
\tlibcudart.so.12 (libc6,x86-64) => /usr/local/cuda/lib64/libcudart.so.12
\tlibcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1
\tlibcuda.so (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so
Cache generated by: ldconfig (GNU libc) stable release version 2.36
";

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn ldconfig_cache_gives_the_driver_libraries_of_this_architecture() {
        let libs = parse_ldconfig(LDCONFIG);
        let names: Vec<&str> = libs.iter().map(|(_, n)| n.as_str()).collect();
        // Not libz, not the CUDA runtime (the image's), not a look-alike,
        // not the 32-bit copy.
        assert_eq!(names, ["libnvidia-ml.so.1", "libcuda.so.1", "libcuda.so"]);
        assert_eq!(
            libs[0].0,
            Path::new("/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1")
        );
    }

    fn mknod_char(path: &Path) -> bool {
        use rustix::fs::{mknodat, FileType, Mode, CWD};
        mknodat(
            CWD,
            path,
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            rustix::fs::makedev(195, 0),
        )
        .is_ok()
    }

    /// A fake /dev with a GPU's nodes (character devices where this user
    /// may make them, plain files otherwise) and a fake driver directory.
    fn fake_host(dir: &Path) -> (PathBuf, PathBuf) {
        let dev = dir.join("dev");
        fs::create_dir_all(dev.join("dri")).unwrap();
        for n in ["nvidia0", "nvidiactl", "nvidia-uvm"] {
            if !mknod_char(&dev.join(n)) {
                fs::write(dev.join(n), "").unwrap();
            }
        }
        for n in ["null", "nvme0", "nvidiafoo"] {
            fs::write(dev.join(n), "").unwrap();
        }
        let lib = dir.join("driver");
        fs::create_dir_all(&lib).unwrap();
        fs::write(lib.join("libcuda.so.550.54.15"), "elf").unwrap();
        std::os::unix::fs::symlink("libcuda.so.550.54.15", lib.join("libcuda.so.1")).unwrap();
        fs::write(lib.join("libnvidia-ml.so.1"), "elf").unwrap();
        fs::write(lib.join("libfoo.so.1"), "elf").unwrap();
        (dev, lib)
    }

    #[test]
    fn a_fake_gpu_is_bound_into_the_sandbox_devices_and_driver_libraries() {
        let tmp = tempfile::tempdir().unwrap();
        let (dev, lib) = fake_host(tmp.path());
        let devices = devices_in(&dev);
        let names: Vec<&str> = devices.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["dri", "nvidia-uvm", "nvidia0", "nvidiactl"]);
        if rustix::process::geteuid().is_root() {
            let m = fs::metadata(dev.join("nvidia0")).unwrap();
            assert!(std::os::unix::fs::FileTypeExt::is_char_device(
                &m.file_type()
            ));
        }
        let gpu = Gpu {
            devices,
            libraries: libraries_in(std::slice::from_ref(&lib)),
        };
        assert_eq!(gpu.open_paths(), [LIB_DIR]);
        let mut b = Builder::new(Network::Host);
        let ld = gpu.apply(&mut b, Some("/opt/app/lib"));
        assert_eq!(ld.as_deref(), Some("/usr/local/nvidia/lib64:/opt/app/lib"));
        assert_eq!(
            b.binds("--dev-bind"),
            [
                (dev.join("dri"), PathBuf::from("/dev/dri")),
                (dev.join("nvidia-uvm"), PathBuf::from("/dev/nvidia-uvm")),
                (dev.join("nvidia0"), PathBuf::from("/dev/nvidia0")),
                (dev.join("nvidiactl"), PathBuf::from("/dev/nvidiactl")),
            ]
        );
        let lib = fs::canonicalize(&lib).unwrap();
        assert_eq!(
            b.binds("--ro-bind"),
            [
                // The symlink's target, at the symlink's name.
                (
                    lib.join("libcuda.so.550.54.15"),
                    PathBuf::from("/usr/local/nvidia/lib64/libcuda.so.1")
                ),
                (
                    lib.join("libcuda.so.550.54.15"),
                    PathBuf::from("/usr/local/nvidia/lib64/libcuda.so.550.54.15")
                ),
                (
                    lib.join("libnvidia-ml.so.1"),
                    PathBuf::from("/usr/local/nvidia/lib64/libnvidia-ml.so.1")
                ),
            ]
        );
    }

    #[test]
    fn no_nvidia_node_is_no_gpu() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("dri")).unwrap();
        fs::write(tmp.path().join("null"), "").unwrap();
        assert!(devices_in(tmp.path()).is_empty());
        assert!(devices_in(&tmp.path().join("missing")).is_empty());
    }

    #[test]
    fn the_image_asks_for_gpus_with_nvidia_visible_devices() {
        let mut env = std::collections::BTreeMap::new();
        assert!(!image_wants_gpu(&env));
        env.insert("NVIDIA_VISIBLE_DEVICES".to_string(), "all".to_string());
        assert!(image_wants_gpu(&env));
        env.insert("NVIDIA_VISIBLE_DEVICES".to_string(), "void".to_string());
        assert!(!image_wants_gpu(&env));
    }
}
