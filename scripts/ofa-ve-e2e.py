#!/usr/bin/env python3
"""The OFA-VE headline, end to end: `envbuild realize specs/ofa-ve.toml`.

NETWORKED: the first realize fetches the Debian base and the wheels from the
archive and index this machine's configuration names (apt sources or
ENVBUILD_DEBIAN_MIRROR; pip.conf, ENVBUILD_INDEX_URL or PIP_INDEX_URL).

What it shows, each step failing the script with a message when it does not
hold:

1. realize into store A (from the configured sources), then into store B
   from a loopback mirror holding copies of the locked files (a Debian pool
   and a PEP 691 index served by this script): the same image digest, and
   the sdists (crcmod, oss2, ...) built twice give the same wheel items;
2. a warm realize builds nothing;
3. in the image (docker) and in the closure (`envbuild run`): torch 2.1.0,
   torchvision, gradio and modelscope import; the model directory under
   MODELSCOPE_CACHE is there and non-empty; the image's CMD serves the
   Gradio page on port 7860;
4. at most 100 layers; editing app.py changes only the app layer's digest;
   bumping one pin (tqdm) re-locks only that package (the other pins are
   kept: minimal-change locking) and changes at most two layer digests;
5. `envbuild init --from-dockerfile` on a copy of the seed's Dockerfile
   (tests/fixtures/seed-dockerfile) gives a spec that locks (the configured
   archive and index; its ModelScope model from a loopback hub serving the
   checked-in stand-in) and realizes, and whose installed distributions are
   the locked ones (`envbuild check`);
6. two machines, simulated (--skip-two-machines leaves it out): store B pushes the closure to a file:// binary
   cache and to a loopback registry as an oci:// cache (a re-push uploads
   nothing); a fresh store realizes the spec from each cache alone: the
   file:// one, the same directory served over loopback HTTP, the registry,
   with the Debian mirror and the Python index pointed at a loopback port
   that counts requests and serves nothing: the recorded digest, no step
   built, no request upstream, no wheel or .deb taken (a served step does
   not need its inputs); then one app edit builds only the app's steps.

It prints the figures: image size, layer count, cold realize time from the
loopback mirror, warm realize time, peak RSS of each realize.

    scripts/ofa-ve-e2e.py [--work DIR] [--keep] [--skip-two-machines]
"""

import argparse
import hashlib
import http.server
import json
import os
import re
import resource
import shutil
import socketserver
import subprocess
import sys
import tarfile
import threading
import time
import tomllib
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loopback  # noqa: E402  (scripts/loopback.py)

ROOT = Path(__file__).resolve().parent.parent
ENVBUILD = ROOT / "target" / "release" / "envbuild"
IMPORT_CHECK = "import torch, torchvision, gradio, modelscope; print(torch.__version__)"
MODEL_DIR = "/home/appuser/.cache/modelscope/iic/ofa_visual-entailment_snli-ve_large_en"


# The image digest of specs/ofa-ve.toml + specs/ofa-ve.lock. A change that
# moves it on purpose updates it here and says why. Moved once by issue 18's
# stable layer grouping (src/assemble/grouping.rs: 56 layers instead of 100;
# before: sha256:91d6d6866404d4f05b653744cce2e73bdbcca95c7d1a2ce556cb11b4220fd7fa),
# then by issue 18's bytecode (pycs in every wheel's component) and
# block-parallel gzip layers (before: sha256:eafdaaf13a8488c34b0bc3a41bf3e34f43980adca365d749a2e97e65efa952dd),
# then by the debian-bytecode step (the Debian standard library's pycs, one
# more component; before: sha256:c78b3645f004011866e34951bbb7e36d27a454e36cb0ca5fca676e365df37619).
EXPECTED_DIGEST = "sha256:bd8ad5e3691f3d2c6a5af7859c6bc2a5d5c8c13a0f56552a0ac5dd3442c64084"


def fail(msg: str) -> None:
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def step(msg: str) -> None:
    print(f"== {msg}", flush=True)


def free_gib(path: Path) -> float:
    return shutil.disk_usage(path).free / 2**30


def used_gib(path: Path) -> float:
    """Bytes allocated under path (hardlinked files counted once), in GiB."""
    seen, total = set(), 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total / 2**30


