"""Typed Dockerfile commands: each instruction's flags and arguments read and validated once.

    nodes = parse(text).instructions          # mlpack.builder.parser: lines, heredocs, JSON
    commands = instructions(nodes)            # here: one frozen dataclass per instruction

As BuildKit's ``instructions.Parse``: unknown flags, flags on instructions
that take none, duplicate flags, bad flag values, missing arguments and
heredocs where none may be are errors here, with the file and line, before
anything runs. Words are kept as written; variables expand when a step
runs (they depend on ARG/ENV values of the stage at that point).
"""

from __future__ import annotations

from mlpack.builder import runstep
from mlpack.builder.parser import Heredoc, Instruction, heredoc_word
from mlpack.builder.shell import Expander
from mlpack.errors import BuildError
from mlpack.values import dataclass

__all__ = [
    "Command", "FromCommand", "ArgCommand", "EnvCommand", "LabelCommand", "MaintainerCommand",
    "WorkdirCommand", "UserCommand", "ExposeCommand", "VolumeCommand", "StopSignalCommand",
    "CmdCommand", "EntrypointCommand", "ShellCommand", "HealthcheckCommand", "OnbuildCommand",
    "RunCommand", "CopyCommand", "AddCommand", "instructions", "command", "split_words", "SUPPORTED_FLAGS",
]

_STR, _BOOL, _LIST = "string", "bool", "list"

# Flags each instruction takes (BuildKit's set); ``_UNSUPPORTED`` are known but refused here.
_FLAGS: dict[str, dict[str, str]] = {
    "FROM": {"platform": _STR},
    "RUN": {"mount": _LIST, "network": _STR, "security": _STR, "device": _LIST},
    "COPY": {"from": _STR, "chown": _STR, "chmod": _STR, "link": _BOOL, "exclude": _LIST, "parents": _BOOL},
    "ADD": {"chown": _STR, "chmod": _STR, "link": _BOOL, "keep-git-dir": _BOOL, "checksum": _STR,
            "unpack": _BOOL, "exclude": _LIST},
    "HEALTHCHECK": {"interval": _STR, "timeout": _STR, "start-period": _STR, "start-interval": _STR,
                    "retries": _STR},
}
_UNSUPPORTED: dict[str, dict[str, str]] = {
    "RUN": {"device": "devices are not available to build steps"},
    "COPY": {"parents": "copy each directory to its own destination"},
    "ADD": {"keep-git-dir": "clone in a RUN step instead", "unpack": "ADD unpacks local archives; "
            "for a remote one, download it in a RUN step"},
}
SUPPORTED_FLAGS = {cmd: tuple(sorted(n for n in flags if n not in _UNSUPPORTED.get(cmd, {})))
                   for cmd, flags in _FLAGS.items()}


@dataclass(frozen=True)
class Command:
    """Base of every command: ``node`` is the parsed instruction (line, text)."""

    node: Instruction

    @property
    def line(self) -> int:
        return self.node.line

    @property
    def original(self) -> str:
        return self.node.original

    def error(self, message: str, *, hint: str | None = None) -> BuildError:
        return self.node.error(message, hint=hint)


@dataclass(frozen=True)
class FromCommand(Command):
    base: str                     # as written; expanded with the global ARGs
    name: str | None              # lower-cased AS name
    platform: str | None


@dataclass(frozen=True)
class ArgCommand(Command):
    args: tuple[tuple[str, str | None], ...]    # (name, default as written or None)


@dataclass(frozen=True)
class EnvCommand(Command):
    pairs: tuple[tuple[str, str], ...]          # key and value as written
    legacy: bool = False                        # ``ENV key value`` form


@dataclass(frozen=True)
class LabelCommand(Command):
    pairs: tuple[tuple[str, str], ...]
    legacy: bool = False


@dataclass(frozen=True)
class MaintainerCommand(Command):
    maintainer: str


@dataclass(frozen=True)
class WorkdirCommand(Command):
    path: str


@dataclass(frozen=True)
class UserCommand(Command):
    user: str


