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

Usage: scripts/bench-cache.py [--spec SPEC]... [--envbuild PATH]
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", action="append")
    ap.add_argument("--envbuild")
    args = ap.parse_args()
    envbuild = args.envbuild
    if not envbuild:
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "envbuild"], cwd=ROOT, check=True)
        envbuild = os.path.join(ROOT, "target/release/envbuild")
    for spec in args.spec or [os.path.join(ROOT, "examples/hello.toml")]:
        bench(envbuild, os.path.abspath(spec))


if __name__ == "__main__":
    main()
