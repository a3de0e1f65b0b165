"""Metadata instructions: they change the image config and add no layer.

ARG, ENV, LABEL, MAINTAINER, USER, EXPOSE, VOLUME, STOPSIGNAL, CMD,
ENTRYPOINT, SHELL, ONBUILD, HEALTHCHECK. They are replayed on every build
(cheap) and are not part of any cache key, except through what later RUN
steps see (env, user, workdir, shell).
"""

from __future__ import annotations


from mlpack.builder.events import StepDone, StepStarted
from mlpack.builder.imageconfig import parse_port
from mlpack.builder.parser import Instruction
from mlpack.builder.stages import PLATFORM_ARGS, _raw_words, parse_arg
from mlpack.builder.state import StageState
from mlpack.errors import BuildError

__all__ = ["MetadataSteps"]


class MetadataSteps:
    """Handlers ``_do_<instruction>`` mixed into :class:`~mlpack.builder.executor.Executor`."""

    def _meta(self, state: StageState, instr: Instruction, created_by: str | None = None) -> None:
        """A metadata step: no layer, an empty_layer history entry."""
        text = created_by or instr.original
        self._emit(StepStarted(self.step, self.total, text, state.stage.label))
        state.cfg.add_history(text, created=self.created, empty_layer=True)
        self._emit(StepDone(self.step, self.total, text, None, 0.0, state.stage.label))

    # -- metadata instructions ----------------------------------------------------------
    def _do_arg(self, state: StageState, instr: Instruction) -> None:
        expander = state.expander(self.df.escape)
        for name, default in parse_arg(instr, expander):
            if name in self.opts.build_args:
                value: str | None = self.opts.build_args[name]
            elif default is not None:
                value = default
            else:
                value = self.plan.global_args.get(name) or PLATFORM_ARGS.get(name)
            if value is not None:
                state.args[name] = value
        self._meta(state, instr, f"ARG {instr.args}")

    def _pairs(self, instr: Instruction, legacy_ok: bool) -> list[tuple[str, str]]:
        words = _raw_words(instr.args)
        if not words:
            raise instr.error(f"{instr.cmd} needs at least one key=value")
        if "=" not in words[0]:
            if not legacy_ok or len(words) < 2:
                raise instr.error(f"{instr.cmd} expects key=value pairs", hint=f"write {instr.cmd} KEY=value")
            # legacy "ENV KEY value with spaces"
            key, _, rest = instr.args.strip().partition(" ")
            return [(key, rest.strip())]
        pairs = []
        for word in words:
            key, eq, value = word.partition("=")
            if not eq or not key:
                raise instr.error(f"{word!r} is not key=value", hint="quote values that contain spaces")
            pairs.append((key, value))
        return pairs

    def _do_env(self, state: StageState, instr: Instruction) -> None:
        expander = state.expander(self.df.escape)  # every value sees the env from before this line
        for key, value in self._pairs(instr, legacy_ok=True):
            state.cfg.set_env(expander.word(key), expander.word(value))
        self._meta(state, instr)

    def _do_label(self, state: StageState, instr: Instruction) -> None:
        expander = state.expander(self.df.escape)
        labels = dict(state.cfg.config.get("Labels") or {})
        for key, value in self._pairs(instr, legacy_ok=False):
            labels[expander.word(key)] = expander.word(value)
        state.cfg.config["Labels"] = labels
        self._meta(state, instr)

    def _do_maintainer(self, state: StageState, instr: Instruction) -> None:
        labels = dict(state.cfg.config.get("Labels") or {})
        labels["maintainer"] = instr.args.strip()
        state.cfg.config["Labels"] = labels
        self._meta(state, instr)

    def _do_user(self, state: StageState, instr: Instruction) -> None:
        user = state.expander(self.df.escape).word(instr.args.strip())
        if not user or " " in user:
            raise instr.error("USER takes one user[:group]")
        state.cfg.config["User"] = user
        self._meta(state, instr)

    def _do_expose(self, state: StageState, instr: Instruction) -> None:
        ports = dict(state.cfg.config.get("ExposedPorts") or {})
        for word in state.expander(self.df.escape).words(instr.args):
            spec, _, proto = word.partition("/")
            first, dash, last = spec.partition("-")
            try:
                numbers = range(int(first), int(last) + 1) if dash else [int(first)]
                for n in numbers:
                    ports[parse_port(f"{n}/{proto}" if proto else str(n))] = {}
            except ValueError:
                raise instr.error(f"invalid port {word!r}", hint="use EXPOSE 8080 or 8080/tcp") from None
        if not ports:
            raise instr.error("EXPOSE needs a port")
        state.cfg.config["ExposedPorts"] = ports
        self._meta(state, instr)

    def _do_volume(self, state: StageState, instr: Instruction) -> None:
        expander = state.expander(self.df.escape)
        paths = [expander.word(p) for p in instr.json] if instr.json is not None else expander.words(instr.args)
        if not paths or any(not p for p in paths):
            raise instr.error("VOLUME needs a path")
        volumes = dict(state.cfg.config.get("Volumes") or {})
        for p in paths:
            volumes[p] = {}
        state.cfg.config["Volumes"] = volumes
        self._meta(state, instr)

    def _do_stopsignal(self, state: StageState, instr: Instruction) -> None:
        sig = state.expander(self.df.escape).word(instr.args.strip())
        if not sig or not (sig.isdigit() or sig.upper().startswith("SIG")):
            raise instr.error(f"invalid stop signal {sig!r}", hint="use e.g. SIGTERM or 15")
        state.cfg.config["StopSignal"] = sig
        self._meta(state, instr)

    def _command(self, state: StageState, instr: Instruction, text: str | None = None) -> list[str]:
        if instr.json is not None and text is None:
            return list(instr.json)
        return state.shell + [text if text is not None else instr.args]

    def _do_cmd(self, state: StageState, instr: Instruction) -> None:
        state.cfg.config["Cmd"] = self._command(state, instr)
        state.cmd_set = True
        self._meta(state, instr)

    def _do_entrypoint(self, state: StageState, instr: Instruction) -> None:
        state.cfg.config["Entrypoint"] = self._command(state, instr) if instr.args.strip() else None
        if not state.cmd_set:
            state.cfg.config.pop("Cmd", None)  # docker: a new ENTRYPOINT drops the base image's CMD
        self._meta(state, instr)

    def _do_shell(self, state: StageState, instr: Instruction) -> None:
        if instr.json is None or not instr.json:
            raise instr.error("SHELL must be written in JSON form", hint='SHELL ["/bin/bash", "-c"]')
        state.shell = list(instr.json)
        state.cfg.config["Shell"] = list(instr.json)
        self._meta(state, instr)

    def _do_onbuild(self, state: StageState, instr: Instruction) -> None:
        onbuild = list(state.cfg.config.get("OnBuild") or [])
        onbuild.append(instr.args)
        state.cfg.config["OnBuild"] = onbuild
        self._meta(state, instr)

    def _do_healthcheck(self, state: StageState, instr: Instruction) -> None:
        flags = instr.flag_dict({"interval": True, "timeout": True, "start-period": True,
                                 "start-interval": True, "retries": True})
        sub, _, rest = instr.args.strip().partition(" ")
        if sub.upper() == "NONE":
            if flags or rest.strip():
                raise instr.error("HEALTHCHECK NONE takes no flags or arguments")
            state.cfg.config["Healthcheck"] = {"Test": ["NONE"]}
            self._meta(state, instr)
            return
        if sub.upper() != "CMD" or not rest.strip():
            raise instr.error("expected HEALTHCHECK [flags] CMD command, or HEALTHCHECK NONE")
        test = ["CMD", *instr.json] if instr.json is not None else ["CMD-SHELL", rest.strip()]
        one = lambda name: flags[name][-1] if name in flags else None  # noqa: E731
        try:
            state.cfg.healthcheck(test, interval=one("interval"), timeout=one("timeout"),
                                  start_period=one("start-period"), start_interval=one("start-interval"),
                                  retries=one("retries"))
        except (ValueError, BuildError) as exc:
            raise instr.error(str(exc)) from None
        self._meta(state, instr)
