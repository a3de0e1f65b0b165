"""Block-parallel gzip: valid for gunzip and Python, identical bytes whatever the number of workers."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import sysconfig
import zlib
from pathlib import Path

import pytest

from mlpack.oci.pgzip import gzip_stream


def _text() -> bytes:
    """Real text: the stdlib's json package sources, repeated past several blocks."""
    src = b"".join(p.read_bytes() for p in sorted(Path(sysconfig.get_paths()["stdlib"], "json").glob("*.py")))
    return src * 8


class _Trickle(io.RawIOBase):
    """A stream that returns at most 1000 bytes a read (as a pipe may)."""

    def __init__(self, data: bytes) -> None:
        self.buf = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self.buf.read(min(n, 1000) if n >= 0 else 1000)


@pytest.mark.parametrize("data", [b"", b"x", os.urandom(64 << 10) + b"tail", b"a" * (3 << 16)],
                         ids=["empty", "one byte", "random", "repetitive"])
def test_round_trip_small_blocks(data: bytes) -> None:
    out = io.BytesIO()
    crc, size = gzip_stream(io.BytesIO(data), out, block=64 << 10, workers=3)
    assert gzip.decompress(out.getvalue()) == data and (crc, size) == (zlib.crc32(data), len(data))


def test_same_bytes_for_any_worker_count_and_read_sizes_and_gunzip_reads_it(tmp_path: Path) -> None:
    data = _text() + os.urandom(300 << 10) + _text()[:77777]
    outs = []
    for workers, src in ((1, io.BytesIO(data)), (4, io.BytesIO(data)), (2, _Trickle(data))):
        out = io.BytesIO()
        gzip_stream(src, out, block=128 << 10, workers=workers)  # type: ignore[arg-type]
        outs.append(out.getvalue())
    assert outs[0] == outs[1] == outs[2]
    # within a few percent of one-stream zlib at the same level (the dictionary carries across blocks)
    assert len(outs[0]) < len(gzip.compress(data, compresslevel=6, mtime=0)) * 1.03
    if shutil.which("gzip"):  # another implementation reads it too
        (tmp_path / "x.gz").write_bytes(outs[0])
        assert subprocess.run(["gzip", "-dc", str(tmp_path / "x.gz")], capture_output=True, check=True).stdout == data
