"""Writing a step's layer: the reproducible tar of :mod:`mlpack.oci.layer`, gzip'd fast.

Compression dominates the cost of a big layer (a virtual environment is a
few hundred MB of tar). With the ``isal`` package (ISA-L, in mlpack's build
extra) gzip runs about four times faster than zlib at level 1 and makes an
ordinary gzip stream; without it zlib level 1 is used. Either way the level
is fixed, the header has mtime 0 and no name, and the compressor gets the
tar in chunks of a fixed size whatever wrote it, so the same entries give the
same digest on the same setup (the diff_id never depends on it). For a tar
of more than one chunk the compressor, the blob's hash and its write run in
a worker thread while the tar is made: both release the GIL, so a second
core takes them.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from mlpack.oci.layer import Entry, LayerOptions, write_tar
from mlpack.oci.image import Layer
from mlpack.oci.layout import Store
from mlpack.oci.media import OCI_LAYER_GZIP

TYPE_CHECKING = False  # typing is the type checker's: a CLI rebuild does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import IO, Any

__all__ = ["write_layer"]

ISAL_LEVEL = 1
ZLIB_LEVEL = 1


class _GzipMember:
    """What ``gzip.GzipFile(filename="", mode="wb", mtime=0)`` writes (isal's ``IGzipFile`` is the
    same with its own compressor): a header with no name and mtime 0, the raw deflate stream of
    each ``write`` in turn, then crc32 and size. ``compressor`` is :mod:`zlib` or
    ``isal.isal_zlib``; ``xfl`` the header's speed flag as those classes set it for the level. Written
    out because ``isal.igzip`` imports :mod:`typing` (and gzip itself): a few ms of every rebuild's
    CLI for the same bytes (tests/unit/builder/test_layerwrite.py compares them)."""

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

    def __enter__(self) -> _GzipMember:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _gzip_writer(fileobj: IO[bytes]) -> tuple[_GzipMember, str]:
    try:
        from isal import isal_zlib
    except ImportError:  # gzip's header flag: 4 for its fastest level (1)
        return _GzipMember(fileobj, zlib, ZLIB_LEVEL, 4 if ZLIB_LEVEL == 1 else 2 if ZLIB_LEVEL == 9 else 0), "zlib"
    # IGzipFile's: 4 for ISA-L's fastest level (0), else none
    return _GzipMember(fileobj, isal_zlib, ISAL_LEVEL, 4 if ISAL_LEVEL == isal_zlib.ISAL_BEST_SPEED else 0), "isal"


def write_layer(store: Store, entries: Iterable[Entry], options: LayerOptions) -> Layer:
    """Write ``entries`` as a tar+gzip blob into ``store``; returns digest, size and diff_id."""
    with store.blob_writer() as blob:
        gz, _ = _gzip_writer(blob)  # type: ignore[arg-type]
        with gz:
            diff_id, _ = write_tar(gz, entries, options, threaded=True)
        digest = blob.commit()
        return Layer(digest, blob.size, diff_id, OCI_LAYER_GZIP)
