"""The CLI imports only the module of the command it runs, and that table matches the modules."""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
from pathlib import Path

from mlpack import cli

ROOT = Path(__file__).resolve().parents[2]


def test_every_command_maps_to_the_module_that_registers_it() -> None:
    registered = {}
    for name in cli._COMMAND_MODULES:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(name).register(sub)
        registered.update(dict.fromkeys(sub.choices, name))
    assert registered == cli._COMMANDS


def test_choosing_the_module() -> None:
    assert cli._command_module(["run", "-d", "img"]) == "mlpack.cli.containers"
    assert cli._command_module(["--debug", "push", "a", "b"]) == "mlpack.cli.images"
    assert cli._command_module(["--help"]) is None and cli._command_module([]) is None
    assert cli._command_module(["nonsense"]) is None


def _modules_after(*argv: str) -> set[str]:
    code = ("import sys, runpy; sys.argv = ['mlpack', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('mlpack', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print(' '.join(m for m in sys.modules if m.startswith('mlpack')), file=sys.stderr)")
    env = dict(os.environ, PYTHONPATH=str(ROOT), MLPACK_HOME="/nonexistent/mlpack-home")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, timeout=60)
    return set(proc.stderr.strip().splitlines()[-1].split())


def test_run_imports_only_the_containers_commands() -> None:
    loaded = _modules_after("run", "--help")
    assert "mlpack.cli.containers" in loaded
    assert not loaded & {"mlpack.cli.export", "mlpack.cli.images", "mlpack.cli.build", "mlpack.cli.capture",
                         "mlpack.cli.render", "mlpack.kube", "mlpack.builder", "mlpack.dockerfile"}, loaded


