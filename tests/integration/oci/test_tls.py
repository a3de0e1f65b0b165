"""Registries as users run them: TLS on 127.0.0.1 with a private CA in certs.d, basic auth, client certificates.

A real docker-registry serves TLS with a certificate from a CA the test makes
(openssl); the client finds the CA (and its client certificate) in
``$MLPACK_HOME/certs.d/127.0.0.1:PORT/`` as Docker would in
``/etc/docker/certs.d``, or through MLPACK_EXTRA_CA.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlpack.errors import RegistryError
from mlpack.oci.layer import Entry, write_entries
from mlpack.oci.layout import Store
from mlpack.oci.registry import pull, push
from mlpack.settings import Settings
from mlpack.oci.validate import verify
from tests.integration.oci.test_auth import _docker_config
from tests.plugins.oci import LocalRegistry, Pki, make_pki, start_registry, write_htpasswd

pytestmark = pytest.mark.registry


def _binary() -> str:
    binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    if not Path(binary).exists():
        pytest.skip("docker-registry is not installed")
    return binary


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_registry(tmp_path: Path, pki: Pki) -> Iterator[LocalRegistry]:
    with start_registry(tmp_path / "registry", _binary(), pki=pki, access_log=True) as registry:
        yield registry


def _image(settings: Settings, ref: str, text: bytes) -> str:
    store = Store(settings.store_dir)
    layer = write_entries(store, [Entry("app/data.txt", data=text * 1000)])
    return store.put_image({"config": {"Cmd": ["cat", "/app/data.txt"]}}, [layer], ref=ref)


def _certs_d(settings: Settings, host: str, *files: tuple[Path, str]) -> Path:
    directory = settings.home / "certs.d" / host
    directory.mkdir(parents=True, exist_ok=True)
    for src, name in files:
        shutil.copy(src, directory / name)
    return directory


def test_private_ca_in_certs_d_push_and_pull(tmp_path: Path, pki: Pki, tls_registry: LocalRegistry) -> None:
    settings = Settings.from_env({"MLPACK_HOME": str(tmp_path / "a")})
    digest = _image(settings, "localhost/tls/img:1", b"over tls ")
    # untrusted: fails at once (no retries, no fallback to plain HTTP) and names the certs.d path
    start = time.monotonic()
    with pytest.raises(RegistryError) as err:
        push("localhost/tls/img:1", tls_registry.ref("tls/img:1"), settings=settings)
    assert "not trusted" in err.value.message and err.value.registry == tls_registry.host
    assert str(settings.home / "certs.d" / tls_registry.host / "ca.crt") in (err.value.hint or "")
    assert time.monotonic() - start < 5  # not the 4 retries with backoff of a network error
    assert not any(method == "PUT" for method, _, _ in tls_registry.requests())

    _certs_d(settings, tls_registry.host, (pki.ca_cert, "ca.crt"))
    assert push("localhost/tls/img:1", tls_registry.ref("tls/img:1"), settings=settings) == digest
    # every request the registry saw came over TLS (a plain-HTTP request would be answered 400 and not logged)
    assert ("PUT", "/v2/tls/img/manifests/1", 201) in tls_registry.requests()

    fresh = Settings.from_env({"MLPACK_HOME": str(tmp_path / "b")})
    _certs_d(fresh, tls_registry.host, (pki.ca_cert, "ca.crt"))
    pulled = pull(tls_registry.ref("tls/img:1"), settings=fresh)
    assert pulled.digest == digest and verify(Store(fresh.store_dir)).ok

    # the system trust stays: a CA added for this host does not make public hosts unverifiable
    from mlpack.oci.trust import Trust

    ctx = Trust.from_settings(fresh).context(tls_registry.host)
    assert len(ctx.get_ca_certs()) > 1


def test_extra_ca_env_is_honoured_by_push_and_pull(tmp_path: Path, pki: Pki, tls_registry: LocalRegistry) -> None:
    settings = Settings.from_env({"MLPACK_HOME": str(tmp_path / "a"), "MLPACK_EXTRA_CA": str(pki.ca_cert)})
    digest = _image(settings, "localhost/tls/extra:1", b"extra ca ")
    assert push("localhost/tls/extra:1", tls_registry.ref("tls/extra:1"), settings=settings) == digest
    fresh = Settings.from_env({"MLPACK_HOME": str(tmp_path / "b"), "MLPACK_EXTRA_CA": str(pki.ca_cert)})
    assert pull(tls_registry.ref("tls/extra:1"), settings=fresh).digest == digest


def test_tls_with_basic_auth(tmp_path: Path, pki: Pki) -> None:
    write_htpasswd(tmp_path / "htpasswd", "alice", "s3cret")
    with start_registry(tmp_path / "registry", _binary(), pki=pki, htpasswd=tmp_path / "htpasswd",
                        access_log=True) as registry:
        env = {"MLPACK_HOME": str(tmp_path / "a"), "DOCKER_CONFIG": str(tmp_path / "good")}
        _docker_config(tmp_path / "good/config.json", registry.host, "alice", "s3cret")
        settings = Settings.from_env(env)
        _certs_d(settings, registry.host, (pki.ca_cert, "ca.crt"))
        digest = _image(settings, "localhost/tls/auth:1", b"tls and auth ")
        assert push("localhost/tls/auth:1", registry.ref("tls/auth:1"), settings=settings) == digest
        fresh = Settings.from_env({**env, "MLPACK_HOME": str(tmp_path / "b")})
        _certs_d(fresh, registry.host, (pki.ca_cert, "ca.crt"))
        assert pull(registry.ref("tls/auth:1"), settings=fresh).digest == digest
        anonymous = Settings.from_env({"MLPACK_HOME": str(tmp_path / "b"), "DOCKER_CONFIG": str(tmp_path / "none")})
        with pytest.raises(RegistryError) as err:
            pull(registry.ref("tls/auth:1"), settings=anonymous)
        assert err.value.status == 401


def test_client_certificate_from_certs_d(tmp_path: Path, pki: Pki) -> None:
    with start_registry(tmp_path / "registry", _binary(), pki=pki, client_certs=True) as registry:
        settings = Settings.from_env({"MLPACK_HOME": str(tmp_path / "a")})
        digest = _image(settings, "localhost/tls/mtls:1", b"mutual tls ")
        directory = _certs_d(settings, registry.host, (pki.ca_cert, "ca.crt"))
        with pytest.raises(RegistryError) as err:
            push("localhost/tls/mtls:1", registry.ref("tls/mtls:1"), settings=settings)
        assert "client certificate" in err.value.message and str(directory) in (err.value.hint or "")

        shutil.copy(pki.client_cert, directory / "client.cert")
        with pytest.raises(RegistryError, match="client.key"):  # half a pair is an error, as in Docker
            push("localhost/tls/mtls:1", registry.ref("tls/mtls:1"), settings=settings)
        shutil.copy(pki.client_key, directory / "client.key")
        assert push("localhost/tls/mtls:1", registry.ref("tls/mtls:1"), settings=settings) == digest
        fresh = Settings.from_env({"MLPACK_HOME": str(tmp_path / "b")})
        _certs_d(fresh, registry.host, (pki.ca_cert, "ca.crt"), (pki.client_cert, "client.cert"),
                 (pki.client_key, "client.key"))
        assert pull(registry.ref("tls/mtls:1"), settings=fresh).digest == digest


def test_plain_http_registry_on_loopback_still_works_after_a_tls_try(tmp_path: Path,
                                                                     local_registry: LocalRegistry) -> None:
    from mlpack.oci.registry import Client

    settings = Settings.from_env({"MLPACK_HOME": str(tmp_path / "a")})
    digest = _image(settings, "localhost/plain/img:1", b"plain ")
    client = Client(local_registry.host, "plain/img", settings)
    try:
        assert client.http.scheme == "https"
        assert not client.has_blob("sha256:" + "0" * 64)
        assert client.http.scheme == "http"  # the handshake got a plain-HTTP answer
    finally:
        client.close()
    assert push("localhost/plain/img:1", local_registry.ref("plain/img:1"), settings=settings) == digest


def test_plain_http_to_a_tls_registry_says_so(tmp_path: Path, tls_registry: LocalRegistry) -> None:
    from mlpack.oci.registry import Client

    settings = Settings.from_env({"MLPACK_HOME": str(tmp_path / "a")})
    client = Client(tls_registry.host, "tls/img", settings, plain_http=True)  # an http:// mirror entry
    try:
        with pytest.raises(RegistryError) as err:
            client.get_manifest("1")
    finally:
        client.close()
    assert err.value.status == 400 and "speaks HTTPS" in (err.value.hint or "")


def test_insecure_registry_skips_certificate_checks_as_docker_does(tmp_path: Path, tls_registry: LocalRegistry) -> None:
    settings = Settings.from_env({"MLPACK_HOME": str(tmp_path / "a"), "MLPACK_INSECURE_REGISTRIES": tls_registry.host})
    digest = _image(settings, "localhost/tls/insecure:1", b"insecure ")
    assert push("localhost/tls/insecure:1", tls_registry.ref("tls/insecure:1"), settings=settings) == digest
    # still TLS, not a fallback to plain HTTP: the registry logged the upload (it answers plain HTTP with 400 unlogged)
    assert ("PUT", "/v2/tls/insecure/manifests/1", 201) in tls_registry.requests()


def test_redirect_to_an_untrusted_tls_host_fails_at_once_naming_its_certs_d(tmp_path: Path, pki: Pki,
                                                                           tls_registry: LocalRegistry) -> None:
    """A plain registry on loopback redirects blob reads to TLS storage (here: the TLS registry) that is
    trusted only once its own certs.d entry exists: trust is per host, for redirect hops too."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from mlpack.oci.registry import Client

    class Redirect(BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None: ...

        def do_GET(self) -> None:
            self.send_response(307)
            self.send_header("Location", f"https://{tls_registry.host}/v2/")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host = f"127.0.0.1:{server.server_address[1]}"
        settings = Settings.from_env({"MLPACK_HOME": str(tmp_path / "a")})
        client = Client(host, "x", settings, plain_http=True)
        try:
            with pytest.raises(RegistryError) as err:
                client.http.request("GET", "/v2/x/blobs/sha256:" + "0" * 64, step="get blob")
        finally:
            client.close()
        assert tls_registry.host in err.value.message and "not trusted" in err.value.message
        assert str(settings.home / "certs.d" / tls_registry.host / "ca.crt") in (err.value.hint or "")

        _certs_d(settings, tls_registry.host, (pki.ca_cert, "ca.crt"))
        client = Client(host, "x", settings, plain_http=True)
        try:
            resp = client.http.request("GET", "/v2/x/blobs/sha256:" + "0" * 64, step="get blob")
            assert resp.status == 200 and resp.url == f"https://{tls_registry.host}/v2/"
            resp.close()
        finally:
            client.close()
    finally:
        server.shutdown()
        server.server_close()
