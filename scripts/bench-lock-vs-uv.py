#!/usr/bin/env python3
"""Benchmark: `envbuild lock` of a whole spec next to `uv pip compile` of its pins.

envbuild locks the spec (default specs/ofa-ve.toml: its Debian base and all
its [python] requirements), a copy of it in a temp dir with its own store
(`--store`), the lock deleted before every run. uv compiles the same pins for
the same target: the spec's Python version, x86_64 manylinux with the glibc
envbuild's lock records for the base (its `request` line), the same
--exclude-newer, the index the machine's configuration names
(ENVBUILD_INDEX_URL, PIP_INDEX_URL, UV_INDEX_URL, else pip's default).

Five alternating pairs each (envbuild first, then uv first, ...), cold and
warm:
  cold: envbuild with a fresh store, uv with --no-cache;
  warm: both with caches kept from a priming run (not timed) and all runs
        before.
Printed: each pair's wall times, ratio and CPU-s (user+sys of the child,
from getrusage(RUSAGE_CHILDREN) deltas), the medians, and whether both
resolved the same (name, version) set. Goals (issue 18): cold median ratio
<= 0.8, warm <= 1.0.

Usage: scripts/bench-lock-vs-uv.py [--pairs N] [--exclude-newer DATE]
           [--envbuild PATH] [--spec SPEC]
Needs: uv (pip install uv); a release build (built when --envbuild is not
given).
"""
import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_EXCLUDE_NEWER = "2026-01-01T00:00:00Z"


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def index_url():
    for var in ("ENVBUILD_INDEX_URL", "PIP_INDEX_URL", "UV_INDEX_URL"):
        if os.environ.get(var):
            return os.environ[var]
    out = subprocess.run([sys.executable, "-c", "from pip._internal.models.index import PyPI; print(PyPI.simple_url)"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def timed(cmd, **kw):
    """Run cmd; (wall s, child CPU s, CompletedProcess)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, p


def lock_set(lock_path):
    with open(lock_path, "rb") as f:
        lock = tomllib.load(f)
    py = lock.get("python", {})
    pins = {(norm(p["name"]), p["version"]) for p in py.get("wheel", []) + py.get("sdist", [])}
    m = re.search(r"glibc (\d+)\.(\d+)", py.get("request", ""))
    glibc = (int(m.group(1)), int(m.group(2))) if m else (2, 17)
    return pins, glibc, py.get("exclude-newer")


def uv_set(stdout):
    return {(norm(l.split("==")[0]), l.split("==")[1].split(";")[0].strip())
            for l in stdout.splitlines() if "==" in l and not l.lstrip().startswith("#")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--exclude-newer", help="default: the spec's lock's, else %s" % DEFAULT_EXCLUDE_NEWER)
    ap.add_argument("--envbuild")
    ap.add_argument("--spec", default=os.path.join(ROOT, "specs/ofa-ve.toml"))
    args = ap.parse_args()
    envbuild = args.envbuild
    if not envbuild:
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "envbuild"], cwd=ROOT, check=True)
        envbuild = os.path.join(ROOT, "target/release/envbuild")
    uv = shutil.which("uv") or sys.exit("uv is not installed: pip install uv")
    spec_path = os.path.abspath(args.spec)
    with open(spec_path, "rb") as f:
        spec = tomllib.load(f)
    pins = spec["python"]["requirements"]
    pyver = spec["python"].get("version", "3.11")
    exclude_newer = args.exclude_newer
    old_lock = os.path.splitext(spec_path)[0] + ".lock"
    if not exclude_newer and os.path.exists(old_lock):
        exclude_newer = lock_set(old_lock)[2]
    exclude_newer = exclude_newer or DEFAULT_EXCLUDE_NEWER
    index = index_url()
    env = dict(os.environ, ENVBUILD_INDEX_URL=index)

    tmp = tempfile.mkdtemp(prefix="bench-lock-")
    try:
        # The spec with everything beside it it names (local dirs).
        work = os.path.join(tmp, "spec")
        shutil.copytree(os.path.dirname(spec_path), work,
                        ignore=shutil.ignore_patterns("*.lock", "*.tar", "result*"))
        spec_copy = os.path.join(work, os.path.basename(spec_path))
        lock = os.path.splitext(spec_copy)[0] + ".lock"
        req_in = os.path.join(tmp, "requirements.in")
        with open(req_in, "w") as f:
            f.write("\n".join(pins) + "\n")
        glibc = [None]
        sets = {}

        def run_envbuild(store):
            if os.path.exists(lock):
                os.remove(lock)
            wall, cpu, p = timed([envbuild, "--store", store, "-q", "lock", spec_copy,
                                  "--exclude-newer", exclude_newer], env=env)
            if p.returncode != 0:
                sys.exit("envbuild lock failed:\n" + p.stderr)
            s, g, _ = lock_set(lock)
            sets["envbuild"], glibc[0] = s, g
            return wall, cpu

        def run_uv(cache):
            g = glibc[0]
            cmd = [uv, "pip", "compile", req_in, "--python-version", pyver,
                   "--python-platform", "x86_64-manylinux_%d_%d" % g,
                   "--exclude-newer", exclude_newer, "--index-url", index,
                   "--no-header", "--no-annotate", "--quiet"]
            cmd += ["--no-cache"] if cache is None else ["--cache-dir", cache]
            wall, cpu, p = timed(cmd)
            if p.returncode != 0:
                sys.exit("uv pip compile failed:\n" + p.stderr)
            sets["uv"] = uv_set(p.stdout)
            return wall, cpu

        # The glibc comes from envbuild's lock: one untimed run first.
        run_envbuild(os.path.join(tmp, "store-probe"))
        shutil.rmtree(os.path.join(tmp, "store-probe"))

        results = {}
        warm_store = os.path.join(tmp, "store-warm")
        warm_uv = os.path.join(tmp, "uv-cache-warm")
        for mode in ("cold", "warm"):
            if mode == "warm":  # priming, not timed
                run_envbuild(warm_store)
                run_uv(warm_uv)
            rows = []
            for i in range(args.pairs):
                order = ("envbuild", "uv") if i % 2 == 0 else ("uv", "envbuild")
                got = {}
                for who in order:
                    if who == "envbuild":
                        store = warm_store if mode == "warm" else os.path.join(tmp, "store-cold")
                        got[who] = run_envbuild(store)
                        if mode == "cold":
                            shutil.rmtree(store)
                    else:
                        got[who] = run_uv(warm_uv if mode == "warm" else None)
                rows.append((order[0], got["envbuild"], got["uv"]))
            results[mode] = rows

        ours, theirs = sets["envbuild"], sets["uv"]
        print("spec: %s (%d pins: %s)" % (os.path.relpath(spec_path, ROOT), len(pins), " ".join(pins)))
        print("target: cp%s x86_64 manylinux_%d_%d, exclude-newer %s" % (pyver.replace(".", ""), glibc[0][0], glibc[0][1], exclude_newer))
        if ours == theirs:
            print("resolved: %d packages, identical (name, version) sets" % len(ours))
        else:
            print("resolved: DIFFERENT (name, version) sets: envbuild %d, uv %d" % (len(ours), len(theirs)))
            print("  only envbuild: %s" % sorted(ours - theirs))
            print("  only uv:       %s" % sorted(theirs - ours))
        goals = {"cold": 0.8, "warm": 1.0}
        for mode, rows in results.items():
            print("\n%s (envbuild: %s; uv: %s)" % (
                mode,
                "fresh store each run" if mode == "cold" else "store kept",
                "--no-cache" if mode == "cold" else "cache kept"))
            print("  pair  first     envbuild s (cpu)    uv s (cpu)      ratio")
            for i, (first, (ew, ec), (uw, uc)) in enumerate(rows, 1):
                print("  %4d  %-8s  %7.2f (%5.2f)   %7.2f (%5.2f)   %6.2f" % (i, first, ew, ec, uw, uc, ew / uw))
            e = statistics.median(r[1][0] for r in rows)
            u = statistics.median(r[2][0] for r in rows)
            ecpu = statistics.median(r[1][1] for r in rows)
            ucpu = statistics.median(r[2][1] for r in rows)
            ratios = [r[1][0] / r[2][0] for r in rows]
            print("  median        %7.2f (%5.2f)   %7.2f (%5.2f)   %6.2f  (median of ratios %.2f; goal <= %.1f: %s)" % (
                e, ecpu, u, ucpu, e / u, statistics.median(ratios), goals[mode],
                "met" if e / u <= goals[mode] else "NOT met"))
        if ours != theirs:
            sys.exit(1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
