"""The registry client's HTTP protocol: bearer tokens, redirects without Authorization, retries.

A tiny registry and token server on 127.0.0.1 (threads in this process)
speak just enough of the distribution protocol to exercise the client.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mlpack.errors import RegistryError
from mlpack.oci.media import OCI_CONFIG, OCI_LAYER_TAR, OCI_MANIFEST
from mlpack.oci.registry import pull
from mlpack.oci.transport import Transport, is_loopback
from mlpack.settings import Settings

LAYER = b"layer-bytes" * 100


def _d(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


CONFIG = json.dumps({"architecture": "amd64", "os": "linux",
                     "rootfs": {"type": "layers", "diff_ids": [_d(LAYER)]}}).encode()
MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": {"mediaType": OCI_CONFIG, "digest": _d(CONFIG), "size": len(CONFIG)},
                       "layers": [{"mediaType": OCI_LAYER_TAR, "digest": _d(LAYER), "size": len(LAYER)}]}).encode()


class World:
    def __init__(self) -> None:
        self.seen_auth_on_cdn: list[str | None] = []
        self.token_requests: list[str] = []
        self.failures_left = 0


def _serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def world() -> Iterator[tuple[World, str]]:
    w = World()

    class CDN(BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None: ...

        def do_GET(self) -> None:
            w.seen_auth_on_cdn.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.send_header("Content-Length", str(len(LAYER)))
            self.end_headers()
            self.wfile.write(LAYER)

    cdn = _serve(CDN)

    class Registry(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: object) -> None: ...

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            host = f"127.0.0.1:{self.server.server_address[1]}"
            if self.path.startswith("/token"):
                w.token_requests.append(self.path)
                creds = base64.b64encode(b"bob:pw").decode()
                if self.headers.get("Authorization") != f"Basic {creds}":
                    return self._send(401)
                return self._send(200, json.dumps({"token": "T0K"}).encode())
            if w.failures_left > 0:
                w.failures_left -= 1
                return self._send(503, b"busy")
            if self.headers.get("Authorization") != "Bearer T0K":
                return self._send(401, b"{}", {"WWW-Authenticate":
                                  f'Bearer realm="http://{host}/token",service="test",scope="repository:team/app:pull"'})
            if self.path == "/v2/team/app/manifests/v1":
                return self._send(200, MANIFEST, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": _d(MANIFEST)})
            if self.path == f"/v2/team/app/blobs/{_d(CONFIG)}":
                return self._send(200, CONFIG)
            if self.path == f"/v2/team/app/blobs/{_d(LAYER)}":
                return self._send(307, b"", {"Location": f"http://127.0.0.1:{cdn.server_address[1]}/blob"})
            return self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')

    reg = _serve(Registry)
    yield w, f"127.0.0.1:{reg.server_address[1]}"
    reg.shutdown()
    cdn.shutdown()


def _settings(tmp_path: Path, registry: str) -> Settings:
    cfg = tmp_path / "docker"
    cfg.mkdir()
    (cfg / "config.json").write_text(json.dumps({"auths": {registry: {"auth": base64.b64encode(b"bob:pw").decode()}}}))
    return Settings.from_env({"MLPACK_HOME": str(tmp_path / "home"), "DOCKER_CONFIG": str(cfg)})


def test_bearer_token_and_redirect_without_authorization(tmp_path: Path, world: tuple[World, str]) -> None:
    w, registry = world
    image = pull(f"{registry}/team/app:v1", settings=_settings(tmp_path, registry))
    assert image.digest == _d(MANIFEST) and image.diff_ids == [_d(LAYER)]
    assert w.token_requests and "scope=repository%3Ateam%2Fapp%3Apull" in w.token_requests[0]
    assert w.seen_auth_on_cdn == [None]  # the token never followed the redirect


def test_retries_then_succeeds(tmp_path: Path, world: tuple[World, str]) -> None:
    w, registry = world
    w.failures_left = 2
    assert pull(f"{registry}/team/app:v1", settings=_settings(tmp_path, registry)).digest == _d(MANIFEST)


def test_gives_up_with_registry_and_step(tmp_path: Path, world: tuple[World, str]) -> None:
    w, registry = world
    w.failures_left = 100
    t = Transport(registry, retries=2, backoff_s=0.001)
    with pytest.raises(RegistryError) as err:
        t.request("GET", "/v2/team/app/manifests/v1", step="get manifest")
    assert err.value.registry == registry and err.value.step == "get manifest" and err.value.status == 503


def test_https_first_plain_http_fallback_only_for_loopback_or_insecure() -> None:
    for host in ("127.0.0.1:5000", "localhost:5000", "[::1]:5000", "registry.example.com", "10.0.0.5:5000"):
        assert Transport(host).scheme == "https"
    assert Transport("127.0.0.1:5000").may_fall_back and Transport("[::1]:5000").may_fall_back
    assert not Transport("registry.example.com").may_fall_back and not Transport("10.0.0.5:5000").may_fall_back
    assert Transport("10.0.0.5:5000", insecure=True).may_fall_back
    assert Transport("10.0.0.5:5000", plain_only=True).scheme == "http"
    assert is_loopback("127.1.2.3") and not is_loopback("example.com")
