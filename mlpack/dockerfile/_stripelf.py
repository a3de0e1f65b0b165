"""Drop debug information and static symbol tables from ELF shared objects.

Run inside the builder stage with the image's own Python (stdlib only, so it
needs no binutils in the base)::

    python -I stripelf.py /opt/venv

Like ``strip --strip-debug`` plus the static ``.symtab``/``.strtab`` (what the
dynamic linker never reads: it uses ``.dynsym``): for each little-endian ELF64
shared object under the given directories, the non-allocated sections named
``.debug*``/``.zdebug*``/``.symtab``/``.strtab`` are removed, provided that

* nothing loaded moves: the loaded bytes are copied verbatim and only
  trailing sections are rewritten; a dropped section that lies between mapped
  parts (auditwheel's patchelf appends a segment after them) is zeroed where
  it is, when no program header maps its bytes and no kept section or header
  shares them,
* no kept section links to them,
* and the bytes after the loaded part hold nothing but sections, the section
  header table and zero padding.

Any other file, or one that breaks a rule, is left byte for byte as it was:
the step never fails a build over a file it does not understand. A changed
file is written next to the original and renamed over it, mode kept.
"""

from __future__ import annotations

import os
import struct
import sys
import tempfile
from typing import Iterable, List, Optional, Tuple

__all__ = ["strip_bytes", "strip_file", "strip_tree"]

MAX_FILE = 2 << 30   # larger files are left alone (and never read whole)
_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_PHDR = struct.Struct("<IIQQQQQQ")
_ET_DYN = 3
_SHF_ALLOC = 0x2
_SHF_INFO_LINK = 0x40
_SHT_NOBITS = 8
_SHN_LORESERVE = 0xFF00
_DROP_NAMES = (b".symtab", b".strtab")
_DROP_PREFIXES = (b".debug", b".zdebug")


def _name(strtab: bytes, offset: int) -> bytes:
    end = strtab.find(b"\0", offset)
    return strtab[offset:end] if 0 <= offset < len(strtab) and end >= 0 else b""


def strip_bytes(data: bytes) -> Optional[bytes]:
    """The stripped image of ``data``, or None when there is nothing to strip or the file breaks a rule."""
    if len(data) < _EHDR.size or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    (ident, e_type, _machine, _version, _entry, phoff, shoff, _flags, ehsize, phentsize, phnum,
     shentsize, shnum, shstrndx) = _EHDR.unpack_from(data)
    if e_type != _ET_DYN or shentsize != _SHDR.size or shnum == 0 or shstrndx >= min(shnum, _SHN_LORESERVE):
        return None
    if phnum and phentsize != _PHDR.size:
        return None
    if shoff + shnum * _SHDR.size > len(data) or phoff + phnum * _PHDR.size > len(data):
        return None
    sections = [list(_SHDR.unpack_from(data, shoff + i * _SHDR.size)) for i in range(shnum)]
    for sh in sections:
        if sh[1] != _SHT_NOBITS and sh[4] + sh[5] > len(data):
            return None
    shstr = sections[shstrndx]
    strtab = data[shstr[4]:shstr[4] + shstr[5]]
    names = [_name(strtab, sh[0]) for sh in sections]

    drop = {i for i, (sh, name) in enumerate(zip(sections, names))
            if i and not sh[2] & _SHF_ALLOC and i != shstrndx
            and (name in _DROP_NAMES or name.startswith(_DROP_PREFIXES))}
    changed = True
    while changed:  # a kept section that links to a dropped one keeps it
        changed = False
        for i, sh in enumerate(sections):
            if i in drop:
                continue
            linked = [sh[6]] + ([sh[7]] if sh[2] & _SHF_INFO_LINK else [])
            for j in linked:
                if j in drop:
                    drop.discard(j)
                    changed = True
    if not drop:
        return None

    phdrs = [_PHDR.unpack_from(data, phoff + k * _PHDR.size) for k in range(phnum)]
    loaded = max([ehsize, phoff + phnum * _PHDR.size] + [p[2] + p[5] for p in phdrs]
                 + [sh[4] + sh[5] for sh in sections if sh[2] & _SHF_ALLOC and sh[1] != _SHT_NOBITS])
    holes = _holes(sections, drop, phdrs, loaded, (0, max(ehsize, phoff + phnum * _PHDR.size)),
                   (shoff, shoff + shnum * _SHDR.size))
    if holes is None:
        return None
    # What lies past the loaded part must be sections, the header table or zeros, else it is
    # data we would not carry over (a signature, an appended archive).
    spans = sorted([(sh[4], sh[4] + sh[5]) for sh in sections if sh[1] != _SHT_NOBITS and sh[4] + sh[5] > loaded]
                   + [(shoff, shoff + shnum * _SHDR.size)])
    pos = loaded
    for start, end in spans:
        if start > pos and data[pos:start].strip(b"\0"):
            return None
        pos = max(pos, end)
    if data[pos:].strip(b"\0"):
        return None

    out = bytearray(data[:loaded])
    # a header table amid the mapped part (patchelf leaves it there) is rewritten in place, shorter
    table_in_place = shoff + shnum * _SHDR.size <= loaded and not any(
        shoff < p[2] + p[5] and p[2] < shoff + shnum * _SHDR.size for p in phdrs if p[5])
    if table_in_place:
        holes.append((shoff, shoff + shnum * _SHDR.size))
    for start, end in holes:
        out[start:end] = bytes(end - start)
    remap = {}
    kept: List[List[int]] = []
    for i, sh in enumerate(sections):
        if i in drop:
            continue
        remap[i] = len(kept)
        sh = list(sh)
        if i and sh[4] >= loaded and not sh[2] & _SHF_ALLOC:
            align = max(1, sh[8])
            if sh[1] != _SHT_NOBITS:
                out += b"\0" * (-len(out) % align)
                body = data[sh[4]:sh[4] + sh[5]]
                sh[4] = len(out)
                out += body
            else:
                sh[4] = len(out)
        kept.append(sh)
    for sh in kept:
        sh[6] = remap.get(sh[6], 0)
        if sh[2] & _SHF_INFO_LINK:
            sh[7] = remap.get(sh[7], 0)
    if table_in_place:
        new_shoff = shoff
        out[shoff:shoff + len(kept) * _SHDR.size] = b"".join(_SHDR.pack(*sh) for sh in kept)
    else:
        out += b"\0" * (-len(out) % 8)
        new_shoff = len(out)
        for sh in kept:
            out += _SHDR.pack(*sh)
    _EHDR.pack_into(out, 0, ident, e_type, _machine, _version, _entry, phoff, new_shoff, _flags, ehsize,
                    phentsize, phnum, shentsize, len(kept), remap[shstrndx])
    return bytes(out)


