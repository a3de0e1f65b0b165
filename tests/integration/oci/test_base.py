"""The bootstrapped base image (built once per run by the base_image fixture)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile

import pytest

from mlpack.oci.base import BASE_REF, RECIPE_LABEL, RUNTIME_REF, BaseOptions, recipe
from mlpack.oci.basesplit import status_packages
from mlpack.oci.layercache import layer_dirs
from mlpack.oci.layout import Store
from mlpack.settings import Settings
from tests.conftest import require_root


def test_base_image_config(base_image, run_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    image = Store(run_settings.store_dir).resolve(BASE_REF)
    assert image.digest == base_image.digest and image.ref == BASE_REF
    cfg = image.config
    assert (cfg.architecture, cfg.os) == ("amd64", "linux")
    assert cfg.cmd == ("python3",)
    assert cfg.labels[RECIPE_LABEL] == recipe()  # what makes an older store bootstrap again
    assert any(e.startswith("PATH=") and "/usr/bin" in e for e in cfg.env)
    assert len(image.layers) == 2 and image.size < 90e6, f"base image is {image.size / 1e6:.1f} MB"
    # the runtime image is the base's first layer alone, labelled with the same recipe
    runtime = Store(run_settings.store_dir).resolve(RUNTIME_REF)
    assert runtime.layers == image.layers[:1] and runtime.diff_ids == image.diff_ids[:1]
    assert runtime.config.labels[RECIPE_LABEL] == recipe() and runtime.config.cmd == ("python3",)


def _layer_files(store: Store, digest: str) -> dict[str, bytes | None]:
    with tarfile.open(store.blob_path(digest)) as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() and m.name.endswith("dpkg/status") else None)  # type: ignore[union-attr]
                for m in tar.getmembers()}


def test_the_runtime_layer_has_no_builder_tools_and_its_database_says_so(base_image, run_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """pip's and setuptools' wheels, ensurepip and dpkg are in the second layer only, and each
    layer's dpkg status lists what the image up to it holds."""
    store = Store(run_settings.store_dir)
    runtime, tools = (_layer_files(store, layer["digest"]) for layer in base_image.layers)
    tools_only = ("usr/share/python-wheels/", "usr/bin/dpkg", "usr/bin/diff", "usr/lib/python3.11/ensurepip/")
    for prefix in tools_only:
        assert not [n for n in runtime if n.startswith(prefix)], prefix
        assert [n for n in tools if n.startswith(prefix)], prefix
    assert "usr/bin/python3.11" in runtime and "usr/bin/tar" in runtime and "usr/bin/sh" in runtime
    # merged /usr's links stay where they are, though dpkg lists them as the directories /bin, /lib, ...
    assert {"bin", "sbin", "lib", "lib64"} <= set(runtime) and not {"bin", "sbin", "lib", "lib64"} & set(tools)
    in_runtime = set(status_packages(runtime["var/lib/dpkg/status"].decode()))  # type: ignore[union-attr]
    in_base = set(status_packages(tools["var/lib/dpkg/status"].decode()))  # type: ignore[union-attr]
    assert in_base - in_runtime == set(BaseOptions().builder_only)
    assert {"python3.11-minimal", "libc6", "libssl3", "coreutils"} <= in_runtime
    assert not [n for n in runtime if n.startswith("var/lib/dpkg/info/dpkg.")]
    assert "var/lib/dpkg/status-old" not in runtime and "var/lib/dpkg/status-old" not in tools


def test_base_layer_is_slim_and_has_no_devices(base_image, run_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    store = Store(run_settings.store_dir)
    with tarfile.open(store.blob_path(base_image.layers[0]["digest"])) as tar:
        members = tar.getmembers()
    names = {m.name for m in members}
    assert "usr/bin/python3" in names or "usr/bin/python3.11" in names
    assert "etc/ssl/certs/ca-certificates.crt" in names
    assert not [m.name for m in members if m.ischr() or m.isblk()]
    assert not [n for n in names if n.startswith("usr/share/man/") and not n.endswith("/")]
    docs = [m.name for m in members if m.isfile() and m.name.startswith("usr/share/doc/")]
    assert all(n.endswith("/copyright") for n in docs), docs[:5]
    assert all(m.uname == "" and m.mtime <= 1_700_000_000 for m in members)


def test_python_runs_in_the_base(base_image, run_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    require_root()
    root = layer_dirs(Store(run_settings.store_dir), base_image, run_settings)[0]  # the runtime layer
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    proc = subprocess.run([chroot, str(root), "python3", "-c",
                           "import ssl, venv, sys; print(sys.version_info[:2]); print(ssl.get_default_verify_paths().cafile)"],
                          capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert "(3, 11)" in proc.stdout


@pytest.mark.slow
def test_bootstrap_is_reproducible(base_image, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Same SOURCE_DATE_EPOCH, same mirror content: the same layer (umoci's test, for mmdebstrap)."""
    require_root()
    if os.environ.get("MLPACK_SKIP_REPRO") == "1":
        pytest.skip("MLPACK_SKIP_REPRO=1")
    from mlpack.oci.base import bootstrap

    again = bootstrap(Settings.from_env({"MLPACK_HOME": str(tmp_path / "home")}))
    assert again.diff_ids == base_image.diff_ids
    assert again.digest == base_image.digest
