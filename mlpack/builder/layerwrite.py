"""Writing a step's layer: the reproducible tar of :mod:`mlpack.oci.layer`, gzip'd fast.

Compression dominates the cost of a big layer (a virtual environment is a
few hundred MB of tar). With the ``isal`` package (ISA-L, in mlpack's build
extra) gzip runs about four times faster than zlib at level 1 and makes an
ordinary gzip stream; without it zlib level 1 is used. Either way the level
is fixed, the header has mtime 0 and no name, and the compressor gets the
tar in chunks of a fixed size whatever wrote it, so the same entries give the
same digest on the same setup (the diff_id never depends on it). The
compressor, the blob's hash and its write run in a worker thread while the
tar is made: both release the GIL, so a second core takes them.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from typing import IO, Any

from mlpack.oci.layer import Entry, LayerOptions, write_tar
from mlpack.oci.image import Layer
from mlpack.oci.layout import Store
from mlpack.oci.media import OCI_LAYER_GZIP

__all__ = ["write_layer"]

ISAL_LEVEL = 1
ZLIB_LEVEL = 1


def _gzip_writer(fileobj: IO[bytes]) -> tuple[Any, str]:
    try:
        from isal import igzip
    except ImportError:
        return gzip.GzipFile(filename="", mode="wb", fileobj=fileobj, compresslevel=ZLIB_LEVEL, mtime=0), "zlib"
    return igzip.IGzipFile(filename="", mode="wb", fileobj=fileobj, compresslevel=ISAL_LEVEL, mtime=0), "isal"


def write_layer(store: Store, entries: Iterable[Entry], options: LayerOptions) -> Layer:
    """Write ``entries`` as a tar+gzip blob into ``store``; returns digest, size and diff_id."""
    with store.blob_writer() as blob:
        gz, _ = _gzip_writer(blob)  # type: ignore[arg-type]
        with gz:
            diff_id, _ = write_tar(gz, entries, options, threaded=True)
        digest = blob.commit()
        return Layer(digest, blob.size, diff_id, OCI_LAYER_GZIP)
