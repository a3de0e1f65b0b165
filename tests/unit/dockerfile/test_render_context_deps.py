"""render(deps="context"): no RUN in the Dockerfile; the venv, users and bytecode are made here."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from mlpack.dockerfile import RenderOptions, render
from mlpack.dockerfile.depsdir import BaseFacts
from mlpack.errors import RenderError
from tests.unit.dockerfile.conftest import LOCK
from tests.unit.dockerfile.dfparse import instructions, stages
from tests.unit.dockerfile.wheels import make_wheel

FACTS = BaseFacts(interpreter="/usr/local/bin/python3.11", passwd=b"root:x:0:0:root:/root:/bin/bash\n",
                  group=b"root:x:0:\n")


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    """The stub lock's packages as tiny wheels: the cache has everything, so no index is asked."""
    root = tmp_path / "wheels"
    root.mkdir()
    for line in LOCK:
        name, version = line.split("==")
        module = {"PyYAML": "yaml"}.get(name, name)
        make_wheel(root, name, version, {f"{module}/__init__.py": b"", f"{module}/tests/t.py": b""})
    return root


def test_context_mode_renders_no_run_and_a_named_context(stub_bundle, cache: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/unreachable")  # the cache must suffice
    options = RenderOptions(base="local", deps="context", wheel_cache=cache)
    ctx = render(stub_bundle, options, out_dir=tmp_path / "ctx", base_facts=FACTS)
    text = ctx.dockerfile_text
    instrs = instructions(text)
    assert not [i for i in instrs if i.cmd == "RUN"]
    assert list(stages(instrs)) == ["runtime"]
    copies = [i.args for i in instrs if i.cmd == "COPY"]
    assert "--from=deps / /opt/venv/" in copies and "etc/passwd etc/group /etc/" in copies
    assert "--build-context deps=deps" in text
    assert ctx.contexts == {"deps": ctx.path / "deps"}
    assert (ctx.path / ".dockerignore").read_text().splitlines().count("deps") == 1
    sp = ctx.path / "deps/lib/python3.11/site-packages"
    assert (sp / "numpy/__init__.py").is_file() and not (sp / "numpy/tests").exists()
    assert os.readlink(ctx.path / "deps/bin/python") == "/usr/local/bin/python3.11"
    assert (ctx.path / "etc/passwd").read_bytes().endswith(b"mlpack:x:10001:10001:mlpack:/nonexistent:"
                                                          b"/usr/sbin/nologin\n")
    assert not [n for n in ("importcheck.py", "stripelf.py", "compilepy.py") if (ctx.path / n).exists()]
    if sys.version_info[:2] == (3, 11):
        assert list((ctx.path / "app/mlpack/__pycache__").glob("*.cpython-311.pyc"))


def test_context_mode_refuses_what_needs_a_run_step(stub_bundle, cache: Path, tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="apt packages need a RUN step"):
        RenderOptions(deps="context", wheel_cache=cache, apt=("libgomp1",))
    with pytest.raises(RenderError, match="GPU"):
        RenderOptions(deps="context", wheel_cache=cache, gpu=True)
    with pytest.raises(RenderError, match="wheel_cache"):
        RenderOptions(deps="context")
    with pytest.raises(RenderError, match="deps='sometimes'"):
        RenderOptions(deps="sometimes")
    with pytest.raises(RenderError, match="interpreter and users"):
        render(stub_bundle, RenderOptions(deps="context", wheel_cache=cache), out_dir=tmp_path / "a")
    other = replace(FACTS, interpreter="/usr/bin/python3.12")
    with pytest.raises(RenderError, match="not Python 3.11"):
        render(stub_bundle, RenderOptions(deps="context", wheel_cache=cache), out_dir=tmp_path / "b",
               base_facts=other)
    with pytest.raises(RenderError, match="not name==version"):
        render(stub_bundle, RenderOptions(deps="context", wheel_cache=cache, pip=("scipy>=1",)),
               out_dir=tmp_path / "c", base_facts=FACTS)


def test_context_mode_refuses_a_system_library_only_apt_could_add(stub_bundle, cache: Path,
                                                                   tmp_path: Path) -> None:
    """LightGBM's wheel loads the system's libgomp: on a base other than the offline one only the RUN
    template can install it, so deps='context' says so instead of building an image that cannot start."""
    make_wheel(cache, "lightgbm", "4.5.0", {"lightgbm/__init__.py": b""})
    stub_bundle.requirements = [*stub_bundle.requirements, "lightgbm==4.5.0"]
    with pytest.raises(RenderError, match=r"libgomp.so.1 \(libgomp1\)"):
        render(stub_bundle, RenderOptions(base="python:3.11-slim", deps="context", wheel_cache=cache),
               out_dir=tmp_path / "slim", base_facts=FACTS)
    ctx = render(stub_bundle, RenderOptions(base="local", deps="context", wheel_cache=cache),
                 out_dir=tmp_path / "local", base_facts=FACTS)  # the offline base has it
    assert (ctx.path / "deps/lib/python3.11/site-packages/lightgbm/__init__.py").is_file()


def test_run_mode_is_unchanged(stub_bundle, tmp_path: Path) -> None:
    ctx = render(stub_bundle, RenderOptions(base="local"), out_dir=tmp_path / "ctx")
    assert ctx.contexts == {}
    assert [i for i in instructions(ctx.dockerfile_text) if i.cmd == "RUN"]
    assert "deps" not in (ctx.path / ".dockerignore").read_text().splitlines()


def test_run_mode_with_a_wheelhouse_installs_with_no_index(stub_bundle, cache: Path, tmp_path: Path) -> None:
    wheels = sorted(cache.glob("*.whl"))
    ctx = render(stub_bundle, RenderOptions(base="local"), out_dir=tmp_path / "ctx", wheelhouse=wheels)
    install = [i.args for i in instructions(ctx.dockerfile_text) if i.cmd == "RUN" and "install" in i.args
               and "requirements.lock" in i.args]
    assert len(install) == 1
    assert "--mount=type=bind,from=wheels,target=/tmp/mlpack/wheelhouse" in install[0]
    assert install[0].count("--no-index --find-links /tmp/mlpack/wheelhouse") == 2  # the uv and the pip branch
    assert ctx.contexts == {"wheels": ctx.path / "wheels"}
    linked = sorted((ctx.path / "wheels").iterdir())
    assert [p.name for p in linked] == [w.name for w in wheels]
    assert all(p.stat().st_ino == w.stat().st_ino for p, w in zip(linked, wheels))  # hard links, not copies
    # without one, the RUN step asks the index as pip does
    plain = render(stub_bundle, RenderOptions(base="local"), out_dir=tmp_path / "plain")
    assert "--no-index" not in plain.dockerfile_text and plain.contexts == {}
    with pytest.raises(RenderError, match="wheelhouse is for deps='run'"):
        render(stub_bundle, RenderOptions(base="local", deps="context", wheel_cache=cache), out_dir=tmp_path / "c",
               base_facts=FACTS, wheelhouse=wheels)


def test_a_uv_wheel_in_the_wheelhouse_installs_the_lock(stub_bundle, cache: Path, tmp_path: Path) -> None:
    """The install step, run by sh with the real python3: it takes uv's binary out of the wheel
    (here a recorder script) into uv's cache mount once, installs the lock with it and no index,
    and leaves no uv in the image; the next build runs the kept binary, a half-made one is redone."""
    import shlex
    import subprocess
    import zipfile

    log = tmp_path / "argv"
    recorder = f'#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a" >> {shlex.quote(str(log))}; done\n'
    uv_wheel = tmp_path / "uvwheel" / "uv-0.13.9-py3-none-manylinux_2_17_x86_64.whl"
    uv_wheel.parent.mkdir()
    with zipfile.ZipFile(uv_wheel, "w") as zf:
        zf.writestr("uv-0.13.9.data/scripts/uv", recorder)
        zf.writestr("uv-0.13.9.dist-info/METADATA", "Name: uv\nVersion: 0.13.9\n")
    wheels = [*sorted(cache.glob("*.whl")), uv_wheel]
    ctx = render(stub_bundle, RenderOptions(base="local"), out_dir=tmp_path / "ctx", wheelhouse=wheels)
    [install] = [i.args for i in instructions(ctx.dockerfile_text) if i.cmd == "RUN" and "requirements.lock" in i.args
                 and "install" in i.args]
    assert "--mount=type=cache,target=/root/.cache/uv," in install and "uv-0.13.9.data/scripts/uv" in install
    # Run it here: the wheelhouse, the uv cache and /tmp/mlpack are this test's directories, python3 is real.
    root = tmp_path / "root"
    uv_cache = tmp_path / "uv-cache"
    script = (install.split("set -eu;", 1)[1]
              .replace("/tmp/mlpack/wheelhouse", str(ctx.contexts["wheels"]))
              .replace("/tmp/mlpack/", f"{root}/tmp/mlpack/")
              .replace("/root/.cache/uv", str(uv_cache))
              .replace("/opt/venv", str(root / "venv")))
    (root / "tmp" / "mlpack").mkdir(parents=True)
    uv_cache.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(os.path.realpath(sys.executable))
    for tool in ("chmod", "rm", "mv"):
        (bin_dir / tool).symlink_to(shutil.which(tool))

    def run_install() -> list[str]:
        log.unlink(missing_ok=True)
        shutil.rmtree(root / "venv", ignore_errors=True)
        done = subprocess.run(["/bin/sh", "-c", "set -eu;" + script], env={"PATH": str(bin_dir)},
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return log.read_text().splitlines()

    argv = run_install()
    assert argv[:4] == ["pip", "install", "--python", str(root / "venv/bin/python")]
    assert argv[4:] == ["-r", f"{root}/tmp/mlpack/requirements.lock", "--offline", "--no-index", "--find-links",
                        str(ctx.contexts["wheels"])]
    assert (root / "venv" / "pyvenv.cfg").is_file()  # python3 -m venv --without-pip ran for real
    assert os.listdir(root / "tmp" / "mlpack") == []  # no uv in the layer
    kept = uv_cache / "mlpack" / uv_wheel.name / "uv"
    assert kept.read_text() == recorder and os.access(kept, os.X_OK)
    assert sorted(os.listdir(kept.parent)) == ["uv"]
    # the next build runs the kept binary (marked here so that a second extraction would show)
    kept.write_text(recorder.replace("#!/bin/sh\n", "#!/bin/sh\necho kept >> " + shlex.quote(str(log)) + "\n"))
    assert run_install()[0] == "kept"
    # a binary a killed build left half-made (no x bit: chmod comes before the rename) is made again
    kept.chmod(0o644)
    (kept.parent / "uv.part").mkdir()
    assert run_install()[0] == "pip" and kept.read_text() == recorder and not (kept.parent / "uv.part").exists()
    assert (ctx.contexts["wheels"] / uv_wheel.name).stat().st_ino == uv_wheel.stat().st_ino
