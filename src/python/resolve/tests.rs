//! Offline tests against a loopback PEP 691 index of generated wheels, and
//! one networked test (ignored) against the index in `ENVBUILD_INDEX_URL`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

use super::*;

// ---- a generated index --------------------------------------------------

/// One file of a generated project.
#[derive(Clone)]
struct FileSpec {
    filename: String,
    /// Wheel contents (METADATA inside), or sdist bytes.
    bytes: Vec<u8>,
    metadata: Option<String>,
    requires_python: Option<String>,
    yanked: Option<String>,
    upload_time: Option<String>,
    /// Serve `{url}.metadata` (PEP 658) and announce it.
    pep658: bool,
    /// Announce a wrong sha256 for the `.metadata` file.
    bad_metadata_hash: bool,
}

impl FileSpec {
    fn requires_python(mut self, spec: &str) -> Self {
        self.requires_python = Some(spec.to_owned());
        self
    }
    fn yanked(mut self, reason: &str) -> Self {
        self.yanked = Some(reason.to_owned());
        self
    }
    fn uploaded(mut self, when: &str) -> Self {
        self.upload_time = Some(when.to_owned());
        self
    }
    fn no_pep658(mut self) -> Self {
        self.pep658 = false;
        self
    }
    fn bad_metadata_hash(mut self) -> Self {
        self.bad_metadata_hash = true;
        self
    }
}

fn metadata_text(name: &str, version: &str, requires: &[&str], extra_headers: &str) -> String {
    let mut m = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{extra_headers}");
    for r in requires {
        m.push_str(&format!("Requires-Dist: {r}\n"));
    }
    m.push_str("\nA description that mentions Requires-Dist: nothing.\n");
    m
}

fn zip_bytes(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut zw = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in members {
        zw.start_file(name.as_str(), opts).unwrap();
        zw.write_all(data).unwrap();
    }
    zw.finish().unwrap().into_inner()
}

/// A wheel `{name}-{version}-{tag}.whl` whose METADATA requires `requires`
/// (plus `extra_headers`, e.g. `Requires-Python: >=3.12\n`).
fn wheel_with(
    name: &str,
    version: &str,
    tag: &str,
    requires: &[&str],
    extra_headers: &str,
) -> FileSpec {
    let escaped = name.replace('-', "_");
    let filename = format!("{escaped}-{version}-{tag}.whl");
    let meta = metadata_text(name, version, requires, extra_headers);
    let dist_info = format!("{escaped}-{version}.dist-info");
    // Padding makes the wheels bigger than one range chunk sometimes.
    let bytes = zip_bytes(&[
        (format!("{escaped}/__init__.py"), b"x = 1\n".to_vec()),
        (format!("{dist_info}/METADATA"), meta.clone().into_bytes()),
        (
            format!("{dist_info}/WHEEL"),
            format!("Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: {tag}\n").into_bytes(),
        ),
        (format!("{dist_info}/RECORD"), Vec::new()),
    ]);
    FileSpec {
        filename,
        bytes,
        metadata: Some(meta),
        requires_python: None,
        yanked: None,
        upload_time: Some("2023-01-01T00:00:00Z".into()),
        pep658: true,
        bad_metadata_hash: false,
    }
}

fn wheel(name: &str, version: &str, requires: &[&str]) -> FileSpec {
    wheel_with(name, version, "py3-none-any", requires, "")
}

/// An sdist with a static PKG-INFO and no requirements.
fn sdist(name: &str, version: &str) -> FileSpec {
    sdist_with(
        name,
        version,
        &[("PKG-INFO", &pkg_info(name, version, "2.2", &[]))],
    )
}

fn sdist_file(name: &str, version: &str, bytes: Vec<u8>) -> FileSpec {
    FileSpec {
        filename: format!("{name}-{version}.tar.gz"),
        bytes,
        metadata: None,
        requires_python: None,
        yanked: None,
        upload_time: Some("2023-01-01T00:00:00Z".into()),
        pep658: false,
        bad_metadata_hash: false,
    }
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

#[derive(Default)]
struct TestIndex {
    projects: BTreeMap<String, Vec<FileSpec>>,
}

impl TestIndex {
    fn add(&mut self, project: &str, file: FileSpec) -> &mut Self {
        self.projects
            .entry(project.to_owned())
            .or_default()
            .push(file);
        self
    }
}

// ---- a loopback HTTP server -----------------------------------------------

struct Route {
    content_type: &'static str,
    body: Vec<u8>,
}

#[derive(Default)]
struct ServerState {
    routes: BTreeMap<String, Route>,
    /// "GET /path" or "GET /path bytes=a-b" per request.
    log: Vec<String>,
    /// Whether Range requests get 206.
    ranges: bool,
    /// What the pages' answers carry for caches.
    caching: Caching,
}

/// The validators and freshness the server's pages carry.
#[derive(Default, Clone)]
struct Caching {
    /// `ETag: "<sha256 of the body>"`, and 304 for a matching If-None-Match.
    etag: bool,
    /// A `Last-Modified` per page (changed when the page changes), and 304
    /// for an If-Modified-Since equal to it (a test server's simplification).
    last_modified: bool,
    /// `Cache-Control: max-age=N`.
    max_age: Option<u64>,
}

struct Server {
    base: String,
    state: Arc<Mutex<ServerState>>,
}

impl Server {
    fn start(index: &TestIndex) -> Server {
        Self::start_with(index, true)
    }

    fn start_with(index: &TestIndex, ranges: bool) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut routes = BTreeMap::new();
        for (project, files) in &index.projects {
            let mut entries = Vec::new();
            for f in files {
                let sha = sha256_hex(&f.bytes);
                let mut e = serde_json::json!({
                    "filename": f.filename,
                    // Relative to the page, as indexes may write them.
                    "url": format!("../../files/{}", f.filename),
                    "hashes": {"sha256": sha},
                    "requires-python": f.requires_python,
                    "size": f.bytes.len(),
                    "yanked": match &f.yanked { Some(r) if r.is_empty() => serde_json::json!(true), Some(r) => serde_json::json!(r), None => serde_json::json!(false) },
                });
                if let Some(t) = &f.upload_time {
                    e["upload-time"] = serde_json::json!(t);
                }
                if f.pep658 {
                    let meta = f.metadata.clone().unwrap();
                    let msha = if f.bad_metadata_hash {
                        "0".repeat(64)
                    } else {
                        sha256_hex(meta.as_bytes())
                    };
                    e["core-metadata"] = serde_json::json!({ "sha256": msha });
                    e["dist-info-metadata"] = serde_json::json!({ "sha256": msha });
                    routes.insert(
                        format!("/files/{}.metadata", f.filename),
                        Route {
                            content_type: "application/octet-stream",
                            body: meta.into_bytes(),
                        },
                    );
                }
                entries.push(e);
                routes.insert(
                    format!("/files/{}", f.filename),
                    Route {
                        content_type: "application/octet-stream",
                        body: f.bytes.clone(),
                    },
                );
            }
            let page = serde_json::json!({
                "meta": {"api-version": "1.1"},
                "name": project,
                "files": entries,
            });
            routes.insert(
                format!("/simple/{project}/"),
                Route {
                    content_type: "application/vnd.pypi.simple.v1+json",
                    body: serde_json::to_vec(&page).unwrap(),
                },
            );
        }
        let state = Arc::new(Mutex::new(ServerState {
            routes,
            log: Vec::new(),
            ranges,
            caching: Caching::default(),
        }));
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || serve(conn, &st));
            }
        });
        Server { base, state }
    }

    fn index_url(&self) -> String {
        format!("{}/simple/", self.base)
    }

    fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }

    fn set_caching(&self, caching: Caching) {
        self.state.lock().unwrap().caching = caching;
    }

    fn body(&self, path: &str) -> Vec<u8> {
        self.state.lock().unwrap().routes[path].body.clone()
    }
}

