"""Bytecode for a tree, as ``python -m compileall -q -j 0 --invalidation-mode unchecked-hash DIR``
writes it, by ``os.cpu_count()`` forked processes that split the files between them.

    python -I compilepy.py DIR        # exit 1 when a file did not compile, as compileall

compileall's ``-j`` hands every file to a process pool (a forkserver, a message
each way per file): about a third more CPU than the compiling itself, which a
build on a busy machine pays in time. Here each process compiles its share
with compileall's own ``compile_file`` and exits, so the .pyc files are byte
for byte those compileall writes. Runs in the image's Python: stdlib only.
"""

import compileall
import os
import py_compile
import sys


def sources(top):
    """The files compileall visits under ``top``: a sorted walk that skips __pycache__ and does not
    follow symlinked directories (compile_file passes over what is not a .py file)."""
    try:
        names = sorted(os.listdir(top))
    except OSError:
        return
    for name in names:
        if name == "__pycache__":
            continue
        full = os.path.join(top, name)
        if not os.path.isdir(full):
            yield full
        elif not os.path.islink(full):
            yield from sources(full)


def compile_files(files):
    """True when every file compiled (or was no source)."""
    ok = True
    for path in files:
        ok = compileall.compile_file(path, quiet=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH) \
            and ok
    return ok


def main(top, workers=None):
    files = list(sources(top))
    workers = max(1, min(workers or os.cpu_count() or 1, len(files) or 1))
    children = []
    for k in range(1, workers):
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's status is what the parent checks
            code = 1
            try:
                code = 0 if compile_files(files[k::workers]) else 1
            finally:
                sys.stdout.flush()
                os._exit(code)
        children.append(pid)
    ok = compile_files(files[0::workers])
    for pid in children:
        ok = os.waitpid(pid, 0)[1] == 0 and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
