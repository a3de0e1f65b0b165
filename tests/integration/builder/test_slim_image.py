"""What the size trims took out of the serving image, and proof that nothing it runs went with it.

In a real container of the session's sklearn serving image: every top-level
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
import time
import urllib.request
from pathlib import Path

import pytest

from mlpack.dockerfile import _stripelf as stripelf
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
# python3-tk, python3-gdbm, ...), and what mlpack.oci.base trims on purpose.
NOT_IN_DEBIAN = {"_msi", "msilib", "msvcrt", "nt", "ntpath_", "winreg", "winsound", "_winapi", "_overlapped",
                 "_scproxy", "_wmi", "_gdbm", "_dbm_gnu", "_tkinter", "_crypt_", "_aix_support_", "ossaudiodev_",
                 "_ssl_", "_uuid_", "_curses_panel_", "_ctypes_test"}
TRIMMED = {"lib2to3", "pydoc_data", "test", "_testbuffer", "_testcapi", "_testclinic", "_testimportmultiple",
           "_testinternalcapi", "_testmultiphase", "_xxtestfuzz", "xxlimited", "xxlimited_35", "_ctypes_test"}


def _run_to_exit(image_ref: str, command: list[str], settings: Settings) -> str:
    from mlpack.runtime import run

    container = run(image_ref, command=command, ports=(), settings=settings,
                    name=f"slim-imports-{os.getpid()}", detach=True)
    try:
        code = container.wait(timeout=600)
        logs = container.logs()
        assert code == 0, logs[-3000:]
        return logs
    finally:
        container.remove(force=True)


def test_every_module_of_the_image_imports(serving_image, run_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    logs = _run_to_exit(serving_image.ref, ["/opt/venv/bin/python", "-c", IMPORT_ALL], run_settings)
    [line] = [l for l in logs.splitlines() if l.startswith("MLPACK-IMPORTS ")]
    report = json.loads(line.split(" ", 1)[1])
    # the serving stack is there (so the walk really looked at site-packages)
    assert {"numpy", "onnxruntime", "uvloop", "fastapi", "uvicorn", "yaml"} <= set(report["top"]), report["top"]
    assert report["done"] > 400
    unexpected = {name: why for name, why in report["failed"].items()
                  if not (name.startswith("std:") and name[4:] in NOT_IN_DEBIAN | TRIMMED)}
    assert unexpected == {}


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
    usr = root / "usr"
    assert not (usr / "bin" / "perl").exists() and not list(usr.glob("lib/*/perl-base"))
    assert not list(usr.glob("lib/*/gconv/*.so"))
    py = next(usr.glob("lib/python3.*"))
    assert not list((py / "lib2to3").rglob("*.py")) and not list((py / "test").rglob("*.py"))
    assert (py / "encodings" / "utf_8.py").exists() and (py / "ensurepip").is_dir()


def test_the_trimmed_image_serves(serving_image, run_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    from mlpack.runtime import run

    container = run(serving_image.ref, settings=run_settings, name=f"slim-serving-{os.getpid()}")
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{container.url}/v2/health/ready", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or not container.running:
                pytest.fail(f"server never became ready; logs:\n{container.logs(tail=50)}")
            time.sleep(0.2)
        rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
        answer = _post(f"{container.url}/predict", {"inputs": rows})
        assert answer, answer
        model = serving_image.config["config"]["Labels"]["io.mlpack.model.name"]
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
