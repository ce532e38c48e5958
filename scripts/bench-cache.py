#!/usr/bin/env python3
"""Benchmark: binary caches. Push, re-push, and a cold realize from a cache.

For each spec: a cold realize into a fresh store A (fetching from wherever
the configuration says, building every step), `cache push` to a file://
cache and to a loopback HTTP cache (a threaded server here that accepts
PUT), each pushed twice (the second finds everything there), then cold
realizes into fresh stores from the HTTP cache and from the file:// cache
(0 steps built expected). Prints times, step counts and bytes.

The hello example is offline. Other specs (e.g. examples/python-numpy.toml,
--spec) need their mirror and index (from your configuration) for store A's
realize; the realizes from the caches are offline except for the loopback
cache.

`--ofa-ve` (networked once, release build): specs/ofa-ve.toml at scale.
A seed store realizes it from the configured archive and index; a loopback
mirror serves copies of its locked files (as scripts/ofa-ve-e2e.py does);
the seed store is pushed to a loopback HTTP cache (PUT; or with --cache oci
to Debian's docker-registry as oci://), then re-pushed
(nothing to upload). Then --pairs alternating pairs on empty stores: a cold
realize from the loopback mirror (fetching and building every step) and a
realize from the loopback cache (the mirror and index pointed at a closed
port), with each pair's ratio and the medians (goal: at most 0.3x). Work
directory --work (default /var/tmp/bench-cache-ofa, about 35 GB at its
peak), removed at the end.

Usage: scripts/bench-cache.py [--spec SPEC]... [--envbuild PATH]
       scripts/bench-cache.py --ofa-ve [--pairs N] [--cache http|oci] [--work DIR] [--envbuild PATH]
"""
import argparse
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from loopback import Registry  # noqa: E402  (scripts/loopback.py)


