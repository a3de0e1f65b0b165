"""Ordinary users (with and without a subordinate id range) and their cgroup delegation."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.rootless.users import User, ensure_user, require_rootless_prerequisites

# A range no Debian default hands out (useradd starts at 100000, 65536 a user).
SUBIDS = (1_800_000, 65536)


def _cleanup(user: User) -> None:
    """Remove the user's containers (as the user), then its home."""
    _cleanup_containers(user)
    shutil.rmtree(user.home.parent, ignore_errors=True)


def _session_user(name: str, subids: tuple[int, int] | None) -> Iterator[User]:
    require_rootless_prerequisites()
    user = ensure_user(name, subids)
    yield user
    _cleanup(user)


@pytest.fixture(scope="session", autouse=True)
def tun_for_users() -> Iterator[None]:
    """The administrator's set-up for RUN networks: /dev/net/tun openable by users (Debian's 0666).

    Some hosts (this one's container) ship it 0600; the old mode comes back after the session.
    """
    tun = Path("/dev/net/tun")
    if os.geteuid() != 0 or not tun.exists():
        yield
        return
    old = stat.S_IMODE(tun.stat().st_mode)
    tun.chmod(0o666)
    try:
        yield
    finally:
        tun.chmod(old)


@pytest.fixture(scope="session")
def ranged_user() -> Iterator[User]:
    """``mlpack-rl``: an ordinary user with a subordinate id range."""
    yield from _session_user("mlpack-rl", SUBIDS)


@pytest.fixture(scope="session")
def single_user() -> Iterator[User]:
    """``mlpack-rl1``: an ordinary user with no subordinate ids (single-id mapping)."""
    yield from _session_user("mlpack-rl1", None)


def root_mlpack(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlpack", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def delegated(ranged_user: User) -> Iterator[User]:
    """``mlpack system delegate mlpack-rl`` for the test, undone after."""
    proc = root_mlpack("system", "delegate", ranged_user.name)
    assert proc.returncode == 0, proc.stderr
    yield ranged_user
    _cleanup_containers(ranged_user)
    proc = root_mlpack("system", "delegate", "--undo", ranged_user.name)
    assert proc.returncode == 0, proc.stderr


def _cleanup_containers(user: User) -> None:
    ids = user.mlpack("ps", "-a", "-q").stdout.split()
    if ids:
        user.mlpack("rm", "-f", *ids)
