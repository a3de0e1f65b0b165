"""Real images from the store: the python base image and the sklearn serving image."""

from __future__ import annotations

import pytest

from mlpack.endpoint import wait_ready
from mlpack.runtime import run
from mlpack.types import Limits
from tests.integration.runtime.test_network import get

pytestmark = [pytest.mark.runtime, pytest.mark.slow]


def test_python_server_in_the_base_image(runtime_settings, base_image, cleanup_containers):
    ref = base_image.ref or base_image.digest
    c = run(ref, command=["python3", "-m", "http.server", "8000", "--bind", "127.0.0.1", "--directory", "/etc"],
            ports=["0:8000"], limits=Limits(cpus=1, memory="128m", pids=32), settings=runtime_settings)
    cleanup_containers.append(c)
    assert b"os-release" in get(c.url, timeout=60)
    r = c.exec(["python3", "-c", "import os; open('/x', 'w')"])
    assert r.returncode != 0 and "Read-only file system" in r.stderr
    s = c.stats(interval=0.2)
    assert s["memory_limit"] == 128 * 1024**2 and 0 < s["memory_usage"] < s["memory_limit"]


def test_serving_image_answers_under_limits(runtime_settings, serving_image, cleanup_containers):
    c = run(serving_image.ref or serving_image.digest, limits=Limits(cpus=1, memory="512m", pids=64),
            settings=runtime_settings)  # ports=None: its EXPOSEd port on a free host port
    cleanup_containers.append(c)
    assert c.url is not None
    wait_ready(c, timeout=120)
    if c.record.get("healthcheck"):  # its first check runs after the image's interval (30 s): not waited for
        assert c.health in ("starting", "healthy")
    st = c.stats(interval=0.2)
    assert st["memory_usage"] < 512 * 1024**2 and st["pids"] <= 64
