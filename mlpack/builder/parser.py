"""Dockerfile lexing: directives, comments, continuations, heredocs, flags, JSON form.

The parser turns text into :class:`Instruction` values and knows nothing of
what instructions mean; :mod:`mlpack.builder.instructions` gives them types.
It follows BuildKit's dockerfile/parser: parser directives only at the top,
comment lines dropped even inside continuations, the escape character
(``\\`` or backtick) ending a line joins it with the next one unless an
escape character comes right before it, whitespace (tabs too) separates the
instruction and its words, leading ``--flags`` are read on every instruction
(quotes removed; ``--`` ends them), a JSON array must hold only strings, and
heredocs (``<<EOF``, ``<<-EOF``, ``<<"EOF"``, ``<<file.txt``, ``3<<EOF``) are
words of RUN, COPY, ADD (and ONBUILD of those) that are neither quoted nor in
JSON form.
"""

from __future__ import annotations

import json
import re

from mlpack.builder.shell import Expander
from mlpack.errors import BuildError
from mlpack.values import dataclass, field, replace

__all__ = ["Heredoc", "Instruction", "Dockerfile", "parse", "KNOWN_INSTRUCTIONS"]

KNOWN_INSTRUCTIONS = frozenset({
    "FROM", "ARG", "ENV", "LABEL", "WORKDIR", "COPY", "ADD", "RUN", "USER",
    "EXPOSE", "VOLUME", "HEALTHCHECK", "CMD", "ENTRYPOINT", "SHELL",
    "STOPSIGNAL", "MAINTAINER", "ONBUILD",
})
# Instructions whose arguments may be a JSON array of strings.
JSON_CAPABLE = frozenset({"RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"})
HEREDOC_CAPABLE = frozenset({"RUN", "COPY", "ADD"})

_DIRECTIVE_RE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9_-]*)\s*=\s*(.*?)\s*$")
_HEREDOC_RE = re.compile(r"^(\d*)<<(-?)\s*([^<]*)$", re.DOTALL)
_WHITESPACE = re.compile(r"[\t\v\f\r ]+")


@dataclass(frozen=True)
class Heredoc:
    """One here-document: ``name`` (the delimiter, quotes removed), ``content``
    (every line with its newline, so an empty body is empty; leading tabs
    already stripped for ``<<-``) and whether variables expand in it (they do
    not when any part of the delimiter was quoted)."""

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
    sub: Instruction | None = None  # ONBUILD's trigger

    def error(self, message: str, *, hint: str | None = None) -> BuildError:
        """A BuildError that names the file, line and instruction."""
        return BuildError(
            f"{self.file}:{self.line}: {self.cmd}: {message}",
            hint=hint, file=self.file, line=self.line, instruction=self.original,
        )


@dataclass(frozen=True)
class Dockerfile:
    """Parsed file: ``directives`` (lower-case keys), ``instructions``, ``escape``."""

    instructions: tuple[Instruction, ...]
    directives: dict[str, str] = field(default_factory=dict)
    escape: str = "\\"
    file: str = "Dockerfile"
    warnings: tuple[tuple[int, str], ...] = ()  # (line, message)


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


def _split_flags(rest: str, escape: str) -> tuple[tuple[str, ...], str]:
    """Leading ``--flag[=value]`` words of any instruction and the rest, as
    BuildKit's extractBuilderFlags: quotes are removed from flag words, the
    escape character escapes, and a bare ``--`` ends the flags."""
    flags: list[str] = []
    pos, n = 0, len(rest)
    while True:
        while pos < n and rest[pos].isspace():
            pos += 1
        if not rest.startswith("--", pos):
            return tuple(flags), rest[pos:].strip()
        word: list[str] = []
        quote = ""
        blank_ok = False
        while pos < n:
            ch = rest[pos]
            if not quote and ch.isspace():
                break
            pos += 1
            if quote:
                if ch == quote:
                    quote = ""
                    continue
            elif ch in "\"'":
                quote, blank_ok = ch, True
                continue
            if ch == escape:
                if pos == n:
                    continue  # an escape at the very end is dropped
                ch = rest[pos]
                pos += 1
            word.append(ch)
        text = "".join(word)
        if text == "--":
            return tuple(flags), rest[pos:].strip()
        if text or blank_ok:
            flags.append(text)


