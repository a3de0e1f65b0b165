"""Value types shared by several stages (no behaviour beyond validation)."""

from __future__ import annotations

import math
import re

from mlpack.errors import ConfigError
from mlpack.values import dataclass

__all__ = ["Limits", "parse_memory", "parse_gpus", "DEFAULT_PORT", "DEFAULT_GRPC_PORT", "DEFAULT_PYTHON",
           "REGISTRY_BASE", "LOCAL_BASE", "LOCAL_RUNTIME_BASE", "RUNTIME_TAG_SUFFIX"]

# The ports mlpack-serve listens on inside an image (MLPACK_PORT, MLPACK_GRPC_PORT
# change them): the one default that render, the server, serve() and the export share.
DEFAULT_PORT = 8080
DEFAULT_GRPC_PORT = 8081  # the Open Inference Protocol's gRPC service, as KServe
# The two base images mlpack knows, by Python version (the choice between them is
# mlpack.dockerfile.options.choose_base, and nowhere else): the registry's slim
# image, and the offline one `mlpack base bootstrap` makes from Debian packages
# (Debian 12 => 3.11).
DEFAULT_PYTHON = "3.11"
REGISTRY_BASE = "python:{python}-slim"
LOCAL_BASE = "localhost/mlpack/python:{python}"
# The offline base without what only a builder stage runs (pip's wheels, dpkg): what a
# serving image's runtime stage starts from. `mlpack base bootstrap` stores both.
RUNTIME_TAG_SUFFIX = "-runtime"
LOCAL_RUNTIME_BASE = LOCAL_BASE + RUNTIME_TAG_SUFFIX

# compiled on first use (re's cache), not at import: a CLI start without --memory never needs it
_MEMORY_RE = r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$"
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024, "kb": 1024, "ki": 1024, "kib": 1024,
    "m": 1024**2, "mb": 1024**2, "mi": 1024**2, "mib": 1024**2,
    "g": 1024**3, "gb": 1024**3, "gi": 1024**3, "gib": 1024**3,
    "t": 1024**4, "tb": 1024**4, "ti": 1024**4, "tib": 1024**4,
}
# Docker refuses less than 6 MiB; a Python server needs far more anyway.
MIN_MEMORY = 6 * 1024**2


def parse_memory(value: int | str) -> int:
    """Bytes from ``536870912``, ``"512Mi"``, ``"512m"``, ``"1g"``, ``"1.5GiB"``.

    Like docker, the unit letters are binary (``m`` = MiB) whatever their case.
    """
    if isinstance(value, bool):
        raise ConfigError(f"memory must be a size such as '512Mi' or '1g', not {value!r}")
    if isinstance(value, int):
        amount = value
    else:
        match = re.match(_MEMORY_RE, str(value))
        if not match or match.group(2).lower() not in _UNITS:
            raise ConfigError(
                f"cannot read memory size {value!r}",
                hint="use a number of bytes or a number with a unit: 512Mi, 512m, 1g, 1.5GiB",
            )
        amount_f = float(match.group(1)) * _UNITS[match.group(2).lower()]
        amount = int(amount_f)
    if amount < MIN_MEMORY:
        raise ConfigError(
            f"memory limit {value!r} is below the minimum of 6 MiB",
            hint="give the container at least 6Mi; a model server usually needs 256Mi or more",
        )
    return amount


