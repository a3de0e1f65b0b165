"""resolve_in_root: symlinks and .. stay inside the root, with openat2 and with the scoped walk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlpack.errors import BuildError
from mlpack.runtime.inroot import resolve_in_root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    host = tmp_path / "host"
    host.mkdir()
    (host / "shadow").write_text("host secret")
    r = tmp_path / "r"
    (r / "data").mkdir(parents=True)
    (r / "data" / "f").write_text("in root")
    os.symlink("/data", r / "abs")
    os.symlink("../../../../../..", r / "up")
    os.symlink(str(host), r / "host")
    os.symlink("/etc", r / "etc")
    os.symlink("f", r / "data" / "rel")
    return r


@pytest.mark.parametrize("use_openat2", [True, False], ids=["openat2", "walk"])
def test_symlinks_and_dotdot_stay_inside(root: Path, use_openat2: bool) -> None:
    def r(rel: str, **kw):  # type: ignore[no-untyped-def]
        return resolve_in_root(root, rel, use_openat2=use_openat2, **kw)

    assert r("abs/f") == root / "data" / "f"
    assert r("up/data/f") == root / "data" / "f"
    assert r("data/../../../data/rel") == root / "data" / "f"
    assert r("host/shadow") is None  # the host path, read inside the root, does not exist there
    assert r("abs", follow=False) == root / "abs"
    assert r("data/rel", follow=False) == root / "data" / "rel"
    assert r("data/f/x") is None
    assert r("") == root
    with pytest.raises(BuildError, match="symbolic links"):
        r("etc/shadow")  # etc -> /etc is etc itself inside the root: a loop


def test_libc_is_loaded_by_soname_without_running_ldconfig(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """mount(2)/umount2(2) go through glibc loaded by its soname: no `ldconfig -p` on a container's start."""
    import ctypes.util

    from mlpack.runtime import mounts

    def refuse(name: str) -> str:
        raise AssertionError(f"find_library({name!r}) ran ldconfig")

    monkeypatch.setattr(ctypes.util, "find_library", refuse)
    mounts.libc.cache_clear()
    try:
        assert mounts.libc().getpid() == os.getpid()
    finally:
        mounts.libc.cache_clear()
