"""System libraries a locked wheel loads: LightGBM's libgomp on a base that may lack it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from mlpack.dockerfile import RenderOptions, render
from mlpack.dockerfile.system import LOCAL_BASE_PACKAGES, SYSTEM_LIBRARIES, SystemLibrary, system_libraries
from tests.unit.dockerfile.conftest import LOCK, StubBundle

GOMP = SystemLibrary("libgomp1", "libgomp.so.1")


def test_lightgbm_needs_libgomp_once_unless_asked_for() -> None:
    lock = [*LOCK, "LightGBM==4.6.0", "scikit-learn==1.8.0"]
    assert system_libraries(lock, local_base=False) == (GOMP,)
    assert system_libraries([*lock, "lightgbm==4.6.0"], local_base=False) == (GOMP,)
    assert system_libraries(lock, asked=("curl", "libgomp1=12.2.0-14"), local_base=False) == ()  # apt installs it anyway
    assert system_libraries(LOCK, local_base=False) == ()  # nothing links a system library
    assert system_libraries(["lightgbm-tools==1.0", "xgboost==3.1.0"], local_base=False) == ()  # names, not prefixes


def test_the_offline_base_already_has_them() -> None:
    from mlpack.oci.base import BaseOptions

    assert system_libraries(["lightgbm==4.6.0"], local_base=True) == ()
    wanted = {lib.package for libs in SYSTEM_LIBRARIES.values() for lib in libs}
    assert LOCAL_BASE_PACKAGES <= set(BaseOptions().packages) and wanted <= LOCAL_BASE_PACKAGES


def _stages(text: str) -> dict[str, list[str]]:
    """The RUN instructions of each stage, continuation lines joined."""
    stages: dict[str, list[str]] = {}
    current = ""
    for line in text.replace("\\\n", " ").splitlines():
        if line.startswith("FROM "):
            current = line.split(" AS ")[-1]
            stages[current] = []
        elif line.startswith("RUN ") and current:
            stages[current].append(line)
    return stages


def _lightgbm_dockerfile(stub_bundle: StubBundle, out: Path, options: RenderOptions) -> str:
    stub_bundle.requirements = [*LOCK, "lightgbm==4.6.0"]
    return render(stub_bundle, options, out_dir=out).dockerfile_text


def test_a_registry_base_looks_for_libgomp_in_both_stages(stub_bundle: StubBundle, tmp_path: Path) -> None:
    stages = _stages(_lightgbm_dockerfile(stub_bundle, tmp_path / "slim", RenderOptions()))
    for stage in ("builder", "runtime"):
        steps = [r for r in stages[stage] if "ldconfig -p" in r]
        assert len(steps) == 1, stage
        assert "grep -qF 'libgomp.so.1 (' || set -- \"$@\" libgomp1;" in steps[0], steps[0]
    builder = stages["builder"]
    check = next(i for i, r in enumerate(builder) if "importcheck.py" in r)
    assert any("ldconfig" in r for r in builder[:check])  # before the import check loads lightgbm


def test_the_offline_base_renders_no_apt_step(stub_bundle: StubBundle, tmp_path: Path) -> None:
    text = _lightgbm_dockerfile(stub_bundle, tmp_path / "local", RenderOptions(base="local"))
    assert "apt-get" not in text and "ldconfig" not in text
    assert "COPY --from=builder /etc/passwd /etc/group /etc/" in text
    assert not _stages(text)["runtime"]  # the runtime stage runs nothing


def _apt_step(text: str) -> str:
    """The shell script of the runtime stage's apt RUN (its --mount flag dropped)."""
    run = next(r for r in _stages(text)["runtime"] if "apt-get" in r)
    return run.split("--mount=type=secret,id=ca-bundle", 1)[1]


def test_the_step_installs_only_what_the_base_lacks(stub_bundle: StubBundle, tmp_path: Path) -> None:
    """The rendered script run by sh with ldconfig and apt-get on PATH as recorders: apt runs
    only when a library is missing or the user asked for packages, with exactly those."""
    text = _lightgbm_dockerfile(stub_bundle, tmp_path / "ctx", RenderOptions(apt=()))
    script = _apt_step(text).replace("/etc/group", str(tmp_path / "group")).replace("/etc/passwd", str(tmp_path / "passwd"))
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "apt-get").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "apt.log"}\n')
    (tools / "ldconfig").write_text('#!/bin/sh\ncat "$LDCACHE"\n')
    for tool in tools.iterdir():
        tool.chmod(0o755)

    def run(ld_cache: str) -> list[str]:
        (tmp_path / "apt.log").unlink(missing_ok=True)
        env = {"PATH": f"{tools}:/usr/bin:/bin", "LDCACHE": str(tmp_path / "ld.cache")}
        (tmp_path / "ld.cache").write_text(ld_cache)
        subprocess.run(["sh", "-c", script], env=env, check=True, timeout=30)
        log = tmp_path / "apt.log"
        return log.read_text().splitlines() if log.exists() else []

    present = "\tlibgomp.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libgomp.so.1\n"
    assert run(present) == []  # the base has it: no apt-get at all (no mirror, no apt needed)
    lookalike = "\tlibgomp.so.1.0.0 (libc6,x86-64) => /x\n\tlibstdc++.so.6 (libc6,x86-64) => /y\n"
    calls = run(lookalike)
    assert calls[0] == "update" and calls[1].endswith("install -y --no-install-recommends libgomp1"), calls
    assert (tmp_path / "passwd").read_text().startswith("mlpack:x:10001:10001:")
