"""Session fixtures for the oci side of the suite.

``local_registry``: a real ``docker-registry`` (CNCF distribution, Debian
package) on 127.0.0.1 with a free port and a temporary storage directory,
stopped at the end of the run. ``start_registry`` also runs one with TLS
(a private CA made by :func:`make_pki` with openssl, optionally wanting a
client certificate), basic auth (htpasswd) and an access log (one line per
request, what tests count requests with). ``base_image``: the bootstrapped Debian
python base image in the run store, made once per run (mmdebstrap) and
reused by every test, and by later runs sharing MLPACK_TEST_HOME.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import re
import socket
import ssl
import subprocess
import time
import urllib.error
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
    tls: bool = False

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def ref(self, name: str) -> str:
        return f"{self.host}/{name}"

    def requests(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request so far (needs ``access_log=True``)."""
        text = self.log.read_text(errors="replace")
        return [(m, p, int(st)) for m, p, st in re.findall(r'"([A-Z]+) (\S+) HTTP/[0-9.]+" (\d{3})', text)]


@dataclass(frozen=True)
class Pki:
    """A private CA, a server certificate for 127.0.0.1/localhost and a client certificate, in PEM files."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_pki(work: Path) -> Pki:
    """Make a CA and two certificates it signs (EC keys, valid two days) with the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (apt-get install openssl)")
    work.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", str(work / "ca.key"), "-out", str(work / "ca.crt"), "-days", "2",
             "-subj", "/CN=mlpack test CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
                      ("client", "extendedKeyUsage=clientAuth")):
        _openssl("req", *ec, "-keyout", str(work / f"{name}.key"), "-out", str(work / f"{name}.csr"),
                 "-subj", f"/CN=mlpack test {name}")
        (work / f"{name}.ext").write_text(ext + "\n")
        _openssl("x509", "-req", "-in", str(work / f"{name}.csr"), "-CA", str(work / "ca.crt"),
                 "-CAkey", str(work / "ca.key"), "-CAcreateserial", "-out", str(work / f"{name}.crt"),
                 "-days", "2", "-extfile", str(work / f"{name}.ext"))
    return Pki(work / "ca.crt", work / "server.crt", work / "server.key", work / "client.crt", work / "client.key")


def write_htpasswd(path: Path, user: str, password: str) -> Path:
    """An htpasswd file with one bcrypt entry (what docker-registry's htpasswd auth wants), cost 4: fast tests."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # bcrypt through libxcrypt

        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    path.write_text(f"{user}:{hashed}\n")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def start_registry(work: Path, binary: str = "/usr/bin/docker-registry", *, pki: Pki | None = None,
                   client_certs: bool = False, htpasswd: Path | None = None,
                   access_log: bool = False) -> Iterator[LocalRegistry]:
    """Run docker-registry on 127.0.0.1:<free port> with storage in ``work``; stop it on exit.

    ``pki``: serve TLS with its server certificate (and want a client certificate signed by its CA
    when ``client_certs``); ``htpasswd``: basic auth; ``access_log``: log every request.
    """
    work.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    config = work / "config.yml"
    text = ("version: 0.1\n"
            f"log:\n  level: warn\n  accesslog:\n    disabled: {'false' if access_log else 'true'}\n"
            f"storage:\n  filesystem:\n    rootdirectory: {work / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{port}\n")
    ctx = None
    if pki is not None:
        text += f"  tls:\n    certificate: {pki.server_cert}\n    key: {pki.server_key}\n"
        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        if client_certs:
            text += f"    clientcas:\n      - {pki.ca_cert}\n"
            ctx.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    if htpasswd is not None:
        text += f"auth:\n  htpasswd:\n    realm: test-realm\n    path: {htpasswd}\n"
    config.write_text(text)
    scheme = "https" if pki else "http"
    log = work / "registry.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([binary, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}/v2/", timeout=1, context=ctx) as resp:
                    if resp.status == 200:
                        break
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and htpasswd is not None:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield LocalRegistry(f"127.0.0.1:{port}", work / "data", log, tls=pki is not None)
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
    from mlpack.oci.base import bootstrap, current
    from mlpack.oci.layout import Store

    store = Store(run_settings.store_dir)
    # a base made by an older recipe (other trims) is bootstrapped again
    if (image := current(store)) is not None:
        return image
    if os.geteuid() != 0:
        pytest.skip("mmdebstrap needs root here")
    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap is not installed; tests/run.sh installs it")
    # several xdist-free processes may share one run home: one bootstraps, the others wait
    import fcntl

    run_settings.home.mkdir(parents=True, exist_ok=True)
    with open(run_settings.home / ".base-bootstrap.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return current(store) or bootstrap(run_settings)


@pytest.fixture(scope="session")
def python_base_image(base_image):  # type: ignore[no-untyped-def]
    """Alias of ``base_image`` (the name tests/plugins/images.py asks for)."""
    return base_image
