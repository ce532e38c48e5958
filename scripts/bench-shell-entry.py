#!/usr/bin/env python3
"""Benchmark: entering the closure with `envbuild shell SPEC -- true` next to
`docker run --rm IMAGE true`.

Copies examples/hello to a scratch directory, builds its static program and a
static `true` (added to the spec at /usr/bin/true, so the same command runs in
both), realizes it into a fresh store, loads the image into Docker, then
times the first shell entry (the rootfs is assembled) and --runs further
entries (the rootfs cached by closure hash; goal: under 200 ms), `envbuild
run`, and `docker run --rm IMAGE true`. Prints a table of medians.

Usage: scripts/bench-shell-entry.py [--runs N] [--envbuild PATH] [--no-docker]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(cmd, cwd=None):
    start = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    elapsed = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit("%s failed (%d): %s" % (" ".join(cmd), p.returncode, p.stderr))
    return elapsed


def median_ms(cmd, runs, cwd=None):
    times = [timed(cmd, cwd) for _ in range(runs)]
    return statistics.median(times) * 1000, min(times) * 1000, max(times) * 1000


def docker_works():
    try:
        return subprocess.run(["docker", "info"], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--envbuild")
    ap.add_argument("--no-docker", action="store_true")
    args = ap.parse_args()
    envbuild = args.envbuild
    if not envbuild:
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "envbuild"], cwd=ROOT, check=True)
        envbuild = os.path.join(ROOT, "target/release/envbuild")
    envbuild = os.path.abspath(envbuild)
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(os.path.join(ROOT, "examples/hello"), os.path.join(tmp, "hello"))
        shutil.copy(os.path.join(ROOT, "examples/hello.toml"), tmp)
        bindir = os.path.join(tmp, "hello/bin")
        os.makedirs(bindir, exist_ok=True)
        subprocess.run(["gcc", "-static", "-O2", "-o", os.path.join(bindir, "hello"),
                        os.path.join(tmp, "hello/hello.c")], check=True)
        with open(os.path.join(tmp, "true.c"), "w") as f:
            f.write("int main(void) { return 0; }\n")
        subprocess.run(["gcc", "-static", "-O2", "-o", os.path.join(bindir, "true"),
                        os.path.join(tmp, "true.c")], check=True)
        spec = os.path.join(tmp, "hello.toml")
        with open(spec, "a") as f:
            f.write('\n[[files]]\nsrc = "hello/bin/true"\ndst = "/usr/bin/true"\n')
        store = os.path.join(tmp, "store")
        tar = os.path.join(tmp, "hello.tar")
        work = os.path.join(tmp, "work")
        os.makedirs(work)
        base = [envbuild, "--store", store, "--quiet"]
        t = timed(base + ["realize", spec, "-o", tar])
        print("realize (cold):                    %8.1f ms" % (t * 1000))
        first = timed(base + ["shell", spec, "--", "true"], cwd=work)
        rows = [("envbuild shell -- true (first entry, rootfs assembled)", first * 1000, None, None)]
        med, lo, hi = median_ms(base + ["shell", spec, "--", "true"], args.runs, cwd=work)
        rows.append(("envbuild shell -- true (second entry on)", med, lo, hi))
        med, lo, hi = median_ms(base + ["shell", "--pure", spec, "--", "true"], args.runs, cwd=work)
        rows.append(("envbuild shell --pure -- true", med, lo, hi))
        med, lo, hi = median_ms(base + ["run", spec, "--", "true"], args.runs, cwd=work)
        rows.append(("envbuild run -- true", med, lo, hi))
        if not args.no_docker and docker_works():
            image = "hello:latest"
            subprocess.run(["docker", "load", "-i", tar], check=True, capture_output=True)
            try:
                timed(["docker", "run", "--rm", image, "true"])  # warm
                med, lo, hi = median_ms(["docker", "run", "--rm", image, "true"], args.runs)
                rows.append(("docker run --rm IMAGE true", med, lo, hi))
            finally:
                subprocess.run(["docker", "rmi", "-f", image], capture_output=True)
        else:
            rows.append(("docker run --rm IMAGE true (docker not available)", float("nan"), None, None))
        print()
        print("%-58s %10s %10s %10s" % ("what (median of %d)" % args.runs, "median ms", "min", "max"))
        for name, med, lo, hi in rows:
            print("%-58s %10.1f %10s %10s" % (name, med,
                                            "-" if lo is None else "%.1f" % lo,
                                            "-" if hi is None else "%.1f" % hi))
        print("\n(goal: second entry under 200 ms)")


if __name__ == "__main__":
    main()
