"""RenderOptions: validation, and how each option lands in the Dockerfile."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpack.dockerfile import RenderOptions, render, templates_dir
from mlpack.errors import RenderError
from tests.unit.dockerfile.dfparse import instructions, key_values, stages


def _runtime(ctx) -> list:
    return stages(instructions(ctx.dockerfile.read_text()))["runtime"]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, "python:3.11-slim"),
        ({"python": "3.12"}, "python:3.12-slim"),
        ({"base": "local"}, "localhost/mlpack/python:3.11"),
        ({"base": "local", "python": "3.12"}, "localhost/mlpack/python:3.12"),
        ({"base": "registry.example.com:5000/team/py:3.11-slim"}, "registry.example.com:5000/team/py:3.11-slim"),
        ({"base": "python@sha256:" + "a" * 64}, "python@sha256:" + "a" * 64),
    ],
)
def test_base_image(stub_bundle, tmp_path: Path, options: dict, expected: str) -> None:
    ctx = render(stub_bundle, RenderOptions(**options), out_dir=tmp_path / "ctx")
    assert ctx.base_image == expected
    first = instructions(ctx.dockerfile.read_text())[0]
    assert key_values(first.args) == {"MLPACK_BASE": expected}


@pytest.mark.parametrize(
    ("options", "build_args", "builder", "runtime"),
    [
        ({"base": "local"}, {}, "localhost/mlpack/python:3.11", "localhost/mlpack/python:3.11-runtime"),
        ({"base": "local", "python": "3.12"}, {}, "localhost/mlpack/python:3.12",
         "localhost/mlpack/python:3.12-runtime"),
        ({}, {}, "python:3.11-slim", "python:3.11-slim"),
        # a registry base is one image for both stages, so overriding MLPACK_BASE moves both
        ({}, {"MLPACK_BASE": "python:3.11-bookworm"}, "python:3.11-bookworm", "python:3.11-bookworm"),
        ({"base": "registry.example.com/team/py:3.11"}, {}, "registry.example.com/team/py:3.11",
         "registry.example.com/team/py:3.11"),
    ],
)
def test_the_runtime_stage_starts_from_the_bases_runtime_image(stub_bundle, tmp_path: Path, options: dict,
                                                                build_args: dict, builder: str, runtime: str) -> None:
    """The offline base's runtime stage starts from its runtime image (no pip wheels, no dpkg);
    mlpack's own builder reads the FROM lines so."""
    from mlpack.builder.parser import parse
    from mlpack.builder.stages import plan

    ctx = render(stub_bundle, RenderOptions(**options), out_dir=tmp_path / "ctx")
    built = plan(parse(ctx.dockerfile.read_text()), build_args=build_args, target=None)
    assert {s.name: s.base for s in built.all_stages} == {"builder": builder, "runtime": runtime}
    labels = dict(key_values(next(i for i in _runtime(ctx) if i.cmd == "LABEL").args))
    assert labels["org.opencontainers.image.base.name"] == (runtime if not build_args else "python:3.11-slim")


def test_python_defaults_to_the_bundles(stub_bundle, tmp_path: Path) -> None:
    stub_bundle.python_version = "3.12.4"
    assert render(stub_bundle, out_dir=tmp_path / "ctx").base_image == "python:3.12-slim"


def test_port_uid_env_labels(stub_bundle, tmp_path: Path) -> None:
    options = RenderOptions(port=9000, uid=4242, env={"OMP_NUM_THREADS": "1", "GREETING": "hello world"},
                            labels={"team": "ml", "org.opencontainers.image.source": "https://example.com/x"},
                            version="1.2.3", revision="abc123")
    ctx = render(stub_bundle, options, out_dir=tmp_path / "ctx")
    runtime = _runtime(ctx)
    by_cmd = {i.cmd: i for i in runtime}
    assert by_cmd["USER"].args == "4242:4242"
    assert by_cmd["EXPOSE"].args == "9000 8081"  # HTTP, then gRPC
    env: dict[str, str] = {}
    labels: dict[str, str] = {}
    for i in runtime:
        (env if i.cmd == "ENV" else labels if i.cmd == "LABEL" else {}).update(
            key_values(i.args) if i.cmd in ("ENV", "LABEL") else {})
    assert env["MLPACK_PORT"] == "9000"
    assert env["OMP_NUM_THREADS"] == "1" and env["GREETING"] == "hello world"
    assert labels["team"] == "ml"
    assert labels["org.opencontainers.image.source"] == "https://example.com/x"
    assert labels["org.opencontainers.image.version"] == "1.2.3"
    assert labels["org.opencontainers.image.revision"] == "abc123"
    assert "mlpack:x:4242:4242:" in ctx.dockerfile.read_text()


def test_pip_and_apt_extras(stub_bundle, tmp_path: Path) -> None:
    ctx = render(stub_bundle, RenderOptions(pip=("pandas==2.2.2", 'rich ; python_version >= "3.8"'),
                                           apt=("libgomp1", "tzdata=2024a-0+deb12u1")),
                 out_dir=tmp_path / "ctx")
    by_stage = stages(instructions(ctx.dockerfile.read_text()))
    install = next(i for i in by_stage["builder"] if i.cmd == "RUN" and "requirements.lock" in i.args)
    assert install.args.count(" pandas==2.2.2 ") == 2  # the uv and the pip branch
    assert """'rich ; python_version >= "3.8"'""" in install.args
    runtime = by_stage["runtime"]
    apt = [i for i in runtime if i.cmd == "RUN"]
    assert len(apt) == 1 and "apt-get" in apt[0].args and "libgomp1 tzdata=2024a-0+deb12u1" in apt[0].args
    assert "--mount=type=secret,id=ca-bundle" in apt[0].flags
    assert "rm -rf /var/lib/apt/lists/*" in apt[0].args
    # apt runs right after FROM, before the dependency layers, and adds the
    # user itself (so users that packages add are not overwritten).
    assert runtime.index(apt[0]) == 0
    assert "mlpack:x:10001:10001:" in apt[0].args
    assert [i.args.split()[1] for i in runtime if i.cmd == "COPY"] == ["/opt/venv", "/opt/mlpack/app", "/opt/mlpack/bundle/"]


