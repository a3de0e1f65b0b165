"""ONNX graph edits that give a converted model a table's or a text's interface.

Converters want 2-D float32/int64/string inputs; a table bundle takes one
1-D input per column in the column's own dtype (float64 stays float64, so
a JSON number reaches the model unrounded until the model's own cast), and
answers outputs shaped like the original's (a regressor's ``[N]``, not
``[N, 1]``). These edits wrap the converted graph with ``Reshape``/``Cast``
(and ``Concat`` for models that take one feature matrix) in front and
``Reshape`` behind; the converted nodes are untouched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["INTERNAL_PREFIX", "wrap_columns", "columns_to_matrix", "squeeze_outputs", "set_text_locale", "TEXT_LOCALE", "converter_dtype"]

# Present in every glibc since 2.35 and in Debian's libc-bin; onnxruntime's
# default (en_US.UTF-8) is missing from minimal images and fails the load.
TEXT_LOCALE = "C.UTF-8"
INTERNAL_PREFIX = _PREFIX = "mlpack_table_"  # names of the nodes and values these edits add


def converter_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype a column is handed to skl2onnx/onnxmltools as (float32, int64, bool or str)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.dtype(np.float32)
    if dtype.kind in "iu":
        return np.dtype(np.int64)
    if dtype.kind == "b":
        return np.dtype(bool)
    return np.dtype(object)


def _elem(dtype: np.dtype) -> int:
    from onnx import helper, TensorProto

    dtype = np.dtype(dtype)
    if dtype.kind in "OUS":
        return TensorProto.STRING
    return helper.np_dtype_to_tensor_dtype(dtype)


def _minus_one_by_one(proto: object, name: str) -> None:
    from onnx import numpy_helper

    proto.graph.initializer.append(numpy_helper.from_array(np.array([-1, 1], dtype=np.int64), name))  # type: ignore[attr-defined]


def _front(proto: object, nodes: list) -> None:
    graph = proto.graph  # type: ignore[attr-defined]
    old = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + old)


def wrap_columns(model_bytes: bytes, columns: Mapping[str, np.dtype]) -> bytes:
    """Replaces each 2-D ``[N, 1]`` column input by a 1-D input of the column's dtype.

    ``columns``: input name -> the column's dtype, in column order; every
    graph input must be one of them.
    """
    import onnx
    from onnx import helper

    proto = onnx.load_from_string(model_bytes)
    graph = proto.graph
    by_name = {i.name: i for i in graph.input}
    if set(by_name) != set(columns):
        raise ValueError(f"converted inputs {sorted(by_name)} are not the columns {list(columns)}")
    shape = _PREFIX + "shape"
    _minus_one_by_one(proto, shape)
    nodes = []
    new_inputs = []
    for i, (name, dtype) in enumerate(columns.items()):
        inner = f"{_PREFIX}{i}"
        want = by_name[name].type.tensor_type.elem_type
        for node in graph.node:
            node.input[:] = [inner if x == name else x for x in node.input]
        reshaped = inner + "_2d" if want != _elem(dtype) else inner
        nodes.append(helper.make_node("Reshape", [name, shape], [reshaped], name=f"{_PREFIX}reshape_{i}"))
        if reshaped != inner:
            nodes.append(helper.make_node("Cast", [reshaped], [inner], to=want, name=f"{_PREFIX}cast_{i}"))
        new_inputs.append(helper.make_tensor_value_info(name, _elem(dtype), ["batch"]))
    del graph.input[:]
    graph.input.extend(new_inputs)
    _front(proto, nodes)
    return proto.SerializeToString()


def columns_to_matrix(model_bytes: bytes, matrix_input: str, columns: Mapping[str, np.dtype]) -> bytes:
    """Replaces the model's one ``[N, F]`` feature input by one 1-D input per column
    (cast to the matrix's dtype and concatenated in column order)."""
    import onnx
    from onnx import helper

    proto = onnx.load_from_string(model_bytes)
    graph = proto.graph
    if [i.name for i in graph.input] != [matrix_input]:
        raise ValueError(f"expected the single input {matrix_input!r}, got {[i.name for i in graph.input]}")
    want = graph.input[0].type.tensor_type.elem_type
    inner = _PREFIX + "features"
    for node in graph.node:
        node.input[:] = [inner if x == matrix_input else x for x in node.input]
    shape = _PREFIX + "shape"
    _minus_one_by_one(proto, shape)
    nodes, parts, new_inputs = [], [], []
    for i, (name, dtype) in enumerate(columns.items()):
        col2d, cast = f"{_PREFIX}{i}_2d", f"{_PREFIX}{i}"
        nodes.append(helper.make_node("Reshape", [name, shape], [col2d], name=f"{_PREFIX}reshape_{i}"))
        nodes.append(helper.make_node("Cast", [col2d], [cast], to=want, name=f"{_PREFIX}cast_{i}"))
        parts.append(cast)
        new_inputs.append(helper.make_tensor_value_info(name, _elem(dtype), ["batch"]))
    nodes.append(helper.make_node("Concat", parts, [inner], axis=1, name=_PREFIX + "concat"))
    del graph.input[:]
    graph.input.extend(new_inputs)
    _front(proto, nodes)
    return proto.SerializeToString()


def squeeze_outputs(model_bytes: bytes, names: Sequence[str]) -> bytes:
    """Reshapes the named ``[N, 1]`` outputs to ``[N]`` (what the original's predict returns)."""
    import onnx
    from onnx import helper, numpy_helper

    proto = onnx.load_from_string(model_bytes)
    graph = proto.graph
    targets = [o for o in graph.output if o.name in set(names)]
    if not targets:
        return model_bytes
    flat = _PREFIX + "flat"
    graph.initializer.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), flat))
    for i, out in enumerate(targets):
        inner = f"{_PREFIX}out_{i}"
        for node in graph.node:
            node.output[:] = [inner if x == out.name else x for x in node.output]
            node.input[:] = [inner if x == out.name else x for x in node.input]
        graph.node.append(helper.make_node("Reshape", [inner, flat], [out.name], name=f"{_PREFIX}squeeze_{i}"))
        dims = out.type.tensor_type.shape.dim
        while len(dims) > 1:
            del dims[len(dims) - 1]
    return proto.SerializeToString()


def set_text_locale(model_bytes: bytes, locale: str = TEXT_LOCALE) -> bytes:
    """Gives every ``StringNormalizer`` without a locale an explicit one that exists in the image."""
    import onnx
    from onnx import helper

    proto = onnx.load_from_string(model_bytes)
    changed = False
    for node in proto.graph.node:
        if node.op_type == "StringNormalizer" and not any(a.name == "locale" for a in node.attribute):
            node.attribute.append(helper.make_attribute("locale", locale))
            changed = True
    return proto.SerializeToString() if changed else model_bytes
