"""Structure of the rendered Dockerfile and context, CPU and GPU."""

from __future__ import annotations

import ast
import json
import stat
from pathlib import Path

import pytest

from mlpack.dockerfile import BuildContext, RenderOptions, render
from mlpack.errors import RenderError
from tests.unit.dockerfile.dfparse import exec_form, instructions, key_values, stages


def _render(bundle, tmp_path: Path, **options) -> tuple[BuildContext, list]:
    ctx = render(bundle, RenderOptions(source_date_epoch=1700000000, **options), out_dir=tmp_path / "ctx")
    return ctx, instructions(ctx.dockerfile.read_text())


def _env(instrs) -> dict[str, str]:
    env: dict[str, str] = {}
    for i in instrs:
        if i.cmd == "ENV":
            env.update(key_values(i.args))
    return env


def _labels(instrs) -> dict[str, str]:
    labels: dict[str, str] = {}
    for i in instrs:
        if i.cmd == "LABEL":
            labels.update(key_values(i.args))
    return labels


def test_cpu_dockerfile_has_two_stages_and_a_hardened_runtime(stub_bundle, tmp_path: Path) -> None:
    ctx, instrs = _render(stub_bundle, tmp_path)
    assert ctx.base_image == "python:3.11-slim"
    assert instrs[0].cmd == "ARG" and key_values(instrs[0].args) == {"MLPACK_BASE": "python:3.11-slim"}
    by_stage = stages(instrs)
    assert list(by_stage) == ["builder", "runtime"]
    builder, runtime = by_stage["builder"], by_stage["runtime"]

    install = next(i for i in builder if i.cmd == "RUN" and "requirements.lock" in i.args)
    assert "--mount=type=cache,target=/root/.cache/pip,sharing=locked" in install.flags
    assert "--mount=type=secret,id=ca-bundle" in install.flags
    assert "python3 -m venv" in install.args and "command -v uv" in install.args
    assert "PIP_CERT=/run/secrets/ca-bundle" in install.args and "SSL_CERT_FILE=/run/secrets/ca-bundle" in install.args
    assert "/usr/local" not in install.args  # the base's python is found on PATH
    strip = next(i for i in builder if i.cmd == "RUN" and "compilepy.py" in i.args and "$sp" in i.args)
    assert '/opt/venv/bin/python -I /tmp/mlpack/compilepy.py "$sp"' in strip.args  # unchecked-hash (test_compilepy)
    assert "rm -rf" in strip.args and "pip setuptools pkg_resources _distutils_hack wheel" in strip.args

    # The runtime stage runs nothing: it copies, in the order things change.
    assert [i.cmd for i in runtime if i.cmd == "RUN"] == []
    copies = [i.args for i in runtime if i.cmd == "COPY"]
    assert copies == [
        "--from=builder /etc/passwd /etc/group /etc/",
        "--from=builder /opt/venv /opt/venv",
        "--from=builder /opt/mlpack/app /opt/mlpack/app",
        "bundle/ /opt/mlpack/bundle/",
    ]
    last_copy = max(n for n, i in enumerate(runtime) if i.cmd == "COPY")
    assert all(i.cmd not in {"RUN", "COPY", "ADD", "WORKDIR"} for i in runtime[last_copy + 1:])

    cmds = [i.cmd for i in runtime]
    for needed in ("USER", "EXPOSE", "HEALTHCHECK", "STOPSIGNAL", "ENTRYPOINT"):
        assert cmds.count(needed) == 1, needed
    runtime_by_cmd = {i.cmd: i for i in runtime}
    assert runtime_by_cmd["USER"].args == "10001:10001"
    assert runtime_by_cmd["EXPOSE"].args == "8080 8081"  # HTTP, then gRPC
    assert runtime_by_cmd["STOPSIGNAL"].args == "SIGTERM"
    assert exec_form(runtime_by_cmd["ENTRYPOINT"].args) == ["/opt/venv/bin/python", "-m", "mlpack.server"]
    health = runtime_by_cmd["HEALTHCHECK"].args
    assert health.split("CMD", 1)[0].split() == ["--interval=30s", "--timeout=5s", "--start-period=60s", "--retries=3"]
    probe = exec_form(health.split("CMD", 1)[1].strip())
    assert probe[0] == "/opt/venv/bin/python" and "/v2/health/ready" in probe[2] and "curl" not in health

    env = _env(runtime)
    assert env["MLPACK_BUNDLE"] == "/opt/mlpack/bundle" and env["MLPACK_PORT"] == "8080"
    assert env["PYTHONPATH"] == "/opt/mlpack/app" and env["PATH"].startswith("/opt/venv/bin:")
    labels = _labels(runtime)
    assert labels["org.opencontainers.image.title"] == "iris-lr"
    assert labels["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"
    assert labels["io.mlpack.model.sha256"] == stub_bundle.model_sha256
    assert labels["io.mlpack.model.framework"] == "sklearn"
    assert json.loads(labels["io.mlpack.parity"]) == stub_bundle.parity
    assert labels["io.mlpack.gpu"] == "false"

    user_run = next(i for i in builder if i.cmd == "RUN" and "/etc/passwd" in i.args)
    assert "mlpack:x:10001:10001:" in user_run.args


def test_context_is_self_contained_and_readable(stub_bundle, tmp_path: Path) -> None:
    ctx, _ = _render(stub_bundle, tmp_path)
    root = ctx.path
    assert (root / "requirements.lock").read_text().splitlines() == stub_bundle.requirements
    assert (root / "bundle" / "model.onnx").read_bytes() == stub_bundle.model_path.read_bytes()
    assert stat.S_IMODE((root / "bundle" / "model.onnx").stat().st_mode) == 0o644
    assert (root / ".dockerignore").is_file()
    app = root / "app" / "mlpack"
    for needed in ("__init__.py", "errors.py", "types.py", "bundle/__init__.py", "server/__init__.py"):
        assert (app / needed).is_file(), needed
    # Only the serving subset: no build, CLI or notebook code in the image.
    for absent in ("cli", "builder", "dockerfile", "oci", "runtime", "kube", "ipython", "api.py", "__main__.py"):
        assert not (app / absent).exists(), absent
    assert not list(app.rglob("__pycache__"))
    # Every mlpack module the subset imports at module level is in the subset.
    for path in app.rglob("*.py"):
        for module in _runtime_imports(ast.parse(path.read_text())):
            top = module.split(".")[1]
            assert (app / top).is_dir() or (app / f"{top}.py").is_file(), f"{path}: {module}"


def _runtime_imports(node: ast.AST) -> list[str]:
    """mlpack.* modules imported at module level (not in functions, which may
    lazily reach notebook-only code, nor under ``if TYPE_CHECKING:``)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return []
    if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
        return [m for child in node.orelse for m in _runtime_imports(child)]
    found = []
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mlpack."):
        found.append(node.module)
    elif isinstance(node, ast.Import):
        found.extend(a.name for a in node.names if a.name.startswith("mlpack."))
    for child in ast.iter_child_nodes(node):
        found.extend(_runtime_imports(child))
    return found


def test_gpu_variant_swaps_onnxruntime_and_keeps_the_slim_base(stub_bundle, tmp_path: Path) -> None:
    ctx, instrs = _render(stub_bundle, tmp_path, gpu=True)
    lock = (ctx.path / "requirements.lock").read_text().splitlines()
    assert "onnxruntime-gpu[cuda,cudnn]<=1.32.0" in lock
    assert not [line for line in lock if line.startswith("onnxruntime==")]
    assert ctx.base_image == "python:3.11-slim"
    text = ctx.dockerfile.read_text()
    assert "nvidia/cuda" not in text and "cuda-toolkit" not in text  # no second CUDA
    by_stage = stages(instrs)
    strip = next(i for i in by_stage["builder"] if i.cmd == "RUN" and "compilepy.py" in i.args and "$sp" in i.args)
    assert "/opt/venv/cuda-libs" in strip.args and '"$sp/nvidia"' in strip.args
    env = _env(by_stage["runtime"])
    assert env["LD_LIBRARY_PATH"] == "/opt/venv/cuda-libs"
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all" and env["NVIDIA_DRIVER_CAPABILITIES"] == "compute,utility"
    assert _labels(by_stage["runtime"])["io.mlpack.gpu"] == "true"
    # Same hardened runtime shape as the CPU variant.
    assert [i.cmd for i in by_stage["runtime"] if i.cmd == "RUN"] == []
    assert [i.cmd for i in by_stage["runtime"]][-1] == "ENTRYPOINT"


def test_gpu_variant_adds_onnxruntime_gpu_when_the_lock_lacks_it(stub_bundle, tmp_path: Path) -> None:
    stub_bundle.requirements = [r for r in stub_bundle.requirements if not r.startswith("onnxruntime")]
    ctx, _ = _render(stub_bundle, tmp_path, gpu=True)
    assert "onnxruntime-gpu[cuda,cudnn]" in (ctx.path / "requirements.lock").read_text().splitlines()


def test_render_is_deterministic(stub_bundle, tmp_path: Path) -> None:
    a = render(stub_bundle, RenderOptions(source_date_epoch=5), out_dir=tmp_path / "a").dockerfile.read_text()
    b = render(stub_bundle, RenderOptions(source_date_epoch=5), out_dir=tmp_path / "b").dockerfile.read_text()
    assert a == b


def test_source_date_epoch_from_the_environment(stub_bundle, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    ctx = render(stub_bundle, RenderOptions(), out_dir=tmp_path / "ctx")
    labels = _labels(instructions(ctx.dockerfile.read_text()))
    assert labels["org.opencontainers.image.created"] == "1970-01-01T00:00:00Z"


def test_out_dir_must_be_empty(stub_bundle, tmp_path: Path) -> None:
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "old").write_text("x")
    with pytest.raises(RenderError, match="not empty"):
        render(stub_bundle, out_dir=tmp_path / "ctx")


def test_rejects_what_is_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="has no"):
        render(object(), out_dir=tmp_path / "ctx")


def test_builder_parser_reads_the_same_instructions(stub_bundle, tmp_path: Path) -> None:
    parser = pytest.importorskip("mlpack.builder.parser")
    for gpu in (False, True):
        ctx, instrs = _render(stub_bundle, tmp_path / str(gpu), gpu=gpu, apt=("libgomp1",), env={"A": "b"})
        parsed = parser.parse(ctx.dockerfile.read_text())
        assert [i.cmd for i in parsed.instructions] == [i.cmd for i in instrs]
        entry = [i for i in parsed.instructions if i.cmd == "ENTRYPOINT"][0]
        assert entry.json == ("/opt/venv/bin/python", "-m", "mlpack.server")


def test_the_serving_user_and_the_serving_codes_bytecode_are_one_step(stub_bundle, tmp_path: Path) -> None:
    """The builder stage runs no step for two lines of /etc/passwd alone: the user is made in the
    step that compiles the serving code, after the code is copied (each RUN costs a sandbox)."""
    _, instrs = _render(stub_bundle, tmp_path)
    builder = instrs[:next(k for k, i in enumerate(instrs) if i.cmd == "FROM" and "AS runtime" in i.args)]
    touching_app = [k for k, i in enumerate(builder) if "/opt/mlpack/app" in i.args]
    [copy, user] = touching_app
    assert builder[copy].cmd == "COPY" and builder[user].cmd == "RUN"
    assert "mlpack:x:10001:10001:" in builder[user].args
    assert "compileall -q --invalidation-mode unchecked-hash /opt/mlpack/app" in builder[user].args
