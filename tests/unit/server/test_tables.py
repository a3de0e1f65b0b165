"""Requests to a table model: records, columns, rows in column order, V2 per column; 422s name the column."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from mlpack.bundle.spec import ColumnSpec, TableSchema
from mlpack.errors import ServeError
from mlpack.server.codec import decode_predict, decode_v2
from mlpack.server.tensors import Spec

TABLE = TableSchema(
    "table",
    (
        ColumnSpec("age", "int64", "int64"),
        ColumnSpec("income", "float64", "float64", nullable=True),
        ColumnSpec("city", "str", "object"),
        ColumnSpec("plan", "category", "category", categories=("basic", "gold")),
        ColumnSpec("member", "bool", "bool"),
    ),
)
INPUTS = [Spec("age", "int64", (None,)), Spec("income", "float64", (None,)), Spec("city", "str", (None,)),
          Spec("plan", "str", (None,)), Spec("member", "bool", (None,))]
OUTPUTS = [Spec("label", "str", (None,))]
ROWS = [[31, 52000.5, "oslo", "gold", True], [45, None, "rome", "basic", False]]
RECORDS = [dict(zip(TABLE.names, row)) for row in ROWS]


def _predict(inputs: object) -> dict[str, np.ndarray]:
    return decode_predict(orjson.dumps({"inputs": inputs}), INPUTS, OUTPUTS, TABLE).feeds


def _check(feeds: dict[str, np.ndarray]) -> None:
    assert list(feeds) == TABLE.names
    assert feeds["age"].dtype == np.int64 and feeds["age"].tolist() == [31, 45]
    assert feeds["income"].dtype == np.float64 and feeds["income"][0] == 52000.5 and math.isnan(feeds["income"][1])
    assert feeds["city"].dtype == object and feeds["city"].tolist() == ["oslo", "rome"]
    assert feeds["plan"].tolist() == ["gold", "basic"] and feeds["member"].tolist() == [True, False]
    assert all(a.shape == (2,) for a in feeds.values())


def test_records_columns_and_rows_decode_alike() -> None:
    _check(_predict(RECORDS))
    _check(_predict({n: [r[i] for r in ROWS] for i, n in enumerate(TABLE.names)}))
    _check(_predict(ROWS))
    # [[v], [v]] columns (an [N, 1] array's tolist()) are the same column
    _check(_predict({n: [[r[i]] for r in ROWS] for i, n in enumerate(TABLE.names)}))


def test_one_record_of_scalars_is_one_row() -> None:
    feeds = _predict(RECORDS[0])
    assert feeds["age"].tolist() == [31] and feeds["city"].tolist() == ["oslo"]


@pytest.mark.parametrize(
    ("inputs", "column", "words"),
    [
        ([{k: v for k, v in RECORDS[0].items() if k != "city"}], "city", ["lacks column 'city'", "(str)"]),
        ([{**RECORDS[0], "zip": 1}], "zip", ["unknown column 'zip'"]),
        ([{**RECORDS[0], "age": "31"}], "age", ["column 'age'", "int64"]),
        ([{**RECORDS[0], "age": 31.5}], "age", ["column 'age'", "fractional"]),
        ([{**RECORDS[0], "age": True}], "age", ["column 'age'", "booleans"]),
        ([{**RECORDS[0], "age": None}], "age", ["column 'age'", "missing value"]),
        ([{**RECORDS[0], "city": 7}], "city", ["column 'city'", "strings"]),
        ([{**RECORDS[0], "plan": "vip"}], "plan", ["column 'plan'", "'vip'", "['basic', 'gold']"]),
        ([{**RECORDS[0], "plan": {}}], "plan", ["column 'plan'", "{}"]),  # found by schemathesis: was a 500
        ([{**RECORDS[0], "plan": ["gold"]}], "plan", ["column 'plan'"]),
        ([{**RECORDS[0], "member": "yes"}], "member", ["column 'member'"]),
        ([{**RECORDS[0], "member": 1}], "member", ["column 'member'", "true or false"]),  # schemathesis: schema says boolean
        ({"age": [1, 2], "income": [1.0], "city": ["a", "b"], "plan": ["gold"] * 2, "member": [True] * 2}, None,
         ["different lengths"]),
    ],
)
def test_bad_values_get_422_naming_the_column(inputs: object, column: str | None, words: list[str]) -> None:
    with pytest.raises(ServeError) as info:
        _predict(inputs)
    assert info.value.status == 422
    for word in words:
        assert word in info.value.message, info.value.message
    if column is not None:
        assert info.value.context["input"] == column


def test_rows_of_the_wrong_length_name_the_column_order() -> None:
    with pytest.raises(ServeError) as info:
        _predict([[31, 1.0, "oslo"]])
    assert info.value.status == 422 and "['age', 'income', 'city', 'plan', 'member']" in info.value.message


def test_v2_takes_one_input_per_column_like_pandas_codec() -> None:
    body = {"inputs": [
        {"name": "age", "datatype": "INT64", "shape": [2], "data": [31, 45]},
        {"name": "income", "datatype": "FP64", "shape": [2, 1], "data": [52000.5, None]},
        {"name": "city", "datatype": "BYTES", "shape": [2], "data": ["oslo", "rome"]},
        {"name": "plan", "datatype": "BYTES", "shape": [2], "data": ["gold", "basic"]},
        {"name": "member", "datatype": "BOOL", "shape": [2], "data": [True, False]},
    ]}
    _check(decode_v2(orjson.dumps(body), None, INPUTS, OUTPUTS, TABLE).feeds)
    body["inputs"][3]["data"] = ["gold", "vip"]
    with pytest.raises(ServeError) as info:
        decode_v2(orjson.dumps(body), None, INPUTS, OUTPUTS, TABLE)
    assert info.value.status == 422 and "column 'plan'" in info.value.message


def test_a_dataframe_payload_decodes_to_its_columns_with_missing_values() -> None:
    """What Service.predict sends for a DataFrame (NaN as null) decodes to the same columns."""
    pd = pytest.importorskip("pandas")
    from mlpack.endpoint import to_payload

    frame = pd.DataFrame({
        "age": [31, 45], "income": [52000.5, np.nan], "city": ["oslo", "rome"],
        "plan": pd.Categorical(["gold", "basic"], categories=["basic", "gold"]), "member": [True, False],
    })
    body = orjson.dumps(to_payload(frame))
    assert b"NaN" not in body and b"null" in body
    _check(decode_predict(body, INPUTS, OUTPUTS, TABLE).feeds)
    records = orjson.dumps(to_payload(frame.to_dict("records")))
    _check(decode_predict(records, INPUTS, OUTPUTS, TABLE).feeds)
    columns = {n: np.asarray(frame[n].tolist(), dtype=object if n in ("city", "plan") else None) for n in frame.columns}
    _check(decode_predict(orjson.dumps(to_payload(columns)), INPUTS, OUTPUTS, TABLE).feeds)


def test_nullable_string_and_category_columns_keep_null_as_none() -> None:
    table = TableSchema("table", (ColumnSpec("city", "str", "object", nullable=True),
                                  ColumnSpec("plan", "category", "category", nullable=True, categories=("basic", "gold"))))
    inputs = [Spec("city", "str", (None,)), Spec("plan", "str", (None,))]
    feeds = decode_predict(orjson.dumps({"inputs": [{"city": None, "plan": "gold"}, {"city": "oslo", "plan": None}]}),
                           inputs, OUTPUTS, table).feeds
    assert feeds["city"].tolist() == [None, "oslo"] and feeds["plan"].tolist() == ["gold", None]
    with pytest.raises(ServeError, match="column 'city': expected strings, got 3"):
        decode_predict(orjson.dumps({"inputs": {"city": [None, 3], "plan": ["gold", "gold"]}}), inputs, OUTPUTS, table)


def test_grpc_takes_one_column_per_input_like_rest_v2() -> None:
    from mlpack.server.grpc.codec import decode_request
    from mlpack.server.grpc.messages import message

    request = message("ModelInferRequest")(model_name="t")
    request.inputs.add(name="age", datatype="INT64", shape=[2, 1]).contents.int64_contents.extend([31, 45])
    request.inputs.add(name="income", datatype="FP64", shape=[2]).contents.fp64_contents.extend([52000.5, math.nan])
    request.inputs.add(name="city", datatype="BYTES", shape=[2]).contents.bytes_contents.extend([b"oslo", b"rome"])
    plan = request.inputs.add(name="plan", datatype="BYTES", shape=[2])
    plan.contents.bytes_contents.extend([b"gold", b"basic"])
    request.inputs.add(name="member", datatype="BOOL", shape=[2]).contents.bool_contents.extend([True, False])
    _check(decode_request(request, INPUTS, OUTPUTS, TABLE).feeds)
    plan.contents.bytes_contents[1] = b"vip"
    with pytest.raises(ServeError) as info:
        decode_request(request, INPUTS, OUTPUTS, TABLE)
    assert info.value.status == 422 and "column 'plan'" in info.value.message


TEXT = TableSchema("text", (ColumnSpec("text", "str", "object"),))
TEXT_INPUTS = [Spec("text", "str", (None,))]


def _text(inputs: object) -> dict[str, np.ndarray]:
    return decode_predict(orjson.dumps({"inputs": inputs}), TEXT_INPUTS, OUTPUTS, TEXT).feeds


def test_a_text_model_takes_a_list_of_texts_or_a_column_of_them() -> None:
    for inputs in (["good fun", "café", ""], [["good fun"], ["café"], [""]], {"text": [["good fun"], ["café"], [""]]},
                   {"text": ["good fun", "café", ""]}, [{"text": "good fun"}, {"text": "café"}, {"text": ""}]):
        feeds = _text(inputs)
        assert feeds["text"].shape == (3,) and feeds["text"].tolist() == ["good fun", "café", ""], inputs


@pytest.mark.parametrize("inputs, words", [
    ("one text", ["list of texts, not one string"]),
    ([["two", "texts"]], ["shape [N]", "[1, 2]"]),
    ([1.5, 2.5], ["expected strings"]),
    (["x", None], ["expected strings", "nulls"]),
])
def test_a_text_model_refuses_what_is_not_a_list_of_texts(inputs: object, words: list[str]) -> None:
    with pytest.raises(ServeError) as err:
        _text(inputs)
    assert err.value.status == 422 and all(w in str(err.value) for w in words), str(err.value)
    if isinstance(inputs, str):
        assert '{"inputs": ["a text"' in (err.value.hint or "")