def test_help_and_unknown_commands_still_list_every_command() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "mlpack", "--help"], capture_output=True, text=True, env=env).stdout
    assert all(c in out for c in ("build", "run", "export", "push"))
    bad = subprocess.run([sys.executable, "-m", "mlpack", "frobnicate"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr and "export" in bad.stderr


def _sub_help(parser: argparse.ArgumentParser, command: str) -> str:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command].format_help()


def test_one_command_parser_is_the_full_parsers_command(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`mlpack run ...` builds only run's parser: for every command it is the same parser
    (same help, same defaults) as in the parser of every command, and parses the same."""
    monkeypatch.setenv("COLUMNS", "100")
    full = cli.build_parser()
    for command, module in cli._COMMANDS.items():
        one = cli.build_parser((module,), only=command)
        assert list(next(a for a in one._actions if isinstance(a, argparse._SubParsersAction)).choices) == [command]
        assert _sub_help(one, command) == _sub_help(full, command), command
    argv = ["run", "-d", "-p", "8080:80", "--cpus", "0.5", "-e", "A=1", "img", "cmd", "--x"]
    assert vars(cli.build_parser(("mlpack.cli.containers",), only="run").parse_args(argv)) == \
        vars(full.parse_args(argv))


# What `mlpack run` must not load before the runtime runs (each costs a CLI start milliseconds of
# CPU, which a container's start waits for): the machinery of typing and dataclasses (inspect,
# ast, dis, tokenize), subprocess (the forked monitor loads it after it has started the runtime),
# copy, OpenSSL (hashlib: the few small blobs read are hashed by CPython's own sha256), shutil
# with its compressors (argparse asks it for the terminal's width), socket with its enums and
# selectors (the listeners are of its C type), and any third-party or other stage's module.
HEAVY = {"typing", "dataclasses", "inspect", "ast", "dis", "tokenize", "subprocess", "copy", "tempfile",
         "hashlib", "_hashlib", "shutil", "bz2", "lzma", "zlib", "socket", "selectors",
         "datetime", "yaml", "numpy", "starlette", "fastapi", "pydantic", "onnxruntime", "jinja2",
         "mlpack.kube", "mlpack.builder", "mlpack.dockerfile", "mlpack.bundle", "mlpack.server", "mlpack.api",
         "mlpack.oci.unpack", "mlpack.runtime.sandbox", "mlpack.runtime.monitor"}


def test_the_run_path_imports_no_heavy_module(tmp_path: Path) -> None:
    """`mlpack run -d -p ... IMAGE` up to the store lookup (an empty home here: no root needed), plus
    every module it imports later before the runtime's exec, and Container (printed after it)."""
    code = ("import sys\nfrom mlpack.cli import main\n"
            "status = main(['run', '-d', '-p', '8080:80', '--cpus', '0.5', 'localhost/absent/image:1'])\n"
            "import mlpack.runtime.create, mlpack.oci.layercache, mlpack.oci.layout, mlpack.runtime.container\n"
            "print(status, ' '.join(sorted(sys.modules)))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}  # coverage's .pth imports much
    env.update(PYTHONPATH=str(ROOT), MLPACK_HOME=str(tmp_path / "home"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    status, loaded = proc.stdout.split(" ", 1)
    assert status == "1" and "is not in the store" in proc.stderr, proc.stderr
    assert "mlpack.runtime.create" in loaded.split()
    assert not HEAVY & set(loaded.split()), sorted(HEAVY & set(loaded.split()))


def test_one_command_takes_a_command_by_its_alias() -> None:
    parent = argparse.ArgumentParser()
    one = cli._OneCommand(parent.add_subparsers(dest="command"), "ls")
    one.add_parser("list", aliases=["ls"]).add_argument("-a", action="store_true")
    one.add_parser("other").add_argument("--ignored")  # never built
    assert vars(parent.parse_args(["ls", "-a"])) == {"command": "ls", "a": True}


# What a model-only `mlpack build` (every step cached but the bundle's COPY) must not load: its CLI
# process is the whole cost of a rebuild (0.1 s at most). The machinery of typing and dataclasses,
# tempfile/random, threads (a layer under one chunk is written in the caller's thread), gzip and
# isal.igzip (the builder writes the gzip member itself), and any other stage's module.
REBUILD_HEAVY = {"typing", "dataclasses", "inspect", "ast", "dis", "tokenize", "tempfile", "random", "threading",
                 "queue", "gzip", "isal.igzip", "datetime", "subprocess", "yaml", "numpy", "jinja2", "email",
                 "mlpack.api", "mlpack.bundle", "mlpack.dockerfile", "mlpack.server", "mlpack.kube",
                 "mlpack.builder.check", "mlpack.builder.depsmode", "mlpack.runtime.sandbox",
                 "mlpack.runtime.mounts", "mlpack.oci.unpack", "mlpack.oci.registry", "mlpack.oci.base",
                 "mlpack.oci.multiarch"}

# the rendered shape: the offline base for the builder stage, its runtime image for the runtime stage
REBUILD_DOCKERFILE = """\
FROM localhost/mlpack/python:3.11 AS builder
ARG PIP_INDEX_URL
COPY requirements.lock /tmp/mlpack/requirements.lock
COPY --from=wheels . /tmp/mlpack/wheelhouse/
COPY app/ /opt/mlpack/app/
WORKDIR /opt/mlpack

FROM localhost/mlpack/python:3.11-runtime
ENV PATH=/opt/venv/bin:/usr/bin PYTHONDONTWRITEBYTECODE=1
LABEL org.opencontainers.image.title=iris
COPY --from=builder /opt/mlpack/app /opt/mlpack/app
COPY bundle/ /opt/mlpack/bundle/
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=5s CMD ["/opt/venv/bin/python", "-m", "probe"]
CMD ["/opt/venv/bin/python", "-m", "server"]
"""


def _store_a_base(store, work: Path) -> None:  # type: ignore[no-untyped-def]
    """A two-layer base as `mlpack base bootstrap` labels one (its runtime image not stored)."""
    from mlpack.oci.base import BASE_REF, RECIPE_LABEL, recipe
    from mlpack.oci.layer import LayerOptions, write_dir

    store.init()
    layers = []
    for name in ("runtime", "tools"):
        (work / name / "etc").mkdir(parents=True)
        (work / name / "etc" / name).write_text(name)
        layers.append(write_dir(store, work / name, LayerOptions(source_date_epoch=0)))
    store.put_image({"architecture": "amd64", "os": "linux", "config": {"Labels": {RECIPE_LABEL: recipe()}}},
                    layers, ref=BASE_REF)


def test_a_model_only_rebuild_imports_no_heavy_module(tmp_path: Path) -> None:
    """`mlpack build -q --build-context wheels=DIR -t TAG CTX` after only the model changed (the shape
    of a rendered context, without RUN: no root needed to build it, root to build here rather than in
    the user's namespace): every step cached but the bundle's, and nothing heavy imported."""
    from mlpack.runtime.idmap import host_uid
    from mlpack.runtime.rootless import is_rootless

    if is_rootless() or host_uid() != 0:
        import pytest

        pytest.skip("an ordinary user's build runs in its user namespace, and looks for its cgroup delegation")
    from mlpack.builder import build
    from mlpack.oci.layout import Store
    from mlpack.settings import Settings

    ctx, wheels, home = tmp_path / "ctx", tmp_path / "wheels", tmp_path / "home"
    for rel, text in {"Dockerfile": REBUILD_DOCKERFILE, "requirements.lock": "numpy==2.0\n", "app/main.py": "x = 1\n",
                      "bundle/mlpack.yaml": "name: iris\n", "bundle/model.onnx": "model 1"}.items():
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        (ctx / rel).write_text(text)
    wheels.mkdir()
    (wheels / "numpy-2.0-py3-none-any.whl").write_bytes(b"wheel")
    settings = Settings.from_env({"MLPACK_HOME": str(home)})
    _store_a_base(Store(settings.store_dir), tmp_path / "base")  # its runtime image made by the first build
    first = build(ctx, settings=settings, tag="localhost/t/iris:1",
                  build_contexts=[f"wheels={wheels}"], source_date_epoch=1_700_000_000)
    (ctx / "bundle" / "model.onnx").write_text("model 2")
    code = ("import sys\nfrom mlpack.cli import main\n"
            f"status = main(['build', '-q', '--build-context', 'wheels={wheels}', '-t', 'localhost/t/iris:1', "
            f"'{ctx}'])\nprint(status, ' '.join(sorted(sys.modules)))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}  # coverage's .pth imports much
    env.update(PYTHONPATH=str(ROOT), MLPACK_HOME=str(home), SOURCE_DATE_EPOCH="1700000000")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, cwd="/")
    assert proc.returncode == 0, proc.stderr
    digest, (status, loaded) = proc.stdout.splitlines()[0], proc.stdout.splitlines()[-1].split(" ", 1)
    assert status == "0" and digest.startswith("sha256:") and digest != first.digest
    layers = [layer["digest"] for layer in Store(settings.store_dir).resolve("localhost/t/iris:1").layers]
    assert layers[:-1] == [layer["digest"] for layer in first.layers][:-1] and layers[-1] != first.layers[-1]["digest"]
    base = Store(settings.store_dir).resolve("localhost/mlpack/python:3.11")
    assert layers[0] == base.layers[0]["digest"] and base.layers[1]["digest"] not in layers  # the runtime layer only
    assert not REBUILD_HEAVY & set(loaded.split()), sorted(REBUILD_HEAVY & set(loaded.split()))
