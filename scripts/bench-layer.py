#!/usr/bin/env python3
"""Benchmark: the largest OFA-VE layer (torch's installed tree), envbuild's layer
writer next to `tar --sort=name ... | pigz -6` (gzip) and `| zstd -T0 -3` (zstd).

1. The torch 2.1.0 wheel (cp311, manylinux) is taken from --wheels (default
   /var/tmp/envbuild-bench-wheels, which scripts/bench-install-vs-uv.py fills),
   else downloaded there with `pip download --no-deps` from the index the
   machine's configuration names (ENVBUILD_INDEX_URL, PIP_INDEX_URL,
   UV_INDEX_URL, else pip's default). It is unpacked once into --work as the
   tree to layer (what the unpack-wheel component holds below site-packages).
2. Each tool turns the same tree into a compressed tar in --work:
     envbuild: benches/layer.rs (the layer writer envbuild's realize runs,
               release build), gzip level 6 and zstd level 3;
     anchor:   tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@1
               -C TREE -cf - . | pigz -6    (and | zstd -T0 -3 -q)
   The tree is read once first, untimed, so both sides start from a warm page
   cache; each output is deleted and `sync`ed before the next run; the order
   alternates pair by pair. Printed: each pair's times and ratio, the
   medians, the output sizes (goal: envbuild <= 1.0x each anchor).
3. The digest check: envbuild's layer with ENVBUILD_COMPRESS_THREADS=1 and =4
   (gzip and zstd) must be byte-identical; the script fails otherwise.

Usage: scripts/bench-layer.py [--pairs N] [--wheels DIR] [--work DIR]
Needs: pigz, zstd, GNU tar, pip.
"""
import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCH = "torch==2.1.0"


def index_url():
    for var in ("ENVBUILD_INDEX_URL", "PIP_INDEX_URL", "UV_INDEX_URL"):
        if os.environ.get(var):
            return os.environ[var]
    out = subprocess.run([sys.executable, "-c", "from pip._internal.models.index import PyPI; print(PyPI.simple_url)"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def torch_wheel(wheels):
    found = sorted(glob.glob(os.path.join(wheels, "torch-2.1.0-cp311-*.whl")))
    if found:
        return found[0]
    os.makedirs(wheels, exist_ok=True)
    print(f"downloading {TORCH} into {wheels}", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
                    "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
                    "--platform", "manylinux1_x86_64", "--index-url", index_url(), "-d", wheels, TORCH],
                   check=True)
    return sorted(glob.glob(os.path.join(wheels, "torch-2.1.0-cp311-*.whl")))[0]


def bench_binary():
    out = subprocess.run(["cargo", "bench", "--locked", "--bench", "layer", "--no-run", "--message-format=json"],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    for line in out.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("target", {}).get("name") == "layer" \
                and msg.get("executable"):
            return msg["executable"]
    sys.exit("cargo bench --no-run gave no layer executable")


def timed(cmd, env=None, shell=False):
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env, shell=shell, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"{cmd} failed ({p.returncode}): {p.stderr[-2000:]}")
    return dt, p.stdout


def clean(path):
    if os.path.exists(path):
        os.remove(path)
    subprocess.run(["sync"], check=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--wheels", default="/var/tmp/envbuild-bench-wheels")
    ap.add_argument("--work", default="/var/tmp/envbuild-bench-layer")
    args = ap.parse_args()
    for tool in ("pigz", "zstd", "tar"):
        shutil.which(tool) or sys.exit(f"{tool} is not installed")
    wheel = torch_wheel(args.wheels)
    tree = os.path.join(args.work, "tree")
    if not os.path.isdir(tree):
        print(f"unpacking {os.path.basename(wheel)} into {tree}", flush=True)
        with zipfile.ZipFile(wheel) as z:
            z.extractall(tree + ".tmp")
        os.rename(tree + ".tmp", tree)
    binary = bench_binary()
    size = int(subprocess.run(["du", "-sb", tree], capture_output=True, text=True, check=True).stdout.split()[0])
    print(f"tree: {tree}, {size / 2**30:.2f} GiB; cores: {os.cpu_count()}", flush=True)
    subprocess.run(f"tar -C {tree} -cf - . > /dev/null", shell=True, check=True)  # warm the page cache

    out = os.path.join(args.work, "out")
    tar = f"tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@1 -C {tree} -cf - ."
    anchors = {"gzip": f"{tar} | pigz -6 > {out}", "zstd": f"{tar} | zstd -T0 -3 -q > {out}"}
    levels = {"gzip": "gzip:6", "zstd": "zstd:3"}
    failed = False
    for kind in ("gzip", "zstd"):
        pairs = []
        for i in range(args.pairs):
            result = {}
            order = ["envbuild", "anchor"] if i % 2 == 0 else ["anchor", "envbuild"]
            for side in order:
                clean(out)
                if side == "envbuild":
                    dt, text = timed([binary, tree, levels[kind], out])
                    result["envbuild"] = dt
                    result["envbuild_size"] = json.loads(text)["size"]
                else:
                    dt, _ = timed(anchors[kind], shell=True)
                    result["anchor"] = dt
                    result["anchor_size"] = os.path.getsize(out)
            pairs.append(result)
            print(f"{kind} pair {i + 1} ({' first, '.join(order)} second): envbuild {result['envbuild']:.2f} s, "
                  f"anchor {result['anchor']:.2f} s, ratio {result['envbuild'] / result['anchor']:.2f}", flush=True)
        e = statistics.median(p["envbuild"] for p in pairs)
        a = statistics.median(p["anchor"] for p in pairs)
        print(f"{kind}: median envbuild {e:.2f} s vs {anchors[kind].split('|')[1].split('>')[0].strip()} {a:.2f} s "
              f"= {e / a:.2f}x (goal <= 1.0x); sizes {pairs[0]['envbuild_size'] / 2**20:.1f} MiB vs "
              f"{pairs[0]['anchor_size'] / 2**20:.1f} MiB", flush=True)
        digests = {}
        for threads in ("1", "4"):
            clean(out)
            env = dict(os.environ, ENVBUILD_COMPRESS_THREADS=threads)
            _, text = timed([binary, tree, levels[kind], out], env=env)
            digests[threads] = json.loads(text)["digest"]
        same = digests["1"] == digests["4"]
        failed |= not same
        print(f"{kind}: 1 thread {digests['1']}, 4 threads {digests['4']}: {'identical' if same else 'DIFFERENT'}",
              flush=True)
    clean(out)
    if failed:
        sys.exit("the layer's bytes depend on the thread count")


if __name__ == "__main__":
    main()
