"""The typed instruction layer: flags, forms and arguments read and validated once, with lines."""

from __future__ import annotations

import pytest

from mlpack.builder import instructions as ins
from mlpack.builder.check import check
from mlpack.builder.parser import parse
from mlpack.errors import BuildError


def one(line: str) -> ins.AnyCommand:
    return ins.instructions(parse(f"FROM scratch\n{line}\n").instructions)[1]


def test_copy_flags_and_double_dash() -> None:
    cmd = one("COPY --from=build --chown=app:app --chmod=0640 --link --exclude=*.pyc --exclude=t/ a b /dst/")
    assert cmd == ins.CopyCommand(cmd.node, sources=("a", "b"), dest="/dst/", from_="build", chown="app:app",
                                  chmod="0640", link=True, exclude=("*.pyc", "t/"))
    cmd = one("COPY -- --odd-name /dst")
    assert isinstance(cmd, ins.CopyCommand) and cmd.sources == ("--odd-name",) and cmd.from_ is None


def test_copy_heredocs_are_named_after_the_heredoc() -> None:
    df = parse("FROM scratch\nCOPY <<A <<B /dir/\nfirst\nA\nsecond\nB\n")
    cmd = ins.instructions(df.instructions)[1]
    assert isinstance(cmd, ins.CopyCommand)
    assert cmd.sources == ("A", "B") and [d.content for d in cmd.inline] == ["first\n", "second\n"]


def test_run_flags_parsed_once() -> None:
    cmd = one("RUN --mount=type=cache,target=/root/.cache --network=none -- echo hi")
    assert isinstance(cmd, ins.RunCommand)
    assert cmd.mounts == ("type=cache,target=/root/.cache",) and cmd.network == "none"
    assert cmd.argv(["/bin/sh", "-c"]) == ["/bin/sh", "-c", "echo hi"]


MALFORMED = [
    ("CMD --doit [\"x\"]", "unknown flag --doit"),
    ("ENV --x=1 A=b", "unknown flag --x"),
    ("COPY --chwon=1 a b", "unknown flag --chwon"),
    ("COPY --from=a --from=b x y", "--from is given twice"),
    ("COPY --link=maybe a b", "true or false"),
    ("COPY --chown a b", "needs a value"),
    ("COPY --parents a b", "--parents is not supported"),
    ('CMD ["echo", ["nested"]]', "strings only"),
    ("COPY a <<EOF\nx\nEOF", "heredoc as a destination"),
    ("ONBUILD ONBUILD RUN x", "ONBUILD ONBUILD"),
    ("ONBUILD FROM x", "isn't allowed as an ONBUILD trigger"),
    ("RUN --security=insecure x", "not allowed"),
    ("RUN --mount=type=cache,target=/c,bogus=1 x", "unknown option"),
    ("HEALTHCHECK --retries=2 NONE", "takes no arguments"),
    ("WORKDIR", "requires at least one argument"),
    ("FROM a b", "one or three arguments"),
    ("FROM a AS 1st", "invalid name for build stage"),
]


@pytest.mark.parametrize(("line", "message"), MALFORMED)
def test_errors_at_parse_time_name_the_line(line: str, message: str) -> None:
    with pytest.raises(BuildError, match=message) as info:
        ins.instructions(parse(f"FROM scratch\n{line}\n").instructions)
    assert info.value.line == 2


def test_unknown_flag_hint_lists_only_supported_flags() -> None:
    with pytest.raises(BuildError) as info:
        one("COPY --chwon=1 a b")
    assert info.value.hint == "COPY accepts: --chmod, --chown, --exclude, --from, --link"
    with pytest.raises(BuildError) as info:
        one("CMD --doit x")
    assert info.value.hint == "CMD takes no flags"


