"""Reproducible layers and their round trip through the safe unpacker."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest

from mlpack.oci.layer import Entry, LayerOptions, entries_from_dir, write_dir, write_entries
from mlpack.oci.layout import Store
from mlpack.oci.unpack import UnpackOptions, apply_layer


def _tree(root: Path) -> None:
    (root / "b/sub").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "b/sub/z.bin").write_bytes(os.urandom(1000))
    os.link(root / "a.txt", root / "b/hard")
    os.symlink("../a.txt", root / "b/link")
    os.symlink("/etc/passwd", root / "abs-link")
    os.chmod(root / "b/sub/z.bin", 0o4755)


def test_write_dir_is_reproducible(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _tree(src)
    store = Store(tmp_path / "s")
    opts = LayerOptions(source_date_epoch=1_700_000_000)
    first = write_dir(store, src, opts)
    os.utime(src / "a.txt", (2_000_000_000, 2_000_000_000))  # newer than SDE: clamped away
    second = write_dir(store, src, opts)
    assert first == second
    with tarfile.open(store.blob_path(first.digest)) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names, key=lambda n: n.encode())
    assert all(m.uname == "" and m.gname == "" and isinstance(m.mtime, int) for m in members)
    assert all(m.mtime <= 1_700_000_000 for m in members)
    by = {m.name: m for m in members}
    assert by["b/hard"].islnk() and by["b/hard"].linkname == "a.txt"
    assert by["abs-link"].linkname == "/etc/passwd"
    raw = store.blob_path(first.digest).read_bytes()
    assert raw[4:8] == b"\0\0\0\0" and raw[3] & 0x08 == 0  # gzip mtime 0, no FNAME


def test_entries_get_explicit_parents_and_whiteouts(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    layer = write_entries(store, [Entry("x/y/z", data=b"1", uid=1000, gid=1000, mtime=7),
                                  Entry("gone", "whiteout"), Entry("x/opq", "opaque")])
    with tarfile.open(store.blob_path(layer.digest)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert list(members) == [".wh.gone", "x", "x/opq/.wh..wh..opq", "x/y", "x/y/z"] or set(members) >= {"x", "x/y", "x/y/z", ".wh.gone", "x/opq/.wh..wh..opq"}
    assert members["x"].isdir() and members["x/y"].isdir()
    assert (members["x/y/z"].uid, members["x/y/z"].gid) == (1000, 1000)
    assert layer.diff_id.startswith("sha256:") and layer.size == store.blob_size(layer.digest)


def test_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _tree(src)
    store = Store(tmp_path / "s")
    layer = write_dir(store, src)
    out = tmp_path / "out"
    result = apply_layer(out, store.blob_path(layer.digest), expected_diff_id=layer.diff_id)
    assert result.diff_id == layer.diff_id
    assert (out / "a.txt").read_text() == "a"
    assert os.readlink(out / "b/link") == "../a.txt"
    assert os.readlink(out / "abs-link") == "/etc/passwd"
    assert os.stat(out / "b/hard").st_ino == os.stat(out / "a.txt").st_ino
    assert (out / "b/sub/z.bin").read_bytes() == (src / "b/sub/z.bin").read_bytes()
    assert os.stat(out / "b/sub/z.bin").st_mode & 0o7777 == 0o4755
    assert int(os.stat(out / "a.txt").st_mtime) == int(os.stat(src / "a.txt").st_mtime)


def test_apply_mode_whiteouts_and_opaque(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "d/old").mkdir(parents=True)
    (root / "d/keep-not").write_text("x")
    (root / "f").write_text("x")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in [(".wh.f", b""), ("d/.wh..wh..opq", b""), ("d/new", b"n")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    apply_layer(root, buf)
    assert not (root / "f").exists()
    assert sorted(os.listdir(root / "d")) == ["new"]


def test_overlay_mode_whiteouts(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("char device 0/0 and trusted.* xattrs need root")
    store = Store(tmp_path / "s")
    layer = write_entries(store, [Entry("gone", "whiteout"), Entry("d", "dir"), Entry("d", "opaque")])
    out = tmp_path / "out"
    apply_layer(out, store.blob_path(layer.digest), UnpackOptions(whiteouts="overlay"))
    st = os.lstat(out / "gone")
    assert (st.st_mode & 0o170000) == 0o020000 and st.st_rdev == 0
    assert os.getxattr(out / "d", "trusted.overlay.opaque") == b"y"
    # and back: an overlay upperdir becomes OCI whiteouts, without leaking trusted.overlay.*
    entries = entries_from_dir(out, LayerOptions(overlay_upper=True))
    kinds = {(e.path, e.type) for e in entries}
    assert ("gone", "whiteout") in kinds and ("d", "opaque") in kinds
    assert all(not any(k.startswith("trusted.") for k in e.xattrs) for e in entries)


def test_gzip_and_plain_tar_both_apply(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("p")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"p"))
    plain = buf.getvalue()
    apply_layer(tmp_path / "a", io.BytesIO(plain))
    apply_layer(tmp_path / "b", io.BytesIO(gzip.compress(plain)))
    assert (tmp_path / "a/p").read_text() == (tmp_path / "b/p").read_text() == "p"


class _Chunks:
    """A writer that records the chunks it was given."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)


