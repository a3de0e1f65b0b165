"""Image references and Kubernetes names."""

from __future__ import annotations

import pytest

from mlpack.errors import ExportError
from mlpack.kube.naming import check_dns_label, label_value, name_from_repository, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("ref", "registry", "path", "tag", "digest"),
    [
        ("iris", "docker.io", "iris", None, None),
        ("team/iris:1", "docker.io", "team/iris", "1", None),
        ("127.0.0.1:5000/mlpack/iris:v1", "127.0.0.1:5000", "mlpack/iris", "v1", None),
        ("localhost/mlpack/iris", "localhost", "mlpack/iris", None, None),
        (f"registry.example.com/a/b@{DIGEST}", "registry.example.com", "a/b", None, DIGEST),
        (f"host:5000/a:t@{DIGEST}", "host:5000", "a", "t", DIGEST),
    ],
)
def test_parse_reference(ref: str, registry: str, path: str, tag: str | None, digest: str | None) -> None:
    parsed = parse_reference(ref)
    assert (parsed.registry, parsed.path, parsed.tag, parsed.digest) == (registry, path, tag, digest)


@pytest.mark.parametrize("ref", ["", "a b", "Iris:1", "iris@sha256:abc", "iris:-bad"])
def test_bad_references_are_export_errors(ref: str) -> None:
    with pytest.raises(ExportError):
        parse_reference(ref)


@pytest.mark.parametrize("name", ["iris", "iris-2", "a", "a" * 63, "m0del"])
def test_valid_names(name: str) -> None:
    assert check_dns_label(name, "name", letter_first=True) == name


@pytest.mark.parametrize("name", ["Iris", "iris_2", "-iris", "iris-", "a" * 64, "", "ir.is", "2iris"])
def test_invalid_names_say_what_to_do(name: str) -> None:
    with pytest.raises(ExportError) as info:
        check_dns_label(name, "name", letter_first=True)
    assert "DNS-1123" in str(info.value)
    assert "--name" in (info.value.hint or "")


def test_digit_first_is_a_valid_namespace() -> None:
    assert check_dns_label("2024-ml", "namespace") == "2024-ml"


def test_name_from_repository() -> None:
    assert name_from_repository(parse_reference("h:5000/team/iris_v2.onnx:1")) == "iris-v2-onnx"


def test_label_value() -> None:
    assert label_value("1.2.0") == "1.2.0"
    assert label_value("sha256:abc") is None
    assert label_value("x" * 64) is None
