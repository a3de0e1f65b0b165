"""An image's config blob, parsed once into :class:`ImageConfig` (go-containerregistry's ConfigFile).

The store parses the blob when it resolves an image; the runtime, the builder,
the export and the CLI read typed fields from it and never index the JSON
themselves (tests/unit/test_config_owner.py keeps it so). Config blobs come
from registries and archives, so a field of the wrong type is a StoreError
naming it, never a TypeError deep inside a consumer.
"""

from __future__ import annotations

from collections.abc import Mapping

from mlpack.errors import StoreError
from mlpack.values import dataclass, field

TYPE_CHECKING = False  # typing is the type checker's: a CLI start (mlpack run) does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

__all__ = ["ImageConfig", "HealthcheckConfig", "complete_blob"]


def _strings(value: object, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(what, "a list of strings")
    return tuple(value)


def _argv(value: object, what: str) -> tuple[str, ...] | None:
    return None if value is None else _strings(value, what)


def _text(value: object, what: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _bad(what, "a string")
    return value


def _nanoseconds(value: object, what: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _bad(what, "a number of nanoseconds")
    return value


def _bad(what: str, expected: str) -> StoreError:
    return StoreError(f"the image config's {what} is not {expected}",
                      hint="the image is malformed: rebuild it, or pull it again from a trusted source")


@dataclass(frozen=True)
class HealthcheckConfig:
    """Docker's ``Healthcheck`` object: ``test`` as written (``CMD``/``CMD-SHELL``/``NONE`` first),
    durations in nanoseconds (0: the runtime's default)."""

    test: tuple[str, ...]
    interval_ns: int = 0
    timeout_ns: int = 0
    start_period_ns: int = 0
    start_interval_ns: int = 0
    retries: int = 0

    @property
    def disabled(self) -> bool:
        """``HEALTHCHECK NONE`` (or an empty test): no check, also none inherited."""
        return not self.test or self.test[0] == "NONE"

    @classmethod
    def from_json(cls, data: object) -> HealthcheckConfig | None:
        if data is None:
            return None
        if not isinstance(data, Mapping):
            raise _bad("Healthcheck", "an object")
        retries = data.get("Retries") or 0
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise _bad("Healthcheck.Retries", "a count")
        return cls(_strings(data.get("Test"), "Healthcheck.Test"),
                   _nanoseconds(data.get("Interval"), "Healthcheck.Interval"),
                   _nanoseconds(data.get("Timeout"), "Healthcheck.Timeout"),
                   _nanoseconds(data.get("StartPeriod"), "Healthcheck.StartPeriod"),
                   _nanoseconds(data.get("StartInterval"), "Healthcheck.StartInterval"), retries)

    def to_json(self) -> dict[str, Any]:
        """The docker object, zero values omitted (what ``HEALTHCHECK`` writes)."""
        out: dict[str, Any] = {"Test": list(self.test)}
        for key, value in (("Interval", self.interval_ns), ("Timeout", self.timeout_ns),
                           ("StartPeriod", self.start_period_ns), ("StartInterval", self.start_interval_ns),
                           ("Retries", self.retries)):
            if value:
                out[key] = value
        return out


@dataclass(frozen=True)
class ImageConfig:
    """The fields of an OCI/docker image config that mlpack acts on, plus the blob as stored.

    ``exposed_ports`` keep their spelling (``8080/tcp``); ``labels`` and the
    history entries are plain values; ``blob`` is the whole document (what
    ``mlpack inspect`` prints and what a rebuild starts from).
    """

    user: str = ""
    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    working_dir: str = ""
    exposed_ports: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    healthcheck: HealthcheckConfig | None = None
    stop_signal: str | None = None
    history: tuple[Mapping[str, Any], ...] = ()
    diff_ids: tuple[str, ...] = ()
    architecture: str = "amd64"
    os: str = "linux"
    created: str | None = None
    author: str | None = None
    blob: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_blob(cls, blob: object) -> ImageConfig:
        """Parse a whole config blob (``{"config": {...}, "rootfs": ..., "history": ...}``)."""
        if not isinstance(blob, Mapping):
            raise _bad("document", "a JSON object")
        rootfs = blob.get("rootfs") or {}
        history = blob.get("history") or []
        if not isinstance(rootfs, Mapping):
            raise _bad("rootfs", "an object")
        if not isinstance(history, list) or not all(isinstance(h, Mapping) for h in history):
            raise _bad("history", "a list of objects")
        inner = cls.from_config(blob.get("config"))
        return cls(
            **{name: getattr(inner, name) for name in _INNER_FIELDS},
            history=tuple(history),
            diff_ids=_strings(rootfs.get("diff_ids"), "rootfs.diff_ids"),
            architecture=_text(blob.get("architecture"), "architecture") or "amd64",
            os=_text(blob.get("os"), "os") or "linux",
            created=_text(blob.get("created"), "created"),
            author=_text(blob.get("author"), "author"),
            blob=blob,
        )

    @classmethod
    def from_config(cls, config: object) -> ImageConfig:
        """Parse only the ``config`` object of a blob (an ImageSource's form)."""
        if config is None:
            config = {}
        if not isinstance(config, Mapping):
            raise _bad("config", "an object")
        ports = config.get("ExposedPorts") or {}
        labels = config.get("Labels") or {}
        if not isinstance(ports, Mapping):
            raise _bad("ExposedPorts", "an object")
        if not isinstance(labels, Mapping):
            raise _bad("Labels", "an object")
        return cls(
            user=_text(config.get("User"), "User") or "",
            env=_strings(config.get("Env"), "Env"),
            entrypoint=_argv(config.get("Entrypoint"), "Entrypoint"),
            cmd=_argv(config.get("Cmd"), "Cmd"),
            working_dir=_text(config.get("WorkingDir"), "WorkingDir") or "",
            exposed_ports=tuple(str(key) for key in ports),
            labels={str(k): str(v) for k, v in labels.items()},
            healthcheck=HealthcheckConfig.from_json(config.get("Healthcheck")),
            stop_signal=_text(config.get("StopSignal"), "StopSignal"),
            blob={"config": config},
        )

    @property
    def config_object(self) -> dict[str, Any]:
        """A deep copy of the blob's ``config`` object, every key kept (a build's starting point)."""
        import copy  # for a build only, not on `mlpack run`'s path

        return copy.deepcopy(dict(self.blob.get("config") or {}))

    @property
    def env_map(self) -> dict[str, str]:
        """``Env`` as a dict (a later ``KEY=`` wins; an item without ``=`` maps to "")."""
        out: dict[str, str] = {}
        for item in self.env:
            key, _, value = item.partition("=")
            out[key] = value
        return out

    @property
    def tcp_ports(self) -> tuple[int, ...]:
        """The exposed TCP port numbers, ascending (``8080`` alone means tcp too)."""
        ports = set()
        for key in self.exposed_ports:
            number, _, proto = key.partition("/")
            if number.isdigit() and proto in ("", "tcp") and 0 < int(number) < 65536:
                ports.add(int(number))
        return tuple(sorted(ports))

    @property
    def user_ids(self) -> tuple[int | None, int | None]:
        """(uid, gid) when numeric: "" is root (0, None); a name is unknown (None) without /etc/passwd."""
        text = self.user.strip()
        if not text:
            return 0, None
        uid, _, gid = text.partition(":")
        return (int(uid) if uid.isdigit() else None), (int(gid) if gid.isdigit() else None)

    @property
    def platform(self) -> dict[str, str]:
        """``{"architecture": ..., "os": ...}`` as an index entry's platform."""
        return {"architecture": self.architecture, "os": self.os}


def complete_blob(blob: Mapping[str, Any], diff_ids: list[str | None]) -> tuple[dict[str, Any], ImageConfig]:
    """A config blob to store and its parse: ``rootfs`` filled from the layers' ``diff_ids`` when
    the blob has none, ``amd64``/``linux`` when it names no platform."""
    out = dict(blob)
    if "rootfs" not in out:
        if any(d is None for d in diff_ids):
            raise StoreError("put_image needs the diff_id of every layer (or a config with rootfs)")
        out["rootfs"] = {"type": "layers", "diff_ids": list(diff_ids)}
    out.setdefault("architecture", "amd64")
    out.setdefault("os", "linux")
    return out, ImageConfig.from_blob(out)


_INNER_FIELDS = ("user", "env", "entrypoint", "cmd", "working_dir", "exposed_ports", "labels", "healthcheck",
                 "stop_signal")
