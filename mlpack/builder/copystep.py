"""COPY and ADD steps: sources, cache key, and the produced layer.

The key is the parent key plus the expanded instruction and, for context
sources, the content hashes of the files after .dockerignore (never
mtimes); for ``--from`` it is the source stage's final key or the source
image's digest; for ``ADD <url>`` the pinned checksum.
"""

from __future__ import annotations


from mlpack.builder import copying
from mlpack.builder.cache import chain_key
from mlpack.builder.instructions import AddCommand, CopyCommand
from mlpack.builder.parser import Instruction
from mlpack.builder.rootfs import merged_root
from mlpack.builder.shell import Expander
from mlpack.builder.state import StageState
from mlpack.oci.layout import Layer

__all__ = ["CopySteps"]


class CopySteps:
    """``_do_copy``/``_do_add`` mixed into :class:`~mlpack.builder.executor.Executor`."""

    def _do_copy(self, state: StageState, cmd: CopyCommand) -> None:
        self._copy(state, cmd, is_add=False)

    def _do_add(self, state: StageState, cmd: AddCommand) -> None:
        self._copy(state, cmd, is_add=True)

    def _copy(self, state: StageState, cmd: CopyCommand | AddCommand, *, is_add: bool) -> None:
        # flags, sources and heredocs come parsed and validated (mlpack.builder.instructions)
        instr = cmd.node
        expander = state.expander(self.df.escape)
        heredocs = {d.name: (_expand_heredoc(expander, d.content) if d.expand else d.content).encode()
                    for d in cmd.inline}
        words = [w if w in heredocs else expander.word(w) for w in cmd.sources] + [expander.word(cmd.dest)]
        if len(words) < 2:
            raise instr.error(f"{instr.cmd} needs at least one source and a destination",
                              hint=f"{instr.cmd} <src>... <dest>")
        sources, dest_raw = words[:-1], words[-1]
        dest = self._abs(state, dest_raw)
        if dest_raw.endswith("/") and not dest.endswith("/"):
            dest += "/"
        one = lambda value: expander.word(value) if value is not None else None  # noqa: E731
        chown_raw, chmod = one(cmd.chown), copying.parse_chmod(instr, one(cmd.chmod))
        excludes = copying.IgnoreMatcher([expander.word(x) for x in cmd.exclude])
        from_ref = one(cmd.from_) if isinstance(cmd, CopyCommand) else None
        created_by = instr.original
        urls = [s for s in sources if s.startswith(("http://", "https://"))]
        if urls:
            if not is_add:
                raise instr.error("COPY cannot fetch URLs", hint="use ADD --checksum=sha256:... <url> <dest>")
            if not isinstance(cmd, AddCommand) or cmd.checksum is None:
                raise instr.error(
                    f"ADD of a remote URL ({urls[0]}) is refused without --checksum",
                    hint="pin it: ADD --checksum=sha256:<hex> <url> <dest>, or download it in a RUN step")
            if len(sources) != 1:
                raise instr.error("ADD --checksum takes exactly one URL source")
            if sources[0].startswith(("git@",)) or sources[0].endswith(".git"):
                raise instr.error("ADD of git repositories is not supported", hint="clone in a RUN step instead")
        req_base = dict(instr=instr, sources=sources, dest=dest, chmod=chmod, is_add=is_add, excludes=excludes)

        if urls:
            checksum = one(cmd.checksum if isinstance(cmd, AddCommand) else None) or ""
            key = chain_key(state.key, instr.cmd, "url", sources[0], checksum, dest, chown_raw, chmod)

            def produce_url() -> Layer | None:
                data = copying.fetch_url(instr, sources[0], checksum)
                chown = copying.parse_chown(instr, chown_raw, lambda: self._view(state))
                req = copying.CopyRequest(chown=chown, keep_owner=False, **req_base)  # type: ignore[arg-type]
                req.dest = self._resolve_dest(state, req.dest)
                src = copying.Source(name="/" + copying.url_name(sources[0]), full=None, st=None, data=data,
                                     data_mode=0o600)
                entries = copying.entries_for(req, [src], dest_is_dir=lambda p: self._view(state).is_dir(p),
                                              epoch=self.opts.source_date_epoch or 0)
                return self._write(self._with_lower_parents(state, entries, chown))

            self._fs_step(state, instr, key, created_by, produce_url)
            return

        if from_ref is not None:
            src_layers, src_key = self._from_source(instr, from_ref)
            key = chain_key(state.key, instr.cmd, "from", src_key, sources, dest, chown_raw, chmod,
                            sorted(p.text for p in excludes.patterns))

            def produce_from() -> Layer | None:
                with merged_root(self.dirs.lowers(src_layers), self.settings.home / "sandbox") as root:
                    chown = copying.parse_chown(instr, chown_raw, lambda: self._view(state))
                    req = copying.CopyRequest(chown=chown, keep_owner=True, **req_base)  # type: ignore[arg-type]
                    req.dest = self._resolve_dest(state, req.dest)
                    found = copying.resolve_sources(req, None, root, heredocs)
                    entries = copying.entries_for(req, found, dest_is_dir=lambda p: self._view(state).is_dir(p),
                                                  epoch=self.opts.source_date_epoch or 0)
                    return self._write(self._with_lower_parents(state, entries, chown))

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
            req.dest = self._resolve_dest(state, req.dest)
            entries = copying.entries_for(req, found, dest_is_dir=lambda p: self._view(state).is_dir(p),
                                          epoch=self.opts.source_date_epoch or 0)
            return self._write(self._with_lower_parents(state, entries, chown))

        self._fs_step(state, instr, key, created_by, produce_ctx)

    def _resolve_dest(self, state: StageState, dest: str) -> str:
        """Follow symlinks of the image in the destination's directories (/lib -> usr/lib)
        so a COPY never turns a symlinked directory into a real one."""
        view = self._view(state)
        if dest.endswith("/") or view.is_dir(dest):
            resolved = view.resolve(dest)
            return "/" + (resolved or "") + "/"
        parent, _, name = dest.rstrip("/").rpartition("/")
        resolved = view.resolve(parent or "/") or ""
        return "/" + (resolved + "/" if resolved else "") + name

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
