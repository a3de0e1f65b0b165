"""Push to and pull from a real docker-registry on 127.0.0.1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlpack.errors import RegistryError
from mlpack.oci.layer import Entry, write_entries
from mlpack.oci.layout import Store
from mlpack.oci.registry import PushOptions, pull, push
from mlpack.settings import Settings
from mlpack.oci.validate import verify

pytestmark = pytest.mark.registry


def _make_image(store: Store, ref: str, size: int = 3 << 20, seed: bytes = b"") -> str:
    layers = [
        write_entries(store, [Entry("data/random.bin", data=seed + os.urandom(size))]),
        write_entries(store, [Entry("app/hello.txt", data=b"hello " + seed)]),
    ]
    return store.put_image({"config": {"Cmd": ["cat", "/app/hello.txt"]}}, layers, ref=ref)


def test_push_then_pull_by_digest_into_empty_store(tmp_path: Path, local_registry) -> None:  # type: ignore[no-untyped-def]
    src = Settings.from_env({"MLPACK_HOME": str(tmp_path / "a")})
    store = Store(src.store_dir)
    digest = _make_image(store, "localhost/t/rt:1")
    events: list[tuple[str, str, int, int]] = []
    pushed = push("localhost/t/rt:1", local_registry.ref("t/rt:1"), settings=src,
                  progress=lambda *e: events.append(e))
    assert pushed == digest
    assert any(e[0] == "transfer" for e in events)
    again: list[tuple[str, str, int, int]] = []
    assert push("localhost/t/rt:1", local_registry.ref("t/rt:1"), settings=src, progress=lambda *e: again.append(e)) == digest
    assert {e[0] for e in again} == {"skip"}  # HEAD finds every blob

    dst = Settings.from_env({"MLPACK_HOME": str(tmp_path / "b")})
    image = pull(local_registry.ref(f"t/rt@{digest}"), settings=dst)
    assert image.digest == digest
    original = store.resolve(digest)
    assert image.diff_ids == original.diff_ids and image.layers == original.layers
    assert verify(Store(dst.store_dir)).ok
    by_tag = pull(local_registry.ref("t/rt:1"), settings=dst)
    assert by_tag.digest == digest and by_tag.ref == local_registry.ref("t/rt:1")


def test_chunked_upload_and_cross_repo_mount(tmp_path: Path, local_registry) -> None:  # type: ignore[no-untyped-def]
    settings = Settings.from_env({"MLPACK_HOME": str(tmp_path / "a")})
    store = Store(settings.store_dir)
    digest = _make_image(store, "localhost/t/chunked:1", size=5 << 20, seed=b"chunk")
    events: list[tuple[str, str, int, int]] = []
    assert push("localhost/t/chunked:1", local_registry.ref("t/chunked:1"), settings=settings,
                options=PushOptions(chunk_size=1 << 20), progress=lambda *e: events.append(e)) == digest
    transfers = [e for e in events if e[0] == "transfer"]
    assert transfers and transfers[-1][2] <= transfers[-1][3]
    events.clear()
    assert push("localhost/t/chunked:1", local_registry.ref("t/other:1"), settings=settings,
                options=PushOptions(mount_from=("t/chunked",)), progress=lambda *e: events.append(e)) == digest
    assert {e[0] for e in events} == {"mount"}
    fresh = Settings.from_env({"MLPACK_HOME": str(tmp_path / "b")})
    assert pull(local_registry.ref("t/other:1"), settings=fresh).digest == digest


def test_unknown_image_and_dead_registry(tmp_path: Path, local_registry) -> None:  # type: ignore[no-untyped-def]
    settings = Settings.from_env({"MLPACK_HOME": str(tmp_path / "a")})
    with pytest.raises(RegistryError) as err:
        pull(local_registry.ref("t/nothing:1"), settings=settings)
    assert err.value.registry == local_registry.host and err.value.step == "get manifest"
    from mlpack.oci import registry as reg

    client = reg.Client("127.0.0.1:9", "x", settings)
    client.http.retries, client.http.backoff_s = 2, 0.01
    with pytest.raises(RegistryError) as err:
        client.get_manifest("latest")
    assert err.value.step == "get manifest" and err.value.registry == "127.0.0.1:9"


def test_docker_hub_names_go_to_the_mirror(tmp_path: Path, local_registry) -> None:  # type: ignore[no-untyped-def]
    settings = Settings.from_env({"MLPACK_HOME": str(tmp_path / "a")})
    store = Store(settings.store_dir)
    digest = _make_image(store, "localhost/t/mirrored:1", size=1000, seed=b"mirror")
    push("localhost/t/mirrored:1", local_registry.ref("library/mirrortest:3"), settings=settings)
    mirrored = Settings.from_env({"MLPACK_HOME": str(tmp_path / "b"),
                                  "MLPACK_REGISTRY_MIRRORS": f"http://{local_registry.host}"})
    image = pull("mirrortest:3", settings=mirrored)
    assert image.digest == digest and image.ref == "docker.io/library/mirrortest:3"
