"""The inference server that runs inside an mlpack image (Starlette over onnxruntime).

``create_app(bundle_path, config)`` returns the ASGI app; ``mlpack-serve``
(:mod:`mlpack.server.__main__`) is the image's entry point. Imports only the
``serve`` extra (onnxruntime, numpy, starlette, uvicorn, orjson, PyYAML) and
``mlpack.errors`` / ``mlpack.bundle``; zttp (uvicorn's HTTP/2) and protobuf (also in
the extra) serve the gRPC port (:mod:`mlpack.server.grpc`). Starlette is imported on first use of
``create_app``, so reading a :class:`ServerConfig` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlpack.server.config import ServerConfig

if TYPE_CHECKING:  # pragma: no cover
    from mlpack.server.app import create_app

__all__ = ["ServerConfig", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from mlpack.server.app import create_app

        return create_app
    raise AttributeError(f"module 'mlpack.server' has no attribute {name!r}")
