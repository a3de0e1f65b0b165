"""The wheel installer: an honest wheel lands as pip lays it out; hostile wheels are refused."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mlpack.dockerfile.wheelinstall import VenvLayout, WheelLimits, install_wheel
from mlpack.errors import RenderError
from tests.unit.dockerfile.wheels import make_wheel, record_hash


@pytest.fixture
def layout(tmp_path: Path) -> VenvLayout:
    root = tmp_path / "venv"
    root.mkdir()
    lay = VenvLayout(root=root, prefix="/opt/venv", python="3.11")
    lay.site_packages.mkdir(parents=True)
    return lay


def _outside(tmp_path: Path) -> list[str]:
    """Everything under tmp_path that is not the venv or the wheels: what an escape would leave."""
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")
                  if not str(p.relative_to(tmp_path)).startswith(("venv", "w")))


def test_an_honest_wheel_is_installed_as_pip_lays_it_out(tmp_path: Path, layout: VenvLayout) -> None:
    (tmp_path / "w").mkdir()
    wheel = make_wheel(tmp_path / "w", "demo_pkg", "1.2.0", {
        "demo/__init__.py": b"VALUE = 42\n",
        "demo/core.py": b"def main():\n    print('demo says', 42)\n    return 0\n",
        "single.py": b"X = 1\n",
        "demo_pkg-1.2.0.data/scripts/demo-tool": b"#!python\nimport demo\nprint(demo.VALUE)\n",
        "demo_pkg-1.2.0.data/data/share/demo/notes.txt": b"shared data\n",
        "demo_pkg-1.2.0.data/platlib/demo_native.py": b"N = 2\n",
    }, entry_points="[console_scripts]\ndemo = demo.core:main\n")
    done = install_wheel(wheel, layout)
    sp = layout.site_packages
    assert (done.name, done.version) == ("demo_pkg", "1.2.0")
    assert set(done.top_level) == {"demo", "single.py", "demo_native.py"}
    assert (sp / "demo" / "core.py").read_bytes().startswith(b"def main")
    assert (sp / "demo_native.py").is_file() and (layout.root / "share/demo/notes.txt").read_text() == "shared data\n"
    script = (layout.root / "bin" / "demo-tool").read_text()
    assert script.splitlines()[0] == "#!/opt/venv/bin/python"
    assert os.stat(layout.root / "bin" / "demo-tool").st_mode & 0o111
    entry = layout.root / "bin" / "demo"
    assert entry.read_text().startswith("#!/opt/venv/bin/python\n") and os.stat(entry).st_mode & 0o111
    # the console script really runs the entry point (with this Python standing in for the image's)
    out = subprocess.run([sys.executable, str(entry)], env={"PYTHONPATH": str(sp)}, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "demo says 42"
    dist = sp / "demo_pkg-1.2.0.dist-info"
    assert (dist / "INSTALLER").read_text() == "mlpack\n"
    rows = {r[0]: r for r in csv.reader((dist / "RECORD").read_text().splitlines())}
    # RECORD names the installed paths (relative to site-packages) with their real hashes
    assert rows["../../../bin/demo-tool"][1] == record_hash((layout.root / "bin/demo-tool").read_bytes())
    assert rows["demo/core.py"][1] == record_hash((sp / "demo/core.py").read_bytes())
    assert "../../../bin/demo" in rows and rows["demo_pkg-1.2.0.dist-info/RECORD"][1:] == ["", ""]


@pytest.mark.parametrize("member", ["../escape.py", "demo/../../escape.py", "/abs/escape.py",
                                    "demo\\..\\escape.py", "./demo/x.py", "demo//x.py"])
def test_paths_that_leave_the_target_are_refused(tmp_path: Path, layout: VenvLayout, member: str) -> None:
    (tmp_path / "w").mkdir()
    wheel = make_wheel(tmp_path / "w", "evil", "1.0", {"evil/__init__.py": b"", member: b"pwned\n"})
    with pytest.raises(RenderError, match="relative path|leaves its directory"):
        install_wheel(wheel, layout)
    assert not list(tmp_path.rglob("escape.py")) and _outside(tmp_path) == []


def test_symlink_members_are_refused(tmp_path: Path, layout: VenvLayout) -> None:
    (tmp_path / "w").mkdir()
    wheel = make_wheel(tmp_path / "w", "evil", "1.0", {"evil/__init__.py": b""},
                       symlinks={"evil/passwd": "/etc/passwd"})
    with pytest.raises(RenderError, match="not a regular file"):
        install_wheel(wheel, layout)
    assert not os.path.lexists(layout.site_packages / "evil" / "passwd")


def test_a_symlink_in_the_target_is_never_written_through(tmp_path: Path, layout: VenvLayout) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    (layout.root / "bin").mkdir()
    os.symlink(victim, layout.root / "bin" / "tool")
    (tmp_path / "w").mkdir()
    wheel = make_wheel(tmp_path / "w", "evil", "1.0", {"evil-1.0.data/scripts/tool": b"#!/bin/sh\necho pwned\n"})
    with pytest.raises(RenderError, match="is not a file"):
        install_wheel(wheel, layout)
    assert victim.read_text() == "keep me\n"


def test_member_and_total_sizes_are_bounded(tmp_path: Path, layout: VenvLayout) -> None:
    (tmp_path / "w").mkdir()
    big = make_wheel(tmp_path / "w", "big", "1.0", {"big/__init__.py": b"\0" * 5000})
    with pytest.raises(RenderError, match="more than 1000"):
        install_wheel(big, layout, WheelLimits(max_member=1000))
    many = make_wheel(tmp_path / "w", "many", "1.0", {f"many/m{i}.py": b"#" * 600 for i in range(3)})
    with pytest.raises(RenderError, match="unpacks to more than 1000 bytes"):
        install_wheel(many, layout, WheelLimits(max_member=700, max_total=1000))
    with pytest.raises(RenderError, match="members, more than 3"):
        install_wheel(many, layout, WheelLimits(max_members=3))


def test_a_compressed_bomb_is_refused_and_a_lying_header_gets_no_further(tmp_path: Path,
                                                                       layout: VenvLayout) -> None:
    (tmp_path / "w").mkdir()
    bomb = tmp_path / "w" / "bomb-1.0-py3-none-any.whl"
    honest = make_wheel(tmp_path / "w", "bomb", "1.0", {"bomb/__init__.py": b"\0" * (8 << 20)})
    # deflate it: 8 MiB of zeros become a few KiB on disk
    with zipfile.ZipFile(honest) as src:
        items = [(i, src.read(i)) for i in src.infolist()]
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info, data in items:
            info.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(info, data)
    assert bomb.stat().st_size < 64 << 10
    with pytest.raises(RenderError, match="more than 1048576"):
        install_wheel(bomb, layout, WheelLimits(max_member=1 << 20))
    assert not (layout.site_packages / "bomb" / "__init__.py").exists()
    # the central directory now claims 10 bytes: the size check passes, the bytes read stop at 10
    # and the damaged member is refused (CRC), never written past what was claimed
    data = bytearray(bomb.read_bytes())
    cd = data.find(b"PK\x01\x02" + data[data.find(b"PK\x01\x02") + 4: data.find(b"PK\x01\x02") + 6])
    assert data[cd + 46: cd + 46 + len(b"bomb/__init__.py")] == b"bomb/__init__.py"
    data[cd + 24: cd + 28] = (10).to_bytes(4, "little")
    bomb.write_bytes(bytes(data))
    with pytest.raises(RenderError, match="damaged|RECORD"):
        install_wheel(bomb, layout, WheelLimits(max_member=1 << 20))
    target = layout.site_packages / "bomb" / "__init__.py"
    assert not target.exists() or target.stat().st_size <= 10


def test_bad_record_hashes_and_unrecorded_members_are_refused(tmp_path: Path, layout: VenvLayout) -> None:
    (tmp_path / "w").mkdir()
    tampered = make_wheel(tmp_path / "w", "tampered", "1.0", {"tampered/__init__.py": b"print('changed')\n"},
                          record={"tampered/__init__.py": record_hash(b"print('original')\n")})
    with pytest.raises(RenderError, match="does not match its RECORD hash"):
        install_wheel(tampered, layout)
    sneaky = make_wheel(tmp_path / "w", "sneaky", "1.0", {"sneaky/__init__.py": b"", "sneaky/extra.py": b"x=1\n"},
                        unrecorded=("sneaky/extra.py",))
    with pytest.raises(RenderError, match="not in RECORD"):
        install_wheel(sneaky, layout)
    md5 = make_wheel(tmp_path / "w", "weak", "1.0", {"weak/__init__.py": b""},
                     record={"weak/__init__.py": "md5=abc"})
    with pytest.raises(RenderError, match="only sha256"):
        install_wheel(md5, layout)


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_duplicates_bad_names_and_bad_entry_points_are_refused(tmp_path: Path, layout: VenvLayout) -> None:
    (tmp_path / "w").mkdir()
    dup = make_wheel(tmp_path / "w", "dup", "1.0", {"dup/__init__.py": b""},
                     extra_members=[(zipfile.ZipInfo("dup/__init__.py"), b"second")])
    with pytest.raises(RenderError, match="same member twice"):
        install_wheel(dup, layout)
    with pytest.raises(RenderError, match="not a wheel file name"):
        install_wheel(tmp_path / "w" / "not-a-wheel.zip", layout)
    ep = make_wheel(tmp_path / "w", "ep", "1.0", {"ep/__init__.py": b""},
                    entry_points="[console_scripts]\n../../evil = ep:main\n")
    with pytest.raises(RenderError, match="entry point"):
        install_wheel(ep, layout)
    assert not list(tmp_path.rglob("evil"))
    inject = make_wheel(tmp_path / "w", "inject", "1.0", {"inject/__init__.py": b""},
                        entry_points="[console_scripts]\nx = os; import shutil:rmtree\n")
    with pytest.raises(RenderError, match="entry point"):
        install_wheel(inject, layout)
