"""Dockerfile lexing: directives, comments, continuations, heredocs, flags, JSON form.

The parser turns text into :class:`Instruction` values and knows nothing of
what instructions mean; :mod:`mlpack.builder.instructions` gives them types.
It follows BuildKit's dockerfile/parser: parser directives only at the top,
comment lines dropped even inside continuations, the escape character
(``\\`` or backtick) ending a line joins it with the next one, and heredocs
(``<<EOF``, ``<<-EOF``, ``<<"EOF"``) after RUN, COPY and ADD.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from mlpack.errors import BuildError

__all__ = ["Heredoc", "Instruction", "Dockerfile", "parse", "KNOWN_INSTRUCTIONS"]

KNOWN_INSTRUCTIONS = frozenset({
    "FROM", "ARG", "ENV", "LABEL", "WORKDIR", "COPY", "ADD", "RUN", "USER",
    "EXPOSE", "VOLUME", "HEALTHCHECK", "CMD", "ENTRYPOINT", "SHELL",
    "STOPSIGNAL", "MAINTAINER", "ONBUILD",
})
# Instructions whose arguments may be a JSON array of strings.
JSON_CAPABLE = frozenset({"RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"})
HEREDOC_CAPABLE = frozenset({"RUN", "COPY", "ADD"})
FLAG_CAPABLE = frozenset({"FROM", "COPY", "ADD", "RUN", "HEALTHCHECK"})

_DIRECTIVE_RE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9_-]*)\s*=\s*(.*?)\s*$")
_HEREDOC_RE = re.compile(r"<<(-?)\s*(?:\"([^\"\s]+)\"|'([^'\s]+)'|([A-Za-z_][A-Za-z0-9_]*))")


@dataclass(frozen=True)
class Heredoc:
    """One here-document: ``name`` (the delimiter), ``content`` and whether
    variables expand in it (they do not when the delimiter was quoted)."""

    name: str
    content: str
    expand: bool
    chomp: bool = False  # <<- strips leading tabs


@dataclass(frozen=True)
class Instruction:
    """One instruction as written: ``cmd`` upper-cased, ``flags`` the raw
    ``--name=value`` words, ``args`` the rest (continuations joined),
    ``json`` its JSON-form arguments if it used that form."""

    cmd: str
    flags: tuple[str, ...]
    args: str
    line: int
    end_line: int
    original: str
    file: str = "Dockerfile"
    json: tuple[str, ...] | None = None
    heredocs: tuple[Heredoc, ...] = ()

    def error(self, message: str, *, hint: str | None = None) -> BuildError:
        """A BuildError that names the file, line and instruction."""
        return BuildError(
            f"{self.file}:{self.line}: {self.cmd}: {message}",
            hint=hint, file=self.file, line=self.line, instruction=self.original,
        )

    def flag_dict(self, allowed: dict[str, bool]) -> dict[str, list[str]]:
        """Parse ``--name=value`` flags; ``allowed`` maps names to "takes a value".

        Repeated flags accumulate (``--mount`` may come several times)."""
        out: dict[str, list[str]] = {}
        for raw in self.flags:
            name, eq, value = raw[2:].partition("=")
            if name not in allowed:
                raise self.error(
                    f"unknown flag --{name}",
                    hint=f"{self.cmd} accepts: " + ", ".join(f"--{n}" for n in sorted(allowed)) if allowed
                    else f"{self.cmd} takes no flags",
                )
            if allowed[name] and not eq:
                raise self.error(f"flag --{name} needs a value (--{name}=...)")
            if not allowed[name] and eq and value.lower() not in ("true", "false"):
                raise self.error(f"flag --{name} takes no value")
            out.setdefault(name, []).append(value if eq else "true")
        return out


@dataclass(frozen=True)
class Dockerfile:
    """Parsed file: ``directives`` (lower-case keys), ``instructions``, ``escape``."""

    instructions: tuple[Instruction, ...]
    directives: dict[str, str] = field(default_factory=dict)
    escape: str = "\\"
    file: str = "Dockerfile"


def _read_directives(lines: list[str], file: str) -> tuple[dict[str, str], int]:
    """Directives are ``# key=value`` lines at the very top; the first other
    line (comment, blank, instruction) ends them."""
    directives: dict[str, str] = {}
    index = 0
    for index, line in enumerate(lines):
        match = _DIRECTIVE_RE.match(line.strip()) if line.strip().startswith("#") else None
        if not match:
            return directives, index
        key = match.group(1).lower()
        if key in directives:
            raise BuildError(f"{file}:{index + 1}: parser directive {key!r} given twice",
                             hint="keep one `# " + key + "=...` line", file=file, line=index + 1)
        directives[key] = match.group(2)
    return directives, len(lines)


def _split_flags(cmd: str, rest: str) -> tuple[tuple[str, ...], str]:
    """Leading ``--flag[=value]`` words (values may be quoted) and the rest."""
    if cmd not in FLAG_CAPABLE:
        return (), rest
    flags: list[str] = []
    pos = 0
    while True:
        while pos < len(rest) and rest[pos] in " \t":
            pos += 1
        if not rest.startswith("--", pos):
            break
        end = pos
        quote = ""
        while end < len(rest) and (quote or rest[end] not in " \t"):
            ch = rest[end]
            if quote and ch == quote:
                quote = ""
            elif not quote and ch in "\"'":
                quote = ch
            end += 1
        word = rest[pos:end]
        if word == "--":
            break
        flags.append(word)
        pos = end
    return tuple(flags), rest[pos:].strip()


def _json_args(args: str) -> tuple[str, ...] | None:
    text = args.strip()
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None  # Docker treats invalid JSON as shell form
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return tuple(value)


def _heredoc_names(cmd: str, args: str) -> list[tuple[str, bool, bool]]:
    if cmd not in HEREDOC_CAPABLE or "<<" not in args:
        return []
    out = []
    for match in _HEREDOC_RE.finditer(args):
        # "<<<" is a here-string, and "a<<b" inside quotes of python code is rare enough;
        # BuildKit has the same heuristics.
        start = match.start()
        if start > 0 and args[start - 1] == "<":
            continue
        quoted = match.group(4) is None
        name = match.group(2) or match.group(3) or match.group(4)
        out.append((name, not quoted, match.group(1) == "-"))
    return out


def parse(text: str, *, file: str = "Dockerfile") -> Dockerfile:
    """Parse Dockerfile ``text``; raises BuildError naming ``file`` and line."""
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.splitlines()
    directives, index = _read_directives(lines, file)
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise BuildError(f"{file}:1: invalid escape directive {escape!r}",
                         hint="use `# escape=\\` or `# escape=``", file=file, line=1)
    instructions: list[Instruction] = []
    n = len(lines)
    while index < n:
        raw = lines[index]
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            index += 1
            continue
        start = index
        parts: list[str] = []
        original_lines = [raw]
        current = raw.rstrip()
        # Continuations: the escape char at the end of a line joins the next
        # one; comment lines and blank lines inside are dropped.
        while current.endswith(escape):
            parts.append(current[:-1])
            index += 1
            while index < n and (not lines[index].strip() or lines[index].strip().startswith("#")):
                original_lines.append(lines[index])
                index += 1
            if index >= n:
                current = ""
                break
            original_lines.append(lines[index])
            current = lines[index].rstrip()
        parts.append(current)
        logical = "".join(parts).strip()
        index += 1
        word, _, rest = logical.partition(" ") if " " in logical else (logical, "", "")
        if "\t" in word:
            word, _, more = word.partition("\t")
            rest = more + " " + rest
        cmd = word.upper()
        if cmd not in KNOWN_INSTRUCTIONS:
            raise BuildError(
                f"{file}:{start + 1}: unknown instruction {word!r}",
                hint="check the spelling; Dockerfile instructions are FROM, RUN, COPY, ADD, ...",
                file=file, line=start + 1, instruction=logical,
            )
        flags, args = _split_flags(cmd, rest.strip())
        heredocs: list[Heredoc] = []
        for name, expand, chomp in _heredoc_names(cmd, args):
            body: list[str] = []
            while True:
                if index >= n:
                    raise BuildError(f"{file}:{start + 1}: {cmd}: heredoc <<{name} is not terminated",
                                     hint=f"end it with a line holding only {name}", file=file, line=start + 1)
                line = lines[index]
                original_lines.append(line)
                index += 1
                check = line.lstrip("\t") if chomp else line
                if check == name:
                    break
                body.append(check)
            heredocs.append(Heredoc(name=name, content="\n".join(body) + "\n", expand=expand, chomp=chomp))
        json_args = _json_args(args) if cmd in JSON_CAPABLE and not heredocs else None
        if cmd == "HEALTHCHECK":
            sub, _, subrest = args.partition(" ")
            if sub.upper() == "CMD":
                json_args = _json_args(subrest)
        instructions.append(Instruction(
            cmd=cmd, flags=flags, args=args, line=start + 1, end_line=index, original=logical,
            file=file, json=json_args, heredocs=tuple(heredocs),
        ))
    return Dockerfile(instructions=tuple(instructions), directives=directives, escape=escape, file=file)