def _json_args(cmd: str, args: str, file: str, line: int) -> tuple[str, ...] | None:
    """BuildKit's parseJSON: a valid JSON array must hold only strings (else an
    error); text that is not valid JSON is the shell form."""
    text = args.lstrip()
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise BuildError(
            f"{file}:{line}: {cmd}: when using JSON array syntax, arrays must be comprised of strings only",
            hint='quote every element: ["executable", "arg"]', file=file, line=line)
    return tuple(value)


def _raw_words(line: str) -> list[str]:
    """Words of ``line`` with quotes and escapes kept, ``<<`` plus following
    blanks glued to the next word (BuildKit's heredocsFromLine lexing)."""
    words: list[str] = []
    current: list[str] = []
    quote = ""
    i, n = 0, len(line)
    while i < n:
        ch = line[i]
        if quote:
            current.append(ch)
            if ch == "\\" and quote == '"' and i + 1 < n:
                current.append(line[i + 1])
                i += 1
            elif ch == quote:
                quote = ""
        elif ch == "\\":
            current.append(line[i:i + 2])
            i += 1
        elif ch in "\"'":
            quote = ch
            current.append(ch)
        elif ch == "<" and line.startswith("<<", i):
            j = i + 2
            while j < n and line[j] in " \t\r":
                j += 1
            current.append(line[i:j])
            i = j
            continue
        elif ch.isspace():
            if current:
                words.append("".join(current))
                current = []
        else:
            current.append(ch)
        i += 1
    if current:
        words.append("".join(current))
    return words


def heredoc_word(word: str) -> tuple[str, bool, bool] | None:
    """``(name, expand, chomp)`` when ``word`` is a heredoc marker such as
    ``<<EOF``, ``<<-"EOF"``, ``<<file.txt``, ``<<'one two'`` or ``<<eo'f'``;
    any quoting in the name turns expansion off (BuildKit's rule)."""
    match = _HEREDOC_RE.match(word)
    if not match or not match.group(3):
        return None
    rest = match.group(3)
    try:
        names = Expander({}, skip_unset=True).words(rest)
    except BuildError:
        return None
    if len(names) != 1:
        return None
    name = names[0]
    quotes = rest.count("'") + rest.count('"')
    return name, quotes == name.count("'") + name.count('"'), match.group(2) == "-"


def _heredoc_names(line: str) -> list[tuple[str, bool, bool]]:
    if "<<" not in line:
        return []
    return [doc for doc in map(heredoc_word, _raw_words(line)) if doc is not None]


def _continuation(escape: str) -> re.Pattern[str]:
    """BuildKit's line-continuation rule: the escape character as the last
    non-blank character, unless an escape character comes right before it
    (``trailing\\\\`` is an escaped escape, not a continuation)."""
    e = re.escape(escape)
    return re.compile(rf"([^{e}]){e}[ \t]*$|^{e}[ \t]*$")


def _trim_continuation(line: str, cont: re.Pattern[str]) -> tuple[str, bool]:
    match = cont.search(line)
    if match is None:
        return line, False
    return line[:match.start()] + (match.group(1) or ""), True


