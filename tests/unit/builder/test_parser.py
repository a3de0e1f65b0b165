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


def test_flag_words_lose_their_quotes() -> None:
    df = parse('FROM scratch\nCOPY --chown=1:2 --chmod=0644 --from="st" a b\n')
    assert df.instructions[1].flags == ("--chown=1:2", "--chmod=0644", "--from=st")  # as BuildKit reads them


def test_healthcheck_json_cmd() -> None:
    df = parse('FROM scratch\nHEALTHCHECK --interval=5s CMD ["curl", "-f", "x"]\n')
    assert df.instructions[1].json == ("curl", "-f", "x")
    assert df.instructions[1].flags == ("--interval=5s",)


# -- BuildKit's lexing, case by case ---------------------------------------------------

def test_escaped_escape_at_end_of_line_is_not_a_continuation() -> None:
    df = parse("FROM scratch\nRUN echo trailing\\\\\nRUN echo next\n")
    assert [i.args for i in df.instructions[1:]] == ["echo trailing\\\\", "echo next"]
    df = parse("# escape=`\nFROM scratch\nRUN echo a``\nRUN echo b `\n  c\n")
    assert [i.args for i in df.instructions[1:]] == ["echo a``", "echo b   c"]


def test_continuation_with_trailing_blanks_and_lone_escape_line() -> None:
    df = parse("FROM scratch\nRUN a \\  \n\\\n b\n")
    assert df.instructions[1].args == "a  b"


def test_tabs_separate_instruction_and_flags() -> None:
    df = parse("FROM\tscratch\nCOPY\t--chown=1:1\ta\tb\n")
    assert df.instructions[0].args == "scratch"
    assert df.instructions[1].flags == ("--chown=1:1",) and df.instructions[1].args == "a\tb"


def test_double_dash_ends_flags_on_any_instruction() -> None:
    df = parse("FROM scratch\nCOPY -- --weird dst\nCMD --doit\n")
    assert df.instructions[1].flags == () and df.instructions[1].args == "--weird dst"
    assert df.instructions[2].flags == ("--doit",) and df.instructions[2].args == ""


def test_non_string_json_is_an_error_and_bad_json_is_shell_form() -> None:
    with pytest.raises(BuildError, match="strings only") as info:
        parse('FROM scratch\nCMD ["echo", ["nested"]]\n')
    assert info.value.line == 2
    assert parse('FROM scratch\nCMD ["echo", nested]\n').instructions[1].json is None


@pytest.mark.parametrize(("line", "names"), [
    ("RUN <<EOF", [("EOF", True, False)]),
    ("RUN <<-EOF", [("EOF", True, True)]),
    ("RUN << EOF", [("EOF", True, False)]),
    ("COPY <<file.txt /dst", [("file.txt", True, False)]),
    ("COPY <<'one two' /dst", [("one two", False, False)]),
    ("RUN <<eo'f'", [("eof", False, False)]),
    ('RUN <<"EOF"', [("EOF", False, False)]),
    ("RUN 3<<EOF cat /dev/fd/3", [("EOF", True, False)]),
    ("COPY <<A <<B /dir/", [("A", True, False), ("B", True, False)]),
    ('RUN echo "<<NOHEREDOC"', []),
    ("RUN echo '<<NOHEREDOC'", []),
    ("RUN cat <<<here-string", []),
    ("RUN echo \\<<notheredoc", []),
])
def test_heredoc_names_follow_buildkit(line: str, names: list[tuple[str, bool, bool]]) -> None:
    bodies = "".join(f"body of {n}\n{n}\n" for n, _, _ in names)
    node = parse(f"FROM scratch\n{line}\n{bodies}RUN after\n").instructions[1]
    assert [(d.name, d.expand, d.chomp) for d in node.heredocs] == names
    assert [d.content for d in node.heredocs] == [f"body of {n}\n" for n, _, _ in names]


def test_json_form_never_has_heredocs() -> None:
    df = parse('FROM scratch\nRUN ["<<EOF"]\nRUN after\n')
    assert df.instructions[1].json == ("<<EOF",) and df.instructions[1].heredocs == ()
    assert df.instructions[2].args == "after"


def test_empty_heredoc_body_is_empty() -> None:
    node = parse("FROM scratch\nCOPY <<EOF /empty\nEOF\n").instructions[1]
    assert node.heredocs[0].content == ""


def test_form_feed_is_not_a_line_end() -> None:
    node = parse("FROM scratch\nLABEL a=\"x\x0cy\"\n").instructions[1]
    assert node.args == 'a="x\x0cy"' and node.line == 2


def test_onbuild_trigger_is_parsed_with_its_heredoc() -> None:
    node = parse("FROM scratch\nONBUILD RUN <<EOF\necho hi\nEOF\n").instructions[1]
    assert node.sub is not None and node.sub.cmd == "RUN"
    assert node.sub.heredocs[0].content == "echo hi\n"


def test_problems_collects_every_bad_line() -> None:
    problems: list[BuildError] = []
    df = parse('FROM scratch\nCOPPY a b\nCMD ["a", 1]\nRUN ok\n', problems=problems)
    assert [p.line for p in problems] == [2, 3]
    assert [i.cmd for i in df.instructions] == ["FROM", "RUN"]
