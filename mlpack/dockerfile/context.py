"""render(): a Bundle plus RenderOptions becomes a self-contained build context.

The context directory holds exactly what the Dockerfile copies::

    Dockerfile  .dockerignore  requirements.lock  importcheck.py  imports.txt  stripelf.py  compilepy.py
    app/mlpack/...   the serving subset of mlpack (no build or CLI code)
    bundle/...       the bundle, byte for byte

so ``docker build``, ``buildah bud`` and ``mlpack build`` all build it as is.

With ``RenderOptions(deps="context")`` the context holds no build scripts;
instead ``deps/`` is the image's virtual environment, made here
(:mod:`mlpack.dockerfile.depsdir`), and ``etc/passwd``, ``etc/group`` the
base's users plus the serving user. The Dockerfile has no RUN: it copies
``deps/`` from a named build context (``--build-context deps=deps``), and
``.dockerignore`` keeps ``deps/`` out of the main context.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlpack._version import __version__
from mlpack.dockerfile.depsdir import BaseFacts, Trims, compile_tree, make_deps_dir, user_files
from mlpack.dockerfile.options import LOCAL_BASE, RenderOptions, runtime_base
from mlpack.dockerfile.system import system_libraries
from mlpack.dockerfile.wheelcache import WheelTarget
from mlpack.dockerfile.wheelinstall import parse_wheel_name
from mlpack.dockerfile.templates import render_template
from mlpack.errors import RenderError
from mlpack.types import DEFAULT_PORT

__all__ = ["BuildContext", "render", "SERVING_MODULES", "LABEL_PREFIX", "DEPS_CONTEXT"]

VENV = "/opt/venv"
APP_DIR = "/opt/mlpack/app"
BUNDLE_DIR = "/opt/mlpack/bundle"
# The named build context (and the context's directory) holding the venv in deps="context" mode.
DEPS_CONTEXT = "deps"
# deps="run" with every wheel of the lock in mlpack's cache: the named context that carries
# them, and where the RUN step sees it (pip then installs with --no-index).
WHEELS_CONTEXT = "wheels"
WHEELHOUSE_DIR = "/tmp/mlpack/wheelhouse"
UV_CACHE_DIR = "/root/.cache/uv"  # the RUN step's uv cache mount; uv's binary is kept there too
CUDA_LIB_DIR = f"{VENV}/cuda-libs"
# mlpack's own labels; users may not set keys under this prefix, so tools can trust them.
LABEL_PREFIX = "io.mlpack."
# The part of mlpack that runs inside the image, copied as a whole (DESIGN.md: serve imports
# bundle, errors; both take the leaf modules: types and values). tests/unit/dockerfile/
# test_serving_subset.py proves it closed: nothing in it imports a module outside it.
SERVING_MODULES = ("__init__.py", "_version.py", "errors.py", "types.py", "values.py", "bundle", "server")
# Packages whose "tests" directories nothing imports at run time.
STRIP_TESTS = ("numpy", "scipy", "pandas", "sklearn", "sympy", "mpmath", "networkx", "skl2onnx")
# Tooling inside onnxruntime's wheel that inference never imports; shell globs
# relative to site-packages. Trimmed only from an ONNX image whose lock is
# mlpack's own serving stack (nothing else there imports them: the integration
# test imports every top-level module of the image's site-packages). A python
# flavour image keeps every file its distributions ship: scipy imports
# numpy.f2py, and no list of ours can know what a user's packages import.
STRIP_PATHS = ("onnxruntime/transformers", "onnxruntime/quantization", "onnxruntime/tools")
# numpy's build tooling (distutils, C headers and static libraries, the PyInstaller hook)
# and its compiled test-only modules (_simd, _*_tests): compilers use the former, numpy's
# own test suite the latter. Trimmed from such an ONNX image unless the bundle has hooks
# (user code, which may import any of numpy). numpy.f2py stays: it is in numpy.__all__,
# so `from numpy import *` (numpy.matlib does it) imports it.
STRIP_PATHS_NUMPY = ("numpy/distutils", "numpy/_core/include", "numpy/_core/lib",
                     "numpy/_pyinstaller", "numpy/_core/_simd.*", "numpy/_core/_*_tests.*")
# The CPU wheel's C-API library (35 MB): the Python binding is linked statically
# and never loads it. Kept in the GPU variant, where it was not verified.
STRIP_PATHS_CPU = ("onnxruntime/capi/libonnxruntime.so*",)
# Installers removed from the venv unless the lock itself names them (a package
# that requires setuptools may import pkg_resources at run time).
INSTALLERS = {"pip": ("pip",), "setuptools": ("setuptools", "pkg_resources", "_distutils_hack"),
              "wheel": ("wheel",)}
# The build step that imports every distribution of the lock (stdlib-only script).
IMPORT_CHECK = Path(__file__).with_name("importcheck.py")
# The builder stage's debug-symbol strip and bytecode compile (stdlib-only scripts, copied into the context).
STRIP_ELF = Path(__file__).with_name("_stripelf.py")
COMPILE_PY = Path(__file__).with_name("_compilepy.py")
_HEALTHCHECK = (
    "import os, urllib.request; "
    f"urllib.request.urlopen('http://127.0.0.1:%s/v2/health/ready' % os.environ.get('MLPACK_PORT', '{DEFAULT_PORT}'), timeout=4)"
)
_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass(frozen=True)
class BuildContext:
    """A rendered build context: ``path`` (the directory), ``dockerfile`` (its
    Dockerfile's path), the ``options`` used, the resolved ``base_image``, the
    named build contexts the Dockerfile copies from (``{"deps": path/deps}``) and
    the runtime stage's base (``runtime_base``; None: ``base_image``)."""

    path: Path
    dockerfile: Path
    options: RenderOptions
    base_image: str
    contexts: Mapping[str, Path] = field(default_factory=dict)
    runtime_base: str | None = None

    @property
    def base_images(self) -> tuple[str, ...]:
        """Every image the Dockerfile starts from (what another builder needs in its storage)."""
        runtime = self.runtime_base or self.base_image
        return (self.base_image,) if runtime == self.base_image else (self.base_image, runtime)

    @property
    def dockerfile_text(self) -> str:
        return self.dockerfile.read_text()


def render(bundle_or_path: Any, options: RenderOptions | None = None, *,
           out_dir: str | Path | None = None, base_facts: BaseFacts | None = None,
           wheelhouse: Sequence[Path] | None = None) -> BuildContext:
    """Render ``bundle_or_path`` (a Bundle or a bundle directory) into a build context.

    ``out_dir`` must be absent or empty; ``None`` makes a temporary directory.
    ``base_facts`` (the base image's interpreter, users and platform) is
    required with ``deps="context"``: ``mlpack.builder.render_for_build``
    reads them from the store. ``wheelhouse`` (``deps="run"``): one wheel per
    line of the lock, from mlpack's wheel cache; the context then carries them
    as the named context ``wheels`` and the RUN step installs from it with
    ``--no-index``, so a build of a lock whose wheels are cached asks no index.
    """
    options = options or RenderOptions()
    if not isinstance(options, RenderOptions):
        raise RenderError(f"options must be RenderOptions, not {type(options).__name__}",
                          hint="from mlpack.dockerfile import RenderOptions")
    bundle = _load_bundle(bundle_or_path)
    python = options.python_version(getattr(bundle, "python_version", None))
    base = options.base_image(python)
    requirements = lock_lines(bundle, options)
    if options.deps == "context" and base_facts is None:
        raise RenderError("deps='context' needs the base image's interpreter and users",
                          hint="use mlpack.builder.render_for_build (it reads them from the store), "
                               "or pass base_facts=BaseFacts(...)")
    if wheelhouse is not None and options.deps == "context":
        raise RenderError("a wheelhouse is for deps='run' (deps='context' installs the wheels itself)")
    # wheels for arm64 make an arm64 image: the build commands of the header say so
    platform = "linux/arm64" if options.deps == "context" and base_facts and base_facts.machine == "aarch64" else ""
    text = render_dockerfile(bundle, options, python=python, base=base, platform=platform,
                             wheelhouse=wheelhouse is not None, uv_wheel=_uv_wheel(wheelhouse or ()))

    out = _prepare_out_dir(out_dir)
    _copy_tree(Path(bundle.path), out / "bundle")
    _copy_serving_code(out / "app" / "mlpack")
    _write(out / "requirements.lock", "\n".join(requirements) + "\n")
    if options.deps == "context":
        assert base_facts is not None
        _render_deps(out, bundle, options, python, base, base_facts, requirements)
    else:
        _write(out / "importcheck.py", IMPORT_CHECK.read_text())
        _write(out / "imports.txt", "".join(f"{m}\n" for m in required_modules(bundle)))
        _write(out / "stripelf.py", STRIP_ELF.read_text())
        _write(out / "compilepy.py", COMPILE_PY.read_text())
    _write(out / ".dockerignore", render_template("dockerignore.j2", {"deps": options.deps},
                                                  extra_dir=options.template_dir))
    _write(out / "Dockerfile", text)
    contexts = {DEPS_CONTEXT: out / DEPS_CONTEXT} if options.deps == "context" else {}
    if wheelhouse is not None:
        contexts[WHEELS_CONTEXT] = _link_wheels(wheelhouse, out / WHEELS_CONTEXT)
    return BuildContext(path=out, dockerfile=out / "Dockerfile", options=options, base_image=base,
                        contexts=contexts, runtime_base=runtime_base(base, python))


def _uv_wheel(wheels: Sequence[Path]) -> str | None:
    """The file name of a uv wheel in the wheelhouse (the RUN step installs with it), or None."""
    return next((w.name for w in wheels if parse_wheel_name(w.name)["name"].lower() == "uv"), None)


def _link_wheels(wheels: Sequence[Path], dst: Path) -> Path:
    """The lock's wheels under ``dst``: hard links into the cache where they can be (no copy), else copies."""
    dst.mkdir()
    for wheel in wheels:
        target = dst / wheel.name
        if target.exists():
            continue
        try:
            os.link(wheel, target)
        except OSError:
            shutil.copyfile(wheel, target)
    return dst


def _render_deps(out: Path, bundle: Any, options: RenderOptions, python: str, base: str, facts: BaseFacts,
                 requirements: list[str]) -> None:
    """deps/ (the venv, made here), etc/passwd and etc/group, and the serving code's bytecode."""
    libraries = system_libraries(requirements, local_base=base == LOCAL_BASE.format(python=python))
    if libraries:  # the RUN template installs them with apt where the base lacks them
        names = ", ".join(f"{lib.soname} ({lib.package})" for lib in libraries)
        raise RenderError(f"the lock's wheels load {names}, which only a RUN step can add to {base}",
                          hint="use the offline base (base='local' has it) or deps='run'")
    if not facts.interpreter.endswith(f"python{python}"):
        raise RenderError(f"the base image's interpreter is {facts.interpreter}, not Python {python}",
                          hint=f"choose a base with Python {python} or pass python= matching the base")
    trims = Trims(installers=tuple(strip_installers(requirements)), tests=STRIP_TESTS,
                  paths=tuple(strip_paths(bundle, options)))
    assert options.wheel_cache is not None
    make_deps_dir(out / DEPS_CONTEXT, [*requirements, *options.pip],
                  target=WheelTarget(python=python, machine=facts.machine, glibc=facts.glibc),
                  base=facts, cache=options.wheel_cache, venv=VENV, trims=trims,
                  extra_wheel_dirs=[Path(bundle.path)] if local_wheels(bundle) else [],
                  modules=required_modules(bundle), provided=["mlpack"])
    passwd, group = user_files(facts, options.uid)
    for name, data in (("passwd", passwd), ("group", group)):
        (out / "etc").mkdir(exist_ok=True)
        (out / "etc" / name).write_bytes(data)
        (out / "etc" / name).chmod(0o644)
    (out / "etc").chmod(0o755)
    compile_tree(out / "app", APP_DIR, python)


def render_dockerfile(bundle: Any, options: RenderOptions, *, python: str, base: str, platform: str = "",
                      wheelhouse: bool = False, uv_wheel: str | None = None) -> str:
    """Only the Dockerfile text (no files written); ``platform`` (``linux/arm64``) goes into the
    header's build commands when the image is not for linux/amd64; ``uv_wheel``: a uv wheel
    in the wheelhouse, whose binary the RUN step installs with (uv's own path in the wheel)."""
    uv_member = None
    if wheelhouse and uv_wheel:
        fields = parse_wheel_name(uv_wheel)
        uv_member = f"{fields['name']}-{fields['version']}.data/scripts/uv"
    template = options.template or ("gpu.Dockerfile.j2" if options.gpu else "cpu.Dockerfile.j2")
    runtime = runtime_base(base, python)
    context = {
        "mlpack_version": __version__,
        "name": bundle.name,
        "flavor": bundle.flavor,
        "framework": bundle.framework,
        "base": base,
        "runtime_base": runtime,
        "python": python,
        "gpu": options.gpu,
        "pip": list(options.pip),
        "apt": list(options.apt),
        "system_libraries": list(system_libraries(
            lock_lines(bundle, options), asked=options.apt, local_base=base == LOCAL_BASE.format(python=python))),
        "env": sorted(options.env.items()),
        "labels": image_labels(bundle, options, runtime),
        "port": options.port,
        "grpc_port": options.grpc_port,
        "uid": options.uid,
        "venv": VENV,
        "app_dir": APP_DIR,
        "bundle_dir": BUNDLE_DIR,
        "cuda_lib_dir": CUDA_LIB_DIR,
        "strip_tests": list(STRIP_TESTS),
        "wheels": local_wheels(bundle),
        "wheelhouse": WHEELHOUSE_DIR if wheelhouse else None,
        "uv_wheel": uv_wheel if uv_member else None,
        "uv_member": uv_member,
        "uv_cache": UV_CACHE_DIR,
        "strip_installers": strip_installers(lock_lines(bundle, options)),
        "strip_paths": strip_paths(bundle, options),
        "deps": options.deps,
        "deps_context": DEPS_CONTEXT,
        "platform_flag": f"--platform {platform} " if platform else "",
        "healthcheck": [f"{VENV}/bin/python", "-c", _HEALTHCHECK],
        "entrypoint": [f"{VENV}/bin/python", "-m", "mlpack.server"],
    }
    return render_template(template, context, extra_dir=options.template_dir, blocks=options.blocks)


def required_modules(bundle: Any) -> list[str]:
    """The modules the image must import at build time beyond the lock's packages: those
    the python flavour's pickle references and those the hooks import."""
    modules: set[str] = set()
    if bundle.flavor == "python":
        from mlpack.bundle.python_flavor import pickle_modules

        modules.update(pickle_modules(bundle.model_path))
    hooks = getattr(bundle, "hooks_path", None)
    if hooks is not None and Path(hooks).is_file():
        from mlpack.bundle.hooks import imported_modules

        modules.update(imported_modules(Path(hooks).read_text(encoding="utf-8")))
    return sorted(m for m in modules if m.split(".")[0] not in ("__main__", "mlpack"))


_WHEEL = re.compile(r"^[A-Za-z0-9_.+-]+\.whl$")


def local_wheels(bundle: Any) -> list[str]:
    """The wheels a bundle ships (local packages no index has), hash-verified with the bundle."""
    files = (getattr(bundle, "manifest", None) or {}).get("files") or {}
    return sorted(name for name in files if _WHEEL.match(name))


def strip_paths(bundle: Any, options: RenderOptions) -> list[str]:
    """What the builder trims from site-packages: only in an ONNX image with mlpack's own lock."""
    if bundle.flavor != "onnx" or options.pip:
        return []
    hooks = getattr(bundle, "hooks_path", None)
    has_hooks = hooks is not None and Path(hooks).is_file()
    return (list(STRIP_PATHS) + ([] if options.gpu else list(STRIP_PATHS_CPU))
            + ([] if has_hooks else list(STRIP_PATHS_NUMPY)))


def strip_installers(lock: list[str]) -> list[str]:
    """The installer packages to remove: those the lock does not name."""
    locked = {_canonical(m.group(1)) for line in lock if (m := _REQ_NAME.match(line))}
    return [module for dist, modules in INSTALLERS.items() if dist not in locked for module in modules]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def image_labels(bundle: Any, options: RenderOptions, base: str) -> list[tuple[str, str]]:
    """OCI and mlpack labels, then the user's (which may not touch ``io.mlpack.*``)."""
    manifest = getattr(bundle, "manifest", None) or {}
    labels: dict[str, str] = {
        "org.opencontainers.image.title": bundle.name,
        "org.opencontainers.image.description": f"mlpack inference server for {bundle.name}",
        "org.opencontainers.image.created": _created(options),
        "org.opencontainers.image.base.name": base,
    }
    version = options.version or manifest.get("version")
    if version:
        labels["org.opencontainers.image.version"] = str(version)
    if options.source:
        labels["org.opencontainers.image.source"] = options.source
    if options.revision:
        labels["org.opencontainers.image.revision"] = options.revision
    labels.update({
        f"{LABEL_PREFIX}version": __version__,
        f"{LABEL_PREFIX}model.name": bundle.name,
        f"{LABEL_PREFIX}model.flavor": bundle.flavor,
        f"{LABEL_PREFIX}model.framework": bundle.framework,
        f"{LABEL_PREFIX}model.sha256": bundle.model_sha256,
        f"{LABEL_PREFIX}parity": json.dumps(bundle.parity or {}, sort_keys=True, separators=(",", ":"),
                                            default=str),
        f"{LABEL_PREFIX}gpu": "true" if options.gpu else "false",
    })
    for key, value in options.labels.items():
        if key.startswith(LABEL_PREFIX):
            raise RenderError(f"label {key!r} is reserved for mlpack",
                              hint=f"choose a key outside {LABEL_PREFIX}*")
        labels[key] = value
    return list(labels.items())


def lock_lines(bundle: Any, options: RenderOptions) -> list[str]:
    """The bundle's lock, with onnxruntime swapped for onnxruntime-gpu in the GPU variant."""
    lines = [line.strip() for line in bundle.requirements if line.strip()]
    for line in lines:
        # pip reads options in a requirements file (--index-url, -e, -r, ...):
        # a lock holds pinned names only, so an option means a tampered bundle.
        if line.startswith("-") or "\x00" in line:
            raise RenderError(f"the bundle's lock has a pip option line {line!r}",
                              hint="a lock holds 'name==version' lines only; capture the model again")
    if not options.gpu:
        return lines
    out: list[str] = []
    swapped = False
    for line in lines:
        match = _REQ_NAME.match(line)
        name = match.group(1).lower().replace("_", "-") if match else ""
        if name in ("onnxruntime", "onnxruntime-gpu"):
            version = re.search(r"==\s*([A-Za-z0-9.+!-]+)", line)
            # The GPU wheel can lag the CPU one by a release: take the newest
            # not newer than what capture checked parity with.
            pin = f"<={version.group(1)}" if version else ""
            out.append(f"onnxruntime-gpu[cuda,cudnn]{pin}")
            swapped = True
        else:
            out.append(line)
    if not swapped and bundle.flavor == "onnx":
        out.append("onnxruntime-gpu[cuda,cudnn]")
    return out


def _load_bundle(bundle_or_path: Any) -> Any:
    if isinstance(bundle_or_path, (str, os.PathLike)):
        from mlpack.bundle import Bundle

        return Bundle.load(Path(bundle_or_path))
    missing = [a for a in ("path", "name", "flavor", "framework", "model_sha256", "requirements")
               if not hasattr(bundle_or_path, a)]
    if missing:
        raise RenderError(f"cannot render {type(bundle_or_path).__name__}: it has no {', '.join(missing)}",
                          hint="pass a Bundle (mlpack.capture(...) or Bundle.load(path)) or a bundle directory")
    return bundle_or_path


def _created(options: RenderOptions) -> str:
    epoch = options.source_date_epoch
    if epoch is None and os.environ.get("SOURCE_DATE_EPOCH", "").strip().isdigit():
        epoch = int(os.environ["SOURCE_DATE_EPOCH"])
    if epoch is None:
        epoch = int(time.time())
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _prepare_out_dir(out_dir: str | Path | None) -> Path:
    if out_dir is None:
        return Path(tempfile.mkdtemp(prefix="mlpack-context-"))
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RenderError(f"output directory {out} is not empty",
                          hint="choose a new directory or remove the old context first")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o644)


