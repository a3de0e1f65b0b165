"""Ordinary users for the rootless tests, and mlpack run as one of them.

The suite runs as root; these tests add users (``useradd``), one with a
subordinate id range and one without, and run ``python -m mlpack`` as them
with ``runuser``. The interpreter is the system's python3 (the suite's own
may live under /root, which an ordinary user cannot enter) with this checkout
and the suite's site-packages on PYTHONPATH, both bind-mounted to a
world-readable place in a private mount namespace, so it works wherever the
checkout is.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import mlpack

SRC = Path(mlpack.__file__).resolve().parent.parent
VIEW = Path("/run/mlpack-rootless-test")
SYSTEM_PYTHON = "/usr/bin/python3"


def _ok(argv: list[str]) -> bool:
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True).returncode == 0


def require_rootless_prerequisites() -> None:
    if os.geteuid() != 0:
        pytest.skip("the rootless tests add users: run the suite as root")
    for tool in ("useradd", "usermod", "runuser", "unshare", "nsenter", "newuidmap", "newgidmap"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (packages passwd, util-linux, uidmap; .ci/bootstrap installs them)")
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"],
                           capture_output=True, text=True)
    if probe.returncode != 0 or probe.stdout.strip() != str(tuple(sys.version_info[:2])):
        pytest.skip(f"{SYSTEM_PYTHON} is missing or not python {sys.version_info[0]}.{sys.version_info[1]}")


@dataclass
class User:
    """An ordinary user with its own MLPACK_HOME; ``mlpack(...)`` runs the CLI as it."""

    name: str
    uid: int
    gid: int
    home: Path  # its MLPACK_HOME

    def env(self, **extra: str) -> list[str]:
        base = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME": pwd.getpwnam(self.name).pw_dir, "LANG": "C.UTF-8", "MLPACK_HOME": str(self.home),
                "PYTHONPATH": f"{VIEW / 'src'}:{VIEW / 'site'}", "PYTHONDONTWRITEBYTECODE": "1",
                "OPENBLAS_NUM_THREADS": "1"}
        for key in ("MLPACK_RUNTIME", "SOURCE_DATE_EPOCH", "OPENBLAS_CORETYPE"):
            if key in os.environ:
                base[key] = os.environ[key]
        base.update(extra)
        return [f"{k}={v}" for k, v in base.items()]

    def argv(self, *args: str, **env: str) -> list[str]:
        """The command line that runs ``args`` (a program and its arguments) as this user."""
        site = sysconfig.get_paths()["purelib"]
        VIEW.mkdir(mode=0o755, parents=True, exist_ok=True)
        for sub in ("src", "site"):
            (VIEW / sub).mkdir(mode=0o755, exist_ok=True)
        script = (f'mount --bind "$1" {VIEW}/src && mount --bind "$2" {VIEW}/site && shift 2 && exec "$@"')
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(SRC), site,
                "runuser", "-u", self.name, "--", "env", "-i", *self.env(**env), *args]

    def run(self, *args: str, timeout: float = 600, check: bool = False, **env: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.argv(*args, **env), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, cwd="/")
        if check and proc.returncode != 0:
            raise AssertionError(f"{args} as {self.name} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def mlpack(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.run(SYSTEM_PYTHON, "-m", "mlpack", *args, **kw)

    def give(self, path: Path) -> Path:
        """Hand ``path`` (and what is under it) to this user."""
        for p in [path, *path.rglob("*")]:
            os.lchown(p, self.uid, self.gid)
        return path


def ensure_user(name: str, subids: tuple[int, int] | None) -> User:
    """The user ``name``, made if absent, with exactly the subordinate range ``subids`` (start, count) or none."""
    try:
        ent = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", "-K", "SUB_UID_COUNT=0",
                        "-K", "SUB_GID_COUNT=0", name], check=True, capture_output=True)
        ent = pwd.getpwnam(name)
    for path, flag in ((Path("/etc/subuid"), "--del-subuids"), (Path("/etc/subgid"), "--del-subgids")):
        for line in path.read_text().splitlines() if path.exists() else []:
            owner, start, count = (line.split(":") + ["", ""])[:3]
            if owner in (name, str(ent.pw_uid)) and (subids is None or (int(start), int(count)) != subids):
                subprocess.run(["usermod", flag, f"{start}-{int(start) + int(count) - 1}", name],
                               check=True, capture_output=True)
    if subids is not None:
        start, count = subids
        have = Path("/etc/subuid").read_text() if Path("/etc/subuid").exists() else ""
        if f"{name}:{start}:{count}" not in have.split():
            rng = f"{start}-{start + count - 1}"
            subprocess.run(["usermod", "--add-subuids", rng, "--add-subgids", rng, name], check=True,
                           capture_output=True)
    home = Path(tempfile.mkdtemp(prefix=f"mlpack-{name}-", dir="/var/tmp"))
    user = User(name=name, uid=ent.pw_uid, gid=ent.pw_gid, home=home / "home")
    home.chmod(0o755)
    user.home.mkdir()
    user.give(home)
    probe = user.run("unshare", "--user", "--map-root-user", "true")
    if probe.returncode != 0:
        pytest.skip(f"an ordinary user cannot create a user namespace here: {probe.stderr.strip()}")
    return user