@pytest.mark.parametrize(("line", "pairs", "legacy"), [
    ("ENV KEY\tvalue", (("KEY", "value"),), True),
    ("ENV KEY value with  spaces", (("KEY", "value with  spaces"),), True),
    ("ENV A=1\tB=2", (("A", "1"), ("B", "2")), False),
    ('ENV A="x y" B=\'z\'', (("A", '"x y"'), ("B", "'z'")), False),
    ("LABEL maintainer someone", (("maintainer", "someone"),), True),
    ("LABEL a=1 b=", (("a", "1"), ("b", "")), False),
])
def test_env_and_label_forms(line: str, pairs: tuple[tuple[str, str], ...], legacy: bool) -> None:
    cmd = one(line)
    assert isinstance(cmd, (ins.EnvCommand, ins.LabelCommand))
    assert (cmd.pairs, cmd.legacy) == (pairs, legacy)


def test_run_heredoc_argv_follows_buildkit() -> None:
    sh = ["/bin/sh", "-c"]
    df = parse("FROM scratch\nRUN <<EOF\necho a\nEOF\nRUN <<EOF\n#!/usr/bin/python3\nprint(1)\nEOF\n"
               "RUN python3 <<EOF\nprint(2)\nEOF\n")
    plain, shebang, fed = ins.instructions(df.instructions)[1:]
    assert plain.argv(sh) == sh + ["echo a\n"]
    argv = shebang.argv(sh)
    assert argv[:2] == sh and argv[2].startswith("exec '/usr/bin/python3' '/dev/stdin' <<'MLPACK_SCRIPT_EOF'\n")
    assert fed.argv(sh) == sh + ["python3 <<EOF\nprint(2)\nEOF"]


def test_onbuild_trigger_is_typed() -> None:
    cmd = one("ONBUILD COPY --chown=1:1 . /app")
    assert isinstance(cmd, ins.OnbuildCommand) and isinstance(cmd.trigger, ins.CopyCommand)
    assert cmd.expression == "COPY --chown=1:1 . /app" and cmd.trigger.chown == "1:1"


def test_check_lists_every_problem_with_its_line() -> None:
    text = ("FROM scratch AS build\nENV A\tb\nCOPY --chwon=1 a b\nCMD [\"echo\", [\"nested\"]]\n"
            "COPY --from=biuld /x /y\nFROM $NOPE\nRUN --mount=type=ssh true\nCOPPY x\nRUN ok\n")
    findings = check(text)
    assert [(f.line, f.severity) for f in findings] == [
        (2, "warning"), (3, "error"), (4, "error"), (5, "error"), (6, "error"), (6, "error"), (7, "error"),
        (8, "error")]
    assert findings[3].hint == "did you mean from=build?"
    mount = check("FROM scratch AS tools\nFROM scratch\nRUN --mount=type=bind,from=tols,target=/t true\n")
    assert [(f.line, f.hint) for f in mount] == [(3, "did you mean from=tools?")]
    assert check("FROM scratch AS a\nCOPY --from=a /x /y\nFROM a\nRUN true\n") == []


@pytest.mark.parametrize(("line", "message"), MALFORMED)
def test_check_rejects_each_malformed_instruction(line: str, message: str) -> None:
    findings = [f for f in check(f"FROM scratch\n{line}\nRUN true\n") if f.severity == "error"]
    assert [f.line for f in findings] == [2] and message.replace("\\", "") in findings[0].message


def test_check_warns_about_undefined_variables_and_unused_build_args() -> None:
    text = ("ARG G=1\nFROM scratch AS base\nARG A\nENV B=$A C=$B\nWORKDIR /w/$NOPE\nCOPY <<EOF /x\n$INSIDE\nEOF\n"
            "FROM base\nLABEL l=$B$PATH$TARGETARCH\nUSER ${WHO:-root}\n"
            "FROM busybox\nENV X=$FROM_IMAGE\n")
    warnings = [(f.line, f.message.split(" ")[0]) for f in check(text, build_args={"A": "1", "EXTRA": "2"})]
    assert warnings == [(0, "build"), (4, "$B"), (5, "$NOPE")]  # ${WHO:-root} says what happens
