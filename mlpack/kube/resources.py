"""The one Limits value mapped onto Kubernetes resources.

Requests equal limits for every resource, so the pod gets the Guaranteed QoS
class: the scheduler reserves exactly what was tested locally, and the
kubelet enforces the same CPU quota and memory ceiling the local cgroup did.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlpack.errors import ExportError
from mlpack.types import Limits

__all__ = ["Resources", "map_limits", "cpu_quantity", "memory_quantity", "GPU_RESOURCE"]

GPU_RESOURCE = "nvidia.com/gpu"


@dataclass(frozen=True)
class Resources:
    """``resources`` for the container plus the notes the YAML header carries."""

    requests: dict[str, str]
    limits: dict[str, str]
    gpus: int
    notes: tuple[str, ...]

    def as_dict(self) -> dict[str, dict[str, str]]:
        return {"limits": dict(self.limits), "requests": dict(self.requests)}


def cpu_quantity(cpus: float) -> str:
    """``2`` for whole cores, ``1500m`` otherwise; refuses sub-millicore values."""
    milli = cpus * 1000
    if abs(milli - round(milli)) > 1e-6:
        raise ExportError(
            f"cpus={cpus} cannot be expressed in Kubernetes, whose CPU unit is 1m (0.001 core)",
            hint=f"round the limit to three decimals, e.g. --cpus {round(cpus, 3)}",
        )
    milli_i = int(round(milli))
    return str(milli_i // 1000) if milli_i % 1000 == 0 else f"{milli_i}m"


def memory_quantity(memory: int) -> str:
    """The largest binary unit that states ``memory`` bytes exactly (``512Mi``)."""
    for unit, size in (("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if memory % size == 0:
            return f"{memory // size}{unit}"
    return str(memory)


def _gpu_count(limits: Limits) -> tuple[int, str | None]:
    gpus = limits.gpus
    if gpus is None:
        return 0, None
    if gpus == ("all",):
        raise ExportError(
            "--gpus all cannot be expressed in Kubernetes: a pod asks for a number of GPUs",
            hint="give the count you tested with, e.g. --gpus 1",
        )
    if isinstance(gpus, int):
        return gpus, None
    # Specific device ids mean nothing on another node; the device plugin
    # picks the devices, so only the count carries over.
    return len(gpus), (
        f"local GPU ids {','.join(gpus)} become a count of {len(gpus)}: "
        "the device plugin chooses the devices on the node"
    )


def map_limits(limits: Limits) -> Resources:
    """Requests and limits for one container from the local Limits.

    CPU and memory are required: without both the pod is not Guaranteed and
    the autoscaler has no CPU request to measure utilisation against.
    """
    missing = [n for n, v in (("cpus", limits.cpus), ("memory", limits.memory)) if v is None]
    if missing:
        raise ExportError(
            f"Kubernetes export needs CPU and memory limits; {' and '.join(missing)} missing",
            hint=(
                "pass the limits you tested with locally, e.g. --cpus 1 --memory 1Gi "
                "(mlpack.Limits(cpus=1, memory='1Gi') in Python)"
            ),
        )
    if limits.cpuset_cpus is not None:
        raise ExportError(
            f"a cpuset ({limits.cpuset_cpus}) cannot be expressed in a pod spec",
            hint=(
                "drop cpuset_cpus; on a node with the static CPU manager policy a "
                "Guaranteed pod with whole cpus gets exclusive cores"
            ),
        )
    assert limits.cpus is not None and limits.memory is not None
    values = {"cpu": cpu_quantity(limits.cpus), "memory": memory_quantity(limits.memory)}
    notes = [
        "QoS class Guaranteed: requests equal limits for every resource, so the "
        "cluster reserves and enforces exactly what was tested locally.",
    ]
    count, gpu_note = _gpu_count(limits)
    if count:
        # Extended resources are integers and may not be overcommitted:
        # Kubernetes requires requests == limits for them anyway.
        values[GPU_RESOURCE] = str(count)
        notes.append(f"{count} GPU(s) as {GPU_RESOURCE} (needs the NVIDIA device plugin).")
    if gpu_note:
        notes.append(gpu_note)
    if limits.pids is not None:
        notes.append(
            f"pids limit {limits.pids} has no pod field: the kubelet enforces "
            "podPidsLimit for the whole node (KubeletConfiguration); ask the "
            f"cluster admin for podPidsLimit >= {limits.pids}."
        )
    return Resources(requests=dict(values), limits=dict(values), gpus=count, notes=tuple(notes))
