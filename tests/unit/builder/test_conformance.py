"""Conformance with BuildKit, asserted on the built image: its config and its files.

Each case is written from BuildKit's documented behaviour (the Dockerfile
reference and its parser/shell-lexer rules); builds here need no RUN step.
"""

from __future__ import annotations

import tarfile

import pytest

from mlpack.builder import BuildWarning, StepStarted, build
from mlpack.builder.executor import BuildInterrupted
from mlpack.errors import BuildError
from tests.unit.builder.helpers import Ctx


def files(ctx: Ctx, image) -> dict[str, tarfile.TarInfo]:  # type: ignore[no-untyped-def]
    """Every member of every layer of ``image`` (later layers win)."""
    out: dict[str, tarfile.TarInfo] = {}
    for layer in image.layers:
        with tarfile.open(ctx.store.blob_path(layer["digest"])) as tar:
            for member in tar.getmembers():
                out[member.name.rstrip("/")] = member
    return out


def content(ctx: Ctx, image, name: str) -> bytes:  # type: ignore[no-untyped-def]
    for layer in reversed(image.layers):
        with tarfile.open(ctx.store.blob_path(layer["digest"])) as tar:
            try:
                f = tar.extractfile(name)
            except KeyError:
                continue
            assert f is not None
            return f.read()
    raise AssertionError(f"{name} is in no layer")


def test_tabs_separate_env_and_label_keys_and_values(ctx: Ctx) -> None:
    image = ctx.build("FROM scratch\nENV KEY\tvalue\nENV A=1\tB=2\nLABEL k\tv\n")
    cfg = image.config.blob["config"]
    assert "KEY=value" in cfg["Env"] and "A=1" in cfg["Env"] and "B=2" in cfg["Env"]
    assert cfg["Labels"] == {"k": "v"}


def test_legacy_forms_are_accepted_with_a_warning(ctx: Ctx) -> None:
    image = ctx.build("FROM scratch\nENV GREETING hello  big world\nLABEL maintainer someone\n")
    assert "GREETING=hello  big world" in image.config.blob["config"]["Env"]
    assert image.config.blob["config"]["Labels"] == {"maintainer": "someone"}
    warnings = [e for e in ctx.events if isinstance(e, BuildWarning)]
    assert [w.line for w in warnings] == [2, 3] and "LegacyKeyValueFormat" in warnings[0].message


def test_escaped_escape_does_not_swallow_the_next_instruction(ctx: Ctx) -> None:
    image = ctx.build("FROM scratch\nENV A=trailing\\\\\nENV B=next\n")
    assert image.config.blob["config"]["Env"][1:] == ["A=trailing\\", "B=next"]


def test_copy_heredocs_named_after_the_heredoc_and_empty_body(ctx: Ctx) -> None:
    image = ctx.build("FROM scratch\nARG X=ex\nCOPY <<A <<'B' /dir/\n$X\nA\n$X\nB\nCOPY <<EOF /empty\nEOF\n"
                      "COPY <<file.txt /conf/\nhello\nfile.txt\n")
    names = files(ctx, image)
    assert {"dir/A", "dir/B", "empty", "conf/file.txt"} <= set(names)
    assert content(ctx, image, "dir/A") == b"ex\n"      # unquoted: expanded
    assert content(ctx, image, "dir/B") == b"$X\n"      # quoted: literal
    assert content(ctx, image, "empty") == b""
    assert content(ctx, image, "conf/file.txt") == b"hello\n"


def test_quoted_heredoc_marker_is_not_a_heredoc(ctx: Ctx) -> None:
    ctx.write("<<NOHEREDOC", "a file with an odd name")
    image = ctx.build('FROM scratch\nCOPY ["<<NOHEREDOC", "/x"]\nLABEL after=yes\n')
    assert content(ctx, image, "x") == b"a file with an odd name"
    assert image.config.blob["config"]["Labels"] == {"after": "yes"}


def test_double_dash_ends_copy_flags(ctx: Ctx) -> None:
    ctx.write("--weird", "dash")
    image = ctx.build("FROM scratch\nCOPY -- --weird /w\n")
    assert content(ctx, image, "w") == b"dash"


def test_maintainer_sets_author(ctx: Ctx) -> None:
    image = ctx.build("FROM scratch\nMAINTAINER Jane <jane@example.com>\n")
    assert image.config.author == "Jane <jane@example.com>"
    assert "Labels" not in image.config.blob["config"]


def test_onbuild_triggers_run_after_from_and_are_not_inherited(ctx: Ctx) -> None:
    ctx.write("f", "from the trigger")
    image = ctx.build("FROM scratch AS base\nONBUILD COPY f /triggered\nONBUILD ENV T=1\nLABEL base=1\n"
                      "FROM base\nONBUILD ENV MINE=1\n")
    cfg = image.config.blob["config"]
    assert content(ctx, image, "triggered") == b"from the trigger"
    assert "T=1" in cfg["Env"]
    assert cfg["OnBuild"] == ["ENV MINE=1"]  # the base's triggers are cleared, the child's own kept


