"""The OpenAPI document of a served model: its real inputs and outputs, the sample as example.

The routes read raw bodies (no pydantic), so FastAPI cannot infer the
schema; it is written here from the model's specs instead. Shapes become
nested arrays with fixed lengths where the model fixes them, dtypes become
JSON types with the dtype's range, so a schema-driven fuzzer that follows
this document only produces requests the model accepts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlpack._version import __version__
from mlpack.server.tensors import Spec

__all__ = ["openapi_document"]

_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "request_id": {"type": "string"}, "hint": {"type": "string"}},
    "required": ["error", "request_id"],
}


def _leaf(dtype: str, *, output: bool = False) -> dict[str, Any]:
    if dtype in {"str", "object", "bytes"}:
        return {"type": "string"}
    kind = np.dtype(dtype).kind
    if kind == "b":
        return {"type": "boolean"}
    if kind in "iu":
        info = np.iinfo(np.dtype(dtype))
        return {"type": "integer", "minimum": int(info.min), "maximum": int(info.max)}
    if output:  # inf and nan come out as null
        return {"type": ["number", "null"]}
    # Any JSON number: values beyond the dtype's range become +-inf, as in numpy.
    return {"type": "number"}


def tensor_schema(spec: Spec, *, output: bool = False) -> dict[str, Any]:
    """Nested arrays for ``spec.shape`` with the dtype's JSON type at the leaves."""
    schema = _leaf(spec.dtype, output=output)
    for dim in reversed(spec.shape):
        arr: dict[str, Any] = {"type": "array", "items": schema}
        if dim is not None:
            arr["minItems"] = arr["maxItems"] = dim
        elif not output:
            arr["minItems"] = 1
        schema = arr
    schema = dict(schema)
    schema["description"] = f"{spec.dtype} {list(spec.v2_shape())}"
    return schema


def _examples(sample: dict[str, np.ndarray], inputs: list[Spec], rows: int = 2) -> tuple[Any, Any]:
    if not sample or any(s.name not in sample for s in inputs):
        return None, None
    cut = {s.name: np.asarray(sample[s.name])[:rows] if s.shape and s.shape[0] is None else np.asarray(sample[s.name]) for s in inputs}
    predict = cut[inputs[0].name].tolist() if len(inputs) == 1 else {k: v.tolist() for k, v in cut.items()}
    v2 = {
        "inputs": [
            {"name": s.name, "shape": list(cut[s.name].shape), "datatype": s.datatype, "data": cut[s.name].ravel().tolist()}
            for s in inputs
        ]
    }
    return {"inputs": predict}, v2


def _json_body(schema: dict[str, Any], example: Any) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"required": True, "content": {"application/json": media}}


def _responses(ok: dict[str, Any] | None, *codes: int) -> dict[str, Any]:
    words = {
        404: "Unknown model or version",
        413: "Body larger than the configured limit",
        422: "The request does not fit the model's inputs (the message names the input)",
        500: "The model failed (the request id is also in the server log)",
        503: "The model is not loaded yet",
    }
    out: dict[str, Any] = {}
    if ok is not None:
        out["200"] = {"description": "OK", "content": {"application/json": {"schema": ok}}}
    for code in codes:
        out[str(code)] = {"description": words[code], "content": {"application/json": {"schema": _ERROR}}}
    return out


BINARY_NOTE = (
    "JSON, or the binary tensor extension: Content-Type application/octet-stream with an "
    "Inference-Header-Content-Length header giving the length of the JSON header that starts the body; "
    "each input with parameters.binary_data_size is then read from the bytes after it, in order "
    "(BYTES elements as a 4-byte little-endian length followed by the bytes). Outputs come back binary "
    "when requested (parameters.binary_data per output, or binary_data_output), with the same header. "
    "gzip and deflate request bodies are accepted (Content-Encoding); the body limit applies to the decoded size."
)
_STATS = {"type": "object", "properties": {"model_stats": {"type": "array", "items": {"type": "object"}}}}


def _with_binary(body: dict[str, Any]) -> dict[str, Any]:
    body["content"]["application/octet-stream"] = {"schema": {"type": "string", "format": "binary"}}
    return body


