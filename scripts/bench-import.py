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
3. With --overlay (root only), the same pairs in each image as a container
   runtime with the kernel's overlayfs lays it out (docker's overlay2,
   containerd's snapshotter): every layer of the OCI tarball unpacked into a
   directory of its own, the layers stacked as overlayfs lower directories
   (top first) under an empty upper one, /proc, /dev and a /tmp mounted, and
   `python3 -c IMPORT` run there by chroot as the image's user with the
   image's environment and working directory. Then the warm-cache figure:
   as root in the image without bytecode, one import that compiles and
   writes its pycs into the container's upper directory (timed and printed),
   then --pairs pairs of the import that reads them next to the bytecode
   image's, also as root (goal: the bytecode image at that figure).
4. With --docker, the same pairs under `docker run --rm IMAGE python3 -c IMPORT`
   after `docker load` of both images (needs about 12 GiB more disk). What
   this measures depends on the engine's storage driver, which is printed: on
   fuse-overlayfs every stat and open is a round trip to a FUSE daemon, and
   the import is bound by that, not by the image (compare the --overlay leg).

Usage: scripts/bench-import.py [--pairs N] [--store DIR] [--overlay] [--docker]
The release binary is built first.
"""
import argparse
import os
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


class OverlayRoot:
    """An OCI image tarball laid out as a container runtime on the kernel's
    overlayfs does it: one directory per layer, stacked read-only under an
    empty upper directory, with /proc, /dev and /tmp mounted."""

    def __init__(self, tar: Path, work: Path):
        self.work = work
        shutil.rmtree(work, ignore_errors=True)
        oci = work / "oci"
        oci.mkdir(parents=True)
        run(["tar", "-xf", tar, "-C", oci])
        index = json.loads((oci / "index.json").read_text())
        manifest = json.loads(self.blob(oci, index["manifests"][0]["digest"]).read_text())
        config = json.loads(self.blob(oci, manifest["config"]["digest"]).read_text())["config"]
        lowers = []
        for i, layer in enumerate(manifest["layers"]):
            d = work / "l" / str(i)
            d.mkdir(parents=True)
            media = layer["mediaType"]
            flag = "--zstd" if media.endswith("+zstd") else "-z" if media.endswith("+gzip") else None
            run(["tar", "-x", *([flag] if flag else []), "--same-owner", "--numeric-owner",
                 "-f", self.blob(oci, layer["digest"]), "-C", d])
            lowers.append(d)
        shutil.rmtree(oci)
        for d in ("upper", "work", "merged"):
            (work / d).mkdir()
        self.root = work / "merged"
        options = "lowerdir={},upperdir={},workdir={}".format(
            ":".join(str(d) for d in reversed(lowers)), work / "upper", work / "work")
        run(["mount", "-t", "overlay", "overlay", "-o", options, self.root])
        for d in ("proc", "dev", "tmp"):
            (self.root / d).mkdir(exist_ok=True)
        run(["mount", "-t", "proc", "proc", self.root / "proc"])
        run(["mount", "--rbind", "/dev", self.root / "dev"])
        run(["mount", "-t", "tmpfs", "-o", "mode=1777", "tmpfs", self.root / "tmp"])
        self.layers = len(lowers)
        self.env = config.get("Env", [])
        self.user = config.get("User") or "0:0"
        self.workdir = config.get("WorkingDir") or "/"

    @staticmethod
    def blob(oci: Path, digest: str) -> Path:
        algorithm, hexdigest = digest.split(":", 1)
        return oci / "blobs" / algorithm / hexdigest

    def command(self, argv):
        user = self.user
        if not user.split(":")[0].isdigit():
            # A name: its uid and gid from the image's own /etc/passwd.
            for line in (self.root / "etc" / "passwd").read_text().splitlines():
                f = line.split(":")
                if f[0] == user.split(":")[0]:
                    user = f"{f[2]}:{f[3]}"
                    break
            else:
                sys.exit(f"the image's user {self.user!r} is not in its /etc/passwd")
        # chroot(8) cannot change directory after the switch: python does.
        code = f"import os; os.chdir({self.workdir!r}); os.execv({argv[0]!r}, {argv!r})"
        return ["env", "-i", *self.env, "chroot", f"--userspec={user}", self.root,
                "/usr/bin/python3", "-c", code]

    def close(self):
        subprocess.run(["umount", "-R", str(self.root)], capture_output=True)
        shutil.rmtree(self.work, ignore_errors=True)


def warm_cache(overlays, pairs):
    """The import in the image without bytecode once its own pycs are
    written (a writable site-packages, as root), next to the bytecode
    image's, as root too."""
    on, off = overlays
    for root in overlays:
        root.user = "0:0"
    cmd_on = on.command(["/usr/bin/python3", "-c", IMPORT])
    cmd_off = off.command(["/usr/bin/python3", "-c", IMPORT])
    print(f"overlay, no bytecode, as root, the import that writes its pycs: {timed(cmd_off):.2f} s", flush=True)
    rows = []
    for i in range(pairs):
        order = [("warm cache", cmd_off), ("bytecode", cmd_on)]
        if i % 2:
            order.reverse()
        got = {name: timed(cmd) for name, cmd in order}
        rows.append(got)
        print(f"overlay as root, pair {i + 1} ({order[0][0]} first): bytecode {got['bytecode']:.2f} s vs "
              f"warm cache {got['warm cache']:.2f} s, ratio {got['bytecode'] / got['warm cache']:.2f}", flush=True)
    m_on = statistics.median(r["bytecode"] for r in rows)
    m_warm = statistics.median(r["warm cache"] for r in rows)
    print(f"bytecode image: median {m_on:.2f} s vs the warm-cache figure {m_warm:.2f} s = {m_on / m_warm:.2f}x",
          flush=True)


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
    ap.add_argument("--overlay", action="store_true")
    ap.add_argument("--docker", action="store_true")
    args = ap.parse_args()
    if args.overlay and os.geteuid() != 0:
        sys.exit("--overlay mounts overlayfs and chroots: run it as root")
    run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT)
    store = Path(args.store)
    store.parent.mkdir(parents=True, exist_ok=True)
    spec_on = ROOT / "specs" / "ofa-ve.toml"
    spec_off = without_bytecode(spec_on)
    overlays = []
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
        if args.overlay:
            for name, tar in images.items():
                t = time.perf_counter()
                root = OverlayRoot(tar, store.parent / ("overlay-on" if name == "bytecode" else "overlay-off"))
                overlays.append(root)
                sides[f"overlay, {name}"] = root.command(["/usr/bin/python3", "-c", IMPORT])
                print(f"overlay, {name}: {root.layers} layers unpacked and mounted in "
                      f"{time.perf_counter() - t:.1f} s", flush=True)
            timed(sides["overlay, bytecode"])  # the page cache warm
            timed(sides["overlay, no bytecode"])
        if args.docker:
            driver = run(["docker", "info", "--format", "{{.Driver}}"]).strip()
            print(f"docker storage driver: {driver}", flush=True)
            for name, tar in images.items():
                loaded = run(["docker", "load", "-i", tar])
                ref = loaded.strip().splitlines()[-1].split("Loaded image: ")[-1]
                tag = "envbuild-bench-import:" + ("on" if name == "bytecode" else "off")
                run(["docker", "tag", ref, tag])
                sides[f"docker, {name}"] = ["docker", "run", "--rm", tag, "python3", "-c", IMPORT]
        pairs = [("bytecode", "no bytecode")]
        if args.overlay:
            pairs.append(("overlay, bytecode", "overlay, no bytecode"))
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
        if args.overlay:
            warm_cache(overlays, args.pairs)
    finally:
        for root in overlays:
            root.close()
        for p in (spec_off, spec_off.with_suffix(".lock")):
            p.unlink(missing_ok=True)
        if args.docker:
            for tag in ("on", "off"):
                subprocess.run(["docker", "rmi", f"envbuild-bench-import:{tag}"], capture_output=True)


if __name__ == "__main__":
    main()
