"""The one Limits value mapped onto Kubernetes resources."""

from __future__ import annotations

import pytest

from mlpack.errors import ConfigError, ExportError
from mlpack.kube.resources import cpu_quantity, map_limits, memory_quantity
from mlpack.types import Limits

from tests.unit.kube.checks import cpu_cores, memory_bytes


@pytest.mark.parametrize(
    ("cpus", "text"), [(1, "1"), (2.0, "2"), (0.5, "500m"), (1.5, "1500m"), (0.01, "10m"), (0.125, "125m")]
)
def test_cpu_quantity(cpus: float, text: str) -> None:
    assert cpu_quantity(cpus) == text
    assert cpu_cores(text) == pytest.approx(cpus)


def test_sub_millicore_cpu_is_refused() -> None:
    with pytest.raises(ExportError) as info:
        cpu_quantity(0.0125)
    assert "1m" in str(info.value) and info.value.hint


@pytest.mark.parametrize(
    ("memory", "text"),
    [(512 * 1024**2, "512Mi"), (1024**3, "1Gi"), (1536 * 1024**2, "1536Mi"), (10 * 1024**2 + 1, "10485761")],
)
def test_memory_quantity_is_exact(memory: int, text: str) -> None:
    assert memory_quantity(memory) == text
    assert memory_bytes(text) == memory


@pytest.mark.parametrize(
    "limits",
    [
        Limits(cpus=0.5, memory="256Mi"),
        Limits(cpus=1, memory="1g", pids=128),
        Limits(cpus=2.25, memory="3Gi", gpus=1),
        Limits(cpus=4, memory="16Gi", gpus=4),
        Limits(cpus=1, memory="1Gi", gpus="0,1"),
    ],
)
def test_requests_equal_limits_equal_local(limits: Limits) -> None:
    res = map_limits(limits)
    assert res.requests == res.limits  # Guaranteed QoS
    assert cpu_cores(res.limits["cpu"]) == pytest.approx(limits.cpus)
    assert memory_bytes(res.limits["memory"]) == limits.memory
    if limits.gpu_count:
        assert res.limits["nvidia.com/gpu"] == str(limits.gpu_count)
    else:
        assert "nvidia.com/gpu" not in res.limits
    assert any("Guaranteed" in note for note in res.notes)


def test_pids_become_a_note() -> None:
    res = map_limits(Limits(cpus=1, memory="1Gi", pids=64))
    assert "pids" not in res.limits
    assert any("podPidsLimit" in note and "64" in note for note in res.notes)


def test_all_gpus_cannot_be_expressed() -> None:
    with pytest.raises(ExportError) as info:
        map_limits(Limits(cpus=1, memory="1Gi", gpus="all"))
    assert "--gpus 1" in (info.value.hint or "")


def test_fractional_gpus_never_reach_kubernetes() -> None:
    # Limits itself refuses them; the CLI turns that into an ExportError.
    with pytest.raises(ConfigError):
        Limits(cpus=1, memory="1Gi", gpus=0.5)


def test_missing_cpu_or_memory_is_an_error() -> None:
    with pytest.raises(ExportError) as info:
        map_limits(Limits(memory="1Gi"))
    assert "cpus" in str(info.value) and "--cpus" in (info.value.hint or "")
    with pytest.raises(ExportError):
        map_limits(Limits(cpus=1))


def test_cpuset_cannot_be_expressed() -> None:
    with pytest.raises(ExportError):
        map_limits(Limits(cpus=1, memory="1Gi", cpuset_cpus="0-1"))