def _binary_ok(responses: dict[str, Any]) -> dict[str, Any]:
    responses["200"]["content"]["application/octet-stream"] = {"schema": {"type": "string", "format": "binary"}}
    responses["200"]["headers"] = {"Inference-Header-Content-Length": {"schema": {"type": "integer"}, "description": "set when outputs are binary"}}
    return responses


def _versioned(item: dict[str, Any]) -> dict[str, Any]:
    """A path item for the same route under /versions/{model_version} (this server has version 1)."""
    version = {"name": "model_version", "in": "path", "required": True, "schema": {"type": "string", "enum": ["1"]}}
    out = {}
    for method, op in item.items():
        op = dict(op)
        op["operationId"] = op["operationId"] + "_version"
        op["parameters"] = [*op.get("parameters", []), version]
        out[method] = op
    return out


def _table_columns(table: Any, in_props: dict[str, Any]) -> dict[str, Any]:
    """Column schemas of a table model: categories as enums, null where the sample had NaN,
    the pandas dtype in the description; and the records form of the table."""
    record: dict[str, Any] = {}
    for col in table.columns:
        column = in_props[col.name]
        leaf = dict(column["items"])
        if col.categories is not None:
            leaf["enum"] = list(col.categories) + ([None] if col.nullable else [])
        if col.nullable:
            leaf["type"] = [leaf["type"], "null"]
        column["items"] = leaf
        column["description"] = f"column {col.name!r}: {col.dtype}" + (
            f" (pandas {col.pandas_dtype})" if col.pandas_dtype not in ("", col.dtype) else "")
        record[col.name] = leaf
    records = {"type": "array", "minItems": 1, "items": {
        "type": "object", "properties": record, "required": list(record), "additionalProperties": False}}
    return records


