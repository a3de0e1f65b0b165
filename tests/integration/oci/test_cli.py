"""The docker-like commands, run as a user would: ``python -m mlpack ...``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlpack.oci.layer import Entry, write_entries
from mlpack.oci.layout import Store
from mlpack.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


def _cli(home: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MLPACK_HOME=str(home), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "mlpack", *args], env=env, capture_output=True, text=True, timeout=300)
    if ok:
        assert proc.returncode == 0, f"mlpack {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture
def home(tmp_path: Path) -> Path:
    settings = Settings.from_env({"MLPACK_HOME": str(tmp_path / "home")})
    store = Store(settings.store_dir)
    layer = write_entries(store, [Entry("hello.txt", data=b"hi")])
    store.put_image({"config": {"Cmd": ["cat", "/hello.txt"]}}, [layer], ref="localhost/cli/img:1")
    return settings.home


def test_images_tag_inspect_save_load_rmi_prune(tmp_path: Path, home: Path) -> None:
    out = _cli(home, "images").stdout
    assert "localhost/cli/img" in out and "1" in out
    _cli(home, "tag", "localhost/cli/img:1", "example.com/cli/img:2")
    listed = json.loads(_cli(home, "images", "--format", "json").stdout)
    assert {r["ref"] for r in listed} == {"localhost/cli/img:1", "example.com/cli/img:2"}
    doc = json.loads(_cli(home, "inspect", "--format", "json", "localhost/cli/img:1").stdout)
    assert doc["Config"]["config"]["Cmd"] == ["cat", "/hello.txt"]
    _cli(home, "save", "-o", str(tmp_path / "img.tar"), "localhost/cli/img:1")
    other = tmp_path / "other"
    assert "Loaded image: localhost/cli/img:1" in _cli(other, "load", "-i", str(tmp_path / "img.tar")).stdout
    assert "Untagged: localhost/cli/img:1" in _cli(home, "rmi", "localhost/cli/img:1").stdout
    _cli(home, "rmi", "example.com/cli/img:2")
    assert "checked 0 blobs: ok" in _cli(home, "system", "verify").stdout
    missing = _cli(home, "inspect", "localhost/cli/img:1", ok=False)
    assert missing.returncode == 1 and "mlpack images" in missing.stderr


def test_verify_exit_status_on_corruption(home: Path) -> None:
    store = Store(home / "store")
    image = store.resolve("localhost/cli/img:1")
    store.blob_path(image.layers[0]["digest"]).write_bytes(b"corrupt")
    proc = _cli(home, "system", "verify", ok=False)
    assert proc.returncode == 1 and "PROBLEM" in proc.stdout


def test_push_pull_through_the_cli(tmp_path: Path, home: Path, local_registry) -> None:  # type: ignore[no-untyped-def]
    ref = local_registry.ref("cli/img:1")
    pushed = _cli(home, "push", "localhost/cli/img:1", ref)
    digest = pushed.stdout.strip().rsplit("@", 1)[1]
    assert "pushed" in pushed.stderr
    pulled = _cli(tmp_path / "fresh", "pull", ref)
    assert pulled.stdout.strip().endswith(digest)
    bad = _cli(tmp_path / "fresh", "pull", local_registry.ref("cli/none:1"), ok=False)
    assert bad.returncode == 1 and "get manifest" in bad.stderr and "hint" in bad.stderr
