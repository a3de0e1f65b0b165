"""Executes the planned stages command by command.

Each typed command (:mod:`mlpack.builder.instructions`) is dispatched on its
type to a step function of :data:`mlpack.builder.steps.STEPS`, which gets the
build-wide context (:class:`~mlpack.builder.buildenv.BuildEnv`) and the stage's
state explicitly. Filesystem steps (RUN, COPY, ADD, WORKDIR when it creates a
directory) go through the step cache; metadata steps (ENV, LABEL, USER, CMD,
...) only change the config and are replayed on every build, which costs
nothing. A base image's ONBUILD triggers run right after its FROM.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping

from mlpack.builder.buildenv import BuildEnv
from mlpack.builder.cache import chain_key, is_virtual
from mlpack.builder.changeset import from_upperdir
from mlpack.builder.context import BuildContextDir
from mlpack.builder.events import BuildDone, LayerSummary, StageStarted, StepDone, StepStarted
from mlpack.builder.imageconfig import ConfigState
from mlpack.builder.instructions import AnyCommand, instructions
from mlpack.builder.parser import Dockerfile, parse
from mlpack.builder.shell import ExpansionError
from mlpack.builder.stages import Plan, Stage
from mlpack.builder.events import Progress
from mlpack.builder.options import BuildOptions
from mlpack.builder.state import StageState
from mlpack.builder.steps import STEPS
from mlpack.oci.image import Image, Layer
from mlpack.oci.layer import write_entries
from mlpack.oci.layout import Store
from mlpack.settings import Settings

__all__ = ["Executor", "BuildInterrupted"]


class BuildInterrupted(KeyboardInterrupt):
    """Ctrl-C during a build; the message names the step it stopped in."""


class Executor:
    """Runs a :class:`Plan` against a store; ``run()`` returns the tagged Image."""

    def __init__(self, settings: Settings, store: Store, ctx: BuildContextDir, dockerfile: Dockerfile,
                 plan: Plan, options: BuildOptions, progress: Progress | None = None, *,
                 contexts: Mapping[str, BuildContextDir] | None = None) -> None:
        self.plan = plan
        self.opts = options
        self.env = BuildEnv.create(settings, store, ctx, dockerfile.escape, plan, options, progress,
                                   contexts=dict(contexts or {}))
        self.position = self.env.position

    # -- the build --------------------------------------------------------------------
    def run(self) -> Image:
        try:
            return self._run()
        except KeyboardInterrupt:
            raise BuildInterrupted(f"build interrupted in {self.position.current or 'its first step'}; "
                                   "no image was tagged and the store's index is unchanged") from None
        finally:
            for path in self.env.cleanup:
                path.unlink(missing_ok=True)

    def _run(self) -> Image:
        started = time.monotonic()
        self.env.scratch.mkdir(parents=True, exist_ok=True)
        for stage in self.plan.stages:
            self.env.states[stage.index] = self._build_stage(stage)
        final = self.env.states[self.plan.target.index]
        self._materialize(final)
        config = final.cfg.to_blob(created=self.env.created, **_platform_fields(final.stage.platform))
        digest = self.env.store.put_image(config, final.layers, ref=self.opts.tag)
        image = self.env.store.resolve(digest)
        if self.opts.tag:
            image = self.env.store.resolve(self.opts.tag)
        self.env.ctx.hashes.save()
        self.env.emit(BuildDone(
            digest=image.digest, tag=self.opts.tag, seconds=time.monotonic() - started,
            layers=tuple(LayerSummary(l.digest, l.size, c, cached) for l, c, cached in
                         zip(final.layers, final.created_by, final.cached)),
            unused_build_args=tuple(sorted(self.plan.unused_build_args)),
        ))
        return image

    def _materialize(self, state: StageState) -> None:
        """Turn the virtual layers that reached the image into real ones."""
        for i, layer in enumerate(state.layers):
            if not is_virtual(layer):
                continue
            upper = self.env.dirs.get(layer)
            lowers = self.env.dirs.lowers(state.layers[:i])
            # an empty changeset still becomes a (tiny) layer: the history says there is one
            entries = from_upperdir(upper, list(reversed(lowers)))
            real = write_entries(self.env.store, entries, self.env.layer_options, fast=True)
            self.env.dirs.save_index(real, entries)
            state.layers[i] = real
            offset = len(state.cfg.diff_ids) - len(state.layers)
            state.cfg.diff_ids[offset + i] = real.diff_id

    def _build_stage(self, stage: Stage) -> StageState:
        self.env.emit(StageStarted(stage_name=stage.label, base=stage.base, index=stage.index))
        state = self._from(stage)
        for cmd in self._onbuild_triggers(state):
            self.position.step += 1
            self._dispatch(state, cmd)
        for cmd in stage.commands:
            self.position.step += 1
            self._dispatch(state, cmd)
        return state

    def _onbuild_triggers(self, state: StageState) -> list[AnyCommand]:
        """The base image's ONBUILD triggers: they run right after FROM and are
        not inherited by this image (BuildKit and docker)."""
        triggers = state.cfg.take_onbuild()
        commands: list[AnyCommand] = []
        for text in triggers:
            parsed = parse(str(text), file=f"ONBUILD of {state.stage.base}")
            commands += instructions(parsed.instructions, escape=parsed.escape)
        self.position.total += len(commands)
        return commands

    def _from(self, stage: Stage) -> StageState:
        """The stage's starting state. SOURCE_DATE_EPOCH is part of every root key:
        a layer clamped to another epoch is another layer."""
        self.position.step += 1
        instr = stage.from_instruction
        text = f"FROM {stage.base}" + (f" AS {stage.name}" if stage.name else "")
        self.env.emit(StepStarted(self.position.step, self.position.total, text, stage.label))
        if stage.base_stage is not None:
            parent = self.env.states[stage.base_stage]
            state = StageState(stage=stage, layers=list(parent.layers), cached=list(parent.cached),
                               created_by=list(parent.created_by), cfg=copy.deepcopy(parent.cfg), key=parent.key,
                               shell=list(parent.shell))
        elif stage.base == "scratch":
            state = StageState(stage=stage, layers=[], cached=[], created_by=[], cfg=ConfigState.from_base(None),
                               key=chain_key("", "FROM", "scratch", self.opts.source_date_epoch))
        else:
            image = self.env.base_image(instr, stage.base, stage.platform)
            layers = [Layer(d["digest"], int(d["size"]), diff, d.get("mediaType", ""))
                      for d, diff in zip(image.layers, image.diff_ids)]
            state = StageState(stage=stage, layers=layers, cached=[True] * len(layers),
                               created_by=[f"FROM {stage.base}"] * len(layers),
                               cfg=ConfigState.from_base(image.config),
                               key=chain_key("", "FROM", image.digest, self.opts.source_date_epoch))
        self.env.emit(StepDone(self.position.step, self.position.total, text, None, 0.0, stage.label))
        return state

    def _dispatch(self, state: StageState, cmd: AnyCommand) -> None:
        """Run one command: the step of its type (:data:`mlpack.builder.steps.STEPS`)."""
        pos = self.position
        pos.current = f"step {pos.step}/{pos.total} of stage {state.stage.label} (line {cmd.line}: {cmd.original[:80]})"
        try:
            STEPS[type(cmd)](self.env, state, cmd)
        except ExpansionError as exc:
            raise cmd.error(exc.message, hint=exc.hint) from None


def _platform_fields(platform: str) -> dict[str, str]:
    """``to_blob``'s platform arguments for ``linux/arm64`` (the config then says arm64, variant v8)."""
    from mlpack.oci.platforms import parse_platform, platform_descriptor

    desc = platform_descriptor(parse_platform(platform))
    return {"architecture": desc["architecture"], "os_name": desc["os"], "variant": desc.get("variant", "")}
