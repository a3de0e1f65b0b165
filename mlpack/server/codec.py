"""Request decoding and response encoding for ``/predict`` and the V2 protocol.

JSON goes through orjson straight to numpy (no pydantic on the hot path);
every tensor passes :func:`mlpack.server.tensors.coerce`. The V2 binary tensor
extension (``Inference-Header-Content-Length``) is supported because Triton's
clients send binary tensors by default; BYTES tensors in it (and in gRPC's raw
contents) are a 4-byte little-endian length before each element.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import orjson

from mlpack.server.protocol import input_spec
from mlpack.server.shapes import check_v2_shape
from mlpack.server.tables import decode_table, decode_text, v2_column
from mlpack.server.tensors import NUMPY_OF_V2, Spec, check_rows, coerce, coerce_numbers, invalid, v2_datatype

__all__ = [
    "Decoded",
    "loads",
    "dumps",
    "decode_predict",
    "encode_predict",
    "decode_v2",
    "encode_v2",
    "binary_tensor",
    "bytes_elements",
    "bytes_buffer",
]

_DUMP_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (bytes, bytearray)):
        return obj.decode("utf-8", "replace")
    raise TypeError(f"cannot encode {type(obj).__name__}")


def dumps(obj: Any) -> bytes:
    """JSON bytes; numpy arrays and scalars encoded natively."""
    return orjson.dumps(obj, default=_default, option=_DUMP_OPTS)


def loads(body: bytes) -> Any:
    """Parse a JSON body or raise a 422 that says where it broke."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"request body is not valid JSON: {exc}", hint="send a JSON object with Content-Type: application/json") from None


PREDICT_PARAMETERS = {"outputs"}


@dataclass(slots=True)
class Decoded:
    """A decoded inference request: model feeds plus what to send back."""

    feeds: dict[str, np.ndarray]
    outputs: list[str] | None = None  # None: every output
    binary: set[str] = field(default_factory=set)  # V2: outputs to return as binary buffers
    binary_all: bool = False
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def _names(specs: Sequence[Spec]) -> str:
    return ", ".join(repr(s.name) for s in specs)


def _pick_outputs(requested: Any, outputs: Sequence[Spec]) -> list[str]:
    known = {s.name for s in outputs}
    if not isinstance(requested, list) or not all(isinstance(n, str) for n in requested):
        raise invalid('"outputs" must be a list of output names', hint=f"the model's outputs are {_names(outputs)}")
    unknown = [n for n in requested if n not in known]
    if unknown:
        raise invalid(f"unknown output {unknown[0]!r}", hint=f"the model's outputs are {_names(outputs)}")
    return list(dict.fromkeys(requested))


def decode_predict(body: bytes, inputs: Sequence[Spec], outputs: Sequence[Spec], table: Any = None) -> Decoded:
    """Decode ``{"inputs": ..., "parameters": {...}}`` into model feeds.

    ``inputs`` is a list of rows (single-input models), a mapping of input
    names to arrays, or a list of records ``{name: value}`` (multi-input);
    for a table model (``table``, the bundle's TableSchema) see
    :func:`mlpack.server.tables.decode_table`.
    """
    doc = loads(body)
    if type(doc) is dict and len(doc) == 1 and table is None and len(inputs) == 1:
        # The common request, {"inputs": [[...], ...]} for a one-input model: what the
        # general path below does for it, without its checks of fields that are not there.
        data = doc.get("inputs")
        if type(data) is list and not (data and type(data[0]) is dict):
            spec = inputs[0]
            return Decoded({spec.name: coerce_numbers(spec, data, bools=_may_hold_bools(body))})
    if not isinstance(doc, dict) or "inputs" not in doc:
        raise invalid('request body must be a JSON object with an "inputs" field', hint='send {"inputs": [[...], ...]}')
    extra = set(doc) - {"inputs", "parameters"}
    if extra:
        raise invalid(f"unknown field {sorted(extra)[0]!r} in request body", hint='allowed fields: "inputs", "parameters"')
    params = doc.get("parameters", {})
    if not isinstance(params, dict):
        raise invalid('"parameters" must be a JSON object')
    unknown = set(params) - PREDICT_PARAMETERS
    if unknown:
        raise invalid(f"unknown parameter {sorted(unknown)[0]!r}", hint=f"supported parameters: {sorted(PREDICT_PARAMETERS)}")
    data = doc["inputs"]
    bools = _may_hold_bools(body)
    feeds: dict[str, np.ndarray] = {}
    if table is not None and table.kind == "text":
        data = decode_text(data, inputs[0].name)
    if table is not None and table.kind == "table":
        feeds = decode_table(data, table, inputs, bools=bools)
    elif isinstance(data, dict):
        _check_names(data, inputs)
        for spec in inputs:
            feeds[spec.name] = coerce_numbers(spec, data[spec.name], bools=bools)
    elif isinstance(data, list):
        if len(inputs) == 1 and not (data and isinstance(data[0], dict)):
            feeds[inputs[0].name] = coerce_numbers(inputs[0], data, bools=bools)
        elif data and all(isinstance(row, dict) for row in data):
            for row in data:
                _check_names(row, inputs)
            for spec in inputs:
                feeds[spec.name] = coerce(spec, [row[spec.name] for row in data], bools=bools)
        else:
            raise invalid(
                f"the model has inputs {_names(inputs)}: send a mapping of input names to arrays or a list of records",
                hint='for example {"inputs": {"' + inputs[0].name + '": [...]}}',
            )
    else:
        raise invalid('"inputs" must be a list of rows or a mapping of input names to arrays')
    check_rows(inputs, feeds)
    wanted = _pick_outputs(params["outputs"], outputs) if "outputs" in params else None
    return Decoded(feeds, outputs=wanted, parameters=params)


