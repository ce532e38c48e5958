//! The machine the environment is built for: its wheel tags (PEP 425, in
//! pip's order of preference) and its PEP 508 marker environment.

use std::collections::HashMap;
use std::fmt;

use pep508_rs::{MarkerEnvironment, MarkerEnvironmentBuilder};

/// The Python implementation of the target. Only CPython for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Implementation {
    CPython,
}

/// The CPU architecture of the target, as spelled in platform tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// The tag and `platform_machine` spelling (`x86_64`, `aarch64`).
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }
}

/// The C library of a Linux target, with its version: it decides which
/// `manylinux_X_Y` (glibc) or `musllinux_X_Y` (musl) wheels run there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Libc {
    Glibc(u32, u32),
    Musl(u32, u32),
}

/// The target of a resolution: not the host, the machine the environment
/// will run on. Only Linux targets are described.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// `(major, minor)`, e.g. `(3, 11)`.
    pub python_version: (u32, u32),
    /// The micro version, for `python_full_version` markers and
    /// `Requires-Python` checks (Debian bookworm's python3.11 is 3.11.2).
    pub python_patch: u32,
    pub implementation: Implementation,
    pub arch: Arch,
    pub libc: Libc,
}

impl Target {
    /// CPython `major.minor.0` on Linux with glibc `glibc.0.glibc.1`.
    pub fn cpython_glibc(python_version: (u32, u32), arch: Arch, glibc: (u32, u32)) -> Target {
        Target {
            python_version,
            python_patch: 0,
            implementation: Implementation::CPython,
            arch,
            libc: Libc::Glibc(glibc.0, glibc.1),
        }
    }

    /// `3.11`
    pub fn python_version_string(&self) -> String {
        format!("{}.{}", self.python_version.0, self.python_version.1)
    }

    /// `3.11.2`
    pub fn python_full_version_string(&self) -> String {
        format!(
            "{}.{}.{}",
            self.python_version.0, self.python_version.1, self.python_patch
        )
    }

    /// Platform tags, most specific first, as `packaging.tags` orders them
    /// for Linux: `manylinux_2_Y` from the target's glibc down to 2.5 (2.17
    /// for architectures other than x86_64 and i686), each legacy alias
    /// (`manylinux2014`, `manylinux2010`, `manylinux1`) right after the
    /// `manylinux_2_Y` it stands for; or `musllinux_1_Y` down to 1.0; then
    /// `linux_<arch>`.
    pub fn platform_tags(&self) -> Vec<String> {
        let arch = self.arch.as_str();
        let mut tags = Vec::new();
        match self.libc {
            Libc::Glibc(major, minor) => {
                // packaging's `too_old_glibc2`: 2.4 for x86 (manylinux1
                // was glibc 2.5), 2.16 elsewhere.
                let oldest = match self.arch {
                    Arch::X86_64 => 5,
                    Arch::Aarch64 => 17,
                };
                if major == 2 {
                    for m in (oldest..=minor).rev() {
                        tags.push(format!("manylinux_2_{m}_{arch}"));
                        let legacy = match m {
                            17 => Some("manylinux2014"),
                            12 => Some("manylinux2010"),
                            5 => Some("manylinux1"),
                            _ => None,
                        };
                        if let Some(legacy) = legacy {
                            // manylinux1/2010 were only defined for x86.
                            if m == 17 || self.arch == Arch::X86_64 {
                                tags.push(format!("{legacy}_{arch}"));
                            }
                        }
                    }
                }
            }
            Libc::Musl(major, minor) => {
                for m in (0..=minor).rev() {
                    tags.push(format!("musllinux_{major}_{m}_{arch}"));
                }
            }
        }
        tags.push(format!("linux_{arch}"));
        tags
    }

