"""The server's typed configuration, filled from ``MLPACK_*`` variables and CLI flags.

One dataclass, one place that reads the environment (:meth:`ServerConfig.from_env`),
called by the entry point only: importing this module reads nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Mapping

from mlpack.errors import ConfigError
from mlpack.types import DEFAULT_GRPC_PORT, DEFAULT_PORT

__all__ = ["ServerConfig", "ENV_PREFIX"]

ENV_PREFIX = "MLPACK_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class ServerConfig:
    """How ``mlpack-serve`` serves one bundle.

    Every field can be set by the variable ``MLPACK_<FIELD>`` (upper case) or
    the flag ``--<field>`` (dashes for underscores). ``None`` means "size it
    from the container's cgroup CPU quota".
    """

    bundle: str = field(default="/opt/mlpack/bundle", metadata={"help": "bundle directory to serve"})
    host: str = field(default="0.0.0.0", metadata={"help": "address to listen on"})
    port: int = field(default=DEFAULT_PORT, metadata={"help": "TCP port to listen on"})
    grpc_port: int = field(default=DEFAULT_GRPC_PORT, metadata={"help": "TCP port of the gRPC inference service (0: no gRPC)"})
    workers: int | None = field(default=None, metadata={"help": "server processes (default: from the CPU quota)"})
    threads: int | None = field(
        default=None, metadata={"help": "onnxruntime intra-op threads per worker (default: from the CPU quota)"}
    )
    max_body_bytes: int = field(default=8 * 1024 * 1024, metadata={"help": "largest request body accepted (413 above)"})
    max_inflight_bytes: int | None = field(
        default=None,
        metadata={"help": "request-body bytes held at once per worker; more wait, then 503 (default: from the memory limit)"},
    )
    body_wait_s: float = field(default=10.0, metadata={"help": "longest a request waits for the body budget (503 after)"})
    header_timeout_s: float = field(
        default=10.0, metadata={"help": "seconds a connection has to send a request's headers (closed after)"}
    )
    body_timeout_s: float = field(
        default=30.0, metadata={"help": "longest pause while a request body is received (408 after)"}
    )
    batching: bool = field(default=True, metadata={"help": "micro-batch concurrent requests (dynamic-batch models)"})
    max_batch_size: int = field(default=32, metadata={"help": "most rows in one micro-batch"})
    max_batch_wait_ms: float = field(
        default=0.0,
        metadata={"help": "longest a batch waits for requests still being received (0: batch only what is queued)"},
    )
    access_log: bool = field(default=True, metadata={"help": "one JSON log line per request"})
    log_level: str = field(default="info", metadata={"help": "debug, info, warning or error"})
    graceful_timeout_s: float = field(
        default=20.0, metadata={"help": "seconds to finish in-flight requests after SIGTERM"}
    )
    model_name: str | None = field(default=None, metadata={"help": "name in the V2 routes (default: the bundle's)"})

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.port < 65536:
            problems.append(f"port must be 1-65535, got {self.port}")
        if not 0 <= self.grpc_port < 65536 or self.grpc_port == self.port:
            problems.append(f"grpc_port must be 0 (off) or 1-65535 and not the HTTP port, got {self.grpc_port}")
        for name in ("workers", "threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                problems.append(f"{name} must be at least 1, got {value}")
        if self.max_body_bytes < 1024:
            problems.append(f"max_body_bytes must be at least 1024, got {self.max_body_bytes}")
        if self.max_inflight_bytes is not None and self.max_inflight_bytes < self.max_body_bytes:
            problems.append(f"max_inflight_bytes must be at least max_body_bytes ({self.max_body_bytes}), "
                            f"got {self.max_inflight_bytes}")
        for name in ("body_wait_s", "header_timeout_s", "body_timeout_s"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be more than 0, got {getattr(self, name)}")
        if self.max_batch_size < 1:
            problems.append(f"max_batch_size must be at least 1, got {self.max_batch_size}")
        if not 0 <= self.max_batch_wait_ms <= 1000:
            problems.append(f"max_batch_wait_ms must be 0-1000, got {self.max_batch_wait_ms}")
        if self.graceful_timeout_s < 0:
            problems.append(f"graceful_timeout_s must be >= 0, got {self.graceful_timeout_s}")
        if self.log_level.lower() not in {"debug", "info", "warning", "error", "critical"}:
            problems.append(f"log_level must be debug, info, warning or error, got {self.log_level!r}")
        if problems:
            raise ConfigError(
                "invalid server configuration: " + "; ".join(problems),
                hint="fix the MLPACK_* variable or mlpack-serve flag named above",
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: object) -> "ServerConfig":
        """Build a config from ``MLPACK_*`` variables in ``env``; ``overrides`` win."""
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _parse(f, raw, source=ENV_PREFIX + f.name.upper())
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """The ``MLPACK_*`` variables that rebuild this config (for worker processes)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            out[ENV_PREFIX + f.name.upper()] = ("1" if value else "0") if isinstance(value, bool) else str(value)
        return out

    def replace(self, **changes: object) -> "ServerConfig":
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def field_kind(f: dataclasses.Field) -> type:
    """The scalar type of a config field (``int | None`` -> ``int``)."""
    text = str(f.type)
    for kind in (bool, int, float, str):
        if text.startswith(kind.__name__):
            return kind
    raise AssertionError(f"unsupported config field type {f.type!r}")  # pragma: no cover


def _parse(f: dataclasses.Field, raw: str, *, source: str) -> object:
    kind = field_kind(f)
    text = raw.strip()
    if kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ConfigError(f"{source}={raw!r} is not a boolean", hint="use 1/0, true/false, yes/no or on/off")
    if kind is str:
        return raw
    if text.lower() in {"", "auto"} and f.default is None:
        return None
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"{source}={raw!r} is not a valid {kind.__name__}", hint=f"set {source} to a number") from None