def test_template_dir_and_block_overrides(stub_bundle, tmp_path: Path) -> None:
    mine = tmp_path / "templates"
    mine.mkdir()
    (mine / "cpu.Dockerfile.j2").write_text(
        '{% extends "base.Dockerfile.j2" %}\n'
        "{% block healthcheck %}\nHEALTHCHECK NONE\n{% endblock %}\n"
    )
    ctx = render(stub_bundle, RenderOptions(template_dir=mine), out_dir=tmp_path / "a")
    assert {i.cmd: i.args for i in _runtime(ctx)}["HEALTHCHECK"] == "NONE"

    ctx = render(stub_bundle, RenderOptions(blocks={"runtime_env_extra": "ENV EXTRA={{ port|dv }}\n"}),
                 out_dir=tmp_path / "b")
    assert any(i.cmd == "ENV" and key_values(i.args) == {"EXTRA": "8080"} for i in _runtime(ctx))

    with pytest.raises(RenderError, match="no block"):
        render(stub_bundle, RenderOptions(blocks={"nope": "RUN true\n"}), out_dir=tmp_path / "c")


def test_custom_template_errors_are_render_errors(stub_bundle, tmp_path: Path) -> None:
    mine = tmp_path / "templates"
    mine.mkdir()
    (mine / "bad.j2").write_text("FROM {{ not_provided }}\n")
    (mine / "unsafe.j2").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}\n")
    with pytest.raises(RenderError, match="not_provided"):
        render(stub_bundle, RenderOptions(template_dir=mine, template="bad.j2"), out_dir=tmp_path / "a")
    with pytest.raises(RenderError, match="unsafe"):
        render(stub_bundle, RenderOptions(template_dir=mine, template="unsafe.j2"), out_dir=tmp_path / "b")
    with pytest.raises(RenderError, match="not found"):
        render(stub_bundle, RenderOptions(template="missing.j2"), out_dir=tmp_path / "c")


@pytest.mark.parametrize(
    "bad",
    [
        {"uid": 0},
        {"uid": -1},
        {"port": 0},
        {"port": 70000},
        {"port": "80; rm"},
        {"python": "3"},
        {"python": "3.11; rm"},
        {"base": "python:3.11-slim\nRUN touch /tmp/pwned"},
        {"base": "not a ref"},
        {"base": "$(touch /tmp/pwned)"},
        {"apt": ("libgomp1; touch /tmp/pwned",)},
        {"apt": ("$(touch /tmp/pwned)",)},
        {"apt": "libgomp1"},
        {"pip": ("-r /etc/passwd",)},
        {"pip": ("--index-url=http://evil",)},
        {"pip": ("ok\nRUN touch /tmp/pwned",)},
        {"env": {"A B": "x"}},
        {"env": {"A=B": "x"}},
        {"env": {"A": "x\nRUN touch /tmp/pwned"}},
        {"env": {"PATH": "/tmp"}},
        {"env": {"MLPACK_BUNDLE": "/tmp"}},
        {"labels": {"a b": "x"}},
        {"labels": {"a": "x\rRUN y"}},
        {"blocks": {"Bad-Name": "x"}},
        {"version": "1\n2"},
        {"source_date_epoch": -5},
    ],
)
def test_invalid_options_are_refused(bad: dict) -> None:
    with pytest.raises(RenderError):
        RenderOptions(**bad)


def test_reserved_labels_are_refused(stub_bundle, tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="reserved"):
        render(stub_bundle, RenderOptions(labels={"io.mlpack.model.sha256": "0" * 64}), out_dir=tmp_path / "c")


def test_templates_dir_holds_the_templates() -> None:
    root = templates_dir()
    for name in ("base.Dockerfile.j2", "cpu.Dockerfile.j2", "gpu.Dockerfile.j2", "dockerignore.j2"):
        assert (root / name).is_file(), name


def test_the_base_is_chosen_in_one_place() -> None:
    from mlpack.dockerfile.options import choose_base
    from mlpack.oci.base import BASE_REF

    seen: list[str] = []

    def present(*refs: str):  # type: ignore[no-untyped-def]
        def check(ref: str) -> bool:
            seen.append(ref)
            return ref in refs
        return check

    # explicit choices are taken as they are, without looking in the store
    assert choose_base("registry.example/py:3.11", "3.11", present()) == "registry.example/py:3.11"
    assert choose_base("local", "3.12", present()) == "localhost/mlpack/python:3.12"
    assert seen == []
    # no store to look in (a Dockerfile rendered for any builder): the registry's base
    assert choose_base(None, "3.11") == "python:3.11-slim" == RenderOptions().base_image("3.11")
    # a front door that knows the store: the registry's base when present, else the offline one
    assert choose_base(None, "3.11", present("python:3.11-slim")) == "python:3.11-slim"
    assert choose_base(None, "3.11", present()) == BASE_REF == "localhost/mlpack/python:3.11"
    assert RenderOptions(base="local").base_image("3.11") == BASE_REF