    /// Every compatible `(python, abi, platform)` tag, most preferred first,
    /// in the order of `packaging.tags.sys_tags()` for CPython (what pip
    /// uses):
    ///
    /// 1. `cp311-cp311-<platform>` for each platform tag;
    /// 2. `cp311-abi3-<platform>`, then `cp311-none-<platform>`;
    /// 3. `cp310-abi3-<platform>` down to `cp32-abi3-<platform>`;
    /// 4. `py311-none-<platform>`, `py3-none-<platform>`, `py310-none-…`
    ///    down to `py30-none-<platform>`;
    /// 5. `cp311-none-any`, then `py311-none-any`, `py3-none-any`,
    ///    `py310-none-any` … `py30-none-any`.
    pub fn tags(&self) -> Vec<WheelTag> {
        let (major, minor) = self.python_version;
        let platforms = self.platform_tags();
        let cp = format!("cp{major}{minor}");
        let mut tags = Vec::new();
        let mut push = |py: &str, abi: &str, platform: &str| {
            tags.push(WheelTag {
                python: py.to_owned(),
                abi: abi.to_owned(),
                platform: platform.to_owned(),
            })
        };
        for p in &platforms {
            push(&cp, &cp, p);
        }
        // abi3 applies to CPython >= 3.2.
        let abi3 = major == 3 && minor >= 2;
        if abi3 {
            for p in &platforms {
                push(&cp, "abi3", p);
            }
        }
        for p in &platforms {
            push(&cp, "none", p);
        }
        if abi3 {
            for m in (2..minor).rev() {
                let older = format!("cp{major}{m}");
                for p in &platforms {
                    push(&older, "abi3", p);
                }
            }
        }
        // packaging's `_py_interpreter_range`: py311, py3, py310, ..., py30.
        let mut py_range = vec![format!("py{major}{minor}"), format!("py{major}")];
        py_range.extend((0..minor).rev().map(|m| format!("py{major}{m}")));
        for py in &py_range {
            for p in &platforms {
                push(py, "none", p);
            }
        }
        push(&cp, "none", "any");
        for py in &py_range {
            push(py, "none", "any");
        }
        tags
    }

    /// The PEP 508 marker environment of the target. `platform_release` and
    /// `platform_version` (the kernel's) are unknown for a target and are
    /// empty strings.
    pub fn marker_environment(&self) -> MarkerEnvironment {
        let full = self.python_full_version_string();
        let short = self.python_version_string();
        let (implementation_name, platform_python_implementation) = match self.implementation {
            Implementation::CPython => ("cpython", "CPython"),
        };
        MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
            implementation_name,
            implementation_version: &full,
            os_name: "posix",
            platform_machine: self.arch.as_str(),
            platform_python_implementation,
            platform_release: "",
            platform_system: "Linux",
            platform_version: "",
            python_full_version: &full,
            python_version: &short,
            sys_platform: "linux",
        })
        .expect("numeric Python versions always parse")
    }

    /// The tags ranked: a map from tag to its position in [`Target::tags`].
    pub(super) fn tag_ranks(&self) -> TagRanks {
        let ranks = self
            .tags()
            .into_iter()
            .enumerate()
            .map(|(i, t)| ((t.python, t.abi, t.platform), i))
            .collect();
        TagRanks { ranks }
    }

    /// How well a wheel's tags fit the target: the position of its best tag
    /// in [`Target::tags`] (lower is better), `None` when none applies.
    /// Build this once per use when ranking many files.
    pub fn wheel_rank(&self, python: &str, abi: &str, platform: &str) -> Option<usize> {
        self.tag_ranks().rank(python, abi, platform)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let imp = match self.implementation {
            Implementation::CPython => "cp",
        };
        let libc = match self.libc {
            Libc::Glibc(a, b) => format!("glibc {a}.{b}"),
            Libc::Musl(a, b) => format!("musl {a}.{b}"),
        };
        write!(
            f,
            "{imp}{}{} {} linux {libc} (Python {})",
            self.python_version.0,
            self.python_version.1,
            self.arch.as_str(),
            self.python_full_version_string()
        )
    }
}

/// One PEP 425 tag triple.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WheelTag {
    pub python: String,
    pub abi: String,
    pub platform: String,
}

impl fmt::Display for WheelTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.python, self.abi, self.platform)
    }
}

/// Tag → preference (lower is better).
#[derive(Debug, Clone)]
pub(super) struct TagRanks {
    ranks: HashMap<(String, String, String), usize>,
}

