"""Finding 11: a hostile registry on 127.0.0.1 against mlpack's registry client.

The registry is a small real HTTP server in this process (it has to
misbehave in ways the CNCF registry never does): it redirects blob
downloads to plain HTTP elsewhere, to ``file://``, to itself behind Basic
auth, to another host name that records what it is sent, or trickles a blob
one byte at a time.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mlpack.errors import RegistryError
from mlpack.oci.layout import Store
from mlpack.oci.media import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, canonical_json
from mlpack.oci.registry import Client, pull
from mlpack.settings import Settings

USER, PASSWORD = "alice", "s3cret"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def _image() -> dict[str, bytes]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"hello\n"))
    layer = gzip.compress(buf.getvalue())
    cfg = canonical_json({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["true"]},
                          "rootfs": {"type": "layers",
                                     "diff_ids": ["sha256:" + hashlib.sha256(buf.getvalue()).hexdigest()]}})
    d = lambda b: "sha256:" + hashlib.sha256(b).hexdigest()  # noqa: E731
    manifest = canonical_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                               "config": {"mediaType": OCI_CONFIG, "digest": d(cfg), "size": len(cfg)},
                               "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": d(layer), "size": len(layer)}]})
    return {"manifest": manifest, d(cfg): cfg, d(layer): layer}


class Hostile(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.blobs = _image()
        self.mode = "plain"
        self.auth = False
        self.seen: list[tuple[str, str, str | None]] = []  # (Host header, path, Authorization)
        self.trickled = 0
        self.stopped = threading.Event()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Hostile

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        for item in {**(headers or {}), "Content-Length": str(len(body))}.items():
            self.send_header(*item)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        srv = self.server
        srv.seen.append((self.headers.get("Host", ""), self.path, self.headers.get("Authorization")))
        on_registry = self.headers.get("Host") == srv.host
        if srv.auth and on_registry and self.headers.get("Authorization") != BASIC:
            return self._send(401, b"{}", {"WWW-Authenticate": 'Basic realm="hostile"'})
        if self.path == "/v2/":
            return self._send(200, b"{}")
        if "/manifests/" in self.path:
            return self._send(200, srv.blobs["manifest"], {"Content-Type": OCI_MANIFEST})
        digest = self.path.rsplit("/", 1)[-1]
        if digest not in srv.blobs:
            return self._send(404)
        data = srv.blobs[digest]
        if self.path.startswith("/v2/") and srv.blobs[digest][:2] == b"\x1f\x8b":  # the layer blob
            port = srv.server_address[1]
            target = {"downgrade": f"http://192.0.2.7:{port}/store/{digest}",
                      "file": "file:///etc/passwd",
                      "same-host": f"/store/{digest}",
                      "cross-host": f"http://localhost:{port}/store/{digest}"}.get(srv.mode)
            if target:
                return self._send(307, b"", {"Location": target})
            if srv.mode == "trickle":
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                for byte in data:  # bounded: the blob's length; the client gives up long before
                    try:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    except OSError:
                        return
                    srv.trickled += 1
                    if srv.stopped.wait(0.05):
                        return
                return
        return self._send(200, data)


@pytest.fixture
def registry() -> Iterator[Hostile]:
    srv = Hostile()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.stopped.set()
    srv.shutdown()
    srv.server_close()


def _settings(tmp_path: Path, registry: Hostile, *, creds: bool = False) -> Settings:
    env = {"MLPACK_HOME": str(tmp_path / "home")}
    if creds:
        conf = tmp_path / "docker"
        conf.mkdir(parents=True)
        auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        (conf / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
        env["DOCKER_CONFIG"] = str(conf)
    return Settings.from_env(env)


def _blobs(settings: Settings) -> int:
    return len(list((settings.store_dir / "blobs" / "sha256").glob("*"))) if settings.store_dir.exists() else 0


def test_redirect_to_plain_http_elsewhere_is_refused(tmp_path: Path, registry: Hostile) -> None:
    registry.mode = "downgrade"
    settings = _settings(tmp_path, registry)
    with pytest.raises(RegistryError, match="redirected to plain-HTTP http://192.0.2.7") as err:
        pull(f"{registry.host}/evil/img:1", settings=settings)
    assert "MLPACK_INSECURE_REGISTRIES" in (err.value.hint or "")


def test_file_redirect_is_named_as_such(tmp_path: Path, registry: Hostile) -> None:
    registry.mode = "file"
    with pytest.raises(RegistryError, match="redirected to 'file:///etc/passwd', which is not an http"):
        pull(f"{registry.host}/evil/img:1", settings=_settings(tmp_path, registry))


def test_credentials_follow_a_same_host_redirect_and_never_another_host(tmp_path: Path, registry: Hostile) -> None:
    registry.auth, registry.mode = True, "same-host"
    settings = _settings(tmp_path / "a", registry, creds=True)
    pull(f"{registry.host}/evil/img:1", settings=settings)  # was a 401: the redirect dropped the credentials
    store_hits = [s for s in registry.seen if s[1].startswith("/store/")]
    assert store_hits and all(auth == BASIC for _, _, auth in store_hits)

    registry.seen.clear()
    registry.mode = "cross-host"
    other = _settings(tmp_path / "b", registry, creds=True)
    pull(f"{registry.host}/evil/img:1", settings=other)
    cross = [s for s in registry.seen if s[1].startswith("/store/")]
    assert cross and all(host.startswith("localhost:") and auth is None for host, _, auth in cross)


def test_a_trickling_blob_breaks_off_with_a_stall_error(tmp_path: Path, registry: Hostile) -> None:
    registry.mode = "trickle"
    settings = _settings(tmp_path, registry)
    store = Store(settings.store_dir)
    store.init()
    client = Client(registry.host, "evil/img", settings)
    client.http.stall_s, client.http.stall_min_bytes = 0.5, 64  # 20 bytes/s is far below 64 bytes per 0.5 s
    manifest = json.loads(client.get_manifest("1")[0])
    layer = manifest["layers"][0]
    with pytest.raises(RegistryError, match="stalled"):
        client.get_blob(store, layer, None)
    client.close()
    assert registry.trickled < layer["size"]  # it gave up mid-blob, not at the end
    assert not store.has_blob(layer["digest"])