def parse_gpus(value: int | str | None) -> tuple[str, ...] | int | None:
    """GPUs as docker spells them: ``None``, an integer count, ``"all"``, ``"0,1"``.

    Returns ``None`` (no GPU), a count, ``("all",)`` or a tuple of device ids.
    """
    if value is None or value == "" or value == 0:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"gpus must be a count, 'all' or a list of ids, not {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ConfigError(
                f"a GPU cannot be shared fractionally here (got {value})",
                hint="ask for a whole number of GPUs, 'all', or ids such as '0,1'",
            )
        value = int(value)
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"GPU count must be positive, got {value}")
        return value
    text = str(value).strip()
    if text.startswith("device="):
        # docker's '"device=0"' names device ids, never a count
        ids = tuple(part.strip() for part in text[len("device="):].split(","))
        if ids and all(re.fullmatch(r"[A-Za-z0-9_.:-]+", part) for part in ids):
            return ids
        raise ConfigError(f"cannot read GPU request {value!r}", hint="use device=0 or device=0,1")
    if text == "all":
        return ("all",)
    if re.fullmatch(r"\d+", text):
        count = int(text)
        return count or None
    if re.fullmatch(r"\d+\.\d+", text):
        raise ConfigError(
            f"a GPU cannot be shared fractionally here (got {text})",
            hint="ask for a whole number of GPUs, 'all', or ids such as '0,1'",
        )
    ids = tuple(part.strip() for part in text.split(","))
    if not ids or any(not re.fullmatch(r"[A-Za-z0-9_.:-]+", part) for part in ids):
        raise ConfigError(
            f"cannot read GPU request {value!r}",
            hint="use a count (1), 'all', or comma-separated ids ('0,1' or GPU UUIDs)",
        )
    return ids


@dataclass(frozen=True)
class Limits:
    """Resource limits for one container, the same locally and in Kubernetes.

    ``cpus`` is a float (``1.5`` = one and a half cores), ``memory`` is bytes
    (any of the spellings :func:`parse_memory` reads is accepted), ``pids`` the
    most processes, ``gpus`` a count, ``("all",)`` or device ids.
    """

    cpus: float | None = None
    memory: int | None = None
    pids: int | None = None
    gpus: int | tuple[str, ...] | None = None
    cpuset_cpus: str | None = None

    def __post_init__(self) -> None:
        if self.cpus is not None:
            try:
                cpus = float(self.cpus)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"cpus must be a number such as 0.5 or 2, not {self.cpus!r}"
                ) from None
            if not math.isfinite(cpus) or cpus <= 0:
                raise ConfigError(f"cpus must be a positive number, got {self.cpus!r}")
            if cpus < 0.01:
                raise ConfigError(
                    f"cpus {cpus} is below the smallest enforceable quota (0.01)",
                    hint="use 0.01 or more",
                )
            object.__setattr__(self, "cpus", cpus)
        if self.memory is not None:
            object.__setattr__(self, "memory", parse_memory(self.memory))
        if self.pids is not None:
            if isinstance(self.pids, bool) or not isinstance(self.pids, int):
                try:
                    pids = int(str(self.pids))
                except ValueError:
                    raise ConfigError(f"pids must be a whole number, not {self.pids!r}") from None
                object.__setattr__(self, "pids", pids)
            if self.pids < 1:
                raise ConfigError(
                    f"pids limit must be at least 1, got {self.pids}",
                    hint="a Python server needs about 16 or more",
                )
        object.__setattr__(self, "gpus", parse_gpus(self.gpus))
        if self.cpuset_cpus is not None and not re.fullmatch(
            r"\d+(-\d+)?(,\d+(-\d+)?)*", str(self.cpuset_cpus)
        ):
            raise ConfigError(
                f"cannot read cpuset {self.cpuset_cpus!r}", hint="use the form 0-1 or 0,2"
            )

    @property
    def cpu_quota(self) -> tuple[int, int] | None:
        """(quota, period) in microseconds for the CFS scheduler, or None."""
        if self.cpus is None:
            return None
        period = 100_000
        return int(round(self.cpus * period)), period

    @property
    def gpu_count(self) -> int | None:
        """How many GPUs, when that is known without looking at the host."""
        if self.gpus is None:
            return None
        if isinstance(self.gpus, int):
            return self.gpus
        if self.gpus == ("all",):
            return None
        return len(self.gpus)

    def memory_human(self) -> str | None:
        if self.memory is None:
            return None
        for unit, size in (("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
            if self.memory % size == 0:
                return f"{self.memory // size}{unit}"
        return str(self.memory)
