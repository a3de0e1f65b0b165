"""RenderOptions: everything a user can choose about the rendered Dockerfile.

Every field is validated here, once, so the templates can trust their shape;
the values themselves still go through the quoting filters when rendered.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlpack.dockerfile.quoting import check_text
from mlpack.errors import ConfigError, RenderError
from mlpack.reference import parse as parse_reference
from mlpack.types import DEFAULT_GRPC_PORT, DEFAULT_PORT, DEFAULT_PYTHON, LOCAL_BASE, LOCAL_RUNTIME_BASE, REGISTRY_BASE

__all__ = ["RenderOptions", "DEPS_MODES", "DEFAULT_BASE", "LOCAL_BASE", "DEFAULT_PYTHON", "DEFAULT_UID", "DEFAULT_PORT",
           "choose_base", "runtime_base"]

DEFAULT_BASE = REGISTRY_BASE  # what a Dockerfile rendered for anyone (no store to look in) starts from
DEFAULT_UID = 10001


def choose_base(base: str | None, python: str, present: Callable[[str], bool] | None = None) -> str:
    """The base image reference, decided here and nowhere else.

    ``base``: a reference (taken as is), ``"local"`` (the offline base) or
    None. None with ``present`` (a front door that knows the store: serve,
    build of a bundle) takes the registry base when the store has it and the
    offline base otherwise, which needs no registry (it is bootstrapped from
    Debian packages); None without ``present`` (a Dockerfile rendered for any
    builder) takes the registry base.
    """
    if base == "local":
        return LOCAL_BASE.format(python=python)
    if base is not None:
        return base
    registry = REGISTRY_BASE.format(python=python)
    if present is None or present(registry):
        return registry
    return LOCAL_BASE.format(python=python)

def runtime_base(base: str, python: str) -> str:
    """What the runtime stage starts from: the offline base's runtime image (the same tree without
    pip's wheels and dpkg, which only the builder stage runs) for the offline base, else ``base``."""
    return LOCAL_RUNTIME_BASE.format(python=python) if base == LOCAL_BASE.format(python=python) else base


_PYTHON_RE = re.compile(r"^3\.\d{1,2}$")
_ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
# Debian package names (policy 5.6.1), optionally pinned: name[:arch][=version].
_APT_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(?::[a-z0-9-]+)?(?:=[A-Za-z0-9.+~:-]+)?$")
# A requirement specifier, not an option: pip reads '-r file' or '--index-url'
# as instructions, so nothing may start with '-' (PEP 508 names never do).
# PEP 508 allows spaces, quotes and ';' (markers), so the shell quoting, not
# this check, is what keeps such values harmless.
_PIP_RE = re.compile(r"^[A-Za-z0-9]")
# How the locked dependencies get into the image (RenderOptions.deps).
DEPS_MODES = ("run", "context")
_BLOCK_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
# Environment variables the image itself relies on.
_RESERVED_ENV = {"MLPACK_BUNDLE", "MLPACK_PORT", "MLPACK_GRPC_PORT", "VIRTUAL_ENV", "PATH", "PYTHONPATH"}


