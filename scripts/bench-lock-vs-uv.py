#!/usr/bin/env python3
"""Benchmark: `envbuild lock` next to `uv pip compile` on the same pins.

Both resolve the same requirements for CPython 3.11 / x86_64 manylinux
(glibc 2.36) with the same --exclude-newer date, against the index the
machine's configuration names (ENVBUILD_INDEX_URL, else pip's). The script
checks that the two (name, version) sets are equal and prints both times
(median of --runs, cold metadata cache for envbuild each run; uv with its
cache cleared each run too) and the ratio (goal: envbuild <= 1.5x uv).

Usage: scripts/bench-lock-vs-uv.py [--runs N] [--exclude-newer DATE] [PIN ...]
Default pins: the OFA-VE pins that publish wheels for the whole closure
(torch, torchvision, numpy, pillow, scipy, tqdm). gradio==6.0.2 and
modelscope==1.12.0 pull in oss2/crcmod, which publish only sdists: envbuild
names them until sdist builds land (see the OFA-VE issue).
Needs: uv (pip install uv).
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_PINS = ["torch==2.1.0", "torchvision==0.16.0", "numpy==1.24.4", "pillow==10.2.0", "scipy==1.11.4", "tqdm==4.66.1"]


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def index_url():
    for var in ("ENVBUILD_INDEX_URL", "PIP_INDEX_URL", "UV_INDEX_URL"):
        if os.environ.get(var):
            return os.environ[var]
    out = subprocess.run([sys.executable, "-c", "from pip._internal.models.index import PyPI; print(PyPI.simple_url)"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--exclude-newer", default="2024-06-01T00:00:00Z")
    ap.add_argument("--envbuild")
    ap.add_argument("pins", nargs="*")
    args = ap.parse_args()
    pins = args.pins or DEFAULT_PINS
    envbuild = args.envbuild
    if not envbuild:
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "envbuild"], cwd=ROOT, check=True)
        envbuild = os.path.join(ROOT, "target/release/envbuild")
    uv = shutil.which("uv") or sys.exit("uv is not installed: pip install uv")
    index = index_url()
    env = dict(os.environ, ENVBUILD_INDEX_URL=index)
    e_times, u_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        spec = os.path.join(tmp, "pins.toml")
        reqs = ", ".join('"%s"' % p for p in pins)
        with open(spec, "w") as f:
            f.write('[env]\nname = "pins"\nsystem = "x86_64-linux"\nsource-date-epoch = 1700000000\n\n'
                    '[python]\nrequirements = [%s]\nglibc = "2.36"\n' % reqs)
        req_in = os.path.join(tmp, "requirements.in")
        with open(req_in, "w") as f:
            f.write("\n".join(pins) + "\n")
        ours = theirs = None
        for i in range(args.runs):
            store = os.path.join(tmp, "store%d" % i)
            lock = os.path.join(tmp, "pins.lock")
            if os.path.exists(lock):
                os.remove(lock)
            t = time.perf_counter()
            p = subprocess.run([envbuild, "--store", store, "-q", "lock", spec, "--exclude-newer", args.exclude_newer],
                               capture_output=True, text=True, env=env)
            e_times.append(time.perf_counter() - t)
            if p.returncode != 0:
                sys.exit("envbuild lock failed: " + p.stderr)
            text = open(lock).read()
            ours = sorted({(norm(m.group(1)), m.group(2)) for m in
                           re.finditer(r'id = "pypi:([^-]+)-([^-]+)-', text)})
            shutil.rmtree(store)
            cache = os.path.join(tmp, "uv-cache%d" % i)
            t = time.perf_counter()
            p = subprocess.run([uv, "pip", "compile", req_in, "--python-version", "3.11",
                                "--python-platform", "x86_64-manylinux_2_36", "--only-binary", ":all:",
                                "--exclude-newer", args.exclude_newer, "--index-url", index,
                                "--cache-dir", cache, "--no-header", "--no-annotate", "--quiet"],
                               capture_output=True, text=True)
            u_times.append(time.perf_counter() - t)
            if p.returncode != 0:
                sys.exit("uv pip compile failed: " + p.stderr)
            theirs = sorted({(norm(l.split("==")[0]), l.split("==")[1].strip()) for l in p.stdout.splitlines()
                             if "==" in l and not l.startswith("#")})
            shutil.rmtree(cache)
    if ours != theirs:
        print("DIFFERENT sets:\n only envbuild: %s\n only uv: %s" % (sorted(set(ours) - set(theirs)), sorted(set(theirs) - set(ours))))
        sys.exit(1)
    e, u = statistics.median(e_times), statistics.median(u_times)
    print("pins: %s (exclude-newer %s)" % (" ".join(pins), args.exclude_newer))
    print("resolved: %d packages, identical (name, version) sets" % len(ours))
    print("envbuild lock:     %7.2f s  (median of %d, cold caches)" % (e, args.runs))
    print("uv pip compile:    %7.2f s  (median of %d, cold caches)" % (u, args.runs))
    print("ratio envbuild/uv: %7.2f   (goal <= 1.5)" % (e / u))


if __name__ == "__main__":
    main()
