"""The stage graph: which stages a target needs, and ARG scoping before FROM.

``plan()`` splits the instructions at each FROM, expands each FROM with the
global ARGs (those declared before the first FROM, overridden by build
args, plus BuildKit's automatic platform args), and keeps only the stages
the target reaches through ``FROM <stage>``, ``COPY --from=<stage>`` and
``RUN --mount=...,from=<stage>``.
"""

from __future__ import annotations

from collections.abc import Mapping

from mlpack.builder.instructions import (
    AnyCommand, ArgCommand, CopyCommand, FromCommand, RunCommand, instructions,
)
from mlpack.builder.parser import Dockerfile, Instruction
from mlpack.builder.shell import Expander
from mlpack.errors import BuildError, MlpackError
from mlpack.values import dataclass, field

__all__ = ["Stage", "Plan", "plan", "stage_refs", "platform_args", "PLATFORM_ARGS", "PROXY_ARGS"]

# BuildKit defines these for every build; usable in FROM without a global ARG.
PLATFORM_ARGS = {
    "TARGETPLATFORM": "linux/amd64", "TARGETOS": "linux", "TARGETARCH": "amd64", "TARGETVARIANT": "",
    "BUILDPLATFORM": "linux/amd64", "BUILDOS": "linux", "BUILDARCH": "amd64", "BUILDVARIANT": "",
}


def platform_args(target: tuple[str, str], build: tuple[str, str] = ("linux", "amd64")) -> dict[str, str]:
    """BuildKit's automatic platform args for an image of ``target`` built on ``build``."""
    from mlpack.oci.platforms import platform_descriptor

    out: dict[str, str] = {}
    for prefix, (os_name, arch) in (("TARGET", target), ("BUILD", build)):
        variant = platform_descriptor((os_name, arch)).get("variant", "")
        out.update({f"{prefix}PLATFORM": f"{os_name}/{arch}" + (f"/{variant}" if variant else ""),
                    f"{prefix}OS": os_name, f"{prefix}ARCH": arch, f"{prefix}VARIANT": variant})
    return out


# Proxy args are always allowed and, like Docker, never recorded in history.
PROXY_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
                        "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"})


@dataclass
class Stage:
    """One FROM ... block: ``base`` is the expanded image or stage name."""

    index: int
    name: str | None
    base: str
    platform: str  # linux/arm64: FROM --platform's, else the build's
    from_command: FromCommand
    commands: list[AnyCommand] = field(default_factory=list)
    deps: set[int] = field(default_factory=set)
    base_stage: int | None = None

    @property
    def label(self) -> str:
        return self.name or str(self.index)

    @property
    def from_instruction(self) -> Instruction:
        return self.from_command.node


@dataclass
class Plan:
    """Stages to build in order (dependencies first); ``target`` is the last one."""

    stages: list[Stage]
    all_stages: list[Stage]
    global_args: dict[str, str | None]
    target: Stage
    unused_build_args: set[str]
    platform_args: dict[str, str] = field(default_factory=lambda: dict(PLATFORM_ARGS))

    def stage_names(self) -> str:
        """``a (0), b (1), 2`` for messages."""
        return ", ".join(f"{s.name} ({s.index})" if s.name else str(s.index) for s in self.all_stages)


def _stage_ref(value: str, by_name: dict[str, int], current: int) -> int | None:
    if value.isdigit():
        idx = int(value)
        return idx if idx < current else None
    return by_name.get(value.lower())


def stage_refs(cmd: AnyCommand) -> list[str]:
    """Stage or image names a command reads from (``--from``, ``--mount from=``)."""
    if isinstance(cmd, CopyCommand):
        return [cmd.from_] if cmd.from_ else []
    if isinstance(cmd, RunCommand):
        out = []
        for mount in cmd.mounts:
            for part in mount.split(","):
                key, _, value = part.partition("=")
                if key.strip().lower() == "from" and value:
                    out.append(value.strip())
        return out
    return []


