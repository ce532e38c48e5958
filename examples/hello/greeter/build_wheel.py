#!/usr/bin/env python3
"""Build hello_greeter-1.0.0-py3-none-any.whl deterministically (fixed
timestamps, sorted members) with only the standard library, so the example
needs no network. Usage: build_wheel.py OUT_DIR"""
import base64
import hashlib
import os
import sys
import zipfile

NAME, VERSION = "hello_greeter", "1.0.0"
HERE = os.path.dirname(os.path.abspath(__file__))
DIST = "%s-%s.dist-info" % (NAME, VERSION)


def record_hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def main(out_dir):
    members = {}
    pkg = os.path.join(HERE, NAME)
    for f in sorted(os.listdir(pkg)):
        if f.endswith(".py"):
            members["%s/%s" % (NAME, f)] = open(os.path.join(pkg, f), "rb").read()
    members[DIST + "/METADATA"] = (
        "Metadata-Version: 2.1\nName: hello-greeter\nVersion: %s\nSummary: envbuild example\n" % VERSION
    ).encode()
    members[DIST + "/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: envbuild-example\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    members[DIST + "/entry_points.txt"] = b"[console_scripts]\nhello-greeter = hello_greeter:main\n"
    rows = ["%s,%s,%d" % (n, record_hash(d), len(d)) for n, d in sorted(members.items())]
    rows.append(DIST + "/RECORD,,")
    members[DIST + "/RECORD"] = ("\n".join(rows) + "\n").encode()
    path = os.path.join(out_dir, "%s-%s-py3-none-any.whl" % (NAME, VERSION))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for n in sorted(members):
            info = zipfile.ZipInfo(n, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, members[n])
    print(path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