@dataclass(frozen=True)
class ExposeCommand(Command):
    ports: tuple[str, ...]


@dataclass(frozen=True)
class VolumeCommand(Command):
    paths: tuple[str, ...]
    json: bool


@dataclass(frozen=True)
class StopSignalCommand(Command):
    signal: str


@dataclass(frozen=True)
class CmdCommand(Command):
    args: tuple[str, ...]         # exec form, or one shell-form string
    json: bool


@dataclass(frozen=True)
class EntrypointCommand(Command):
    args: tuple[str, ...]         # empty: reset
    json: bool


@dataclass(frozen=True)
class ShellCommand(Command):
    argv: tuple[str, ...]


@dataclass(frozen=True)
class HealthcheckCommand(Command):
    test: tuple[str, ...]         # ("NONE",), ("CMD", ...) or ("CMD-SHELL", script)
    interval: str | None = None
    timeout: str | None = None
    start_period: str | None = None
    start_interval: str | None = None
    retries: str | None = None


@dataclass(frozen=True)
class OnbuildCommand(Command):
    expression: str               # the trigger as written (heredoc bodies appended)
    trigger: "AnyCommand"


@dataclass(frozen=True)
class RunCommand(Command):
    args: tuple[str, ...]         # exec form, or one shell-form script
    json: bool
    mounts: tuple[str, ...] = ()  # ``--mount`` values as written (validated; expanded when run)
    network: str | None = None
    security: str | None = None
    heredocs: tuple[Heredoc, ...] = ()

    def argv(self, shell: list[str]) -> list[str]:
        """The process a RUN starts: exec form as is, shell form through SHELL; a
        single heredoc that is the whole command runs as a script, by its own
        interpreter when it starts with ``#!`` (BuildKit's rule)."""
        if self.json:
            return list(self.args)
        script = self.args[0]
        if not self.heredocs:
            return shell + [script]
        if heredoc_word(script.strip()) is not None:  # the whole command is one heredoc
            body = self.heredocs[0].content
            if body.startswith("#!"):
                return _shebang_argv(body)
            return shell + [body]
        for doc in self.heredocs:
            script += f"\n{doc.content}{doc.name}"
        return shell + [script]


@dataclass(frozen=True)
class CopyCommand(Command):
    sources: tuple[str, ...]      # as written; a heredoc source is its name (see ``inline``)
    dest: str
    inline: tuple[Heredoc, ...] = ()    # heredoc sources, each written to a file named after it
    from_: str | None = None
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    exclude: tuple[str, ...] = ()
    json: bool = False


@dataclass(frozen=True)
class AddCommand(Command):
    sources: tuple[str, ...]
    dest: str
    inline: tuple[Heredoc, ...] = ()
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    exclude: tuple[str, ...] = ()
    checksum: str | None = None
    json: bool = False


AnyCommand = (
    FromCommand | ArgCommand | EnvCommand | LabelCommand | MaintainerCommand | WorkdirCommand | UserCommand
    | ExposeCommand | VolumeCommand | StopSignalCommand | CmdCommand | EntrypointCommand | ShellCommand
    | HealthcheckCommand | OnbuildCommand | RunCommand | CopyCommand | AddCommand
)


def _shebang_argv(body: str) -> list[str]:
    """Run a ``#!`` script by its interpreter, fed on stdin through /dev/stdin
    (the kernel's shebang rule: the interpreter and at most one argument)."""
    first = body.split("\n", 1)[0][2:].strip()
    interp, _, arg = first.partition(" ")
    delim = "MLPACK_SCRIPT_EOF"
    while delim in body:
        delim += "_"
    words = [interp] + ([arg.strip()] if arg.strip() else []) + ["/dev/stdin"]
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    return ["/bin/sh", "-c", f"exec {quoted} <<'{delim}'\n{body}{delim}\n"]


# -- flags ------------------------------------------------------------------------------

