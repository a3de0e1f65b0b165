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

__all__ = ["sandbox_problem", "choose_deps", "foreign_deps", "base_facts", "render_for_build", "run_wheelhouse",
           "wheel_cache_dir",
           "DEPS_CHOICES"]

DEPS_CHOICES = ("auto", "run", "context")
# The installer a RUN step takes from the wheelhouse when the base has no uv (a build-time
# tool only: it never enters the image).
UV_PIN = "uv==0.13.9"
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


def foreign_deps(deps: str, platform: tuple[str, str], say: Callable[[str], None] | None = None) -> str:
    """``deps`` for an image of ``platform``: another architecture than this machine's runs no RUN
    step here, so ``auto`` takes ``context`` (said) and ``run`` is refused."""
    from mlpack.oci.platforms import host_platform, platform_text

    host = host_platform()
    if platform == host:
        return deps
    text = platform_text(platform)
    if deps == "run":
        raise BuildError(f"deps=run cannot build a {text} image here: this machine is {platform_text(host)} and "
                         f"a RUN step for {text} would need emulation, which mlpack does not use",
                         hint=f"drop --deps run: for {text}, mlpack installs the {text} wheels itself (deps=context)")
    if deps == "auto" and say is not None:
        say(f"the image is for {text} and this machine is {platform_text(host)}: installing the dependencies "
            f"without RUN, from {text} wheels (deps=context)")
    return "context"


def base_facts(settings: Settings, store: Store, ref: str, python: str,
               platform: tuple[str, str] | None = None) -> Any:
    """The base image's interpreter for ``python``, its /etc/passwd and /etc/group, machine and glibc
    (its image for ``platform``; None: the store's default, linux/amd64)."""
    from mlpack.builder.rootfs import LayerDirs, RootView
    from mlpack.dockerfile.depsdir import BaseFacts
    from mlpack.oci.platforms import DEFAULT_PLATFORM, platform_text

    wanted = platform or DEFAULT_PLATFORM
    try:
        image = store.resolve(ref, platform=wanted)
    except ImageNotFound:
        image = None
    if image is None or (platform is not None and image.config.architecture != platform[1]):
        where = f"has no {platform_text(wanted)} image in the store" if platform else "is not in the store"
        bootstrap = "mlpack base bootstrap" + (f" --platform {platform_text(wanted)}" if platform else "")
        raise BuildError(f"base image {ref} {where}; deps=context reads its interpreter and users",
                         hint=f"`{bootstrap}` for the offline base, or load/pull {ref} for "
                              f"{platform_text(wanted)}")
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
        wheels = resolve_wheels(lock_lines(bundle, options), target, wheel_cache_dir(settings),
                                extra_dirs=[Path(bundle.path)])
    except MlpackError as exc:
        if say is not None:
            say(f"the RUN step installs from the index: {exc.message}")
        return None
    if any(w.name.lower().startswith("uv-") for w in wheels):
        return wheels
    try:  # the installer too: uv installs the wheelhouse in a fraction of pip's time
        return [*wheels, *resolve_wheels([UV_PIN], target, wheel_cache_dir(settings))]
    except MlpackError as exc:
        if say is not None:
            say(f"the RUN step installs with pip: no uv wheel ({exc.message})")
        return wheels


def render_for_build(bundle: Any, options: Any, settings: Settings, store: Store, *, deps: str = "auto",
                     out_dir: str | os.PathLike[str] | None = None,
                     say: Callable[[str], None] | None = None, platform: tuple[str, str] | None = None) -> Any:
    """Render ``bundle`` with ``options`` and ``deps`` resolved (auto: see :func:`choose_deps`) for the
    base's image of ``platform`` (another architecture than this machine's: deps=context,
    :func:`foreign_deps`)."""
    from mlpack.bundle import Bundle
    from mlpack.dockerfile import RenderOptions, render

    options = options or RenderOptions()
    if platform is not None:
        deps = foreign_deps(deps, platform, say)
    mode = "context" if options.deps == "context" else choose_deps(deps, settings, say)
    loaded = Bundle.load(Path(bundle)) if isinstance(bundle, (str, os.PathLike)) else bundle
    python = options.python_version(loaded.python_version)
    base = options.base_image(python)
    if mode == "run":
        wheels = run_wheelhouse(loaded, options, settings, store, base, python, say)
        return render(loaded, options, out_dir=out_dir, wheelhouse=wheels)
    facts = base_facts(settings, store, base, python, platform)
    options = replace(options, deps="context", wheel_cache=options.wheel_cache or wheel_cache_dir(settings))
    return render(loaded, options, out_dir=out_dir, base_facts=facts)
