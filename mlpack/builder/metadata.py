"""Metadata steps: they change the image config and add no layer.

ARG, ENV, LABEL, MAINTAINER, USER, EXPOSE, VOLUME, STOPSIGNAL, CMD,
ENTRYPOINT, SHELL, ONBUILD, HEALTHCHECK. Each is a function of the stage
state and its typed command (:mod:`mlpack.builder.instructions`), found by
the command's type in ``STEPS``. They are replayed on every build (cheap)
and are not part of any cache key, except through what later RUN steps see
(env, user, workdir, shell).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from mlpack.builder import instructions as ins
from mlpack.builder.imageconfig import parse_port
from mlpack.builder.stages import PLATFORM_ARGS
from mlpack.builder.state import StageState
from mlpack.errors import BuildError
from mlpack.values import dataclass, field

TYPE_CHECKING = False  # typing is the type checker's: a CLI rebuild does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

__all__ = ["Scope", "STEPS"]


@dataclass(frozen=True)
class Scope:
    """What metadata steps read besides the stage: the escape character and the ARG values."""

    escape: str
    build_args: Mapping[str, str]
    global_args: Mapping[str, str | None]
    platform_args: Mapping[str, str] = field(default_factory=lambda: dict(PLATFORM_ARGS))


def arg(state: StageState, cmd: ins.ArgCommand, scope: Scope) -> str:
    expander = state.expander(scope.escape)
    for name, default in cmd.args:
        if name in scope.build_args:
            value: str | None = scope.build_args[name]
        elif default is not None:
            value = expander.word(default)
        else:
            value = scope.global_args.get(name) or scope.platform_args.get(name)
        if value is not None:
            state.args[name] = value
    return f"ARG {cmd.node.args}"


def env(state: StageState, cmd: ins.EnvCommand, scope: Scope) -> str:
    expander = state.expander(scope.escape)  # every value sees the env from before this line
    for key, value in cmd.pairs:
        state.cfg.set_env(expander.word(key), expander.word(value))
    return cmd.original


def label(state: StageState, cmd: ins.LabelCommand, scope: Scope) -> str:
    expander = state.expander(scope.escape)
    state.cfg.add_labels({expander.word(key): expander.word(value) for key, value in cmd.pairs})
    return cmd.original


def maintainer(state: StageState, cmd: ins.MaintainerCommand, scope: Scope) -> str:
    state.cfg.author = cmd.maintainer  # docker and BuildKit: the image's Author, not a label
    return cmd.original


def user(state: StageState, cmd: ins.UserCommand, scope: Scope) -> str:
    value = state.expander(scope.escape).word(cmd.user)
    if not value or " " in value:
        raise cmd.error("USER takes one user[:group]")
    state.cfg.set_user(value)
    return cmd.original


def expose(state: StageState, cmd: ins.ExposeCommand, scope: Scope) -> str:
    ports: list[str] = []
    expander = state.expander(scope.escape)
    for word in (w for raw in cmd.ports for w in expander.words(raw)):
        spec, _, proto = word.partition("/")
        first, dash, last = spec.partition("-")
        try:
            numbers = range(int(first), int(last) + 1) if dash else [int(first)]
            for n in numbers:
                ports.append(parse_port(f"{n}/{proto}" if proto else str(n)))
        except ValueError:
            raise cmd.error(f"invalid port {word!r}", hint="use EXPOSE 8080 or 8080/tcp") from None
    if not ports:
        raise cmd.error("EXPOSE needs a port")
    state.cfg.expose(ports)
    return cmd.original


def volume(state: StageState, cmd: ins.VolumeCommand, scope: Scope) -> str:
    expander = state.expander(scope.escape)
    paths = [expander.word(p) for p in cmd.paths]
    if any(not p for p in paths):
        raise cmd.error("VOLUME needs a path")
    state.cfg.add_volumes(paths)
    return cmd.original


def stopsignal(state: StageState, cmd: ins.StopSignalCommand, scope: Scope) -> str:
    sig = state.expander(scope.escape).word(cmd.signal)
    if not sig or not (sig.isdigit() or sig.upper().startswith("SIG")):
        raise cmd.error(f"invalid stop signal {sig!r}", hint="use e.g. SIGTERM or 15")
    state.cfg.set_stop_signal(sig)
    return cmd.original


def _argv(state: StageState, args: tuple[str, ...], json: bool) -> list[str]:
    return list(args) if json else state.shell + list(args)


def cmd_(state: StageState, cmd: ins.CmdCommand, scope: Scope) -> str:
    state.cfg.set_cmd(_argv(state, cmd.args, cmd.json))
    state.cmd_set = True
    return cmd.original


def entrypoint(state: StageState, cmd: ins.EntrypointCommand, scope: Scope) -> str:
    state.cfg.set_entrypoint(_argv(state, cmd.args, cmd.json) if cmd.args else None, keep_cmd=state.cmd_set)
    return cmd.original


def shell(state: StageState, cmd: ins.ShellCommand, scope: Scope) -> str:
    state.shell = list(cmd.argv)
    state.cfg.set_shell(list(cmd.argv))
    return cmd.original


def onbuild(state: StageState, cmd: ins.OnbuildCommand, scope: Scope) -> str:
    state.cfg.add_onbuild(cmd.expression)
    return cmd.original


def healthcheck(state: StageState, cmd: ins.HealthcheckCommand, scope: Scope) -> str:
    if cmd.test == ("NONE",):
        state.cfg.disable_healthcheck()
        return cmd.original
    try:
        state.cfg.healthcheck(list(cmd.test), interval=cmd.interval, timeout=cmd.timeout,
                              start_period=cmd.start_period, start_interval=cmd.start_interval,
                              retries=cmd.retries)
    except (ValueError, BuildError) as exc:
        raise cmd.error(str(exc)) from None
    return cmd.original


# Each returns the history text of the step.
STEPS: dict[type, Callable[[StageState, Any, Scope], str]] = {
    ins.ArgCommand: arg, ins.EnvCommand: env, ins.LabelCommand: label, ins.MaintainerCommand: maintainer,
    ins.UserCommand: user, ins.ExposeCommand: expose, ins.VolumeCommand: volume,
    ins.StopSignalCommand: stopsignal, ins.CmdCommand: cmd_, ins.EntrypointCommand: entrypoint,
    ins.ShellCommand: shell, ins.OnbuildCommand: onbuild, ins.HealthcheckCommand: healthcheck,
}