def _all_ints(values: list) -> bool:
    """Every value a JSON integer (orjson gives exact ints; booleans are not integers here)."""
    for value in values:
        if type(value) is not int:
            return False
    return True


def _may_hold_bools(body: bytes) -> bool:
    # A byte search is far cheaper than walking every value for booleans.
    return b"true" in body or b"false" in body


def _check_names(given: Mapping[str, Any], inputs: Sequence[Spec]) -> None:
    expected = [s.name for s in inputs]
    missing = [n for n in expected if n not in given]
    if missing:
        raise invalid(f"missing input {missing[0]!r}", input=missing[0], hint=f"the model's inputs are {_names(inputs)}")
    unknown = [n for n in given if n not in expected]
    if unknown:
        raise invalid(f"unknown input {unknown[0]!r}", input=unknown[0], hint=f"the model's inputs are {_names(inputs)}")


def encode_predict(outputs: Mapping[str, Any], names: Sequence[str] | None) -> bytes:
    """``{"outputs": {name: array}}`` as JSON bytes."""
    if names is not None:
        outputs = {n: outputs[n] for n in names}
    return dumps({"outputs": outputs})


# -- Open Inference Protocol (KServe V2) -------------------------------------------


def decode_v2(
    body: bytes, header_length: str | None, inputs: Sequence[Spec], outputs: Sequence[Spec], table: Any = None
) -> Decoded:
    """Decode a V2 infer request (JSON, or JSON header + binary tensors).

    A table model (``table``) takes one input per column, as MLServer's
    PandasCodec sends them (strings as BYTES, shape ``[N]`` or ``[N, 1]``).
    """
    raw = b""
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            n = -1
        if not 0 <= n <= len(body):
            raise invalid(f"Inference-Header-Content-Length {header_length!r} does not fit a body of {len(body)} bytes")
        body, raw = body[:n], body[n:]
    doc = loads(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list):
        raise invalid('V2 infer request must be a JSON object with an "inputs" list')
    params = doc.get("parameters", {})
    if not isinstance(params, dict):
        raise invalid('"parameters" must be a JSON object')
    by_name = {s.name: s for s in inputs}
    bools = _may_hold_bools(body)
    feeds: dict[str, np.ndarray] = {}
    offset = 0
    given = len(doc["inputs"])
    for tensor in doc["inputs"]:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise invalid('each V2 input must be an object with "name", "shape", "datatype" and "data"')
        name = tensor["name"]
        spec = input_spec(name, inputs, by_name, given)
        if spec.name in feeds:
            raise invalid(f"input {name!r} appears twice", input=name)
        datatype = tensor.get("datatype")
        if datatype != spec.datatype:
            raise invalid(f"input {name!r}: expected datatype {spec.datatype}, got {datatype!r}", input=name)
        shape = tensor.get("shape")
        if type(shape) is not list or not _all_ints(shape):
            raise invalid(f"input {name!r}: \"shape\" must be a list of integers, got {shape!r}", input=name)
        shape = check_v2_shape(spec, shape)
        tparams = tensor.get("parameters", {})
        if not isinstance(tparams, dict):
            raise invalid(f'input {name!r}: "parameters" must be a JSON object', input=name)
        size = tparams.get("binary_data_size")
        if size is not None:
            if type(size) is not int or size < 0 or offset + size > len(raw):
                raise invalid(f"input {name!r}: binary_data_size {size!r} does not fit the binary part of the body", input=name)
            data: Any = binary_tensor(raw, offset, size, datatype, name)
            offset += size
        else:
            if "data" not in tensor:
                raise invalid(f"input {name!r} has no \"data\"", input=name)
            data = tensor["data"]
            if not isinstance(data, list):
                data = [data]
        if table is not None and table.kind == "table":
            feeds[spec.name] = v2_column(table, spec, data, shape, bools=bools)
        else:
            feeds[spec.name] = coerce_numbers(spec, data, shape=shape, bools=bools)
    if offset != len(raw):
        raise invalid(f"{len(raw) - offset} bytes of binary data belong to no input")
    missing = [s.name for s in inputs if s.name not in feeds]
    if missing:
        raise invalid(f"missing input {missing[0]!r}", input=missing[0], hint=f"the model's inputs are {_names(inputs)}")
    check_rows(inputs, feeds)
    binary: set[str] = set()
    wanted = None
    if "outputs" in doc:
        if not isinstance(doc["outputs"], list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in doc["outputs"]):
            raise invalid('"outputs" must be a list of objects with a "name"')
        wanted = _pick_outputs([o["name"] for o in doc["outputs"]], outputs)
        for o in doc["outputs"]:
            op = o.get("parameters", {})
            if not isinstance(op, dict):
                raise invalid(f'output {o["name"]!r}: "parameters" must be a JSON object')
            if op.get("binary_data") is True:
                binary.add(o["name"])
    req_id = doc.get("id")
    if "id" in doc and not isinstance(req_id, str):
        raise invalid('"id" must be a string')
    return Decoded(
        feeds,
        outputs=wanted,
        binary=binary,
        binary_all=params.get("binary_data_output") is True,
        id=req_id if isinstance(req_id, str) else None,
        parameters=params,
    )


