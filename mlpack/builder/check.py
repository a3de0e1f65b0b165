"""``mlpack build --check``: every problem of a Dockerfile, with its line, without building.

Reads the file the way a build does (parser, typed instructions, stage
plan) but collects the problems instead of stopping at the first one, and
adds the checks BuildKit's linter makes that mlpack can make without the
base images: legacy ``KEY value`` forms, empty continuation lines, FROM
using an ARG that is not declared before it, variables no ARG or ENV defines
(in stages built from scratch), build args no ARG consumes, and ``--from``
names that are no stage but look like one (a typo would be pulled from a
registry).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping

from mlpack.builder import instructions as ins
from mlpack.builder.parser import Dockerfile, parse
from mlpack.builder.shell import Expander
from mlpack.builder.stages import PLATFORM_ARGS, PROXY_ARGS, plan, stage_refs
from mlpack.errors import BuildError
from mlpack.values import dataclass

__all__ = ["Finding", "check", "lint"]

_GUARDED_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?[-+?]")
_VAR_RE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")


@dataclass(frozen=True)
class Finding:
    """One problem (``error``) or lint warning, at a line (0: the whole file)."""

    line: int
    message: str
    severity: str = "error"
    hint: str | None = None

    def render(self, file: str) -> str:
        where = f"{file}:{self.line}" if self.line else file
        return f"{where}: {self.severity}: {self.message}" + (f"\n  hint: {self.hint}" if self.hint else "")


def lint(dockerfile: Dockerfile, commands: list[ins.AnyCommand]) -> list[Finding]:
    """Warnings a build prints but does not stop for (BuildKit's linter rules)."""
    out = [Finding(line, message, "warning") for line, message in dockerfile.warnings]
    for cmd in commands:
        if isinstance(cmd, (ins.EnvCommand, ins.LabelCommand)) and cmd.legacy:
            name = cmd.node.cmd
            out.append(Finding(cmd.line, f"legacy '{name} key value' form; write '{name} key=value' "
                                         "(BuildKit's LegacyKeyValueFormat)", "warning"))
    return out


def _finding(exc: BuildError) -> Finding:
    return Finding(int(getattr(exc, "line", 0) or 0), _message(exc), hint=exc.hint)


def _message(exc: BuildError) -> str:
    text = exc.message
    prefix = f"{getattr(exc, 'file', '')}:{getattr(exc, 'line', '')}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def check(text: str, *, file: str = "Dockerfile", build_args: Mapping[str, str] | None = None,
          target: str | None = None) -> list[Finding]:
    """Every problem and warning of ``text``, ordered by line."""
    problems: list[BuildError] = []
    try:
        dockerfile = parse(text, file=file, problems=problems)
    except BuildError as exc:  # a bad escape directive: nothing else can be read
        return [_finding(exc)]
    commands = ins.instructions(dockerfile.instructions, escape=dockerfile.escape, problems=problems)
    findings = [_finding(p) for p in problems]
    findings += lint(dockerfile, commands)
    try:
        planned = plan(dockerfile, build_args=dict(build_args or {}), target=target, commands=commands)
    except BuildError as exc:
        findings.append(_finding(exc))
    else:
        findings += [Finding(0, f"build arg {name} is not consumed by any ARG", "warning")
                     for name in sorted(planned.unused_build_args)]
    findings += _arg_use(commands)
    findings += _undefined_vars(commands)
    findings += _from_names(commands)
    return sorted(set(findings), key=lambda f: (f.line, f.severity, f.message))


def _arg_use(commands: list[ins.AnyCommand]) -> list[Finding]:
    """FROM may use only global ARGs declared above it (and the platform args)."""
    declared = set(PLATFORM_ARGS)
    out = []
    seen_from = False
    for cmd in commands:
        if isinstance(cmd, ins.ArgCommand) and not seen_from:
            declared.update(name for name, _ in cmd.args)
        elif isinstance(cmd, ins.FromCommand):
            seen_from = True
            for word in (cmd.base, cmd.platform or ""):
                for match in _VAR_RE.finditer(word):
                    name = match.group(1) or match.group(2)
                    if name not in declared:
                        out.append(Finding(cmd.line, f"FROM uses ${name}, which no ARG before the first FROM "
                                                     "declares (it expands to nothing)"))
    return out


