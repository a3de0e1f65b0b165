"""Names Kubernetes accepts, and image references split into their parts.

Pure string rules, so the export can reject a bad name before it writes a
single file, with a message saying which rule was broken.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlpack.errors import ExportError

__all__ = [
    "Reference",
    "split_reference",
    "check_dns_label",
    "name_from_repository",
    "label_value",
]

# RFC 1123 label: what Deployment, PDB, HPA and namespace names must be.
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# RFC 1035 label: a Service (and a KServe InferenceService) name must also
# start with a letter, so one name serves every object we write.
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Reference:
    """``domain/path:tag@digest`` in parts; ``domain`` is "" when the ref has none."""

    domain: str
    path: str
    tag: str | None
    digest: str | None

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}" if self.domain else self.path


def _is_domain(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


def split_reference(ref: str) -> Reference:
    """Split an image reference the way docker and containerd read it."""
    text = ref.strip()
    if not text or any(ch.isspace() for ch in text):
        raise ExportError(
            f"{ref!r} is not an image reference",
            hint="use the form registry.example.com/team/model:tag or repo@sha256:<64 hex>",
        )
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        check_digest(digest)
    tag = None
    last = text.rsplit("/", 1)[-1]
    if ":" in last:
        text, tag = text.rsplit(":", 1)
        if not _TAG.match(tag):
            raise ExportError(f"{tag!r} in {ref!r} is not a valid image tag")
    first, _, rest = text.partition("/")
    if rest and _is_domain(first):
        domain, path = first, rest
    else:
        domain, path = "", text
    if not path or path != path.lower():
        raise ExportError(
            f"repository {path!r} in {ref!r} is not valid",
            hint="repository names are lowercase letters, digits and separators (. _ - /)",
        )
    return Reference(domain=domain, path=path, tag=tag, digest=digest)


def check_digest(digest: str) -> str:
    """``digest`` when it is a sha256 content digest, else ExportError."""
    if not _DIGEST.match(digest):
        raise ExportError(
            f"{digest!r} is not an image digest",
            hint="a digest reads sha256: followed by 64 lowercase hex digits",
        )
    return digest


def check_dns_label(value: str, what: str, *, letter_first: bool = False) -> str:
    """``value`` when it is a DNS-1123 label (RFC 1035 when ``letter_first``)."""
    pattern = _DNS1035_LABEL if letter_first else _DNS1123_LABEL
    if len(value) > 63 or not pattern.match(value):
        rule = "start with a letter, " if letter_first else "start with a letter or digit, "
        raise ExportError(
            f"{what} {value!r} is not a valid Kubernetes name (DNS-1123 label)",
            hint=(
                f"use at most 63 lowercase letters, digits and '-', {rule}"
                "and end with a letter or digit, e.g. 'iris-classifier'"
                + (" (pass --name)" if what == "name" else "")
            ),
        )
    return value


def name_from_repository(ref: Reference) -> str:
    """A candidate object name: the repository's last component, '.' and '_' as '-'."""
    last = ref.path.rsplit("/", 1)[-1]
    return re.sub(r"[._]+", "-", last.lower())


def label_value(value: str | None) -> str | None:
    """``value`` if Kubernetes accepts it as a label value, else None."""
    if value is None or len(value) > 63 or not _LABEL_VALUE.match(value):
        return None
    return value
