"""The gzip member of a layer blob, written out: what ``gzip.GzipFile(filename="", mtime=0)`` writes.

Compression dominates the cost of a big layer (a virtual environment is a
few hundred MB of tar). The builder's layers take the fastest compressor
there is (``gzip_member(out)``): with the ``isal`` package (ISA-L, in
mlpack's build extra) gzip runs about four times faster than zlib at level 1
and makes an ordinary gzip stream; without it zlib level 1 is used. Other
layers (the offline base's) take zlib at the level asked. Either way the level
is fixed, the header has mtime 0 and no name, and the compressor gets the
tar in chunks of a fixed size whatever wrote it (:func:`mlpack.oci.layer.write_tar`),
so the same entries give the same digest on the same setup (the diff_id never
depends on it).
"""

from __future__ import annotations

import zlib

TYPE_CHECKING = False  # typing is the type checker's: a CLI rebuild does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import IO, Any

__all__ = ["GzipMember", "gzip_member", "ISAL_LEVEL", "ZLIB_LEVEL"]

ISAL_LEVEL = 1
ZLIB_LEVEL = 1


class GzipMember:
    """What ``gzip.GzipFile(filename="", mode="wb", mtime=0)`` writes (isal's ``IGzipFile`` is the
    same with its own compressor): a header with no name and mtime 0, the raw deflate stream of
    each ``write`` in turn, then crc32 and size. ``compressor`` is :mod:`zlib` or
    ``isal.isal_zlib``; ``xfl`` the header's speed flag as those classes set it for the level. Written
    out because ``isal.igzip`` imports :mod:`typing` (and gzip itself): a few ms of every rebuild's
    CLI for the same bytes (tests/unit/oci/test_gzipmember.py compares them)."""

    def __init__(self, out: IO[bytes], compressor: Any, level: int, xfl: int) -> None:
        self.out = out
        self.compress = compressor.compressobj(level, compressor.DEFLATED, -compressor.MAX_WBITS,
                                               compressor.DEF_MEM_LEVEL, 0)
        self.crc = 0
        self.size = 0
        out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + bytes((xfl,)) + b"\xff")  # no FNAME, mtime 0, OS unknown

    def write(self, data: bytes) -> int:
        if data:
            self.out.write(self.compress.compress(data))
            self.crc = zlib.crc32(data, self.crc)
            self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.out.write(self.compress.flush())
        self.out.write(self.crc.to_bytes(4, "little") + (self.size & 0xFFFFFFFF).to_bytes(4, "little"))

    def __enter__(self) -> GzipMember:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _xfl(level: int) -> int:
    """GzipFile's header speed flag: 4 for zlib's fastest level, 2 for its best, else none."""
    return 4 if level == 1 else 2 if level == 9 else 0


def gzip_member(fileobj: IO[bytes], level: int | None = None) -> tuple[GzipMember, str]:
    """A member writing to ``fileobj`` and its compressor's name: zlib at ``level``, or (None) the
    fastest there is, ISA-L's level 1 where isal is installed, else zlib's level 1."""
    if level is not None:
        return GzipMember(fileobj, zlib, level, _xfl(level)), "zlib"
    try:
        from isal import isal_zlib
    except ImportError:
        return GzipMember(fileobj, zlib, ZLIB_LEVEL, _xfl(ZLIB_LEVEL)), "zlib"
    # IGzipFile's flag: 4 for ISA-L's fastest level (0), else none
    return GzipMember(fileobj, isal_zlib, ISAL_LEVEL, 4 if ISAL_LEVEL == isal_zlib.ISAL_BEST_SPEED else 0), "isal"