def remove(*paths: Path) -> None:
    """Store items are read-only directories: make them writable, then delete."""
    for path in paths:
        if not path.exists():
            continue
        subprocess.run(["chmod", "-R", "u+w", str(path)], check=True)
        shutil.rmtree(path)


def timed(cmd, env=None, cwd=None):
    """Run cmd; return (seconds, peak RSS in MiB, stdout). Fails the script
    on a non-zero exit, showing stderr."""
    start = time.monotonic()
    p = subprocess.Popen(
        [str(c) for c in cmd],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        text=True,
    )
    out_chunks = []
    err_chunks = []
    t_out = threading.Thread(target=lambda: out_chunks.append(p.stdout.read()))
    t_err = threading.Thread(target=lambda: err_chunks.append(p.stderr.read()))
    t_out.start()
    t_err.start()
    _, status, usage = os.wait4(p.pid, 0)
    t_out.join()
    t_err.join()
    p.returncode = os.waitstatus_to_exitcode(status)
    secs = time.monotonic() - start
    out, err = "".join(out_chunks), "".join(err_chunks)
    if p.returncode != 0:
        # Under --json the error is the JSON on stdout; stderr has the
        # progress and any log lines (RUST_LOG).
        fail(f"{' '.join(map(str, cmd))} exited {p.returncode}:\n"
             f"stdout: {out[-4000:]}\nstderr: {err[-4000:]}")
    return secs, usage.ru_maxrss / 1024, out


def digest_of(out: str) -> str:
    last = out.strip().splitlines()[-1]
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", last):
        fail(f"realize's last line is not a digest: {last!r}")
    return last


def realize(store: Path, spec: Path, out: Path, env=None, locked=True, extra=()):
    flags = (["--locked"] if locked else []) + list(extra)
    if out.suffix != ".tar":
        # An OCI directory: blobs hardlinked from the store, no copy.
        flags += ["--format", "oci-dir"]
    secs, rss, stdout = timed(
        [ENVBUILD, "--store", store, "--json", "realize", spec, "-o", out, *flags],
        env=env,
    )
    report = json.loads(stdout.strip().splitlines()[0])
    report["digest"] = digest_of(stdout)
    return secs, rss, report


def item_basename(file_name: str) -> str:
    return "".join(c if c.isalnum() or c in "+-._?=" else "-" for c in file_name)


class MirrorHandler(http.server.SimpleHTTPRequestHandler):
    """Static files, with PEP 691 pages served under their media type."""

    def log_message(self, *args):
        pass

    def guess_type(self, path):
        if str(path).endswith("index.json"):
            return "application/vnd.pypi.simple.v1+json"
        return super().guess_type(path)

    def send_head(self):
        # /simple/NAME/ -> /simple/NAME/index.json
        if self.path.startswith("/simple/") and self.path.endswith("/"):
            self.path += "index.json"
        return super().send_head()