def _flags(node: Instruction) -> dict[str, object]:
    """Parse ``node.flags`` against its instruction's set, once: strings, bools
    (``--link``, ``--link=false``) and repeatable lists."""
    spec = _FLAGS.get(node.cmd, {})
    out: dict[str, object] = {}
    for raw in node.flags:
        name, eq, value = raw[2:].partition("=") if raw.startswith("--") else (raw, "", "")
        kind = spec.get(name)
        if kind is None:
            supported = SUPPORTED_FLAGS.get(node.cmd, ())
            raise node.error(
                f"unknown flag --{name}" if raw.startswith("--") else f"bad flag {raw!r}",
                hint=(f"{node.cmd} accepts: " + ", ".join(f"--{n}" for n in supported)) if supported
                else f"{node.cmd} takes no flags")
        if kind == _BOOL:
            if eq and value.lower() not in ("true", "false"):
                raise node.error(f"flag --{name} is true or false, not {value!r}")
            out[name] = not eq or value.lower() == "true"
        elif kind == _LIST:
            if not eq:
                raise node.error(f"flag --{name} needs a value (--{name}=...)")
            out.setdefault(name, [])
            out[name].append(value)  # type: ignore[attr-defined]
        else:
            if not eq:
                raise node.error(f"flag --{name} needs a value (--{name}=...)")
            if name in out:
                raise node.error(f"flag --{name} is given twice")
            out[name] = value
    for name, hint in _UNSUPPORTED.get(node.cmd, {}).items():
        if out.get(name):
            raise node.error(f"--{name} is not supported", hint=hint)
    return out


def _one(flags: dict[str, object], name: str) -> str | None:
    value = flags.get(name)
    return value if isinstance(value, str) else None


def split_words(text: str, escape: str = "\\") -> list[str]:
    """BuildKit's parseWords: split on unquoted whitespace, quotes and escapes kept
    (ENV/LABEL/ARG key=value lists; each word expands later)."""
    words: list[str] = []
    current: list[str] = []
    quote = ""
    blank_ok = False
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if quote:
            current.append(ch)
            if ch == escape and quote != "'" and i + 1 < n:
                current.append(text[i + 1])
                i += 1
            elif ch == quote:
                quote = ""
        elif ch.isspace():
            if current or blank_ok:
                words.append("".join(current))
            current, blank_ok = [], False
        elif ch in "\"'":
            quote, blank_ok = ch, True
            current.append(ch)
        elif ch == escape:
            if i + 1 < n:
                current.append(text[i:i + 2])
                i += 1
        else:
            current.append(ch)
        i += 1
    if current or blank_ok:
        words.append("".join(current))
    return words


# -- one instruction ------------------------------------------------------------------

def _kv_pairs(node: Instruction, escape: str) -> tuple[tuple[tuple[str, str], ...], bool]:
    words = split_words(node.args, escape)
    if not words:
        raise node.error(f"{node.cmd} requires at least one argument", hint=f"write {node.cmd} KEY=value")
    if "=" not in words[0]:
        parts = node.args.strip().split(None, 1)
        if len(parts) < 2:
            raise node.error(f"{node.cmd} must have two arguments", hint=f"write {node.cmd} KEY=value")
        return ((parts[0], parts[1]),), True
    pairs = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq:
            raise node.error(f"can't find = in {word!r}; must be of the form name=value",
                             hint="quote values that contain spaces")
        if not key:
            raise node.error(f"{node.cmd} names can not be blank")
        pairs.append((key, value))
    return tuple(pairs), False


def _needs_args(node: Instruction) -> None:
    if not node.args.strip():
        raise node.error(f"{node.cmd} requires at least one argument")


