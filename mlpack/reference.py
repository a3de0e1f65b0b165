"""Docker-style image references: ``[registry/]path[:tag][@digest]``, the one parser.

The first component is a registry when it contains ``.`` or ``:`` or is
``localhost`` (docker's rule); otherwise the registry is ``docker.io`` and a
one-component path gets the ``library/`` prefix. ``localhost/...`` names are
local images that never leave the store unless pushed under another name.

Every stage that takes a reference (oci, runtime, builder, render, kube and the
front doors) parses it here once and passes the :class:`Reference` on; no
other module reads a reference with its own pattern (tests/unit/test_reference_owner.py).
"""

from __future__ import annotations

import re

from mlpack.errors import ConfigError
from mlpack.values import dataclass

__all__ = ["Reference", "parse", "is_digest", "names_registry", "DOCKER_HUB", "LOCAL_REGISTRY"]

DOCKER_HUB = "docker.io"
LOCAL_REGISTRY = "localhost"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}
_HUB_LIBRARY = "library/"

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_REGISTRY = re.compile(r"^[A-Za-z0-9.-]+(?::[0-9]+)?$|^\[[0-9a-fA-F:]+\](?::[0-9]+)?$")


@dataclass(frozen=True)
class Reference:
    """A parsed reference; ``str()`` gives the full normalized form."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``registry/repository`` without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def path(self) -> str:
        """The repository as docker prints it: without ``library/`` on docker.io."""
        if self.registry == DOCKER_HUB:
            return self.repository.removeprefix(_HUB_LIBRARY)
        return self.repository

    @property
    def familiar_name(self) -> str:
        """``registry/repository`` as docker prints it: ``python`` for docker.io/library/python."""
        return self.path if self.registry == DOCKER_HUB else self.name

    @property
    def reference(self) -> str:
        """What goes after ``/manifests/`` in a registry URL: the digest, else the tag."""
        return self.digest or self.tag or "latest"

    def with_tag(self, tag: str | None) -> "Reference":
        return Reference(self.registry, self.repository, tag, None)

    def familiar(self) -> str:
        """The short form docker prints (``python:3.11`` for docker.io/library/python:3.11)."""
        return self.familiar_name + self._suffix()

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.name + self._suffix()


def is_digest(text: str) -> bool:
    """Whether ``text`` is a sha256 content digest (``sha256:`` + 64 lowercase hex)."""
    return bool(_DIGEST.match(text))


def names_registry(text: str) -> bool:
    """Whether ``text`` starts with a registry host (else docker.io is implied)."""
    first, slash, _ = text.partition("/")
    return bool(slash) and _is_registry(first)


def _is_registry(component: str) -> bool:
    return "." in component or ":" in component or component == LOCAL_REGISTRY


def parse(text: str, *, default_tag: str | None = "latest") -> Reference:
    """Parse ``text`` into a normalized Reference, or raise ConfigError.

    A reference without tag or digest gets ``default_tag`` (None: no tag).
    """
    original = text
    if not isinstance(text, str) or not text or text != text.strip() or len(text) > 512:
        raise _bad(original, "empty or padded with spaces")
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not is_digest(digest):
            raise _bad(original, "the digest must be sha256:<64 lowercase hex>")
    tag = None
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        text, tag = text[:colon], text[colon + 1:]
        if not _TAG.match(tag):
            raise _bad(original, f"bad tag {tag!r}")
    parts = text.split("/")
    registry = DOCKER_HUB
    if len(parts) > 1 and _is_registry(parts[0]):
        registry = parts.pop(0)
        if not _REGISTRY.match(registry):
            raise _bad(original, f"bad registry {registry!r}")
    if registry in _HUB_ALIASES:
        registry = DOCKER_HUB
    if not parts or not all(_COMPONENT.match(p) for p in parts):
        raise _bad(original, "path components are lowercase letters, digits and . _ - separators")
    if registry == DOCKER_HUB and len(parts) == 1:
        parts.insert(0, _HUB_LIBRARY.rstrip("/"))
    if tag is None and digest is None:
        tag = default_tag
    return Reference(registry, "/".join(parts), tag, digest)


def _bad(text: object, why: str) -> ConfigError:
    return ConfigError(
        f"invalid image reference {text!r}: {why}",
        hint="write it like docker does: [registry[:port]/]name[:tag][@sha256:...], e.g. python:3.11",
    )
