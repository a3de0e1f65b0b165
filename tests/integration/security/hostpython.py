"""A root filesystem that runs the host's own Python, for probes that need more than busybox.

The tree is a handful of directories and the merged-/usr symlinks; the
host's /usr is bind-mounted read-only over its /usr by the container. Used by
the security tests to make real system calls (through ctypes) from inside a
real crun or runc container without bootstrapping a Debian image.
"""

from __future__ import annotations

import os
from pathlib import Path

PYTHON = "/usr/bin/python3"  # the distribution's, whose libraries all live under /usr


def make_root(root: Path) -> Path:
    """Creates the tree under ``root`` (which must not exist) and returns it."""
    for d in ("proc", "sys", "dev", "tmp", "etc", "usr", "root", "home/app"):
        (root / d).mkdir(parents=True)
    for link in ("bin", "lib", "lib64", "sbin"):
        if os.path.islink(f"/{link}"):
            os.symlink(os.readlink(f"/{link}"), root / link)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\napp:x:10001:10001::/home/app:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\napp:x:10001:\nstaff:x:50:app\n")
    (root / "tmp").chmod(0o1777)
    return root


def config(**extra: object) -> dict:
    cfg: dict = {"Env": ["PATH=/usr/bin:/bin"], "WorkingDir": "/", "Cmd": [PYTHON, "-c", "pass"]}
    cfg.update(extra)
    return cfg
