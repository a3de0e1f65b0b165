"""`mlpack system prune --build-cache`: the next build is cold, images stay."""

from __future__ import annotations

from mlpack.builder.events import StepCached
from mlpack.builder.prune import prune_cache
from mlpack.cli import main
from tests.unit.builder.helpers import Ctx

DOCKERFILE = "FROM scratch\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\n"


def test_prune_cache_makes_the_next_build_cold_and_keeps_images(ctx: Ctx, monkeypatch) -> None:
    ctx.write("a.txt", "a")
    ctx.write("b.txt", "b")
    first = ctx.build(DOCKERFILE)
    ctx.build(DOCKERFILE)
    assert sum(isinstance(e, StepCached) for e in ctx.events) == 2
    mounts = ctx.settings.cache_dir / "mounts" / "pip"
    mounts.mkdir(parents=True)
    (mounts / "wheel").write_bytes(b"x" * 1000)

    freed = prune_cache(ctx.settings)
    assert freed >= 1000
    assert not (ctx.settings.cache_dir / "build").exists() and not mounts.exists()
    assert ctx.store.resolve("localhost/test/img:1").digest == first.digest

    again = ctx.build(DOCKERFILE)
    assert not any(isinstance(e, StepCached) for e in ctx.events)
    assert again.digest == first.digest  # reproducible, so a cold rebuild gives the same image


def test_system_prune_build_cache_flag(ctx: Ctx, monkeypatch, capsys) -> None:
    ctx.write("a.txt", "a")
    ctx.write("b.txt", "b")
    ctx.build(DOCKERFILE)
    monkeypatch.setenv("MLPACK_HOME", str(ctx.settings.home))
    assert main(["system", "prune"]) == 0
    assert (ctx.settings.cache_dir / "build").exists()
    assert main(["system", "prune", "--build-cache"]) == 0
    assert "build cache" in capsys.readouterr().out
    assert not (ctx.settings.cache_dir / "build").exists()
    assert prune_cache(ctx.settings) == 0  # nothing left: idempotent
