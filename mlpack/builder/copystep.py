"""COPY and ADD steps: sources, cache key, and the produced layer.

The key is the parent key plus the expanded instruction and, for context
sources, the content hashes of the files after .dockerignore (never
mtimes); for ``--from`` it is the source stage's final key or the source
image's digest; for ``ADD <url>`` the pinned checksum.
"""

from __future__ import annotations

from mlpack.builder import copying
from mlpack.builder.buildenv import BuildEnv, abs_path
from mlpack.builder.cache import chain_key
from mlpack.builder.instructions import AddCommand, CopyCommand
from mlpack.builder.rootfs import merged_root
from mlpack.builder.shell import Expander
from mlpack.builder.state import StageState
from mlpack.oci.image import Layer

__all__ = ["copy", "add"]


def copy(build: BuildEnv, state: StageState, cmd: CopyCommand) -> None:
    """COPY: a layer with the sources from the context, a stage, an image or heredocs."""
    _copy(build, state, cmd, is_add=False)


def add(build: BuildEnv, state: StageState, cmd: AddCommand) -> None:
    """ADD: COPY plus archives unpacked and pinned URLs fetched."""
    _copy(build, state, cmd, is_add=True)


def _copy(build: BuildEnv, state: StageState, cmd: CopyCommand | AddCommand, *, is_add: bool) -> None:
    # flags, sources and heredocs come parsed and validated (mlpack.builder.instructions)
    instr = cmd.node
    expander = state.expander(build.escape)
    heredocs = {d.name: (_expand_heredoc(expander, d.content) if d.expand else d.content).encode()
                for d in cmd.inline}
    words = [w if w in heredocs else expander.word(w) for w in cmd.sources] + [expander.word(cmd.dest)]
    if len(words) < 2:
        raise instr.error(f"{instr.cmd} needs at least one source and a destination",
                          hint=f"{instr.cmd} <src>... <dest>")
    sources, dest_raw = words[:-1], words[-1]
    dest = abs_path(state, dest_raw)
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
            chown = copying.parse_chown(instr, chown_raw, lambda: build.view(state))
            req = copying.CopyRequest(chown=chown, keep_owner=False, **req_base)  # type: ignore[arg-type]
            req.dest = _resolve_dest(build, state, req.dest)
            src = copying.Source(name="/" + copying.url_name(sources[0]), full=None, st=None, data=data,
                                 data_mode=0o600)
            entries = copying.entries_for(req, [src], dest_is_dir=lambda p: build.view(state).is_dir(p),
                                          epoch=build.opts.source_date_epoch or 0)
            return build.write(build.with_lower_parents(state, entries, chown))

        build.fs_step(state, key, created_by, produce_url)
        return

    named = build.contexts.get(from_ref) if from_ref is not None else None
    if from_ref is not None and named is None:
        src_layers, src_key = build.from_source(instr, from_ref)
        key = chain_key(state.key, instr.cmd, "from", src_key, sources, dest, chown_raw, chmod,
                        sorted(p.text for p in excludes.patterns))

        def produce_from() -> Layer | None:
            with merged_root(build.dirs.lowers(src_layers), build.settings.home / "sandbox") as root:
                chown = copying.parse_chown(instr, chown_raw, lambda: build.view(state))
                req = copying.CopyRequest(chown=chown, keep_owner=True, **req_base)  # type: ignore[arg-type]
                req.dest = _resolve_dest(build, state, req.dest)
                found = copying.resolve_sources(req, None, root, heredocs)
                entries = copying.entries_for(req, found, dest_is_dir=lambda p: build.view(state).is_dir(p),
                                              epoch=build.opts.source_date_epoch or 0)
                return build.write(build.with_lower_parents(state, entries, chown))

        build.fs_step(state, key, created_by, produce_from)
        return

    # the main context, or a named one (--build-context NAME=DIR): resolved the same way, inside its root
    ctx = named if named is not None else build.ctx
    req0 = copying.CopyRequest(chown=None, keep_owner=False, **req_base)  # type: ignore[arg-type]
    found = copying.resolve_sources(req0, ctx, None, heredocs)
    parts = copying.key_parts(found, ctx.hashes.digest)
    key = chain_key(state.key, instr.cmd, "context" if named is None else f"context:{from_ref}", parts, dest,
                    chown_raw, chmod, sorted(p.text for p in excludes.patterns))

    def produce_ctx() -> Layer | None:
        chown = copying.parse_chown(instr, chown_raw, lambda: build.view(state))
        req = copying.CopyRequest(chown=chown, keep_owner=False, **req_base)  # type: ignore[arg-type]
        req.dest = _resolve_dest(build, state, req.dest)
        entries = copying.entries_for(req, found, dest_is_dir=lambda p: build.view(state).is_dir(p),
                                      epoch=build.opts.source_date_epoch or 0)
        return build.write(build.with_lower_parents(state, entries, chown))

    build.fs_step(state, key, created_by, produce_ctx)


def _resolve_dest(build: BuildEnv, state: StageState, dest: str) -> str:
    """Follow symlinks of the image in the destination's directories (/lib -> usr/lib)
    so a COPY never turns a symlinked directory into a real one."""
    view = build.view(state)
    if dest.endswith("/") or view.is_dir(dest):
        resolved = view.resolve(dest)
        return "/" + (resolved or "") + "/"
    parent, _, name = dest.rstrip("/").rpartition("/")
    resolved = view.resolve(parent or "/") or ""
    return "/" + (resolved + "/" if resolved else "") + name


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
