"""RUN steps: key, mounts, the sandboxed process and its layer.

The key is the parent key plus argv, the environment the process sees (ENV
and ARG values, proxy args left out), USER, WORKDIR, network and the mounts'
specs (a bind mount from the context adds the content hash of its source).
The RUN of a stage that is not the target keeps only its upper directory
(a virtual layer); a RUN of the target stage becomes a layer at once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from mlpack.builder import copying, runstep
from mlpack.builder.buildenv import BuildEnv
from mlpack.builder.cache import chain_key, virtual_layer
from mlpack.builder.changeset import from_upperdir
from mlpack.builder.context import BuildContextDir
from mlpack.builder.events import StepOutput
from mlpack.builder.instructions import RunCommand
from mlpack.builder.parser import Instruction
from mlpack.builder.rootfs import RootView
from mlpack.builder.stages import PROXY_ARGS
from mlpack.builder.state import StageState
from mlpack.errors import BuildError, MlpackError
from mlpack.oci.image import Layer

TYPE_CHECKING = False  # typing is the type checker's: a CLI rebuild does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

__all__ = ["run"]


def run(build: BuildEnv, state: StageState, cmd: RunCommand) -> None:
    """RUN: the command in a sandbox over the stage's layers; its upper directory becomes the layer."""
    # flags come parsed and validated (mlpack.builder.instructions); mounts expand here
    instr = cmd.node
    _refuse_foreign(instr, state.stage.platform)
    expander = state.expander(build.escape)
    mounts = runstep.parse_mounts(instr, list(cmd.mounts), expander)
    network = runstep.parse_network(instr, [cmd.network] if cmd.network else None, build.opts.network)
    argv = cmd.argv(state.shell)
    env = dict(state.cfg.env)
    for name, value in state.args.items():
        env.setdefault(name, value)
    user = state.cfg.user
    cwd = state.cfg.working_dir
    mount_keys: list[object] = []
    for m in mounts:
        part = m.key()
        if m.type == "bind":
            named = build.contexts.get(m.from_) if m.from_ else None
            if named is not None:  # a named build context (--build-context NAME=DIR)
                part.append(_context_digest(build, instr, m.source, named))
            elif m.from_:
                part.append(build.from_source(instr, m.from_)[1])
            else:
                part.append(_context_digest(build, instr, m.source))
        mount_keys.append(part)
    # proxy args and secrets are consumed but never keyed (they do not change the result)
    keyed_env = sorted((k, v) for k, v in env.items() if k not in PROXY_ARGS)
    key = chain_key(state.key, "RUN", argv, keyed_env, user, cwd, network, mount_keys)
    created_by = instr.original if not instr.heredocs else instr.original + "\n" + "".join(
        d.content + d.name + "\n" for d in instr.heredocs).rstrip("\n")
    build.fs_step(state, key, created_by,
                  lambda: _execute_run(build, state, instr, key, argv, env, user, cwd, network, mounts))


def _context_digest(build: BuildEnv, instr: Instruction, source: str, ctx: BuildContextDir | None = None) -> str:
    ctx = ctx or build.ctx
    rel = ctx.normalize(source or ".")
    if not ctx.exists(rel):
        raise instr.error(f"--mount source {source!r} is not in the build context")
    found = copying.resolve_sources(
        copying.CopyRequest(instr=instr, sources=[rel or "."], dest="/", chown=None, chmod=None,
                            is_add=False, keep_owner=False), ctx, None, {})
    return chain_key("", copying.key_parts(found, ctx.hashes.digest))


def _host_ca_bundle(build: BuildEnv) -> Path:
    """The host's CA bundle, plus ``Settings.extra_ca_files`` when there are any
    (joined once per build in the scratch dir, which the build removes)."""
    host = Path(runstep.DEFAULT_CA_BUNDLE)
    extra = [Path(p) for p in build.settings.extra_ca_files if Path(p).is_file()]
    if not extra:
        return host
    joined = build.scratch / f"ca-bundle-{os.getpid()}.pem"
    if not joined.exists():
        parts = [host.read_bytes()] if host.is_file() else []
        parts += [p.read_bytes() for p in extra]
        joined.write_bytes(b"\n".join(parts))
        build.cleanup.append(joined)
    return joined


def _secret_file(build: BuildEnv, instr: Instruction, mount: runstep.MountSpec) -> Path | None:
    path = build.opts.secrets.get(mount.id)
    if path is None and mount.id == "ca-bundle":
        path = _host_ca_bundle(build)
    if path is None or not Path(path).is_file():
        if mount.required:
            raise instr.error(f"secret {mount.id!r} is required but was not given",
                              hint=f"pass --secret id={mount.id},src=FILE")
        return None
    return Path(path)


