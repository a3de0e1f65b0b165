"""Cache keys: content not mtimes, first miss invalidates the rest, reproducible digests."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from mlpack.builder.events import BuildDone, StepCached, StepDone
from mlpack.settings import Settings
from tests.unit.builder.helpers import Ctx

DOCKERFILE = (
    "FROM scratch\n"
    "ARG FLAVOR=cpu\n"
    "COPY requirements.lock /deps/\n"
    "COPY app/ /app/\n"
    "COPY model.onnx /model/\n"
    "LABEL flavor=$FLAVOR\n"
)


def _fill(ctx: Ctx) -> None:
    ctx.write("requirements.lock", "numpy==1.26.4\n")
    ctx.write("app/server.py", "print('serve')\n")
    ctx.write("model.onnx", b"\x08\x01model-v1")


def _cached(ctx: Ctx) -> list[str]:
    return [e.instruction for e in ctx.events if isinstance(e, StepCached)]


def _done_fs(ctx: Ctx) -> list[str]:
    return [e.instruction for e in ctx.events if isinstance(e, StepDone) and e.size is not None]


def test_rebuild_reuses_everything_and_mtime_changes_do_not_matter(ctx: Ctx) -> None:
    _fill(ctx)
    first = ctx.build(DOCKERFILE)
    assert len(_done_fs(ctx)) == 3
    now = time.time() + 100
    for rel in ("requirements.lock", "app/server.py", "model.onnx"):
        os.utime(ctx.root / rel, (now, now))
    again = ctx.build()
    assert len(_cached(ctx)) == 3 and _done_fs(ctx) == []
    assert again.digest == first.digest  # cached layers carry their original mtimes


def test_only_the_changed_model_layer_is_rebuilt(ctx: Ctx) -> None:
    _fill(ctx)
    first = ctx.build(DOCKERFILE)
    ctx.write("model.onnx", b"\x08\x01model-v2")
    second = ctx.build()
    assert _cached(ctx) == ["COPY requirements.lock /deps/", "COPY app/ /app/"]
    assert _done_fs(ctx) == ["COPY model.onnx /model/"]
    assert second.layers[:2] == first.layers[:2] and second.layers[2] != first.layers[2]
    done = [e for e in ctx.events if isinstance(e, BuildDone)][0]
    assert [l.cached for l in done.layers] == [True, True, False]


def test_first_miss_invalidates_later_steps(ctx: Ctx) -> None:
    _fill(ctx)
    ctx.build(DOCKERFILE)
    ctx.write("requirements.lock", "numpy==2.0.0\n")
    ctx.build()
    assert _cached(ctx) == []
    assert len(_done_fs(ctx)) == 3


def test_build_args_and_instruction_text_change_keys(ctx: Ctx) -> None:
    _fill(ctx)
    ctx.build(DOCKERFILE)
    ctx.build(build_args={"FLAVOR": "gpu"})  # consumed only by LABEL: layers stay cached
    assert len(_cached(ctx)) == 3
    ctx.build(DOCKERFILE.replace("COPY app/ /app/", "COPY app/ /srv/"))
    assert _cached(ctx) == ["COPY requirements.lock /deps/"]


def test_no_cache_rebuilds_every_step_with_the_same_result(ctx: Ctx) -> None:
    _fill(ctx)
    first = ctx.build(DOCKERFILE)
    again = ctx.build(no_cache=True)
    assert _cached(ctx) == [] and len(_done_fs(ctx)) == 3
    assert again.digest == first.digest


def test_mode_change_is_a_miss(ctx: Ctx) -> None:
    _fill(ctx)
    ctx.build(DOCKERFILE)
    (ctx.root / "app" / "server.py").chmod(0o700)
    ctx.build()
    assert _cached(ctx) == ["COPY requirements.lock /deps/"]


def test_two_fresh_homes_give_identical_digests(tmp_path: Path) -> None:
    digests = []
    for name in ("one", "two"):
        root = tmp_path / name / "ctx"
        root.mkdir(parents=True)
        c = Ctx(root, Settings.from_env({"MLPACK_HOME": str(tmp_path / name / "home")}))
        _fill(c)
        for rel in ("requirements.lock", "app/server.py", "model.onnx", "app"):
            os.utime(root / rel, (1_650_000_000, 1_650_000_000))
        digests.append(c.build(DOCKERFILE).digest)
    assert digests[0] == digests[1]
    shutil.rmtree(tmp_path / "one")


def test_build_done_summary(ctx: Ctx) -> None:
    _fill(ctx)
    image = ctx.build(DOCKERFILE)
    done = [e for e in ctx.events if isinstance(e, BuildDone)]
    assert len(done) == 1 and done[0].digest == image.digest
    assert [l.digest for l in done[0].layers] == [d["digest"] for d in image.layers]
    assert all(l.size > 0 for l in done[0].layers)


def test_unused_build_args_are_reported(ctx: Ctx) -> None:
    _fill(ctx)
    ctx.build(DOCKERFILE, build_args={"FLAVOR": "gpu", "TYPO": "1"})
    done = [e for e in ctx.events if isinstance(e, BuildDone)][0]
    assert done.unused_build_args == ("TYPO",)


def test_events_translate_for_the_pipeline_progress(ctx: Ctx) -> None:
    from mlpack.progress import BuildStepEvent, adapt_build_event

    _fill(ctx)
    ctx.build(DOCKERFILE)
    ctx.build()
    adapted = [adapt_build_event(e) for e in ctx.events]
    steps = [a for a in adapted if isinstance(a, BuildStepEvent)]
    assert {s.state for s in steps} >= {"cached", "done"}
    cached = [s for s in steps if s.state == "cached"]
    assert cached[0].instruction == "COPY requirements.lock /deps/" and cached[0].size and cached[0].total


def test_a_different_source_date_epoch_is_a_different_build(ctx: Ctx) -> None:
    _fill(ctx)
    first = ctx.build(DOCKERFILE, source_date_epoch=1_700_000_000)
    other = ctx.build(source_date_epoch=1_600_000_000)
    assert _cached(ctx) == [] and other.digest != first.digest
    again = ctx.build(source_date_epoch=1_700_000_000)
    assert again.digest == first.digest


def test_file_hashes_are_one_entry_per_path(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The hash cache answers an unchanged file without reading it, across builds; a changed file
    replaces its entry (a model rebuilt many times does not grow the file every build reads and
    writes); a file of another layout is dropped, not misread."""
    import hashlib
    import json

    from mlpack.builder import context

    model, store = tmp_path / "model.onnx", tmp_path / "cache" / context.HashCache.FILE
    hashed: list[str] = []
    real = context.sha256_file
    monkeypatch.setattr(context, "sha256_file", lambda path: (hashed.append(str(path)), real(path))[1])
    for version in range(3):
        model.write_bytes(b"weights %d" % version)
        os.utime(model, ns=(version, version))  # another mtime even where the clock is coarse
        for _ in range(2):  # a second build of the same file reads the cache, not the file
            cache = context.HashCache(store)
            assert cache.digest(str(model), os.stat(model)) == hashlib.sha256(b"weights %d" % version).hexdigest()
            cache.save()
    assert hashed == [str(model)] * 3
    assert list(json.loads(store.read_text())["files"]) == [str(model)]
    store.write_text(json.dumps({f"{model}|9|1|1|1": "0" * 64}))  # the older layout: an entry per version
    assert context.HashCache(store).data == {}
