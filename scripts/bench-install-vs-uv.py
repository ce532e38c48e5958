#!/usr/bin/env python3
"""Benchmark: installing the OFA-VE wheel set from local files, envbuild next to uv.

1. Resolve the OFA-VE pins with `uv pip compile` (CPython 3.11, x86_64
   manylinux_2_28, --exclude-newer) against the index the machine's
   configuration names (ENVBUILD_INDEX_URL, PIP_INDEX_URL, UV_INDEX_URL, else
   pip's default as pip reports it), and download each pinned package's wheel
   with `pip download --only-binary :all: --no-deps` into a cache directory
   outside the repository (default /var/tmp/envbuild-bench-wheels, kept
   between runs). Packages that publish only sdists are skipped and named:
   the benchmark is about wheels.
2. Write a spec with one `[[wheels]] path = ...` per file (no base) and time,
   each run fresh (new store / new target / new uv cache), after removing
   every earlier run's output, a `sync` and --settle seconds of quiet
   (default 40), in --runs pairs, alternating which tool goes first. The
   quiet is there so neither tool pays for the other's writeback or
   deletes: on ext4 without a journal, allocating an inode skips every
   inode of its group freed in the last 30 s (35 s while its inode-table
   block is dirty), one buffer lookup each, so creating 40,000 files right
   after 40,000 were deleted costs seconds of system time (seen with perf:
   11% of envbuild's samples in __ext4_new_inode after a 5 s settle):
     envbuild closure SPEC          (components only: one unpack-wheel each;
                                     no base, so no bytecode: the same work
                                     as uv's default)
     uv pip install --no-deps --target DIR --link-mode copy --offline
        --no-index FILES...; sync   (with an empty UV_CACHE_DIR)
   envbuild makes its items durable before it registers them; uv does not
   sync, so uv's side is timed *with* a `sync` after it: the same work on
   both sides. Printed: each pair's times, CPU seconds (user + sys, wait4
   rusage) and ratio, the medians (goals: median ratio <= 0.6, envbuild's
   CPU-s <= uv's) and each side's peak RSS.
3. The no-op re-realize on the warm store: `envbuild closure` and
   `envbuild realize -o IMAGE.tar` (layers, image and export too; the spec
   asks for zstd layers to keep the one-time first realize short) again,
   median of --noop-runs (goal: under 100 ms).

Usage: scripts/bench-install-vs-uv.py [--runs N] [--noop-runs N] [--settle S]
                                      [--wheels DIR] [--work DIR] [--envbuild BIN]
Needs: uv and pip. The release binary is built unless --envbuild names one.
"""
import argparse
import concurrent.futures
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PINS = ["torch==2.1.0", "torchvision==0.16.0", "gradio==6.0.2", "modelscope==1.12.0", "numpy==1.24.4",
        "pillow==10.2.0", "scipy==1.11.4", "tqdm==4.66.1", "transformers==4.36.2"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64",
             "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_12_x86_64",
             "manylinux2010_x86_64", "manylinux_2_5_x86_64", "manylinux1_x86_64", "linux_x86_64"]


