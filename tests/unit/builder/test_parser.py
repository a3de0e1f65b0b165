"""The Dockerfile front end: directives, comments, continuations, heredocs, forms, errors."""

from __future__ import annotations

import pytest

from mlpack.builder.parser import parse
from mlpack.errors import BuildError


def test_directives_comments_and_continuations() -> None:
    df = parse(
        "# syntax=docker/dockerfile:1\n"
        "# escape=\\\n"
        "\n"
        "# a comment\n"
        "FROM scratch\n"
        "RUN --mount=type=cache,target=/c \\\n"
        "    # comment inside a continuation is dropped\n"
        "\n"
        "    echo a && \\\n"
        "    echo b\n"
    )
    assert df.directives == {"syntax": "docker/dockerfile:1", "escape": "\\"}
    run = df.instructions[1]
    assert run.cmd == "RUN" and run.line == 6 and run.end_line == 10
    assert run.flags == ("--mount=type=cache,target=/c",)
    assert run.args.split() == ["echo", "a", "&&", "echo", "b"]


def test_directive_after_a_comment_is_only_a_comment() -> None:
    df = parse("# hello\n# escape=`\nFROM scratch\n")
    assert df.directives == {} and df.escape == "\\"


def test_backtick_escape() -> None:
    df = parse("# escape=`\nFROM scratch\nRUN echo a `\n    b\nWORKDIR C:\\\\x\n")
    assert df.escape == "`"
    assert df.instructions[1].args.split() == ["echo", "a", "b"]
    assert df.instructions[2].args == "C:\\\\x"


def test_instructions_are_case_insensitive_and_json_form_detected() -> None:
    df = parse('from scratch\ncmd ["a", "b c"]\nentrypoint /bin/sh -c x\nCMD [not json\n')
    assert [i.cmd for i in df.instructions] == ["FROM", "CMD", "ENTRYPOINT", "CMD"]
    assert df.instructions[1].json == ("a", "b c")
    assert df.instructions[2].json is None
    assert df.instructions[3].json is None  # invalid JSON falls back to the shell form


def test_heredocs() -> None:
    df = parse("FROM scratch\nRUN <<EOF\necho 1\necho 2\nEOF\nCOPY <<-'END' /x\n\tliteral $A\n\tEND\nRUN true\n")
    run, copy, last = df.instructions[1:]
    assert run.heredocs[0].name == "EOF" and run.heredocs[0].content == "echo 1\necho 2\n"
    assert run.heredocs[0].expand
    assert copy.heredocs[0].content == "literal $A\n" and not copy.heredocs[0].expand
    assert last.args == "true" and last.line == 9


def test_unterminated_heredoc_is_an_error() -> None:
    with pytest.raises(BuildError, match="not terminated"):
        parse("FROM scratch\nRUN <<EOF\necho\n")


def test_unknown_instruction_names_file_and_line() -> None:
    with pytest.raises(BuildError) as info:
        parse("FROM scratch\nRUN true\nCOPPY a b\n", file="my.Dockerfile")
    assert "my.Dockerfile:3" in str(info.value) and "COPPY" in str(info.value)
    assert info.value.line == 3


def test_flags_parse_and_unknown_flag_errors() -> None:
    df = parse('FROM scratch\nCOPY --chown=1:2 --chmod=0644 --from="st" a b\n')
    copy = df.instructions[1]
    flags = copy.flag_dict({"chown": True, "chmod": True, "from": True})
    assert flags == {"chown": ["1:2"], "chmod": ["0644"], "from": ['"st"']}
    with pytest.raises(BuildError, match="unknown flag --bogus"):
        parse("FROM scratch\nCOPY --bogus=1 a b\n").instructions[1].flag_dict({"from": True})


def test_healthcheck_json_cmd() -> None:
    df = parse('FROM scratch\nHEALTHCHECK --interval=5s CMD ["curl", "-f", "x"]\n')
    assert df.instructions[1].json == ("curl", "-f", "x")
    assert df.instructions[1].flags == ("--interval=5s",)