def openapi_document(
    *, name: str, inputs: list[Spec], outputs: list[Spec], sample: dict[str, np.ndarray] | None = None, table: Any = None
) -> dict[str, Any]:
    """The OpenAPI 3.1 document for a server serving model ``name`` (``table``: its TableSchema)."""
    in_props = {s.name: tensor_schema(s) for s in inputs}
    records = _table_columns(table, in_props) if table is not None and table.kind == "table" else None
    out_schema = {
        "type": "object",
        "properties": {
            "outputs": {
                "type": "object",
                "properties": {s.name: tensor_schema(s, output=True) for s in outputs},
            }
        },
        "required": ["outputs"],
    }
    mapping = {"type": "object", "properties": in_props, "required": list(in_props), "additionalProperties": False}
    inputs_schema: dict[str, Any] = mapping
    if records is not None:
        inputs_schema = {"anyOf": [records, mapping]}
    elif len(inputs) == 1:
        inputs_schema = {"anyOf": [in_props[inputs[0].name], mapping]}
    params = {
        "type": "object",
        "properties": {
            "outputs": {"type": "array", "items": {"type": "string", "enum": [s.name for s in outputs]}}
        },
        "additionalProperties": False,
    }
    predict_body = {
        "type": "object",
        "properties": {"inputs": inputs_schema, "parameters": params},
        "required": ["inputs"],
        "additionalProperties": False,
    }
    predict_example, v2_example = _examples(sample or {}, inputs)

    v2_input = {
        "type": "object",
        "properties": {
            # a single-input model takes any one name (protocol.input_spec)
            "name": {"type": "string"} if len(inputs) == 1 else {"type": "string", "enum": [s.name for s in inputs]},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {"type": "string", "enum": sorted({s.datatype for s in inputs})},
            "data": {"type": "array"},
            "parameters": {"type": "object"},
        },
        "required": ["name", "shape", "datatype", "data"],
    }
    v2_tensor_out = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {"type": "string"},
            "data": {"type": "array"},
            "parameters": {"type": "object"},
        },
        "required": ["name", "shape", "datatype"],
    }
    v2_body = {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "items": v2_input, "minItems": len(inputs), "maxItems": len(inputs)},
            "outputs": {
                "type": "array",
                "items": {"type": "object", "properties": {"name": {"type": "string", "enum": [s.name for s in outputs]}}, "required": ["name"]},
            },
        },
        "required": ["inputs"],
    }
    v2_response = {
        "type": "object",
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": v2_tensor_out},
        },
        "required": ["model_name", "outputs"],
    }
    tensor_meta = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "datatype": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer"}}},
    }
    model_param = [{"name": "model_name", "in": "path", "required": True, "schema": {"type": "string", "enum": [name]}}]
    flag = lambda key: {"type": "object", "properties": {key: {"type": "boolean"}}}  # noqa: E731

    paths: dict[str, Any] = {
        "/predict": {
            "post": {
                "summary": f"Predict with {name}",
                "description": "Send rows (a list of rows, or a mapping of input names to arrays).",
                "operationId": "predict",
                "requestBody": _json_body(predict_body, predict_example),
                "responses": _responses(out_schema, 413, 422, 500, 503),
            }
        },
        "/v2/health/live": {"get": {"summary": "Liveness", "operationId": "v2_live", "responses": _responses(flag("live"))}},
        "/v2/health/ready": {
            "get": {"summary": "Readiness", "operationId": "v2_ready", "responses": _responses(flag("ready"), 503)}
        },
        "/v2/models/{model_name}": {
            "get": {
                "summary": "Model metadata (KServe V2)",
                "operationId": "v2_model_metadata",
                "parameters": model_param,
                "responses": _responses(
                    {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "versions": {"type": "array", "items": {"type": "string"}},
                            "platform": {"type": "string"},
                            "inputs": {"type": "array", "items": tensor_meta},
                            "outputs": {"type": "array", "items": tensor_meta},
                        },
                    },
                    404,
                    503,
                ),
            }
        },
        "/v2/models/{model_name}/ready": {
            "get": {
                "summary": "Model readiness (KServe V2)",
                "operationId": "v2_model_ready",
                "parameters": model_param,
                "responses": _responses(flag("ready"), 404, 503),
            }
        },
        "/v2/models/{model_name}/infer": {
            "post": {
                "summary": f"Infer with {name} (KServe V2 / Open Inference Protocol)",
                "description": BINARY_NOTE,
                "operationId": "v2_infer",
                "parameters": model_param,
                "requestBody": _with_binary(_json_body(v2_body, v2_example)),
                "responses": _binary_ok(_responses(v2_response, 404, 413, 422, 500, 503)),
            }
        },
        "/v2/models/{model_name}/config": {
            "get": {
                "summary": "Model configuration (Triton's model_configuration extension)",
                "operationId": "v2_model_config",
                "parameters": model_param,
                "responses": _responses({"type": "object", "properties": {"name": {"type": "string"}, "max_batch_size": {"type": "integer"}}}, 404, 503),
            }
        },
        "/v2/models/{model_name}/stats": {
            "get": {
                "summary": "Inference statistics of the model (Triton's statistics extension)",
                "operationId": "v2_model_stats",
                "parameters": model_param,
                "responses": _responses(_STATS, 404, 503),
            }
        },
        "/v2/models/stats": {
            "get": {"summary": "Inference statistics of every model", "operationId": "v2_stats", "responses": _responses(_STATS, 503)}
        },
        "/v2/repository/index": {
            "post": {
                "summary": "The models this server serves (Triton's model_repository extension)",
                "operationId": "v2_repository_index",
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": {"type": "object", "properties": {"ready": {"type": "boolean"}}}}},
                },
                "responses": _responses({"type": "array", "items": {"type": "object"}}, 422),
            }
        },
        "/v2": {
            "get": {
                "summary": "Server metadata (KServe V2)",
                "operationId": "v2_server_metadata",
                "responses": _responses(
                    {"type": "object", "properties": {"name": {"type": "string"}, "version": {"type": "string"}, "extensions": {"type": "array", "items": {"type": "string"}}}}
                ),
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "operationId": "metrics",
                "responses": {
                    "200": {
                        "description": "Prometheus text format, or OpenMetrics 1.0.0 when Accept names application/openmetrics-text",
                        "content": {"text/plain": {"schema": {"type": "string"}}, "application/openmetrics-text": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }
    for suffix in ("", "/ready", "/infer", "/config", "/stats"):
        paths[f"/v2/models/{{model_name}}/versions/{{model_version}}{suffix}"] = _versioned(paths[f"/v2/models/{{model_name}}{suffix}"])
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"{name} (mlpack)",
            "version": __version__,
            "description": "Inputs: "
            + ", ".join(f"{s.name} {s.dtype} {s.v2_shape()}" for s in inputs)
            + ". Outputs: "
            + ", ".join(f"{s.name} {s.dtype} {s.v2_shape()}" for s in outputs)
            + ".",
        },
        "paths": paths,
    }
