"""Basic auth against a real docker-registry with htpasswd, credentials from docker's config.json."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mlpack.errors import RegistryError
from mlpack.oci.layer import Entry, write_entries
from mlpack.oci.layout import Store
from mlpack.oci.registry import pull, push
from mlpack.settings import Settings
from tests.plugins.oci import _free_port, write_htpasswd

pytestmark = pytest.mark.registry


@pytest.fixture
def auth_registry(tmp_path: Path):  # type: ignore[no-untyped-def]
    binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    if not Path(binary).exists():
        pytest.skip("docker-registry is not installed")
    write_htpasswd(tmp_path / "htpasswd", "alice", "s3cret")
    port = _free_port()
    (tmp_path / "config.yml").write_text(
        "version: 0.1\nlog:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        f"auth:\n  htpasswd:\n    realm: test-realm\n    path: {tmp_path / 'htpasswd'}\n")
    proc = subprocess.Popen([binary, "serve", str(tmp_path / "config.yml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                break
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("auth registry did not start")
        time.sleep(0.1)
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def _docker_config(path: Path, registry: str, user: str, password: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {registry: {"auth": auth}}}))
    return path


def test_basic_auth_from_docker_config(tmp_path: Path, auth_registry: str) -> None:
    good = Settings.from_env({"MLPACK_HOME": str(tmp_path / "a"), "DOCKER_CONFIG": str(tmp_path / "good")})
    _docker_config(tmp_path / "good/config.json", auth_registry, "alice", "s3cret")
    store = Store(good.store_dir)
    layer = write_entries(store, [Entry("f", data=b"secret image")])
    digest = store.put_image({}, [layer], ref="localhost/auth/img:1")
    assert push("localhost/auth/img:1", f"{auth_registry}/auth/img:1", settings=good) == digest
    fresh = Settings.from_env({"MLPACK_HOME": str(tmp_path / "b"), "DOCKER_CONFIG": str(tmp_path / "good")})
    assert pull(f"{auth_registry}/auth/img:1", settings=fresh).digest == digest

    bad = Settings.from_env({"MLPACK_HOME": str(tmp_path / "c"), "DOCKER_CONFIG": str(tmp_path / "bad")})
    _docker_config(tmp_path / "bad/config.json", auth_registry, "alice", "wrong")
    with pytest.raises(RegistryError) as err:
        pull(f"{auth_registry}/auth/img:1", settings=bad)
    assert err.value.status == 401 and err.value.registry == auth_registry
    anonymous = Settings.from_env({"MLPACK_HOME": str(tmp_path / "d"), "DOCKER_CONFIG": str(tmp_path / "none")})
    with pytest.raises(RegistryError, match="401"):
        pull(f"{auth_registry}/auth/img:1", settings=anonymous)
