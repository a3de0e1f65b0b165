"""The stage graph: which stages a target needs, and ARG scoping before FROM.

``plan()`` splits the instructions at each FROM, expands each FROM with the
global ARGs (those declared before the first FROM, overridden by build
args, plus BuildKit's automatic platform args), and keeps only the stages
the target reaches through ``FROM <stage>``, ``COPY --from=<stage>`` and
``RUN --mount=...,from=<stage>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mlpack.builder.parser import Dockerfile, Instruction
from mlpack.builder.shell import Expander
from mlpack.errors import BuildError

__all__ = ["Stage", "Plan", "plan", "PLATFORM_ARGS", "parse_arg"]

# BuildKit defines these for every build; usable in FROM without a global ARG.
PLATFORM_ARGS = {
    "TARGETPLATFORM": "linux/amd64", "TARGETOS": "linux", "TARGETARCH": "amd64", "TARGETVARIANT": "",
    "BUILDPLATFORM": "linux/amd64", "BUILDOS": "linux", "BUILDARCH": "amd64", "BUILDVARIANT": "",
}
# Proxy args are always allowed and, like Docker, never recorded in history.
PROXY_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
                        "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"})


@dataclass
class Stage:
    """One FROM ... block: ``base`` is the expanded image or stage name."""

    index: int
    name: str | None
    base: str
    platform: str | None
    from_instruction: Instruction
    instructions: list[Instruction] = field(default_factory=list)
    deps: set[int] = field(default_factory=set)
    base_stage: int | None = None

    @property
    def label(self) -> str:
        return self.name or str(self.index)


@dataclass
class Plan:
    """Stages to build in order (dependencies first); ``target`` is the last one."""

    stages: list[Stage]
    all_stages: list[Stage]
    global_args: dict[str, str | None]
    target: Stage
    unused_build_args: set[str]


def parse_arg(instr: Instruction, expander: Expander) -> list[tuple[str, str | None]]:
    """``ARG a b=1 c="x y"`` -> [(a, None), (b, "1"), (c, "x y")]."""
    words = _raw_words(instr.args)
    if not words:
        raise instr.error("ARG needs a name", hint="write ARG NAME or ARG NAME=default")
    out: list[tuple[str, str | None]] = []
    for word in words:
        name, eq, value = word.partition("=")
        if not name or not (name[0].isalpha() or name[0] == "_") or not all(c.isalnum() or c == "_" for c in name):
            raise instr.error(f"invalid ARG name {name!r}")
        out.append((name, expander.word(value) if eq else None))
    return out


def _raw_words(text: str) -> list[str]:
    """Split on unquoted whitespace, keeping quotes (ENV/LABEL/ARG key=value lists)."""
    words: list[str] = []
    current: list[str] = []
    quote = ""
    escaped = False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\" and quote != "'":
            current.append(ch)
            escaped = True
        elif quote:
            current.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            current.append(ch)
            quote = ch
        elif ch.isspace():
            if current:
                words.append("".join(current))
                current = []
        else:
            current.append(ch)
    if current:
        words.append("".join(current))
    return words


def _stage_ref(value: str, by_name: dict[str, int], current: int) -> int | None:
    if value.isdigit():
        idx = int(value)
        return idx if idx < current else None
    return by_name.get(value.lower())


def plan(dockerfile: Dockerfile, *, build_args: Mapping[str, str], target: str | None) -> Plan:
    """Split into stages, expand FROM lines and pick what ``target`` needs."""
    global_args: dict[str, str | None] = {}
    stages: list[Stage] = []
    by_name: dict[str, int] = {}
    consumed: set[str] = set()
    for instr in dockerfile.instructions:
        if instr.cmd == "FROM":
            env = {**PLATFORM_ARGS, **{k: v for k, v in global_args.items() if v is not None}}
            expander = Expander(env, escape=dockerfile.escape)
            flags = instr.flag_dict({"platform": True})
            words = instr.args.split()
            if len(words) not in (1, 3) or (len(words) == 3 and words[1].upper() != "AS"):
                raise instr.error("expected FROM <image> [AS <name>]")
            base = expander.word(words[0])
            consumed |= expander.used
            if not base:
                raise instr.error(f"base image {words[0]!r} expands to nothing",
                                  hint="pass the ARG it uses with --build-arg or give it a default")
            name = words[2].lower() if len(words) == 3 else None
            if name is not None:
                if name in by_name:
                    raise instr.error(f"stage name {name!r} is used twice")
                by_name[name] = len(stages)
            platform = expander.word(flags["platform"][0]) if "platform" in flags else None
            if platform and platform not in ("linux/amd64", "linux/x86_64"):
                raise instr.error(f"platform {platform} cannot be built here",
                                  hint="mlpack builds linux/amd64 images natively; drop --platform")
            stage = Stage(index=len(stages), name=name, base=base, platform=platform, from_instruction=instr)
            ref = _stage_ref(base.lower(), {k: v for k, v in by_name.items() if v < stage.index}, stage.index)
            if ref is not None and not base.isdigit():
                stage.base_stage = ref
                stage.deps.add(ref)
            stages.append(stage)
        elif not stages:
            if instr.cmd != "ARG":
                raise instr.error("only ARG may come before the first FROM",
                                  hint="start the Dockerfile with FROM <image>")
            expander = Expander({**PLATFORM_ARGS, **{k: v for k, v in global_args.items() if v is not None}},
                                escape=dockerfile.escape)
            for name, value in parse_arg(instr, expander):
                global_args[name] = build_args.get(name, value)
                consumed.add(name)
        else:
            stages[-1].instructions.append(instr)
    if not stages:
        raise BuildError(f"{dockerfile.file}: no FROM instruction", hint="a Dockerfile starts with FROM <image>",
                         file=dockerfile.file)
    # dependencies through --from
    for stage in stages:
        for instr in stage.instructions:
            refs: list[str] = []
            for flag in instr.flags:
                if flag.startswith("--from="):
                    refs.append(flag[len("--from="):])
                elif flag.startswith("--mount="):
                    for part in flag[len("--mount="):].split(","):
                        if part.startswith("from="):
                            refs.append(part[5:])
            for ref in refs:
                ref = ref.strip("\"'")
                idx = _stage_ref(ref.lower(), by_name, stage.index)
                if idx is not None and idx != stage.index and (ref.isdigit() or ref.lower() in by_name):
                    if idx >= stage.index and not ref.isdigit():
                        raise instr.error(f"stage {ref!r} is defined after it is used")
                    stage.deps.add(idx)
        for instr in stage.instructions:
            if instr.cmd == "ARG":
                for word in _raw_words(instr.args):
                    consumed.add(word.partition("=")[0])
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
                global_args=global_args, target=chosen, unused_build_args=unused)
