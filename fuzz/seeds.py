#!/usr/bin/env python3
"""Fill fuzz/corpus/<target>/ with seed inputs: the project's spec and lock
fixtures (specs/, examples/, tests/fixtures/) copied, and small archives and
documents like the ones the unit tests build, generated here, so that no
binary seed is committed. Usage: fuzz/seeds.py [CORPUS_DIR]"""

import base64
import hashlib
import io
import json
import pathlib
import struct
import sys
import tarfile
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "fuzz" / "corpus"


def put(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


def copy_fixtures(target, patterns):
    for pattern in patterns:
        for p in sorted(ROOT.glob(pattern)):
            if p.is_file() and p.stat().st_size < 1 << 20:
                put(target, p.name, p.read_bytes())


# ---- NAR -------------------------------------------------------------------

def nar_str(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack("<Q", len(b)) + b + b"\0" * ((8 - len(b) % 8) % 8)


def nar_node(node):
    out = nar_str("(") + nar_str("type")
    kind = node[0]
    if kind == "file":
        out += nar_str("regular")
        if node[2]:
            out += nar_str("executable") + nar_str("")
        out += nar_str("contents") + nar_str(node[1])
    elif kind == "link":
        out += nar_str("symlink") + nar_str("target") + nar_str(node[1])
    else:
        out += nar_str("directory")
        for name in sorted(node[1]):
            out += nar_str("entry") + nar_str("(") + nar_str("name") + nar_str(name)
            out += nar_str("node") + nar_node(node[1][name]) + nar_str(")")
    return out + nar_str(")")


def nar(node):
    return nar_str("nix-archive-1") + nar_node(node)


def seed_nar():
    put("nar_restore", "file", nar(("file", b"hello\n", False)))
    put("nar_restore", "exe", nar(("file", b"#!/bin/sh\n", True)))
    put("nar_restore", "link", nar(("link", "target/../x")))
    tree = ("dir", {
        "bin": ("dir", {"sh": ("link", "busybox"), "busybox": ("file", b"\x7fELF", True)}),
        "etc": ("dir", {"hosts": ("file", b"127.0.0.1 localhost\n", False)}),
        "empty": ("dir", {}),
    })
    put("nar_restore", "tree", nar(tree))


# ---- wheels ----------------------------------------------------------------

def record_hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def wheel_bytes(files):
    members = dict(files)
    rows = [f"{n},{record_hash(d)},{len(d)}" for n, d in members.items()]
    rows.append("demo-1.0.dist-info/RECORD,,")
    members["demo-1.0.dist-info/RECORD"] = ("\n".join(rows) + "\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for n, d in members.items():
            z.writestr(n, d)
    return buf.getvalue(), members["demo-1.0.dist-info/RECORD"]


METADATA = b"""Metadata-Version: 2.1
Name: demo
Version: 1.0
Summary: a demo
Requires-Python: >=3.8
Requires-Dist: requests (>=2.0) ; extra == 'http'
Requires-Dist: numpy>=1.20; python_version >= "3.9"
License: MIT
 with a continuation

 and a blank one
Provides-Extra: http

The description.
"""
WHEEL = b"Wheel-Version: 1.0\nGenerator: bdist_wheel (0.41.0)\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
ENTRY_POINTS = b"[console_scripts]\ndemo = demo.cli:main\ndemo-x = demo:run [extra]\n\n[gui_scripts]\ndemo-gui = demo.gui:App.main\n\n[other]\nx = y\n"


def seed_wheels():
    plain, record = wheel_bytes([
        ("demo/__init__.py", b"VERSION = '1.0'\n"),
        ("demo/cli.py", b"def main():\n    pass\n"),
        ("demo-1.0.dist-info/METADATA", METADATA),
        ("demo-1.0.dist-info/WHEEL", WHEEL),
        ("demo-1.0.dist-info/entry_points.txt", ENTRY_POINTS),
    ])
    put("wheel_install", "plain.whl", plain)
    data, _ = wheel_bytes([
        ("demo/__init__.py", b""),
        ("demo-1.0.data/scripts/demo-tool", b"#!python\nprint('hi')\n"),
        ("demo-1.0.data/data/share/demo/x.txt", b"x\n"),
        ("demo-1.0.data/headers/demo.h", b"int demo;\n"),
        ("demo-1.0.data/platlib/demo_ext.so", b"\x7fELF"),
        ("demo-1.0.dist-info/METADATA", METADATA),
        ("demo-1.0.dist-info/WHEEL", WHEEL.replace(b"true", b"false")),
    ])
    put("wheel_install", "data.whl", data)
    put("wheel_dist_info", "RECORD", record)
    put("wheel_dist_info", "RECORD-quoted",
        '"a,b.py",sha256=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA,0\n"q""uote",,\nx/y.py,sha1=abc,3\n')
    put("wheel_dist_info", "WHEEL", WHEEL)
    put("wheel_dist_info", "entry_points.txt", ENTRY_POINTS)
    put("core_metadata", "METADATA", METADATA)
    put("core_metadata", "PKG-INFO", b"Metadata-Version: 2.2\nName: demo\nVersion: 1.0.post1\nDynamic: Requires-Dist\r\nRequires-Dist: a[x,y]>=1,<2; sys_platform == 'linux' and extra == \"x\"\n")


# ---- sdists ----------------------------------------------------------------

PKG_INFO = b"Metadata-Version: 2.2\nName: demo\nVersion: 1.0\nRequires-Dist: six>=1.0\nRequires-Python: >=3.7\n"
PYPROJECT = b"""[build-system]
requires = ["setuptools>=61", "wheel"]
build-backend = "setuptools.build_meta"
backend-path = ["."]

[project]
name = "demo"
version = "1.0"
dependencies = ["six>=1.0", "requests[socks] ; python_version >= '3.8'"]
requires-python = ">=3.7"

[project.optional-dependencies]
test = ["pytest"]
"""
REQUIRES_TXT = b"six>=1.0\n\n[test]\npytest\n\n[:python_version < \"3.8\"]\nimportlib-metadata\n"


def tar_bytes(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if kind == "file":
                info.size = len(data)
                info.mode = 0o644
                t.addfile(info, io.BytesIO(data))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                t.addfile(info)
            elif kind == "link":
                info.type = tarfile.SYMTYPE
                info.linkname = data
                t.addfile(info)
            elif kind == "hard":
                info.type = tarfile.LNKTYPE
                info.linkname = data
                t.addfile(info)
    return buf.getvalue()


def seed_sdists():
    entries = [
        ("demo-1.0", "dir", None),
        ("demo-1.0/PKG-INFO", "file", PKG_INFO),
        ("demo-1.0/pyproject.toml", "file", PYPROJECT),
        ("demo-1.0/setup.py", "file", b"from setuptools import setup\nsetup()\n"),
        ("demo-1.0/src/demo.egg-info/requires.txt", "file", REQUIRES_TXT),
        ("demo-1.0/src/demo.egg-info/PKG-INFO", "file", PKG_INFO),
        ("demo-1.0/src/demo/__init__.py", "file", b""),
        ("demo-1.0/README", "link", "src/demo/__init__.py"),
        ("demo-1.0/COPY", "hard", "demo-1.0/setup.py"),
    ]
    put("sdist_archive", "tar", b"\0" + tar_bytes(entries))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, kind, data in entries:
            if kind == "file":
                z.writestr(name, data)
    put("sdist_archive", "zip", b"\1" + buf.getvalue())
    put("sdist_metadata", "all", PKG_INFO + b"\0" + PYPROJECT + b"\0" + REQUIRES_TXT)
    put("sdist_metadata", "pkg-info-2.1", PKG_INFO.replace(b"2.2", b"2.1") + b"\0\0" + REQUIRES_TXT)
    put("sdist_metadata", "dynamic", PKG_INFO + b"Dynamic: Requires-Dist\n\0" + PYPROJECT.replace(b'dependencies = ["six>=1.0", "requests[socks] ; python_version >= \'3.8\'"]', b'dynamic = ["dependencies"]'))


# ---- Debian ----------------------------------------------------------------

CONTROL = b"""Package: demo
Version: 1:2.0~rc1-3+deb12u1
Architecture: amd64
Maintainer: Someone <someone@example.invalid>
Installed-Size: 12
Pre-Depends: libc6 (>= 2.36)
Depends: python3 (>= 3.11) | python3-alt, libfoo [amd64 !i386] <!nocheck>, bar:any (<< 2)
Provides: demo-virtual (= 2.0)
Description: a demo
 with a long description
 .
 and a paragraph
"""


def ar_bytes(members):
    out = b"!<arch>\n"
    for name, data in members:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        out += header + data + (b"\n" if len(data) % 2 else b"")
    return out


def seed_debs():
    import gzip
    control_tar = tar_bytes([
        ("./", "dir", None),
        ("./control", "file", CONTROL),
        ("./md5sums", "file", b"d41d8cd98f00b204e9800998ecf8427e  usr/bin/demo\n"),
        ("./postinst", "file", b"#!/bin/sh\nexit 0\n"),
    ])
    data_tar = tar_bytes([
        ("./", "dir", None),
        ("./usr/", "dir", None),
        ("./usr/bin/", "dir", None),
        ("./usr/bin/demo", "file", b"#!/bin/sh\necho demo\n"),
        ("./usr/bin/demo-link", "link", "demo"),
        ("./usr/bin/demo-hard", "hard", "./usr/bin/demo"),
        ("./usr/share/doc/demo/copyright", "file", b"MIT\n"),
    ])
    put("deb_extract", "plain.deb", ar_bytes([
        ("debian-binary", b"2.0\n"), ("control.tar", control_tar), ("data.tar", data_tar)]))
    put("deb_extract", "gz.deb", ar_bytes([
        ("debian-binary", b"2.0\n"), ("control.tar.gz", gzip.compress(control_tar, mtime=0)),
        ("data.tar.gz", gzip.compress(data_tar, mtime=0))]))
    put("deb822_control", "control", CONTROL)
    release = b"""Origin: Debian
Label: Debian
Suite: stable
Codename: bookworm
Date: Sat, 10 Jun 2023 08:53:33 UTC
Architectures: all amd64 arm64
Components: main contrib
SHA256:
 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef   1234 main/binary-amd64/Packages
 fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210    567 main/binary-amd64/Packages.xz
"""
    packages = CONTROL.replace(b"Installed-Size: 12\n", b"Filename: pool/d/demo.deb\nSHA256: aa\nSize: 10\n") + b"""
Package: libc6
Version: 2.36-9
Architecture: amd64
Filename: pool/l/libc6.deb
SHA256: bb
Size: 2

Package: python3
Version: 3.11.2-1
Architecture: amd64
Depends: libc6
Filename: pool/p/python3.deb
SHA256: cc
Size: 3

Package: libfoo
Version: 1
Architecture: all
Depends: demo-virtual
Filename: pool/l/libfoo.deb
SHA256: ff
Size: 6
"""
    put("deb822_control", "Release", release)
    put("deb822_control", "Packages", b"# a comment\n\n" + packages)
    put("debian_archive", "release-and-packages", release + b"\0" + packages)
    status = pathlib.Path("/var/lib/dpkg/status")
    if status.is_file():
        head = status.read_bytes()[:16384]
        put("deb822_control", "status", head[: head.rfind(b"\n\n") + 1])
    for i, line in enumerate([
        "1.0\n1.0-1\n1:0.9", "2.0~rc1\n2.0\n2.0+b1", "1.2.3-4ubuntu5\n1.2.3-4\n1.2.3-4.1",
        "0:1.0a~\n1.0a\n1.0a+~", "7.0.0-1~bpo12+1\n7.0.0-1\n7.0.0-10",
    ]):
        put("debian_version", f"v{i}", line)
    for i, field in enumerate([
        "libc6 (>= 2.36), python3 (>= 3.11) | python3-alt, mail-transport-agent",
        "foo:any (<< 2.0) [amd64 !i386] <!nocheck> <stage1 cross>, bar (= 1:2-3)",
        "a (>> 1), b (<= 2), c (=3), d(>=4)",
        "",
    ]):
        put("debian_relation", f"r{i}", field)


# ---- Python documents ------------------------------------------------------

def seed_python_docs():
    page = {
        "meta": {"api-version": "1.1"},
        "name": "demo",
        "files": [
            {"filename": "demo-1.0-py3-none-any.whl", "url": "../../files/demo-1.0-py3-none-any.whl",
             "hashes": {"sha256": "AB" * 32}, "requires-python": ">=3.8", "size": 100,
             "upload-time": "2024-01-01T00:00:00.123456Z", "core-metadata": {"sha256": "cd" * 32}},
            {"filename": "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
             "url": "https://files.invalid/demo-1.0-cp311.whl#sha256=00", "hashes": {},
             "yanked": "broken", "dist-info-metadata": True},
            {"filename": "demo-1.0-1build-cp311-abi3-musllinux_1_1_x86_64.whl", "url": "x.whl"},
            {"filename": "demo-1.0.tar.gz", "url": "demo-1.0.tar.gz", "yanked": False},
            {"filename": "demo-2.0.zip", "url": "demo-2.0.zip", "requires-python": ">=4"},
            {"filename": "demo-0.9.egg", "url": "demo-0.9.egg"},
        ],
    }
    put("pep691_index", "page.json", json.dumps(page, indent=1))
    put("pep691_index", "empty.json", '{"files": []}')
    put("requirements_txt", "hashed.txt", """# pip-compile output
--index-url https://index.invalid/simple
--extra-index-url=https://other.invalid/simple
--find-links ./wheels
--only-binary :all:
demo==1.0 \\
    --hash=sha256:""" + "ab" * 32 + """ \\
    --hash=sha256:""" + "cd" * 32 + """
six==1.16.0 ; python_version >= "3.8" --hash=sha256:""" + "ef" * 32 + """
winonly==1.0 ; sys_platform == "win32" --hash=sha256:""" + "00" * 32 + """
""")
    put("requirements_txt", "plain.txt", "demo\nsix>=1\n-r other.txt\n")
    put("pylock", "pylock.toml", """lock-version = "1.0"
created-by = "a test"
requires-python = ">=3.9"
environments = ["sys_platform == 'linux'"]

[[packages]]
name = "alpha"
version = "1.0"
wheels = [{ url = "https://files.invalid/alpha-1.0-py3-none-any.whl", upload-time = 2024-01-01T00:00:00Z, size = 10, hashes = { sha256 = \"""" + "ab" * 32 + """\" } }]

[[packages]]
name = "Beta"
version = "2.0"
marker = "python_version >= '3.8'"
wheels = [{ name = "beta-2.0-cp311-cp311-manylinux_2_17_x86_64.whl", url = "https://files.invalid/b.whl", size = 3, hashes = { sha256 = \"""" + "cd" * 32 + """\" } }, { path = "local/beta-2.0-py3-none-any.whl", hashes = { sha256 = \"""" + "ef" * 32 + """\" } }]

[[packages]]
name = "gamma"
version = "3.0"
marker = "sys_platform == 'win32'"
wheels = [{ url = "https://files.invalid/missing.whl", hashes = { sha256 = \"""" + "00" * 32 + """\" } }]

[tool.other]
anything = 1
""")
    for name in ["demo-1.0-py3-none-any.whl", "demo_x-1.0-1build-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                 "demo-1.0.tar.gz", "Demo.Pkg-2.0rc1.zip", "libc6_2.36-9_amd64.deb", "python3_3.11.2-1+b1_all.deb"]:
        put("dist_filenames", name, name)


# ---- model hubs ------------------------------------------------------------

def seed_models():
    put("model_listings", "hf.json", json.dumps({
        "id": "org/repo", "sha": "0123456789abcdef0123456789abcdef01234567",
        "siblings": [
            {"rfilename": "model.safetensors", "size": 10, "blobId": "x",
             "lfs": {"sha256": "a" * 64, "size": 10, "pointerSize": 130}},
            {"rfilename": "sub/config.json", "size": 3, "blobId": "y"}]}))
    put("model_listings", "ms.json", json.dumps({"Code": 200, "Data": {"Files": [
        {"Name": "sub", "Path": "sub", "Type": "tree", "Size": 0, "Revision": "c1"},
        {"Name": ".gitattributes", "Path": ".gitattributes", "Type": "blob", "Size": 5, "Revision": "c1"},
        {"Name": "w.bin", "Path": "sub/w.bin", "Type": "blob", "Size": 7, "Sha256": "B" * 64, "Revision": "c1"},
        {"Name": "a.json", "Path": "a.json", "Type": "blob", "Size": 2, "Sha256": "", "Revision": "c1"}]}}))
    put("model_listings", "ms-error.json", '{"Code": 10010, "Message": "no such model"}')


def main():
    copy_fixtures("spec_toml", ["specs/*.toml", "examples/*.toml", "docs/examples/*.toml"])
    copy_fixtures("lock_toml", ["specs/*.lock", "tests/fixtures/*.lock", "examples/*.lock"])
    copy_fixtures("pylock", ["tests/fixtures/pylock*.toml"])
    copy_fixtures("dockerfile", ["tests/fixtures/seed-dockerfile/Dockerfile"])
    copy_fixtures("binary_cache", ["store/src/narinfo/*"])
    put("dockerfile", "python.Dockerfile", """FROM python:3.11-slim-bookworm AS build
ARG V=1
ENV A=1 B="two words"
RUN pip install --no-cache-dir numpy==1.24.4 torch==2.1.0+cu121 --extra-index-url https://x.invalid/cu121
COPY --chown=1000:1000 ["app/", "/srv/app/"]
RUN useradd -u 1000 -m app && chmod +x /srv/app/run.sh; mkdir -p /srv/data
USER app
EXPOSE 80 53/udp
CMD python3 -m app
""")
    seed_nar()
    seed_wheels()
    seed_sdists()
    seed_debs()
    seed_python_docs()
    seed_models()
    for i, t in enumerate(["0-1048575", "bytes=0-0", "0-", "5-9",
                           'Bearer realm="http://127.0.0.1:5001/token",service="registry",scope="repository:team/app:pull,push"',
                           'Basic realm="Registry Realm"',
                           "registry.example:5000/team/app:1.2@sha256:" + "ab" * 32,
                           "[::1]:5000/x/y:t", "https://registry.example/v1/", "127.0.0.1:5000"]):
        put("registry_answers", f"seed-{i}.txt", t)
    for d in sorted(CORPUS.iterdir()):
        print(f"{d.name}: {sum(1 for _ in d.iterdir())} seeds")


if __name__ == "__main__":
    main()
