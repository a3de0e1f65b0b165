"""stripelf: debug sections and .symtab leave a shared object, which still loads and answers;
anything it does not understand is left byte for byte."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlpack.dockerfile import _stripelf as stripelf
from tests.conftest import require_tool

SOURCE = r"""
#include <string.h>
static int table[64] = {1, 2, 3};
int mlpack_answer(int x) { return x * 6 + table[1] + 38; }
const char *mlpack_name(void) { return "slim"; }
size_t mlpack_len(const char *s) { return strlen(s); }
"""


@pytest.fixture(scope="module")
def debug_so(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = require_tool("gcc")
    work = tmp_path_factory.mktemp("elf")
    (work / "lib.c").write_text(SOURCE)
    out = work / "libslim.so"
    subprocess.run([gcc, "-g3", "-O1", "-shared", "-fPIC", "-o", str(out), str(work / "lib.c")], check=True)
    return out


def _sections(path: Path) -> list[str]:
    text = subprocess.run([require_tool("readelf"), "-S", "-W", str(path)], capture_output=True, text=True,
                          check=True).stdout
    return [line.split("]", 1)[1].split()[0] for line in text.splitlines() if "]" in line and line.strip().startswith("[")
            and line.split("]", 1)[1].split()]


def _load_and_call(path: Path) -> tuple[int, bytes, int]:
    code = ("import ctypes, sys; lib = ctypes.CDLL(sys.argv[1]); lib.mlpack_name.restype = ctypes.c_char_p; "
            "print(lib.mlpack_answer(0), lib.mlpack_name().decode(), lib.mlpack_len(b'four'))")
    out = subprocess.run([sys.executable, "-I", "-c", code, str(path)], capture_output=True, text=True, check=True)
    a, name, n = out.stdout.split()
    return int(a), name.encode(), int(n)


def test_debug_sections_and_symtab_go_and_the_library_still_works(debug_so: Path, tmp_path: Path) -> None:
    lib = tmp_path / "libslim.so"
    lib.write_bytes(debug_so.read_bytes())
    lib.chmod(0o751)
    before = _sections(lib)
    assert any(s.startswith(".debug_") for s in before) and ".symtab" in before
    size_before = lib.stat().st_size

    assert stripelf.strip_file(str(lib)) == (size_before, lib.stat().st_size)
    after = _sections(lib)
    assert not [s for s in after if s.startswith(".debug") or s in (".symtab", ".strtab")], after
    assert [s for s in before if not s.startswith(".debug") and s not in (".symtab", ".strtab")] == after
    assert lib.stat().st_size < size_before / 2 and lib.stat().st_mode & 0o7777 == 0o751
    # readelf finds nothing to complain about, and the loader and symbols still work
    check = subprocess.run([require_tool("readelf"), "-a", "-W", str(lib)], capture_output=True, text=True)
    assert check.returncode == 0 and check.stderr == "", check.stderr
    assert _load_and_call(lib) == (40, b"slim", 4)
    # past the ELF header (whose section table offset and count change), the mapped part is the original
    assert lib.read_bytes()[64:4096] == debug_so.read_bytes()[64:4096]
    # stripping again changes nothing
    assert stripelf.strip_bytes(lib.read_bytes()) is None


def test_as_small_as_binutils_strip_debug(debug_so: Path, tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours.so", tmp_path / "theirs.so"
    ours.write_bytes(debug_so.read_bytes())
    theirs.write_bytes(debug_so.read_bytes())
    stripelf.strip_file(str(ours))
    subprocess.run([require_tool("strip"), "--strip-debug", str(theirs)], check=True)
    assert ours.stat().st_size <= theirs.stat().st_size


def test_tree_walk_skips_symlinks_and_non_elf(debug_so: Path, tmp_path: Path) -> None:
    root = tmp_path / "venv"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.so").write_bytes(debug_so.read_bytes())
    (root / "pkg" / "text.so").write_text("not an ELF file\n")
    os.symlink(str(debug_so), root / "pkg" / "link.so")
    original = debug_so.read_bytes()
    changed, before, after = stripelf.strip_tree([str(root)])
    assert changed == 1 and before == len(original) and after == (root / "pkg" / "a.so").stat().st_size
    assert (root / "pkg" / "text.so").read_text() == "not an ELF file\n"
    assert debug_so.read_bytes() == original  # the symlink's target outside the tree is untouched
    assert _load_and_call(root / "pkg" / "a.so") == (40, b"slim", 4)


@pytest.mark.parametrize("damage", ["truncated", "section_past_end", "trailing_data", "debug_inside_loaded",
                                    "bad_shstrndx", "elf32", "symtab_over_text", "symtab_across_mapped_end"])
def test_files_it_does_not_understand_are_left_alone(debug_so: Path, tmp_path: Path, damage: str) -> None:
    data = bytearray(debug_so.read_bytes())
    ehdr = list(stripelf._EHDR.unpack_from(data))
    shoff, shnum = ehdr[6], ehdr[12]
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "section_past_end":
        sh = list(stripelf._SHDR.unpack_from(data, shoff + (shnum - 1) * stripelf._SHDR.size))
        sh[5] = len(data) * 4
        stripelf._SHDR.pack_into(data, shoff + (shnum - 1) * stripelf._SHDR.size, *sh)
    elif damage == "trailing_data":
        data += b"SIGNATURE-BLOCK" * 4
    elif damage == "debug_inside_loaded":
        # point a .debug section into the loaded part: moving it would corrupt mapped bytes
        for i in range(shnum):
            sh = list(stripelf._SHDR.unpack_from(data, shoff + i * stripelf._SHDR.size))
            shstr = stripelf._SHDR.unpack_from(data, shoff + ehdr[13] * stripelf._SHDR.size)
            name = stripelf._name(bytes(data[shstr[4]:shstr[4] + shstr[5]]), sh[0])
            if name.startswith(b".debug"):
                sh[4] = 64
                sh[5] = 16
                stripelf._SHDR.pack_into(data, shoff + i * stripelf._SHDR.size, *sh)
                break
    elif damage in ("symtab_over_text", "symtab_across_mapped_end"):
        # a .symtab said to lie where code is mapped, or across the end of what is mapped: zeroing it
        # in place (what a patchelf'd library's gets) would destroy loaded bytes
        shstr = stripelf._SHDR.unpack_from(data, shoff + ehdr[13] * stripelf._SHDR.size)
        sections = [list(stripelf._SHDR.unpack_from(data, shoff + i * stripelf._SHDR.size)) for i in range(shnum)]
        names = [stripelf._name(bytes(data[shstr[4]:shstr[4] + shstr[5]]), sh[0]) for sh in sections]
        phdrs = [stripelf._PHDR.unpack_from(data, ehdr[5] + k * stripelf._PHDR.size) for k in range(ehdr[10])]
        mapped_end = max(p[2] + p[5] for p in phdrs)
        sym = names.index(b".symtab")
        data[sections[sym][4]:sections[sym][4] + sections[sym][5]] = bytes(sections[sym][5])  # no junk left behind
        text = sections[names.index(b".text")]
        sections[sym][4], sections[sym][5] = ((text[4], 16) if damage == "symtab_over_text"
                                              else (mapped_end - 8, 64))
        stripelf._SHDR.pack_into(data, shoff + sym * stripelf._SHDR.size, *sections[sym])
    elif damage == "bad_shstrndx":
        ehdr[13] = shnum + 5
        stripelf._EHDR.pack_into(data, 0, *ehdr)
    elif damage == "elf32":
        data[4] = 1
    path = tmp_path / "odd.so"
    path.write_bytes(bytes(data))
    assert stripelf.strip_bytes(bytes(data)) is None
    size = len(data)
    assert stripelf.strip_file(str(path)) == (size, size) and path.read_bytes() == bytes(data)


def test_the_script_reports_what_it_did(debug_so: Path, tmp_path: Path) -> None:
    (tmp_path / "x.so").write_bytes(debug_so.read_bytes())
    out = subprocess.run([sys.executable, "-I", stripelf.__file__, str(tmp_path)], capture_output=True, text=True,
                         check=True).stdout
    assert out.startswith("mlpack: stripped 1 shared objects,")
    assert subprocess.run([sys.executable, "-I", stripelf.__file__], capture_output=True).returncode == 2


def _loaded_bytes(data: bytes) -> list[bytes]:
    """What each program header maps from the file, past the ELF header (whose section table
    offset and count change)."""
    ehdr = stripelf._EHDR.unpack_from(data)
    phoff, phnum = ehdr[5], ehdr[10]
    headers = [stripelf._PHDR.unpack_from(data, phoff + k * stripelf._PHDR.size) for k in range(phnum)]
    return [data[max(p[2], stripelf._EHDR.size):p[2] + p[5]] for p in headers]


def test_patchelfed_wheel_libraries_lose_their_symtab_in_place_and_numpy_still_computes(tmp_path: Path) -> None:
    """numpy's wheel: auditwheel's patchelf put a segment after .symtab/.strtab of OpenBLAS and
    _multiarray_umath, so those are zeroed where they are; numpy then imports and gives the same
    answers from the stripped copy."""
    np = pytest.importorskip("numpy")
    site = Path(np.__file__).parent.parent
    libs = sorted((site / "numpy.libs").glob("libscipy_openblas*.so*")) if (site / "numpy.libs").is_dir() else []
    if not libs:
        pytest.skip("this numpy has no bundled OpenBLAS (not a manylinux wheel)")
    for name in ("numpy", "numpy.libs"):
        import shutil

        shutil.copytree(site / name, tmp_path / name, symlinks=True)
    blas = tmp_path / "numpy.libs" / libs[0].name
    original = blas.read_bytes()
    assert ".symtab" in _sections(blas)
    changed, _before, _after = stripelf.strip_tree([str(tmp_path)])
    assert changed >= 1
    stripped = blas.read_bytes()
    assert not {".symtab", ".strtab"} & set(_sections(blas))
    assert _loaded_bytes(stripped) == _loaded_bytes(original)  # nothing mapped changed or moved
    assert len(stripped) <= len(original)
    check = subprocess.run([require_tool("readelf"), "-a", "-W", str(blas)], capture_output=True, text=True)
    assert check.returncode == 0 and check.stderr == "", check.stderr
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import numpy as np; "
            "assert np.__file__.startswith(sys.argv[1]), np.__file__; "
            "a = np.random.default_rng(7).random((200, 200)) + 200 * np.eye(200); "
            "print(repr(float(np.linalg.solve(a, np.arange(200.0)).sum())), repr(float((a @ a.T).trace())))")
    ours = subprocess.run([sys.executable, "-I", "-c", code, str(tmp_path)], capture_output=True, text=True,
                          cwd=tmp_path)
    assert ours.returncode == 0, ours.stderr
    theirs = subprocess.run([sys.executable, "-I", "-c", code, str(site)], capture_output=True, text=True,
                            cwd=tmp_path)
    assert ours.stdout == theirs.stdout and ours.stdout.strip()
