"""The manifest file ``mlpack.yaml``: writing, reading and verifying it.

The manifest lists the sha256 of every other file of the bundle and a
``digest`` of its own content (canonical JSON of everything but the digest),
so a bundle edited by hand, in its files or in the manifest, fails to load.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import yaml

from mlpack.errors import BundleError

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "sha256_file",
    "manifest_digest",
    "write_manifest",
    "read_manifest",
    "verify_files",
]

FORMAT_VERSION = 1
MANIFEST_NAME = "mlpack.yaml"
_REQUIRED_KEYS = ("format_version", "name", "flavor", "framework", "model", "inputs", "outputs", "files", "digest")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of the manifest without its digest."""
    body = {k: v for k, v in manifest.items() if k != "digest"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def write_manifest(directory: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Adds the digest and writes ``mlpack.yaml`` (fsynced) into ``directory``."""
    manifest = dict(manifest)
    manifest["digest"] = manifest_digest(manifest)
    text = yaml.safe_dump(manifest, sort_keys=False, default_flow_style=None, width=100)
    # The written YAML must read back to the same digest (floats, tuples ...).
    if manifest_digest(yaml.safe_load(text)) != manifest["digest"]:
        raise BundleError("manifest does not round-trip through YAML", hint="report this as an mlpack bug")
    target = directory / MANIFEST_NAME
    with open(target, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    return yaml.safe_load(text)


def _bad(path: Path, what: str, hint: str) -> BundleError:
    return BundleError(f"{path} is not a valid mlpack bundle: {what}", hint=hint, path=str(path))


def read_manifest(path: Path) -> dict[str, Any]:
    """Reads and checks ``mlpack.yaml``: parseable, known version, untouched."""
    recapture = "capture the model again with mlpack.capture(model, sample)"
    if not path.is_dir():
        raise _bad(path, "no such directory", "pass the directory that mlpack.capture wrote")
    file = path / MANIFEST_NAME
    if not file.is_file():
        raise _bad(path, f"{MANIFEST_NAME} is missing", "pass the directory that mlpack.capture wrote, or " + recapture)
    try:
        manifest = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise _bad(path, f"{MANIFEST_NAME} does not parse ({exc})", recapture) from None
    if not isinstance(manifest, dict):
        raise _bad(path, f"{MANIFEST_NAME} is not a mapping", recapture)
    version = manifest.get("format_version")
    if not isinstance(version, int):
        raise _bad(path, "format_version is missing or not an integer", recapture)
    if version > FORMAT_VERSION:
        raise _bad(
            path,
            f"format_version {version} is newer than this mlpack reads ({FORMAT_VERSION})",
            "upgrade mlpack (pip install -U mlpack) to load this bundle",
        )
    if version < 1:
        raise _bad(path, f"unknown format_version {version}", recapture)
    missing = [k for k in _REQUIRED_KEYS if k not in manifest]
    if missing:
        raise _bad(path, f"manifest lacks {', '.join(missing)}", recapture)
    if manifest["digest"] != manifest_digest(manifest):
        raise _bad(
            path,
            f"{MANIFEST_NAME} was modified after capture (its digest does not match)",
            recapture + "; do not edit a bundle by hand",
        )
    return manifest


def verify_files(path: Path, files: Any) -> None:
    """Checks that each listed file exists inside ``path`` with its sha256."""
    recapture = "capture the model again with mlpack.capture(model, sample)"
    if not isinstance(files, dict) or not files:
        raise _bad(path, "the manifest lists no files", recapture)
    for rel, expected in files.items():
        # Only plain file names: a manifest must not point outside its bundle.
        if not isinstance(rel, str) or "/" in rel or "\\" in rel or rel in ("", ".", "..") or rel == MANIFEST_NAME:
            raise _bad(path, f"the manifest lists an invalid file name {rel!r}", recapture)
        file = path / rel
        if file.is_symlink() or not file.is_file():
            raise _bad(path, f"{rel} is missing (the bundle is incomplete)", recapture)
        actual = sha256_file(file)
        if actual != str(expected).removeprefix("sha256:"):
            raise _bad(
                path,
                f"{rel} was modified after capture (sha256 {actual[:12]}… does not match the manifest)",
                recapture + "; do not edit a bundle by hand",
            )
