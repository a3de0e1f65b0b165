"""The build step that proves the image can import what it installed.

Copied into the build context and run by the image's own Python (stdlib only,
no mlpack on the path) after the virtual environment is installed and
trimmed: every distribution of the lock must be installed at its pinned
version and every public top-level module it provides must import, so a
missing or broken module fails the build naming it, never the first request.

``python importcheck.py LOCK [MODULES]`` checks the lock's distributions (each
top-level module and its public first-level submodules; a submodule that
needs a package outside the lock is optional and skipped), then imports each
module named in the MODULES file (what the model's pickle references);
``python importcheck.py --site-packages`` imports every top-level module found
in site-packages (what the integration test runs in a real container).
Exit status 1 on any failure, with one ``mlpack: ...`` line per failure.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata as md
import io
import os
import pkgutil
import re
import sys
import sysconfig
import traceback

# Top-level names some distributions ship by mistake: never imported by anyone.
_NOT_MODULES = {"tests", "test", "testing_data", "docs", "doc", "examples", "benchmarks", "bin", "share",
                "include", "scripts"}
_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;#]+)")


def lock_pins(text: str) -> list[tuple[str, str]]:
    """``(name, version)`` of each ``name==version`` line (comments and blank lines skipped)."""
    out = []
    for line in text.splitlines():
        match = _PIN.match(line)
        if match:
            out.append((match.group(1), match.group(2)))
    return out


def _module_name(entry: str) -> str | None:
    """The importable top-level name of a path's first component, or None."""
    if entry.endswith((".dist-info", ".egg-info", ".data", ".pth")) or entry == "__pycache__":
        return None
    name = entry.split(".", 1)[0] if "." in entry else entry
    if "." in entry and not entry.endswith((".py", ".so", ".pyd", ".pyc")):
        return None  # numpy.libs, foo-1.0.dist-info, ...
    if not _IDENT.match(name) or name in _NOT_MODULES:
        return None  # private modules (_yaml) are imported by their public ones
    return name


def top_level_modules(dist: md.Distribution) -> list[str]:
    """The public top-level modules a distribution installs (from its RECORD, else top_level.txt)."""
    files = list(dist.files or [])
    packages = {p.parts[0] for p in files if len(p.parts) == 2 and p.name == "__init__.py"}
    names: set[str] = set()
    for path in files:
        parts = path.parts
        if not parts or parts[0] in ("..", "/"):
            continue  # scripts installed into bin/
        if len(parts) == 1 and not parts[0].endswith((".py", ".so", ".pyd")):
            continue
        if len(parts) > 1 and parts[0] not in packages:
            # A namespace package (opentelemetry/, google/): its first-level packages are this
            # distribution's portions; anything else is a data directory.
            if len(parts) == 3 and parts[2] == "__init__.py" and _module_name(parts[0]) and _module_name(parts[1]):
                names.add(f"{parts[0]}.{parts[1]}")
            continue
        name = _module_name(parts[0])
        if name:
            names.add(name)
    if not names:
        for line in (dist.read_text("top_level.txt") or "").splitlines():
            name = _module_name(line.strip())
            if name:
                names.add(name)
    return sorted(names)


def _try_import(module: str) -> BaseException | None:
    quiet = io.StringIO()
    try:
        with contextlib.redirect_stdout(quiet):  # some packages print banners on import
            importlib.import_module(module)
    except BaseException as exc:  # SystemExit and friends from a module's import count too
        return exc
    return None


def _describe(exc: BaseException) -> str:
    return traceback.format_exception_only(type(exc), exc)[-1].strip()


def _optional(exc: BaseException, provided: set[str]) -> bool:
    """Whether a submodule's failure is an optional extra rather than a broken install.

    Broken: a module missing from a package the image installed (``numpy.f2py``
    stripped) or a shared library that does not load. Optional: anything else
    one level down (uvicorn.workers needs gunicorn, starlette.templating jinja2,
    each saying so in its own words); a top-level module must always import.
    """
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return exc.name.split(".")[0] not in provided
    if isinstance(exc, ImportError) and ("shared object" in str(exc) or ".so" in str(exc)):
        return False
    return True