def test_chown_by_name_takes_the_primary_group(ctx: Ctx) -> None:
    ctx.write("passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:2000::/home/app:/bin/sh\n")
    ctx.write("group", "root:x:0:\nstaff:x:2000:\nother:x:3000:\n")
    ctx.write("f", "x")
    image = ctx.build("FROM scratch\nCOPY passwd group /etc/\nCOPY --chown=app f /a\nCOPY --chown=app:other f /b\n"
                      "COPY --chown=1000 f /c\n")
    names = files(ctx, image)
    assert (names["a"].uid, names["a"].gid) == (1000, 2000)
    assert (names["b"].uid, names["b"].gid) == (1000, 3000)
    assert (names["c"].uid, names["c"].gid) == (1000, 1000)


def test_special_parameters_and_positionals_expand_like_buildkit(ctx: Ctx) -> None:
    image = ctx.build("FROM scratch\nARG V=a*b*c\nENV P=x$$y Q=${#:-dflt} R=$10 S=${V%%\\**} T=end\\\n")
    env = image.config.blob["config"]["Env"]
    assert ["P=xy", "Q=dflt", "R=", "S=a", "T=end"] == env[1:]


@pytest.mark.parametrize(("dockerfile", "message"), [
    ('FROM scratch\nCMD ["echo", ["nested"]]\n', "strings only"),
    ("FROM scratch\nCMD --doit echo\n", "unknown flag --doit"),
    ("FROM scratch\nCOPY --chwon=1 a /b\n", "unknown flag --chwon"),
])
def test_malformed_instructions_fail_before_anything_runs(ctx: Ctx, dockerfile: str, message: str) -> None:
    with pytest.raises(BuildError, match=message) as info:
        ctx.build(dockerfile)
    assert info.value.line == 2 and ctx.events == []


def test_unknown_from_name_lists_the_stages(ctx: Ctx) -> None:
    ctx.write("f", "x")
    with pytest.raises(BuildError) as info:
        ctx.build("FROM scratch AS build\nCOPY f /f\nFROM scratch\nCOPY --from=localhost/biuld /f /f\n")
    assert "not a stage of this Dockerfile (stages: build (0), 1)" in info.value.message


def test_created_destination_directories_take_chown_but_keep_0755(ctx: Ctx) -> None:
    ctx.write("f", "x")
    image = ctx.build("FROM scratch\nCOPY --chown=7:8 --chmod=0600 f /new/deep/\n")
    names = files(ctx, image)
    for d in ("new", "new/deep"):
        assert (names[d].uid, names[d].gid, names[d].mode) == (7, 8, 0o755)
    assert (names["new/deep/f"].uid, names["new/deep/f"].mode) == (7, 0o600)


def test_a_path_leaving_the_context_says_so(ctx: Ctx, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "outside").write_text("secret")
    with pytest.raises(BuildError, match="leaves the build context") as info:
        ctx.build("FROM scratch\nCOPY ../outside /x\n")
    assert info.value.line == 2


def test_interrupted_build_names_the_step(ctx: Ctx) -> None:
    ctx.write("f", "x")
    ctx.write("Dockerfile", "FROM scratch\nLABEL a=1\nCOPY f /f\n")

    def progress(event: object) -> None:
        if isinstance(event, StepStarted) and event.instruction.startswith("COPY"):
            raise KeyboardInterrupt  # what Ctrl-C raises in the main thread

    before = ctx.store.list()
    with pytest.raises(BuildInterrupted) as info:
        build(ctx.root, tag="localhost/t:1", settings=ctx.settings, progress=progress)
    assert "step 3/3 of stage 0 (line 3: COPY f /f)" in str(info.value)
    assert "store's index is unchanged" in str(info.value)
    assert ctx.store.list() == before


def test_onbuild_heredoc_trigger_runs_in_the_child(ctx: Ctx) -> None:
    image = ctx.build("FROM scratch AS base\nONBUILD COPY <<EOF /from-trigger\ninline\nEOF\nFROM base\n")
    assert content(ctx, image, "from-trigger") == b"inline\n"
    assert "OnBuild" not in image.config.blob["config"]


def test_check_cli_exits_1_with_every_problem_and_0_when_clean(ctx: Ctx, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from mlpack.cli import main

    monkeypatch.setenv("MLPACK_HOME", str(ctx.settings.home))
    ctx.write("Dockerfile", "FROM scratch\nCOPY --chwon=1 a /b\nCMD [\"a\", 1]\n")
    assert main(["build", "--check", str(ctx.root)]) == 1
    err = capsys.readouterr().err
    assert "Dockerfile:2: error: COPY: unknown flag --chwon" in err and "Dockerfile:3: error:" in err
    assert not ctx.settings.store_dir.exists() or ctx.store.list() == []  # nothing was built
    ctx.write("Dockerfile", "FROM scratch\nCOPY a /b\n")
    assert main(["build", "--check", str(ctx.root)]) == 0
