"""Session fixtures for building rendered contexts with buildah.

buildah runs as root with its own storage under the run home
(``--root``/``--runroot``, overlay driver, ``--isolation chroot``), so it never
touches the host's /var/lib/containers and every run starts clean. The base
is the offline base ``mlpack base bootstrap`` makes (localhost/mlpack/python:3.11,
Debian 12 python3 + python3-venv), built once per run by tests/plugins/oci.py
and copied into buildah's storage.

buildah 1.28 flags seen to work on this host (cgroup v1/v2 hybrid):
``--storage-driver overlay`` (vfs works too, slower) with ``--isolation chroot``
(what these tests use: RUN steps share the host network, so pip reaches PyPI
through the proxy), or ``--isolation oci --runtime runc``; ``--isolation oci``
with the default crun fails ("cgroups in hybrid mode not supported").
``--format docker`` keeps HEALTHCHECK (the OCI format drops it with a warning).
The proxy CA goes in as ``--secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt``;
without it the secret file is simply absent and pip uses its own CAs.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlpack.runtime.mounts import mounts_under

from tests.conftest import require_root, require_tool

LOCAL_BASE = "localhost/mlpack/python:3.11"
LOCAL_RUNTIME_BASE = LOCAL_BASE + "-runtime"  # what the runtime stage starts from
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
# Lean Debian: no docs, man pages or translations; usrmerge (and the perl it
# drags in) purged once /usr is merged. Same packages as `mlpack base bootstrap`.
MMDEBSTRAP_ARGS = [
    "--variant=apt",
    "--include=python3,python3-venv,ca-certificates,libstdc++6,libgomp1,usr-is-merged",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-include=/usr/share/locale/locale.alias",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    '--customize-hook=chroot "$1" dpkg --purge usrmerge libfile-find-rule-perl libnumber-compare-perl'
    " libtext-glob-perl perl libperl5.36 perl-modules-5.36",
    '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/log/*.log'
    ' "$1"/var/cache/ldconfig/aux-cache',
    "--format=tar",
    "bookworm",
]


@dataclass(frozen=True)
class Buildah:
    """buildah over a private storage under the run home."""

    root: Path
    runroot: Path

    def args(self, *args: str) -> list[str]:
        return ["buildah", "--root", str(self.root), "--runroot", str(self.runroot),
                "--storage-driver", "overlay", *args]

    def run(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(self.args(*args), capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"buildah {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
        return result

    def has_image(self, ref: str) -> bool:
        return self.run("inspect", "--type", "image", ref, check=False).returncode == 0

    def bud(self, context: Path, tag: str, log: Path, timeout: float = 1200) -> None:
        """buildah bud with the flags that work on this host; the proxy CA as a secret."""
        args = self.args(
            "bud", "--isolation", "chroot", "--layers", "--format", "docker",
            "--secret", f"id=ca-bundle,src={HOST_CA}", "-t", tag, str(context),
        )
        with log.open("w") as out:
            status = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, timeout=timeout).returncode
        if status != 0:
            raise AssertionError(f"buildah bud failed ({status}):\n{log.read_text()[-6000:]}")

    def inspect(self, ref: str) -> dict:
        return json.loads(self.run("inspect", "--type", "image", ref).stdout)


@pytest.fixture(scope="session")
def buildah(run_home: Path) -> Iterator[Buildah]:
    """buildah's storage for the run; at the end its containers and its overlay mounts
    go, so the run home can be removed and no mount is left on the host."""
    require_root()
    require_tool("buildah")
    root = run_home / "render-buildah"
    tool = Buildah(root=root / "storage", runroot=root / "run")
    yield tool
    tool.run("rm", "--all", check=False)
    for point in _mounts_under(root):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    leftover = _mounts_under(root)
    assert not leftover, f"buildah left mounts behind: {leftover}"


def _mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root``, deepest first."""
    return sorted(set(mounts_under(root)), key=lambda p: -p.count("/"))