def plan(dockerfile: Dockerfile, *, build_args: Mapping[str, str], target: str | None,
         commands: list[AnyCommand] | None = None, platform: tuple[str, str] | None = None) -> Plan:
    """Split into stages, expand FROM lines and pick what ``target`` needs (an image for
    ``platform``, this machine's when None: ``FROM --platform`` may only name that one)."""
    from mlpack.oci.platforms import host_platform, parse_platform, platform_text

    build_platform = host_platform()
    target_platform = platform or build_platform
    auto_args = platform_args(target_platform, build_platform)
    if commands is None:
        commands = instructions(dockerfile.instructions, escape=dockerfile.escape)
    global_args: dict[str, str | None] = {}
    stages: list[Stage] = []
    by_name: dict[str, int] = {}
    consumed: set[str] = set()
    for cmd in commands:
        if isinstance(cmd, FromCommand):
            env = {**auto_args, **{k: v for k, v in global_args.items() if v is not None}}
            expander = Expander(env, escape=dockerfile.escape)
            base = expander.word(cmd.base)
            consumed |= expander.used
            if not base:
                raise cmd.error(f"base image {cmd.base!r} expands to nothing",
                                hint="pass the ARG it uses with --build-arg or give it a default")
            name = cmd.name
            if name is not None:
                if name in by_name:
                    raise cmd.error(f"stage name {name!r} is used twice")
                by_name[name] = len(stages)
            platform = expander.word(cmd.platform) if cmd.platform is not None else None
            if platform:
                try:
                    platform = platform_text(parse_platform(platform))
                except MlpackError as exc:
                    raise cmd.error(f"FROM --platform={platform}: {exc.message}", hint=exc.hint) from None
            else:
                platform = platform_text(target_platform)
            stage = Stage(index=len(stages), name=name, base=base, platform=platform, from_command=cmd)
            ref = _stage_ref(base.lower(), {k: v for k, v in by_name.items() if v < stage.index}, stage.index)
            if ref is not None and not base.isdigit():
                stage.base_stage = ref
                stage.deps.add(ref)
            stages.append(stage)
        elif not stages:
            if not isinstance(cmd, ArgCommand):
                raise cmd.error("only ARG may come before the first FROM",
                                hint="start the Dockerfile with FROM <image>")
            expander = Expander({**auto_args, **{k: v for k, v in global_args.items() if v is not None}},
                                escape=dockerfile.escape)
            for name, value in cmd.args:
                global_args[name] = build_args.get(name, expander.word(value) if value is not None else None)
                consumed.add(name)
        else:
            stages[-1].commands.append(cmd)
    if not stages:
        raise BuildError(f"{dockerfile.file}: no FROM instruction", hint="a Dockerfile starts with FROM <image>",
                         file=dockerfile.file)
    # dependencies through --from
    for stage in stages:
        for cmd in stage.commands:
            for ref in stage_refs(cmd):
                idx = _stage_ref(ref.lower(), by_name, stage.index)
                if idx is not None and idx != stage.index and (ref.isdigit() or ref.lower() in by_name):
                    if idx >= stage.index and not ref.isdigit():
                        raise cmd.error(f"stage {ref!r} is defined after it is used")
                    stage.deps.add(idx)
            if isinstance(cmd, ArgCommand):
                consumed.update(name for name, _ in cmd.args)
    if target is None:
        chosen = stages[-1]
    else:
        idx = by_name.get(target.lower())
        if idx is None:
            names = ", ".join(s.name for s in stages if s.name) or "(none)"
            raise BuildError(f"target stage {target!r} not found in {dockerfile.file}",
                             hint=f"stages with names: {names}", file=dockerfile.file)
        chosen = stages[idx]
    needed: set[int] = set()
    todo = [chosen.index]
    while todo:
        idx = todo.pop()
        if idx in needed:
            continue
        needed.add(idx)
        todo.extend(stages[idx].deps)
    unused = set(build_args) - consumed - PROXY_ARGS - {"SOURCE_DATE_EPOCH"}
    return Plan(stages=[s for s in stages if s.index in needed], all_stages=stages,
                global_args=global_args, target=chosen, unused_build_args=unused, platform_args=auto_args)
