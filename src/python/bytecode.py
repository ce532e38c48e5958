# envbuild's bytecode driver: run by the target interpreter in the sandbox
# (see bytecode.rs). Reads NUL-separated module paths (relative to SRC, as
# they lie in the image below /) on stdin, compiles each to
# OUT/<dir>/__pycache__/<name>.<tag>.pyc as an unchecked-hash pyc (PEP 552)
# whose co_filename is the module's image path, and writes one manifest line
# per module to OUT/.manifest: "ok\t<module>\t<pyc>" or "skip\t<module>\t<why>".
import importlib.util
import os
import py_compile
import sys

src, out = sys.argv[1], sys.argv[2]
if sys.implementation.cache_tag is None:
    sys.exit("this interpreter has no bytecode cache tag (sys.implementation.cache_tag is None)")
mode = py_compile.PycInvalidationMode.UNCHECKED_HASH
lines = []
for module in sorted(filter(None, sys.stdin.buffer.read().decode("utf-8").split("\0"))):
    pyc = importlib.util.cache_from_source(module)
    try:
        py_compile.compile(
            os.path.join(src, module),
            cfile=os.path.join(out, pyc),
            dfile="/" + module,
            doraise=True,
            invalidation_mode=mode,
        )
        lines.append("ok\t%s\t%s" % (module, pyc))
    except (py_compile.PyCompileError, SyntaxError, ValueError, UnicodeError) as e:
        # As pip does: a module that does not compile (Python 2 code in a
        # test directory, a template) is installed without bytecode.
        why = str(getattr(e, "msg", e)).replace("\t", " ").replace("\n", " ")[:200]
        lines.append("skip\t%s\t%s" % (module, why))
with open(os.path.join(out, ".manifest"), "w", encoding="utf-8") as f:
    f.write("".join(line + "\n" for line in lines))
