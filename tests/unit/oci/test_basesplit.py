"""Splitting the offline base by dpkg package: the runtime tree lists exactly what it holds, the
tools tree stacked on it gives back the original, and a package list cannot reach outside the tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlpack.oci.basesplit import split_packages, status_packages

STATUS = """\
Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9+deb12u13
Description: GNU C Library: Shared libraries
 Contains the standard libraries.

Package: dpkg
Essential: yes
Status: install ok installed
Architecture: amd64
Version: 1.21.22

Package: python3-pip-whl
Status: install ok installed
Architecture: all
Version: 23.0.1+dfsg-1

Package: python3.11-venv
Status: install ok installed
Architecture: amd64
Version: 3.11.2-6+deb12u9

"""

FILES = {
    "usr/lib/x86_64-linux-gnu/libc.so.6": b"\x7fELF libc",
    "usr/bin/ldd": b"#!/bin/sh\n",
    "usr/bin/dpkg": b"\x7fELF dpkg",
    "etc/dpkg/dpkg.cfg": b"# dpkg configuration\n",
    "usr/share/python-wheels/pip-23.0.1-py3-none-any.whl": b"PK pip",
    "usr/lib/python3.11/ensurepip/__init__.py": b"def bootstrap(): pass\n",
    "usr/lib/python3.11/ensurepip/__pycache__/__init__.cpython-311.pyc": b"bytecode",
    "usr/lib/python3.11/os.py": b"# the stdlib\n",
    "usr/lib/python3.11/__pycache__/os.cpython-311.pyc": b"os bytecode",
    "usr/share/doc/dpkg/copyright": b"GPL\n",
    "usr/share/doc/libc6/copyright": b"LGPL\n",
}
LISTS = {
    "libc6:amd64": ["/.", "/usr", "/usr/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu/libc.so.6",
                    "/usr/bin", "/usr/bin/ldd", "/usr/share", "/usr/share/doc", "/usr/share/doc/libc6",
                    "/usr/share/doc/libc6/copyright"],
    # merged /usr: dpkg's list names /bin/dpkg, the file lives at usr/bin/dpkg
    "dpkg": ["/.", "/bin", "/bin/dpkg", "/etc", "/etc/dpkg", "/etc/dpkg/dpkg.cfg", "/etc/dpkg/dpkg.cfg.d",
             "/usr/share/doc/dpkg", "/usr/share/doc/dpkg/copyright"],
    "python3-pip-whl": ["/.", "/usr", "/usr/share", "/usr/share/python-wheels",
                        "/usr/share/python-wheels/pip-23.0.1-py3-none-any.whl"],
    "python3.11-venv": ["/.", "/usr", "/usr/lib", "/usr/lib/python3.11", "/usr/lib/python3.11/ensurepip",
                        "/usr/lib/python3.11/ensurepip/__init__.py"],
}


def _tree(root: Path) -> None:
    for rel, data in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "etc/dpkg/dpkg.cfg.d").mkdir()
    (root / "bin").symlink_to("usr/bin")
    info = root / "var/lib/dpkg/info"
    info.mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(STATUS)
    for package, paths in LISTS.items():
        (info / f"{package}.list").write_text("".join(p + "\n" for p in paths))
        (info / f"{package}.md5sums").write_text("0" * 32 + "  x\n")
    (info / "dpkg.postinst").write_text("#!/bin/sh\n")


def _files(root: Path) -> dict[str, bytes | str | None]:
    out: dict[str, bytes | str | None] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            out[rel] = os.readlink(path) if path.is_symlink() else None if path.is_dir() else path.read_bytes()
    return out


def test_the_runtime_tree_holds_and_lists_only_what_stays(tmp_path: Path) -> None:
    root, tools = tmp_path / "root", tmp_path / "tools"
    _tree(root)
    tools.mkdir()
    original = _files(root)

    moved = split_packages(root, tools, ("dpkg", "python3-pip-whl", "python3.11-venv", "not-installed"))

    assert moved == ["dpkg", "python3-pip-whl", "python3.11-venv"]  # the status's order
    runtime = _files(root)
    for gone in ("usr/bin/dpkg", "etc/dpkg/dpkg.cfg", "usr/share/python-wheels/pip-23.0.1-py3-none-any.whl",
                 "usr/lib/python3.11/ensurepip/__init__.py",
                 "usr/lib/python3.11/ensurepip/__pycache__/__init__.cpython-311.pyc",  # its bytecode with it
                 "usr/share/doc/dpkg/copyright", "var/lib/dpkg/info/dpkg.list", "var/lib/dpkg/info/dpkg.postinst",
                 # directories only the moved packages list, emptied
                 "usr/share/python-wheels", "usr/lib/python3.11/ensurepip", "etc/dpkg", "usr/share/doc/dpkg"):
        assert gone not in runtime, gone
    for stays in ("usr/lib/x86_64-linux-gnu/libc.so.6", "usr/bin/ldd", "usr/lib/python3.11/os.py",
                  "usr/lib/python3.11/__pycache__/os.cpython-311.pyc", "usr/share/doc/libc6/copyright",
                  "var/lib/dpkg/info/libc6:amd64.list", "bin", "usr/share", "usr/lib/python3.11"):
        assert stays in runtime, stays
    assert status_packages((root / "var/lib/dpkg/status").read_text()) == ["libc6"]
    assert (root / "var/lib/dpkg/status").read_text() == STATUS.split("\n\n")[0] + "\n\n"
    assert (tools / "var/lib/dpkg/status").read_text() == STATUS

    # the tools tree stacked on the runtime tree is the original, file for file, directories included
    stacked = {**runtime, **_files(tools)}
    assert stacked == original
    assert not set(_files(tools)) - set(original)


def test_directory_modes_are_kept_in_the_tools_tree(tmp_path: Path) -> None:
    root, tools = tmp_path / "root", tmp_path / "tools"
    _tree(root)
    tools.mkdir()
    (root / "usr/share/python-wheels").chmod(0o750)
    os.utime(root / "usr/share", (1_600_000_000, 1_600_000_000))
    split_packages(root, tools, ("python3-pip-whl",))
    assert (tools / "usr/share/python-wheels").stat().st_mode & 0o7777 == 0o750
    assert int((tools / "usr/share").stat().st_mtime) == 1_600_000_000


def test_no_status_or_none_of_the_packages_moves_nothing(tmp_path: Path) -> None:
    root, tools = tmp_path / "root", tmp_path / "tools"
    (root / "usr/bin").mkdir(parents=True)
    tools.mkdir()
    assert split_packages(root, tools, ("dpkg",)) == []
    _tree(root)
    before = _files(root)
    assert split_packages(root, tools, ("curl",)) == []
    assert _files(root) == before and _files(tools) == {}


@pytest.mark.parametrize("line", ["/../outside/secret", "/usr/../../outside/secret", "/escape/secret",
                                  "/abs-escape/secret"])
def test_a_package_list_cannot_move_anything_outside_the_tree(tmp_path: Path, line: str) -> None:
    """A list naming a path through .. or through a link that leaves the tree moves nothing there."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host data\n")
    root, tools = tmp_path / "root", tmp_path / "tools"
    _tree(root)
    tools.mkdir()
    (root / "escape").symlink_to("../outside")
    (root / "abs-escape").symlink_to(str(outside))
    with open(root / "var/lib/dpkg/info/dpkg.list", "a") as fh:
        fh.write(line + "\n")
    split_packages(root, tools, ("dpkg",))
    assert (outside / "secret").read_text() == "host data\n"
    assert [p.name for p in outside.iterdir()] == ["secret"]
    assert not (tools / "outside").exists() and b"host data\n" not in _files(tools).values()
