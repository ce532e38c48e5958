# envbuild's PEP 517 frontend, run inside the build sandbox.
# argv: backend ("module" or "module:object"), backend-path as JSON.
# The source tree is /build/src (the working directory); the wheel goes to
# /build/out. Build requirements are already installed: nothing is fetched.
import importlib
import json
import os
import sys

backend_spec = sys.argv[1]
backend_path = json.loads(sys.argv[2])
src = "/build/src"
os.chdir(src)
for p in reversed(backend_path):
    sys.path.insert(0, os.path.join(src, p))
module, _, obj = backend_spec.partition(":")
backend = importlib.import_module(module)
for part in filter(None, obj.split(".")):
    backend = getattr(backend, part)
print(f"envbuild frontend: backend {backend_spec}", flush=True)
get_requires = getattr(backend, "get_requires_for_build_wheel", None)
if get_requires is not None:
    import importlib.metadata as md
    import re
    for req in get_requires({}):
        name = re.split(r"[\s<>=!~;\[(]", req.strip(), maxsplit=1)[0]
        try:
            md.distribution(name)
        except md.PackageNotFoundError:
            print(f"envbuild frontend: the backend asks for {req!r}, "
                  "which is not in the build closure", flush=True)
name = backend.build_wheel("/build/out", {}, None)
print(f"envbuild frontend: built {name}", flush=True)
