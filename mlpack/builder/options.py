"""What a build takes besides its input and settings, as one typed value (``mlpack build``'s flags).

``BuildOptions`` checks and normalises every field once, at construction:
build args become strings, ``--secret id=NAME,src=FILE`` spellings become
``{id: Path}`` (a missing file fails before any work), the network is one of
three words. :meth:`BuildOptions.resolved` adds what depends on the build
args and the environment (SOURCE_DATE_EPOCH) at the moment a build starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlpack.errors import BuildError
from mlpack.types import Limits
from mlpack.values import dataclass, field, replace

__all__ = ["BuildOptions", "parse_secrets", "default_run_limits", "NETWORKS"]

NETWORKS = ("default", "none", "host")
DEPS_MODES = ("run", "context", "auto")
DEFAULT_RUN_PIDS = 4096
DEFAULT_RUN_MEMORY = 8 << 30


def default_run_limits() -> Limits:
    """A RUN step's cgroup unless the build says otherwise (mlpack build --memory/--pids-limit/--cpus):
    4096 processes and 8 GiB (half the host's memory when that is less): enough for pip, compilers
    and test suites, while a fork bomb or a leak stops there, not at the host."""
    memory = DEFAULT_RUN_MEMORY
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    memory = min(memory, int(line.split()[1]) * 1024 // 2)
                    break
    except (OSError, ValueError):
        pass
    return Limits(memory=memory, pids=DEFAULT_RUN_PIDS)


def parse_secrets(values: Sequence[str] | Mapping[str, str | os.PathLike[str]] | None) -> dict[str, Path]:
    """``["id=ca-bundle,src=/etc/ssl/x.pem"]`` or ``{"ca-bundle": path}`` -> {id: Path}."""
    if not values:
        return {}
    if isinstance(values, Mapping):
        return {k: Path(v) for k, v in values.items()}
    out: dict[str, Path] = {}
    for text in values:
        fields = dict(part.partition("=")[::2] for part in text.split(",") if part)
        secret_id = fields.get("id")
        src = fields.get("src") or fields.get("source")
        if not secret_id or not src:
            raise BuildError(f"--secret {text!r} needs id=NAME,src=FILE",
                             hint="e.g. --secret id=ca-bundle,src=ca.pem")
        if not Path(src).is_file():
            raise BuildError(f"--secret {secret_id}: {src} is not a file")
        out[secret_id] = Path(src)
    return out


@dataclass(frozen=True)
class BuildOptions:
    """How to build: each field is the ``mlpack build`` flag of the same name.

    ``tag`` the store reference to tag (None: untagged); ``dockerfile`` the
    file to read (default ``<context>/Dockerfile``); ``source_date_epoch``
    (else the SOURCE_DATE_EPOCH build arg, else the environment variable)
    clamps mtimes and dates so that two builds of the same context give the
    same digest; ``network`` is what RUN steps get by default (``default``:
    a namespace of their own with an uplink; ``none``; ``host``) and
    ``limits`` the cgroup of each RUN step (:func:`default_run_limits`).
    ``build_contexts`` (``["NAME=DIR"]`` or ``{NAME: DIR}``) are the named
    contexts ``COPY --from=NAME`` reads (:mod:`.namedctx`); ``deps`` applies
    to a bundle, which is rendered first: ``run`` (a RUN step installs the
    lock), ``context`` (mlpack installs it, the Dockerfile has no RUN) or
    ``auto`` (``context`` only where RUN steps cannot run, said as a warning).
    ``platform`` (``linux/arm64``; None: this machine's) is the image's: FROM
    takes the base for it from the store, the config records it, and for
    another architecture than this machine's no RUN step can run (a bundle
    then takes ``deps="context"``).
    """

    tag: str | None = None
    dockerfile: str | os.PathLike[str] | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    secrets: Sequence[str] | Mapping[str, str | os.PathLike[str]] = field(default_factory=dict)
    source_date_epoch: int | None = None
    network: str = "default"
    limits: Limits = field(default_factory=default_run_limits)
    build_contexts: Sequence[str] | Mapping[str, str | os.PathLike[str]] = field(default_factory=dict)
    deps: str = "auto"
    platform: str | tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if self.network not in NETWORKS:
            raise BuildError(f"network {self.network!r} is not default, none or host")
        if not isinstance(self.limits, Limits):
            raise BuildError(f"limits must be an mlpack.Limits, not {type(self.limits).__name__}",
                             hint="e.g. Limits(memory='2g', pids=1024)")
        object.__setattr__(self, "build_args", {str(k): str(v) for k, v in (self.build_args or {}).items()})
        object.__setattr__(self, "secrets", parse_secrets(self.secrets))  # bad --secret flags fail now
        from mlpack.builder.namedctx import parse_build_contexts

        object.__setattr__(self, "build_contexts", parse_build_contexts(self.build_contexts))
        if self.platform is not None:
            object.__setattr__(self, "platform", _platform(self.platform))
        if self.deps not in DEPS_MODES:
            raise BuildError(f"deps {self.deps!r} is not one of {', '.join(DEPS_MODES)}",
                             hint="run: a RUN step installs the lock; context: mlpack installs it (no RUN); "
                                  "auto: context only where RUN steps cannot run")

    @property
    def target_platform(self) -> tuple[str, str]:
        """``("linux", "arm64")``: the platform asked for, else this machine's."""
        from mlpack.oci.platforms import host_platform

        return self.platform if isinstance(self.platform, tuple) else host_platform()

    @property
    def foreign(self) -> bool:
        """The image is for another architecture than this machine's: no RUN step can run for it."""
        from mlpack.oci.platforms import host_platform

        return self.target_platform != host_platform()

    def resolved(self) -> BuildOptions:
        """With ``source_date_epoch`` taken from the build args or the environment when unset."""
        if self.source_date_epoch is not None:
            return self
        raw = self.build_args.get("SOURCE_DATE_EPOCH") or os.environ.get("SOURCE_DATE_EPOCH")
        if not raw:
            return self
        if not raw.isdigit():
            raise BuildError(f"SOURCE_DATE_EPOCH={raw!r} is not a number of seconds")
        return replace(self, source_date_epoch=int(raw))


def _platform(value: str | tuple[str, str]) -> tuple[str, str]:
    """``linux/arm64`` (or a parsed pair) as ``("linux", "arm64")``; a BuildError otherwise."""
    from mlpack.errors import MlpackError
    from mlpack.oci.platforms import parse_platform, platform_text

    try:
        return parse_platform(value if isinstance(value, str) else platform_text(tuple(value)))  # type: ignore[arg-type]
    except MlpackError as exc:
        raise BuildError(f"--platform: {exc.message}", hint=exc.hint) from None
