"""The %%containerize line is parsed into ServeOptions, with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpack.errors import ConfigError
from mlpack.ipython.args import default_name, parse_args


def test_defaults() -> None:
    args = parse_args("clf --sample X")
    assert (args.model_var, args.sample_var, args.debug) == ("clf", "X", False)
    opts = args.options
    assert opts.name == "clf" and opts.run is True and opts.push is None and opts.k8s is None
    assert opts.limits().cpus == 1.0 and opts.limits().memory == 1024**3
    assert args.service_var == "clf_service"
    assert opts.image_tag == "mlpack/clf:latest"


def test_every_option() -> None:
    args = parse_args("model --sample rows --name iris-v2 --cpus 0.5 --memory 512Mi --pids-limit 64 --gpus 0 "
                      "--port 18080 --push 127.0.0.1:5000/iris:1 --k8s out/k8s --no-run --base local --debug")
    o = args.options
    assert (o.name, o.cpus, o.memory, o.pids, o.port) == ("iris-v2", 0.5, "512Mi", 64, 18080)
    assert o.push == "127.0.0.1:5000/iris:1" and o.k8s == Path("out/k8s") and o.base == "local"
    assert o.run is False and args.debug is True
    assert o.limits().memory == 512 * 1024**2
    assert o.deps == "auto" and parse_args("model --sample rows --deps context").options.deps == "context"


def test_pids_is_a_deprecated_spelling_of_pids_limit() -> None:
    with pytest.warns(FutureWarning, match="--pids-limit"):
        assert parse_args("clf --sample X --pids 64").options.pids == 64
    assert parse_args("clf --sample X --pids-limit 64").options.pids == 64


def test_flags_have_the_cli_spelling() -> None:
    import argparse

    from mlpack.cli import build_parser
    from mlpack.ipython.args import _parser

    def flags(parser: argparse.ArgumentParser) -> set[str]:
        return {o for a in parser._actions for o in a.option_strings if a.help != argparse.SUPPRESS}

    run = build_parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    shared = {"--cpus", "--memory", "--pids-limit", "--gpus", "--name"}
    assert shared <= flags(_parser()) and shared <= flags(run)


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("clf", "--sample"),
        ("", "model_var"),
        ("clf --sample X --cpus lots", "--cpus"),
        ("clf --sample X --cpus 0", "cpus must be a positive"),
        ("clf --sample X --memory 12parsecs", "cannot read memory"),
        ("clf --sample X --port 70000", "not a TCP port"),
        ("clf --sample X --name Bad/Name", "not a valid image"),
        ("clf --sample X --gpus 0.5", "fractionally"),
        ("clf --sample X --bogus", "unrecognized"),
        ("clf --sample X --deps sometimes", "invalid choice"),
        ("clf --sample 'X[0]'", "must be a variable name"),
        ("clf --sample X --name 'unterminated", "cannot split"),
    ],
)
def test_errors_say_what_is_wrong(line: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_args(line)
    assert needle in str(info.value)
    assert info.value.hint  # every error says what to do


def test_default_name_is_image_safe() -> None:
    assert default_name("myModel_v2") == "mymodel_v2"
    assert default_name("__x__") == "x"
    assert default_name("_") == "model"
    assert parse_args("MyModel --sample X").options.name == "mymodel"


def test_dynamic_axes_are_checked_before_anything_runs() -> None:
    from mlpack.errors import ConfigError
    from mlpack.ipython.args import parse_args

    assert parse_args("seq --sample x --dynamic-axes input:1").options.dynamic_axes == "input:1"
    assert parse_args("seq --sample x").options.dynamic_axes is None
    with pytest.raises(ConfigError, match="--dynamic-axes"):
        parse_args("seq --sample x --dynamic-axes input")


def test_detach_and_added_packages(tmp_path) -> None:
    (tmp_path / "req.txt").write_text("scipy==1.17.1\n")
    o = parse_args(f"clf --sample X --detach --pip six==1.16.0 --pip tzdata --requirements {tmp_path}/req.txt").options
    assert o.detach is True and o.requirements == ("six==1.16.0", "tzdata", "scipy==1.17.1")
    plain = parse_args("clf --sample X").options
    assert plain.detach is False and plain.requirements is None
