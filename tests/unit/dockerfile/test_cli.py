"""``mlpack render``: flags map onto RenderOptions."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpack.cli import build_parser, main
from mlpack.cli.render import options_from_args
from mlpack.dockerfile import RenderOptions
from tests.unit.dockerfile.dfparse import instructions, key_values, stages


def test_flags_map_onto_render_options(tmp_path: Path) -> None:
    args = build_parser().parse_args([
        "render", "bundle", "-o", "out", "--base", "local", "--python", "3.12", "--gpu",
        "--pip", "pandas==2.2.2", "--pip", "rich", "--apt", "libgomp1",
        "--env", "A=1", "--env", "B=x=y", "--label", "team=ml", "--port", "9000", "--uid", "4242",
        "--template-dir", str(tmp_path), "--template", "cpu.Dockerfile.j2",
        "--image-version", "1.0", "--source", "https://example.com/r", "--revision", "abc",
    ])
    assert options_from_args(args) == RenderOptions(
        base="local", python="3.12", gpu=True, pip=("pandas==2.2.2", "rich"), apt=("libgomp1",),
        env={"A": "1", "B": "x=y"}, labels={"team": "ml"}, port=9000, uid=4242,
        template_dir=tmp_path, template="cpu.Dockerfile.j2",
        version="1.0", source="https://example.com/r", revision="abc",
    )
    defaults = options_from_args(build_parser().parse_args(["render", "b", "-o", "o"]))
    assert defaults == RenderOptions()


def test_render_command_writes_the_context(sklearn_bundle, tmp_path: Path, capsys) -> None:
    """A real captured bundle, loaded (and verified) from disk by Bundle.load."""
    out = tmp_path / "ctx"
    status = main(["render", str(sklearn_bundle.path), "-o", str(out), "--base", "local",
                   "--env", "GREETING=hi $USER", "--port", "9000"])
    assert status == 0
    assert "localhost/mlpack/python:3.11" in capsys.readouterr().out
    runtime = stages(instructions((out / "Dockerfile").read_text()))["runtime"]
    env = {k: v for i in runtime if i.cmd == "ENV" for k, v in key_values(i.args).items()}
    labels = {k: v for i in runtime if i.cmd == "LABEL" for k, v in key_values(i.args).items()}
    assert env["GREETING"] == "hi $USER" and env["MLPACK_PORT"] == "9000"
    assert labels["io.mlpack.model.sha256"] == sklearn_bundle.model_sha256
    assert (out / "requirements.lock").read_text().splitlines() == sklearn_bundle.requirements
    from mlpack.bundle import Bundle

    copied = Bundle.load(out / "bundle")  # the copy still verifies
    assert copied.model_sha256 == sklearn_bundle.model_sha256


@pytest.mark.parametrize("argv", [["--env", "NOEQUALS"], ["--uid", "0"], ["--apt", "a;b"], ["--label", "=x"]])
def test_bad_flags_give_one_line_errors(tmp_path: Path, capsys, argv: list[str]) -> None:
    status = main(["render", str(tmp_path), "-o", str(tmp_path / "out"), *argv])
    assert status == 1
    err = capsys.readouterr().err
    assert err.startswith("mlpack render: error:") and "Traceback" not in err


def test_render_deps_context_needs_the_base_in_the_store(sklearn_bundle, tmp_path: Path, capsys,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """--deps context reads the base image's interpreter and users: an empty store says what to do."""
    monkeypatch.setenv("MLPACK_HOME", str(tmp_path / "home"))
    status = main(["render", str(sklearn_bundle.path), "-o", str(tmp_path / "ctx"), "--base", "local",
                   "--deps", "context"])
    assert status == 1
    err = capsys.readouterr().err
    assert "localhost/mlpack/python:3.11 is not in the store" in err and "mlpack base bootstrap" in err