@dataclass(frozen=True)
class RenderOptions:
    """What goes into the rendered Dockerfile.

    ``base``: the base image reference for both stages; ``None`` means
    ``python:<python>-slim`` from a registry, ``"local"`` the offline
    ``localhost/mlpack/python:<python>``. ``python``: ``"3.11"``-style version
    used for the default base names (``None``: the bundle's, else 3.11).
    ``gpu``: render the GPU variant (onnxruntime-gpu with the CUDA libraries
    its wheels bring). ``pip``/``apt``: extra packages. ``env``/``labels``:
    extra ENV and LABEL values. ``port``/``uid``: the server port and the
    non-root user id; ``grpc_port``: the gRPC port (0: none). ``template_dir``: a directory searched before the
    built-in templates; ``template``: the template to render (default
    ``cpu.Dockerfile.j2`` or ``gpu.Dockerfile.j2``); ``blocks``: overrides
    of named blocks of that template. ``version``/``source``/``revision``
    fill the OCI labels; ``source_date_epoch`` the ``created`` label
    (``None``: $SOURCE_DATE_EPOCH, else now). ``deps``: how the locked
    dependencies get into the image: ``"run"`` (pip or uv in a RUN step of a
    builder stage) or ``"context"`` (mlpack installs the wheels itself into the
    context's ``deps/`` directory, which the Dockerfile copies from a named
    build context: no RUN at all, see :mod:`mlpack.dockerfile.depsdir`);
    ``wheel_cache``: where ``"context"`` keeps downloaded wheels (required there).
    """

    base: str | None = None
    python: str | None = None
    gpu: bool = False
    pip: tuple[str, ...] = ()
    apt: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    port: int = DEFAULT_PORT
    grpc_port: int = DEFAULT_GRPC_PORT
    uid: int = DEFAULT_UID
    template_dir: Path | None = None
    template: str | None = None
    blocks: Mapping[str, str] = field(default_factory=dict)
    version: str | None = None
    source: str | None = None
    revision: str | None = None
    source_date_epoch: int | None = None
    deps: str = "run"
    wheel_cache: Path | None = None

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        if self.python is not None and not _PYTHON_RE.match(str(self.python)):
            raise RenderError(f"python version {self.python!r} is not of the form 3.11",
                              hint="give major.minor, for example --python 3.11")
        if self.base is not None and self.base != "local":
            base = check_text(self.base, "base image")
            try:
                parse_reference(base)
            except ConfigError:
                raise RenderError(f"base image {base!r} is not an image reference",
                                  hint="use a reference such as python:3.11-slim, "
                                       "registry.example.com/team/python:3.11, or 'local'") from None
        set_("gpu", bool(self.gpu))
        set_("pip", _tuple(self.pip, "pip"))
        for req in self.pip:
            if not _PIP_RE.match(check_text(req, "pip requirement")):
                raise RenderError(f"extra pip requirement {req!r} is not a requirement specifier",
                                  hint="give names with optional versions such as 'pandas==2.2.2'; "
                                       "pip options are not accepted here")
        set_("apt", _tuple(self.apt, "apt"))
        for pkg in self.apt:
            if not _APT_RE.match(check_text(pkg, "apt package")):
                raise RenderError(f"apt package {pkg!r} is not a Debian package name",
                                  hint="use names such as libgomp1 or libgomp1=12.2.0-14")
        set_("env", _mapping(self.env, "env", _ENV_KEY_RE, "letters, digits and _"))
        reserved = sorted(_RESERVED_ENV & set(self.env))
        if reserved:
            raise RenderError(f"env may not override {', '.join(reserved)}: the image relies on it",
                              hint="use --port for MLPACK_PORT; the others are fixed by the template")
        set_("labels", _mapping(self.labels, "label", _LABEL_KEY_RE, "letters, digits, '.', '_', '/', '-'"))
        set_("port", _int_in(self.port, "port", 1, 65535))
        set_("grpc_port", _int_in(self.grpc_port, "grpc_port", 0, 65535))
        if self.grpc_port == self.port:
            raise RenderError(f"the HTTP and gRPC ports are both {self.port}",
                              hint="choose another --port, or --grpc-port 0 for no gRPC")
        set_("uid", _int_in(self.uid, "uid", 1, 2**31 - 2))
        if self.template_dir is not None:
            set_("template_dir", Path(self.template_dir))
        set_("blocks", dict(self.blocks))
        for name in self.blocks:
            if not _BLOCK_RE.match(str(name)):
                raise RenderError(f"block name {name!r} is not a template block name")
        for name in ("version", "source", "revision"):
            value = getattr(self, name)
            if value is not None:
                check_text(value, name)
        if self.source_date_epoch is not None:
            set_("source_date_epoch", _int_in(self.source_date_epoch, "source_date_epoch", 0, 2**63 - 1))
        self._check_deps()

    def _check_deps(self) -> None:
        if self.deps not in DEPS_MODES:
            raise RenderError(f"deps={self.deps!r} is not one of {', '.join(DEPS_MODES)}",
                              hint="'run' installs in a RUN step, 'context' without any RUN")
        if self.wheel_cache is not None:
            object.__setattr__(self, "wheel_cache", Path(self.wheel_cache))
        if self.deps != "context":
            return
        if self.apt:
            raise RenderError("apt packages need a RUN step, and deps='context' renders none",
                              hint="drop apt=... or use deps='run'")
        if self.gpu:
            raise RenderError("the GPU variant resolves onnxruntime-gpu with pip's resolver, in a RUN step",
                              hint="use deps='run' for GPU images")
        if self.wheel_cache is None:
            raise RenderError("deps='context' needs a wheel_cache directory",
                              hint="mlpack build and serve use <mlpack home>/cache/wheels; pass wheel_cache=...")

    def python_version(self, bundle_python: str | None = None) -> str:
        """The major.minor Python the image gets: the option, else the bundle's, else 3.11."""
        if self.python:
            return self.python
        if bundle_python:
            parts = str(bundle_python).split(".")
            if len(parts) >= 2 and _PYTHON_RE.match(f"{parts[0]}.{parts[1]}"):
                return f"{parts[0]}.{parts[1]}"
        return DEFAULT_PYTHON

    def base_image(self, python: str) -> str:
        """The base image reference for a given major.minor Python (:func:`choose_base`)."""
        return choose_base(self.base, python)


def _tuple(values: Iterable[str] | str, what: str) -> tuple[str, ...]:
    if isinstance(values, str):
        raise RenderError(f"{what} must be a list of strings, not one string {values!r}",
                          hint=f"pass {what}=[{values!r}]")
    return tuple(values)


def _mapping(values: Mapping[str, str], what: str, key_re: re.Pattern[str], allowed: str) -> dict[str, str]:
    if not isinstance(values, Mapping):
        raise RenderError(f"{what}s must be a mapping of names to values, not {values!r}")
    out: dict[str, str] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not key_re.match(key):
            raise RenderError(f"{what} name {key!r} is not allowed",
                              hint=f"{what} names may contain {allowed} only")
        out[key] = check_text(value, f"{what} {key}")
    return out


def _int_in(value: object, what: str, low: int, high: int) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = int(str(value))
    except ValueError:
        raise RenderError(f"{what} must be a whole number, not {value!r}") from None
    if not low <= number <= high:
        hint = "run as a non-root user: the default uid is 10001" if what == "uid" else None
        raise RenderError(f"{what} {number} is outside {low}..{high}", hint=hint)
    return number