def _submodules(module: str) -> list[str]:
    """The public first-level submodules of an imported package (scipy.linalg, not scipy._lib):
    lazy packages import little at top level, and what they miss shows one level down."""
    package = sys.modules.get(module)
    found = []
    for info in pkgutil.iter_modules(getattr(package, "__path__", None) or [], module + "."):
        leaf = info.name.rsplit(".", 1)[1]
        if not leaf.startswith("_") and leaf not in _NOT_MODULES and leaf not in ("conftest", "testing"):
            found.append(info.name)
    return sorted(found)


def check_lock(text: str, required: list[str] = ()) -> list[str]:
    """The failures (one line each) of installing and importing the lock's distributions,
    then of importing ``required`` (the modules the model's pickle and hooks reference)."""
    failures: list[str] = []
    dists: list[tuple[str, str, list[str]]] = []
    for name, version in lock_pins(text):
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            failures.append(f"mlpack: {name}=={version} is in the lock but not installed in the image")
            continue
        if dist.version != version:
            failures.append(f"mlpack: {name}=={version} is in the lock but {dist.version} is installed")
            continue
        dists.append((name, version, top_level_modules(dist)))
    provided = {m.split(".")[0] for _, _, modules in dists for m in modules}
    for name, version, modules in dists:
        for module in modules:
            error = _try_import(module)
            if error is not None:
                failures.append(f"mlpack: module {module!r} of {name}=={version} does not import: {_describe(error)}")
                continue
            for sub in _submodules(module):
                error = _try_import(sub)
                if error is not None and not _optional(error, provided):
                    failures.append(f"mlpack: module {sub!r} of {name}=={version} does not import: "
                                    f"{_describe(error)}")
    for module in required:
        error = _try_import(module)
        if error is not None:
            failures.append(f"mlpack: module {module!r}, which the model needs, does not import: {_describe(error)}")
    return failures


def check_site_packages(site: str | None = None) -> tuple[list[str], list[str]]:
    """(imported, failures) over every public top-level module in site-packages and
    the public first-level submodules of each (optional ones skipped, as in check_lock)."""
    site = site or sysconfig.get_path("purelib")
    modules: list[str] = []
    for entry in sorted(os.listdir(site)):
        path = os.path.join(site, entry)
        name = _module_name(entry)
        if name is None or (os.path.isdir(path) and not os.path.isfile(os.path.join(path, "__init__.py"))):
            continue
        if os.path.isfile(path) and not entry.endswith((".py", ".so")):
            continue
        modules.append(name)
    imported: list[str] = []
    failures: list[str] = []
    for name in modules:
        error = _try_import(name)
        if error is not None:
            failures.append(f"mlpack: module {name!r} in {site} does not import: {_describe(error)}")
            continue
        imported.append(name)
        for sub in _submodules(name):
            error = _try_import(sub)
            if error is not None and not _optional(error, set(modules)):
                failures.append(f"mlpack: module {sub!r} in {site} does not import: {_describe(error)}")
    return imported, failures


def main(argv: list[str]) -> int:
    os.environ.setdefault("MPLBACKEND", "Agg")  # plotting libraries must not look for a display
    if argv[:1] == ["--site-packages"]:
        imported, failures = check_site_packages(argv[1] if len(argv) > 1 else None)
        print(f"mlpack: imported {len(imported)} top-level modules: {' '.join(imported)}")
    elif len(argv) in (1, 2):
        with open(argv[0], encoding="utf-8") as fh:
            lock = fh.read()
        required: list[str] = []
        if len(argv) == 2:
            with open(argv[1], encoding="utf-8") as fh:
                required = [line.strip() for line in fh if line.strip() and not line.startswith("#")]
        failures = check_lock(lock, required)
        if not failures:
            print(f"mlpack: every distribution of {argv[0]} is installed at its pinned version and imports")
    else:
        print("usage: importcheck.py LOCK [MODULES] | --site-packages [DIR]", file=sys.stderr)
        return 2
    for line in failures:
        print(line, file=sys.stderr)
    if failures:
        print("mlpack: the image cannot import what the model and its hooks need: add the missing "
              "package with requirements=[...] (--pip SPEC), or capture where it is installed",
              file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