def encode_v2(
    outputs: Mapping[str, Any], request: Decoded, *, model_name: str, model_version: str = "1"
) -> tuple[bytes, int | None]:
    """The V2 response body and, when tensors went binary, the JSON header length."""
    names = request.outputs if request.outputs is not None else list(outputs)
    tensors = []
    buffers: list[bytes] = []
    for name in names:
        arr = np.asarray(outputs[name])
        datatype = v2_datatype(arr)
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(arr.shape)}
        if request.binary_all or name in request.binary:
            buf = bytes_buffer(arr) if datatype == "BYTES" else np.ascontiguousarray(arr).tobytes()
            entry["parameters"] = {"binary_data_size": len(buf)}
            buffers.append(buf)
        elif datatype == "BYTES":
            entry["data"] = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in arr.ravel().tolist()]
        else:
            entry["data"] = np.ascontiguousarray(arr).ravel()
        tensors.append(entry)
    doc: dict[str, Any] = {"model_name": model_name, "model_version": model_version, "outputs": tensors}
    if request.id is not None:
        doc["id"] = request.id
    header = dumps(doc)
    if not buffers:
        return header, None
    return header + b"".join(buffers), len(header)


# -- BYTES tensors in the binary layout (REST binary extension, gRPC raw contents) --

_LENGTH = struct.Struct("<I")


def binary_tensor(raw: bytes | memoryview, offset: int, size: int, datatype: str, name: str) -> np.ndarray:
    """The flat array held by ``raw[offset:offset + size]`` (a fixed-size type or BYTES)."""
    if datatype == "BYTES":
        return bytes_elements(memoryview(raw)[offset : offset + size], name)
    itemsize = np.dtype(NUMPY_OF_V2[datatype]).itemsize
    if size % itemsize:
        raise invalid(f"input {name!r}: {size} bytes is not a whole number of {datatype} values", input=name)
    return np.frombuffer(raw, dtype=np.dtype(NUMPY_OF_V2[datatype]), count=size // itemsize, offset=offset)


def bytes_elements(buf: bytes | memoryview, name: str) -> np.ndarray:
    """Decode BYTES elements (each a 4-byte little-endian length, then the bytes) as a flat array of str.

    Every length is checked against what is left, so a lying length is a 422
    naming the element, never a read past the tensor; elements must be UTF-8
    because the models' string tensors hold text.
    """
    view = memoryview(buf)
    end = len(view)
    values: list[str] = []
    pos = 0
    while pos < end:
        if end - pos < 4:
            raise invalid(f"input {name!r}: BYTES element {len(values)} has a truncated length prefix ({end - pos} of 4 bytes)", input=name)
        (n,) = _LENGTH.unpack_from(view, pos)
        pos += 4
        if n > end - pos:
            raise invalid(
                f"input {name!r}: BYTES element {len(values)} claims {n} bytes but {end - pos} are left",
                input=name,
                hint="each BYTES element is a 4-byte little-endian length followed by that many bytes",
            )
        try:
            values.append(str(view[pos : pos + n], "utf-8"))
        except UnicodeDecodeError as exc:
            raise invalid(f"input {name!r}: BYTES element {len(values)} is not UTF-8 text ({exc.reason})", input=name) from None
        pos += n
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def _utf8(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


def bytes_buffer(arr: np.ndarray) -> bytes:
    """``arr``'s elements (row-major) in the BYTES binary layout."""
    pack = _LENGTH.pack
    parts: list[bytes] = []
    for value in np.asarray(arr).ravel().tolist():
        data = _utf8(value)
        parts.append(pack(len(data)))
        parts.append(data)
    return b"".join(parts)
