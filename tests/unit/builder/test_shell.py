"""Variable expansion where Docker does it."""

from __future__ import annotations

import pytest

from mlpack.builder.shell import Expander, ExpansionError

ENV = {"A": "1", "B": "x y", "EMPTY": "", "PATH": "/usr/bin", "V": "file.tar.gz"}


@pytest.mark.parametrize(("text", "expected"), [
    ("$A", "1"),
    ("${A}", "1"),
    ("pre${A}post", "pre1post"),
    ("${MISSING:-dflt}", "dflt"),
    ("${EMPTY:-dflt}", "dflt"),
    ("${EMPTY-dflt}", ""),
    ("${A:+alt}", "alt"),
    ("${MISSING:+alt}", ""),
    ("${EMPTY+set}", "set"),
    ("'$A'", "$A"),
    ('"$A"', "1"),
    ("\\$A", "$A"),
    ("/venv/bin:$PATH", "/venv/bin:/usr/bin"),
    ("${V%.gz}", "file.tar"),
    ("${V%%.*}", "file"),
    ("${V#*.}", "tar.gz"),
    ("${V##*.}", "gz"),
    ("$", "$"),
    ("a$-b", "a$-b"),
])
def test_word(text: str, expected: str) -> None:
    assert Expander(ENV).word(text) == expected


def test_words_split_on_unquoted_whitespace_including_expansions() -> None:
    e = Expander(ENV)
    assert e.words('$B "$B" \'a b\' c') == ["x", "y", "x y", "a b", "c"]
    assert e.used == {"B"}


def test_required_variable() -> None:
    with pytest.raises(ExpansionError, match="MISSING: say it"):
        Expander(ENV).word("${MISSING:?say it}")


def test_backtick_escape_char() -> None:
    assert Expander(ENV, escape="`").word("`$A \\x") == "$A \\x"


def test_unterminated_quote() -> None:
    with pytest.raises(ExpansionError):
        Expander(ENV).word('"abc')
