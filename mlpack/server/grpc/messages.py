"""The protocol's message classes, built from ``_descriptor.SERIALIZED`` in a private pool."""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pool, message_factory

from mlpack.server.grpc._descriptor import SERIALIZED

__all__ = ["SERVICE", "message", "method_types"]

SERVICE = "inference.GRPCInferenceService"

_pool = descriptor_pool.DescriptorPool()
_file = _pool.AddSerializedFile(SERIALIZED)


def message(name: str) -> Any:
    """The class of message ``inference.<name>``."""
    return message_factory.GetMessageClass(_pool.FindMessageTypeByName(f"inference.{name}"))


def method_types() -> dict[str, tuple[Any, Any]]:
    """Each method of the service: name -> (request class, response class)."""
    service = _pool.FindServiceByName(SERVICE)
    return {
        m.name: (message_factory.GetMessageClass(m.input_type), message_factory.GetMessageClass(m.output_type))
        for m in service.methods
    }
