"""The one image reference type: docker's parsing, normalisation and short forms."""

from __future__ import annotations

import pytest

from mlpack.errors import ConfigError
from mlpack.reference import Reference, names_registry, parse

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repo", "tag", "digest"),
    [
        ("python", "docker.io", "library/python", "latest", None),
        ("python:3.11", "docker.io", "library/python", "3.11", None),
        ("user/app:v1", "docker.io", "user/app", "v1", None),
        ("index.docker.io/library/python", "docker.io", "library/python", "latest", None),
        ("localhost/mlpack/python:3.11", "localhost", "mlpack/python", "3.11", None),
        ("127.0.0.1:5000/a/b:c", "127.0.0.1:5000", "a/b", "c", None),
        ("ghcr.io/o/r@" + D, "ghcr.io", "o/r", None, D),
        ("reg.example:443/x:t@" + D, "reg.example:443", "x", "t", D),
    ],
)
def test_parse(text: str, registry: str, repo: str, tag: str | None, digest: str | None) -> None:
    ref = parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repo, tag, digest)
    assert parse(str(ref)) == ref


def test_familiar_and_reference() -> None:
    assert parse("python:3.11").familiar() == "python:3.11"
    assert str(parse("python:3.11")) == "docker.io/library/python:3.11"
    assert parse("x@" + D).reference == D
    assert parse("x").reference == "latest"


@pytest.mark.parametrize("text", ["", "UPPER/case", "a//b", "a:b:c/d", "x@sha256:12", "a/../b", " x", "x:" + "t" * 200])
def test_rejects(text: str) -> None:
    with pytest.raises(ConfigError):
        parse(text)


def test_short_forms_drop_only_what_docker_implies() -> None:
    assert parse("python:3.11").path == "python"
    assert parse("python:3.11").familiar_name == "python"
    assert parse("docker.io/team/app").familiar_name == "team/app"
    assert parse("localhost/mlpack/python:3.11").familiar_name == "localhost/mlpack/python"
    assert parse("127.0.0.1:5000/library/x").path == "library/x"  # only docker.io has library/


def test_default_tag_none_keeps_an_untagged_reference_untagged() -> None:
    assert parse("reg.example/a", default_tag=None).tag is None
    assert parse("reg.example/a", default_tag=None).reference == "latest"
    assert parse("reg.example/a@" + D, default_tag=None) == Reference("reg.example", "a", None, D)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("team/model", False), ("model", False), ("reg.example/m", True), ("h:5000/m", True), ("localhost/m", True),
     ("reg.example", False)],
)
def test_names_registry(text: str, expected: bool) -> None:
    assert names_registry(text) is expected


def test_with_tag_drops_the_digest() -> None:
    assert parse("x@" + D).with_tag("v1") == parse("x:v1")


@pytest.mark.parametrize("value", [None, 3, b"python"])
def test_non_strings_are_config_errors(value: object) -> None:
    with pytest.raises(ConfigError):
        parse(value)  # type: ignore[arg-type]
