"""Registry credentials (docker's config.json) and WWW-Authenticate challenges."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

__all__ = ["Credentials", "load_credentials", "parse_challenge"]

_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")


class Credentials:
    """A username/password (or identity token) for one registry."""

    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password

    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()

    def __repr__(self) -> str:  # never print the secret
        return f"Credentials({self.username!r}, ***)"


def load_credentials(registry: str, config_path: Path | None) -> Credentials | None:
    """Credentials for ``registry`` from docker's config.json (``auths``), or None.

    ``config_path`` is Settings.docker_config, else ~/.docker/config.json.
    Credential helpers (credsStore/credHelpers) are not run.
    """
    path = config_path or Path.home() / ".docker" / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    auths = config.get("auths") or {}
    keys = _HUB_KEYS if registry in ("docker.io", "registry-1.docker.io") else (registry,)
    for key, entry in auths.items():
        host = re.sub(r"^https?://", "", key).rstrip("/")
        host = host[:-3] if host.endswith("/v1") or host.endswith("/v2") else host
        if key in keys or host in keys or host == registry:
            if entry.get("auth"):
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
                return Credentials(user, password)
            if entry.get("username"):
                return Credentials(entry["username"], entry.get("password", ""))
            if entry.get("identitytoken"):
                return Credentials("<token>", entry["identitytoken"])
    return None


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="x",service="y"`` -> ("bearer", {"realm": "x", "service": "y"})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)\s*=\s*"?([^",]*)"?', rest)}
    return scheme.lower(), params
