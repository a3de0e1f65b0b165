"""Session fixtures for the oci side of the suite.

``local_registry``: a real ``docker-registry`` (CNCF distribution, Debian
package) on 127.0.0.1 with a free port and a temporary storage directory,
stopped at the end of the run. ``base_image``: the bootstrapped Debian
python base image in the run store, made once per run (mmdebstrap) and
reused by every test, and by later runs sharing MLPACK_TEST_HOME.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlpack.settings import Settings


@dataclass(frozen=True)
class LocalRegistry:
    host: str          # "127.0.0.1:PORT", usable in references
    storage: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def ref(self, name: str) -> str:
        return f"{self.host}/{name}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def start_registry(work: Path, binary: str = "/usr/bin/docker-registry") -> Iterator[LocalRegistry]:
    """Run docker-registry on 127.0.0.1:<free port> with storage in ``work``; stop it on exit."""
    work.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    config = work / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {work / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log = work / "registry.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([binary, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield LocalRegistry(f"127.0.0.1:{port}", work / "data", log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def local_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """A real docker-registry process on 127.0.0.1 for the whole run."""
    binary = shutil.which("docker-registry") or ("/usr/bin/docker-registry" if os.path.exists("/usr/bin/docker-registry") else None)
    if binary is None:
        pytest.skip("docker-registry is not installed; tests/run.sh installs it (apt-get install docker-registry)")
    try:
        with start_registry(tmp_path_factory.mktemp("registry"), binary) as registry:
            yield registry
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def base_image(run_settings: Settings):  # type: ignore[no-untyped-def]
    """The bootstrapped python base image (localhost/mlpack/python:3.11) in the run store, built once."""
    from mlpack.errors import ImageNotFound
    from mlpack.oci.base import BASE_REF, bootstrap
    from mlpack.oci.layout import Store

    store = Store(run_settings.store_dir)
    try:
        return store.resolve(BASE_REF)
    except ImageNotFound:
        pass
    if os.geteuid() != 0:
        pytest.skip("mmdebstrap needs root here")
    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap is not installed; tests/run.sh installs it")
    # several xdist-free processes may share one run home: one bootstraps, the others wait
    import fcntl

    run_settings.home.mkdir(parents=True, exist_ok=True)
    with open(run_settings.home / ".base-bootstrap.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return store.resolve(BASE_REF)
        except ImageNotFound:
            return bootstrap(run_settings)


@pytest.fixture(scope="session")
def python_base_image(base_image):  # type: ignore[no-untyped-def]
    """Alias of ``base_image`` (the name tests/plugins/images.py asks for)."""
    return base_image
