"""Variable expansion the way Docker does it in ENV, COPY, WORKDIR, FROM, ...

Quotes are removed, the escape character escapes the next character, single
quotes are literal, and ``$VAR``, ``${VAR}``, ``${VAR:-default}``,
``${VAR-default}``, ``${VAR:+alt}``, ``${VAR+alt}``, ``${VAR:?msg}``,
``${VAR#pat}``, ``${VAR%pat}`` (and ``##``/``%%``) expand. RUN, CMD and
ENTRYPOINT are *not* expanded here: their shell does it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field

from mlpack.errors import BuildError

__all__ = ["Expander", "ExpansionError"]


class ExpansionError(BuildError):
    """A ``${VAR:?message}`` whose variable was unset, or a bad ``${`` form."""


def _is_name_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


@dataclass
class Expander:
    """Expands words against ``env``; ``used`` collects the names looked up
    (the cache key includes the build args a step consumed)."""

    env: Mapping[str, str]
    escape: str = "\\"
    used: set[str] = field(default_factory=set)

    def word(self, text: str) -> str:
        """One word: quotes removed, variables expanded, no splitting."""
        return "".join(self._process(text, split=False)[0])

    def words(self, text: str) -> list[str]:
        """Split on unquoted whitespace (including inside unquoted expansions)."""
        return self._process(text, split=True)[1]

    def _lookup(self, name: str) -> str | None:
        self.used.add(name)
        return self.env.get(name)

    def _process(self, text: str, *, split: bool) -> tuple[list[str], list[str]]:
        out: list[str] = []
        words: list[str] = []
        current: list[str] = []
        in_word = False
        i = 0
        n = len(text)

        def add(chars: str, *, splittable: bool) -> None:
            nonlocal in_word
            out.append(chars)
            for ch in chars:
                if splittable and ch.isspace():
                    if in_word:
                        words.append("".join(current))
                        current.clear()
                        in_word = False
                else:
                    current.append(ch)
                    in_word = True

        def mark_word() -> None:
            nonlocal in_word
            in_word = True  # "" is still a word

        while i < n:
            ch = text[i]
            if ch == self.escape:
                if i + 1 < n:
                    add(text[i + 1], splittable=False)
                    i += 2
                else:
                    add(ch, splittable=False)
                    i += 1
            elif ch == "'":
                end = text.find("'", i + 1)
                if end < 0:
                    raise ExpansionError(f"unterminated single quote in {text!r}", hint="close the quote")
                mark_word()
                add(text[i + 1:end], splittable=False)
                i = end + 1
            elif ch == '"':
                i += 1
                mark_word()
                while True:
                    if i >= n:
                        raise ExpansionError(f"unterminated double quote in {text!r}", hint="close the quote")
                    c = text[i]
                    if c == '"':
                        i += 1
                        break
                    if c == self.escape and i + 1 < n and text[i + 1] in ('"', "$", self.escape):
                        add(text[i + 1], splittable=False)
                        i += 2
                    elif c == "$":
                        value, i = self._dollar(text, i)
                        add(value, splittable=False)
                    else:
                        add(c, splittable=False)
                        i += 1
            elif ch == "$":
                value, i = self._dollar(text, i)
                add(value, splittable=split)
            else:
                add(ch, splittable=split)
                i += 1
        if in_word:
            words.append("".join(current))
        return out, words

    def _dollar(self, text: str, i: int) -> tuple[str, int]:
        """Expand the ``$...`` at ``text[i]``; returns (value, next index)."""
        n = len(text)
        if i + 1 >= n:
            return "$", i + 1
        nxt = text[i + 1]
        if nxt == "{":
            depth, j = 1, i + 2
            while j < n and depth:
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                j += 1
            if depth:
                raise ExpansionError(f"missing '}}' in {text!r}", hint="close the ${...} expression")
            return self._braced(text[i + 2:j - 1], text), j
        if _is_name_char(nxt):
            j = i + 1
            if nxt.isdigit():
                j += 1  # positional: $1
            else:
                while j < n and _is_name_char(text[j]):
                    j += 1
            return self._lookup(text[i + 1:j]) or "", j
        return "$", i + 1

    def _braced(self, inner: str, whole: str) -> str:
        j = 0
        while j < len(inner) and _is_name_char(inner[j]):
            j += 1
        name, op = inner[:j], inner[j:]
        if not name:
            raise ExpansionError(f"bad substitution ${{{inner}}} in {whole!r}", hint="use ${NAME}")
        value = self._lookup(name)
        if not op:
            return value or ""
        for prefix in (":-", ":+", ":?", "-", "+", "?", "##", "#", "%%", "%"):
            if op.startswith(prefix):
                word = op[len(prefix):]
                break
        else:
            raise ExpansionError(f"unsupported substitution ${{{inner}}} in {whole!r}",
                                 hint="supported: ${V}, ${V:-d}, ${V-d}, ${V:+x}, ${V+x}, ${V:?msg}, ${V#p}, ${V%p}")
        colon = prefix.startswith(":")
        unset = value is None or (colon and value == "")
        if prefix in (":-", "-"):
            return self.word(word) if unset else value or ""
        if prefix in (":+", "+"):
            return "" if unset else self.word(word)
        if prefix in (":?", "?"):
            if unset:
                raise ExpansionError(f"{name}: {self.word(word) or 'parameter not set'}",
                                     hint=f"pass --build-arg {name}=... or set it with ARG/ENV")
            return value or ""
        pattern = self.word(word)
        value = value or ""
        if prefix.startswith("#"):
            cuts = range(len(value), -1, -1) if prefix == "##" else range(0, len(value) + 1)
            for k in cuts:
                if fnmatch.fnmatchcase(value[:k], pattern):
                    return value[k:]
            return value
        cuts = range(0, len(value) + 1) if prefix == "%%" else range(len(value), -1, -1)
        for k in cuts:
            if fnmatch.fnmatchcase(value[k:], pattern):
                return value[:k]
        return value
