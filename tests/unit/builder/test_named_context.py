"""Named build contexts (--build-context NAME=DIR): COPY --from=NAME reads a second directory,
resolved inside its own root, with no .dockerignore."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mlpack.errors import BuildError
from tests.unit.builder.helpers import Ctx


@pytest.fixture
def deps(tmp_path: Path) -> Path:
    root = tmp_path / "deps"
    (root / "bin").mkdir(parents=True)
    (root / "lib").mkdir()
    (root / "lib" / "mod.py").write_text("X = 1\n")
    (root / "lib" / "notes.txt").write_text("kept: the main context's .dockerignore does not apply\n")
    (root / ".dockerignore").write_text("lib\n")  # a named context has none: this is just a file
    tool = root / "bin" / "tool"
    tool.write_text("#!/bin/sh\necho tool\n")
    tool.chmod(0o755)
    os.symlink("/usr/bin/python3.11", root / "bin" / "python")
    return root


def test_copy_from_a_named_context(ctx: Ctx, deps: Path) -> None:
    ctx.write(".dockerignore", "*.txt\n")
    ctx.write("app.py", "print(1)\n")
    image = ctx.build("FROM scratch\nCOPY --from=deps / /opt/venv/\nCOPY app.py /app/\n",
                      build_contexts=[f"deps={deps}"])
    members = ctx.layer_members(image, 0)
    assert ctx.layer_file(image, "opt/venv/lib/mod.py", 0) == b"X = 1\n"
    assert "opt/venv/lib/notes.txt" in members and "opt/venv/.dockerignore" in members
    assert stat.S_IMODE(members["opt/venv/bin/tool"].mode) == 0o755
    link = members["opt/venv/bin/python"]
    assert link.issym() and link.linkname == "/usr/bin/python3.11"  # kept as a link, never followed
    assert members["opt/venv/lib/mod.py"].uid == 0


def test_a_named_context_changes_the_cache_key(ctx: Ctx, deps: Path) -> None:
    dockerfile = "FROM scratch\nCOPY --from=deps lib/ /lib/\n"
    first = ctx.build(dockerfile, build_contexts={"deps": deps})
    again = ctx.build(dockerfile, build_contexts={"deps": deps})
    assert again.digest == first.digest and "StepCached" in ctx.kinds()
    (deps / "lib" / "mod.py").write_text("X = 2\n")
    changed = ctx.build(dockerfile, build_contexts={"deps": deps})
    assert changed.digest != first.digest
    assert ctx.layer_file(changed, "lib/mod.py") == b"X = 2\n"


def test_a_named_context_cannot_be_left(ctx: Ctx, deps: Path, tmp_path: Path) -> None:
    """Attacks: a symlink to the host's /etc, a relative one climbing out, and '..' in the source."""
    (tmp_path / "outside.txt").write_text("host secret\n")
    (deps / "etc").mkdir()
    (deps / "etc" / "passwd").write_text("the context's own passwd\n")
    os.symlink("/etc", deps / "hostetc")
    os.symlink("../../outside.txt", deps / "lib" / "climb")
    image = ctx.build("FROM scratch\nCOPY --from=deps hostetc/passwd /got\n", build_contexts={"deps": deps})
    # /etc inside the named context is its own etc/, never the host's
    assert ctx.layer_file(image, "got") == b"the context's own passwd\n"
    image = ctx.build("FROM scratch\nCOPY --from=deps lib/ /lib/\n", build_contexts={"deps": deps})
    climb = ctx.layer_members(image)["lib/climb"]
    assert climb.issym()  # copied as the link it is; its target is not read
    with pytest.raises(BuildError, match="leaves the build context|not found"):
        ctx.build("FROM scratch\nCOPY --from=deps ../outside.txt /x\n", build_contexts={"deps": deps})
    with pytest.raises(BuildError, match="not found"):
        ctx.build("FROM scratch\nCOPY --from=deps lib/climb/../outside.txt /x\n", build_contexts={"deps": deps})


@pytest.mark.parametrize("value, message", [
    ("deps", "not NAME=DIR"),
    ("Deps={dir}", "not a lowercase name"),
    ("deps=docker-image://alpine", "only local directories"),
    ("deps={dir}/missing", "not a directory"),
])
def test_bad_build_context_flags_fail_before_building(ctx: Ctx, deps: Path, value: str, message: str) -> None:
    with pytest.raises(BuildError, match=message):
        ctx.build("FROM scratch\nCOPY --from=deps / /x/\n", build_contexts=[value.format(dir=deps)])
    assert "StepStarted" not in ctx.kinds()


def test_mlpack_build_takes_build_context_flags(ctx: Ctx, deps: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from mlpack.cli import main

    monkeypatch.setenv("MLPACK_HOME", str(ctx.settings.home))
    ctx.write("Dockerfile", "FROM scratch\nCOPY --from=deps lib/mod.py /mod.py\n")
    code = main(["build", "-q", "--build-context", f"deps={deps}", "-t", "localhost/test/named:1", str(ctx.root)])
    assert code == 0
    image = ctx.store.resolve("localhost/test/named:1")
    assert capsys.readouterr().out.strip() == image.digest
    assert ctx.layer_file(image, "mod.py") == b"X = 1\n"


def test_a_missing_flag_is_named_when_the_context_has_that_directory(ctx: Ctx) -> None:
    """A rendered deps='context' directory built without --build-context: said, never pulled."""
    ctx.write("deps/lib/mod.py", "X = 1\n")
    with pytest.raises(BuildError, match="no stage and no named build context") as info:
        ctx.build("FROM scratch\nCOPY --from=deps / /opt/venv/\n")
    assert f"--build-context deps={ctx.root / 'deps'}" in (info.value.hint or "")