def _words(cmd: ins.AnyCommand) -> list[str]:
    """The words of ``cmd`` that the front end expands (RUN, CMD and heredoc bodies are the shell's)."""
    if isinstance(cmd, (ins.EnvCommand, ins.LabelCommand)):
        return [w for pair in cmd.pairs for w in pair]
    if isinstance(cmd, (ins.CopyCommand, ins.AddCommand)):
        flags = [cmd.chown, cmd.chmod, *cmd.exclude] + ([cmd.from_] if isinstance(cmd, ins.CopyCommand) else [])
        inline = {d.name for d in cmd.inline}
        return [w for w in (*cmd.sources, cmd.dest, *flags) if w is not None and w not in inline]
    if isinstance(cmd, ins.WorkdirCommand):
        return [cmd.path]
    if isinstance(cmd, ins.UserCommand):
        return [cmd.user]
    if isinstance(cmd, ins.StopSignalCommand):
        return [cmd.signal]
    if isinstance(cmd, (ins.ExposeCommand, ins.VolumeCommand)):
        return list(cmd.ports if isinstance(cmd, ins.ExposeCommand) else cmd.paths)
    return []


def _undefined_vars(commands: list[ins.AnyCommand]) -> list[Finding]:
    """BuildKit's UndefinedVar, where mlpack can know every variable: in stages that
    start from scratch (directly or through other stages); an image base's
    environment is not known without pulling it."""
    known: dict[str, set[str] | None] = {}  # stage name -> declared names (None: unknowable)
    declared: set[str] | None = None
    out = []
    for cmd in commands:
        if isinstance(cmd, ins.FromCommand):
            base = cmd.base.lower()
            declared = {"PATH"} if base == "scratch" else (set(known[base]) if known.get(base) is not None else None)
            if cmd.name:
                known[cmd.name] = declared
            continue
        if declared is None:
            continue
        expander = Expander({})
        guarded: set[str] = set()  # ${X:-default} and the like say what happens when X is unset
        for word in _words(cmd):
            guarded.update(_GUARDED_RE.findall(word))
            try:
                expander.word(word)
            except BuildError:
                continue  # a bad substitution is an error of its own when the step runs
        for name in sorted(expander.used - guarded - declared - set(PLATFORM_ARGS) - PROXY_ARGS):
            out.append(Finding(cmd.line, f"${name} is not defined by an ARG or ENV above it in this stage "
                                         "(it expands to nothing)", "warning"))
        if isinstance(cmd, ins.ArgCommand):
            declared.update(name for name, _ in cmd.args)
        elif isinstance(cmd, ins.EnvCommand):
            declared.update(key for key, _ in cmd.pairs)
    return out


def _from_names(commands: list[ins.AnyCommand]) -> list[Finding]:
    """``--from`` names: a number must be a stage above; a name that is no stage but
    is close to one is most likely a typo (it would be pulled as an image)."""
    names: list[str] = []
    index = -1
    out = []
    for cmd in commands:
        if isinstance(cmd, ins.FromCommand):
            index += 1
            if cmd.name:
                names.append(cmd.name)
            continue
        for ref in stage_refs(cmd):
            if "$" in ref:
                continue
            if ref.isdigit():
                if int(ref) >= index:
                    out.append(Finding(cmd.line, f"from={ref} names stage {ref}, which is not above this one"))
                continue
            if ref.lower() in names:
                continue
            close = difflib.get_close_matches(ref.lower(), names, n=1, cutoff=0.6)
            if close:
                out.append(Finding(cmd.line, f"from={ref} is not a stage (stages: {', '.join(names)}); "
                                             "as written it is pulled from a registry as an image",
                                   hint=f"did you mean from={close[0]}?"))
    return out
