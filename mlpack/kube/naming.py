"""Names Kubernetes accepts, and image references read as ExportErrors.

Pure string rules, so the export can reject a bad name before it writes a
single file, with a message saying which rule was broken.
"""

from __future__ import annotations

import re
from mlpack.errors import ConfigError, ExportError
from mlpack.reference import Reference, is_digest, parse

__all__ = [
    "parse_reference",
    "check_digest",
    "check_dns_label",
    "name_from_repository",
    "label_value",
]

# RFC 1123 label: what Deployment, PDB, HPA and namespace names must be.
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# RFC 1035 label: a Service (and a KServe InferenceService) name must also
# start with a letter, so one name serves every object we write.
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def parse_reference(text: str) -> Reference:
    """``text`` parsed by :func:`mlpack.reference.parse` (no default tag), as an ExportError when bad."""
    try:
        return parse(text.strip() if isinstance(text, str) else text, default_tag=None)
    except ConfigError as exc:
        raise ExportError(exc.message, hint=exc.hint) from exc


def check_digest(digest: str) -> str:
    """``digest`` when it is a sha256 content digest, else ExportError."""
    if not is_digest(digest):
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
    last = ref.repository.rsplit("/", 1)[-1]
    return re.sub(r"[._]+", "-", last.lower())


def label_value(value: str | None) -> str | None:
    """``value`` if Kubernetes accepts it as a label value, else None."""
    if value is None or len(value) > 63 or not _LABEL_VALUE.match(value):
        return None
    return value
