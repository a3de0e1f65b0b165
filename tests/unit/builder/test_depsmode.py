"""What deps="context" reads from a base image in the store, and how the mode is chosen."""

from __future__ import annotations

import os

import pytest

from mlpack.builder.depsmode import base_facts, choose_deps
from mlpack.errors import BuildError
from tests.unit.builder.helpers import Ctx

STATUS = ("Package: libc-bin\nStatus: install ok installed\nVersion: 2.36-9\n\n"
          "Package: libc6\nStatus: install ok installed\nPriority: optional\nVersion: 2.36-9+deb12u9\n\n")


def test_base_facts_come_from_the_images_layers(ctx: Ctx) -> None:
    ctx.write("rootfs/usr/bin/python3.11", "#!fake interpreter\n", mode=0o755)
    os.symlink("python3.11", ctx.root / "rootfs/usr/bin/python3")
    ctx.write("rootfs/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n")
    ctx.write("rootfs/etc/group", "root:x:0:\n")
    ctx.write("rootfs/var/lib/dpkg/status", STATUS)
    ctx.build("FROM scratch\nCOPY rootfs/ /\n", tag="localhost/test/base:1")
    facts = base_facts(ctx.settings, ctx.store, "localhost/test/base:1", "3.11")
    assert facts.interpreter == "/usr/bin/python3.11"
    assert facts.passwd == b"root:x:0:0:root:/root:/bin/bash\n" and facts.group == b"root:x:0:\n"
    assert (facts.machine, facts.glibc) == ("x86_64", (2, 36))
    with pytest.raises(BuildError, match="no python3.12"):
        base_facts(ctx.settings, ctx.store, "localhost/test/base:1", "3.12")
    with pytest.raises(BuildError, match="not in the store"):
        base_facts(ctx.settings, ctx.store, "localhost/test/absent:1", "3.11")


def test_explicit_modes_are_taken_as_given(ctx: Ctx) -> None:
    assert choose_deps("run", ctx.settings) == "run"
    assert choose_deps("context", ctx.settings) == "context"
    with pytest.raises(BuildError, match="deps='always'"):
        choose_deps("always", ctx.settings)


def test_a_bundle_rendered_with_its_whole_wheelhouse_builds_without_network() -> None:
    from mlpack.builder import _offline_render

    text = "FROM x AS builder\nRUN --mount=type=bind,from=wheels,target=/w pip install --no-index\n"
    assert _offline_render({"wheels": "/ctx/wheels"}, text)
    # no wheelhouse (an extra --pip spec, no wheel for the image): pip asks the index
    assert not _offline_render({"deps": "/ctx/deps"}, text)
    # an apt step (a registry base without a library the wheels load) needs the network
    assert not _offline_render({"wheels": "/ctx/wheels"}, text + "RUN apt-get update && apt-get install -y libgomp1\n")
