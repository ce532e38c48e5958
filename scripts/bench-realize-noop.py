#!/usr/bin/env python3
"""Benchmark: a no-op `envbuild realize` of examples/hello.toml.

Copies the example to a scratch directory, builds its static program,
realizes it once into a fresh store (cold), then times --runs realizes with
nothing changed (goal: under 100 ms each, no build step run) and one after
editing a single app file. Prints the times and each run's step counts.

Usage: scripts/bench-realize-noop.py [--runs N] [--envbuild PATH]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def realize(envbuild, store, spec, out):
    start = time.perf_counter()
    p = subprocess.run(
        [envbuild, "--store", store, "--json", "realize", spec, "-o", out],
        capture_output=True, text=True,
    )
    elapsed = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit("realize failed: " + p.stderr)
    report = json.loads(p.stdout.splitlines()[0])
    return elapsed, report


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--envbuild")
    args = ap.parse_args()
    envbuild = args.envbuild
    if not envbuild:
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "envbuild"], cwd=ROOT, check=True)
        envbuild = os.path.join(ROOT, "target/release/envbuild")
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(os.path.join(ROOT, "examples/hello"), os.path.join(tmp, "hello"))
        shutil.copy(os.path.join(ROOT, "examples/hello.toml"), tmp)
        os.makedirs(os.path.join(tmp, "hello/bin"), exist_ok=True)
        subprocess.run(["gcc", "-static", "-O2", "-o", os.path.join(tmp, "hello/bin/hello"),
                        os.path.join(tmp, "hello/hello.c")], check=True)
        spec = os.path.join(tmp, "hello.toml")
        store = os.path.join(tmp, "store")
        out = os.path.join(tmp, "hello.tar")
        cold, r = realize(envbuild, store, spec, out)
        print("cold realize:          %8.1f ms  (%d steps built)" % (cold * 1000, r["built"]))
        times = []
        for _ in range(args.runs):
            t, r = realize(envbuild, store, spec, out)
            if r["built"] != 0:
                sys.exit("a no-op realize built %d steps" % r["built"])
            times.append(t)
        print("no-op realize:         %8.1f ms  median of %d (min %.1f, max %.1f; 0 steps built, %d reused)"
              % (statistics.median(times) * 1000, args.runs, min(times) * 1000, max(times) * 1000, r["reused"]))
        with open(os.path.join(tmp, "hello/app/static/style.css"), "a") as f:
            f.write("/* edited */\n")
        t, r = realize(envbuild, store, spec, out)
        print("after one app edit:    %8.1f ms  (%d steps built, %d reused)" % (t * 1000, r["built"], r["reused"]))
        print("(no-op goal: under 100 ms)")


if __name__ == "__main__":
    main()
