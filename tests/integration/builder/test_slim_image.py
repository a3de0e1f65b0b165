"""What the size trims took out of the serving image, and proof that nothing it runs went with it.

In a real container of the session's sklearn ONNX serving image and of the
python-flavour image of the same model: every top-level
module of its site-packages, every extension module and shared library there,
every stdlib module the base still ships, and mlpack's serving code import;
then the server starts and answers /predict and a V2 infer. On the image's
files: no shared object keeps debug sections or a static symbol table the
strip step can drop, no installer in the venv, and the base holds none of
what mlpack.oci.base trims.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from mlpack.dockerfile import _stripelf as stripelf
from mlpack.dockerfile.context import STRIP_PATHS_NUMPY
from mlpack.endpoint import wait_ready
from mlpack.oci.layercache import flatten
from mlpack.oci.layout import Store
from mlpack.settings import Settings

pytestmark = [pytest.mark.build, pytest.mark.slow]

IMPORT_ALL = r"""
import ctypes, importlib, json, os, sys, sysconfig, traceback
sp = sysconfig.get_path("purelib")
failed, done = {}, []

def attempt(name, fn):
    try:
        fn()
        done.append(name)
    except BaseException as exc:  # SystemExit too: a module that exits at import is a failure
        failed[name] = f"{type(exc).__name__}: {exc}"

def modules_in(directory, prefix=""):
    for entry in sorted(os.listdir(directory)):
        path = os.path.join(directory, entry)
        if entry.endswith((".dist-info", ".egg-info", ".libs", ".pth")) or entry in ("__pycache__", "bin"):
            continue
        if os.path.isdir(path):
            if not entry.isidentifier():
                continue
            if os.path.exists(os.path.join(path, "__init__.py")):
                yield prefix + entry
            else:  # a namespace package (google/): its packages
                yield from modules_in(path, prefix + entry + ".")
        elif entry.endswith(".py") and entry[:-3].isidentifier():
            yield prefix + entry[:-3]
        elif entry.endswith(".so") and entry.split(".")[0].isidentifier():
            yield prefix + entry.split(".")[0]

top = sorted(set(modules_in(sp)))
for name in top:
    attempt(name, lambda name=name: importlib.import_module(name))
# every extension module by its dotted name, every other shared library through the loader
for dirpath, dirs, files in os.walk(sp):
    dirs.sort()
    for f in sorted(files):
        if ".so" not in f:
            continue
        path = os.path.join(dirpath, f)
        rel = os.path.relpath(path, sp)
        if f.endswith(".so") and (".cpython-" in f or ".abi3." in f):
            dotted = os.path.dirname(rel).replace(os.sep, ".")
            name = (dotted + "." if dotted else "") + f.split(".")[0]
            attempt("ext:" + name, lambda name=name: importlib.import_module(name))
        else:
            attempt("lib:" + rel, lambda path=path: ctypes.CDLL(path))
skip = {"antigravity", "this", "__main__", "idlelib", "turtledemo", "tkinter", "turtle", "_tkinter"}
for name in sorted(sys.stdlib_module_names - skip):
    attempt("std:" + name, lambda name=name: importlib.import_module(name))
import pkgutil, mlpack.server
for info in pkgutil.walk_packages(mlpack.server.__path__, "mlpack.server."):
    attempt("mlpack:" + info.name, lambda name=info.name: importlib.import_module(name))