def _node(text: str, escape: str, file: str, line: int, end_line: int) -> Instruction:
    """One logical line -> an Instruction (ONBUILD's trigger as ``sub``)."""
    logical = text.strip()
    parts = _WHITESPACE.split(logical, maxsplit=1)
    word, rest = parts[0], parts[1] if len(parts) == 2 else ""
    cmd = word.upper()
    if cmd not in KNOWN_INSTRUCTIONS:
        raise BuildError(
            f"{file}:{line}: unknown instruction {word!r}",
            hint="check the spelling; Dockerfile instructions are FROM, RUN, COPY, ADD, ...",
            file=file, line=line, instruction=logical,
        )
    flags, args = _split_flags(rest, escape)
    json_args: tuple[str, ...] | None = None
    sub: Instruction | None = None
    if cmd == "ONBUILD" and args:
        sub = _node(args, escape, file, line, end_line)
    elif cmd in JSON_CAPABLE:
        json_args = _json_args(cmd, args, file, line)
    elif cmd == "HEALTHCHECK":
        kind = _WHITESPACE.split(args, maxsplit=1)
        if len(kind) == 2 and kind[0].upper() == "CMD":
            json_args = _json_args(cmd, kind[1], file, line)
    return Instruction(cmd=cmd, flags=flags, args=args, line=line, end_line=end_line, original=logical,
                       file=file, json=json_args, sub=sub)


def _can_hold_heredocs(node: Instruction) -> bool:
    target = node.sub if node.cmd == "ONBUILD" and node.sub is not None else node
    return target.cmd in HEREDOC_CAPABLE and target.json is None


def _lines(text: str) -> list[str]:
    """Lines split on newlines only (a form feed is not a line end), without the \\r of CRLF."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def parse(text: str, *, file: str = "Dockerfile", problems: list[BuildError] | None = None) -> Dockerfile:
    """Parse Dockerfile ``text``; raises BuildError naming ``file`` and line.

    With ``problems`` given, an instruction that cannot be read is recorded
    there and skipped, so one pass reports every problem (``--check``)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = _lines(text)
    directives, index = _read_directives(lines, file)
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise BuildError(f"{file}:1: invalid escape directive {escape!r}",
                         hint="use `# escape=\\` or `# escape=``", file=file, line=1)
    cont = _continuation(escape)
    instructions: list[Instruction] = []
    warnings: list[tuple[int, str]] = []
    n = len(lines)
    while index < n:
        first = lines[index].lstrip()
        index += 1
        start = index
        if first.startswith("#"):
            continue
        piece, more = _trim_continuation(first, cont)
        if not more and not piece.strip():
            continue
        parts = [piece]
        empty_continuation = False
        # Continuations: comment lines and blank lines inside are dropped.
        while more and index < n:
            raw = lines[index]
            index += 1
            if raw.lstrip().startswith("#"):
                continue
            if not raw.strip():
                empty_continuation = True
                continue
            piece, more = _trim_continuation(raw, cont)
            parts.append(piece)
        logical = "".join(parts)
        if empty_continuation:
            warnings.append((start, "empty continuation line (BuildKit will make this an error)"))
        try:
            node = _node(logical, escape, file, start, index)
        except BuildError as exc:
            if problems is None:
                raise
            problems.append(exc)
            continue
        heredocs: list[Heredoc] = []
        if _can_hold_heredocs(node):
            for name, expand, chomp in _heredoc_names(logical):
                body: list[str] = []
                while True:
                    if index >= n:
                        exc = BuildError(f"{file}:{start}: {node.cmd}: heredoc <<{name} is not terminated",
                                         hint=f"end it with a line holding only {name}", file=file, line=start)
                        if problems is None:
                            raise exc
                        problems.append(exc)
                        break
                    line = lines[index]
                    index += 1
                    check = line.lstrip("\t") if chomp else line
                    if check == name:
                        break
                    body.append(check + "\n")
                heredocs.append(Heredoc(name=name, content="".join(body), expand=expand, chomp=chomp))
        if heredocs:
            sub = replace(node.sub, heredocs=tuple(heredocs)) if node.sub is not None else None
            node = replace(node, heredocs=tuple(heredocs), end_line=index, sub=sub)
        instructions.append(node)
    return Dockerfile(instructions=tuple(instructions), directives=directives, escape=escape, file=file,
                      warnings=tuple(warnings))