def _mixed_entries(tmp_path: Path) -> list[Entry]:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom((3 << 20) + 777))  # not a multiple of the chunk or record size
    return [Entry("a/big.bin", source=big, mode=0o755, mtime=5), Entry("a/small", data=b"x" * 1000),
            Entry("a/link", "symlink", linkname="small"), Entry("gone", "whiteout"),
            Entry("b", "dir", xattrs={"user.k": b"v"})]


def test_write_tar_is_the_stream_tar_in_fixed_chunks(tmp_path: Path) -> None:
    """The tar's bytes are those of tarfile's stream mode (the diff_id of a layer is unchanged), and
    the writer behind it gets them in chunks of exactly _BATCH bytes whatever the file sizes."""
    import copy
    import hashlib

    from mlpack.oci import layer as layer_mod

    entries = _mixed_entries(tmp_path)
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
        for e in layer_mod._complete([copy.copy(e) for e in entries], LayerOptions()):
            info = layer_mod._tarinfo(e)
            if e.type == "file" and e.source is not None:
                info.size = e.source.stat().st_size
                with open(e.source, "rb") as fh:
                    tar.addfile(info, fh)
            elif e.type == "file":
                info.size = len(e.data or b"")
                tar.addfile(info, io.BytesIO(e.data or b""))
            else:
                tar.addfile(info)
    for threaded in (False, True):
        out = _Chunks()
        diff_id, size = layer_mod.write_tar(out, [copy.copy(e) for e in entries], threaded=threaded)
        data = b"".join(out.chunks)
        assert data == stream.getvalue() and size == len(data)
        assert diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
        assert all(len(c) == layer_mod._BATCH for c in out.chunks[:-1]) and 0 < len(out.chunks[-1]) <= layer_mod._BATCH


def test_threaded_write_tar_raises_what_the_writer_raised(tmp_path: Path) -> None:
    from mlpack.oci.layer import write_tar

    class Full:
        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_tar(Full(), _mixed_entries(tmp_path), threaded=True)


def test_entry_init_takes_its_fields() -> None:
    """Entry writes its __init__ out (one per file of a layer): the fields' names, order and defaults,
    a new xattrs dict each time, and still a dataclass (fields, replace, equality, repr)."""
    import dataclasses
    import inspect

    params = list(inspect.signature(Entry.__init__).parameters.values())[1:]
    fields = dataclasses.fields(Entry)
    assert [p.name for p in params] == [f.name for f in fields]
    for p, f in zip(params, fields):
        if f.default_factory is not dataclasses.MISSING:
            assert Entry("x").xattrs == f.default_factory() and Entry("x").xattrs is not Entry("x").xattrs
        else:
            assert p.default == (inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default), p.name
    e = Entry("a", "dir", 0o700, xattrs={"user.k": b"v"})
    assert dataclasses.replace(e, path="b") == Entry("b", "dir", 0o700, xattrs={"user.k": b"v"}) != e
    assert repr(Entry("a")) == ("Entry(path='a', type='file', mode=None, uid=0, gid=0, mtime=0, data=None, "
                                "source=None, linkname='', xattrs={}, devmajor=0, devminor=0)")


def test_threaded_write_tar_under_one_chunk_starts_no_thread(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A layer smaller than one chunk (a model-only rebuild's) is written in the caller's thread: the
    same bytes as unthreaded, a writer's error raised as it is; a bigger one still starts the worker."""
    import copy

    from mlpack.oci import layer as layer_mod

    started = []
    real_start = layer_mod._Pipe._start
    monkeypatch.setattr(layer_mod._Pipe, "_start", lambda self: (started.append(1), real_start(self))[1])
    small = [e for e in _mixed_entries(tmp_path) if e.source is None]
    plain, threaded = _Chunks(), _Chunks()
    assert layer_mod.write_tar(plain, [copy.copy(e) for e in small]) == \
        layer_mod.write_tar(threaded, [copy.copy(e) for e in small], threaded=True)
    assert threaded.chunks == plain.chunks and len(plain.chunks) == 1 and not started

    class Full:
        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        layer_mod.write_tar(Full(), [copy.copy(e) for e in small], threaded=True)
    layer_mod.write_tar(_Chunks(), _mixed_entries(tmp_path), threaded=True)
    assert started == [1]


def test_builder_layer_is_reproducible(tmp_path: Path) -> None:
    """The builder's gzip (ISA-L where installed), fed by a worker thread: the same entries, the same blob."""
    import copy

    from mlpack.oci import layer as layer_mod

    entries = _mixed_entries(tmp_path)
    store = Store(tmp_path / "s")
    first = layer_mod.write_entries(store, [copy.copy(e) for e in entries], LayerOptions(source_date_epoch=10), fast=True)
    second = layer_mod.write_entries(store, [copy.copy(e) for e in entries], LayerOptions(source_date_epoch=10), fast=True)
    assert first == second
    with gzip.open(store.blob_path(first.digest)) as fh:
        names = tarfile.open(fileobj=fh, mode="r|").getnames()
    assert names == [".wh.gone", "a", "a/big.bin", "a/link", "a/small", "b"]
