"""The step of each command type: ``STEPS[type(cmd)](build, state, cmd)``.

Every step is a function of the build-wide context
(:class:`~mlpack.builder.buildenv.BuildEnv`), the stage's state and its
typed command (:mod:`mlpack.builder.instructions`). Filesystem steps (RUN,
COPY, ADD, WORKDIR) go through the step cache; metadata steps are the
functions of :data:`mlpack.builder.metadata.STEPS`, which only change the
config and add an empty-layer history entry.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from mlpack.builder import copying, copystep, metadata, runexec
from mlpack.builder.buildenv import BuildEnv, abs_path
from mlpack.builder.cache import chain_key
from mlpack.builder.events import StepDone, StepStarted
from mlpack.builder.instructions import AddCommand, CopyCommand, RunCommand, WorkdirCommand
from mlpack.builder.state import StageState
from mlpack.oci.layer import Entry
from mlpack.oci.image import Layer

TYPE_CHECKING = False  # typing is the type checker's: a CLI rebuild does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

__all__ = ["STEPS", "Step", "workdir"]

Step = Callable[[BuildEnv, StageState, "Any"], None]  # Any is the checker's (typing is not imported)


def workdir(build: BuildEnv, state: StageState, cmd: WorkdirCommand) -> None:
    """WORKDIR: sets the config; a layer only when the directory does not exist yet."""
    instr = cmd.node
    raw = state.expander(build.escape).word(cmd.path)
    if not raw:
        raise instr.error("WORKDIR needs a path")
    path = os.path.normpath(abs_path(state, raw))
    state.cfg.set_working_dir(path)
    key = chain_key(state.key, "WORKDIR", path, state.cfg.user)

    def produce() -> Layer | None:
        view = build.view(state)
        if view.is_dir(path):
            return None
        rel = view.resolve(path) or path.strip("/")
        # BuildKit creates the directory as the stage's USER, so a later RUN may write there
        user = state.cfg.user
        # a user name alone takes its primary group (copying.parse_chown)
        owner = copying.parse_chown(instr, user, lambda: view) if user else (0, 0)
        assert owner is not None
        entries = [Entry(rel, "dir", mode=0o755, uid=owner[0], gid=owner[1])]
        return build.write(build.with_lower_parents(state, entries))

    build.fs_step(state, key, instr.original, produce)


def _metadata_step(change: Callable[[StageState, Any, metadata.Scope], str]) -> Step:
    """A metadata step: the config change, no layer, an empty_layer history entry."""

    def step(build: BuildEnv, state: StageState, cmd: Any) -> None:
        text = change(state, cmd, build.scope)
        pos, label = build.position, state.stage.label
        build.emit(StepStarted(pos.step, pos.total, text, label))
        state.cfg.add_history(text, created=build.created, empty_layer=True)
        build.emit(StepDone(pos.step, pos.total, text, None, 0.0, label))

    step.__name__ = step.__qualname__ = change.__name__
    step.__doc__ = change.__doc__
    return step


STEPS: dict[type, Step] = {
    CopyCommand: copystep.copy, AddCommand: copystep.add, RunCommand: runexec.run, WorkdirCommand: workdir,
    **{kind: _metadata_step(change) for kind, change in metadata.STEPS.items()},
}
