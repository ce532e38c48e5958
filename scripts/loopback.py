"""Loopback servers the scripts under scripts/ share (import it with
`sys.path.insert(0, os.path.dirname(__file__))`; it is not a script).

- Registry: Debian's docker-registry (registry:2) on a free loopback port,
  storing under a directory of its own, removed when it stops.
"""
import os
import shutil
import socket
import subprocess
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """docker-registry on loopback, storing under `root` (created; removed
    by stop()). Raises RuntimeError when it does not answer /v2/ within 20 s."""

    def __init__(self, root):
        self.root = str(root)
        os.makedirs(self.root, exist_ok=True)
        self.port = free_port()
        config = os.path.join(self.root, "config.yml")
        with open(config, "w") as f:
            f.write("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
                    "storage:\n  filesystem:\n    rootdirectory: %s\n"
                    "http:\n  addr: 127.0.0.1:%d\n  secret: loopback\n"
                    % (os.path.join(self.root, "data"), self.port))
        self.proc = subprocess.Popen(["docker-registry", "serve", config],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen("http://%s/v2/" % self.host, timeout=2)
                return
            except Exception:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.proc.kill()
                    raise RuntimeError("docker-registry did not start on %s" % self.host)
                time.sleep(0.05)

    @property
    def host(self):
        return "127.0.0.1:%d" % self.port

    def oci_url(self, repository):
        """The registry's `repository` as an oci:// binary cache URL."""
        return "oci://%s/%s" % (self.host, repository)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)
