"""Hostile layers: each is refused with UnpackError and nothing outside the root changes."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from mlpack.errors import UnpackError
from mlpack.oci.unpack import UnpackOptions, apply_layer

Build = Callable[[tarfile.TarFile, Path], None]


def _file(tar: tarfile.TarFile, name: str, data: bytes = b"pwned") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _link(tar: tarfile.TarFile, name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    tar.addfile(info)


def _dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


def _dev(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3
    tar.addfile(info)


def _snapshot(top: Path) -> dict[str, tuple[int, str]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            content = ""
            if p.is_symlink():
                content = "->" + os.readlink(p)
            elif p.is_file():
                content = hashlib.sha256(p.read_bytes()).hexdigest()
            out[str(p.relative_to(top))] = (st.st_mode, content)
    return out


CASES: dict[str, tuple[Build, str]] = {
    "dotdot": (lambda t, o: _file(t, "../outside/victim"), "'..'"),
    "dotdot-nested": (lambda t, o: _file(t, "a/../../outside/victim"), "'..'"),
    "absolute": (lambda t, o: _file(t, str(o / "victim")), "absolute"),
    "symlink-dir-then-write": (
        lambda t, o: (_link(t, "esc", str(o)), _file(t, "esc/victim")), "symlink or not a directory"),
    "relative-symlink-then-write": (
        lambda t, o: (_link(t, "esc", "../outside"), _file(t, "esc/new-file")), "symlink or not a directory"),
    "symlink-chain-then-write": (
        lambda t, o: (_dir(t, "d"), _link(t, "d/up", "../.."), _file(t, "d/up/outside/victim")),
        "symlink or not a directory"),
    "hardlink-absolute": (lambda t, o: _link(t, "h", str(o / "victim"), tarfile.LNKTYPE), "absolute"),
    "hardlink-dotdot": (lambda t, o: _link(t, "h", "../outside/victim", tarfile.LNKTYPE), "'..'"),
    "hardlink-through-symlink": (
        lambda t, o: (_link(t, "esc", str(o)), _link(t, "h", "esc/victim", tarfile.LNKTYPE)),
        "symlink or not a directory"),
    "hardlink-missing": (lambda t, o: _link(t, "h", "nope", tarfile.LNKTYPE), "does not contain"),
    "whiteout-dotdot": (lambda t, o: _file(t, "a/.wh.."), "bad name"),
    "whiteout-empty": (lambda t, o: _file(t, ".wh."), "bad name"),
    "whiteout-as-dir": (lambda t, o: _file(t, ".wh.x/../outside/victim"), "'..'"),
    "whiteout-with-separator-parent": (lambda t, o: _file(t, ".wh.a/b"), "whiteout name"),
    "whiteout-through-symlink": (
        lambda t, o: (_link(t, "esc", str(o)), _file(t, "esc/.wh.victim")), "symlink or not a directory"),
    "opaque-through-symlink": (
        lambda t, o: (_link(t, "esc", str(o)), _file(t, "esc/.wh..wh..opq")), "symlink or not a directory"),
    "device-node": (lambda t, o: _dev(t, "dev/mem"), "device node"),
}


@pytest.mark.parametrize("mode", ["apply", "overlay"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_layer_is_refused(tmp_path: Path, case: str, mode: str) -> None:
    if mode == "overlay" and os.geteuid() != 0:
        pytest.skip("overlay whiteouts need root")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("original")
    (outside / "sub").mkdir()
    (outside / "sub/file").write_text("x")
    root = tmp_path / "root"
    root.mkdir()
    before_outside = _snapshot(outside)
    before_top = sorted(os.listdir(tmp_path))
    build, message = CASES[case]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        build(tar, outside)
    blob = io.BytesIO(gzip.compress(buf.getvalue()))
    with pytest.raises(UnpackError, match=message):
        apply_layer(root, blob, UnpackOptions(whiteouts=mode))
    assert _snapshot(outside) == before_outside
    assert sorted(os.listdir(tmp_path)) == before_top


def test_decompression_bomb_hits_the_cap(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("zeros")
        info.size = 64 << 20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    bomb = gzip.compress(buf.getvalue(), 9)
    assert len(bomb) < 1 << 20  # 64 MiB of zeros in well under 1 MiB
    with pytest.raises(UnpackError, match="larger than the cap"):
        apply_layer(tmp_path / "root", io.BytesIO(bomb), UnpackOptions(max_size=8 << 20))
    written = sum(f.stat().st_size for f in (tmp_path / "root").rglob("*") if f.is_file())
    assert written <= 8 << 20


def test_entry_count_cap(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for i in range(50):
            _file(tar, f"f{i}", b"")
    buf.seek(0)
    with pytest.raises(UnpackError, match="more than 10 entries"):
        apply_layer(tmp_path / "root", buf, UnpackOptions(max_entries=10))


def test_symlink_replaced_by_file_writes_inside(tmp_path: Path) -> None:
    """A later file entry replaces a planted symlink instead of writing through it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("original")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _link(tar, "f", str(outside / "victim"))
        _file(tar, "f", b"inside")
    buf.seek(0)
    apply_layer(tmp_path / "root", buf)
    assert (outside / "victim").read_text() == "original"
    assert not (tmp_path / "root/f").is_symlink() and (tmp_path / "root/f").read_text() == "inside"


def test_symlink_targets_are_kept_verbatim_and_devices_can_be_skipped(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _link(tar, "abs", "/etc/shadow")
        _link(tar, "rel", "../../../../x")
        _dev(tar, "dev/null")
    buf.seek(0)
    apply_layer(tmp_path / "root", buf, UnpackOptions(devices="skip"))
    assert os.readlink(tmp_path / "root/abs") == "/etc/shadow"
    assert os.readlink(tmp_path / "root/rel") == "../../../../x"
    assert not (tmp_path / "root/dev/null").exists()


def test_wrong_diff_id_is_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _file(tar, "a", b"a")
    buf.seek(0)
    with pytest.raises(UnpackError, match="hashes to"):
        apply_layer(tmp_path / "root", buf, expected_diff_id="sha256:" + "0" * 64)


def test_garbage_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnpackError):
        apply_layer(tmp_path / "root", io.BytesIO(gzip.compress(b"not a tar" * 100)))
