from __future__ import annotations

import pytest

from mlpack.errors import ConfigError
from mlpack.oci.reference import parse

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
