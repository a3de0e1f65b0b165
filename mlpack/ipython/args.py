"""The ``%%containerize`` / ``%containerize`` command line, parsed into a typed value."""

from __future__ import annotations

import argparse
import re
import shlex
import warnings
from dataclasses import dataclass
from pathlib import Path

from mlpack.bundle.environment import requirement_specs
from mlpack.bundle.spec import NAME_RE, parse_dynamic_axes
from mlpack.errors import CaptureError, ConfigError
from mlpack.service import ServeOptions
from mlpack.types import Limits

__all__ = ["ContainerizeArgs", "parse_args", "USAGE"]

USAGE = ("%%containerize MODEL_VAR --sample SAMPLE_VAR [--name N] [--cpus C] [--memory M] "
         "[--pids-limit P] [--gpus G] [--port P] [--push REF] [--k8s DIR] [--no-run] [--detach] [--pip SPEC]... "
         "[--requirements FILE] [--base REF] [--deps auto|run|context] [--timeout S] [--debug] [--dynamic-axes NAME:AXIS,...]")

# The capture's rule for names (one separator between runs), checked here so a bad
# --name fails before any work; 63 more because the name also names a container.
_NAME_MAX = 63


@dataclass(frozen=True)
class ContainerizeArgs:
    """What the magic's line asked for: where the model and sample live, and the options."""

    model_var: str
    sample_var: str
    options: ServeOptions
    debug: bool = False

    @property
    def service_var(self) -> str:
        """The notebook variable that receives the Service (``<model_var>_service``)."""
        return f"{self.model_var}_service"


class _DeprecatedPids(argparse.Action):
    """``--pids``: the magic's old spelling of docker's ``--pids-limit``, accepted with a warning."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        warnings.warn("%containerize --pids is deprecated: write --pids-limit (as `mlpack run` and docker do)",
                      FutureWarning, stacklevel=2)
        setattr(namespace, self.dest, values)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"%containerize: {message}", hint=f"usage: {USAGE}")

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        raise ConfigError(f"%containerize: {message or 'bad arguments'}", hint=f"usage: {USAGE}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="%%containerize", add_help=False, allow_abbrev=False)
    p.add_argument("model_var")
    p.add_argument("--sample", required=True, dest="sample_var")
    p.add_argument("--name")
    p.add_argument("--cpus", type=float, default=1.0)
    p.add_argument("--memory", default="1g")
    p.add_argument("--pids-limit", type=int, default=256, dest="pids")  # ServeOptions.pids, Limits.pids
    p.add_argument("--pids", type=int, dest="pids", action=_DeprecatedPids, help=argparse.SUPPRESS)
    p.add_argument("--gpus")
    p.add_argument("--port", type=int)
    p.add_argument("--push")
    p.add_argument("--k8s")
    p.add_argument("--no-run", dest="run", action="store_false")
    p.add_argument("--detach", action="store_true")
    p.add_argument("--pip", action="append", default=[], metavar="SPEC")
    p.add_argument("--requirements", metavar="FILE")
    p.add_argument("--base")
    p.add_argument("--deps", choices=("auto", "run", "context"), default="auto")
    p.add_argument("--timeout", type=float, default=60.0, dest="ready_timeout")
    p.add_argument("--debug", action="store_true")
    p.add_argument("--dynamic-axes", dest="dynamic_axes", help="torch: NAME:AXIS[,NAME:AXIS] axes whose length varies")
    return p


def default_name(model_var: str) -> str:
    """An image-name-safe name from a variable name: ``myModel_v2`` -> ``mymodel_v2``."""
    name = re.sub(r"[^a-z0-9._-]+", "-", model_var.lower()).strip("._-")
    name = re.sub(r"[._-]{2,}", "-", name)
    return name or "model"


def parse_args(line: str) -> ContainerizeArgs:
    """Parse the magic's line; every mistake is a ConfigError with the usage as hint."""
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise ConfigError(f"%containerize: cannot split the line: {exc}", hint=f"usage: {USAGE}") from None
    ns = _parser().parse_args(argv)
    for label, var in (("MODEL_VAR", ns.model_var), ("--sample", ns.sample_var)):
        if not var.isidentifier():
            raise ConfigError(f"%containerize: {label} must be a variable name, not {var!r}",
                              hint=f"usage: {USAGE}")
    name = ns.name or default_name(ns.model_var)
    if not NAME_RE.match(name) or len(name) > _NAME_MAX:
        raise ConfigError(f"--name {name!r} is not a valid image and container name",
                          hint="use lowercase letters, digits and single . _ - between them (at most 63)")
    if ns.port is not None and not 0 < ns.port < 65536:
        raise ConfigError(f"--port {ns.port} is not a TCP port", hint="use 1-65535, or leave it out for a free one")
    if not 0 < ns.ready_timeout <= 3600:
        raise ConfigError(f"--timeout {ns.ready_timeout:g} is out of range",
                          hint="seconds to wait for the container to be ready, 1-3600")
    if ns.k8s is not None and not str(ns.k8s).strip():
        raise ConfigError("--k8s needs a directory", hint="for example --k8s k8s/")
    try:  # validate now, before anything runs
        Limits(cpus=ns.cpus, memory=ns.memory, pids=ns.pids, gpus=ns.gpus)
    except ConfigError as exc:
        exc.hint = exc.hint or f"usage: {USAGE}"
        raise
    options = ServeOptions(
        name=name, cpus=ns.cpus, memory=ns.memory, pids=ns.pids, gpus=ns.gpus, port=ns.port,
        base=ns.base, push=ns.push, k8s=Path(ns.k8s) if ns.k8s else None, run=ns.run,
        ready_timeout=ns.ready_timeout, dynamic_axes=_dynamic_axes(ns.dynamic_axes),
        detach=ns.detach, requirements=requirement_specs(ns.pip, ns.requirements), deps=ns.deps,
    )
    return ContainerizeArgs(ns.model_var, ns.sample_var, options, debug=ns.debug)


def _dynamic_axes(text: str | None) -> str | None:
    """``--dynamic-axes input:1`` checked now, before anything runs (capture parses it again)."""
    if text is None:
        return None
    try:
        parse_dynamic_axes(text)
    except CaptureError as exc:
        raise ConfigError(f"--dynamic-axes: {exc.message}", hint=f"for example --dynamic-axes input:1; usage: {USAGE}") from None
    return text
