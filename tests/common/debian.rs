//! A signed Debian archive for loopback tests: packages built with
//! dpkg-deb, a Packages index, a Release clearsigned with a throwaway key.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::http::Behaviour;
use super::{ok, require_tool, write};

/// A package to put in the archive.
pub struct Pkg<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub depends: Option<&'a str>,
    /// (path inside the package, bytes, mode)
    pub files: Vec<(&'a str, Vec<u8>, u32)>,
}

pub struct Archive {
    pub keyring: PathBuf,
    /// Routes under `/debian` for `http::serve`.
    pub routes: Vec<(String, Behaviour)>,
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Build suite `suite` (component main, amd64) holding `pkgs`.
pub fn build_archive(dir: &Path, suite: &str, pkgs: &[Pkg]) -> Archive {
    require_tool("gpg", "gnupg");
    require_tool("dpkg-deb", "dpkg");
    let mut routes = Vec::new();
    let mut packages = String::new();
    for p in pkgs {
        let root = dir.join(format!("pkg-{}", p.name));
        for (path, data, mode) in &p.files {
            write(root.join(path.trim_start_matches('/')), data, *mode);
        }
        let mut control = format!(
            "Package: {}\nVersion: {}\nArchitecture: amd64\nMaintainer: test <t@example.invalid>\nDescription: test\n",
            p.name, p.version
        );
        if let Some(d) = p.depends {
            control.push_str(&format!("Depends: {d}\n"));
        }
        write(root.join("DEBIAN/control"), control.as_bytes(), 0o644);
        let file = format!("{}_{}_amd64.deb", p.name, p.version);
        let deb_path = dir.join(&file);
        let o = Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(&root)
            .arg(&deb_path)
            .output()
            .unwrap();
        ok(o, "dpkg-deb --build");
        let deb = fs::read(&deb_path).unwrap();
        let filename = format!("pool/main/{}/{}/{file}", &p.name[..1], p.name);
        packages.push_str(&format!(
            "Package: {}\nVersion: {}\nArchitecture: amd64\n{}Filename: {filename}\nSize: {}\nSHA256: {}\nDescription: test\n\n",
            p.name,
            p.version,
            p.depends.map(|d| format!("Depends: {d}\n")).unwrap_or_default(),
            deb.len(),
            sha256_hex(&deb)
        ));
        routes.push((format!("/debian/{filename}"), Behaviour::Serve(deb)));
    }
    let packages = packages.into_bytes();
    let release = format!(
        "Origin: test\nSuite: {suite}\nCodename: {suite}\nArchitectures: amd64\nComponents: main\nSHA256:\n {} {} main/binary-amd64/Packages\n",
        sha256_hex(&packages),
        packages.len()
    );
    let gnupg = dir.join("gnupg");
    fs::create_dir(&gnupg).unwrap();
    fs::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let gpg = |args: &[&str]| {
        let o = Command::new("gpg")
            .env("GNUPGHOME", &gnupg)
            .args([
                "--batch",
                "--yes",
                "--passphrase",
                "",
                "--pinentry-mode",
                "loopback",
            ])
            .args(args)
            .output()
            .unwrap();
        ok(o, &format!("gpg {args:?}"));
    };
    gpg(&[
        "--quick-gen-key",
        "envbuild test archive <archive@example.invalid>",
        "ed25519",
        "sign",
        "never",
    ]);
    let keyring = dir.join("keyring.gpg");
    gpg(&["--output", keyring.to_str().unwrap(), "--export"]);
    let release_path = dir.join("Release");
    fs::write(&release_path, release).unwrap();
    let signed = dir.join("InRelease");
    gpg(&[
        "--output",
        signed.to_str().unwrap(),
        "--clearsign",
        release_path.to_str().unwrap(),
    ]);
    routes.push((
        format!("/debian/dists/{suite}/InRelease"),
        Behaviour::Serve(fs::read(&signed).unwrap()),
    ));
    routes.push((
        format!("/debian/dists/{suite}/main/binary-amd64/Packages"),
        Behaviour::Serve(packages),
    ));
    Archive { keyring, routes }
}