def _execute_run(build: BuildEnv, state: StageState, instr: Instruction, key: str, argv: list[str], env: dict[str, str],
                 user: str, cwd: str, network: str, mounts: list[runstep.MountSpec]) -> Layer | None:
    import tempfile  # a RUN step that runs, not one the cache answers

    from mlpack.runtime.sandbox import Mount, OverlayBind, SandboxSpec, run_sandbox

    lowers = build.dirs.lowers(state.layers)
    view = RootView(state.layers, build.dirs)
    upper = Path(tempfile.mkdtemp(dir=build.scratch, prefix="upper-"))
    os.chmod(upper, 0o755)  # the upper root is the container's "/": a USER must traverse it
    try:
        with contextlib.ExitStack() as stack:
            oci_mounts: list[Any] = []
            binds: list[OverlayBind] = []
            targets = list(runstep.RUNTIME_MOUNTPOINTS)
            for m in mounts:
                targets.append(m.target)
                if m.type == "cache":
                    if m.from_ or m.source:
                        raise instr.error("cache mounts with from=/source= are not supported")
                    oci_mounts.append(Mount.bind(runstep.cache_mount_dir(build.settings.cache_dir, m), m.target,
                                                 readonly=m.readonly))
                    if m.sharing == "locked":
                        lock = build.settings.cache_dir / "mounts" / (m.id.replace("/", "_") + ".lock")
                        stack.enter_context(_flock(lock))
                elif m.type == "secret":
                    src = _secret_file(build, instr, m)
                    if src is not None:
                        oci_mounts.append(Mount.bind(src, m.target, readonly=True))
                elif m.type == "tmpfs":
                    oci_mounts.append(Mount.tmpfs(m.target, size=m.size))
                else:  # bind: an overlay over the source tree, writes thrown away with the step
                    named = build.contexts.get(m.from_) if m.from_ else None
                    if named is not None:  # a named context: its own root, nothing ignored
                        lower_dirs, hidden = [named.root], named.ignored_paths()
                    elif m.from_:
                        src_layers, _ = build.from_source(instr, m.from_)
                        lower_dirs, hidden = build.dirs.lowers(src_layers), []
                    else:
                        lower_dirs, hidden = [build.ctx.root], build.ctx.ignored_paths()
                    rel = os.path.normpath("/" + (m.source or "/")).lstrip("/")
                    binds.append(OverlayBind(lowerdirs=lower_dirs, target=m.target, subpath=rel,
                                             readonly=m.readonly, hidden=hidden))
            if not view.is_dir(cwd):
                # the WORKDIR the lowers lack, made in the (fresh, symlink-free) upper at the
                # path its symlinks lead to inside the image
                (upper / (view.resolve(cwd) or cwd.strip("/"))).mkdir(parents=True, exist_ok=True)
            spec = SandboxSpec(lowerdirs=lowers, upperdir=upper, args=argv, env=env, cwd=cwd,
                               user=user or None, mounts=oci_mounts, overlay_binds=binds, network=network,
                               limits=build.opts.limits)
            try:
                result = run_sandbox(spec, settings=build.settings)
            except MlpackError as exc:
                raise _cannot_run(build, instr, exc) from exc
        build.emit(StepOutput(build.position.step, result.output, state.stage.label))
        if result.exit_code != 0:
            tail = "\n".join(result.output.rstrip("\n").splitlines()[-30:])
            raise BuildError(
                f"{instr.file}:{instr.line}: RUN failed with exit code {result.exit_code}: "
                f"{instr.original}\n{tail}",
                hint="fix the command; the store was not changed",
                file=instr.file, line=instr.line, instruction=instr.original, step=build.position.step,
                exit_code=result.exit_code, output=result.output,
            )
        runstep.remove_mountpoints(upper, targets, lambda rel: view.lstat(rel) is not None)
        if state.stage.index != build.plan.target.index:
            # an intermediate stage: its upper dir is all later steps need
            if not any(os.scandir(upper)):
                return None
            layer = virtual_layer(key)
            build.dirs.adopt_virtual(layer, upper)
            return layer
        entries = from_upperdir(upper, list(reversed(lowers)))
        layer = build.write(entries)
        if layer is not None:
            build.dirs.adopt(layer.diff_id, upper)
        return layer
    finally:
        shutil.rmtree(upper, ignore_errors=True)


def _refuse_foreign(instr: Instruction, platform: str) -> None:
    """A stage for another architecture: its programs cannot run on this machine (no emulation)."""
    from mlpack.oci.platforms import host_platform, parse_platform, platform_text

    host = host_platform()
    if parse_platform(platform) != host:
        raise instr.error(
            f"RUN cannot run for {platform}: this machine is {platform_text(host)} and mlpack runs no "
            f"{platform} programs (no emulation); a {platform} image is built from file operations only",
            hint="for a bundle, `mlpack build --platform " + platform + "` installs its wheels without RUN "
                 "(deps=context); otherwise build on a " + platform + " machine, or move the step to a stage "
                 "FROM --platform=$BUILDPLATFORM and COPY --from its result")


def _cannot_run(build: BuildEnv, instr: Instruction, exc: MlpackError) -> BuildError:
    """The sandbox failed: said as 'RUN cannot run here' when this machine refuses what it needs."""
    from mlpack.builder.depsmode import sandbox_problem

    problem = sandbox_problem(build.settings)
    if problem is None:
        return instr.error(f"cannot run the step: {exc.message}", hint=exc.hint)
    return instr.error(
        f"RUN steps cannot run on this machine: {problem}",
        hint="RUN needs crun or runc and namespaces (a notebook pod's seccomp profile may refuse them); "
             "build elsewhere, or for a bundle use `mlpack build --deps context` (no RUN at all)")


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