def loopback_mirror(store: Path, lock_path: Path, root: Path):
    """Copies of the locked files (from `store`, by hardlink): a Debian pool
    under /debian and a PEP 691 index under /simple. Returns the server."""
    lock = tomllib.loads(lock_path.read_text())
    items = {p.name.split("-", 1)[1]: p for p in store.iterdir() if p.is_file()}
    projects = {}
    python = lock.get("python", {})
    pinned = [("debian", p) for p in lock.get("debian", {}).get("package", [])]
    pinned += [("python", w) for w in python.get("wheel", [])]
    for s in python.get("sdist", []):
        pinned += [("python", s)] + [("python", b) for b in s.get("build", [])]
    for kind, pin in pinned:
        source, sha = pin["file"], pin["sha256"]
        if kind == "debian":
            dst = root / "debian" / source
            name = source.rsplit("/", 1)[1]
        else:
            name = source
            dst = root / "files" / name
            project = re.split(r"-\d", name, maxsplit=1)[0].replace("_", "-").replace(".", "-").lower()
            entry = {"filename": name, "url": f"/files/{name}", "hashes": {"sha256": sha}}
            if entry not in projects.setdefault(project, []):
                projects[project].append(entry)
        src = items.get(item_basename(name))
        if src is None:
            fail(f"{name} (locked in [{kind}]) is not in store {store}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            os.link(src, dst)
    for project, files in projects.items():
        page = root / "simple" / project / "index.json"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(json.dumps({"meta": {"api-version": "1.0"}, "name": project, "files": files}))

    handler = lambda *a, **k: MirrorHandler(*a, directory=str(root), **k)  # noqa: E731
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def modelscope_hub(model_dir: Path, model_id: str):
    """A loopback ModelScope hub serving `model_dir` as `model_id`, the two
    calls envbuild makes (src/model/modelscope.rs). Returns the server."""
    revision = hashlib.sha1(model_id.encode()).hexdigest()
    files = sorted(p for p in model_dir.rglob("*") if p.is_file())
    listing = json.dumps({"Code": 200, "Success": True, "Data": {"Files": [
        {"Name": p.name, "Path": p.relative_to(model_dir).as_posix(), "Type": "blob",
         "Size": p.stat().st_size, "Sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
         "Revision": revision, "IsLFS": False}
        for p in files]}}).encode()
    by_path = {p.relative_to(model_dir).as_posix(): p for p in files}

    class Hub(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            body = None
            if url.path == f"/api/v1/models/{model_id}/repo/files":
                body, kind = listing, "application/json"
            elif url.path == f"/api/v1/models/{model_id}/repo" and query.get("FilePath", [""])[0] in by_path:
                body, kind = by_path[query["FilePath"][0]].read_bytes(), "application/octet-stream"
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def trap_server():
    """A loopback port standing in for the Debian mirror and the Python
    index on a machine that must not use them: it counts every request and
    serves nothing (404). Returns (server, counter)."""
    counter = {"requests": 0}
    lock = threading.Lock()

    class Trap(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def refuse(self):
            with lock:
                counter["requests"] += 1
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD = do_POST = do_PUT = refuse

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Trap)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, counter


def served_directory(root: Path):
    """A read-only loopback HTTP server of `root` (a binary cache directory
    served as an http:// cache). Returns the server."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = lambda *a, **k: Quiet(*a, directory=str(root), **k)  # noqa: E731
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def inputs_in(store: Path) -> int:
    """Fixed-output files (wheels, .debs) in a store (not the layers named
    after them)."""
    return sum(1 for p in store.iterdir()
               if p.name.endswith((".whl", ".deb")) and not p.name.split("-", 1)[1].startswith("layer-"))


def two_machines(work: Path, spec: Path, figures: dict, edit_built: int) -> None:
    """Store B (the machine that built) pushes the spec's closure to a
    file:// cache and to a loopback registry (oci://); fresh stores realize
    it from one cache alone each (file://, the same directory served over
    loopback HTTP, the registry), with the Debian
    mirror and the Python index pointed at a port that serves nothing: the
    same digest, no step built, no request upstream, no wheel or .deb
    taken. Then one app edit: only the app's steps run. Store B is removed
    once it has pushed (the run's peak disk stays that of two stores)."""
    step("two machines: store B pushes to a file:// cache and a registry; store C realizes from each alone")
    _, _, out = timed([ENVBUILD, "cache", "keygen", "e2e-1", "--dir", work])
    public = out.strip().splitlines()[-1]
    trap, trap_count = trap_server()
    trap_base = f"http://127.0.0.1:{trap.server_address[1]}"
    env = {
        "ENVBUILD_DEBIAN_MIRROR": f"{trap_base}/debian",
        "ENVBUILD_INDEX_URL": f"{trap_base}/simple",
        "PIP_INDEX_URL": f"{trap_base}/simple",
        "UV_INDEX_URL": f"{trap_base}/simple",
        "ENVBUILD_TRUSTED_PUBLIC_KEYS": public,
        "ENVBUILD_SUBSTITUTERS": "",
        "XDG_CONFIG_HOME": str(work / "config"),
        # Retries and resumed uploads on stderr, shown if a step fails.
        "ENVBUILD_LOG": "envbuild::registry=info,envbuild::cache=info,envbuild::net=info",
    }
    cache = work / "cache"
    push = [ENVBUILD, "--store", work / "store-b", "--json", "cache", "push", f"file://{cache}", spec,
            "--key", work / "e2e-1.secret"]
    secs, rss, out = timed(push, env=env)
    first = json.loads(out)
    if not first["pushed"] or first["realisationsPushed"] == 0:
        fail(f"cache push pushed nothing: {out[:500]}")
    figures["cache push to file:// (zstd), s"] = f"{secs:.1f}"
    figures["cache push: items, NAR GiB, file GiB"] = (
        f"{len(first['pushed'])}, {first['narBytes'] / 2**30:.2f}, {first['fileBytes'] / 2**30:.2f}")
    secs, _, out = timed(push, env=env)
    again = json.loads(out)
    if again["pushed"] or again["realisationsPushed"]:
        fail(f"a re-push uploaded something: {out[:500]}")
    figures["cache re-push (nothing to upload), s"] = f"{secs:.2f}"
    print(f"   pushed {len(first['pushed'])} items ({first['fileBytes'] / 2**30:.2f} GiB of files); "
          f"re-push {secs:.2f} s, nothing uploaded")
    # The same closure to a loopback registry as an oci:// cache.
    registry = loopback.Registry(work / "registry")
    oci = registry.oci_url("e2e/cache")
    push_oci = push[:6] + [oci] + push[7:]
    secs, _, out = timed(push_oci, env=env)
    pushed = json.loads(out)
    if len(pushed["pushed"]) != len(first["pushed"]):
        fail(f"the registry push pushed {len(pushed['pushed'])} items, the file:// push {len(first['pushed'])}")
    figures["cache push to the loopback registry (oci://), s"] = f"{secs:.1f}"
    secs, _, out = timed(push_oci, env=env)
    again = json.loads(out)
    if again["pushed"] or again["realisationsPushed"]:
        fail(f"a re-push to the registry uploaded something: {out[:500]}")
    figures["cache re-push to the registry (nothing to upload), s"] = f"{secs:.2f}"
    figures["work directory at the push, GiB"] = f"{used_gib(work):.1f}"
    print(f"   pushed them to the loopback registry too; re-push {secs:.2f} s, nothing uploaded")
    remove(work / "store-b")

    served = []
    http_cache = served_directory(cache)
    for name, url in (("file://", f"file://{cache}"),
                      ("loopback HTTP", f"http://127.0.0.1:{http_cache.server_address[1]}"),
                      ("loopback registry", oci)):
        if name == "loopback registry":
            # The directory cache is done with: keep the peak disk down.
            http_cache.shutdown()
            remove(cache)
        store = work / "store-c"
        secs, rss, c = realize(store, spec, work / "c-oci", env=env, extra=["--substituter", url])
        if c["digest"] != EXPECTED_DIGEST:
            fail(f"from the {name} cache the digest is {c['digest']}, expected {EXPECTED_DIGEST}")
        if c["built"] != 0 or c["substituted"] == 0:
            fail(f"from the {name} cache {c['built']} steps were built, {c['substituted']} substituted")
        if trap_count["requests"]:
            fail(f"realizing from the {name} cache made {trap_count['requests']} requests upstream")
        taken = inputs_in(store)
        if taken:
            fail(f"realizing from the {name} cache took {taken} wheels or .debs (every step was served)")
        figures[f"realize from the {name} cache (empty store), s"] = f"{secs:.1f}"
        figures[f"realize from the {name} cache peak RSS, MiB"] = f"{rss:.0f}"
        print(f"   from the {name} cache: {c['digest']} in {secs:.1f} s, {c['substituted']} steps substituted, "
              f"0 built, 0 requests upstream, no wheel or .deb taken ({used_gib(store):.1f} GiB store)")
        served.append(name)
        if name == "file://":
            # One app edit on this machine: only the app's steps run.
            copy = work / "spec-edit-c"
            shutil.copytree(ROOT / "specs", copy, ignore=shutil.ignore_patterns("*.tar"))
            app = copy / "ofa-ve" / "app" / "app.py"
            app.write_text(app.read_text() + "\n# an edit\n")
            secs, _, e = realize(store, copy / "ofa-ve.toml", work / "ce-oci", env=env, locked=False,
                                 extra=["--substituter", url])
            # Store C may build fewer: a step B built for the edit can be one
            # the cache already served C (the first run showed 3 against 4).
            if not 1 <= e["built"] <= edit_built:
                fail(f"after the app edit store C built {e['built']} steps, store B built {edit_built}")
            if trap_count["requests"]:
                fail(f"the app edit made {trap_count['requests']} requests upstream")
            figures["app edit on store C, s"] = f"{secs:.2f}"
            print(f"   one app edit: {e['built']} steps built (as on store B) in {secs:.2f} s")
            remove(copy, work / "ce-oci")
        remove(store, work / "c-oci")
    registry.stop()
    trap.shutdown()


def docker(*args, check=True):
    p = subprocess.run(["docker", *args], capture_output=True, text=True)
    if check and p.returncode != 0:
        fail(f"docker {' '.join(args)} exited {p.returncode}: {p.stderr.strip()}")
    return p.stdout.strip()


def wait_for_page(url: str, seconds: int) -> str:
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.read().decode("utf-8", "replace")
        except Exception as e:  # not up yet
            last = e
            time.sleep(2)
    fail(f"{url} did not answer within {seconds} s (last error: {last})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/var/tmp/envbuild-ofa-ve-e2e")
    ap.add_argument("--keep", action="store_true", help="keep the work directory and the docker image")
    ap.add_argument("--skip-two-machines", action="store_true",
                    help="leave out section 6 (the binary cache between two stores, about 6 minutes)")
    args = ap.parse_args()

    work = Path(args.work)
    remove(work)
    work.mkdir(parents=True)
    docker("rmi", "envbuild/ofa-ve:latest", check=False)
    # The run needs about 25 GiB at its peak (two stores, the archive, then
    # docker's copy of the image); each stage frees what the next does not use.
    print(f"   {free_gib(work):.1f} GiB free under {work}", flush=True)
    step("building the release binary")
    subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT, check=True)

    spec = ROOT / "specs" / "ofa-ve.toml"
    lock = ROOT / "specs" / "ofa-ve.lock"
    if not lock.exists():
        fail(f"{lock} is missing: the spec's lock is committed beside it")
    figures = {}

    step("envbuild plan on an empty store: every fetch with its size, every build step")
    _, _, out = timed([ENVBUILD, "--store", work / "store-a", "--json", "plan", spec, "--offline"])
    plan = json.loads(out.strip().splitlines()[0])
    fetches, builds = plan["fetch"], plan["build"]
    if plan["nothingToDo"] or plan["lockChanges"] or plan["present"]:
        fail(f"an empty store's plan: {out[:500]}")
    if not fetches or any(f["size"] <= 0 or len(f["sha256"]) != 64 for f in fetches):
        fail(f"the plan's fetches lack sizes or hashes: {fetches[:3]}")
    kinds = {b["builder"] for b in builds}
    for builder in ("unpack-deb", "base-files", "unpack-wheel", "build-sdist", "model-snapshot", "copy-files", "layer", "image"):
        if builder not in kinds:
            fail(f"the plan builds no {builder} step: {sorted(kinds)}")
    figures["plan (empty store): files to fetch"] = str(len(fetches))
    figures["plan (empty store): GiB to fetch"] = f"{plan['fetchBytes'] / 2**30:.2f}"
    figures["plan (empty store): steps to build"] = str(len(builds))
    print(f"   {len(fetches)} files ({plan['fetchBytes'] / 2**30:.2f} GiB) to fetch, {len(builds)} steps to build")

    step("realize into store A from the configured archive and index")
    secs, rss, a = realize(work / "store-a", spec, work / "a.tar")
    if a["digest"] != EXPECTED_DIGEST:
        fail(f"the image digest is {a['digest']}, expected {EXPECTED_DIGEST} (see EXPECTED_DIGEST)")
    figures["realize A (network), s"] = f"{secs:.1f}"
    figures["realize A peak RSS, MiB"] = f"{rss:.0f}"
    print(f"   {a['reference']} {a['digest']} in {secs:.1f} s, {len(a['layers'])} layers, peak RSS {rss:.0f} MiB")

    step("realize into store B from a loopback mirror of the locked files")
    server = loopback_mirror(work / "store-a", lock, work / "mirror")
    base = f"http://127.0.0.1:{server.server_address[1]}"
    mirror_env = {"ENVBUILD_DEBIAN_MIRROR": f"{base}/debian", "ENVBUILD_INDEX_URL": f"{base}/simple"}
    secs, rss, b = realize(work / "store-b", spec, work / "b-oci", env=mirror_env)
    figures["cold realize from loopback mirror, s"] = f"{secs:.1f}"
    figures["cold realize peak RSS, MiB"] = f"{rss:.0f}"
    if a["digest"] != b["digest"]:
        fail(f"two stores, one lock, two digests: {a['digest']} vs {b['digest']}")
    print(f"   same digest {b['digest']} in {secs:.1f} s, peak RSS {rss:.0f} MiB")
    # Each sdist's build output is a content-addressed item named
    # <hash>-<sdist>-built: equal names in both stores, equal wheel bytes.
    built_a = sorted(p.name for p in (work / "store-a").iterdir() if p.name.endswith("-built"))
    built_b = sorted(p.name for p in (work / "store-b").iterdir() if p.name.endswith("-built"))
    if not built_a or built_a != built_b:
        fail(f"the sdists built into different wheels: {built_a} vs {built_b}")
    print(f"   sdists built twice to the same items: {', '.join(built_a)}")

    step("envbuild plan on the warm store: nothing to do")
    _, _, out = timed([ENVBUILD, "--store", work / "store-b", "--json", "plan", spec])
    plan = json.loads(out.strip().splitlines()[0])
    if not plan["nothingToDo"] or plan["fetch"] or plan["build"]:
        fail(f"a warm store's plan is not empty: {out[:500]}")
    print(f"   nothing to do: {plan['present']} steps in the store, {len(plan['layers'])} layers")

    step("warm realize")
    secs, rss, w = realize(work / "store-b", spec, work / "b2-oci", env=mirror_env)
    figures["warm realize, s"] = f"{secs:.2f}"
    figures["warm realize peak RSS, MiB"] = f"{rss:.0f}"
    if w["built"] != 0:
        fail(f"a warm realize built {w['built']} steps")
    server.shutdown()
    # Store A and its mirror are done with: the rest runs on store B.
    figures["work directory at its peak, GiB"] = f"{used_gib(work):.1f}"
    remove(work / "store-a", work / "mirror")

    layers = len(a["layers"])
    figures["layers"] = str(layers)
    figures["image tar, GiB"] = f"{(work / 'a.tar').stat().st_size / 2**30:.2f}"
    figures["compressed layers, GiB"] = f"{sum(l['size'] for l in a['layers']) / 2**30:.2f}"
    if layers > 100:
        fail(f"{layers} layers (at most 100)")

    step("envbuild run: imports in the closure")
    _, _, out = timed([ENVBUILD, "--store", work / "store-b", "run", spec, "--locked", "--", "python3", "-c", IMPORT_CHECK])
    if not out.strip().splitlines()[-1].startswith("2.1.0"):
        fail(f"envbuild run printed {out!r}, not torch 2.1.0")

    step("envbuild run and shell: localhost resolves; run serves the app's page")
    resolve = "import socket; print(socket.gethostbyname('localhost'))"
    for command in ("run", "shell"):
        _, _, out = timed([ENVBUILD, "--store", work / "store-b", command, spec, "--locked", "--", "python3", "-c", resolve])
        if out.strip().splitlines()[-1:] != ["127.0.0.1"]:
            fail(f"under envbuild {command}, localhost resolved to {out!r}")
    app = subprocess.Popen(
        [str(ENVBUILD), "--store", str(work / "store-b"), "run", str(spec), "--locked", "--",
         "python3", "/home/appuser/app/app.py"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        page = wait_for_page("http://127.0.0.1:7860/", 300)
        if "gradio" not in page.lower():
            fail(f"envbuild run's app.py serves no Gradio page: {page[:300]!r}")
        print(f"   localhost is 127.0.0.1 under run and shell; run serves the page ({len(page)} bytes)")
    finally:
        app.terminate()
        try:
            app.wait(30)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()

    step("envbuild check: the spec's checks in the closure (--json)")
    secs, _, out = timed([ENVBUILD, "--store", work / "store-b", "--json", "check", spec, "--locked"], env=mirror_env)
    report = json.loads(out.strip().splitlines()[-1])
    results = report["checks"]
    statuses = {c["name"]: c["status"] for c in results}
    passed = [n for n, st in statuses.items() if st == "passed"]
    skipped = [n for n, st in statuses.items() if st == "skipped"]
    if len(passed) + len(skipped) != len(results) or len(passed) < 5:
        fail(f"envbuild check: {statuses}")
    gpu = os.path.exists("/dev/nvidia0")
    if not gpu and skipped != ["CUDA is visible"]:
        fail(f"without a GPU only the CUDA check may skip: {statuses}")
    figures["envbuild check, s"] = f"{secs:.1f}"
    print(f"   {len(passed)} passed, skipped: {', '.join(skipped) or 'none'} in {secs:.1f} s")

    step("editing app.py changes only the app layer")
    copy = work / "spec-copy"
    shutil.copytree(ROOT / "specs", copy, ignore=shutil.ignore_patterns("*.tar"))
    app = copy / "ofa-ve" / "app" / "app.py"
    app.write_text(app.read_text() + "\n# an edit\n")
    # Not --locked: the app file's hash in the lock changes, nothing else.
    secs, _, e = realize(work / "store-b", copy / "ofa-ve.toml", work / "e-oci", env=mirror_env, locked=False)
    before = {tuple(l["components"]): l["digest"] for l in a["layers"]}
    after = {tuple(l["components"]): l["digest"] for l in e["layers"]}
    changed = sorted(k for k in before if before[k] != after.get(k))
    if changed != [("files /home/appuser/app",)]:
        fail(f"after editing app.py the changed layers are {changed}")
    figures["realize after an app.py edit, s"] = f"{secs:.2f}"

    step("the seed's Dockerfile: envbuild init, then lock and realize the translation")
    seed = work / "seed"
    shutil.copytree(ROOT / "tests" / "fixtures" / "seed-dockerfile", seed)
    # What its COPY lines name beyond the fixture's own files.
    (seed / "assets").mkdir()
    (seed / "assets" / "logo.svg").write_text("<svg/>")
    (seed / "css").mkdir()
    (seed / "css" / "app.css").write_text("body { margin: 0 }\n")
    _, _, out = timed([ENVBUILD, "--json", "init", "--from-dockerfile", seed / "Dockerfile", "--name", "ofa-ve-seed"])
    report = json.loads(out)
    if not report["loads"] or report["notTranslated"]:
        fail(f"the seed's translation: {out[:2000]}")
    seed_spec = Path(report["spec"])
    hub = modelscope_hub(ROOT / "specs" / "ofa-ve" / "model", "iic/ofa_visual-entailment_snli-ve_large_en")
    hub_env = {"ENVBUILD_MODELSCOPE_ENDPOINT": f"http://127.0.0.1:{hub.server_address[1]}", "MODELSCOPE_DOMAIN": ""}
    secs_lock, _, _ = timed([ENVBUILD, "--store", work / "store-b", "lock", seed_spec], env=hub_env)
    secs, _, s = realize(work / "store-b", seed_spec, work / "seed-oci", env=hub_env)
    timed([ENVBUILD, "--store", work / "store-b", "check", seed_spec, "--locked"], env=hub_env)
    hub.shutdown()
    figures["seed Dockerfile translation: lock, s"] = f"{secs_lock:.1f}"
    figures["seed Dockerfile translation: realize on store B, s"] = f"{secs:.1f}"
    print(f"   {report['translated']} translated, {report['check']} to check; locked in {secs_lock:.1f} s, "
          f"realized {s['digest']} in {secs:.1f} s ({s['built']} steps built), dist-info check passes")

    step("a pin bump (tqdm 4.66.1 -> 4.66.2) moves one package and changes at most two layers")
    bump = work / "spec-bump"
    shutil.copytree(ROOT / "specs", bump, ignore=shutil.ignore_patterns("*.tar"))
    bumped_spec = bump / "ofa-ve.toml"
    bumped_spec.write_text(bumped_spec.read_text().replace('"tqdm==4.66.1"', '"tqdm==4.66.2"'))
    old_lock = tomllib.loads(lock.read_text())
    # The re-lock resolves against the configured index (the mirror has no
    # tqdm 4.66.2); realize then fetches the one new wheel.
    secs_lock, _, _ = timed([ENVBUILD, "--store", work / "store-b", "lock", bumped_spec])
    new_lock = tomllib.loads((bump / "ofa-ve.lock").read_text())
    # Names compared as PEP 503 normalizes them: the committed lock spells
    # some as their wheel files do (nvidia_cublas_cu12), a re-lock as the
    # index does (nvidia-cublas-cu12); the pins are the same.
    norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
    pins = lambda l: {(norm(w["name"]), w["version"]) for w in l["python"].get("wheel", []) + l["python"].get("sdist", [])}
    moved = sorted(pins(old_lock) ^ pins(new_lock))
    if moved != [("tqdm", "4.66.1"), ("tqdm", "4.66.2")]:
        fail(f"the bump moved more than tqdm: {moved}")
    if old_lock.get("debian") != new_lock.get("debian"):
        fail("the bump changed the Debian pins")
    secs, _, bumped = realize(work / "store-b", bumped_spec, work / "bump-oci")
    before = [l["digest"] for l in a["layers"]]
    after = [l["digest"] for l in bumped["layers"]]
    changed_layers = len(set(after) - set(before))
    if changed_layers > 2 or len(after) != len(before):
        fail(f"the bump changed {changed_layers} layer digests ({len(before)} -> {len(after)} layers)")
    figures["tqdm bump: re-lock (network), s"] = f"{secs_lock:.1f}"
    figures["tqdm bump: realize (new wheel from the network), s"] = f"{secs:.1f}"
    figures["tqdm bump: layer digests changed"] = str(changed_layers)
    print(f"   the lock moved tqdm only (re-lock {secs_lock:.1f} s); realize {secs:.1f} s, "
          f"{bumped['built']} steps built, {changed_layers} of {len(after)} layer digests changed")

    remove(work / "b-oci", work / "b2-oci", work / "e-oci", work / "spec-copy", work / "seed-oci", work / "bump-oci", work / "spec-bump")
    if not args.skip_two_machines:
        two_machines(work, spec, figures, edit_built=e["built"])
    # docker needs room for its own copy of the image (two_machines removes
    # store B once it has pushed).
    print(f"   {free_gib(work):.1f} GiB free before docker load", flush=True)

    step("docker: load, imports, model directory, the Gradio page")
    loaded = docker("load", "-i", str(work / "a.tar"))
    image = "envbuild/ofa-ve:latest"
    if image not in loaded:
        fail(f"docker load did not name {image}: {loaded}")
    started = time.perf_counter()
    out = docker("run", "--rm", image, "python3", "-c", IMPORT_CHECK)
    # The image's pycs were compiled at install: no import compiles.
    figures["docker run: import torch, torchvision, gradio, modelscope, s"] = f"{time.perf_counter() - started:.1f}"
    if not out.splitlines()[-1].startswith("2.1.0"):
        fail(f"docker run printed {out!r}, not torch 2.1.0")
    listing = docker(
        "run", "--rm", image, "python3", "-c",
        "import os; print(*sorted(os.listdir(os.path.join(os.environ['MODELSCOPE_CACHE'],"
        " 'iic/ofa_visual-entailment_snli-ve_large_en'))))",
    )
    if "configuration.json" not in listing.split():
        fail(f"the model directory under MODELSCOPE_CACHE holds {listing!r}")
    name = f"envbuild-ofa-ve-e2e-{os.getpid()}"
    docker("run", "-d", "--rm", "--name", name, "-p", "127.0.0.1::7860", image)
    try:
        port = docker("port", name, "7860").splitlines()[0].rsplit(":", 1)[1]
        page = wait_for_page(f"http://127.0.0.1:{port}/", 300)
        if "gradio" not in page.lower():
            fail(f"the page on port 7860 is not Gradio's: {page[:300]!r}")
        print(f"   the image's CMD serves the Gradio page ({len(page)} bytes)")
    finally:
        docker("rm", "-f", name, check=False)

    if not args.keep:
        docker("rmi", image, check=False)
        remove(work)
    print()
    print("| figure | value |")
    print("|---|---|")
    for k, v in figures.items():
        print(f"| {k} | {v} |")
    print("\nOK: specs/ofa-ve.toml realizes, reproduces, runs and serves")


if __name__ == "__main__":
    main()
