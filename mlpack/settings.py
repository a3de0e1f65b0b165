"""Settings, built once at a front door and passed down (never read at import)."""

from __future__ import annotations

import os
from pathlib import Path

from mlpack.values import dataclass, field

__all__ = ["Settings"]


def _default_home(env: dict[str, str]) -> Path:
    if env.get("MLPACK_HOME"):
        return Path(env["MLPACK_HOME"]).expanduser()
    if os.geteuid() == 0 and not env.get("XDG_DATA_HOME"):
        return Path("/var/lib/mlpack")
    data = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "mlpack"


@dataclass(frozen=True)
class Settings:
    """Where mlpack keeps its state and which tools it uses.

    ``home`` holds ``store/`` (the OCI image layout), ``layers/`` (layers
    unpacked once per diff_id), ``containers/`` (state of each container),
    ``cache/`` (build cache and RUN cache mounts), ``certs.d/`` (registry
    CA and client certificates, Docker's layout).
    """

    home: Path
    runtime: str | None = None  # "crun", "runc" or a path; None = pick one
    registry_mirrors: tuple[str, ...] = ()
    insecure_registries: tuple[str, ...] = ()
    docker_config: Path | None = None
    extra_ca_files: tuple[Path, ...] = field(default_factory=tuple)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        """Read MLPACK_HOME, MLPACK_RUNTIME, MLPACK_REGISTRY_MIRRORS,
        MLPACK_INSECURE_REGISTRIES, DOCKER_CONFIG and MLPACK_EXTRA_CA."""
        env = dict(os.environ if env is None else env)
        split = lambda key: tuple(x.strip() for x in env.get(key, "").split(",") if x.strip())  # noqa: E731
        docker_config = env.get("DOCKER_CONFIG")
        return cls(
            home=_default_home(env),
            runtime=env.get("MLPACK_RUNTIME") or None,
            registry_mirrors=split("MLPACK_REGISTRY_MIRRORS"),
            insecure_registries=split("MLPACK_INSECURE_REGISTRIES"),
            docker_config=Path(docker_config) / "config.json" if docker_config else None,
            extra_ca_files=tuple(Path(p) for p in split("MLPACK_EXTRA_CA")),
        )

    @property
    def store_dir(self) -> Path:
        return self.home / "store"

    @property
    def layers_dir(self) -> Path:
        return self.home / "layers"

    @property
    def containers_dir(self) -> Path:
        return self.home / "containers"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def certs_dirs(self) -> tuple[Path, ...]:
        """Where registry TLS files are looked up (``<dir>/<host[:port]>/``), first hit wins."""
        return (self.home / "certs.d", Path("/etc/containers/certs.d"), Path("/etc/docker/certs.d"))
