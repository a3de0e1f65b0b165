"""How a bundle's dependencies get into its image: a RUN step, or a named context made here.

``sandbox_problem(settings)`` says why RUN steps cannot run on this machine
(no OCI runtime, namespaces refused: a notebook pod's seccomp profile, say),
by trying what the RUN sandbox needs, or None. ``choose_deps("auto", ...)``
takes ``"context"`` then, with a message, and ``"run"`` otherwise.
``render_for_build`` renders a bundle for a build from this store: it reads
the base image's interpreter, users and platform (:func:`base_facts`) for
``deps="context"`` and keeps downloaded wheels in ``<home>/cache/wheels``.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from mlpack.errors import BuildError, ImageNotFound, MlpackError
from mlpack.oci.layout import Layer, Store
from mlpack.settings import Settings

__all__ = ["sandbox_problem", "choose_deps", "base_facts", "render_for_build", "run_wheelhouse", "wheel_cache_dir",
           "DEPS_CHOICES"]

DEPS_CHOICES = ("auto", "run", "context")
_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}


def wheel_cache_dir(settings: Settings) -> Path:
    """The persistent wheel cache: a lock built once builds again with no index."""
    return settings.cache_dir / "wheels"


def sandbox_problem(settings: Settings) -> str | None:
    """Why a RUN step cannot run here (what the sandbox needs, tried for real), or None."""
    from mlpack.runtime.host import select_runtime
    from mlpack.runtime.rootless import is_rootless, userns_problem

    try:
        select_runtime(settings)
    except MlpackError as exc:
        return f"no OCI runtime ({exc.message})"
    if is_rootless():
        problem = userns_problem()
        return None if problem is None else f"user namespaces are refused here ({problem})"
    argv = ["unshare", "--mount", "--pid", "--net", "--ipc", "--uts", "--fork", "true"]
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot try the namespaces a RUN step needs ({exc})"
    if proc.returncode != 0:
        return f"namespaces are refused here ({(proc.stderr or '').strip() or f'unshare exited {proc.returncode}'})"
    return None


def choose_deps(deps: str, settings: Settings, say: Callable[[str], None] | None = None) -> str:
    """``run`` or ``context`` for ``deps`` (``auto``: context only when RUN cannot run here)."""
    if deps not in DEPS_CHOICES:
        raise BuildError(f"deps={deps!r} is not one of {', '.join(DEPS_CHOICES)}",
                         hint="auto (default), run, or context (no RUN step at all)")
    if deps != "auto":
        return deps
    problem = sandbox_problem(settings)
    if problem is None:
        return "run"
    if say is not None:
        say(f"RUN steps cannot run here: {problem}; installing the dependencies without RUN (deps=context)")
    return "context"


def base_facts(settings: Settings, store: Store, ref: str, python: str) -> Any:
    """The base image's interpreter for ``python``, its /etc/passwd and /etc/group, machine and glibc."""
    from mlpack.builder.rootfs import LayerDirs, RootView
    from mlpack.dockerfile.depsdir import BaseFacts

    try:
        image = store.resolve(ref)
    except ImageNotFound:
        raise BuildError(f"base image {ref} is not in the store; deps=context reads its interpreter and users",
                         hint=f"pull it (`mlpack pull {ref}`), or `mlpack base bootstrap` for the offline base") from None
    layers = [Layer(d["digest"], int(d["size"]), diff, d.get("mediaType", ""))
              for d, diff in zip(image.layers, image.diff_ids)]
    view = RootView(layers, LayerDirs(settings, store))
    interpreter = next((p for p in (f"/usr/local/bin/python{python}", f"/usr/bin/python{python}")
                        if _is_file(view, p)), None)
    if interpreter is None:
        raise BuildError(f"base image {ref} has no python{python} in /usr/local/bin or /usr/bin",
                         hint=f"choose a base with Python {python}, or deps=run")
    arch = image.config.architecture or "amd64"
    if arch not in _ARCH:
        raise BuildError(f"base image {ref} is for {arch}; deps=context knows amd64 and arm64")
    return BaseFacts(interpreter=interpreter, passwd=view.read_file("/etc/passwd") or b"",
                     group=view.read_file("/etc/group") or b"", machine=_ARCH[arch], glibc=_glibc(view))


def _is_file(view: Any, path: str) -> bool:
    """``path`` is a regular file in the image, following its symlinks (without reading it)."""
    import stat

    resolved = view.resolve(path)
    st = view.lstat(resolved) if resolved else None
    return st is not None and stat.S_ISREG(st.st_mode)


def _glibc(view: Any) -> tuple[int, int]:
    """glibc's version from dpkg's status (Debian bases); 2.28 (manylinux_2_28) when unknown."""
    status = view.read_file("/var/lib/dpkg/status") or b""
    match = re.search(rb"^Package: libc6\n(?:[^\n]+\n)*?Version: (\d+)\.(\d+)", status, re.M)
    return (int(match.group(1)), int(match.group(2))) if match else (2, 28)


def run_wheelhouse(bundle: Any, options: Any, settings: Settings, store: Store, base: str, python: str,
                   say: Callable[[str], None] | None = None) -> list[Path] | None:
    """The lock's wheels for a RUN install that asks no index: from mlpack's wheel cache, the
    missing ones downloaded into it for the image's platform (so a second build of the same
    lock needs no index at all). None, and the RUN step asks the index as pip does, when that
    cannot be: extra ``pip`` specs (not pinned), the GPU variant, a base not yet in the store,
    a package with no wheel for the image, or no index reachable for the first download."""
    from mlpack.dockerfile.context import lock_lines
    from mlpack.dockerfile.wheelcache import WheelTarget, resolve_wheels

    if options.pip or options.gpu:
        return None
    try:
        facts = base_facts(settings, store, base, python)
        target = WheelTarget(python=python, machine=facts.machine, glibc=facts.glibc)
        return resolve_wheels(lock_lines(bundle, options), target, wheel_cache_dir(settings),
                              extra_dirs=[Path(bundle.path)])
    except MlpackError as exc:
        if say is not None:
            say(f"the RUN step installs from the index: {exc.message}")
        return None


def render_for_build(bundle: Any, options: Any, settings: Settings, store: Store, *, deps: str = "auto",
                     out_dir: str | os.PathLike[str] | None = None,
                     say: Callable[[str], None] | None = None) -> Any:
    """Render ``bundle`` with ``options`` and ``deps`` resolved (auto: see :func:`choose_deps`)."""
    from mlpack.bundle import Bundle
    from mlpack.dockerfile import RenderOptions, render

    options = options or RenderOptions()
    mode = "context" if options.deps == "context" else choose_deps(deps, settings, say)
    loaded = Bundle.load(Path(bundle)) if isinstance(bundle, (str, os.PathLike)) else bundle
    python = options.python_version(loaded.python_version)
    base = options.base_image(python)
    if mode == "run":
        wheels = run_wheelhouse(loaded, options, settings, store, base, python, say)
        return render(loaded, options, out_dir=out_dir, wheelhouse=wheels)
    facts = base_facts(settings, store, base, python)
    options = replace(options, deps="context", wheel_cache=options.wheel_cache or wheel_cache_dir(settings))
    return render(loaded, options, out_dir=out_dir, base_facts=facts)
