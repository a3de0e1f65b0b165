"""`mlpack system prune` never removes the layers under a container."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpack.cli import main
from mlpack.oci.layer import write_dir
from mlpack.oci.layout import Store
from mlpack.runtime import run
from mlpack.types import Limits
from tests.plugins.runtime import busybox_config

pytestmark = [pytest.mark.runtime]


def test_prune_keeps_layers_of_a_running_container_whose_image_was_removed(
        busybox_rootfs: Path, tmp_path: Path, monkeypatch, cleanup_containers) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("MLPACK_HOME", str(home))
    from mlpack.settings import Settings

    settings = Settings.from_env({"MLPACK_HOME": str(home), "MLPACK_RUNTIME": "crun"})
    store = Store(settings.store_dir)
    store.init()
    layer = write_dir(store, busybox_rootfs)
    store.put_image({"config": busybox_config(Cmd=["sleep", "300"])}, [layer], ref="localhost/prune-me:1")
    c = run("localhost/prune-me:1", limits=Limits(pids=8), settings=settings)
    cleanup_containers.append(c)
    lowers = [Path(p) for p in c.record["lowerdirs"]]
    assert lowers and all(p.is_dir() for p in lowers)

    assert main(["rmi", "localhost/prune-me:1"]) == 0
    assert main(["system", "prune", "--grace", "0"]) == 0
    assert all(p.is_dir() for p in lowers), "prune removed a layer a container runs on"
    assert c.exec(["sh", "-c", "echo alive"]).stdout.strip() == "alive"

    c.stop(timeout=1)
    c.remove()
    cleanup_containers.remove(c)
    assert main(["system", "prune", "--grace", "0"]) == 0
    assert not any(p.exists() for p in lowers), "unused layers are pruned once no container needs them"
