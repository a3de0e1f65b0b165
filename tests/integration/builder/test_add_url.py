"""ADD <url> is fetched only when pinned with --checksum (a local server on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlpack.errors import BuildError
from mlpack.settings import Settings
from tests.unit.builder.helpers import Ctx

PAYLOAD = b"pinned payload\n"


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "tool.bin").write_bytes(PAYLOAD)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):  # type: ignore[no-untyped-def]
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_add_url_with_checksum(tmp_path: Path, settings: Settings, file_server: str,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    root = tmp_path / "ctx"
    root.mkdir()
    ctx = Ctx(root, settings)
    good = "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()
    image = ctx.build(f"FROM scratch\nADD --checksum={good} {file_server}/tool.bin /opt/\n")
    member = ctx.layer_members(image)["opt/tool.bin"]
    assert ctx.layer_file(image, "opt/tool.bin") == PAYLOAD and member.mode == 0o600
    bad = "sha256:" + "0" * 64
    with pytest.raises(BuildError, match="--checksum says"):
        ctx.build(f"FROM scratch\nADD --checksum={bad} {file_server}/tool.bin /opt/\n")
    with pytest.raises(BuildError, match="refused without --checksum"):
        ctx.build(f"FROM scratch\nADD {file_server}/tool.bin /opt/\n")
