"""The layers' gzip writer makes the bytes gzip.GzipFile (zlib) and isal's IGzipFile (ISA-L) make
for the same writes: a layer's blob digest does not depend on which of them wrote it."""

from __future__ import annotations

import gzip
import io
import os
import sys

import pytest

from mlpack.oci import gzipmember

# chunks as the tar sink cuts them (full chunks, a short last one), plus an empty write
_CHUNKS = [os.urandom(1 << 20), b"abc" * 300_000, b"", bytes(range(256)) * 77]


def _ours(compressor_name: str) -> bytes:
    out = io.BytesIO()
    gz, name = gzipmember.gzip_member(out)
    assert name == compressor_name
    with gz:
        for chunk in _CHUNKS:
            assert gz.write(chunk) == len(chunk)
    return out.getvalue()


def _theirs(cls, level: int) -> bytes:  # type: ignore[no-untyped-def]
    out = io.BytesIO()
    with cls(filename="", mode="wb", fileobj=out, compresslevel=level, mtime=0) as gz:
        for chunk in _CHUNKS:
            gz.write(chunk)
    return out.getvalue()


def test_zlib_member_is_gzipfiles(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "isal", None)  # no ISA-L: zlib
    ours = _ours("zlib")
    assert gzip.decompress(ours) == b"".join(_CHUNKS)
    if not hasattr(gzip, "_WRITE_BUFFER_SIZE"):  # Python 3.12+ re-cuts the writes: there the content compares
        assert ours == _theirs(gzip.GzipFile, gzipmember.ZLIB_LEVEL)


def test_isal_member_is_igzipfiles() -> None:
    igzip = pytest.importorskip("isal.igzip")
    ours = _ours("isal")
    assert gzip.decompress(ours) == b"".join(_CHUNKS)
    if not getattr(igzip, "_GZIP_BUFFERS_WRITES", False):  # where it re-cuts the writes, the content compares
        assert ours == _theirs(igzip.IGzipFile, gzipmember.ISAL_LEVEL)


@pytest.mark.parametrize("level", [1, 6, 9])
def test_zlib_at_a_level_is_gzipfiles(level: int) -> None:
    """write_entries' member for a level (the offline base's layers): GzipFile's bytes at that level."""
    out = io.BytesIO()
    gz, name = gzipmember.gzip_member(out, level)
    assert name == "zlib"
    with gz:
        for chunk in _CHUNKS:
            gz.write(chunk)
    if not hasattr(gzip, "_WRITE_BUFFER_SIZE"):  # Python 3.12+ re-cuts the writes: there the content compares
        assert out.getvalue() == _theirs(gzip.GzipFile, level)
    assert gzip.decompress(out.getvalue()) == b"".join(_CHUNKS)
