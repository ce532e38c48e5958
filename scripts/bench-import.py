#!/usr/bin/env python3
"""Benchmark: `import torch, gradio, modelscope` in the OFA-VE environment, with
the bytecode envbuild compiles at install and without it.

1. Two specs: specs/ofa-ve.toml as it is (bytecode on, the default) and a copy
   beside it with `[python] compile-bytecode = false`, both with the committed
   lock. Both are realized into one store (--store, default
   /var/tmp/envbuild-bench-import/store) from the configured archive and index
   (or the mirrors ENVBUILD_DEBIAN_MIRROR / ENVBUILD_INDEX_URL name): the
   fetched files are shared, the wheels are installed twice.
2. Timed, alternating which goes first, --pairs pairs: the import under
   `envbuild run SPEC --locked -- python3 -c IMPORT`, each run a new process in
   the sandbox with the image's read-only site-packages, so without bytecode
   every run compiles every module it imports (and cannot keep the result).
   Printed: each pair's times and ratio (goal: with bytecode <= 0.5x without),
   the medians, and the size of the wheel components with and without pycs.
3. With --docker, the same pairs under `docker run --rm IMAGE python3 -c IMPORT`
   after `docker load` of both images (needs about 12 GiB more disk).

Usage: scripts/bench-import.py [--pairs N] [--store DIR] [--docker]
The release binary is built first.
"""
import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENVBUILD = ROOT / "target" / "release" / "envbuild"
IMPORT = "import torch, gradio, modelscope"


def run(cmd, **kw):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if p.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return p.stdout


def timed(cmd):
    t = time.perf_counter()
    run(cmd)
    return time.perf_counter() - t


def without_bytecode(spec: Path) -> Path:
    text = spec.read_text()
    if "compile-bytecode" in text:
        sys.exit(f"{spec} already sets compile-bytecode")
    text, n = re.subn(r"^\[python\]\n", "[python]\ncompile-bytecode = false\n", text, count=1, flags=re.M)
    if n != 1:
        sys.exit(f"{spec} has no [python] table")
    copy = spec.with_name("ofa-ve-no-bytecode.toml")
    copy.write_text(text)
    shutil.copyfile(spec.with_suffix(".lock"), copy.with_suffix(".lock"))
    return copy


def wheel_bytes(store: Path, spec: Path):
    """Bytes on disk of the spec's wheel components (`du -sb`)."""
    out = run([ENVBUILD, "--store", store, "--json", "closure", spec, "--locked"])
    paths = [c["path"] for c in json.loads(out.strip().splitlines()[0])["components"]
             if c["label"].startswith("wheel ")]
    du = run(["du", "-sbc", *paths]).strip().splitlines()[-1]
    return int(du.split()[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--store", default="/var/tmp/envbuild-bench-import/store")
    ap.add_argument("--docker", action="store_true")
    args = ap.parse_args()
    run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT)
    store = Path(args.store)
    store.parent.mkdir(parents=True, exist_ok=True)
    spec_on = ROOT / "specs" / "ofa-ve.toml"
    spec_off = without_bytecode(spec_on)
    try:
        images = {}
        for name, spec in (("bytecode", spec_on), ("no bytecode", spec_off)):
            print(f"realizing {spec.name} ({name})", flush=True)
            out = store.parent / f"{spec.stem}.tar"
            t = time.perf_counter()
            lines = run([ENVBUILD, "--store", store, "realize", spec, "--locked", "-o", out]).strip().splitlines()
            print(f"   {lines[-1]} in {time.perf_counter() - t:.1f} s", flush=True)
            images[name] = out
        for name, spec in (("bytecode", spec_on), ("no bytecode", spec_off)):
            print(f"{name}: wheel components {wheel_bytes(store, spec) / 2**30:.3f} GiB on disk", flush=True)
        sides = {
            "bytecode": [ENVBUILD, "--store", store, "run", spec_on, "--locked", "--", "python3", "-c", IMPORT],
            "no bytecode": [ENVBUILD, "--store", store, "run", spec_off, "--locked", "--", "python3", "-c", IMPORT],
        }
        timed(sides["bytecode"])  # the rootfs assembled and the page cache warm
        timed(sides["no bytecode"])
        if args.docker:
            for name, tar in images.items():
                loaded = run(["docker", "load", "-i", tar])
                ref = loaded.strip().splitlines()[-1].split("Loaded image: ")[-1]
                tag = "envbuild-bench-import:" + ("on" if name == "bytecode" else "off")
                run(["docker", "tag", ref, tag])
                sides[f"docker, {name}"] = ["docker", "run", "--rm", tag, "python3", "-c", IMPORT]
        pairs = [("bytecode", "no bytecode")]
        if args.docker:
            pairs.append(("docker, bytecode", "docker, no bytecode"))
        for on, off in pairs:
            rows = []
            for i in range(args.pairs):
                order = [on, off] if i % 2 == 0 else [off, on]
                got = {side: timed(sides[side]) for side in order}
                rows.append(got)
                print(f"{on} vs {off}, pair {i + 1} ({order[0]} first): {got[on]:.2f} s vs {got[off]:.2f} s, "
                      f"ratio {got[on] / got[off]:.2f}", flush=True)
            m_on = statistics.median(r[on] for r in rows)
            m_off = statistics.median(r[off] for r in rows)
            print(f"{on}: median {m_on:.2f} s vs {m_off:.2f} s without = {m_on / m_off:.2f}x (goal <= 0.5x)",
                  flush=True)
    finally:
        for p in (spec_off, spec_off.with_suffix(".lock")):
            p.unlink(missing_ok=True)
        if args.docker:
            for tag in ("on", "off"):
                subprocess.run(["docker", "rmi", f"envbuild-bench-import:{tag}"], capture_output=True)


if __name__ == "__main__":
    main()
