from __future__ import annotations

import pytest

from mlpack import ConfigError, Limits, MlpackError
from mlpack.types import parse_memory


@pytest.mark.parametrize(
    "text,expected",
    [("512Mi", 512 * 2**20), ("512m", 512 * 2**20), ("1g", 2**30), ("1GiB", 2**30),
     ("1.5g", int(1.5 * 2**30)), (268435456, 268435456), ("64MB", 64 * 2**20)],
)
def test_memory_units(text, expected) -> None:
    assert parse_memory(text) == expected


@pytest.mark.parametrize("bad", ["lots", "12 parsecs", "-1g", "1k", True, "1x"])
def test_memory_errors_say_what_to_write(bad) -> None:
    with pytest.raises(ConfigError) as info:
        parse_memory(bad)
    assert "memory" in str(info.value)


def test_cpus_quota() -> None:
    assert Limits(cpus=1.5).cpu_quota == (150_000, 100_000)
    assert Limits(cpus="0.5").cpus == 0.5


@pytest.mark.parametrize("bad", [0, -1, "fast", float("nan"), 0.001])
def test_bad_cpus(bad) -> None:
    with pytest.raises(ConfigError):
        Limits(cpus=bad)


def test_gpus_forms() -> None:
    assert Limits(gpus=2).gpus == 2
    assert Limits(gpus="all").gpus == ("all",)
    assert Limits(gpus="0,1").gpus == ("0", "1")
    assert Limits(gpus="1").gpus == 1
    assert Limits(gpus=0).gpus is None
    assert Limits(gpus="0,1").gpu_count == 2


@pytest.mark.parametrize("bad", [0.5, "1.5", "0;rm -rf /", -2])
def test_bad_gpus(bad) -> None:
    with pytest.raises(ConfigError):
        Limits(gpus=bad)


def test_pids() -> None:
    assert Limits(pids="64").pids == 64
    with pytest.raises(ConfigError):
        Limits(pids=0)


def test_errors_are_one_tree() -> None:
    assert issubclass(ConfigError, MlpackError)
    err = ConfigError("bad", hint="do this")
    assert "hint: do this" in str(err)
    assert Limits(memory="1g").memory_human() == "1Gi"
