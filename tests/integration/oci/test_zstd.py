"""zstd layers end to end, as a user runs them: ``mlpack build --compression zstd``, push to a real
registry, pull into an empty home, run the pulled image in a real container; save/load as an OCI
archive; a docker-archive with zstd refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpack.oci.layout import Store
from mlpack.oci.media import OCI_LAYER_GZIP, OCI_LAYER_ZSTD
from mlpack.settings import Settings
from tests.integration.oci.test_cli import _cli
from tests.integration.runtime.test_network import get

pytestmark = [pytest.mark.registry, pytest.mark.runtime]
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def test_build_push_pull_run_zstd(tmp_path: Path, run_home: Path, busybox_httpd_image: str, local_registry,  # type: ignore[no-untyped-def]
                                  cleanup_containers) -> None:
    from mlpack.runtime import run

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "index.html").write_text("served from zstd layers\n")
    (ctx / "Dockerfile").write_text(f"FROM {busybox_httpd_image}\nCOPY index.html /www/index.html\n")
    _cli(run_home, "build", "--compression", "zstd", "-t", "localhost/zstd/web:1", str(ctx))
    built = Store(Settings.from_env({"MLPACK_HOME": str(run_home)}).store_dir).resolve("localhost/zstd/web:1")
    assert [l["mediaType"] for l in built.layers] == [OCI_LAYER_ZSTD] * len(built.layers) and len(built.layers) == 2

    remote = local_registry.ref("zstd/web:1")
    out = _cli(run_home, "push", "-q", "localhost/zstd/web:1", remote).stdout
    assert out.strip() == f"{remote}@{built.digest}"

    other = Settings.from_env({"MLPACK_HOME": str(tmp_path / "puller")})
    _cli(other.home, "pull", remote)
    pulled = Store(other.store_dir).resolve(remote)
    assert pulled.digest == built.digest and pulled.layers == built.layers
    assert Store(other.store_dir).read_blob(pulled.layers[-1]["digest"])[:4] == ZSTD_MAGIC

    runtime = Settings.from_env({"MLPACK_HOME": str(other.home), "MLPACK_RUNTIME": "crun"})
    c = run(pulled.digest, ports=["0:8080"], settings=runtime)
    cleanup_containers.append(c)
    assert get(c.url + "/index.html", timeout=60) == b"served from zstd layers\n"

    # push --compression gzip of the zstd image: a gzip copy with the same diff_ids
    _cli(run_home, "push", "-q", "--compression", "gzip", "localhost/zstd/web:1", local_registry.ref("zstd/web:gz"))
    _cli(other.home, "pull", local_registry.ref("zstd/web:gz"))
    gz = Store(other.store_dir).resolve(local_registry.ref("zstd/web:gz"))
    assert [l["mediaType"] for l in gz.layers] == [OCI_LAYER_GZIP] * 2 and gz.diff_ids == built.diff_ids


def test_save_and_load_zstd_archives(tmp_path: Path, run_home: Path, busybox_httpd_image: str) -> None:
    archive = tmp_path / "web.oci.tar"
    _cli(run_home, "save", "--compression", "zstd", "--format", "oci-archive", "-o", str(archive), busybox_httpd_image)
    other = Settings.from_env({"MLPACK_HOME": str(tmp_path / "loader")})
    assert f"Loaded image: {busybox_httpd_image}" in _cli(other.home, "load", "-i", str(archive)).stdout
    loaded = Store(other.store_dir).resolve(busybox_httpd_image)
    original = Store(Settings.from_env({"MLPACK_HOME": str(run_home)}).store_dir).resolve(busybox_httpd_image)
    assert [l["mediaType"] for l in loaded.layers] == [OCI_LAYER_ZSTD] and loaded.diff_ids == original.diff_ids
    refused = _cli(run_home, "save", "--compression", "zstd", "-o", str(tmp_path / "d.tar"), busybox_httpd_image, ok=False)
    assert refused.returncode != 0 and "docker-archive has no zstd" in refused.stderr
    assert not (tmp_path / "d.tar").exists()
