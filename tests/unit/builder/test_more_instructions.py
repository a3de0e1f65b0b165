"""The remaining flags: COPY --from=image, --exclude, --link, --parents, FROM --platform,
ONBUILD, ARG scoping, RUN flag validation (checked before anything runs)."""

from __future__ import annotations

import pytest

from mlpack.errors import BuildError
from tests.unit.builder.helpers import Ctx


def test_copy_from_an_image_in_the_store(ctx: Ctx) -> None:
    ctx.write("lib/a.so", "A")
    ctx.build("FROM scratch\nCOPY lib/ /usr/lib/\n", tag="localhost/test/libs:1")
    image = ctx.build("FROM scratch\nCOPY --from=localhost/test/libs:1 /usr/lib/a.so /opt/a.so\n")
    assert ctx.layer_file(image, "opt/a.so") == b"A"
    with pytest.raises(BuildError, match="not in the store"):
        ctx.build("FROM scratch\nCOPY --from=localhost/test/missing:1 /x /y\n")


def test_copy_exclude_link_and_parents(ctx: Ctx) -> None:
    ctx.write("src/keep.py", "k")
    ctx.write("src/skip.md", "s")
    image = ctx.build("FROM scratch\nCOPY --link --exclude=*.md src/ /app/\n")
    names = set(ctx.layer_members(image))
    assert "app/keep.py" in names and "app/skip.md" not in names
    with pytest.raises(BuildError, match="--parents is not supported"):
        ctx.build("FROM scratch\nCOPY --parents src/keep.py /app/\n")


def test_from_platform_onbuild_and_arg_scoping(ctx: Ctx) -> None:
    ctx.write("f", "x")
    image = ctx.build(
        "ARG DEST=/global\n"
        "FROM --platform=linux/amd64 scratch\n"
        "ARG DEST\n"
        "ARG LOCAL=/local\n"
        "COPY f $DEST/\n"
        "COPY f $LOCAL/\n"
        "ONBUILD RUN echo later\n"
    )
    assert "global/f" in ctx.layer_members(image, 0) and "local/f" in ctx.layer_members(image, 1)
    assert image.config.blob["config"]["OnBuild"] == ["RUN echo later"]
    # an ARG declared only before FROM is not visible inside the stage unless redeclared
    image = ctx.build("ARG DEST=/global\nFROM scratch\nCOPY f ${DEST:-/unset}/\n")
    assert "unset/f" in ctx.layer_members(image)


@pytest.mark.parametrize(("line", "message"), [
    ("RUN --security=insecure true", "not allowed"),
    ("RUN --network=bridge true", "--network=bridge is not supported"),
    ("RUN --mount=type=ssh true", "type=ssh is not supported"),
    ("RUN --mount=type=cache,target=/c,sharing=weird true", "not shared, private or locked"),
    ("RUN --mount=type=cache,target=/c,colour=blue true", "unknown option"),
    ("RUN --mount=type=cache true", "needs target"),
    ("RUN --mount=type=secret,target=/run/x,uid=abc true", "not a number"),
    ("RUN []", "has no command"),
    ("ADD --checksum=md5:abc https://example.com/x /x", "sha256"),
    ("ADD --keep-git-dir=true https://example.com/x.git /x", "--keep-git-dir is not supported"),
])
def test_flag_errors_name_the_line(ctx: Ctx, line: str, message: str) -> None:
    with pytest.raises(BuildError, match=message) as info:
        ctx.build(f"FROM scratch\n{line}\n")
    assert info.value.line == 2


def test_copy_follows_symlinked_directories_of_the_image(ctx: Ctx) -> None:
    import os

    ctx.write("base/usr/lib/.keep", "")
    os.symlink("usr/lib", ctx.root / "base" / "lib")
    ctx.write("libx.so", "X")
    ctx.build("FROM scratch\nCOPY base/ /\n", tag="localhost/test/merged-usr:1")
    image = ctx.build("FROM localhost/test/merged-usr:1\nCOPY libx.so /lib/libx.so\nCOPY libx.so /lib/sub/\n")
    first, second = ctx.layer_members(image, -2), ctx.layer_members(image, -1)
    assert "usr/lib/libx.so" in first and "lib" not in first  # the /lib symlink is left alone
    assert "usr/lib/sub/libx.so" in second and "lib" not in second
