"""Table and text samples: the schema capture reads, and the DataFrame it rebuilds."""

from __future__ import annotations

import numpy as np
import pytest

from mlpack.bundle.samples import is_table_sample, table_sample
from mlpack.bundle.spec import ColumnSpec, TableSchema
from mlpack.errors import CaptureError

pd = pytest.importorskip("pandas")


def _frame() -> "pd.DataFrame":
    return pd.DataFrame(
        {
            "age": np.array([31, 45, 27], dtype=np.int64),
            "small": np.array([1, 2, 3], dtype=np.int16),
            "income": [52_000.5, np.nan, 61_000.25],
            "ratio": np.array([0.5, 0.25, 0.125], dtype=np.float32),
            "city": pd.Series(["oslo", "rome", "oslo"], dtype=object),
            "plan": pd.Categorical(["gold", "basic", "gold"], categories=["basic", "gold", "vip"], ordered=True),
            "member": [True, False, True],
        }
    )


def test_dataframe_schema_keeps_order_dtypes_categories_and_nullability() -> None:
    schema, columns = table_sample(_frame())
    assert schema.kind == "table" and schema.names == ["age", "small", "income", "ratio", "city", "plan", "member"]
    by = {c.name: c for c in schema.columns}
    assert (by["age"].dtype, by["small"].dtype, by["ratio"].dtype, by["member"].dtype) == ("int64", "int16", "float32", "bool")
    assert by["income"] == ColumnSpec("income", "float64", "float64", nullable=True)
    assert not by["age"].nullable and not by["city"].nullable
    assert by["city"].dtype == "str" and by["city"].pandas_dtype == "object"
    assert by["plan"].categories == ("basic", "gold", "vip") and by["plan"].ordered and by["plan"].value_kind == "str"
    assert columns["city"].dtype == object and columns["plan"].tolist() == ["gold", "basic", "gold"]
    assert np.isnan(columns["income"][1]) and columns["small"].dtype == np.int16


def test_model_input_rebuilds_the_exact_dataframe() -> None:
    frame = _frame()
    schema, columns = table_sample(frame)
    again = schema.model_input(columns)
    pd.testing.assert_frame_equal(again, frame)
    assert list(again["plan"].cat.categories) == ["basic", "gold", "vip"] and again["plan"].cat.ordered


@pytest.mark.parametrize("cats", ["object", "str"])
def test_categories_keep_their_own_dtype(cats: str) -> None:
    frame = pd.DataFrame({"city": pd.Categorical(pd.Series(["oslo", "rome", "oslo"], dtype=cats))})
    schema, columns = table_sample(frame)
    assert schema.columns[0].categories_dtype == str(frame["city"].cat.categories.dtype)
    pd.testing.assert_frame_equal(TableSchema.from_dict(schema.to_dict()).model_input(columns), frame)


def test_schema_round_trips_through_a_dict() -> None:
    schema, _ = table_sample(_frame())
    assert TableSchema.from_dict(schema.to_dict()) == schema
    assert TableSchema.from_dict(None) is None


def test_dict_of_columns_and_records_give_the_same_table() -> None:
    records = [{"age": 31, "city": "oslo", "score": 0.5}, {"age": 45, "city": "rome", "score": 1.5}]
    columns = {"age": [31, 45], "city": ["oslo", "rome"], "score": [0.5, 1.5]}
    a, ca = table_sample(records)
    b, cb = table_sample(columns)
    assert [(c.name, c.dtype) for c in a.columns] == [(c.name, c.dtype) for c in b.columns] == [
        ("age", "int64"), ("city", "str"), ("score", "float64")]
    for name in ca:
        assert ca[name].tolist() == cb[name].tolist()
    assert is_table_sample(records) and is_table_sample(columns)


def test_text_is_a_list_of_strings() -> None:
    schema, columns = table_sample(["a first text", "another one"], "review")
    assert schema.kind == "text" and schema.names == ["review"]
    assert columns["review"].tolist() == ["a first text", "another one"]
    assert schema.model_input(columns) == ["a first text", "another one"]
    assert table_sample(np.array(["x", "y"]))[0].kind == "text"


def test_tensors_are_not_tables() -> None:
    assert table_sample(np.zeros((3, 2))) is None
    assert table_sample([[1.0, 2.0], [3.0, 4.0]]) is None
    assert table_sample({"input": np.zeros((3, 2))}) is None
    assert not is_table_sample({"a": np.zeros((2, 2))})


@pytest.mark.parametrize(
    ("sample", "words"),
    [
        (pd.DataFrame({"when": pd.to_datetime(["2024-01-01", "2024-01-02"])}), ["'when'", "datetime64", "float, int, bool, str"]),
        (pd.DataFrame({"mixed": pd.Series(["a", 1], dtype=object)}), ["'mixed'", "int, str"]),
        (pd.DataFrame({"level": pd.Categorical([1, None])}), ["'level'", "missing values", "numeric category"]),
        (pd.Series(["a text", None]), ["'text'", "missing values", "text"]),
        (pd.DataFrame({0: [1.0], 1: [2.0]}), ["column name 0"]),
        (pd.DataFrame({"n": pd.array([1, None], dtype="Int64")}), ["'n'", "Int64"]),
        ([{"a": 1, "b": 2}, {"a": 1}], ["record 1", "'b'"]),
        ({"a": [1, 2], "b": [1]}, ["different lengths"]),
        (pd.DataFrame({"a": []}), ["empty"]),
    ],
)
def test_unsupported_tables_are_refused_naming_the_column(sample, words) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CaptureError) as info:
        table_sample(sample)
    text = str(info.value)
    for word in words:
        assert word in text, text
    assert info.value.hint