def index_url():
    for var in ("ENVBUILD_INDEX_URL", "PIP_INDEX_URL", "UV_INDEX_URL"):
        if os.environ.get(var):
            return os.environ[var]
    out = subprocess.run([sys.executable, "-c", "from pip._internal.models.index import PyPI; print(PyPI.simple_url)"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def run_rusage(cmd, env=None, cwd=None):
    """Run cmd with os.wait4 for its own rusage: (seconds, peak RSS MiB, rc, stderr)."""
    t = time.perf_counter()
    errf = tempfile.TemporaryFile()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errf, env=env, cwd=cwd)
    pid = p.pid
    _, status, ru = os.wait4(pid, 0)
    dt = time.perf_counter() - t
    errf.seek(0)
    err = errf.read().decode(errors="replace")
    rc = os.waitstatus_to_exitcode(status)
    p.returncode = rc
    run_rusage.cpu = (ru.ru_utime, ru.ru_stime)
    return dt, ru.ru_maxrss / 1024.0, rc, err


def fetch_wheels(wheels, index, exclude_newer):
    os.makedirs(wheels, exist_ok=True)
    uv = shutil.which("uv") or sys.exit("uv is not installed")
    req_in = os.path.join(wheels, "requirements.in")
    with open(req_in, "w") as f:
        f.write("\n".join(PINS) + "\n")
    pinned_txt = os.path.join(wheels, "requirements.txt")
    if not os.path.exists(pinned_txt):
        p = subprocess.run([uv, "pip", "compile", req_in, "--python-version", "3.11",
                            "--python-platform", "x86_64-manylinux_2_28", "--exclude-newer", exclude_newer,
                            "--index-url", index, "--no-header", "--no-annotate", "--quiet",
                            "-o", pinned_txt], capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit("uv pip compile failed: " + p.stderr)
    pins = [l.strip() for l in open(pinned_txt) if "==" in l and not l.lstrip().startswith("#")]
    pins = [l.split(";")[0].strip() for l in pins]
    done_dir = os.path.join(wheels, ".done")
    os.makedirs(done_dir, exist_ok=True)

    def one(pin):
        mark = os.path.join(done_dir, re.sub(r"[^A-Za-z0-9._=-]", "_", pin))
        if os.path.exists(mark):
            return pin, open(mark).read().strip()
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
               "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311", "--abi", "abi3",
               "--abi", "none", "--index-url", index, "-d", wheels, pin]
        for plat in PLATFORMS:
            cmd += ["--platform", plat]
        env = dict(os.environ)
        env.pop("PIP_FIND_LINKS", None)
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        status = "ok" if p.returncode == 0 else "no-wheel"
        with open(mark, "w") as f:
            f.write(status)
        return pin, status

    skipped = []
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        for pin, status in ex.map(one, pins):
            if status != "ok":
                skipped.append(pin)
    files = sorted(os.path.join(wheels, f) for f in os.listdir(wheels) if f.endswith(".whl"))
    return pins, files, skipped


def write_spec(path, files):
    with open(path, "w") as f:
        f.write('[env]\nname = "bench"\nsystem = "x86_64-linux"\nsource-date-epoch = 1700000000\n\n'
                '[python]\nversion = "3.11"\n\n[image]\ncompression = "zstd"\n\n')
        for w in files:
            f.write('[[wheels]]\npath = "%s"\n\n' % w)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--noop-runs", type=int, default=5)
    ap.add_argument("--settle", type=float, default=40.0,
                    help="seconds of quiet after removing earlier outputs, before each timed run")
    ap.add_argument("--exclude-newer", default="2025-12-15T00:00:00Z")
    ap.add_argument("--wheels", default="/var/tmp/envbuild-bench-wheels")
    ap.add_argument("--work", help="scratch directory (default: a temporary directory beside --wheels)")
    ap.add_argument("--envbuild")
    ap.add_argument("--download-only", action="store_true")
    args = ap.parse_args()
    index = index_url()
    pins, files, skipped = fetch_wheels(args.wheels, index, args.exclude_newer)
    size = sum(os.path.getsize(f) for f in files)
    print("resolved %d packages (uv pip compile, exclude-newer %s)" % (len(pins), args.exclude_newer))
    if skipped:
        print("skipped (no wheel for the target): %s" % ", ".join(skipped))
    print("wheels: %d files, %.2f GB" % (len(files), size / 1e9))
    if args.download_only:
        return
    envbuild = args.envbuild
    if not envbuild:
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "envbuild"], cwd=ROOT, check=True)
        envbuild = os.path.join(ROOT, "target/release/envbuild")
    uv = shutil.which("uv") or sys.exit("uv is not installed")
    work = tempfile.mkdtemp(prefix="envbuild-bench-", dir=args.work or os.path.dirname(args.wheels.rstrip("/")))
    try:
        spec = os.path.join(work, "bench.toml")
        write_spec(spec, files)
        lock = os.path.join(work, "bench.lock")
        store = os.path.join(work, "store")
        target = os.path.join(work, "target")
        cache = os.path.join(work, "uv-cache")

        def settle():
            """Same start for each timed run: the other runs' outputs
            removed, everything written back (and, on a file system mounted
            with `discard`, the deletes' trims issued) and a quiet disk."""
            for d in (store, target, cache):
                shutil.rmtree(d, ignore_errors=True)
            if os.path.exists(lock):
                os.remove(lock)
            os.sync()
            time.sleep(args.settle)

        def envbuild_run():
            settle()
            dt, rss, rc, err = run_rusage([envbuild, "--store", store, "-q", "closure", spec])
            if rc != 0:
                sys.exit("envbuild closure failed: " + err)
            cpu = sum(run_rusage.cpu)
            print("    envbuild:      %6.2f s  (CPU %.1f s: user %.1f, sys %.1f)" % ((dt, cpu) + run_rusage.cpu),
                  flush=True)
            return dt, cpu, rss

        def uv_run():
            settle()
            env = dict(os.environ, UV_CACHE_DIR=cache)
            dt, rss, rc, err = run_rusage([uv, "pip", "install", "--quiet", "--no-deps", "--target", target,
                                           "--link-mode", "copy", "--offline", "--no-index",
                                           "--python-version", "3.11", "--python-platform", "x86_64-manylinux_2_28"]
                                          + files, env=env)
            if rc != 0:
                sys.exit("uv pip install failed: " + err)
            cpu = sum(run_rusage.cpu)
            user_sys = run_rusage.cpu
            # uv leaves its files in the page cache; envbuild's time includes
            # making them durable, so uv's includes the sync that does.
            t = time.perf_counter()
            os.sync()
            synced = dt + time.perf_counter() - t
            print("    uv + sync:     %6.2f s  (uv %.2f s; CPU %.1f s: user %.1f, sys %.1f)"
                  % ((synced, dt, cpu) + user_sys), flush=True)
            return synced, cpu, rss

        # Alternate which goes first, pair by pair; one envbuild run last
        # (untimed) when envbuild did not, so its store is there for the
        # no-op runs below.
        pairs = []
        for i in range(args.runs):
            print("  pair %d (%s first)" % (i + 1, "uv" if i % 2 == 0 else "envbuild"), flush=True)
            if i % 2 == 0:
                u = uv_run()
                e = envbuild_run()
            else:
                e = envbuild_run()
                u = uv_run()
            pairs.append((e, u))
            print("    ratio envbuild/(uv + sync): %.2f   CPU ratio: %.2f" % (e[0] / u[0], e[1] / u[1]), flush=True)
        if args.runs % 2 == 0:
            envbuild_run()
        med = statistics.median
        e_t, u_t = med(e[0] for e, _ in pairs), med(u[0] for _, u in pairs)
        e_cpu, u_cpu = med(e[1] for e, _ in pairs), med(u[1] for _, u in pairs)
        ratios = [e[0] / u[0] for e, u in pairs]
        print("envbuild closure (fresh store):         %7.2f s  CPU %6.1f s  peak RSS %6.0f MiB  (median of %d)"
              % (e_t, e_cpu, max(e[2] for e, _ in pairs), args.runs))
        print("uv pip install --target + sync (cold):  %7.2f s  CPU %6.1f s  peak RSS %6.0f MiB  (median of %d)"
              % (u_t, u_cpu, max(u[2] for _, u in pairs), args.runs))
        print("per-pair ratios: %s" % ", ".join("%.2f" % r for r in ratios))
        print("median ratio envbuild/(uv + sync): %.2f   (goal <= 0.6)" % med(ratios))
        print("median CPU-s envbuild/uv: %.1f / %.1f = %.2f   (goal <= 1.0)" % (e_cpu, u_cpu, e_cpu / u_cpu))
        for cmd, what in (("closure", "no-op envbuild closure"), ("realize", "no-op envbuild realize")):
            if cmd == "realize":
                # Warm the layers and image once; the no-op is the run after.
                dt, rss, rc, err = run_rusage([envbuild, "--store", store, "-q", "realize", spec,
                                               "-o", os.path.join(work, "image.tar")])
                if rc != 0:
                    sys.exit("envbuild realize failed: " + err)
                print("first envbuild realize (layers + image): %7.2f s  peak RSS %6.0f MiB" % (dt, rss))
            runs = []
            for _ in range(args.noop_runs):
                argv = [envbuild, "--store", store, "-q", cmd, spec]
                if cmd == "realize":
                    argv += ["-o", os.path.join(work, "image.tar")]
                dt, rss, rc, err = run_rusage(argv)
                if rc != 0:
                    sys.exit("envbuild %s failed: %s" % (cmd, err))
                runs.append((dt, rss))
            print("%-24s %7.1f ms  peak RSS %6.0f MiB  (median of %d; goal < 100 ms)"
                  % (what + ":", 1000 * statistics.median(t for t, _ in runs), max(r for _, r in runs),
                     args.noop_runs))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