/// One request per connection (`Connection: close`).
fn serve(conn: TcpStream, state: &Mutex<ServerState>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut range: Option<(u64, u64)> = None;
    let mut if_none_match: Option<String> = None;
    let mut if_modified_since: Option<String> = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("if-none-match") {
                if_none_match = Some(v.trim().to_owned());
            }
            if k.eq_ignore_ascii_case("if-modified-since") {
                if_modified_since = Some(v.trim().to_owned());
            }
            if k.eq_ignore_ascii_case("range") {
                let v = v.trim().trim_start_matches("bytes=");
                if let Some((a, b)) = v.split_once('-') {
                    range = Some((a.parse().unwrap(), b.parse().unwrap()));
                }
            }
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    // A 206 says which bytes it holds (RFC 9110 §14.4), as the client checks.
    let (status, ctype, body, content_range) = {
        let mut st = state.lock().unwrap();
        let mut entry = match range {
            Some((a, b)) => format!("{method} {path} bytes={a}-{b}"),
            None => format!("{method} {path}"),
        };
        if let Some(v) = &if_none_match {
            entry.push_str(&format!(" if-none-match={v}"));
        }
        if let Some(v) = &if_modified_since {
            entry.push_str(&format!(" if-modified-since={v}"));
        }
        let ranges = st.ranges;
        let caching = st.caching.clone();
        let mut cache_headers = String::new();
        let mut not_modified = false;
        if let (Some(r), true) = (st.routes.get(&path), path.starts_with("/simple/")) {
            let sha = sha256_hex(&r.body);
            if caching.etag {
                let etag = format!("\"{sha}\"");
                not_modified |= if_none_match.as_deref() == Some(etag.as_str());
                cache_headers.push_str(&format!("ETag: {etag}\r\n"));
            }
            if caching.last_modified {
                // A date per body, from its hash.
                let n = u64::from_str_radix(&sha[..6], 16).unwrap();
                let lm = format!(
                    "Mon, {:02} Jan 2024 {:02}:{:02}:{:02} GMT",
                    1 + n % 28,
                    n / 28 % 24,
                    n / 672 % 60,
                    n / 40320 % 60
                );
                not_modified |= if_modified_since.as_deref() == Some(lm.as_str());
                cache_headers.push_str(&format!("Last-Modified: {lm}\r\n"));
            }
            if let Some(m) = caching.max_age {
                cache_headers.push_str(&format!("Cache-Control: max-age={m}\r\n"));
            }
        }
        entry.push_str(if not_modified { " -> 304" } else { "" });
        st.log.push(entry);
        if not_modified {
            (
                "304 Not Modified",
                "application/vnd.pypi.simple.v1+json",
                Vec::new(),
                cache_headers,
            )
        } else {
            match st.routes.get(&path) {
                None => (
                    "404 Not Found",
                    "text/plain",
                    b"not found".to_vec(),
                    String::new(),
                ),
                Some(r) => match range {
                    Some((a, b)) if ranges => {
                        let b = b.min(r.body.len() as u64 - 1);
                        (
                            "206 Partial Content",
                            r.content_type,
                            r.body[a as usize..=b as usize].to_vec(),
                            format!("Content-Range: bytes {a}-{b}/{}\r\n", r.body.len()),
                        )
                    }
                    _ => ("200 OK", r.content_type, r.body.clone(), cache_headers),
                },
            }
        }
    };
    let mut out = conn;
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n{content_range}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = out.write_all(head.as_bytes());
    if method != "HEAD" {
        let _ = out.write_all(&body);
    }
    let _ = out.flush();
    // Drain so the client sees a clean close.
    let _ = reader.read(&mut [0u8; 16]);
}

// ---- helpers ---------------------------------------------------------------

fn target() -> Target {
    Target::cpython_glibc((3, 11), Arch::X86_64, (2, 36))
}

fn options(server: &Server) -> ResolveOptions {
    ResolveOptions::new(server.index_url(), target())
}

fn versions(r: &Resolution) -> Vec<(String, String)> {
    r.packages
        .iter()
        .map(|p| (p.name.clone(), p.version.clone()))
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

// ---- tests -------------------------------------------------------------------

#[test]
fn transitive_dependencies_with_hashes_and_sizes() {
    let mut idx = TestIndex::default();
    idx.add("app", wheel("app", "1.0", &["lib-b>=1.0", "Lib_C"]))
        .add("app", wheel("app", "2.0", &["lib-b>=2.0", "lib-c<3"]))
        .add("lib-b", wheel("lib-b", "1.5", &[]))
        .add("lib-b", wheel("lib-b", "2.1", &["lib-c>=2"]))
        .add("lib-b", wheel("lib-b", "3.0.dev1", &[]))
        .add("lib-c", wheel("lib-c", "2.0", &[]))
        .add("lib-c", wheel("lib-c", "2.5", &[]))
        .add("lib-c", wheel("lib-c", "3.0", &[]))
        .add("unrelated", wheel("unrelated", "1.0", &[]));
    let server = Server::start(&idx);
    let r = resolve(&["App"], &options(&server)).unwrap();
    assert_eq!(
        versions(&r),
        pairs(&[("app", "2.0"), ("lib-b", "2.1"), ("lib-c", "2.5")])
    );
    let app = r.get("app").unwrap();
    assert_eq!(app.dependencies, ["lib-b", "lib-c"]);
    assert_eq!(app.filename, "app-2.0-py3-none-any.whl");
    let served = &idx.projects["app"][1].bytes;
    assert_eq!(app.sha256, sha256_hex(served));
    assert_eq!(app.size, served.len() as u64);
    assert_eq!(
        app.url,
        format!("{}/files/app-2.0-py3-none-any.whl", server.base)
    );
    assert!(r.get("lib-c").unwrap().dependencies.is_empty());
    // Only the chosen versions' metadata was read.
    let log = server.log();
    assert!(log
        .iter()
        .any(|l| l == "GET /files/app-2.0-py3-none-any.whl.metadata"));
    assert!(!log.iter().any(|l| l.contains("app-1.0")));
    assert!(!log.iter().any(|l| l.contains("unrelated")));
    // The whole wheel was never downloaded.
    assert!(!log.iter().any(|l| l.ends_with(".whl")));
}

#[test]
fn extras_are_normalized_and_pull_their_dependencies() {
    let mut idx = TestIndex::default();
    idx.add(
        "app",
        wheel(
            "app",
            "1.0",
            &[
                "core",
                "cuda-lib; extra == 'gpu-support'",
                "docs-lib; extra == \"docs\"",
                "app[gpu-support]; extra == 'all'",
                "plot-lib[Fancy.Colors]; extra == 'all'",
            ],
        ),
    )
    .add("core", wheel("core", "1.0", &[]))
    .add("cuda-lib", wheel("cuda-lib", "12.1", &[]))
    .add("docs-lib", wheel("docs-lib", "1.0", &[]))
    .add(
        "plot-lib",
        wheel("plot-lib", "0.5", &["colour-lib; extra == 'fancy-colors'"]),
    )
    .add("colour-lib", wheel("colour-lib", "0.1", &[]));
    let server = Server::start(&idx);
    let r = resolve(&["app[GPU_Support]"], &options(&server)).unwrap();
    assert_eq!(
        versions(&r),
        pairs(&[("app", "1.0"), ("core", "1.0"), ("cuda-lib", "12.1")])
    );
    assert_eq!(r.get("app").unwrap().extras, ["gpu-support"]);
    assert_eq!(r.get("app").unwrap().dependencies, ["core", "cuda-lib"]);

    // An extra that names the package itself, and an extra's extra.
    let r = resolve(&["app[all]"], &options(&server)).unwrap();
    let names: Vec<String> = r.packages.iter().map(|p| p.name.clone()).collect();
    assert_eq!(names, ["app", "colour-lib", "core", "cuda-lib", "plot-lib"]);
    assert_eq!(r.get("app").unwrap().extras, ["all", "gpu-support"]);
    assert_eq!(r.get("plot-lib").unwrap().extras, ["fancy-colors"]);
}

#[test]
fn markers_are_evaluated_for_the_target() {
    let mut idx = TestIndex::default();
    idx.add(
        "app",
        wheel(
            "app",
            "1.0",
            &[
                "winonly; sys_platform == 'win32'",
                "backport; python_version < '3.11'",
                "modern-only; python_version >= '3.11'",
                "armthing; platform_machine == 'aarch64'",
                "linuxthing; platform_system == 'Linux' and os_name == 'posix'",
            ],
        ),
    );
    for n in [
        "winonly",
        "backport",
        "modern-only",
        "armthing",
        "linuxthing",
        "macos",
    ] {
        idx.add(n, wheel(n, "1.0", &[]));
    }
    let server = Server::start(&idx);
    let reqs = ["app", "macos; sys_platform == 'darwin'"];
    let r = resolve(&reqs, &options(&server)).unwrap();
    let names: Vec<&str> = r.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["app", "linuxthing", "modern-only"]);

    // The same requirements for a 3.10 aarch64 target, whatever the host.
    let mut opts = options(&server);
    opts.target = Target::cpython_glibc((3, 10), Arch::Aarch64, (2, 36));
    let r = resolve(&reqs, &opts).unwrap();
    let names: Vec<&str> = r.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["app", "armthing", "backport", "linuxthing"]);
}