@pytest.mark.parametrize(("value", "parsed"), [
    (None, ()),
    ({"input": [1]}, (("input", (1,)),)),
    ({"input": {1: "seq", 0: "batch"}}, (("input", (1,)),)),
    ("tokens:1,mask:1,tokens:2", (("mask", (1,)), ("tokens", (1, 2)))),
    ({"input": [0]}, ()),
])
def test_dynamic_axes_spellings(value, parsed) -> None:  # type: ignore[no-untyped-def]
    from mlpack.bundle.spec import parse_dynamic_axes

    assert parse_dynamic_axes(value) == parsed


@pytest.mark.parametrize("value", ["input", "input:x", {"input": [-1]}, [1], {"": [1]}])
def test_bad_dynamic_axes_spellings(value) -> None:  # type: ignore[no-untyped-def]
    from mlpack.bundle.spec import parse_dynamic_axes

    with pytest.raises(CaptureError) as info:
        parse_dynamic_axes(value)
    assert info.value.hint


@pytest.mark.filterwarnings("error")  # pandas 3 warns where pandas 4 will raise
def test_rebuilding_refuses_a_value_outside_the_categories() -> None:
    """Whatever transport brought it, an unseen category never silently becomes NaN."""
    from mlpack.errors import ServeError

    schema, columns = table_sample(_frame())
    columns["plan"] = np.array(["gold", "platinum", "basic"], dtype=object)
    with pytest.raises(ServeError) as info:
        schema.model_input(columns)
    assert info.value.status == 422 and "'platinum'" in info.value.message and info.value.context["input"] == "plan"


@pytest.mark.filterwarnings("error")  # pandas 3 warns where pandas 4 will raise
def test_missing_strings_and_categories_are_nullable_columns(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """None/NaN in a string or string-category column: a nullable column, rebuilt as NaN,
    stored in sample.npz as strings plus a mask (no pickle)."""
    from mlpack.bundle.bundle import Bundle
    from mlpack.bundle.capturing import _save_npz
    from mlpack.bundle.spec import NPZ_MISSING

    frame = pd.DataFrame({"city": pd.Series(["oslo", None, np.nan], dtype=object),
                          "plan": pd.Categorical(["gold", None, "basic"])})
    schema, columns = table_sample(frame)
    assert [(c.name, c.nullable) for c in schema.columns] == [("city", True), ("plan", True)]
    assert columns["city"].tolist() == ["oslo", None, None] and columns["plan"].tolist() == ["gold", None, "basic"]
    again = schema.model_input(columns)
    assert again["city"].isna().tolist() == [False, True, True] and again["plan"].isna().tolist() == [False, True, False]
    _save_npz(tmp_path / "s.npz", columns)
    with np.load(tmp_path / "s.npz", allow_pickle=False) as data:
        assert sorted(data.files) == sorted(["city", "plan", NPZ_MISSING + "city", NPZ_MISSING + "plan"])
    loaded = Bundle._npz(type("B", (), {"path": tmp_path})(), "s.npz")  # type: ignore[arg-type]
    assert loaded["city"].tolist() == ["oslo", None, None] and loaded["plan"].tolist() == ["gold", None, "basic"]


def test_text_options_reach_the_fitted_vectorizers() -> None:
    """skl2onnx keys options by the estimator it converts: for a ColumnTransformer that is the
    fitted clone in ``transformers_``, not the unfitted one the user built."""
    pytest.importorskip("sklearn")
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    from mlpack.bundle.convert_table import _text_options

    frame = pd.DataFrame({"review": ["très bon café", "service lent", "bon plat", "lent et froid"], "n": [1, 2, 3, 4]})
    given = TfidfVectorizer()
    chars = CountVectorizer(analyzer="char_wb")
    union = FeatureUnion([("w", CountVectorizer()), ("c", chars)])
    ct = ColumnTransformer([("txt", given, "review"), ("u", union, "review")], remainder="passthrough")
    model = Pipeline([("ct", ct), ("lr", LogisticRegression())]).fit(frame, [1, 0, 1, 0])
    fitted = model.named_steps["ct"].named_transformers_["txt"]
    fitted_union = model.named_steps["ct"].named_transformers_["u"]
    assert fitted is not given  # the clone skl2onnx sees
    options = _text_options(model)
    assert options[id(fitted)] == {"locale": "C.UTF-8", "tokenexp": r"[\p{L}\p{N}_]{2,}"}
    words, letters = (t for _, t in fitted_union.transformer_list)
    assert options[id(words)]["tokenexp"] and "tokenexp" not in options[id(letters)]  # a char analyzer keeps its own
    # a bare pipeline's vectorizer is fitted in place
    text = Pipeline([("tf", TfidfVectorizer(token_pattern=r"\S+")), ("lr", LogisticRegression())]).fit(frame["review"], [1, 0, 1, 0])
    assert _text_options(text) == {id(text.named_steps["tf"]): {"locale": "C.UTF-8"}}
