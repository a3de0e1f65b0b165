"""ModelInferRequest -> model feeds, model outputs -> ModelInferResponse.

Inputs come as typed ``contents`` or as ``raw_input_contents`` (one buffer per
input, the REST binary extension's layout, BYTES with 4-byte lengths); either
way every tensor goes through :func:`mlpack.server.tensors.coerce_numbers` (``coerce``'s
result and errors, in one pass for the common tensor), as on REST.
The response is raw when the request was (Triton's clients read either).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mlpack.server.codec import Decoded, binary_tensor, bytes_buffer
from mlpack.server.protocol import MODEL_VERSION, input_spec
from mlpack.server.shapes import check_v2_shape
from mlpack.server.tables import v2_column
from mlpack.server.tensors import Spec, check_rows, coerce_numbers, invalid, v2_datatype

__all__ = ["decode_request", "encode_response"]

# datatype -> (the InferTensorContents field that carries it, numpy dtype read from it)
_TYPED: dict[str, tuple[str, Any]] = {
    "BOOL": ("bool_contents", np.bool_),
    "INT8": ("int_contents", np.int64),
    "INT16": ("int_contents", np.int64),
    "INT32": ("int_contents", np.int64),
    "INT64": ("int64_contents", np.int64),
    "UINT8": ("uint_contents", np.uint64),
    "UINT16": ("uint_contents", np.uint64),
    "UINT32": ("uint_contents", np.uint64),
    "UINT64": ("uint64_contents", np.uint64),
    "FP32": ("fp32_contents", np.float32),
    "FP64": ("fp64_contents", np.float64),
    "BYTES": ("bytes_contents", object),
}


def _texts(values: Sequence[bytes], name: str) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        try:
            out[i] = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise invalid(f"input {name!r}: BYTES element {i} is not UTF-8 text ({exc.reason})", input=name) from None
    return out


def _typed(tensor: Any) -> Any:
    name, datatype = tensor.name, tensor.datatype
    field, dtype = _TYPED.get(datatype, (None, None))
    if field is None:
        raise invalid(f"input {name!r}: {datatype} has no typed contents", input=name, hint="send it in raw_input_contents")
    values = getattr(tensor.contents, field)
    if dtype is object:
        return _texts(values, name)
    return np.array(values, dtype=dtype)


def _feed(spec: Spec, tensor: Any, buffer: bytes | None, table: Any) -> np.ndarray:
    """One request tensor as model input ``spec`` takes it: from ``buffer`` (its raw contents) or
    its typed contents (None); a 422 ServeError naming what is wrong."""
    name, datatype = tensor.name, tensor.datatype
    if datatype != spec.datatype:
        raise invalid(f"input {name!r}: expected datatype {spec.datatype}, got {datatype!r}", input=name)
    shape = list(check_v2_shape(spec, tensor.shape))  # rank and size bounds, as on REST
    data = _typed(tensor) if buffer is None else binary_tensor(buffer, 0, len(buffer), datatype, name)
    if table is not None and table.kind == "table":
        return v2_column(table, spec, data, shape)
    return coerce_numbers(spec, data, shape=shape)


def decode_request(request: Any, inputs: Sequence[Spec], outputs: Sequence[Spec], table: Any = None) -> Decoded:
    """Validated feeds and the requested outputs of a ModelInferRequest, or a 422 ServeError
    (a table model, ``table``: one column per input, as on REST V2)."""
    raw = request.raw_input_contents
    tensors = request.inputs
    given = len(tensors)
    if given == 1 and len(inputs) == 1 and len(raw) == 1 and table is None and not request.outputs:
        # The common call (tritonclient's): one tensor in raw contents for a one-input model (which
        # takes any one name), every output wanted: no name lookups, no bookkeeping of the rest.
        return Decoded({inputs[0].name: _feed(inputs[0], tensors[0], raw[0], None)}, binary_all=True, id=request.id or None)
    if raw and len(raw) != given:
        raise invalid(f"raw_input_contents has {len(raw)} buffers for {given} inputs", hint="send one buffer per input, in order")
    by_name = {s.name: s for s in inputs}
    feeds: dict[str, np.ndarray] = {}
    for i, tensor in enumerate(tensors):
        name = tensor.name
        spec = input_spec(name, inputs, by_name, given)
        if spec.name in feeds:
            raise invalid(f"input {name!r} appears twice", input=name)
        feeds[spec.name] = _feed(spec, tensor, raw[i] if raw else None, table)
    missing = [s.name for s in inputs if s.name not in feeds]
    if missing:
        raise invalid(f"missing input {missing[0]!r}", input=missing[0], hint=f"the model's inputs are {[s.name for s in inputs]}")
    check_rows(inputs, feeds)
    wanted = None
    if request.outputs:
        known = {s.name for s in outputs}
        wanted = list(dict.fromkeys(o.name for o in request.outputs))
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise invalid(f"unknown output {unknown[0]!r}", hint=f"the model's outputs are {sorted(known)}")
    return Decoded(feeds, outputs=wanted, binary_all=bool(raw), id=request.id or None)


def encode_response(response_class: Any, outputs: dict[str, Any], decoded: Decoded, *, model_name: str) -> bytes:
    """The serialized ModelInferResponse for ``outputs``: raw contents when asked or when a type
    has no typed field (raw: written directly, :func:`raw_response`)."""
    names = decoded.outputs if decoded.outputs is not None else list(outputs)
    arrays = [(name, np.asarray(outputs[name])) for name in names]
    types = [v2_datatype(arr) for _, arr in arrays]
    raw = decoded.binary_all or any(t not in _TYPED for t in types)
    if raw:
        return raw_response(model_name, decoded.id or "", arrays, types)
    response = response_class(model_name=model_name, model_version=MODEL_VERSION, id=decoded.id or "")
    for (name, arr), datatype in zip(arrays, types):
        tensor = response.outputs.add(name=name, datatype=datatype, shape=arr.shape)
        if datatype == "BYTES":
            tensor.contents.bytes_contents.extend(v if isinstance(v, bytes) else str(v).encode() for v in arr.ravel().tolist())
        else:
            getattr(tensor.contents, _TYPED[datatype][0]).extend(arr.ravel().tolist())
    return response.SerializeToString()


# -- raw responses, written as protobuf's wire format (a call's hot path) -------------------------
#
# ModelInferResponse: model_name = 1, model_version = 2, id = 3, outputs = 5 (InferOutputTensor:
# name = 1, datatype = 2, shape = 3, packed), raw_output_contents = 6; every one length-delimited
# (wire type 2), so each is its tag byte, a varint length, the bytes. protobuf parses what
# ``response_class(...).SerializeToString()`` writes and this alike (tests/unit/server/test_grpc.py).

_HEAD_CACHE: dict[tuple[str, str, tuple[int, ...]], bytes] = {}
_HEAD_CACHE_MAX = 1024


def _varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: int, data: bytes) -> bytes:
    """A length-delimited field: its tag byte (field number << 3 | 2), length, bytes."""
    return bytes((tag,)) + _varint(len(data)) + data


def _output_head(name: str, datatype: str, shape: tuple[int, ...]) -> bytes:
    """outputs (field 5) holding one InferOutputTensor's name, datatype and shape."""
    key = (name, datatype, shape)
    head = _HEAD_CACHE.get(key)
    if head is None:
        tensor = _field(0x0A, name.encode()) + _field(0x12, datatype.encode())
        if shape:  # proto3 writes an empty packed field not at all
            tensor += _field(0x1A, b"".join(_varint(d) for d in shape))
        head = _field(0x2A, tensor)
        if len(_HEAD_CACHE) >= _HEAD_CACHE_MAX:
            _HEAD_CACHE.clear()
        _HEAD_CACHE[key] = head
    return head


_VERSION_FIELD = _field(0x12, MODEL_VERSION.encode())


def raw_response(model_name: str, request_id: str, arrays: Sequence[tuple[str, np.ndarray]], types: Sequence[str]) -> bytes:
    """A serialized ModelInferResponse carrying ``arrays`` in raw_output_contents."""
    parts = [_field(0x0A, model_name.encode()) if model_name else b"", _VERSION_FIELD,
             _field(0x1A, request_id.encode()) if request_id else b""]
    for (name, arr), datatype in zip(arrays, types):
        parts.append(_output_head(name, datatype, arr.shape))
    for (_, arr), datatype in zip(arrays, types):
        parts.append(_field(0x32, bytes_buffer(arr) if datatype == "BYTES" else np.ascontiguousarray(arr).tobytes()))
    return b"".join(parts)