#[test]
fn metadata_is_read_from_the_wheel_chosen_for_the_target() {
    let mut idx = TestIndex::default();
    idx.add(
        "torchlike",
        wheel_with(
            "torchlike",
            "2.1.0",
            "cp311-cp311-manylinux1_x86_64",
            &[
                "filelock",
                "nvidia-lib==12.1; platform_system == 'Linux' and platform_machine == 'x86_64'",
            ],
            "",
        ),
    )
    .add(
        "torchlike",
        wheel_with(
            "torchlike",
            "2.1.0",
            "cp311-cp311-win_amd64",
            &["filelock", "winhelper"],
            "",
        ),
    )
    .add(
        "torchlike",
        wheel_with(
            "torchlike",
            "2.1.0",
            "cp311-none-macosx_11_0_arm64",
            &["filelock", "machelper"],
            "",
        ),
    )
    .add("filelock", wheel("filelock", "3.0", &[]))
    .add(
        "nvidia-lib",
        wheel_with("nvidia-lib", "12.1", "py3-none-manylinux1_x86_64", &[], ""),
    )
    .add("winhelper", wheel("winhelper", "1.0", &[]))
    .add("machelper", wheel("machelper", "1.0", &[]));
    let server = Server::start(&idx);
    let r = resolve(&["torchlike==2.1.0"], &options(&server)).unwrap();
    assert_eq!(
        versions(&r),
        pairs(&[
            ("filelock", "3.0"),
            ("nvidia-lib", "12.1"),
            ("torchlike", "2.1.0")
        ])
    );
    assert_eq!(
        r.get("torchlike").unwrap().filename,
        "torchlike-2.1.0-cp311-cp311-manylinux1_x86_64.whl"
    );
    let log = server.log();
    assert!(log
        .iter()
        .any(|l| l == "GET /files/torchlike-2.1.0-cp311-cp311-manylinux1_x86_64.whl.metadata"));
    assert!(!log
        .iter()
        .any(|l| l.contains("win_amd64") || l.contains("macosx")));
}

#[test]
fn platform_tags_choose_the_right_wheel() {
    let mut idx = TestIndex::default();
    for tag in [
        "cp311-cp311-musllinux_1_1_x86_64",
        "cp311-cp311-win_amd64",
        "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64",
        "cp311-cp311-manylinux_2_28_x86_64",
        "cp311-cp311-manylinux_2_39_x86_64",
        "cp311-cp311-manylinux_2_28_aarch64",
        "cp312-cp312-manylinux_2_28_x86_64",
        "cp37-abi3-manylinux_2_28_x86_64",
        "py3-none-any",
    ] {
        idx.add("fast", wheel_with("fast", "1.0", tag, &[], ""));
    }
    // Only a wheel for Windows and one for musl in 2.0: not usable here.
    idx.add(
        "fast",
        wheel_with("fast", "2.0", "cp311-cp311-win_amd64", &[], ""),
    )
    .add(
        "fast",
        wheel_with("fast", "2.0", "cp311-cp311-musllinux_1_1_x86_64", &[], ""),
    );
    let server = Server::start(&idx);
    let pick = |t: Target| {
        let mut o = options(&server);
        o.target = t;
        let r = resolve(&["fast"], &o).unwrap();
        let p = r.get("fast").unwrap();
        (p.version.clone(), p.filename.clone())
    };
    assert_eq!(
        pick(target()),
        (
            "1.0".into(),
            "fast-1.0-cp311-cp311-manylinux_2_28_x86_64.whl".into()
        )
    );
    assert_eq!(
        pick(Target::cpython_glibc((3, 11), Arch::X86_64, (2, 17))),
        (
            "1.0".into(),
            "fast-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl".into()
        )
    );
    assert_eq!(
        pick(Target::cpython_glibc((3, 12), Arch::X86_64, (2, 36))),
        (
            "1.0".into(),
            "fast-1.0-cp312-cp312-manylinux_2_28_x86_64.whl".into()
        )
    );
    assert_eq!(
        pick(Target::cpython_glibc((3, 13), Arch::X86_64, (2, 36))),
        (
            "1.0".into(),
            "fast-1.0-cp37-abi3-manylinux_2_28_x86_64.whl".into()
        )
    );
    assert_eq!(
        pick(Target::cpython_glibc((3, 12), Arch::X86_64, (2, 17))),
        ("1.0".into(), "fast-1.0-py3-none-any.whl".into())
    );
    assert_eq!(
        pick(Target {
            libc: Libc::Musl(1, 2),
            ..target()
        }),
        (
            "2.0".into(),
            "fast-2.0-cp311-cp311-musllinux_1_1_x86_64.whl".into()
        )
    );
    assert_eq!(
        pick(Target::cpython_glibc((3, 11), Arch::Aarch64, (2, 31))),
        (
            "1.0".into(),
            "fast-1.0-cp311-cp311-manylinux_2_28_aarch64.whl".into()
        )
    );
}

#[test]
fn requires_python_filters_versions() {
    let mut idx = TestIndex::default();
    idx.add(
        "modern",
        wheel("modern", "2.0", &[]).requires_python(">=3.12"),
    )
    .add(
        "modern",
        wheel("modern", "1.5", &[]).requires_python(">=3.8"),
    )
    .add("modern", wheel("modern", "1.0", &[]))
    // The index does not say; the metadata does.
    .add(
        "sneaky",
        wheel_with(
            "sneaky",
            "2.0",
            "py3-none-any",
            &[],
            "Requires-Python: >=3.13\n",
        ),
    )
    .add(
        "sneaky",
        wheel_with(
            "sneaky",
            "1.0",
            "py3-none-any",
            &[],
            "Requires-Python: >=3.7\n",
        ),
    )
    .add(
        "future",
        wheel("future", "1.0", &[]).requires_python(">=3.12"),
    );
    let server = Server::start(&idx);
    let r = resolve(&["modern", "sneaky"], &options(&server)).unwrap();
    assert_eq!(versions(&r), pairs(&[("modern", "1.5"), ("sneaky", "1.0")]));
    assert_eq!(
        r.get("modern").unwrap().requires_python.as_deref(),
        Some(">=3.8")
    );
    assert_eq!(
        r.get("sneaky").unwrap().requires_python.as_deref(),
        Some(">=3.7")
    );

    let e = resolve(&["future"], &options(&server)).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, ResolveError::NoSolution { .. }), "{text}");
    assert!(text.contains("future 1.0 needs Python >=3.12"), "{text}");
}

