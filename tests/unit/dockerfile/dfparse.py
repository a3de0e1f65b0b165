"""A deliberately small, independent Dockerfile reader for the render tests.

It follows BuildKit's rules that matter here: comment lines are dropped (also
inside continuations), a trailing backslash joins the next line, the first
word is the instruction. Word unquoting follows BuildKit's ENV/LABEL rules:
inside double quotes only \\", \\\\ and \\$ are escapes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Instr:
    cmd: str
    args: str

    @property
    def flags(self) -> list[str]:
        words = self.args.split()
        return [w for w in words if w.startswith("--")] if self.cmd in {"RUN", "COPY", "FROM", "HEALTHCHECK"} else []


def instructions(text: str) -> list[Instr]:
    out: list[Instr] = []
    buf: str | None = None
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or not stripped:
            continue
        buf = raw.rstrip() if buf is None else buf + raw.rstrip()
        if buf.endswith("\\"):
            buf = buf[:-1]
            continue
        cmd, _, rest = buf.strip().partition(" ")
        out.append(Instr(cmd.upper(), rest.strip()))
        buf = None
    assert buf is None, "Dockerfile ends inside a continuation"
    return out


def key_values(args: str) -> dict[str, str]:
    """ENV/LABEL ``k=v k2="v 2"`` pairs, unquoted the way BuildKit does."""
    pairs: dict[str, str] = {}
    i, n = 0, len(args)
    while i < n:
        while i < n and args[i].isspace():
            i += 1
        if i >= n:
            break
        key_start = i
        while i < n and args[i] != "=":
            assert not args[i].isspace(), f"word without '=' at {args[key_start:i + 10]!r}"
            i += 1
        key = args[key_start:i]
        i += 1
        value: list[str] = []
        while i < n and not args[i].isspace():
            ch = args[i]
            if ch == '"':
                i += 1
                while args[i] != '"':
                    if args[i] == "\\" and args[i + 1] in '"\\$':
                        i += 1
                    value.append(args[i])
                    i += 1
                i += 1
            elif ch == "'":
                end = args.index("'", i + 1)
                value.append(args[i + 1:end])
                i = end + 1
            elif ch == "\\":
                value.append(args[i + 1])
                i += 2
            else:
                assert ch != "$", f"unescaped $ in {args!r}"
                value.append(ch)
                i += 1
        pairs[key] = "".join(value)
    return pairs


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form instruction (BuildKit falls back to shell
    form when the JSON is invalid, so a test must insist it parses)."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


def stages(instrs: list[Instr]) -> dict[str, list[Instr]]:
    """Instructions by stage name (the word after AS)."""
    out: dict[str, list[Instr]] = {}
    current = None
    for instr in instrs:
        if instr.cmd == "FROM":
            words = instr.args.split()
            current = words[-1] if len(words) >= 3 and words[-2].upper() == "AS" else words[0]
            out[current] = []
        elif current is not None:
            out[current].append(instr)
    return out
