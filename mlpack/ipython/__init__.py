"""The notebook front door: ``%load_ext mlpack`` registers ``%%containerize``.

The magic runs the cell body in the kernel (its ``preprocess``/``postprocess``
hooks), then :func:`mlpack.serve` ships the model and the hooks into a
running, limited container and checks that it answers like the kernel.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_ipython_extension", "unload_ipython_extension"]

_registered: dict[int, Any] = {}


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics on this shell (idempotent)."""
    from mlpack.ipython.magics import ContainerizeMagics

    magics = ContainerizeMagics(ipython)
    ipython.register_magics(magics)
    _registered[id(ipython)] = magics


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics again (``%unload_ext mlpack``)."""
    magics = _registered.pop(id(ipython), None)
    if magics is None:
        return
    manager = ipython.magics_manager
    for kind in ("line", "cell"):
        manager.magics[kind].pop("containerize", None)
    manager.registry.pop(type(magics).__name__, None)