#[test]
fn yanked_versions_only_when_pinned() {
    let mut idx = TestIndex::default();
    idx.add("yank", wheel("yank", "1.0", &[]))
        .add("yank", wheel("yank", "2.0", &[]).yanked("broken build"));
    let server = Server::start(&idx);
    let r = resolve(&["yank"], &options(&server)).unwrap();
    assert_eq!(versions(&r), pairs(&[("yank", "1.0")]));
    let r = resolve(&["yank>=1.5"], &options(&server)).unwrap_err();
    assert!(r.to_string().contains("yank 2.0 is yanked"), "{r}");
    let r = resolve(&["yank==2.0"], &options(&server)).unwrap();
    assert_eq!(versions(&r), pairs(&[("yank", "2.0")]));
}

#[test]
fn exclude_newer_uses_upload_time() {
    let mut idx = TestIndex::default();
    idx.add(
        "fresh",
        wheel("fresh", "1.0", &[]).uploaded("2023-01-01T00:00:00Z"),
    )
    .add(
        "fresh",
        wheel("fresh", "2.0", &[]).uploaded("2024-06-01T12:00:00.123456Z"),
    )
    .add(
        "fresh",
        wheel("fresh", "1.1", &[]).uploaded("2023-12-31T23:59:59Z"),
    );
    let server = Server::start(&idx);
    let mut o = options(&server);
    assert_eq!(
        versions(&resolve(&["fresh"], &o).unwrap()),
        pairs(&[("fresh", "2.0")])
    );
    o.exclude_newer = Some("2024-01-01".parse().unwrap());
    assert_eq!(
        versions(&resolve(&["fresh"], &o).unwrap()),
        pairs(&[("fresh", "1.1")])
    );
    o.exclude_newer = Some("2023-06-01T00:00:00Z".parse().unwrap());
    assert_eq!(
        versions(&resolve(&["fresh"], &o).unwrap()),
        pairs(&[("fresh", "1.0")])
    );
    // A version hidden by the cut-off is not "nonexistent", but unavailable.
    let e = resolve(&["fresh==2.0"], &o).unwrap_err().to_string();
    assert!(e.contains("left out by exclude-newer"), "{e}");
}

#[test]
fn conflicts_are_explained_by_pubgrub() {
    let mut idx = TestIndex::default();
    idx.add("left", wheel("left", "1.0", &["shared==1.0"]))
        .add("right", wheel("right", "1.0", &["shared>=2.0"]))
        .add("shared", wheel("shared", "1.0", &[]))
        .add("shared", wheel("shared", "2.0", &[]));
    let server = Server::start(&idx);
    let e = resolve(&["left", "right"], &options(&server)).unwrap_err();
    eprintln!("{e}");
    let ResolveError::NoSolution { explanation, .. } = &e else {
        panic!("{e}")
    };
    assert!(explanation.contains("left"), "{explanation}");
    assert!(explanation.contains("right"), "{explanation}");
    assert!(explanation.contains("shared==1.0"), "{explanation}");
    assert!(explanation.contains("shared>=2.0"), "{explanation}");
    assert!(e.to_string().contains(&server.index_url()), "{e}");
}

#[test]
fn a_pin_of_a_missing_version_names_the_nearest() {
    let mut idx = TestIndex::default();
    for v in ["0.9", "1.0", "1.4", "1.6", "2.0", "3.0"] {
        idx.add("pinme", wheel("pinme", v, &[]));
    }
    let server = Server::start(&idx);
    let e = resolve(&["pinme==1.5"], &options(&server)).unwrap_err();
    match &e {
        ResolveError::NonexistentVersion {
            package,
            requested,
            nearest,
            index,
        } => {
            assert_eq!(package, "pinme");
            assert_eq!(requested, "1.5");
            assert_eq!(nearest, &["1.0", "1.4", "1.6", "2.0"]);
            assert_eq!(index, &server.index_url());
        }
        _ => panic!("{e}"),
    }
    assert!(e.to_string().contains("1.4, 1.6"), "{e}");

    // A dependency's pin of a missing version: pubgrub's failure, with the
    // nearest versions in the notes.
    idx.add("needs", wheel("needs", "1.0", &["pinme==2.5"]));
    let server = Server::start(&idx);
    let e = resolve(&["needs"], &options(&server))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("pinme has no version 2.5; nearest: 1.6, 2.0, 3.0"),
        "{e}"
    );
}

#[test]
fn every_package_without_a_wheel_is_named_at_once() {
    let mut idx = TestIndex::default();
    idx.add(
        "app",
        wheel("app", "1.0", &["sdist-a", "sdist-b>=2", "winlib"]),
    )
    .add("sdist-a", sdist("sdist-a", "1.0"))
    .add("sdist-b", sdist("sdist_b", "2.0"))
    .add("sdist-b", sdist("sdist_b", "2.1"))
    .add("sdist-b", wheel("sdist-b", "1.0", &[]))
    .add(
        "winlib",
        wheel_with("winlib", "3.0", "cp311-cp311-win_amd64", &[], ""),
    )
    .add("fine", wheel("fine", "1.0", &[]));
    let server = Server::start(&idx);
    // Wheels only (as for build requirements): sdists count as nothing.
    let mut o = options(&server);
    o.sdists = false;
    let e = resolve(&["app", "fine"], &o).unwrap_err();
    eprintln!("{e}");
    let ResolveError::NoUsableWheel { packages, .. } = &e else {
        panic!("{e}")
    };
    let names: Vec<(&str, &str)> = packages
        .iter()
        .map(|p| (p.package.as_str(), p.version.as_str()))
        .collect();
    assert_eq!(
        names,
        [("sdist-a", "1.0"), ("sdist-b", "2.1"), ("winlib", "3.0")]
    );
    let text = e.to_string();
    assert!(text.contains("only sdists: sdist-a-1.0.tar.gz"), "{text}");
    assert!(text.contains("win_amd64"), "{text}");
    assert!(text.contains(">=2"), "{text}");
    // With sdists allowed, only the package with neither is left.
    let e = resolve(&["app", "fine"], &options(&server)).unwrap_err();
    let ResolveError::NoUsableWheel { packages, .. } = &e else {
        panic!("{e}")
    };
    let names: Vec<&str> = packages.iter().map(|p| p.package.as_str()).collect();
    assert_eq!(names, ["winlib"], "{e}");
}

/// A real `{name}-{version}.tar.gz` with the given members below its
/// top-level directory.
fn sdist_with(name: &str, version: &str, members: &[(&str, &str)]) -> FileSpec {
    let top = format!("{name}-{version}");
    let mut tb = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    for (path, text) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tb.append_data(&mut h, format!("{top}/{path}"), text.as_bytes())
            .unwrap();
    }
    sdist_file(name, version, tb.into_inner().unwrap().finish().unwrap())
}

fn pkg_info(name: &str, version: &str, mv: &str, requires: &[&str]) -> String {
    let mut m = format!("Metadata-Version: {mv}\nName: {name}\nVersion: {version}\n");
    for r in requires {
        m.push_str(&format!("Requires-Dist: {r}\n"));
    }
    m
}

