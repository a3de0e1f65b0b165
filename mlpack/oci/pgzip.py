"""Gzip on several cores, as pigz does: one gzip member, deflated in independent blocks.

The input is cut into ``block``-byte pieces; each is deflated in a worker
thread (zlib releases the GIL) with the previous piece's last 32 KiB as its
dictionary, ended by a sync flush, so the pieces concatenate into one valid
deflate stream that any gunzip reads. The CRC is computed in order by the
caller's thread. The output depends only on the input, ``level`` and
``block`` (never on the number of workers or their timing): the same layer
always gets the same digest. At most ``2 * workers`` blocks are in memory.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO

__all__ = ["gzip_stream"]

_WINDOW = 32 << 10
# gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS unknown (reproducible everywhere)
_HEADER = b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x00\xff"
_LAST_BLOCK = b"\x03\x00"  # an empty final fixed-Huffman block


def _deflate(data: bytes, dictionary: bytes, level: int) -> bytes:
    comp = zlib.compressobj(level, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY,
                            **({"zdict": dictionary} if dictionary else {}))
    return comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH)


def _read_full(src: IO[bytes], n: int) -> bytes:
    """Exactly ``n`` bytes unless the stream ends (short reads would make the output depend on timing)."""
    buf = bytearray()
    while len(buf) < n:
        chunk = src.read(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def gzip_stream(src: IO[bytes], out: IO[bytes], *, level: int = 6, block: int = 1 << 20,
                workers: int | None = None) -> tuple[int, int]:
    """Gzip everything ``src`` reads into ``out``; returns (crc32, bytes read) of the plain input."""
    workers = max(1, min(workers or os.cpu_count() or 1, 8))
    crc, size, tail = 0, 0, b""
    out.write(_HEADER)
    pending: deque[Future[bytes]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="mlpack-pgzip") as pool:
        while True:
            data = _read_full(src, block)
            if not data:
                break
            crc, size = zlib.crc32(data, crc), size + len(data)
            pending.append(pool.submit(_deflate, data, tail, level))
            tail = data[-_WINDOW:]
            while len(pending) >= 2 * workers:
                out.write(pending.popleft().result())
        while pending:
            out.write(pending.popleft().result())
    out.write(_LAST_BLOCK + struct.pack("<II", crc, size & 0xFFFFFFFF))
    return crc, size
