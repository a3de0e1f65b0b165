"""A linux/arm64 model image built on this amd64 machine, without qemu and without RUN.

``mlpack base bootstrap --platform linux/arm64`` extracts Debian's arm64
packages (mmdebstrap --variant=extract; no maintainer script runs) into the
offline base; ``mlpack build --platform linux/arm64 BUNDLE`` takes that base,
installs the lock's aarch64 wheels itself (deps=context) and records arm64 in
the image. Checked by what the image holds, not by what mlpack says: the
config's platform, the ELF machine of every binary (aarch64 is e_machine
183) and the Tag lines of every installed wheel. It has its own home, so the
run store's base keeps its one platform; the .debs and wheels come from the
Debian mirror and the package index, as CI reaches them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

import pytest

from mlpack.oci.base import BASE_REF, host_apt_sources
from mlpack.oci.layout import Store
from mlpack.oci.media import REF_NAME
from mlpack.settings import Settings
from tests.conftest import require_tool

pytestmark = [pytest.mark.build, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
ARM64 = ("linux", "arm64")
TAG = "localhost/mlpack-test/sklearn-arm64:1"
EM_AARCH64 = 183
TIMES: dict[str, float] = {}


def _mlpack(home: Path, *argv: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLPACK_HOME": str(home), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "mlpack", *argv], capture_output=True, text=True, timeout=timeout,
                          env=env, stdin=subprocess.DEVNULL)


def _mirror_problem() -> str | None:
    """Why no host Debian mirror answers (None when one does)."""
    uris = []
    for path in host_apt_sources():
        text = Path(path).read_text()
        uris += re.findall(r"^URIs:\s*(\S+)", text, re.M) + re.findall(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)", text, re.M)
    errors = []
    for uri in [u for u in uris if u.startswith("http") and "security" not in u][:3]:
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/dists/bookworm/Release", timeout=20) as resp:
                resp.read(64)
            return None
        except OSError as exc:
            errors.append(f"{uri}: {exc}")
    return "; ".join(errors) or "no http Debian source in the host's apt sources"


@pytest.fixture(scope="module")
def arm_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose store holds the arm64 offline base, bootstrapped by the CLI."""
    require_tool("mmdebstrap")
    if os.uname().machine != "x86_64":
        pytest.skip("the test builds for a foreign architecture from an x86_64 host")
    problem = _mirror_problem()
    if problem:
        pytest.skip(f"the Debian mirror is unreachable ({problem})")
    home = tmp_path_factory.mktemp("arm64-home")
    started = time.monotonic()
    out = _mlpack(home, "base", "bootstrap", "--platform", "linux/arm64")
    TIMES["bootstrap"] = time.monotonic() - started
    assert out.returncode == 0, out.stderr[-3000:]
    return home


@pytest.fixture(scope="module")
def arm_image(arm_home: Path, sklearn_bundle):  # type: ignore[no-untyped-def]
    """The sklearn ONNX bundle built for linux/arm64 (deps=auto takes context: no RUN can run for arm64)."""
    started = time.monotonic()
    out = _mlpack(arm_home, "build", "--platform", "linux/arm64", str(sklearn_bundle.path), "-t", TAG)
    TIMES["build"] = time.monotonic() - started
    assert out.returncode == 0, out.stderr[-3000:]
    assert "the image is for linux/arm64" in out.stderr and "deps=context" in out.stderr, out.stderr[-2000:]
    store = Store(Settings.from_env({"MLPACK_HOME": str(arm_home)}).store_dir)
    image = store.resolve(TAG, platform=ARM64)
    print(f"\narm64 base bootstrap {TIMES['bootstrap']:.1f}s, arm64 build {TIMES['build']:.1f}s, "
          f"image {image.size / 1e6:.1f} MB compressed")
    return store, image


def _members(store: Store, digest: str):  # type: ignore[no-untyped-def]
    """(name, first 20 bytes or the whole WHEEL file) of each regular file of a layer."""
    with tarfile.open(fileobj=store.open_blob(digest), mode="r|*") as tar:
        for member in tar:
            if member.isfile():
                fh = tar.extractfile(member)
                assert fh is not None
                yield member.name, fh.read() if member.name.endswith(".dist-info/WHEEL") else fh.read(20)


def test_the_base_is_an_arm64_debian_tree(arm_home: Path) -> None:
    store = Store(Settings.from_env({"MLPACK_HOME": str(arm_home)}).store_dir)
    base = store.resolve(BASE_REF, platform=ARM64)
    assert (base.config.os, base.config.architecture) == ARM64
    files = dict(_members(store, base.layers[0]["digest"]))
    assert files["usr/bin/python3.11"][:4] == b"\x7fELF"
    assert int.from_bytes(files["usr/bin/python3.11"][18:20], "little") == EM_AARCH64
    from mlpack.builder.rootfs import LayerDirs, RootView
    from mlpack.oci.layout import Layer

    view = RootView([Layer(d["digest"], int(d["size"]), diff, d.get("mediaType", ""))
                     for d, diff in zip(base.layers, base.diff_ids)], LayerDirs(Settings.from_env(
                         {"MLPACK_HOME": str(arm_home)}), store))
    # base-passwd's master files (locked: '*', no shadow file; no login happens in a model image)
    assert (view.read_file("/etc/passwd") or b"").startswith(b"root:*:0:0:root:/root:")
    assert b"\nnogroup:" in (view.read_file("/etc/group") or b"")
    status = (view.read_file("/var/lib/dpkg/status") or b"").decode()
    assert re.search(r"^Package: libc6\n(?:.+\n)*?Architecture: arm64$", status, re.M), status[:2000]
    # asked again, the CLI finds it (no second bootstrap)
    again = _mlpack(arm_home, "base", "bootstrap", "--platform", "linux/arm64", timeout=120)
    assert again.returncode == 0 and "(linux/arm64) is already in the store" in again.stdout, again



