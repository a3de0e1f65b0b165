"""System packages a locked wheel needs: LightGBM's libgomp on a base that may lack it."""

from __future__ import annotations

from pathlib import Path

from mlpack.dockerfile import RenderOptions, render
from mlpack.dockerfile.system import LOCAL_BASE_PACKAGES, SYSTEM_PACKAGES, apt_packages
from tests.unit.dockerfile.conftest import LOCK, StubBundle


def test_lightgbm_brings_libgomp_once_after_the_users_packages() -> None:
    lock = [*LOCK, "LightGBM==4.6.0", "scikit-learn==1.8.0"]
    assert apt_packages((), lock, local_base=False) == ("libgomp1",)
    assert apt_packages(("curl", "libgomp1=12.2.0-14"), lock, local_base=False) == ("curl", "libgomp1=12.2.0-14")
    assert apt_packages(("curl",), [*lock, "lightgbm==4.6.0"], local_base=False) == ("curl", "libgomp1")
    assert apt_packages(("curl",), LOCK, local_base=False) == ("curl",)  # nothing needs a system library
    assert apt_packages((), ["lightgbm-tools==1.0", "xgboost==3.1.0"], local_base=False) == ()  # names, not prefixes


def test_the_offline_base_already_has_them() -> None:
    from mlpack.oci.base import BaseOptions

    assert apt_packages((), ["lightgbm==4.6.0"], local_base=True) == ()
    wanted = {p for packages in SYSTEM_PACKAGES.values() for p in packages}
    assert LOCAL_BASE_PACKAGES <= set(BaseOptions().packages) and wanted <= LOCAL_BASE_PACKAGES


def _stages(text: str) -> dict[str, list[str]]:
    """The RUN lines of each stage (joined continuation lines)."""
    stages: dict[str, list[str]] = {}
    current = ""
    for line in text.replace("\\\n", " ").splitlines():
        if line.startswith("FROM "):
            current = line.split(" AS ")[-1]
            stages[current] = []
        elif line.startswith("RUN ") and current:
            stages[current].append(line)
    return stages


def test_a_lightgbm_image_installs_libgomp_in_both_stages_on_a_registry_base(stub_bundle: StubBundle, tmp_path: Path) -> None:
    stub_bundle.requirements = [*LOCK, "lightgbm==4.6.0"]
    text = render(stub_bundle, RenderOptions(), out_dir=tmp_path / "slim").dockerfile_text
    stages = _stages(text)
    for stage in ("builder", "runtime"):
        installs = [r for r in stages[stage] if "apt-get $ca install" in r]
        assert len(installs) == 1 and installs[0].rstrip().split("--no-install-recommends ")[1].startswith("libgomp1;"), stage
    builder = stages["builder"]
    check = next(i for i, r in enumerate(builder) if "importcheck.py" in r)
    assert any("libgomp1" in r for r in builder[:check])  # before the import check loads lightgbm


def test_the_offline_base_renders_no_apt_step(stub_bundle: StubBundle, tmp_path: Path) -> None:
    stub_bundle.requirements = [*LOCK, "lightgbm==4.6.0"]
    text = render(stub_bundle, RenderOptions(base="local"), out_dir=tmp_path / "local").dockerfile_text
    assert "apt-get" not in text and "COPY --from=builder /etc/passwd /etc/group /etc/" in text
    assert not _stages(text)["runtime"]  # the runtime stage runs nothing
