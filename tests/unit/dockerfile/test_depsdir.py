"""The RUN-free venv: wheels for the image's platform from the cache, laid out as /opt/venv, trimmed."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from mlpack.dockerfile.depsdir import BaseFacts, Trims, make_deps_dir, user_files
from mlpack.dockerfile.wheelcache import WheelTarget, lock_pins, resolve_wheels, wheel_fits
from mlpack.errors import RenderError
from tests.unit.dockerfile.wheels import make_wheel

FACTS = BaseFacts(interpreter="/usr/bin/python3.11", passwd=b"root:x:0:0:root:/root:/bin/bash\n",
                  group=b"root:x:0:\n")
# a pip that must never be called: the cache has everything, or the test wants the failure
NO_PIP = [sys.executable, "-c", "import sys; print('index unreachable', file=sys.stderr); sys.exit(3)"]


def test_wheel_tags_follow_the_image_not_the_host() -> None:
    amd = WheelTarget(python="3.11", machine="amd64", glibc=(2, 36))
    arm = WheelTarget(python="3.11", machine="arm64", glibc=(2, 36))
    native = "numpy-2.0.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    assert wheel_fits(native, amd) and not wheel_fits(native, arm)
    assert wheel_fits("numpy-2.0.0-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl", arm)
    assert not wheel_fits("numpy-2.0.0-cp312-cp312-manylinux_2_17_x86_64.whl", amd)
    assert wheel_fits("protobuf-6.0-cp39-abi3-manylinux2014_x86_64.whl", amd)
    assert not wheel_fits("x-1.0-cp311-cp311-manylinux_2_39_x86_64.whl", amd)  # newer glibc than the base's
    assert not wheel_fits("x-1.0-cp311-cp311-macosx_11_0_arm64.whl", arm)
    assert not wheel_fits("x-1.0-cp311-cp311-linux_x86_64.whl", amd)  # not portable
    assert wheel_fits("six-1.16.0-py2.py3-none-any.whl", arm)
    assert arm.platform == "linux/arm64"
    with pytest.raises(RenderError, match="s390x"):
        WheelTarget(machine="s390x")


def test_a_lock_must_pin_every_line() -> None:
    pins = lock_pins(["# comment", "numpy==2.0.0  # serving", "PyYAML==6.0.1", ""])
    assert [(p.name, p.version) for p in pins] == [("numpy", "2.0.0"), ("PyYAML", "6.0.1")]
    with pytest.raises(RenderError, match="not name==version"):
        lock_pins(["numpy>=2"])


def test_the_cache_answers_without_an_index(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    make_wheel(cache, "alpha", "1.0", {"alpha/__init__.py": b""})
    make_wheel(cache, "beta_pkg", "2.0", {"beta/__init__.py": b""}, tag="cp311-cp311-manylinux_2_17_x86_64")
    make_wheel(cache, "beta_pkg", "2.0", {"beta/__init__.py": b""}, tag="cp311-cp311-manylinux_2_17_aarch64")
    found = resolve_wheels(["alpha==1.0", "Beta-Pkg==2.0"], WheelTarget(), cache, pip=NO_PIP)
    assert [p.name for p in found] == ["alpha-1.0-py3-none-any.whl",
                                       "beta_pkg-2.0-cp311-cp311-manylinux_2_17_x86_64.whl"]
    arm = resolve_wheels(["beta-pkg==2.0"], WheelTarget(machine="aarch64"), cache, pip=NO_PIP)
    assert arm[0].name.endswith("aarch64.whl")
    # what the cache lacks goes to pip, and pip's failure is said with the cache to fill by hand
    with pytest.raises(RenderError, match="index unreachable") as info:
        resolve_wheels(["alpha==1.0", "gamma==3.0"], WheelTarget(), cache, pip=NO_PIP)
    assert str(cache) in (info.value.hint or "")


def _cache_with_demo(tmp_path: Path) -> Path:
    cache = tmp_path / "cache"
    cache.mkdir()
    make_wheel(cache, "demo", "1.0", {
        "demo/__init__.py": b"from demo.core import VALUE\n",
        "demo/core.py": b"VALUE = 7\n",
        "demo/core.pyi": b"VALUE: int\n",
        "demo/tests/test_core.py": b"def test(): pass\n",
        "demo/tools/big.py": b"# tooling\n",
    }, entry_points="[console_scripts]\ndemo = demo.core:main\n")
    make_wheel(cache, "pip", "24.0", {"pip/__init__.py": b""})
    return cache


def test_the_venv_is_laid_out_trimmed_and_compiled(tmp_path: Path) -> None:
    cache = _cache_with_demo(tmp_path)
    out = tmp_path / "deps"
    report = make_deps_dir(out, ["demo==1.0", "pip==24.0"], target=WheelTarget(python="3.11"), base=FACTS,
                           cache=cache, trims=Trims(installers=("pip",), tests=("demo",), paths=("demo/tools",)),
                           modules=["demo.core", "json", "mlpack.server"], provided=["mlpack"], pip=NO_PIP)
    sp = out / "lib/python3.11/site-packages"
    assert os.readlink(out / "bin/python") == "/usr/bin/python3.11"
    assert os.readlink(out / "bin/python3") == "python" and os.readlink(out / "lib64") == "lib"
    assert "home = /usr/bin\n" in (out / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in (out / "pyvenv.cfg").read_text()
    assert not (sp / "pip").exists() and not list(sp.glob("pip-*.dist-info"))
    assert not (sp / "demo/tests").exists() and not (sp / "demo/tools").exists()
    assert not (sp / "demo/core.pyi").exists() and (sp / "demo/core.py").is_file()
    assert (out / "bin/demo").read_text().startswith("#!/opt/venv/bin/python\n")
    same = f"{sys.version_info[0]}.{sys.version_info[1]}" == "3.11"
    assert report.compiled is same
    if same:
        pyc = next((sp / "demo/__pycache__").glob("core.cpython-311.pyc")).read_bytes()
        assert int.from_bytes(pyc[4:8], "little") == 0b01  # hash-based, unchecked
        assert b"/opt/venv/lib/python3.11/site-packages/demo/core.py" in pyc  # the image's path, not ours
    assert all(oct(os.stat(d).st_mode & 0o777) == "0o755" for d, _, _ in os.walk(out))


def test_a_module_the_model_needs_but_no_package_provides_fails_naming_it(tmp_path: Path) -> None:
    cache = _cache_with_demo(tmp_path)
    with pytest.raises(RenderError, match="no package of the image provides sklearn.linear_model"):
        make_deps_dir(tmp_path / "deps", ["demo==1.0"], target=WheelTarget(), base=FACTS, cache=cache,
                      modules=["sklearn.linear_model", "json"], pip=NO_PIP)
    # a trim that removes a whole module a distribution records is caught too
    with pytest.raises(RenderError, match="lost modules: demo"):
        make_deps_dir(tmp_path / "deps2", ["demo==1.0"], target=WheelTarget(), base=FACTS, cache=cache,
                      trims=Trims(paths=("demo",)), pip=NO_PIP)


def test_a_wheel_may_not_take_the_interpreters_name(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    make_wheel(cache, "evil", "1.0", {"evil/__init__.py": b"", "evil-1.0.data/scripts/python": b"#!/bin/sh\n"})
    with pytest.raises(RenderError, match="bin/python"):
        make_deps_dir(tmp_path / "deps", ["evil==1.0"], target=WheelTarget(), base=FACTS, cache=cache, pip=NO_PIP)


def test_the_serving_user_is_added_once() -> None:
    passwd, group = user_files(FACTS, 10001)
    assert passwd.endswith(b"mlpack:x:10001:10001:mlpack:/nonexistent:/usr/sbin/nologin\n")
    assert group == b"root:x:0:\nmlpack:x:10001:\n"
    again = BaseFacts(interpreter=FACTS.interpreter, passwd=passwd, group=group)
    assert user_files(again, 10001) == (passwd, group)

