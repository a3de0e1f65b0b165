"""The step table: one step function per command type, each callable alone with a BuildEnv."""

from __future__ import annotations

import inspect
import tarfile
from pathlib import Path

import pytest

from mlpack.builder import copystep, executor, instructions, metadata, runexec, steps
from mlpack.builder.buildenv import BuildEnv
from mlpack.builder.context import BuildContextDir, HashCache
from mlpack.builder.events import StepCached, StepDone, StepStarted
from mlpack.builder.imageconfig import ConfigState
from mlpack.builder.parser import parse
from mlpack.builder.stages import plan
from mlpack.builder.options import BuildOptions
from mlpack.builder.state import StageState
from mlpack.errors import BuildError
from mlpack.oci.layout import Store
from mlpack.settings import Settings


def _command_types() -> set[type]:
    return {obj for obj in vars(instructions).values()
            if inspect.isclass(obj) and issubclass(obj, instructions.Command) and obj is not instructions.Command}


def test_every_command_type_but_from_has_a_step() -> None:
    kinds = _command_types()
    assert len(kinds) == 18  # a new command type must get a step here
    # FROM starts a stage (Executor._from); every other command is a step of the table
    assert set(steps.STEPS) == kinds - {instructions.FromCommand}
    assert set(instructions.AnyCommand.__args__) == kinds  # type: ignore[attr-defined]
    assert steps.STEPS[instructions.CopyCommand] is copystep.copy
    assert steps.STEPS[instructions.AddCommand] is copystep.add
    assert steps.STEPS[instructions.RunCommand] is runexec.run
    assert steps.STEPS[instructions.WorkdirCommand] is steps.workdir
    for kind in metadata.STEPS:
        assert steps.STEPS[kind].__name__ == metadata.STEPS[kind].__name__
    for step in steps.STEPS.values():
        assert list(inspect.signature(step).parameters)[:3] == ["build", "state", "cmd"]


def test_the_executor_is_no_mixin() -> None:
    assert executor.Executor.__mro__ == (executor.Executor, object)
    assert not [name for name in vars(executor.Executor) if name.startswith("_do_")]


class _Alone:
    """A BuildEnv and a scratch stage, made without an Executor."""

    def __init__(self, root: Path, settings: Settings, dockerfile: str) -> None:
        (root / "Dockerfile").write_text(dockerfile)
        parsed = parse(dockerfile, file="Dockerfile")
        self.commands = instructions.instructions(parsed.instructions, escape=parsed.escape)
        planned = plan(parsed, build_args={}, target=None, commands=self.commands)
        store = Store(settings.store_dir)
        store.init()
        ctx = BuildContextDir.open(root, "Dockerfile", HashCache(None))
        self.events: list[object] = []
        options = BuildOptions(source_date_epoch=1_700_000_000)
        self.build = BuildEnv.create(settings, store, ctx, parsed.escape, planned, options, self.events.append)
        stage = planned.target
        self.state = StageState(stage=stage, layers=[], cached=[], created_by=[], cfg=ConfigState.from_base(None),
                                key="sha256:" + "0" * 64)
        self.stage_commands = stage.commands

    def step(self, index: int) -> None:
        cmd = self.stage_commands[index]
        steps.STEPS[type(cmd)](self.build, self.state, cmd)


def test_steps_run_alone_on_an_explicit_env(tmp_path: Path, settings: Settings) -> None:
    root = tmp_path / "ctx"
    root.mkdir()
    (root / "data.csv").write_text("a,b\n1,NaN\n")
    alone = _Alone(root, settings, "FROM scratch\nENV DIR=/srv/app\nWORKDIR $DIR\nCOPY data.csv ./\n")

    alone.step(0)  # ENV: config only, an empty-layer history entry
    assert alone.state.cfg.env["DIR"] == "/srv/app"
    assert alone.state.layers == [] and alone.state.cfg.history[-1]["empty_layer"] is True

    alone.step(1)  # WORKDIR on scratch creates the directory: a layer
    assert alone.state.cfg.working_dir == "/srv/app"
    assert len(alone.state.layers) == 1
    workdir_key = alone.state.key

    alone.step(2)  # COPY relative to the WORKDIR
    assert len(alone.state.layers) == 2 and alone.state.key != workdir_key
    blob = alone.build.store.blob_path(alone.state.layers[-1].digest)
    with tarfile.open(blob, "r:gz") as tar:
        fh = tar.extractfile("srv/app/data.csv")
        assert fh is not None and fh.read() == b"a,b\n1,NaN\n"
    kinds = [type(e) for e in alone.events]
    assert kinds == [StepStarted, StepDone] * 3

    # the same COPY again on a fresh stage state is a cache hit of the same env
    again = _Alone(root, settings, "FROM scratch\nENV DIR=/srv/app\nWORKDIR $DIR\nCOPY data.csv ./\n")
    for i in range(3):
        again.step(i)
    assert again.state.layers == alone.state.layers
    assert [type(e) for e in again.events].count(StepCached) == 2


def test_a_step_alone_keeps_its_errors(tmp_path: Path, settings: Settings) -> None:
    root = tmp_path / "ctx"
    root.mkdir()
    alone = _Alone(root, settings, "FROM scratch\nCOPY ../outside /x\n")
    with pytest.raises(BuildError) as info:
        alone.step(0)
    assert info.value.line == 2  # type: ignore[attr-defined]
    assert "leaves the build context" in info.value.message
    assert alone.state.layers == [] and alone.events == []