class PutHandler(http.server.SimpleHTTPRequestHandler):
    def do_PUT(self):
        rel = self.path.lstrip("/")
        if ".." in rel.split("/"):
            self.send_response(400)
            self.end_headers()
            return
        path = os.path.join(self.directory, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        length = int(self.headers.get("Content-Length", "0"))
        with open(path, "wb") as f:
            left = length
            while left > 0:
                chunk = self.rfile.read(min(left, 1 << 20))
                if not chunk:
                    break
                f.write(chunk)
                left -= len(chunk)
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def serve(directory):
    os.makedirs(directory, exist_ok=True)
    handler = lambda *a, **k: PutHandler(*a, directory=directory, **k)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, "http://127.0.0.1:%d" % server.server_address[1]


def run(args, env=None):
    start = time.perf_counter()
    p = subprocess.run(args, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit("%s failed:\n%s" % (" ".join(args[:6]), p.stderr))
    return elapsed, p.stdout


def realize(envbuild, store, spec, out, subst=None, env=None):
    args = [envbuild, "--store", store, "--json", "realize", spec, "-o", out]
    if subst:
        args += ["--substituter", subst]
    t, stdout = run(args, env)
    return t, json.loads(stdout.splitlines()[0])


def prepare(spec, tmp):
    """Copy a spec (and for hello, its files, with the program built)."""
    if os.path.basename(spec) == "hello.toml":
        shutil.copytree(os.path.join(ROOT, "examples/hello"), os.path.join(tmp, "hello"))
        os.makedirs(os.path.join(tmp, "hello/bin"), exist_ok=True)
        subprocess.run(["gcc", "-static", "-O2", "-o", os.path.join(tmp, "hello/bin/hello"),
                        os.path.join(tmp, "hello/hello.c")], check=True)
    dst = os.path.join(tmp, os.path.basename(spec))
    shutil.copy(spec, dst)
    lock = spec[:-len(".toml")] + ".lock" if spec.endswith(".toml") else None
    if lock and os.path.exists(lock):
        shutil.copy(lock, dst[:-len(".toml")] + ".lock")
    return dst


def bench(envbuild, spec_src):
    with tempfile.TemporaryDirectory() as tmp:
        spec = prepare(spec_src, tmp)
        name = os.path.basename(spec)
        env = dict(os.environ, ENVBUILD_PROGRESS="none", XDG_CONFIG_HOME=os.path.join(tmp, "config"))
        env.pop("ENVBUILD_SUBSTITUTERS", None)
        t, pub = run([envbuild, "cache", "keygen", "bench-1", "--dir", tmp], env)
        env["ENVBUILD_TRUSTED_PUBLIC_KEYS"] = pub.strip()
        key = os.path.join(tmp, "bench-1.secret")
        t, r = realize(envbuild, os.path.join(tmp, "a"), spec, os.path.join(tmp, "a.tar"), env=env)
        print("%s: cold realize (upstream/local, building): %8.1f ms  (%d built)" % (name, t * 1000, r["built"]))
        server, base = serve(os.path.join(tmp, "served"))
        file_cache = "file://" + os.path.join(tmp, "cache")
        for label, dest in (("file://", file_cache), ("http PUT", base)):
            for attempt in ("push", "re-push"):
                t, out = run([envbuild, "--store", os.path.join(tmp, "a"), "--json", "cache", "push",
                              dest, spec, "--key", key], env)
                rep = json.loads(out)
                print("%s: %-7s to %-8s %8.1f ms  (%d pushed, %d skipped, %d NAR bytes, %d file bytes)"
                      % (name, attempt, label, t * 1000, len(rep["pushed"]), len(rep["skipped"]),
                         rep["narBytes"], rep["fileBytes"]))
        for label, subst, store in (("http cache", base, "b"), ("file cache", file_cache, "c")):
            t, r = realize(envbuild, os.path.join(tmp, store), spec, os.path.join(tmp, store + ".tar"),
                           subst=subst, env=env)
            print("%s: cold realize from the %s:  %8.1f ms  (%d built, %d substituted)"
                  % (name, label, t * 1000, r["built"], r["substituted"]))
        server.shutdown()


def remove(path):
    """Store items are read-only: make them writable, then delete."""
    if os.path.exists(path):
        subprocess.run(["chmod", "-R", "u+w", path], check=True)
        shutil.rmtree(path)


def e2e_module():
    """scripts/ofa-ve-e2e.py (its loopback mirror of a lock's files)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("ofa_ve_e2e", os.path.join(ROOT, "scripts/ofa-ve-e2e.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def bench_ofa_ve(envbuild, work, pairs, cache_kind):
    from pathlib import Path
    free = shutil.disk_usage(os.path.dirname(work.rstrip("/")) or "/").free / 1e9
    if free < 35:
        sys.exit("%.1f GB free under %s: the OFA-VE benchmark needs about 35 GB" % (free, work))
    remove(work)
    os.makedirs(work)
    e2e = e2e_module()
    spec = os.path.join(ROOT, "specs/ofa-ve.toml")
    lock = os.path.join(ROOT, "specs/ofa-ve.lock")
    env = dict(os.environ, ENVBUILD_PROGRESS="none", XDG_CONFIG_HOME=os.path.join(work, "config"),
               ENVBUILD_SUBSTITUTERS="")
    _, pub = run([envbuild, "cache", "keygen", "bench-1", "--dir", work], env)
    env["ENVBUILD_TRUSTED_PUBLIC_KEYS"] = pub.strip()
    key = os.path.join(work, "bench-1.secret")

    def realize_ofa(store, extra, env):
        args = [envbuild, "--store", store, "--json", "realize", spec, "--locked", "-o",
                store + "-oci", "--format", "oci-dir"] + extra
        t, out = run(args, env)
        r = json.loads(out.splitlines()[0])
        r["digest"] = out.strip().splitlines()[-1]
        remove(store)
        remove(store + "-oci")
        return t, r

    seed = os.path.join(work, "seed")
    t, out = run([envbuild, "--store", seed, "--json", "realize", spec, "--locked", "-o", seed + "-oci",
                  "--format", "oci-dir"], env)
    digest = out.strip().splitlines()[-1]
    print("ofa-ve: seed realize (configured archive and index): %.1f s, %s" % (t, digest), flush=True)
    remove(seed + "-oci")
    mirror = e2e.loopback_mirror(Path(seed), Path(lock), Path(work) / "mirror")
    base = "http://127.0.0.1:%d" % mirror.server_address[1]
    mirror_env = dict(env, ENVBUILD_DEBIAN_MIRROR=base + "/debian", ENVBUILD_INDEX_URL=base + "/simple")
    if cache_kind == "oci":
        server = Registry(os.path.join(work, "registry"))
        cache = server.oci_url("bench/cache")
    else:
        server, cache = serve(os.path.join(work, "served"))
    label = {"oci": "loopback registry", "http": "loopback HTTP"}[cache_kind]
    for attempt in ("push", "re-push"):
        t, out = run([envbuild, "--store", seed, "--json", "cache", "push", cache, spec, "--key", key],
                     mirror_env)
        rep = json.loads(out)
        print("ofa-ve: cache %-7s to %s: %7.1f s  (%d items pushed, %d skipped, %.2f GiB NAR, "
              "%.2f GiB files; %d realisations pushed)"
              % (attempt, label, t, len(rep["pushed"]), len(rep["skipped"]), rep["narBytes"] / 2**30,
                 rep["fileBytes"] / 2**30, rep["realisationsPushed"]), flush=True)
        if attempt == "re-push" and (rep["pushed"] or rep["realisationsPushed"]):
            sys.exit("the re-push uploaded something: %s" % out[:400])
    # The mirror holds its own links to the locked files.
    remove(seed)
    # Nothing listens on port 9 of loopback: any upstream request fails.
    closed = dict(env, ENVBUILD_DEBIAN_MIRROR="http://127.0.0.1:9/debian",
                  ENVBUILD_INDEX_URL="http://127.0.0.1:9/simple", PIP_INDEX_URL="http://127.0.0.1:9/simple")
    rows = []
    for i in range(pairs):
        order = ("cold", "cache") if i % 2 == 0 else ("cache", "cold")
        times = {}
        for kind in order:
            store = os.path.join(work, "%s-%d" % (kind, i))
            if kind == "cold":
                t, r = realize_ofa(store, [], mirror_env)
                if r["built"] == 0:
                    sys.exit("the cold realize built nothing")
            else:
                t, r = realize_ofa(store, ["--substituter", cache], closed)
                if r["built"] != 0:
                    sys.exit("the realize from the cache built %d steps" % r["built"])
            if r["digest"] != digest:
                sys.exit("%s realize: digest %s, expected %s" % (kind, r["digest"], digest))
            times[kind] = (t, r)
        (tc, rc), (tk, rk) = times["cold"], times["cache"]
        rows.append((tc, tk))
        print("ofa-ve: pair %d (%s first): cold from the loopback mirror %.1f s (%d built); from the loopback "
              "cache %.1f s (%d substituted, 0 built); ratio %.2f"
              % (i + 1, order[0], tc, rc["built"], tk, rk["substituted"], tk / tc), flush=True)
    mirror.shutdown()
    if cache_kind == "oci":
        server.stop()
    else:
        server.shutdown()
    print()
    print("| pair | cold realize (loopback mirror), s | realize from the %s cache, s | ratio |" % label)
    print("|---|---|---|---|")
    for i, (tc, tk) in enumerate(rows):
        print("| %d | %.1f | %.1f | %.2f |" % (i + 1, tc, tk, tk / tc))
    print("| median | %.1f | %.1f | %.2f |" % (median([r[0] for r in rows]), median([r[1] for r in rows]),
                                            median([r[1] / r[0] for r in rows])))
    remove(work)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", action="append")
    ap.add_argument("--envbuild")
    ap.add_argument("--ofa-ve", action="store_true", help="specs/ofa-ve.toml at scale (see above)")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--work", default="/var/tmp/bench-cache-ofa")
    ap.add_argument("--cache", choices=["http", "oci"], default="http",
                    help="--ofa-ve: the loopback cache (an HTTP server taking PUT, or docker-registry)")
    args = ap.parse_args()
    envbuild = args.envbuild
    if not envbuild:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--locked", "-p", "envbuild"], cwd=ROOT,
                       check=True)
        envbuild = os.path.join(ROOT, "target/release/envbuild")
    if args.ofa_ve:
        bench_ofa_ve(envbuild, args.work, args.pairs, args.cache)
        return
    for spec in args.spec or [os.path.join(ROOT, "examples/hello.toml")]:
        bench(envbuild, os.path.abspath(spec))


if __name__ == "__main__":
    main()
