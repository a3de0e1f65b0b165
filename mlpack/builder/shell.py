"""Variable expansion the way BuildKit's shell lexer does it (ENV, COPY, WORKDIR, FROM, ...).

Quotes are removed, the escape character escapes the next character (a
trailing one is dropped), single quotes are literal, and ``$VAR``,
``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:+alt}``,
``${VAR+alt}``, ``${VAR:?msg}``, ``${VAR?msg}``, ``${VAR#pat}``,
``${VAR%pat}`` (and ``##``/``%%``), ``${VAR/pat/rep}`` and
``${VAR//pat/rep}`` expand. A name that starts with a digit takes every
digit (``$10``); the special parameters ``@ * # ? - $ ! 0`` are names of one
character (unset unless the environment has them). Patterns know ``*`` and
``?``; ``\\*``, ``\\?`` and ``\\\\`` match those characters literally.
RUN, CMD and ENTRYPOINT are *not* expanded here: their shell does it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from mlpack.errors import BuildError
from mlpack.values import dataclass, field

__all__ = ["Expander", "ExpansionError"]

_SPECIAL_PARAMS = frozenset("@*#?-$!0")
_HEREDOC_SPACE = " \t\r"


class ExpansionError(BuildError):
    """A ``${VAR:?message}`` whose variable was unset, or a bad ``${`` form."""


class _Words:
    """Word splitting of one processed string (BuildKit's wordsStruct)."""

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and any(self.buf):  # an empty quoted string is no word
                self.words.append("".join(self.buf))
                self.buf.clear()
                self.in_word = False
        else:
            self.add_raw(ch)

    def add_raw(self, text: str) -> None:
        self.buf.append(text)
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def result(self) -> list[str]:
        if any(self.buf):
            self.words.append("".join(self.buf))
        self.buf.clear()
        return self.words


class _Scanner:
    """One pass over ``text`` with the lexer's state; mirrors shell/lex.go."""

    def __init__(self, expander: "Expander", text: str) -> None:
        self.ex = expander
        self.text = text
        self.pos = 0

    def peek(self) -> str | None:
        return self.text[self.pos] if self.pos < len(self.text) else None

    def next(self) -> str | None:
        ch = self.peek()
        if ch is not None:
            self.pos += 1
        return ch

    def fail(self, message: str) -> ExpansionError:
        return ExpansionError(f"{message} in {self.text!r}", hint="fix the ${...} or quoting in this word")

    def process(self, stop: str | None, raw_escapes: bool) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        escape = self.ex.escape
        while (ch := self.peek()) is not None:
            if stop is not None and ch == stop:
                self.next()
                return "".join(result), words.result()
            if ch == "$":
                value = self.dollar()
                result.append(value)
                words.add_string(value)
            elif ch == "<":
                value = self.possible_heredoc()
                result.append(value)
                words.add_raw(value)
            elif ch == "'":
                value = self.single_quote()
                result.append(value)
                words.add_raw(value)
            elif ch == '"':
                value = self.double_quote(raw_escapes)
                result.append(value)
                words.add_raw(value)
            else:
                self.next()
                if ch == escape:
                    if raw_escapes:
                        words.add_raw(ch)
                        result.append(ch)
                    nxt = self.next()
                    if nxt is None:
                        break  # a trailing escape is dropped
                    words.add_raw(nxt)
                    result.append(nxt)
                else:
                    words.add_char(ch)
                    result.append(ch)
        if stop is not None:
            raise self.fail(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.result()

    def single_quote(self) -> str:
        self.next()
        out: list[str] = []
        while True:
            ch = self.next()
            if ch is None:
                raise self.fail("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def double_quote(self, raw_escapes: bool) -> str:
        self.next()
        out: list[str] = []
        escape = self.ex.escape
        while True:
            ch = self.peek()
            if ch is None:
                raise self.fail("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.next()
            if ch == escape:
                if raw_escapes:
                    out.append(ch)
                nxt = self.peek()
                if nxt is None:
                    continue  # an escape at the end of the word is ignored
                if nxt in ('"', "$", escape):
                    ch = self.next() or ""
            out.append(ch)

    def possible_heredoc(self) -> str:
        self.next()
        if self.peek() != "<":
            return "<"
        self.next()
        space: list[str] = []
        while (ch := self.peek()) is not None and ch in _HEREDOC_SPACE:
            space.append(ch)
            self.next()
        return "<<" + "".join(space)

    def name(self) -> str:
        first = self.peek()
        if first is None:
            return ""
        if first.isdigit():
            digits: list[str] = []
            while (ch := self.peek()) is not None and ch.isdigit():
                digits.append(ch)
                self.next()
            return "".join(digits)
        if first in _SPECIAL_PARAMS:
            self.next()
            return first
        out: list[str] = []
        while (ch := self.peek()) is not None and (ch.isalnum() or ch == "_"):
            out.append(ch)
            self.next()
        return "".join(out)

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value = self.ex._lookup(name)
            if value is None and self.ex.skip_unset:
                return "$" + name
            return value or ""
        self.next()
        ch = self.peek()
        if ch is None:
            raise self.fail("syntax error: missing '}'")
        if ch in "{}:":
            raise self.fail("syntax error: bad substitution")
        name = self.name()
        op = self.next()
        if op is None:
            raise self.fail("syntax error: missing '}'")
        if op == "}":
            value = self.ex._lookup(name)
            if value is None and self.ex.skip_unset:
                return "${" + name + "}"
            return value or ""
        if op == "/":
            return self.replace(name)
        ops = op
        colon = op == ":"
        if colon:
            op = self.next() or ""
            ops += op
        if op not in ("+", "-", "?", "#", "%"):
            raise self.fail(f"unsupported modifier ({ops}) in substitution")
        pattern_op = op in ("#", "%")
        if colon and pattern_op:
            raise self.fail(f"unsupported modifier ({ops}) in substitution")
        word = self.until("}", pattern_op, "syntax error: missing '}'")
        value = self.ex._lookup(name)
        if value is None and self.ex.skip_unset:
            return "${" + name + ops + word + "}"
        unset = value is None or (colon and value == "")
        if op == "-":
            return word if unset else value or ""
        if op == "+":
            return "" if unset else word
        if op == "?":
            if value is None:
                raise ExpansionError(f"{name}: {word or 'is not allowed to be unset'}",
                                     hint=f"pass --build-arg {name}=... or set it with ARG/ENV")
            if colon and value == "":
                raise ExpansionError(f"{name}: {word or 'is not allowed to be empty'}",
                                     hint=f"give {name} a value")
            return value
        greedy = word.startswith(op)
        if greedy:
            word = word[1:]
        value = value or ""
        if op == "%":
            return _reverse(self._trim_prefix(_reverse_pattern(word), _reverse(value), greedy))
        return self._trim_prefix(word, value, greedy)

    def until(self, stop: str, raw_escapes: bool, missing: str) -> str:
        """The processed text up to ``stop`` (consumed); ``missing`` when the text ends first."""
        try:
            return self.process(stop, raw_escapes)[0]
        except ExpansionError:
            if self.peek() is None:
                raise self.fail(missing) from None
            raise

    def replace(self, name: str) -> str:
        every = self.peek() == "/"
        if every:
            self.next()
        pattern = self.until("/", True, "syntax error: missing '/' in ${}")
        replacement = self.until("}", True, "syntax error: missing '}'")
        value = self.ex._lookup(name)
        if value is None and self.ex.skip_unset:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        regex = self._regex(pattern, greedy=True, anchored=False)
        return regex.sub(lambda _m: replacement, value or "", count=0 if every else 1)

    def _trim_prefix(self, pattern: str, value: str, greedy: bool) -> str:
        match = self._regex(pattern, greedy=greedy, anchored=True).search(value)
        return value[match.end():] if match else value

    def _regex(self, pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
        """A shell pattern (``*``, ``?``, escapes; no brackets) as a regular expression."""
        out = ["^"] if anchored else []
        i = 0
        while i < len(pattern):
            ch = pattern[i]
            i += 1
            if ch == "*":
                out.append(".*" if greedy else ".*?")
            elif ch == "?":
                out.append(".")
            elif ch == "\\":
                nxt = pattern[i] if i < len(pattern) else ""
                if nxt in ("}", "/"):
                    continue  # the escape belonged to the ${...} syntax
                if nxt not in ("*", "?", "\\"):
                    raise self.fail(f"invalid pattern ({pattern}) in substitution: invalid escape '\\{nxt}'")
                out.append(re.escape(nxt))
                i += 1
            else:
                out.append(re.escape(ch))
        return re.compile("".join(out), re.DOTALL)


def _reverse(text: str) -> str:
    return text[::-1]


def _reverse_pattern(pattern: str) -> str:
    """Reverse a pattern keeping each escape in front of its character (``a\\*c`` -> ``c\\*a``)."""
    out = [""] * len(pattern)
    last = len(pattern) - 1
    i = 0
    while i <= last:
        ch = pattern[i]
        if ch == "\\" and i != last:
            out[last - i - 1] = ch
            out[last - i] = pattern[i + 1]
            i += 2
        else:
            out[last - i] = ch
            i += 1
    return "".join(out)


@dataclass
class Expander:
    """Expands words against ``env``; ``used`` collects the names looked up
    (the cache key includes the build args a step consumed). With
    ``skip_unset`` an unset variable stays as written (``$X``), which lets
    the front end validate a word before the variables are known."""

    env: Mapping[str, str]
    escape: str = "\\"
    used: set[str] = field(default_factory=set)
    skip_unset: bool = False

    def word(self, text: str) -> str:
        """One word: quotes removed, variables expanded, no splitting."""
        if self._plain(text):
            return text
        return _Scanner(self, text).process(None, False)[0]

    def words(self, text: str) -> list[str]:
        """Split on unquoted whitespace (including inside unquoted expansions)."""
        if self._plain(text):
            return text.split()
        return _Scanner(self, text).process(None, False)[1]

    def _plain(self, text: str) -> bool:
        """Nothing in ``text`` that the scanner would change (no ``$``, quote, escape or ``<``):
        a word is itself, words are its whitespace-split parts. Most words of a Dockerfile are."""
        return not any(c in text for c in ("$", "'", '"', "<", self.escape))

    def _lookup(self, name: str) -> str | None:
        self.used.add(name)
        return self.env.get(name)

    def _dollar(self, text: str, i: int) -> tuple[str, int]:
        """Expand the ``$...`` at ``text[i]``; returns (value, next index)."""
        scanner = _Scanner(self, text)
        scanner.pos = i
        value = scanner.dollar()
        return value, scanner.pos
