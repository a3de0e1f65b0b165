"""Variable expansion where Docker does it."""

from __future__ import annotations

import pytest

from mlpack.builder.shell import Expander, ExpansionError

ENV = {"A": "1", "B": "x y", "EMPTY": "", "PATH": "/usr/bin", "V": "file.tar.gz", "G": "a*b*c", "Q": "what?"}


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
    # BuildKit's lexer: special parameters are one-character names (unset here)
    ("a$-b", "ab"),
    ("$$", ""),
    ("x$#y", "xy"),
    ("${#:-x}", "x"),
    ("${?-unset}", "unset"),
    # a name starting with a digit takes every digit
    ("$10", ""),
    ("$1abc", "abc"),
    ("${10:-ten}", "ten"),
    # escaped glob characters in patterns match literally
    ("${G%%\\**}", "a"),
    ("${G%\\**}", "a*b"),
    ("${G#*\\*}", "b*c"),
    ("${G##*\\*}", "c"),
    ("${Q%\\?}", "what"),
    # a trailing escape is dropped; one inside double quotes is ignored
    ("trailing\\", "trailing"),
    ("${PATH//\\//_}", "_usr_bin"),
    ("${PATH/usr/USR}", "/USR/bin"),
    ("${MISSING:-${A}x}", "1x"),
    ("[ab]", "[ab]"),
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


def test_empty_quoted_word_is_no_word_and_escaped_space_joins() -> None:
    assert Expander(ENV).words('a "" b\\ c') == ["a", "b c"]


@pytest.mark.parametrize("text", ["${A", "${}", "${:-x}", "${A:#x}", "${A!x}", "${G%\\x}"])
def test_bad_substitutions_are_errors(text: str) -> None:
    with pytest.raises(ExpansionError):
        Expander(ENV).word(text)


def test_skip_unset_keeps_the_variable_as_written() -> None:
    e = Expander({"A": "1"}, skip_unset=True)
    assert e.word("$A/$B/${C}/${D:-x}") == "1/$B/${C}/${D:-x}"


@pytest.mark.parametrize("escape", ["\\", "`"])
def test_plain_words_take_the_short_way_to_the_scanners_answer(escape: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A word with nothing to expand, unquote or unescape is itself (words: split on whitespace,
    what the scanner's splitting gives for it), the scanner is not run; any other word is scanned."""
    from mlpack.builder import shell

    plain = ["/opt/mlpack/bundle/", "a  b\tc\u00a0d\u2003e", " lead trail ", "", "[ab]*?", "x=1 y=2"]
    other = ["$A", "a'b'", 'a"b"', "a\\b", "a`b", "<<EOF", "a<b"]
    e = Expander(ENV, escape=escape)
    expected = {text: shell._Scanner(e, text).process(None, False) for text in plain + other}
    scanned: list[str] = []
    real = shell._Scanner
    monkeypatch.setattr(shell, "_Scanner", lambda ex, text: (scanned.append(text), real(ex, text))[1])
    for text in plain + other:
        assert (e.word(text), e.words(text)) == expected[text], text
    assert set(scanned) == {t for t in other if any(c in t for c in "$'\"<" + escape)}  # the other escape is plain
