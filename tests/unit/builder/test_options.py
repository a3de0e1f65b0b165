"""BuildOptions: every flag of `mlpack build` checked and normalised once, at construction."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from mlpack.builder import BuildOptions
from mlpack.builder.options import default_run_limits
from mlpack.errors import BuildError
from mlpack.types import Limits


def test_defaults_are_the_cli_defaults() -> None:
    opts = BuildOptions()
    assert (opts.tag, opts.dockerfile, opts.target, opts.no_cache, opts.network) == (None, None, None, False, "default")
    assert opts.build_args == {} and opts.secrets == {}
    assert opts.limits == default_run_limits()


def test_build_args_become_strings_and_secrets_paths(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    opts = BuildOptions(build_args={"N": 3}, secrets=[f"id=ca,src={ca}"])
    assert opts.build_args == {"N": "3"}
    assert opts.secrets == {"ca": ca}
    assert replace(opts, tag="localhost/a:1").secrets == {"ca": ca}  # re-checked, still the same


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"network": "bridge"}, "not default, none or host"),
        ({"secrets": ["id=ca"]}, "needs id=NAME,src=FILE"),
        ({"secrets": ["id=ca,src=/nonexistent/ca.pem"]}, "is not a file"),
        ({"limits": {"memory": "1g"}}, "mlpack.Limits"),
    ],
)
def test_bad_values_fail_at_construction(fields: dict, words: str) -> None:
    with pytest.raises(BuildError, match=words):
        BuildOptions(**fields)


def test_source_date_epoch_from_the_build_args_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "100")
    assert BuildOptions().resolved().source_date_epoch == 100
    assert BuildOptions(build_args={"SOURCE_DATE_EPOCH": "200"}).resolved().source_date_epoch == 200
    assert BuildOptions(source_date_epoch=300).resolved().source_date_epoch == 300
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(BuildError, match="not a number of seconds"):
        BuildOptions().resolved()


def test_limits_are_the_one_limits_type() -> None:
    assert BuildOptions(limits=Limits(pids=64)).limits.pids == 64