fn sdist_index() -> TestIndex {
    let mut idx = TestIndex::default();
    idx.add("app", wheel("app", "1.0", &["a", "b", "eggy"]))
        // a: the newest version is sdist-only; its PKG-INFO 2.2 is static.
        .add("a", wheel("a", "1.0", &[]))
        .add(
            "a",
            sdist_with(
                "a",
                "2.0",
                &[
                    ("PKG-INFO", &pkg_info("a", "2.0", "2.2", &["c>=1"])),
                    (
                        "pyproject.toml",
                        "[build-system]\nrequires = [\"flit_core>=3\"]\nbuild-backend = \"flit_core.buildapi\"\n",
                    ),
                ],
            ),
        )
        // b: a wheel and an sdist: the wheel wins.
        .add("b", wheel("b", "1.0", &[]))
        .add(
            "b",
            sdist_with("b", "1.0", &[("PKG-INFO", &pkg_info("b", "1.0", "2.2", &["nope"]))]),
        )
        .add(
            "eggy",
            sdist_with(
                "eggy",
                "0.5",
                &[
                    ("PKG-INFO", &pkg_info("eggy", "0.5", "2.1", &[])),
                    ("eggy.egg-info/PKG-INFO", "Metadata-Version: 2.1\n"),
                    ("eggy.egg-info/requires.txt", "c\n\n[extra]\nnope\n"),
                ],
            ),
        )
        .add("c", wheel("c", "1.5", &[]))
        .add("flit-core", wheel("flit_core", "3.9.0", &[]))
        .add("setuptools", wheel("setuptools", "69.0.0", &[]))
        .add("wheel", wheel("wheel", "0.42.0", &[]));
    idx
}

#[test]
fn sdists_are_used_when_no_wheel_fits_with_static_metadata_and_build_wheels() {
    let idx = sdist_index();
    let server = Server::start(&idx);
    let cache = tempfile::tempdir().unwrap();
    let mut o = options(&server);
    o.cache_dir = Some(cache.path().to_path_buf());
    let r = resolve(&["app"], &o).unwrap();
    assert_eq!(
        versions(&r),
        pairs(&[
            ("a", "2.0"),
            ("app", "1.0"),
            ("b", "1.0"),
            ("c", "1.5"),
            ("eggy", "0.5")
        ])
    );
    let a = r.get("a").unwrap();
    assert_eq!(a.filename, "a-2.0.tar.gz");
    let a_bytes = &idx.projects["a"][1].bytes;
    assert_eq!(a.sha256, sha256_hex(a_bytes));
    assert_eq!(a.size, a_bytes.len() as u64);
    assert_eq!(a.dependencies, ["c"]);
    let build = a.sdist.as_ref().unwrap();
    assert_eq!(build.metadata_source, MetadataSource::PkgInfo);
    assert_eq!(build.build_system.backend, "flit_core.buildapi");
    let bw: Vec<&str> = build
        .build_wheels
        .iter()
        .map(|w| w.filename.as_str())
        .collect();
    assert_eq!(bw, ["flit_core-3.9.0-py3-none-any.whl"]);
    // b has a wheel: no sdist, and the sdist's "nope" is not read.
    let b = r.get("b").unwrap();
    assert!(b.filename.ends_with(".whl") && b.sdist.is_none());
    // eggy: egg-info requires.txt; the legacy build system by default.
    let eggy = r.get("eggy").unwrap();
    let build = eggy.sdist.as_ref().unwrap();
    assert_eq!(build.metadata_source, MetadataSource::EggInfo);
    assert_eq!(build.build_system, BuildSystem::legacy());
    let bw: Vec<&str> = build
        .build_wheels
        .iter()
        .map(|w| w.filename.as_str())
        .collect();
    assert_eq!(
        bw,
        [
            "setuptools-69.0.0-py3-none-any.whl",
            "wheel-0.42.0-py3-none-any.whl"
        ]
    );
    // The sdists were cached by sha256; a second resolution gives the
    // same result without downloading them again.
    assert!(cache
        .path()
        .join("sdists-v1")
        .join(&a.sha256)
        .join("a-2.0.tar.gz")
        .is_file());
    server.clear_log();
    let again = resolve(&["app"], &o).unwrap();
    assert_eq!(again, r);
    assert!(
        !server.log().iter().any(|l| l.ends_with(".tar.gz")),
        "{:?}",
        server.log()
    );
    // Locating files again finds the sdists too.
    let urls = locate_wheels(
        &server.index_url(),
        &target(),
        &["a-2.0.tar.gz".to_string(), "eggy-0.5.tar.gz".to_string()],
    )
    .unwrap();
    assert!(urls["a-2.0.tar.gz"].ends_with("/files/a-2.0.tar.gz"));
}

#[test]
fn sdist_errors_name_the_sdist() {
    let mut idx = TestIndex::default();
    idx.add(
        "dyn",
        sdist_with(
            "dyn",
            "1.0",
            &[
                ("PKG-INFO", &pkg_info("dyn", "1.0", "2.1", &[])),
                (
                    "setup.py",
                    "from setuptools import setup\nsetup(install_requires=['x'])\n",
                ),
            ],
        ),
    )
    .add(
        "needs-sdist-build",
        sdist_with(
            "needs-sdist-build",
            "1.0",
            &[
                (
                    "PKG-INFO",
                    &pkg_info("needs-sdist-build", "1.0", "2.2", &[]),
                ),
                (
                    "pyproject.toml",
                    "[build-system]\nrequires = [\"onlysdist\"]\nbuild-backend = \"x\"\n",
                ),
            ],
        ),
    )
    .add(
        "onlysdist",
        sdist_with(
            "onlysdist",
            "1.0",
            &[("PKG-INFO", &pkg_info("onlysdist", "1.0", "2.2", &[]))],
        ),
    );
    let server = Server::start(&idx);
    let e = resolve(&["dyn"], &options(&server))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("dyn-1.0.tar.gz") && e.contains("prepare_metadata_for_build_wheel"),
        "{e}"
    );
    let e = resolve(&["needs-sdist-build"], &options(&server))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("needs-sdist-build-1.0.tar.gz")
            && e.contains("build requirements [onlysdist]")
            && e.contains("only sdists: onlysdist-1.0.tar.gz"),
        "{e}"
    );
}

#[test]
fn prereleases_only_when_asked() {
    let mut idx = TestIndex::default();
    idx.add("pre", wheel("pre", "1.0", &[]))
        .add("pre", wheel("pre", "2.0rc1", &[]))
        .add("onlypre", wheel("onlypre", "0.1b1", &[]));
    let server = Server::start(&idx);
    let r = resolve(&["pre", "onlypre"], &options(&server)).unwrap();
    assert_eq!(versions(&r), pairs(&[("onlypre", "0.1b1"), ("pre", "1.0")]));
    let r = resolve(&["pre>=2.0rc1"], &options(&server)).unwrap();
    assert_eq!(versions(&r), pairs(&[("pre", "2.0rc1")]));
}

#[test]
fn metadata_hashes_are_checked() {
    let mut idx = TestIndex::default();
    idx.add(
        "tampered",
        wheel("tampered", "1.0", &[]).bad_metadata_hash(),
    );
    let server = Server::start(&idx);
    let e = resolve(&["tampered"], &options(&server)).unwrap_err();
    match &e {
        ResolveError::HashMismatch {
            package,
            expected,
            found,
            url,
        } => {
            assert_eq!(package, "tampered");
            assert_eq!(expected, &"0".repeat(64));
            assert_eq!(
                found,
                &sha256_hex(
                    idx.projects["tampered"][0]
                        .metadata
                        .as_ref()
                        .unwrap()
                        .as_bytes()
                )
            );
            assert!(url.ends_with(".whl.metadata"), "{url}");
        }
        _ => panic!("{e}"),
    }
}

