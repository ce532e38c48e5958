#!/usr/bin/env python3
"""Benchmark: `envbuild push` of the OFA-VE image next to `skopeo copy`.

Realizes specs/ofa-ve.toml (networked the first time: the apt sources and
pip index your configuration names; about 25 GB of disk under the work
directory) into its own store and an OCI archive, then, for each pair:

- a cold `envbuild push SPEC 127.0.0.1:PORT/ofa-ve:1` into an empty
  loopback docker-registry (the push's mount records cleared first; its
  no-op realize is included in the wall time and reported apart), and
- a cold `skopeo copy oci-archive:ARCHIVE docker://127.0.0.1:PORT/ofa-ve:1`
  of the same image into another empty registry,

in alternating order (envbuild first in odd pairs, skopeo first in even
ones), each registry deleted after its pair and each cold push started
after a sync and --settle seconds of quiet (default 20: neither side pays
for the last one's writeback or deletes); and after the envbuild push
of each pair, the re-push of a copy of the spec whose app file was edited
(goal: at most 1 s and exactly one layer blob, plus the config and the
manifest). Prints each time, per-pair ratios and the median ratio (goal:
cold push at most 0.5x skopeo's).

Usage: scripts/bench-push.py [--pairs N] [--settle S] [--work DIR] [--envbuild PATH] [--keep]
       (--work defaults to /var/tmp/bench-push; it is deleted at the end
       unless --keep; a release build is needed for fair figures:
       cargo build --release --locked)
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from loopback import Registry  # noqa: E402  (scripts/loopback.py)
NEED_FREE = 35 << 30


def fail(msg):
    sys.exit("bench-push: " + msg)


def timed(cmd, env=None):
    """Run cmd; (seconds, peak RSS MiB, stdout); fail on a non-zero exit."""
    start = time.monotonic()
    p = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env={**os.environ, **(env or {})}, text=True)
    out, err = [], []
    t1 = threading.Thread(target=lambda: out.append(p.stdout.read()))
    t2 = threading.Thread(target=lambda: err.append(p.stderr.read()))
    t1.start()
    t2.start()
    _, status, usage = os.wait4(p.pid, 0)
    t1.join()
    t2.join()
    secs = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        fail("%s exited %d:\n%s" % (" ".join(map(str, cmd[:8])), code, "".join(err)[-4000:]))
    return secs, usage.ru_maxrss / 1024, "".join(out)


def copy_spec(dst):
    os.makedirs(dst, exist_ok=True)
    for name in ("ofa-ve.toml", "ofa-ve.lock"):
        shutil.copy(os.path.join(ROOT, "specs", name), dst)
    if not os.path.exists(os.path.join(dst, "ofa-ve")):
        shutil.copytree(os.path.join(ROOT, "specs", "ofa-ve"), os.path.join(dst, "ofa-ve"))
    return os.path.join(dst, "ofa-ve.toml")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--settle", type=float, default=20.0,
                    help="seconds of quiet after a sync before each cold push")
    ap.add_argument("--work", default="/var/tmp/bench-push")
    ap.add_argument("--envbuild", default=os.path.join(ROOT, "target/release/envbuild"))
    ap.add_argument("--keep", action="store_true", help="keep the work directory (store, archive)")
    args = ap.parse_args()
    for tool in ("docker-registry", "skopeo"):
        if not shutil.which(tool):
            fail("%s is not installed (Debian packages docker-registry, skopeo)" % tool)
    if not os.path.exists(args.envbuild):
        fail("%s is missing: cargo build --release --locked" % args.envbuild)
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    store = os.path.join(work, "store")
    if not os.path.exists(store):
        free = shutil.disk_usage(work).free
        if free < NEED_FREE:
            fail("%s has %.1f GiB free; the benchmark needs %d GiB" % (work, free / 2**30, NEED_FREE >> 30))
    env = {"ENVBUILD_PROGRESS": "none", "TMPDIR": os.path.join(work, "tmp")}
    os.makedirs(env["TMPDIR"], exist_ok=True)
    eb = args.envbuild
    spec = copy_spec(os.path.join(work, "spec"))
    archive = os.path.join(work, "ofa-ve.tar")
    secs, rss, out = timed([eb, "--store", store, "--json", "realize", spec, "--locked", "-o", archive], env)
    report = json.loads(out.splitlines()[0])
    digest = out.strip().splitlines()[-1]
    layers = len(report["layers"])
    size = sum(l["size"] for l in report["layers"])
    print("realize: %.1f s, %d layers, %.2f GiB of layers, %s" % (secs, layers, size / 2**30, digest))
    # The spec copy whose app file each pair edits.
    edit_spec = copy_spec(os.path.join(work, "spec-edit"))
    app = os.path.join(work, "spec-edit", "ofa-ve", "app", "app.py")
    records = os.path.join(store, ".envbuild", "cache", "registry-pushes")

    def settle():
        """The same start for each cold push: the last registry's deletes
        and writes on disk (sync), then --settle seconds of quiet."""
        os.sync()
        time.sleep(args.settle)

    def envbuild_pair(pair):
        """The cold push into an empty registry, then the re-push after an
        app edit into the same one (which is then deleted)."""
        shutil.rmtree(records, ignore_errors=True)
        reg = Registry(os.path.join(work, "reg-envbuild-%d" % pair))
        settle()
        secs, rss, out = timed([eb, "--store", store, "--json", "push", "--locked", spec,
                                "%s/ofa-ve:1" % reg.host], env)
        rep = json.loads(out.splitlines()[0])
        if out.strip().splitlines()[-1] != digest or rep["uploaded"] != layers + 1:
            fail("envbuild push: %s" % out[:2000])
        with open(app, "a") as f:
            f.write("\n# bench-push edit %d\n" % pair)
        r_secs, r_rss, out = timed([eb, "--store", store, "--json", "push", edit_spec,
                                    "%s/ofa-ve:1" % reg.host], env)
        r_rep = json.loads(out.splitlines()[0])
        reg.stop()
        up = [b for b in r_rep["blobs"] if b["outcome"] == "uploaded"]
        return dict(e=secs, e_push=rep["pushSeconds"], e_rss=rss, r=r_secs,
                    r_push=r_rep["pushSeconds"], r_realize=r_rep["realizeSeconds"],
                    r_layers=sum(1 for b in up if b["kind"] == "layer"),
                    r_config=sum(1 for b in up if b["kind"] == "config"),
                    r_bytes=r_rep["bytesUploaded"])

    def skopeo_cold(pair):
        reg = Registry(os.path.join(work, "reg-skopeo-%d" % pair))
        settle()
        secs, rss, _ = timed(["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                              "oci-archive:" + archive, "docker://%s/ofa-ve:1" % reg.host], env)
        reg.stop()
        return dict(s=secs, s_rss=rss)

    rows = []
    for pair in range(1, args.pairs + 1):
        order = ("envbuild", "skopeo") if pair % 2 else ("skopeo", "envbuild")
        r = dict(pair=pair, order="/".join(order))
        for who in order:
            r.update(envbuild_pair(pair) if who == "envbuild" else skopeo_cold(pair))
        rows.append(r)
        print("pair %d (%s): envbuild %.2f s (push %.2f s, %.0f MiB RSS), skopeo %.2f s (%.0f MiB RSS), "
              "ratio %.2f; re-push after an app edit %.2f s (realize %.2f s, push %.3f s): "
              "%d layer blob(s) + %d config, %d bytes"
              % (pair, r["order"], r["e"], r["e_push"], r["e_rss"], r["s"], r["s_rss"], r["e"] / r["s"],
                 r["r"], r["r_realize"], r["r_push"], r["r_layers"], r["r_config"], r["r_bytes"]))
        sys.stdout.flush()
    ratios = [r["e"] / r["s"] for r in rows]
    print()
    print("| pair | order | envbuild push (s) | skopeo copy (s) | ratio | re-push after edit (s) | re-push blobs |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print("| %d | %s | %.2f | %.2f | %.2f | %.2f (push %.3f) | %d layer + %d config |"
              % (r["pair"], r["order"], r["e"], r["s"], r["e"] / r["s"], r["r"], r["r_push"],
                 r["r_layers"], r["r_config"]))
    print()
    print("median ratio envbuild/skopeo: %.2f (goal <= 0.5); median re-push %.2f s (goal <= 1 s, 1 layer blob)"
          % (statistics.median(ratios), statistics.median(r["r"] for r in rows)))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
        print("removed %s" % work)


if __name__ == "__main__":
    main()
