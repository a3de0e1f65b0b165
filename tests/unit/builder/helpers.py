"""Helpers for builder tests: a context directory, a build, and reading layers back."""

from __future__ import annotations

import tarfile
from pathlib import Path

from mlpack.builder import build
from mlpack.oci.layout import Store
from mlpack.settings import Settings


class Ctx:
    """A build context directory plus a private mlpack home."""

    def __init__(self, root: Path, settings: Settings) -> None:
        self.root = root
        self.settings = settings
        self.events: list[object] = []

    def write(self, rel: str, text: str | bytes, mode: int | None = None) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        if mode is not None:
            path.chmod(mode)
        return path

    def build(self, dockerfile: str | None = None, **kw):  # type: ignore[no-untyped-def]
        if dockerfile is not None:
            self.write("Dockerfile", dockerfile)
        self.events = []
        kw.setdefault("tag", "localhost/test/img:1")
        kw.setdefault("source_date_epoch", 1_700_000_000)
        return build(self.root, settings=self.settings, progress=self.events.append, **kw)

    @property
    def store(self) -> Store:
        return Store(self.settings.store_dir)

    def layer_members(self, image, index: int = -1) -> dict[str, tarfile.TarInfo]:  # type: ignore[no-untyped-def]
        digest = image.layers[index]["digest"]
        with tarfile.open(self.store.blob_path(digest), "r:gz") as tar:
            return {m.name: m for m in tar.getmembers()}

    def layer_file(self, image, name: str, index: int = -1) -> bytes:  # type: ignore[no-untyped-def]
        digest = image.layers[index]["digest"]
        with tarfile.open(self.store.blob_path(digest), "r:gz") as tar:
            fh = tar.extractfile(name)
            assert fh is not None
            return fh.read()

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events]