def _copy_tree(src: Path, dst: Path) -> None:
    """Copy files with world-readable modes: the image's non-root user must read them."""
    if not src.is_dir():
        raise RenderError(f"bundle directory {src} does not exist", hint="capture the model again")
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        rel = Path(root).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        (dst / rel).chmod(0o755)
        for name in sorted(files):
            if name.endswith((".pyc", ".pyo")):
                continue
            source = Path(root) / name
            if source.is_symlink():
                raise RenderError(f"{source} is a symlink; a bundle must hold plain files",
                                  hint="capture the model again")
            target = dst / rel / name
            shutil.copyfile(source, target)
            target.chmod(0o755 if os.access(source, os.X_OK) else 0o644)


def serving_files(package_dir: Path) -> list[Path]:
    """The files of the serving subset: every file of SERVING_MODULES (no byte code)."""
    chosen: list[Path] = []
    for entry in SERVING_MODULES:
        path = package_dir / entry
        if path.is_dir():
            chosen.extend(p for p in sorted(path.rglob("*")) if p.is_file() and "__pycache__" not in p.parts
                          and not p.name.endswith((".pyc", ".pyo")))
        elif path.is_file():
            chosen.append(path)
        else:
            raise RenderError(f"mlpack's serving code is incomplete: {path} is missing",
                              hint="reinstall mlpack")
    return chosen


def _copy_serving_code(dst: Path) -> None:
    package_dir = Path(__file__).resolve().parents[1]
    for path in serving_files(package_dir):
        target = dst / path.relative_to(package_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        target.chmod(0o644)
    for directory in [dst, *[p for p in dst.rglob("*") if p.is_dir()]]:
        directory.chmod(0o755)