def test_the_arm64_base_is_reproducible(arm_home: Path, tmp_path: Path) -> None:
    """A second bootstrap elsewhere (same epoch, same mirror content) gives the same manifest."""
    first = Store(Settings.from_env({"MLPACK_HOME": str(arm_home)}).store_dir).resolve(BASE_REF, platform=ARM64)
    out = _mlpack(tmp_path / "home", "base", "bootstrap", "--platform", "linux/arm64")
    assert out.returncode == 0, out.stderr[-2000:]
    second = Store(Settings.from_env({"MLPACK_HOME": str(tmp_path / "home")}).store_dir).resolve(BASE_REF, platform=ARM64)
    assert second.diff_ids == first.diff_ids and second.digest == first.digest


def test_the_image_says_arm64(arm_image) -> None:  # type: ignore[no-untyped-def]
    store, image = arm_image
    blob = store.read_json(image.manifest["config"]["digest"])
    assert (blob["os"], blob["architecture"], blob.get("variant")) == ("linux", "arm64", "v8")
    entry = next(e for e in store.index()["manifests"] if (e.get("annotations") or {}).get(REF_NAME) == TAG)
    assert entry["platform"]["architecture"] == "arm64"
    history = [h.get("created_by", "") for h in image.config.history]
    assert "COPY --from=deps / /opt/venv/" in history
    assert not [h for h in history if h.startswith("RUN") or "/bin/sh -c" in h], history


def test_every_binary_is_aarch64_and_every_wheel_tag_aarch64_or_any(arm_image) -> None:  # type: ignore[no-untyped-def]
    store, image = arm_image
    machines: dict[str, int] = {}
    tags: dict[str, list[str]] = {}
    deps_elves = 0
    for desc in image.layers:
        for name, head in _members(store, desc["digest"]):
            if head[:4] == b"\x7fELF":
                machines[name] = int.from_bytes(head[18:20], "little")
                deps_elves += name.startswith("opt/venv/")
            if name.endswith(".dist-info/WHEEL"):
                tags[name] = [line.split(":", 1)[1].strip() for line in head.decode().splitlines()
                              if line.startswith("Tag:")]
    assert deps_elves >= 10, machines  # numpy's and onnxruntime's extension modules at least
    assert {n: m for n, m in machines.items() if m != EM_AARCH64} == {}
    assert any("numpy-" in n for n in tags) and any("onnxruntime-" in n for n in tags), sorted(tags)
    for name, lines in tags.items():
        assert lines, name
        for tag in lines:
            platform = tag.rsplit("-", 1)[-1]
            assert "x86_64" not in tag and (platform == "any" or platform.endswith("_aarch64")), (name, tag)
    assert any(t.endswith("_aarch64") for lines in tags.values() for t in lines)


def test_run_and_deps_run_are_refused_for_arm64(arm_home: Path, sklearn_bundle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "Dockerfile").write_text(f"FROM {BASE_REF}\nRUN python3 -c 'print(1)'\n")
    out = _mlpack(arm_home, "build", "--platform", "linux/arm64", str(tmp_path), "-t", "localhost/mlpack-test/arm-run:1",
                  timeout=300)
    assert out.returncode != 0
    assert "RUN cannot run for linux/arm64: this machine is linux/amd64" in out.stderr, out.stderr[-2000:]
    out = _mlpack(arm_home, "build", "--platform", "linux/arm64", "--deps", "run", str(sklearn_bundle.path),
                  "-t", "localhost/mlpack-test/arm-depsrun:1", timeout=300)
    assert out.returncode != 0 and "deps=run cannot build a linux/arm64 image here" in out.stderr, out.stderr[-2000:]
    store = Store(Settings.from_env({"MLPACK_HOME": str(arm_home)}).store_dir)
    refs = {(e.get("annotations") or {}).get(REF_NAME) for e in store.index()["manifests"]}
    assert not refs & {"localhost/mlpack-test/arm-run:1", "localhost/mlpack-test/arm-depsrun:1"}


def test_render_for_arm64_gives_the_platform_to_every_builder(arm_home: Path, arm_image, sklearn_bundle,  # type: ignore[no-untyped-def]
                                                             tmp_path: Path) -> None:
    out = _mlpack(arm_home, "render", str(sklearn_bundle.path), "-o", str(tmp_path / "ctx"), "--base", "local",
                  "--deps", "context", "--platform", "linux/arm64", timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    header = (tmp_path / "ctx" / "Dockerfile").read_text()
    assert "docker buildx build --platform linux/arm64 --build-context deps=deps ." in header
    assert "buildah bud --platform linux/arm64 --build-context deps=deps ." in header
    extensions = list((tmp_path / "ctx" / "deps").rglob("*.so"))
    assert extensions and all(p.read_bytes()[18:20] == EM_AARCH64.to_bytes(2, "little") for p in extensions)
