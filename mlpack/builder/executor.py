"""Executes the planned stages instruction by instruction.

Filesystem steps (RUN, COPY, ADD, WORKDIR when it creates a directory) go
through the step cache; metadata steps (ENV, LABEL, USER, CMD, ...) only
change the config and are replayed on every build, which costs nothing.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlpack.builder import copying, runstep
from mlpack.builder.cache import StepCache, StepRecord, chain_key, is_virtual, virtual_layer
from mlpack.builder.changeset import from_upperdir
from mlpack.builder.context import BuildContextDir
from mlpack.builder.events import (
    BuildDone, LayerSummary, Progress, StageStarted, StepCached, StepDone, StepOutput, StepStarted,
)
from mlpack.builder.imageconfig import ConfigState, parse_port, rfc3339
from mlpack.builder.parser import Dockerfile, Instruction
from mlpack.builder.rootfs import LayerDirs, RootView, merged_root
from mlpack.builder.shell import Expander, ExpansionError
from mlpack.builder.stages import PLATFORM_ARGS, PROXY_ARGS, Plan, Stage, _raw_words, parse_arg
from mlpack.errors import BuildError, ImageNotFound, MlpackError
from mlpack.builder.layerwrite import write_layer
from mlpack.oci.layer import Entry, LayerOptions
from mlpack.oci.layout import Image, Layer, Store
from mlpack.settings import Settings

__all__ = ["BuildOptions", "Executor"]

DEFAULT_SHELL = ["/bin/sh", "-c"]


@dataclass
class BuildOptions:
    """Everything a build takes besides the Dockerfile and the context."""

    tag: str | None = None
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    secrets: dict[str, Path] = field(default_factory=dict)
    source_date_epoch: int | None = None
    progress: Progress | None = None


@dataclass
class StageState:
    stage: Stage
    layers: list[Layer]
    cached: list[bool]
    created_by: list[str]
    cfg: ConfigState
    key: str
    args: dict[str, str] = field(default_factory=dict)
    shell: list[str] = field(default_factory=lambda: list(DEFAULT_SHELL))
    cmd_set: bool = False

    def expander(self, escape: str) -> Expander:
        env = {**self.args, **self.cfg.env}  # ENV wins over ARG of the same name
        return Expander(env, escape=escape)


class Executor:
    """Runs a :class:`Plan` against a store; ``run()`` returns the tagged Image."""

    def __init__(self, settings: Settings, store: Store, ctx: BuildContextDir, dockerfile: Dockerfile,
                 plan: Plan, options: BuildOptions) -> None:
        self.settings = settings
        self.store = store
        self.ctx = ctx
        self.df = dockerfile
        self.plan = plan
        self.opts = options
        self.dirs = LayerDirs(settings, store)
        self.cache = StepCache(settings.cache_dir / "build" / "steps", store, self.dirs.virtual_root)
        self.scratch = settings.cache_dir / "build" / "tmp"
        self.states: dict[int, StageState] = {}
        self.step = 0
        self.total = sum(1 + len(s.instructions) for s in plan.stages)
        epoch = options.source_date_epoch
        self.created = rfc3339(epoch) if epoch is not None else rfc3339(int(time.time()))
        self.layer_options = LayerOptions(source_date_epoch=epoch)

    # -- plumbing ---------------------------------------------------------------------
    def _emit(self, event: object) -> None:
        if self.opts.progress is not None:
            self.opts.progress(event)  # type: ignore[arg-type]

    def _lookup(self, key: str) -> StepRecord | None:
        return None if self.opts.no_cache else self.cache.get(key)

    def _view(self, state: StageState) -> RootView:
        return RootView(state.layers, self.dirs)

    def _add_layer(self, state: StageState, layer: Layer | None, created_by: str, cached: bool) -> None:
        if layer is None:
            state.cfg.add_history(created_by, created=self.created, empty_layer=True)
            return
        state.layers.append(layer)
        state.cached.append(cached)
        state.created_by.append(created_by)
        state.cfg.diff_ids.append(layer.diff_id)
        state.cfg.add_history(created_by, created=self.created, empty_layer=False)

    # -- the build --------------------------------------------------------------------
    def run(self) -> Image:
        started = time.monotonic()
        self.scratch.mkdir(parents=True, exist_ok=True)
        for stage in self.plan.stages:
            self.states[stage.index] = self._build_stage(stage)
        final = self.states[self.plan.target.index]
        self._materialize(final)
        config = final.cfg.to_blob(created=self.created)
        digest = self.store.put_image(config, final.layers, ref=self.opts.tag)
        image = self.store.resolve(digest)
        if self.opts.tag:
            image = self.store.resolve(self.opts.tag)
        self.ctx.hashes.save()
        self._emit(BuildDone(
            digest=image.digest, tag=self.opts.tag, seconds=time.monotonic() - started,
            layers=tuple(LayerSummary(l.digest, l.size, c, cached) for l, c, cached in
                         zip(final.layers, final.created_by, final.cached)),
        ))
        return image

    def _materialize(self, state: StageState) -> None:
        """Turn the virtual layers that reached the image into real ones."""
        for i, layer in enumerate(state.layers):
            if not is_virtual(layer):
                continue
            upper = self.dirs.get(layer)
            lowers = self.dirs.lowers(state.layers[:i])
            # an empty changeset still becomes a (tiny) layer: the history says there is one
            entries = from_upperdir(upper, list(reversed(lowers)))
            real = write_layer(self.store, entries, self.layer_options)
            self.dirs.save_index(real, entries)
            state.layers[i] = real
            offset = len(state.cfg.diff_ids) - len(state.layers)
            state.cfg.diff_ids[offset + i] = real.diff_id

    def _build_stage(self, stage: Stage) -> StageState:
        self._emit(StageStarted(stage_name=stage.label, base=stage.base, index=stage.index))
        state = self._from(stage)
        for instr in stage.instructions:
            self.step += 1
            self._dispatch(state, instr)
        return state

    def _from(self, stage: Stage) -> StageState:
        self.step += 1
        instr = stage.from_instruction
        text = f"FROM {stage.base}" + (f" AS {stage.name}" if stage.name else "")
        self._emit(StepStarted(self.step, self.total, text, stage.label))
        if stage.base_stage is not None:
            parent = self.states[stage.base_stage]
            state = StageState(stage=stage, layers=list(parent.layers), cached=[True] * len(parent.layers),
                               created_by=list(parent.created_by), cfg=copy.deepcopy(parent.cfg), key=parent.key,
                               shell=list(parent.shell))
        elif stage.base == "scratch":
            state = StageState(stage=stage, layers=[], cached=[], created_by=[], cfg=ConfigState.from_base(None),
                               key=chain_key("", "FROM", "scratch"))
        else:
            image = self._base_image(instr, stage.base)
            layers = [Layer(d["digest"], int(d["size"]), diff, d.get("mediaType", ""))
                      for d, diff in zip(image.layers, image.diff_ids)]
            state = StageState(stage=stage, layers=layers, cached=[True] * len(layers),
                               created_by=[f"FROM {stage.base}"] * len(layers),
                               cfg=ConfigState.from_base(image.config), key=chain_key("", "FROM", image.digest))
        self._emit(StepDone(self.step, self.total, text, None, 0.0, stage.label))
        return state

    def _base_image(self, instr: Instruction, ref: str) -> Image:
        try:
            return self.store.resolve(ref)
        except ImageNotFound:
            pass
        try:
            from mlpack.oci import registry
        except ImportError:
            registry = None  # type: ignore[assignment]
        pull = getattr(registry, "pull", None) if registry is not None else None
        if pull is None or ref.startswith("localhost/"):
            raise instr.error(
                f"base image {ref!r} is not in the store",
                hint="run `mlpack base bootstrap` for localhost/mlpack/python, or `mlpack pull " + ref + "`",
            )
        try:
            pulled = pull(ref, settings=self.settings)
        except MlpackError as exc:
            raise instr.error(f"base image {ref!r} is not in the store and pulling it failed: {exc}",
                              hint="pull it first (`mlpack pull`) or load it (`mlpack load`)") from exc
        return pulled if isinstance(pulled, Image) else self.store.resolve(ref)

    def _dispatch(self, state: StageState, instr: Instruction) -> None:
        handler = getattr(self, f"_do_{instr.cmd.lower()}", None)
        if handler is None:  # pragma: no cover - the parser refuses unknown instructions
            raise instr.error("instruction not supported")
        try:
            handler(state, instr)
        except ExpansionError as exc:
            raise instr.error(exc.message, hint=exc.hint) from None

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

    # -- filesystem instructions ----------------------------------------------------------
    def _fs_step(self, state: StageState, instr: Instruction, key: str, created_by: str,
                 produce) -> None:  # type: ignore[no-untyped-def]
        """Cache lookup, else ``produce()`` -> Layer|None; then record and chain the key."""
        label = state.stage.label
        hit = self._lookup(key)
        if hit is not None:
            self._emit(StepCached(self.step, self.total, created_by, label,
                                  hit.layer.size if hit.layer else None))
            self._add_layer(state, hit.layer, created_by, cached=True)
            state.key = key
            return
        self._emit(StepStarted(self.step, self.total, created_by, label))
        t0 = time.monotonic()
        layer = produce()
        self.cache.put(key, StepRecord(layer, created_by))
        self._add_layer(state, layer, created_by, cached=False)
        state.key = key
        self._emit(StepDone(self.step, self.total, created_by, layer.size if layer else None,
                            time.monotonic() - t0, label))

    def _write(self, entries: list[Entry]) -> Layer | None:
        if not entries:
            return None
        layer = write_layer(self.store, entries, self.layer_options)
        self.dirs.save_index(layer, entries)
        return layer

    def _with_lower_parents(self, state: StageState, entries: list[Entry]) -> list[Entry]:
        """Parents that exist below keep their mode and owner in the new layer."""
        have = {e.path.strip("/") for e in entries}
        parents: set[str] = set()
        for e in entries:
            parts = e.path.strip("/").split("/")[:-1]
            for k in range(1, len(parts) + 1):
                parents.add("/".join(parts[:k]))
        missing = sorted(parents - have)
        if not missing:
            return entries
        view = self._view(state)
        extra = []
        for rel in missing:
            st = view.lstat(rel)
            if st is not None and stat.S_ISDIR(st.st_mode):
                extra.append(Entry(rel, "dir", mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid,
                                   mtime=int(st.st_mtime)))
        return extra + entries

    def _abs(self, state: StageState, path: str) -> str:
        workdir = state.cfg.config.get("WorkingDir") or "/"
        if not path.startswith("/"):
            path = workdir.rstrip("/") + "/" + path
        return path

    def _do_workdir(self, state: StageState, instr: Instruction) -> None:
        raw = state.expander(self.df.escape).word(instr.args.strip())
        if not raw:
            raise instr.error("WORKDIR needs a path")
        path = os.path.normpath(self._abs(state, raw))
        state.cfg.config["WorkingDir"] = path
        key = chain_key(state.key, "WORKDIR", path, state.cfg.config.get("User") or "")

        def produce() -> Layer | None:
            view = self._view(state)
            if view.is_dir(path):
                return None
            rel = view.resolve(path) or path.strip("/")
            # BuildKit creates the directory as the stage's USER, so a later RUN may write there
            user = state.cfg.config.get("User") or ""
            owner = copying.parse_chown(instr, user, lambda: view) if user else (0, 0)
            assert owner is not None
            if user and ":" not in user and not user.isdigit():
                owner = (owner[0], _primary_gid(view, user.partition(":")[0]) or owner[1])
            entries = [Entry(rel, "dir", mode=0o755, uid=owner[0], gid=owner[1])]
            return self._write(self._with_lower_parents(state, entries))

        self._fs_step(state, instr, key, instr.original, produce)

    def _do_copy(self, state: StageState, instr: Instruction) -> None:
        self._copy(state, instr, is_add=False)

    def _do_add(self, state: StageState, instr: Instruction) -> None:
        self._copy(state, instr, is_add=True)

    def _copy(self, state: StageState, instr: Instruction, *, is_add: bool) -> None:
        allowed = {"from": True, "chown": True, "chmod": True, "link": False}
        allowed.update({"checksum": True, "keep-git-dir": False} if is_add else {"exclude": True, "parents": False})
        flags = instr.flag_dict(allowed)
        if flags.get("parents", ["false"])[-1] == "true":
            raise instr.error("--parents is not supported", hint="copy each directory to its own destination")
        if flags.get("keep-git-dir", ["false"])[-1] == "true":
            raise instr.error("ADD of git repositories is not supported", hint="clone in a RUN step instead")
        expander = state.expander(self.df.escape)
        heredocs = {f"<<{d.name}": d.content.encode() for d in instr.heredocs}
        for d in instr.heredocs:
            if d.expand:
                heredocs[f"<<{d.name}"] = _expand_heredoc(expander, d.content).encode()
        if instr.json is not None:
            words = [expander.word(w) if not w.startswith("<<") else w for w in instr.json]
        else:
            words = []
            for raw in _raw_words(instr.args):
                words.append(raw if raw.lstrip("-").startswith("<<") else expander.word(raw))
            words = [_heredoc_word(w, instr) for w in words]
        if len(words) < 2:
            raise instr.error(f"{instr.cmd} needs at least one source and a destination",
                              hint=f"{instr.cmd} <src>... <dest>")
        sources, dest_raw = words[:-1], words[-1]
        dest = self._abs(state, dest_raw)
        if dest_raw.endswith("/") and not dest.endswith("/"):
            dest += "/"
        one = lambda name: expander.word(flags[name][-1]) if name in flags else None  # noqa: E731
        chown_raw, chmod = one("chown"), copying.parse_chmod(instr, one("chmod"))
        excludes = copying.IgnoreMatcher([expander.word(x) for x in flags.get("exclude", [])])
        from_ref = one("from")
        created_by = instr.original
        urls = [s for s in sources if s.startswith(("http://", "https://"))]
        if urls:
            if not is_add:
                raise instr.error("COPY cannot fetch URLs", hint="use ADD --checksum=sha256:... <url> <dest>")
            if "checksum" not in flags:
                raise instr.error(
                    f"ADD of a remote URL ({urls[0]}) is refused without --checksum",
                    hint="pin it: ADD --checksum=sha256:<hex> <url> <dest>, or download it in a RUN step")
            if len(sources) != 1:
                raise instr.error("ADD --checksum takes exactly one URL source")
            if sources[0].startswith(("git@",)) or sources[0].endswith(".git"):
                raise instr.error("ADD of git repositories is not supported", hint="clone in a RUN step instead")
        req_base = dict(instr=instr, sources=sources, dest=dest, chmod=chmod, is_add=is_add, excludes=excludes)

        if urls:
            checksum = one("checksum") or ""
            key = chain_key(state.key, instr.cmd, "url", sources[0], checksum, dest, chown_raw, chmod)

            def produce_url() -> Layer | None:
                data = copying.fetch_url(instr, sources[0], checksum)
                chown = copying.parse_chown(instr, chown_raw, lambda: self._view(state))
                req = copying.CopyRequest(chown=chown, keep_owner=False, **req_base)  # type: ignore[arg-type]
                src = copying.Source(name=sources[0], full=None, st=None, data=data)
                src.name = "/" + copying.url_name(sources[0])
                entries = copying.entries_for(req, [src], dest_is_dir=lambda p: self._view(state).is_dir(p),
                                              epoch=self.opts.source_date_epoch or 0)
                return self._write(self._with_lower_parents(state, entries))

            self._fs_step(state, instr, key, created_by, produce_url)
            return

        if from_ref is not None:
            src_layers, src_key = self._from_source(instr, from_ref)
            key = chain_key(state.key, instr.cmd, "from", src_key, sources, dest, chown_raw, chmod,
                            sorted(p.text for p in excludes.patterns))

            def produce_from() -> Layer | None:
                with merged_root(self.dirs.lowers(src_layers), self.scratch) as root:
                    chown = copying.parse_chown(instr, chown_raw, lambda: self._view(state))
                    req = copying.CopyRequest(chown=chown, keep_owner=True, **req_base)  # type: ignore[arg-type]
                    found = copying.resolve_sources(req, None, root, heredocs)
                    entries = copying.entries_for(req, found, dest_is_dir=lambda p: self._view(state).is_dir(p),
                                                  epoch=self.opts.source_date_epoch or 0)
                    return self._write(self._with_lower_parents(state, entries))

            self._fs_step(state, instr, key, created_by, produce_from)
            return

        req0 = copying.CopyRequest(chown=None, keep_owner=False, **req_base)  # type: ignore[arg-type]
        found = copying.resolve_sources(req0, self.ctx, None, heredocs)
        parts = copying.key_parts(found, self.ctx.hashes.digest)
        key = chain_key(state.key, instr.cmd, "context", parts, dest, chown_raw, chmod,
                        sorted(p.text for p in excludes.patterns))

        def produce_ctx() -> Layer | None:
            chown = copying.parse_chown(instr, chown_raw, lambda: self._view(state))
            req = copying.CopyRequest(chown=chown, keep_owner=False, **req_base)  # type: ignore[arg-type]
            entries = copying.entries_for(req, found, dest_is_dir=lambda p: self._view(state).is_dir(p),
                                          epoch=self.opts.source_date_epoch or 0)
            return self._write(self._with_lower_parents(state, entries))

        self._fs_step(state, instr, key, created_by, produce_ctx)

    def _from_source(self, instr: Instruction, ref: str) -> tuple[list[Layer], str]:
        """Layers and key of ``--from=<stage|index|image>``."""
        for stage in self.plan.all_stages:
            if (stage.name and stage.name == ref.lower()) or (ref.isdigit() and stage.index == int(ref)):
                state = self.states.get(stage.index)
                if state is None:
                    raise instr.error(f"stage {ref!r} is not built before this step",
                                      hint="a stage can only copy from stages above it")
                return list(state.layers), state.key
        image = self._base_image(instr, ref)
        layers = [Layer(d["digest"], int(d["size"]), diff, d.get("mediaType", ""))
                  for d, diff in zip(image.layers, image.diff_ids)]
        return layers, image.digest

    # -- RUN -----------------------------------------------------------------------------
    def _do_run(self, state: StageState, instr: Instruction) -> None:
        flags = instr.flag_dict({"mount": True, "network": True, "security": True})
        if "security" in flags and flags["security"][-1] != "sandbox":
            raise instr.error("RUN --security=insecure is not allowed", hint="mlpack runs RUN steps sandboxed")
        expander = state.expander(self.df.escape)
        mounts = runstep.parse_mounts(instr, flags.get("mount", []), expander)
        network = runstep.parse_network(instr, flags.get("network"))
        argv = runstep.run_argv(instr, state.shell, expander)
        env = dict(state.cfg.env)
        for name, value in state.args.items():
            env.setdefault(name, value)
        user = state.cfg.config.get("User") or ""
        cwd = state.cfg.config.get("WorkingDir") or "/"
        mount_keys: list[object] = []
        for m in mounts:
            part = m.key()
            if m.type == "bind":
                if m.from_:
                    part.append(self._from_source(instr, m.from_)[1])
                else:
                    part.append(self._context_digest(instr, m.source))
            mount_keys.append(part)
        # proxy args and secrets are consumed but never keyed (they do not change the result)
        keyed_env = sorted((k, v) for k, v in env.items() if k not in PROXY_ARGS)
        key = chain_key(state.key, "RUN", argv, keyed_env, user, cwd, network, mount_keys)
        created_by = instr.original if not instr.heredocs else instr.original + "\n" + "".join(
            d.content + d.name + "\n" for d in instr.heredocs).rstrip("\n")
        self._fs_step(state, instr, key, created_by,
                      lambda: self._execute_run(state, instr, key, argv, env, user, cwd, network, mounts))

    def _context_digest(self, instr: Instruction, source: str) -> str:
        rel = self.ctx.normalize(source or ".", instr.error)
        if not self.ctx.exists(rel):
            raise instr.error(f"--mount source {source!r} is not in the build context")
        found = copying.resolve_sources(
            copying.CopyRequest(instr=instr, sources=[rel or "."], dest="/", chown=None, chmod=None,
                                is_add=False, keep_owner=False), self.ctx, None, {})
        return chain_key("", copying.key_parts(found, self.ctx.hashes.digest))

    def _secret_file(self, instr: Instruction, mount: runstep.MountSpec) -> Path | None:
        path = self.opts.secrets.get(mount.id)
        if path is None and mount.id == "ca-bundle":
            path = Path(runstep.DEFAULT_CA_BUNDLE)
        if path is None or not Path(path).is_file():
            if mount.required:
                raise instr.error(f"secret {mount.id!r} is required but was not given",
                                  hint=f"pass --secret id={mount.id},src=FILE")
            return None
        return Path(path)

    def _execute_run(self, state: StageState, instr: Instruction, key: str, argv: list[str], env: dict[str, str],
                     user: str, cwd: str, network: str, mounts: list[runstep.MountSpec]) -> Layer | None:
        from mlpack.runtime.sandbox import Mount, SandboxSpec, run_sandbox

        lowers = self.dirs.lowers(state.layers)
        view = RootView(state.layers, self.dirs)
        upper = Path(tempfile.mkdtemp(dir=self.scratch, prefix="upper-"))
        os.chmod(upper, 0o755)  # the upper root is the container's "/": a USER must traverse it
        try:
            with contextlib.ExitStack() as stack:
                oci_mounts: list[Any] = []
                targets = list(runstep.RUNTIME_MOUNTPOINTS)
                for m in mounts:
                    targets.append(m.target)
                    if m.type == "cache":
                        if m.from_ or m.source:
                            raise instr.error("cache mounts with from=/source= are not supported")
                        oci_mounts.append(Mount.bind(runstep.cache_mount_dir(self.settings.cache_dir, m), m.target,
                                                     readonly=m.readonly))
                        if m.sharing == "locked":
                            stack.enter_context(_flock(self.settings.cache_dir / "mounts" / (m.id.replace("/", "_") + ".lock")))
                    elif m.type == "secret":
                        src = self._secret_file(instr, m)
                        if src is not None:
                            oci_mounts.append(Mount.bind(src, m.target, readonly=True))
                    elif m.type == "tmpfs":
                        oci_mounts.append(Mount.tmpfs(m.target, size=m.size))
                    else:  # bind
                        if m.from_:
                            src_layers, _ = self._from_source(instr, m.from_)
                            root = stack.enter_context(merged_root(self.dirs.lowers(src_layers), self.scratch))
                        else:
                            root = self.ctx.root
                        rel = os.path.normpath("/" + (m.source or "/")).lstrip("/")
                        oci_mounts.append(Mount.bind(root / rel if rel else root, m.target, readonly=m.readonly))
                if not view.is_dir(cwd):
                    (upper / cwd.strip("/")).mkdir(parents=True, exist_ok=True)
                spec = SandboxSpec(lowerdirs=lowers, upperdir=upper, args=argv, env=env, cwd=cwd,
                                   user=user or None, mounts=oci_mounts, network=network)
                try:
                    result = run_sandbox(spec, settings=self.settings)
                except MlpackError as exc:
                    raise instr.error(f"cannot run the step: {exc.message}", hint=exc.hint) from exc
            self._emit(StepOutput(self.step, result.output, state.stage.label))
            if result.exit_code != 0:
                tail = "\n".join(result.output.rstrip("\n").splitlines()[-30:])
                raise BuildError(
                    f"{instr.file}:{instr.line}: RUN failed with exit code {result.exit_code}: {instr.original}\n{tail}",
                    hint="fix the command; the store was not changed",
                    file=instr.file, line=instr.line, instruction=instr.original, step=self.step,
                    exit_code=result.exit_code, output=result.output,
                )
            runstep.remove_mountpoints(upper, targets, lambda rel: view.lstat(rel) is not None)
            if state.stage.index != self.plan.target.index:
                # an intermediate stage: its upper dir is all later steps need
                if not any(os.scandir(upper)):
                    return None
                layer = virtual_layer(key)
                self.dirs.adopt_virtual(layer, upper)
                return layer
            entries = from_upperdir(upper, list(reversed(lowers)))
            layer = self._write(entries)
            if layer is not None:
                self.dirs.adopt(layer.diff_id, upper)
            return layer
        finally:
            shutil.rmtree(upper, ignore_errors=True)


def _primary_gid(view: RootView, name: str) -> int | None:
    for line in (view.read_file("/etc/passwd") or b"").decode("utf-8", "replace").splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[0] == name and fields[3].isdigit():
            return int(fields[3])
    return None


def _heredoc_word(word: str, instr: Instruction) -> str:
    if word.startswith("<<-"):
        return "<<" + word[3:].strip("\"'")
    if word.startswith("<<"):
        return "<<" + word[2:].strip("\"'")
    return word


def _expand_heredoc(expander: Expander, text: str) -> str:
    """Variables expand in an unquoted COPY heredoc; quotes stay as written."""
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "$":
            value, i = expander._dollar(text, i)
            out.append(value)
        elif ch == "\\" and i + 1 < len(text) and text[i + 1] == "$":
            out.append("$")
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)