#[test]
fn metadata_from_the_wheel_by_range_requests_or_download() {
    let mut idx = TestIndex::default();
    idx.add("plain", wheel("plain", "1.0", &["dep"]).no_pep658())
        .add("dep", wheel("dep", "1.0", &[]));
    // With Range support: only ranges of the wheel are read.
    let server = Server::start(&idx);
    let r = resolve(&["plain"], &options(&server)).unwrap();
    assert_eq!(versions(&r), pairs(&[("dep", "1.0"), ("plain", "1.0")]));
    let log = server.log();
    let wheel_gets: Vec<&String> = log
        .iter()
        .filter(|l| l.starts_with("GET /files/plain-1.0-py3-none-any.whl"))
        .collect();
    assert!(!wheel_gets.is_empty());
    assert!(
        wheel_gets.iter().all(|l| l.contains("bytes=")),
        "{wheel_gets:?}"
    );

    // A big wheel whose METADATA is far from its central directory: only
    // two chunks of it are read.
    let mut noise = Vec::with_capacity(3 << 20);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while noise.len() < 3 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.extend_from_slice(&x.to_le_bytes());
    }
    let meta = metadata_text("big", "1.0", &["dep"], "");
    let mut big = wheel("big", "1.0", &[]).no_pep658();
    big.bytes = zip_bytes(&[
        ("big-1.0.dist-info/METADATA".into(), meta.into_bytes()),
        ("big/blob.bin".into(), noise),
        (
            "big-1.0.dist-info/WHEEL".into(),
            b"Wheel-Version: 1.0\n".to_vec(),
        ),
        ("big-1.0.dist-info/RECORD".into(), Vec::new()),
    ]);
    let big_len = big.bytes.len() as u64;
    idx.add("big", big);
    let server = Server::start(&idx);
    let r = resolve(&["big"], &options(&server)).unwrap();
    assert_eq!(versions(&r), pairs(&[("big", "1.0"), ("dep", "1.0")]));
    let fetched: u64 = server
        .log()
        .iter()
        .filter(|l| l.starts_with("GET /files/big-1.0"))
        .map(|l| {
            let (a, b) = l.rsplit_once("bytes=").unwrap().1.split_once('-').unwrap();
            b.parse::<u64>().unwrap() - a.parse::<u64>().unwrap() + 1
        })
        .sum();
    assert!(fetched < big_len / 2, "{fetched} of {big_len} bytes read");

    // A server that ignores Range: the wheel is downloaded (hash checked).
    let server = Server::start_with(&idx, false);
    let r = resolve(&["plain"], &options(&server)).unwrap();
    assert_eq!(versions(&r), pairs(&[("dep", "1.0"), ("plain", "1.0")]));
    assert!(server
        .log()
        .iter()
        .any(|l| l == "GET /files/plain-1.0-py3-none-any.whl"));
}

#[test]
fn metadata_is_cached_on_disk() {
    let mut idx = TestIndex::default();
    idx.add("a", wheel("a", "1.0", &["b"]))
        .add("b", wheel("b", "1.0", &[]).no_pep658());
    let server = Server::start(&idx);
    let cache = tempfile::tempdir().unwrap();
    let mut o = options(&server);
    o.cache_dir = Some(cache.path().join("resolve"));
    let first = resolve(&["a"], &o).unwrap();
    assert!(server.log().iter().any(|l| l.contains(".whl")));
    server.clear_log();
    let second = resolve(&["a"], &o).unwrap();
    assert_eq!(first, second);
    let log = server.log();
    assert!(!log.iter().any(|l| l.contains("/files/")), "{log:?}");
    let sha = &first.get("b").unwrap().sha256;
    assert!(cache
        .path()
        .join(format!("resolve/metadata-v1/{sha}.metadata"))
        .exists());
}

#[test]
fn missing_packages_and_bad_input() {
    let mut idx = TestIndex::default();
    idx.add("app", wheel("app", "1.0", &["ghost>=1"]));
    let server = Server::start(&idx);
    let e = resolve(&["app"], &options(&server))
        .unwrap_err()
        .to_string();
    assert!(e.contains("ghost is not on the index"), "{e}");
    assert!(e.contains("app depends on ghost>=1"), "{e}");

    server.state.lock().unwrap().routes.insert(
        "/simple/htmlonly/".into(),
        Route {
            content_type: "text/html",
            body: b"<html><body><a href='x.whl'>x.whl</a></body></html>".to_vec(),
        },
    );
    let e = resolve(&["htmlonly"], &options(&server)).unwrap_err();
    assert!(matches!(e, ResolveError::BadIndexPage { .. }), "{e}");
    assert!(e.to_string().contains("PEP 691"), "{e}");

    let e = resolve(&["ghost"], &options(&server))
        .unwrap_err()
        .to_string();
    assert!(e.contains("ghost is not on the index"), "{e}");

    assert!(matches!(
        resolve(&["app >>> 1"], &options(&server)),
        Err(ResolveError::InvalidRequirement { .. })
    ));
    assert!(matches!(
        resolve(
            &["app @ file:///wheels/app-1.0-py3-none-any.whl"],
            &options(&server)
        ),
        Err(ResolveError::UnsupportedRequirement { .. })
    ));
    let mut o = options(&server);
    o.index_url = "ftp://nowhere/".into();
    assert!(matches!(
        resolve(&["app"], &o),
        Err(ResolveError::InvalidIndexUrl { .. })
    ));
}

#[test]
fn resolution_is_the_same_without_prefetching() {
    let mut idx = TestIndex::default();
    idx.add("a", wheel("a", "1.0", &["b", "c[x]"]))
        .add("b", wheel("b", "1.0", &["c<2"]))
        .add("b", wheel("b", "2.0", &["c>=2"]))
        .add("c", wheel("c", "1.0", &["d; extra == 'x'"]))
        .add("c", wheel("c", "2.0", &["d; extra == 'x'"]))
        .add("d", wheel("d", "1.0", &[]));
    let server = Server::start(&idx);
    let mut o = options(&server);
    let parallel = resolve(&["a"], &o).unwrap();
    o.prefetch_threads = 0;
    let serial = resolve(&["a"], &o).unwrap();
    assert_eq!(parallel, serial);
    assert_eq!(
        versions(&serial),
        pairs(&[("a", "1.0"), ("b", "2.0"), ("c", "2.0"), ("d", "1.0")])
    );
}