def _sources_and_dest(node: Instruction, escape: str) -> tuple[tuple[str, ...], str, tuple[Heredoc, ...]]:
    words = list(node.json) if node.json is not None else split_words(node.args, escape)
    if len(words) < 2:
        raise node.error(f"{node.cmd} requires at least two arguments: source(s) and destination",
                         hint=f"{node.cmd} <src>... <dest>")
    *sources, dest = words
    if node.json is None and heredoc_word(dest) is not None:
        raise node.error(f"{node.cmd} cannot accept a heredoc as a destination")
    docs = {d.name: d for d in node.heredocs}
    inline: list[Heredoc] = []
    plain: list[str] = []
    for src in sources:
        marker = heredoc_word(src) if node.json is None else None
        if marker is not None and marker[0] in docs:
            inline.append(docs[marker[0]])
            plain.append(marker[0])
        else:
            plain.append(src)
    return tuple(plain), dest, tuple(inline)


def _validate_mounts(node: Instruction, mounts: list[str]) -> None:
    # variables stay as written: only the structure is checked here
    runstep.parse_mounts(node, mounts, Expander({}, skip_unset=True))


def command(node: Instruction, escape: str = "\\") -> AnyCommand:
    """The typed command of one parsed instruction (``escape``: the Dockerfile's
    escape character); raises BuildError naming its line."""
    cmd = node.cmd
    if cmd == "ONBUILD":
        return _onbuild(node, escape)
    flags = _flags(node)
    args = node.args.strip()
    if cmd == "FROM":
        words = args.split()
        if len(words) == 3 and words[1].upper() == "AS":
            name = words[2].lower()
            if not (name[0].isalpha() and name.isascii() and all(c.isalnum() or c in "-_." for c in name)):
                raise node.error(f"invalid name for build stage: {words[2]!r}, name can't start with a number "
                                 "or contain symbols")
        elif len(words) == 1:
            name = None
        else:
            raise node.error("FROM requires either one or three arguments", hint="FROM <image> [AS <name>]")
        return FromCommand(node, base=words[0], name=name, platform=_one(flags, "platform"))
    if cmd == "ARG":
        words = split_words(args, escape)
        if not words:
            raise node.error("ARG requires at least one argument", hint="write ARG NAME or ARG NAME=default")
        out: list[tuple[str, str | None]] = []
        for word in words:
            name, eq, value = word.partition("=")
            if not name or not (name[0].isalpha() or name[0] == "_") or not all(c.isalnum() or c == "_" for c in name):
                raise node.error(f"invalid ARG name {name!r}")
            out.append((name, value if eq else None))
        return ArgCommand(node, args=tuple(out))
    if cmd in ("ENV", "LABEL"):
        pairs, legacy = _kv_pairs(node, escape)
        return (EnvCommand if cmd == "ENV" else LabelCommand)(node, pairs=pairs, legacy=legacy)
    if cmd == "MAINTAINER":
        _needs_args(node)
        return MaintainerCommand(node, maintainer=args)
    if cmd == "WORKDIR":
        _needs_args(node)
        return WorkdirCommand(node, path=args)
    if cmd == "USER":
        _needs_args(node)
        return UserCommand(node, user=args)
    if cmd == "STOPSIGNAL":
        _needs_args(node)
        return StopSignalCommand(node, signal=args)
    if cmd == "EXPOSE":
        _needs_args(node)
        return ExposeCommand(node, ports=tuple(args.split()))
    if cmd == "VOLUME":
        paths = node.json if node.json is not None else tuple(args.split())
        if not paths or any(not p.strip() for p in paths):
            raise node.error("VOLUME specified can not be an empty string")
        return VolumeCommand(node, paths=tuple(paths), json=node.json is not None)
    if cmd == "SHELL":
        if node.json is None or not node.json:
            raise node.error("SHELL requires the arguments to be in JSON form", hint='SHELL ["/bin/bash", "-c"]')
        return ShellCommand(node, argv=node.json)
    if cmd in ("CMD", "ENTRYPOINT"):
        cls = CmdCommand if cmd == "CMD" else EntrypointCommand
        if node.json is not None:
            return cls(node, args=node.json, json=True)
        return cls(node, args=(args,) if args else (), json=False)
    if cmd == "HEALTHCHECK":
        return _healthcheck(node, flags, args)
    if cmd == "RUN":
        if node.json is None and not args:
            raise node.error("RUN requires at least one argument")
        if node.json is not None and not node.json:
            raise node.error("RUN [] has no command")
        mounts = list(flags.get("mount", []))  # type: ignore[call-overload]
        _validate_mounts(node, mounts)
        network = _one(flags, "network")
        if network is not None:
            runstep.parse_network(node, [network])
        security = _one(flags, "security")
        if security not in (None, "sandbox"):
            if security == "insecure":
                raise node.error("RUN --security=insecure is not allowed", hint="mlpack runs RUN steps sandboxed")
            raise node.error(f"--security={security} is not sandbox or insecure")
        return RunCommand(node, args=node.json if node.json is not None else (args,), json=node.json is not None,
                          mounts=tuple(mounts), network=network, security=security, heredocs=node.heredocs)
    if cmd == "COPY":
        sources, dest, inline = _sources_and_dest(node, escape)
        return CopyCommand(node, sources=sources, dest=dest, inline=inline, from_=_one(flags, "from"),
                           chown=_one(flags, "chown"), chmod=_one(flags, "chmod"), link=bool(flags.get("link")),
                           exclude=tuple(flags.get("exclude", [])), json=node.json is not None)  # type: ignore[arg-type]
    if cmd == "ADD":
        sources, dest, inline = _sources_and_dest(node, escape)
        return AddCommand(node, sources=sources, dest=dest, inline=inline, chown=_one(flags, "chown"),
                          chmod=_one(flags, "chmod"), link=bool(flags.get("link")),
                          exclude=tuple(flags.get("exclude", [])), checksum=_one(flags, "checksum"),  # type: ignore[arg-type]
                          json=node.json is not None)
    raise node.error("instruction not supported")  # pragma: no cover - the parser knows the list