def _holes(sections: List[List[int]], drop: set, phdrs: list, loaded: int,
           *reserved: Tuple[int, int]) -> Optional[List[Tuple[int, int]]]:
    """The byte ranges of dropped sections that lie before the end of what is mapped (a library
    that patchelf gave a segment after them, as auditwheel does), to be zeroed in place: nothing
    moves, and zeros compress to nothing. None when one of them overlaps a program header's
    bytes, a kept section, the headers, or the end of the mapped part."""
    kept = [(sh[4], sh[4] + sh[5]) for i, sh in enumerate(sections)
            if i not in drop and i and sh[1] != _SHT_NOBITS and sh[5]]
    taken = kept + [(p[2], p[2] + p[5]) for p in phdrs if p[5]] + list(reserved)
    holes = []
    for i in sorted(drop):
        if sections[i][1] == _SHT_NOBITS or sections[i][4] >= loaded:
            continue
        start, end = sections[i][4], sections[i][4] + sections[i][5]
        if end > loaded or any(start < b and a < end for a, b in taken):
            return None
        holes.append((start, end))
    return holes


def strip_file(path: str) -> Tuple[int, int]:
    """Strip one file in place; returns (size before, size after) (equal when it was left alone)."""
    st = os.lstat(path)
    with open(path, "rb") as fh:
        if fh.read(4) != b"\x7fELF" or st.st_size > MAX_FILE:
            return st.st_size, st.st_size
        fh.seek(0)
        data = fh.read()
    new = strip_bytes(data)
    if new is None:
        return st.st_size, st.st_size
    fd, tmp = tempfile.mkstemp(prefix=".strip-", dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(new)
        os.chmod(tmp, st.st_mode & 0o7777)
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return st.st_size, len(new)


def strip_tree(roots: Iterable[str]) -> Tuple[int, int, int]:
    """Strip every shared object under ``roots`` (symlinks not followed); returns (files changed, before, after)."""
    changed = before = after = 0
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                path = os.path.join(dirpath, name)
                if os.path.islink(path) or not os.path.isfile(path) or ".so" not in name:
                    continue
                a, b = strip_file(path)
                if a != b:
                    changed, before, after = changed + 1, before + a, after + b
    return changed, before, after


def main(argv: List[str]) -> int:
    if not argv:
        print("usage: stripelf.py DIR...", file=sys.stderr)
        return 2
    changed, before, after = strip_tree(argv)
    print(f"mlpack: stripped {changed} shared objects, {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