/// Resolves the OFA-VE pins (without gradio and modelscope) for cp311 /
/// x86_64 / glibc 2.36 against the index named by `ENVBUILD_INDEX_URL`.
#[test]
#[ignore = "needs the network and ENVBUILD_INDEX_URL"]
fn networked_resolve_of_ofa_ve_pins() {
    let Ok(index) = std::env::var("ENVBUILD_INDEX_URL") else {
        eprintln!("ENVBUILD_INDEX_URL is not set; skipping the networked resolve");
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let mut o = ResolveOptions::new(index, target());
    o.cache_dir = Some(cache.path().to_path_buf());
    let pins = [
        "torch==2.1.0",
        "torchvision==0.16.0",
        "numpy==1.24.4",
        "pillow==10.2.0",
        "scipy==1.11.4",
        "tqdm==4.66.1",
    ];
    let start = std::time::Instant::now();
    let r = resolve(&pins, &o).unwrap_or_else(|e| panic!("{e}"));
    let cold = start.elapsed();
    for p in &r.packages {
        eprintln!("{} {} {} {}", p.name, p.version, p.filename, p.sha256);
    }
    eprintln!("{} packages in {cold:?} (cold cache)", r.packages.len());
    let nvidia = [
        "nvidia-cublas-cu12",
        "nvidia-cuda-cupti-cu12",
        "nvidia-cuda-nvrtc-cu12",
        "nvidia-cuda-runtime-cu12",
        "nvidia-cudnn-cu12",
        "nvidia-cufft-cu12",
        "nvidia-curand-cu12",
        "nvidia-cusolver-cu12",
        "nvidia-cusparse-cu12",
        "nvidia-nccl-cu12",
        "nvidia-nvtx-cu12",
        "nvidia-nvjitlink-cu12",
    ];
    for n in nvidia {
        let p = r.get(n).unwrap_or_else(|| panic!("{n} missing"));
        assert!(p.filename.contains("manylinux"), "{}", p.filename);
        assert_eq!(p.sha256.len(), 64);
    }
    assert_eq!(r.get("triton").map(|p| p.version.as_str()), Some("2.1.0"));
    assert_eq!(r.get("torch").map(|p| p.version.as_str()), Some("2.1.0"));
    assert!(r
        .get("torch")
        .unwrap()
        .filename
        .contains("manylinux1_x86_64"));
    let start = std::time::Instant::now();
    let again = resolve(&pins, &o).unwrap();
    eprintln!("warm metadata cache: {:?}", start.elapsed());
    assert_eq!(r, again);
}

/// Minimal-change locking: an old lock's versions are chosen while the
/// requirements allow them; a changed requirement moves only its package
/// and what its new constraints force.
#[test]
fn preferred_versions_are_kept_while_the_requirements_allow_them() {
    let mut idx = TestIndex::default();
    idx.add("app", wheel("app", "1.0", &["lib>=1"]))
        .add("app", wheel("app", "2.0", &["lib>=2"]))
        .add("lib", wheel("lib", "1.0", &[]))
        .add("lib", wheel("lib", "2.0", &[]))
        .add("lib", wheel("lib", "3.0", &[]))
        .add("tool", wheel("tool", "1.0", &[]))
        .add("tool", wheel("tool", "1.1", &[]));
    let server = Server::start(&idx);
    let mut o = options(&server);
    // Without preferences: the newest of everything.
    let fresh = resolve(&["app", "tool"], &o).unwrap();
    assert_eq!(
        versions(&fresh),
        pairs(&[("app", "2.0"), ("lib", "3.0"), ("tool", "1.1")])
    );
    // An old lock of app 1.0, lib 1.0, tool 1.0: a re-lock keeps them all.
    let v = |s: &str| s.parse::<pep440_rs::Version>().unwrap();
    o.preferences = [("app", "1.0"), ("lib", "1.0"), ("tool", "1.0")]
        .into_iter()
        .map(|(n, ver)| (n.to_string(), v(ver)))
        .collect();
    let kept = resolve(&["app", "tool"], &o).unwrap();
    assert_eq!(
        versions(&kept),
        pairs(&[("app", "1.0"), ("lib", "1.0"), ("tool", "1.0")])
    );
    // A bump of app to 2.0 forces lib>=2 (the oldest allowed is not
    // preferred: lib moves to the newest, 3.0); tool stays.
    let bumped = resolve(&["app==2.0", "tool"], &o).unwrap();
    assert_eq!(
        versions(&bumped),
        pairs(&[("app", "2.0"), ("lib", "3.0"), ("tool", "1.0")])
    );
}

// ---- kept pages (HTTP validators) ---------------------------------------------

fn cached_index() -> TestIndex {
    let mut idx = TestIndex::default();
    idx.add("app", wheel("app", "1.0", &["lib>=1"]))
        .add("lib", wheel("lib", "1.0", &[]))
        .add("lib", wheel("lib", "1.1", &[]));
    idx
}

/// [`cached_index`] served with `caching`, and resolve options that keep
/// answers in a fresh cache directory: (server, cache directory, options).
fn caching_index(caching: Caching) -> (Server, tempfile::TempDir, ResolveOptions) {
    let server = Server::start(&cached_index());
    server.set_caching(caching);
    let cache = tempfile::tempdir().unwrap();
    let mut o = options(&server);
    o.cache_dir = Some(cache.path().to_path_buf());
    (server, cache, o)
}

fn page_requests(log: &[String]) -> Vec<String> {
    let mut l: Vec<String> = log
        .iter()
        .filter(|l| l.starts_with("GET /simple/"))
        .cloned()
        .collect();
    l.sort();
    l
}

#[test]
fn a_second_resolution_sends_validators_gets_304s_and_resolves_the_same() {
    let (server, _cache, o) = caching_index(Caching {
        etag: true,
        ..Caching::default()
    });
    let first = resolve(&["app"], &o).unwrap();
    let log = server.log();
    assert_eq!(
        page_requests(&log),
        ["GET /simple/app/", "GET /simple/lib/"],
        "the first resolution asks without validators: {log:?}"
    );
    server.clear_log();
    let second = resolve(&["app"], &o).unwrap();
    assert_eq!(first, second);
    let log = server.log();
    let etag = |p: &str| format!("\"{}\"", sha256_hex(&server.body(p)));
    assert_eq!(
        page_requests(&log),
        [
            format!(
                "GET /simple/app/ if-none-match={} -> 304",
                etag("/simple/app/")
            ),
            format!(
                "GET /simple/lib/ if-none-match={} -> 304",
                etag("/simple/lib/")
            ),
        ],
        "{log:?}"
    );
    // The metadata is kept by the wheel's sha256: not asked again.
    assert_eq!(log.len(), 2, "only the two pages were asked for: {log:?}");
}

#[test]
fn last_modified_is_sent_back_as_if_modified_since() {
    let (server, _cache, o) = caching_index(Caching {
        last_modified: true,
        ..Caching::default()
    });
    let first = resolve(&["app"], &o).unwrap();
    server.clear_log();
    assert_eq!(resolve(&["app"], &o).unwrap(), first);
    let pages = page_requests(&server.log());
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert!(
        pages
            .iter()
            .all(|l| l.contains(" if-modified-since=") && l.ends_with(" -> 304")),
        "{pages:?}"
    );
}

#[test]
fn a_page_whose_etag_changed_is_downloaded_and_its_new_version_used() {
    let (server, _cache, o) = caching_index(Caching {
        etag: true,
        ..Caching::default()
    });
    let first = resolve(&["app"], &o).unwrap();
    assert_eq!(versions(&first), pairs(&[("app", "1.0"), ("lib", "1.1")]));
    // lib 1.2 appears: the page (and its ETag) changes.
    let mut bigger = cached_index();
    bigger.add("lib", wheel("lib", "1.2", &[]));
    let newer = Server::start(&bigger);
    for path in ["/simple/lib/", "/files/lib-1.2-py3-none-any.whl.metadata"] {
        let body = newer.body(path);
        let mut st = server.state.lock().unwrap();
        match st.routes.get_mut(path) {
            Some(r) => r.body = body,
            None => {
                st.routes.insert(
                    path.to_owned(),
                    Route {
                        content_type: "application/octet-stream",
                        body,
                    },
                );
            }
        }
    }
    server.clear_log();
    let second = resolve(&["app"], &o).unwrap();
    assert_eq!(versions(&second), pairs(&[("app", "1.0"), ("lib", "1.2")]));
    let pages = page_requests(&server.log());
    assert!(
        pages
            .iter()
            .any(|l| l.starts_with("GET /simple/lib/ if-none-match=") && !l.ends_with("304")),
        "lib's page was asked with its old ETag and sent again: {pages:?}"
    );
    assert!(
        pages
            .iter()
            .any(|l| l.starts_with("GET /simple/app/") && l.ends_with("304")),
        "{pages:?}"
    );
}

/// The kept entry files of a cache directory.
fn kept_pages(cache: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(cache.join("pages-v1"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "answer"))
        .collect();
    v.sort();
    v
}

#[test]
fn a_truncated_kept_page_is_ignored_and_fetched_in_full() {
    let (server, cache, o) = caching_index(Caching {
        etag: true,
        ..Caching::default()
    });
    let first = resolve(&["app"], &o).unwrap();
    let kept = kept_pages(cache.path());
    assert_eq!(kept.len(), 2);
    for p in &kept {
        let bytes = std::fs::read(p).unwrap();
        std::fs::write(p, &bytes[..bytes.len() - 10]).unwrap();
    }
    server.clear_log();
    assert_eq!(resolve(&["app"], &o).unwrap(), first);
    assert_eq!(
        page_requests(&server.log()),
        ["GET /simple/app/", "GET /simple/lib/"],
        "truncated entries send no validators"
    );
    // And they were replaced by whole ones: the third resolution gets 304s.
    server.clear_log();
    assert_eq!(resolve(&["app"], &o).unwrap(), first);
    assert!(page_requests(&server.log())
        .iter()
        .all(|l| l.ends_with("304")));
}

#[test]
fn a_kept_page_that_does_not_parse_is_forgotten_and_fetched_again() {
    let (server, cache, o) = caching_index(Caching {
        etag: true,
        ..Caching::default()
    });
    let first = resolve(&["app"], &o).unwrap();
    // An intact entry (its length and sha256 agree) holding garbage, with
    // the server's ETag: the server answers 304 and the body fails to
    // parse.
    for p in kept_pages(cache.path()) {
        let bytes = std::fs::read(&p).unwrap();
        let magic_end = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
        let header_end = magic_end + bytes[magic_end..].iter().position(|&b| b == b'\n').unwrap();
        let mut header: serde_json::Value =
            serde_json::from_slice(&bytes[magic_end..header_end]).unwrap();
        let garbage = b"{\"files\": 7}".to_vec();
        header["len"] = serde_json::json!(garbage.len());
        header["sha256"] = serde_json::json!(sha256_hex(&garbage));
        let mut out = bytes[..magic_end].to_vec();
        out.extend_from_slice(&serde_json::to_vec(&header).unwrap());
        out.push(b'\n');
        out.extend_from_slice(&garbage);
        std::fs::write(&p, out).unwrap();
    }
    server.clear_log();
    assert_eq!(resolve(&["app"], &o).unwrap(), first);
    let pages = page_requests(&server.log());
    for project in ["app", "lib"] {
        let asked: Vec<&String> = pages
            .iter()
            .filter(|l| l.starts_with(&format!("GET /simple/{project}/")))
            .collect();
        assert_eq!(asked.len(), 2, "304, then a full request: {pages:?}");
        assert!(asked.iter().any(|l| l.ends_with("304")), "{pages:?}");
        assert!(
            asked
                .iter()
                .any(|l| *l == &format!("GET /simple/{project}/")),
            "{pages:?}"
        );
    }
}

#[test]
fn a_server_without_validators_is_asked_in_full_each_time() {
    let (server, _cache, o) = caching_index(Caching::default());
    let first = resolve(&["app"], &o).unwrap();
    server.clear_log();
    assert_eq!(resolve(&["app"], &o).unwrap(), first);
    assert_eq!(
        page_requests(&server.log()),
        ["GET /simple/app/", "GET /simple/lib/"]
    );
}

#[test]
fn a_page_within_its_max_age_is_reused_without_a_request() {
    let (server, _cache, o) = caching_index(Caching {
        etag: true,
        max_age: Some(600),
        ..Caching::default()
    });
    let first = resolve(&["app"], &o).unwrap();
    server.clear_log();
    assert_eq!(resolve(&["app"], &o).unwrap(), first);
    assert_eq!(server.log(), Vec::<String>::new(), "nothing asked");
}

#[test]
fn a_fresh_page_received_before_exclude_newer_is_revalidated() {
    let (server, _cache, mut o) = caching_index(Caching {
        etag: true,
        max_age: Some(600),
        ..Caching::default()
    });
    let first = resolve(&["app"], &o).unwrap();
    // A cutoff after the pages were received (an hour from now): the kept
    // pages may lack files uploaded between, so they are asked for again.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    let micros = later
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    o.exclude_newer = Some(Timestamp::from_micros(micros));
    server.clear_log();
    assert_eq!(versions(&resolve(&["app"], &o).unwrap()), versions(&first));
    let pages = page_requests(&server.log());
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert!(pages.iter().all(|l| l.ends_with("304")), "{pages:?}");
}

// ---- the warm-up -----------------------------------------------------------

/// app → lib, where lib has a manylinux2014 wheel needing nothing and a
/// manylinux_2_28 one needing `fast`: which one a target reads decides
/// the closure.
fn glibc_split_index() -> TestIndex {
    let mut idx = TestIndex::default();
    idx.add("app", wheel("app", "1.0", &["lib"]))
        .add(
            "lib",
            wheel_with("lib", "1.0", "py3-none-manylinux_2_17_x86_64", &[], ""),
        )
        .add(
            "lib",
            wheel_with(
                "lib",
                "1.0",
                "py3-none-manylinux_2_28_x86_64",
                &["fast"],
                "",
            ),
        )
        .add("fast", wheel("fast", "1.0", &[]));
    idx
}

/// Wait until `server` has answered every request in `wanted`.
fn wait_for_requests(server: &Server, wanted: &[&str]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !wanted
        .iter()
        .all(|w| server.log().iter().any(|l| l.starts_with(w)))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the warm-up did not ask for {wanted:?}: {:?}",
            server.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_warmup_for_a_provisional_target_shares_its_answers_and_the_resolution_reads_them_for_the_real_one(
) {
    let server = Server::start(&glibc_split_index());
    let mut provisional = options(&server);
    provisional.target = Target::cpython_glibc((3, 11), Arch::X86_64, (2, 17));
    let warmup = Warmup::start(&["app"], &provisional).unwrap();
    // The root's page, its likely version's metadata, then lib's page and
    // the metadata of the wheel the provisional target would take.
    wait_for_requests(
        &server,
        &[
            "GET /simple/app/",
            "GET /simple/lib/",
            "GET /files/lib-1.0-py3-none-manylinux_2_17_x86_64.whl.metadata",
        ],
    );
    server.clear_log();

    let mut real = options(&server);
    real.warmup = Some(warmup);
    let got = resolve(&["app"], &real).unwrap();
    // Read for glibc 2.36: lib's manylinux_2_28 wheel, which needs fast.
    assert_eq!(
        versions(&got),
        pairs(&[("app", "1.0"), ("fast", "1.0"), ("lib", "1.0")])
    );
    assert_eq!(
        got.get("lib").unwrap().filename,
        "lib-1.0-py3-none-manylinux_2_28_x86_64.whl"
    );
    let log = server.log();
    assert!(
        !log.iter().any(|l| l.starts_with("GET /simple/app/")
            || l.starts_with("GET /simple/lib/")
            || l.starts_with("GET /files/app-1.0")),
        "what the warm-up fetched is not asked again: {log:?}"
    );
    assert!(
        log.iter().any(
            |l| l.starts_with("GET /files/lib-1.0-py3-none-manylinux_2_28_x86_64.whl.metadata")
        ),
        "the real target's wheel's metadata is fetched: {log:?}"
    );
    // The same as a resolution on its own.
    assert_eq!(got, resolve(&["app"], &options(&server)).unwrap());
}

#[test]
fn a_warmup_made_with_another_exclude_newer_is_not_used() {
    let server = Server::start(&glibc_split_index());
    let mut early = options(&server);
    early.exclude_newer = Some("2024-01-01T00:00:00Z".parse().unwrap());
    let warmup = Warmup::start(&["app"], &early).unwrap();
    wait_for_requests(&server, &["GET /simple/app/", "GET /simple/lib/"]);
    server.clear_log();
    let mut o = options(&server);
    o.warmup = Some(warmup);
    resolve(&["app"], &o).unwrap();
    let pages = page_requests(&server.log());
    assert!(
        pages.iter().any(|l| l.starts_with("GET /simple/app/")),
        "answers kept as of another instant are not taken: {pages:?}"
    );
}
