#!/usr/bin/env python3
"""Benchmark: NAR hashing with `envbuild store hash` next to `nix hash path`.

Builds (once, cached under $BENCH_DIR, default /tmp/envbuild-bench) three
trees, warms the page cache, then times each tool on each tree (median of
--runs runs) and prints the times, the ratio envbuild/nix (goal: <= 0.8) and
each tool's peak RSS. The RSS of envbuild on a 1 GiB and a 4 GiB file shows
that its memory does not grow with file size.

Usage: scripts/bench-store-hash.py [--runs N] [--envbuild PATH]
Needs: nix (Debian nix-bin), a release build (built here if --envbuild is not given).
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_tree(path, small_files=0, big_file_bytes=0):
    """Build a tree in a child process: a child's ru_maxrss includes what its
    parent held before exec, so this process must stay small."""
    if os.path.exists(os.path.join(path, ".complete")):
        return
    subprocess.run(
        [sys.executable, __file__, "--make-tree", path, str(small_files), str(big_file_bytes)],
        check=True,
    )


def make_tree_here(path, small_files, big_file_bytes):
    os.makedirs(path, exist_ok=True)
    rnd = open("/dev/urandom", "rb")
    for i in range(small_files):
        d = os.path.join(path, "pkg%03d" % (i % 250))
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "mod%05d.py" % i), "wb") as f:
            f.write(rnd.read((i * 7919) % 6000))
    if big_file_bytes:
        with open(os.path.join(path, "weights.bin"), "wb") as f:
            left = big_file_bytes
            while left:
                n = min(left, 64 << 20)
                f.write(rnd.read(n))
                left -= n
    open(os.path.join(path, ".complete"), "w").close()


def run_once(cmd, env=None):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        sys.exit("%s failed: %s" % (" ".join(cmd), err.decode(errors="replace")))
    return elapsed, usage.ru_maxrss, out.decode().strip()


def bench(cmd, runs, env=None):
    run_once(cmd, env)  # warm the page cache
    results = [run_once(cmd, env) for _ in range(runs)]
    return (
        statistics.median(r[0] for r in results),
        max(r[1] for r in results),
        results[0][2],
    )


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--make-tree":
        make_tree_here(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--envbuild")
    ap.add_argument("--bench-dir", default=os.environ.get("BENCH_DIR", "/tmp/envbuild-bench"))
    args = ap.parse_args()

    envbuild = args.envbuild
    if not envbuild:
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "envbuild"], cwd=ROOT, check=True)
        envbuild = os.path.join(ROOT, "target/release/envbuild")
    nix_env = dict(os.environ, NIX_CONFIG="experimental-features = nix-command")

    trees = [
        ("50k small files (site-packages-like)", "small50k", dict(small_files=50_000)),
        ("1 GiB file + 20k small files", "mixed1g", dict(small_files=20_000, big_file_bytes=1 << 30)),
        ("one 4 GiB file", "big4g", dict(big_file_bytes=4 << 30)),
    ]
    print("%-38s %10s %10s %7s %12s %12s" % ("tree", "envbuild", "nix", "ratio", "envbuild RSS", "nix RSS"))
    for label, name, spec in trees:
        path = os.path.join(args.bench_dir, name)
        make_tree(path, **spec)
        t_e, rss_e, h_e = bench([envbuild, "store", "hash", "--base32", path], args.runs)
        t_n, rss_n, h_n = bench(["nix", "hash", "path", "--base32", path], args.runs, nix_env)
        if h_e != h_n:
            sys.exit("hash mismatch on %s: envbuild %s, nix %s" % (path, h_e, h_n))
        print(
            "%-38s %9.3fs %9.3fs %6.2fx %9.1f MiB %9.1f MiB"
            % (label, t_e, t_n, t_e / t_n, rss_e / 1024, rss_n / 1024)
        )
    print("(median of %d runs after one warm-up; hashes checked equal; ratio goal <= 0.80)" % args.runs)


if __name__ == "__main__":
    main()