@pytest.fixture(scope="session")
def local_base(request: pytest.FixtureRequest, buildah: Buildah, run_home: Path, run_settings) -> str:
    """localhost/mlpack/python:3.11 and its -runtime image in buildah's storage, made once per run.

    They are the images `mlpack base bootstrap` stores (tests/plugins/oci.py's
    ``base_image``), copied from mlpack's OCI layout store into buildah; only
    if that cannot be had does this make a similar one with mmdebstrap (one
    image under both names).
    """
    if buildah.has_image(LOCAL_BASE) and buildah.has_image(LOCAL_RUNTIME_BASE):
        return LOCAL_BASE
    try:
        request.getfixturevalue("base_image")
    except Exception as exc:  # a broken bootstrap must not hide what render can show
        warnings.warn(f"mlpack base bootstrap failed ({exc}); making the base with mmdebstrap here")
    else:
        from mlpack.oci.base import runtime_image
        from mlpack.oci.layout import Store

        runtime_image(Store(run_settings.store_dir), LOCAL_RUNTIME_BASE)
        for ref in (LOCAL_BASE, LOCAL_RUNTIME_BASE):
            result = buildah.run("pull", "-q", f"oci:{_lowercase_path(run_settings.store_dir)}:{ref}", check=False)
            if result.returncode != 0:
                warnings.warn(f"buildah could not read the bootstrapped {ref}: {result.stderr[-500:]}")
                break
            if not buildah.has_image(ref):
                buildah.run("tag", result.stdout.strip().splitlines()[-1], ref)
        else:
            return LOCAL_BASE
    return _mmdebstrap_base(buildah, run_home)


def _lowercase_path(path: Path) -> Path:
    """buildah names an image pulled from an OCI layout after the layout's path, and
    refuses upper case there (mktemp makes such names): go through a lower-case link."""
    if str(path) == str(path).lower():
        return path
    link = Path(tempfile.gettempdir()) / f"mlpack-store-{hashlib.sha256(str(path).encode()).hexdigest()[:16]}"
    if not link.is_symlink():
        link.symlink_to(path)
    return link


def _mmdebstrap_base(buildah: Buildah, run_home: Path) -> str:
    require_tool("mmdebstrap")
    tar = run_home / "cache" / "render-base" / "debian12-python3.tar"
    if not tar.exists():
        tar.parent.mkdir(parents=True, exist_ok=True)
        partial = tar.with_suffix(".partial")
        result = subprocess.run(["mmdebstrap", *MMDEBSTRAP_ARGS, str(partial)],
                                capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            pytest.skip(f"mmdebstrap could not make the base image (no Debian mirror?): {result.stderr[-800:]}")
        os.replace(partial, tar)
    container = buildah.run("from", "scratch").stdout.strip()
    try:
        buildah.run("add", container, str(tar), "/")
        buildah.run("config", "--cmd", "/usr/bin/python3", container)
        buildah.run("commit", "-q", container, LOCAL_BASE)
        buildah.run("tag", LOCAL_BASE, LOCAL_RUNTIME_BASE)
    finally:
        buildah.run("rm", container, check=False)
    return LOCAL_BASE


def _capture(path: Path, seed: int):
    import numpy as np

    pytest.importorskip("skl2onnx")
    from sklearn.linear_model import LogisticRegression

    from mlpack.bundle import Bundle, capture

    if (path / "mlpack.yaml").exists():
        return Bundle.load(path)
    rng = np.random.RandomState(seed)
    X = rng.rand(60, 4).astype("float32")
    y = (X[:, 0] + (0.1 * seed) * X[:, 1] > 0.5).astype("int64")
    model = LogisticRegression().fit(X, y)
    return capture(model, X[:5], name="iris-lr", path=path)


@pytest.fixture(scope="session")
def sklearn_bundles(run_home: Path) -> tuple:
    """Two scikit-learn ONNX bundles with the same lock and different weights."""
    root = run_home / "render-bundles"
    return _capture(root / "a", 0), _capture(root / "b", 3)