impl TagRanks {
    /// The best rank among the tags a wheel file name's (possibly
    /// compressed, `py2.py3`) tag sets expand to; `None` if none applies.
    pub fn rank(&self, python: &str, abi: &str, platform: &str) -> Option<usize> {
        let mut best: Option<usize> = None;
        for py in python.split('.') {
            for a in abi.split('.') {
                for p in platform.split('.') {
                    if let Some(&r) = self.ranks.get(&(py.to_owned(), a.to_owned(), p.to_owned())) {
                        best = Some(best.map_or(r, |b| b.min(r)));
                    }
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target::cpython_glibc((3, 11), Arch::X86_64, (2, 36))
    }

    #[test]
    fn platform_tag_order() {
        let p = target().platform_tags();
        assert_eq!(p[0], "manylinux_2_36_x86_64");
        let pos = |t: &str| p.iter().position(|x| x == t).unwrap();
        assert_eq!(
            pos("manylinux2014_x86_64"),
            pos("manylinux_2_17_x86_64") + 1
        );
        assert_eq!(
            pos("manylinux2010_x86_64"),
            pos("manylinux_2_12_x86_64") + 1
        );
        assert_eq!(pos("manylinux1_x86_64"), pos("manylinux_2_5_x86_64") + 1);
        assert_eq!(p.last().unwrap(), "linux_x86_64");
        assert!(!p.iter().any(|t| t.contains("manylinux_2_4_")));
        assert!(!p.iter().any(|t| t.contains("musllinux")));
        // 32 manylinux_2_Y (36..=5), three aliases, linux_x86_64.
        assert_eq!(p.len(), 32 + 3 + 1);

        let arm = Target::cpython_glibc((3, 11), Arch::Aarch64, (2, 28)).platform_tags();
        assert_eq!(arm[0], "manylinux_2_28_aarch64");
        assert!(arm.contains(&"manylinux2014_aarch64".to_owned()));
        assert!(!arm
            .iter()
            .any(|t| t.contains("manylinux1") || t.contains("2_16")));

        let musl = Target {
            libc: Libc::Musl(1, 2),
            ..target()
        }
        .platform_tags();
        assert_eq!(
            musl,
            [
                "musllinux_1_2_x86_64",
                "musllinux_1_1_x86_64",
                "musllinux_1_0_x86_64",
                "linux_x86_64"
            ]
        );
    }

    #[test]
    fn tag_order_matches_pip() {
        let tags: Vec<String> = target().tags().iter().map(|t| t.to_string()).collect();
        let pos = |t: &str| {
            tags.iter()
                .position(|x| x == t)
                .unwrap_or_else(|| panic!("{t} missing"))
        };
        assert_eq!(tags[0], "cp311-cp311-manylinux_2_36_x86_64");
        assert!(pos("cp311-cp311-linux_x86_64") < pos("cp311-abi3-manylinux_2_36_x86_64"));
        assert!(pos("cp311-abi3-linux_x86_64") < pos("cp311-none-manylinux_2_36_x86_64"));
        assert!(pos("cp311-none-linux_x86_64") < pos("cp310-abi3-manylinux_2_36_x86_64"));
        assert!(pos("cp32-abi3-linux_x86_64") < pos("py311-none-manylinux_2_36_x86_64"));
        assert!(pos("py311-none-linux_x86_64") < pos("py3-none-manylinux_2_36_x86_64"));
        assert!(pos("py3-none-linux_x86_64") < pos("py310-none-manylinux_2_36_x86_64"));
        assert!(pos("py30-none-linux_x86_64") < pos("cp311-none-any"));
        assert_eq!(
            &tags[tags.len() - 14..tags.len() - 11],
            ["cp311-none-any", "py311-none-any", "py3-none-any"]
        );
        assert_eq!(tags.last().unwrap(), "py30-none-any");
        assert!(!tags
            .iter()
            .any(|t| t.starts_with("cp31-") || t.contains("cp312")));
        assert!(!tags
            .iter()
            .any(|t| t.contains("win") || t.contains("macosx")));
    }

    #[test]
    fn ranks_expand_compressed_tags() {
        let r = target().tag_ranks();
        let many = r
            .rank(
                "cp311",
                "cp311",
                "manylinux_2_17_x86_64.manylinux2014_x86_64",
            )
            .unwrap();
        assert_eq!(
            many,
            r.rank("cp311", "cp311", "manylinux_2_17_x86_64").unwrap()
        );
        assert!(r.rank("py2.py3", "none", "any").is_some());
        assert!(r.rank("cp311", "cp311", "win_amd64").is_none());
        assert!(r.rank("cp311", "cp311", "musllinux_1_1_x86_64").is_none());
        assert!(r.rank("cp312", "cp312", "manylinux_2_17_x86_64").is_none());
        assert!(r.rank("cp311", "cp311", "manylinux_2_38_x86_64").is_none());
        assert!(
            r.rank("cp311", "cp311", "manylinux_2_28_x86_64").unwrap()
                < r.rank("cp311", "cp311", "manylinux_2_17_x86_64").unwrap()
        );
    }

    #[test]
    fn marker_environment_is_the_targets() {
        use pep508_rs::{MarkerTree, Requirement};
        use std::str::FromStr;
        let env = target().marker_environment();
        let eval = |m: &str| {
            let r = Requirement::<pep508_rs::VerbatimUrl>::from_str(&format!("x; {m}")).unwrap();
            let tree: MarkerTree = r.marker;
            tree.evaluate(&env, &[])
        };
        assert!(eval("sys_platform == 'linux'"));
        assert!(eval("platform_machine == 'x86_64'"));
        assert!(eval("python_version == '3.11'"));
        assert!(eval("python_full_version >= '3.11.0'"));
        assert!(eval("os_name == 'posix' and platform_system == 'Linux'"));
        assert!(eval("implementation_name == 'cpython'"));
        assert!(eval("platform_python_implementation == 'CPython'"));
        assert!(!eval("python_version < '3.11'"));
        assert!(!eval("sys_platform == 'win32'"));
        assert!(!eval("platform_system == 'Darwin'"));
    }
}