print("MLPACK-IMPORTS " + json.dumps({"top": top, "done": len(done), "failed": failed}))
"""

# stdlib names Debian's python3 never ships in these packages (other platforms, or split off into
# python3-gdbm, python3-tk, ...), and what mlpack.oci.base trims on purpose.
NOT_IN_DEBIAN = {"_gdbm", "_msi", "_overlapped", "_scproxy", "_winapi", "msilib", "msvcrt", "nt", "winreg", "winsound"}
# ensurepip (python3.11-venv) is in the base's builder-only layer, with the wheels it installs
TRIMMED = {"lib2to3", "pydoc_data", "nis", "_dbm", "ensurepip"}
# Extension modules that cannot be imported on their own in an untrimmed install either (checked
# against the host's venv): scipy 1.17's pythran module imports a name from itself.
UPSTREAM = {"ext:scipy.linalg._matfuncs_sqrtm_triu": "partially initialized module"}


# Every ELF file of the image (executables, the stdlib's extensions, the base's libraries, every shared
# object in the venv) has each library it needs found by the image's own dynamic loader: what the base
# trim purged was needed by nothing that stays.
NEEDED_ALL = r"""
import glob, json, os, subprocess
loader = sorted(glob.glob("/usr/lib64/ld-linux-*.so.*") + glob.glob("/lib64/ld-linux-*.so.*"))[0]
checked, unresolved = 0, {}
for top in ("/usr/bin", "/usr/sbin", "/usr/lib", "/usr/libexec", "/opt/venv"):
    for dirpath, dirs, files in os.walk(top):
        for f in files:
            path = os.path.join(dirpath, f)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, "rb") as fh:
                if fh.read(4) != b"\x7fELF":
                    continue
            # a wheel's vendored libraries (auditwheel's *.libs) find each other through the RUNPATH of
            # the extension that loads them, not their own: listed with their directory on the path
            env = {"LD_LIBRARY_PATH": dirpath} if dirpath.endswith(".libs") else {}
            proc = subprocess.run([loader, "--list", path], capture_output=True, text=True, env=env)
            if "not a dynamic executable" in proc.stdout + proc.stderr:
                continue
            checked += 1
            lost = [l.split()[0] for l in proc.stdout.splitlines() if "not found" in l]
            if lost or proc.returncode != 0:
                unresolved[path] = lost or [proc.stderr.strip()[-300:]]
print("MLPACK-NEEDED " + json.dumps({"checked": checked, "unresolved": unresolved}))
"""
# What a serving container runs: the HEALTHCHECK and entrypoint (the venv's python), `mlpack exec`,
# kube probes and `kubectl cp` (sh, tar); the rest of the base's tools for booting, logging in and
# managing disks went. dpkg (and the diff it calls) and pip's wheels for `python3 -m venv` are in
# the base's second layer, which only the builder stage starts from.
KEPT_TOOLS = ("sh", "bash", "python3", "rm", "cat", "ls", "grep", "sed", "find", "xargs", "tar", "gzip",
              "awk", "env", "id")
BUILDER_ONLY = ("usr/bin/dpkg", "usr/bin/diff", "usr/share/python-wheels", "usr/lib/python3.11/ensurepip")
PURGED_TOOLS = ("usr/bin/openssl", "usr/bin/lsblk", "usr/bin/more", "usr/bin/su", "usr/bin/login",
                "usr/bin/localedef", "usr/sbin/mkfs", "usr/sbin/fsck", "usr/sbin/agetty",
                "usr/sbin/update-rc.d", "usr/bin/debconf")


def _run_to_exit(image_ref: str, argv: list[str], settings: Settings) -> str:
    from mlpack.runtime import run

    container = run(image_ref, entrypoint=argv[:1], command=argv[1:], ports=(), settings=settings,
                    name=f"slim-imports-{os.getpid()}", detach=True)
    try:
        code = container.wait(timeout=600)
        logs = container.logs()
        assert code == 0, f"exit status {code}: {logs[-3000:]}"
        return logs
    finally:
        container.remove(force=True)


@pytest.fixture(scope="module")
def bundle_image(sklearn_bundle, python_base_image, run_settings: Settings):  # type: ignore[no-untyped-def]
    """The same model built the way `mlpack build BUNDLE` and serve() build it: the lock's wheels from
    mlpack's wheel cache as the named context ``wheels``, installed by uv taken from that wheelhouse."""
    if os.geteuid() != 0:
        pytest.skip("building a serving image needs root (RUN steps run in a sandbox)")
    from mlpack.builder import BuildOptions, StepCached, StepDone, build

    events: list[object] = []
    image = build(sklearn_bundle.path, BuildOptions(tag="localhost/mlpack-test/sklearn-bundle-uv:1", deps="run"),
                  settings=run_settings, progress=events.append)
    installs = [e.instruction for e in events if isinstance(e, (StepDone, StepCached)) and "requirements.lock" in e.instruction
                and "install" in e.instruction]
    assert len(installs) == 1 and "from=wheels" in installs[0] and ".data/scripts/uv" in installs[0], installs
    return image