def _healthcheck(node: Instruction, flags: dict[str, object], args: str) -> HealthcheckCommand:
    parts = args.split(None, 1)
    kind = parts[0].upper() if parts else ""
    rest = parts[1].strip() if len(parts) == 2 else ""
    if kind == "NONE":
        if flags or rest:
            raise node.error("HEALTHCHECK NONE takes no arguments")
        return HealthcheckCommand(node, test=("NONE",))
    if kind != "CMD":
        raise node.error(f"unknown type {parts[0] if parts else ''!r} in HEALTHCHECK (try CMD)",
                         hint="HEALTHCHECK [flags] CMD command, or HEALTHCHECK NONE")
    if node.json is not None:
        test: tuple[str, ...] = ("CMD", *node.json)
    elif rest:
        test = ("CMD-SHELL", rest)
    else:
        raise node.error("missing command after HEALTHCHECK CMD")
    return HealthcheckCommand(node, test=test, interval=_one(flags, "interval"), timeout=_one(flags, "timeout"),
                              start_period=_one(flags, "start-period"),
                              start_interval=_one(flags, "start-interval"), retries=_one(flags, "retries"))


def _onbuild(node: Instruction, escape: str) -> OnbuildCommand:
    _flags(node)  # ONBUILD itself takes none
    if node.sub is None:
        raise node.error("ONBUILD requires at least one argument")
    if node.sub.cmd == "ONBUILD":
        raise node.error("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if node.sub.cmd in ("FROM", "MAINTAINER"):
        raise node.error(f"{node.sub.cmd} isn't allowed as an ONBUILD trigger")
    trigger = command(node.sub, escape)
    expression = node.sub.original + "".join(f"\n{d.content}{d.name}" for d in node.heredocs)
    return OnbuildCommand(node, expression=expression, trigger=trigger)


def instructions(nodes: tuple[Instruction, ...] | list[Instruction], *, escape: str = "\\",
                 problems: list[BuildError] | None = None) -> list[AnyCommand]:
    """Every node as its typed command. With ``problems`` given, a bad one is
    recorded there and skipped (``--check`` reports them all); else the first raises."""
    out: list[AnyCommand] = []
    for node in nodes:
        try:
            out.append(command(node, escape))
        except BuildError as exc:
            if problems is None:
                raise
            problems.append(exc)
    return out