@pytest.fixture(params=["pip", "uv"])
def onnx_image(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """The sklearn ONNX image installed by pip (a rendered context) and by uv (a bundle build)."""
    return request.getfixturevalue("serving_image" if request.param == "pip" else "bundle_image")


def test_every_module_of_the_image_imports(onnx_image, run_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    logs = _run_to_exit(onnx_image.ref, ["/opt/venv/bin/python", "-c", IMPORT_ALL], run_settings)
    [line] = [l for l in logs.splitlines() if l.startswith("MLPACK-IMPORTS ")]
    report = json.loads(line.split(" ", 1)[1])
    # the serving stack is there (so the walk really looked at site-packages)
    assert {"numpy", "onnxruntime", "uvloop", "starlette", "uvicorn", "yaml"} <= set(report["top"]), report["top"]
    # gRPC is served by zttp (uvicorn's HTTP/2) and protobuf: both in, grpcio out, every gRPC module imports
    assert {"zttp", "google.protobuf"} <= set(report["top"]) and "grpc" not in report["top"], report["top"]
    assert not {name: why for name, why in report["failed"].items() if name.startswith("mlpack:mlpack.server")}
    assert report["done"] > 300
    unexpected = {name: why for name, why in report["failed"].items()
                  if not (name.startswith("std:") and name[4:] in NOT_IN_DEBIAN | TRIMMED)
                  and not _optional_dependency(name, why, report["top"])}
    assert unexpected == {}
    assert {f"std:{name}" for name in TRIMMED} <= set(report["failed"]), "the trims are not in this image"


def _optional_dependency(name: str, why: str, installed: list[str]) -> bool:
    """A module of mlpack's serving code that needs a package this image does not install: not a
    trim's doing."""
    prefix = "ModuleNotFoundError: No module named '"
    if not (name.startswith("mlpack:") and why.startswith(prefix)):
        return False
    missing = why[len(prefix):].rstrip("'").split(".")[0]
    return not any(top.split(".")[0] == missing for top in installed)


@pytest.fixture(scope="module")
def python_serving_image(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                         run_settings: Settings):  # type: ignore[no-untyped-def]
    """The python-flavour image of the same model (scikit-learn and scipy in its venv), built by mlpack."""
    if os.geteuid() != 0:
        pytest.skip("building a serving image needs root (RUN steps run in a sandbox)")
    bundle = request.getfixturevalue("sklearn_python_bundle")
    request.getfixturevalue("python_base_image")
    from mlpack.builder import build
    from mlpack.dockerfile import RenderOptions, render

    ctx = render(bundle, RenderOptions(base="local"), out_dir=tmp_path_factory.mktemp("python-context") / "ctx")
    return build(ctx, tag="localhost/mlpack-test/sklearn-python-serving:1", settings=run_settings)


def test_every_module_of_the_python_flavour_image_imports(python_serving_image,  # type: ignore[no-untyped-def]
                                                          run_settings: Settings) -> None:
    logs = _run_to_exit(python_serving_image.ref, ["/opt/venv/bin/python", "-c", IMPORT_ALL], run_settings)
    [line] = [l for l in logs.splitlines() if l.startswith("MLPACK-IMPORTS ")]
    report = json.loads(line.split(" ", 1)[1])
    assert {"sklearn", "scipy", "joblib", "numpy"} <= set(report["top"]), report["top"]
    unexpected = {name: why for name, why in report["failed"].items()
                  if not (name.startswith("std:") and name[4:] in NOT_IN_DEBIAN | TRIMMED)
                  and not _optional_dependency(name, why, report["top"])
                  and not (name in UPSTREAM and UPSTREAM[name] in why)}
    assert unexpected == {}
    assert report["done"] > 300


@pytest.mark.parametrize("flavour", ["onnx", "python"])
def test_every_elf_of_the_image_finds_its_libraries(flavour: str, request: pytest.FixtureRequest,
                                                    run_settings: Settings) -> None:
    image = request.getfixturevalue("serving_image" if flavour == "onnx" else "python_serving_image")
    logs = _run_to_exit(image.ref, ["/opt/venv/bin/python", "-c", NEEDED_ALL], run_settings)
    [line] = [l for l in logs.splitlines() if l.startswith("MLPACK-NEEDED ")]
    report = json.loads(line.split(" ", 1)[1])
    assert report["checked"] > 150, report  # python, the tools, lib-dynload, glibc, the wheels' objects
    assert report["unresolved"] == {}, json.dumps(report["unresolved"])


def test_what_the_trims_took_out(serving_image, run_settings: Settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = flatten(Store(run_settings.store_dir), serving_image, tmp_path / "root")
    sp = next((root / "opt" / "venv" / "lib").glob("python3.*/site-packages"))
    shared = [p for p in sp.rglob("*.so*") if p.is_file() and not p.is_symlink()]
    assert len(shared) > 20
    leftover = [str(p.relative_to(sp)) for p in shared if stripelf.strip_bytes(p.read_bytes()) is not None]
    assert leftover == [], leftover
    uvloop = next((sp / "uvloop").glob("loop.*.so"))
    assert uvloop.stat().st_size < 4e6, "uvloop's 13 MB of debug info should be gone"
    assert not (sp / "pip").exists() and not list(sp.glob("pip-*.dist-info"))
    numpy_tooling = [str(p.relative_to(sp)) for pattern in STRIP_PATHS_NUMPY
                     for p in sp.glob(pattern)]
    assert numpy_tooling == [], numpy_tooling
    assert (sp / "numpy" / "testing").is_dir() and list((sp / "numpy" / "random").glob("_generator.*.so"))
    usr = root / "usr"
    assert not (usr / "bin" / "perl").exists() and not list(usr.glob("lib/*/perl-base"))
    assert not list(usr.glob("lib/*/gconv/*.so"))
    py = next(usr.glob("lib/python3.*"))
    assert not list((py / "lib2to3").rglob("*.py")) and not list((py / "test").rglob("*.py"))
    assert (py / "encodings" / "utf_8.py").exists() and (py / "venv").is_dir()
    assert [t for t in BUILDER_ONLY if (root / t).exists() or (root / t).is_symlink()] == []
    assert [t for t in PURGED_TOOLS if (root / t).exists() or (root / t).is_symlink()] == []
    assert [t for t in KEPT_TOOLS if not (usr / "bin" / t).exists()] == []
    assert not list(usr.glob("lib/*/libsystemd.so*")) and not list(usr.glob("lib/*/libkrb5.so*"))
    assert list(usr.glob("lib/*/libssl.so.3")) and list(usr.glob("lib/*/libnss_files.so.2"))
    status = (root / "var/lib/dpkg/status").read_text()  # the package database still tells the truth
    assert "Package: util-linux\n" not in status and "Package: python3.11\n" in status
    assert "Package: dpkg\n" not in status and "Package: python3-pip-whl\n" not in status


def test_the_trimmed_image_serves(onnx_image, run_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    from mlpack.runtime import run

    serving_image = onnx_image
    container = run(serving_image.ref, settings=run_settings, name=f"slim-serving-{os.getpid()}")
    try:
        wait_ready(container, timeout=120)
        rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
        answer = _post(f"{container.url}/predict", {"inputs": rows})
        assert answer, answer
        model = serving_image.config.blob["config"]["Labels"]["io.mlpack.model.name"]
        with urllib.request.urlopen(f"{container.url}/v2/models/{model}", timeout=10) as resp:
            meta = json.loads(resp.read())
        name, inp = meta["name"], meta["inputs"][0]
        infer = _post(f"{container.url}/v2/models/{name}/infer", {"inputs": [
            {"name": inp["name"], "shape": [2, 4], "datatype": inp["datatype"], "data": sum(rows, [])}]})
        assert infer["outputs"] and infer["model_name"] == name
    finally:
        container.remove(force=True)


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
        return json.loads(resp.read())
