"""Tables and text end to end: real conversions, real onnxruntime, the server's request forms.

The matrix (which convert to ONNX, which fall back to the python flavour):

================================================ ======= =====================================
case                                             flavour why
================================================ ======= =====================================
mixed DataFrame, ColumnTransformer by name, RF   onnx    one string/int/float/bool input each
all-numeric DataFrame selected by name           onnx
dict of columns, list of records                 onnx    the same table as the DataFrame
Tfidf + LogisticRegression on text, str labels   onnx    locale C.UTF-8, Unicode token regex
Tfidf on a DataFrame text column + OneHot        onnx    options reach the fitted clone
HashingVectorizer + SGD on text                  python  skl2onnx has no HashingVectorizer
XGBoost / LightGBM on a DataFrame                onnx    columns cast and concatenated in-graph
LightGBM on a pandas category column             python  onnxmltools cannot convert it
CatBoost with cat_features                       python  no ONNX converter
================================================ ======= =====================================
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlpack import capture
from mlpack.bundle import Bundle
from mlpack.endpoint import to_payload
from mlpack.errors import CaptureError

pd = pytest.importorskip("pandas")
pytest.importorskip("skl2onnx")

N = 160


@pytest.fixture(scope="module")
def frame() -> "pd.DataFrame":
    """Mixed dtypes: int, float with NaN-free values, strings, bool; labels as strings."""
    rng = np.random.default_rng(7)
    return pd.DataFrame({
        "age": rng.integers(18, 80, N),
        "income": rng.normal(50_000, 12_000, N).round(2),
        "city": pd.Series(rng.choice(["oslo", "rome", "lima", "kyiv"], N), dtype=object),
        "member": rng.random(N) > 0.4,
    })


def _labels(frame: "pd.DataFrame") -> np.ndarray:
    return np.where(frame["income"] + 300 * frame["age"] > 62_000, "high", "low")


@pytest.fixture(scope="module")
def forest(frame):  # type: ignore[no-untyped-def]
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    ct = ColumnTransformer([
        ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
        ("num", StandardScaler(), ["income"]),
        ("pass", "passthrough", ["age", "member"]),
    ])
    return Pipeline([("ct", ct), ("rf", RandomForestClassifier(n_estimators=15, random_state=0))]).fit(frame, _labels(frame))


@pytest.fixture(scope="module")
def forest_bundle(forest, frame, tmp_path_factory) -> Bundle:  # type: ignore[no-untyped-def]
    return capture(forest, frame, name="mixed-forest", path=tmp_path_factory.mktemp("t") / "forest")


def _app(bundle: Bundle) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from mlpack.server import ServerConfig, create_app

    app = create_app(bundle.path, ServerConfig(bundle=str(bundle.path), access_log=False))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert app.state.loaded.wait(60)
        yield client


@pytest.fixture(scope="module")
def forest_client(forest_bundle: Bundle) -> Iterator[Any]:
    yield from _app(forest_bundle)


def test_mixed_dataframe_converts_with_one_input_per_column(forest_bundle: Bundle, forest, frame) -> None:  # type: ignore[no-untyped-def]
    b = forest_bundle
    assert b.flavor == "onnx" and "conversion_error" not in b.manifest["model"]
    assert [(s.name, s.dtype, s.shape) for s in b.inputs] == [
        ("age", "int64", (None,)), ("income", "float64", (None,)), ("city", "str", (None,)), ("member", "bool", (None,))]
    assert [(s.name, s.dtype, s.shape) for s in b.outputs] == [("label", "str", (None,)), ("probabilities", "float32", (None, 2))]
    assert b.manifest["model"]["classes"] == ["high", "low"]
    assert b.table.names == list(frame.columns) and b.table.column("city").pandas_dtype == "object"
    # the whole sample is stored for the image's parity check, and parity ran on every row, labels exactly
    assert len(b.sample()["age"]) == N and b.parity["rows"] == N
    assert b.parity["outputs"]["label"]["kind"] == "label" and b.parity["outputs"]["label"]["mismatches"] == 0
    out = b.load_predictor(threads=1).run({c: frame[c].to_numpy()[:7] for c in frame.columns})
    np.testing.assert_array_equal(out["label"], forest.predict(frame[:7]))
    np.testing.assert_allclose(out["probabilities"], forest.predict_proba(frame[:7]), atol=1e-5)
    text = b.summary()
    assert "table      age: int64" in text and "city: str (pandas object)" in text and "converted to ONNX" in text


def test_the_model_loads_without_the_default_locale(tmp_path: Path) -> None:
    """skl2onnx's text converter leaves the locale to onnxruntime (en_US.UTF-8), which a
    minimal image lacks; the captured graph names C.UTF-8 on every StringNormalizer."""
    import onnx
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    texts = ["Émile aime l'ÉCOLE", "l'école est fermée", "le chat DORT", "un chat et un chien", "Ça va à l'école"] * 4
    labels = ["school", "school", "pets", "pets", "school"] * 4
    model = Pipeline([("tf", TfidfVectorizer()), ("lr", LogisticRegression())]).fit(texts, labels)
    b = capture(model, texts, name="text", path=tmp_path / "text")
    assert b.flavor == "onnx" and [(s.name, s.dtype, s.shape) for s in b.inputs] == [("text", "str", (None,))]
    assert b.table.kind == "text"
    proto = onnx.load(str(b.model_path))
    locales = [a.s.decode() for n in proto.graph.node if n.op_type == "StringNormalizer" for a in n.attribute if a.name == "locale"]
    assert locales == ["C.UTF-8"]
    out = b.load_predictor(threads=1).run({"text": np.array(["ÉCOLE fermée", "un CHAT"], dtype=object)})
    assert out["label"].tolist() == model.predict(["ÉCOLE fermée", "un CHAT"]).tolist() == ["school", "pets"]
    np.testing.assert_allclose(out["probabilities"], model.predict_proba(["ÉCOLE fermée", "un CHAT"]), atol=1e-5)
    for client in _app(b):  # a text model takes a list of strings, and V2 one BYTES input
        r = client.post("/predict", json={"inputs": ["ÉCOLE fermée", "un CHAT"]})
        assert r.status_code == 200 and r.json()["outputs"]["label"] == ["school", "pets"]
        v2 = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["ÉCOLE fermée", "un CHAT"]}]}
        r = client.post("/v2/models/text/infer", json=v2)
        assert r.status_code == 200 and r.json()["outputs"][0]["data"] == ["school", "pets"]
        assert client.get("/v2/models/text").json()["parameters"]["content_type"] == "str"
        r = client.post("/predict", json={"inputs": [3, 4]})
        assert r.status_code == 422 and "expected strings" in r.json()["error"]


def test_a_text_column_of_a_dataframe_converts(frame, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Tfidf on a free-text column, next to a one-hot column: the ColumnTransformer's fitted
    vectorizer (a clone of the one given) gets the Unicode token pattern, so the graph
    tokenizes 'café' and 'Ça' like sklearn and the ONNX flavour answers like the model."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(4)
    words = np.array(["café", "Ça", "très", "bon", "mauvais", "plat", "service", "lent", "été"])
    reviews = frame.assign(review=[" ".join(rng.choice(words, 5)) for _ in range(len(frame))])[["review", "city", "age"]]
    labels = np.where(reviews["review"].str.count("café|très") > reviews["review"].str.count("lent|mauvais"), "good", "bad")
    ct = ColumnTransformer([("txt", TfidfVectorizer(), "review"), ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"])],
                           remainder="passthrough")
    model = Pipeline([("ct", ct), ("lr", LogisticRegression(max_iter=500))]).fit(reviews, labels)
    b = capture(model, reviews, name="reviews", path=tmp_path / "r")
    assert b.flavor == "onnx", b.manifest["model"].get("conversion_error")
    assert b.parity["passed"] and b.parity["outputs"]["label"]["mismatches"] == 0
    rows = reviews[:9].assign(review=["Café très bon", "ÇA ÉTÉ lent", "été", "", "bon bon", "plat", "x", "café", "lent"])
    out = b.load_predictor(threads=1).run({c: rows[c].to_numpy() for c in rows.columns})
    assert out["label"].tolist() == model.predict(rows).tolist()
    np.testing.assert_allclose(out["probabilities"], model.predict_proba(rows), atol=1e-5)


def test_a_vectorizer_without_a_converter_falls_back_with_a_one_line_reason(tmp_path: Path) -> None:
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.linear_model import SGDClassifier
    from sklearn.pipeline import make_pipeline

    texts = ["good fun film", "awful boring plot", "great actor", "bad ending", "fun scene", "boring film"] * 5
    labels = ["up", "down", "up", "down", "up", "down"] * 5
    model = make_pipeline(HashingVectorizer(n_features=64), SGDClassifier(random_state=0)).fit(texts, labels)
    b = capture(model, texts, name="hashed", path=tmp_path / "h")
    reason = b.manifest["model"]["conversion_error"]
    assert b.flavor == "python" and b.table.kind == "text"
    assert reason.startswith("skl2onnx cannot convert Pipeline: ") and "HashingVectorizer" in reason
    assert "\n" not in reason and "gallery" not in reason  # skl2onnx's boilerplate paragraph is dropped
    probe = ["fun fun film", "awful ending", ""]
    out = b.load_predictor(threads=1).run({"text": np.array(probe, dtype=object)})
    assert out["label"].tolist() == model.predict(probe).tolist()


def test_all_numeric_dataframe_selected_by_name(frame, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    num = frame[["age", "income"]]
    model = Pipeline([("ct", ColumnTransformer([("s", StandardScaler(), ["income"])], remainder="passthrough")),
                      ("rf", RandomForestRegressor(n_estimators=8, random_state=0))]).fit(num, num["income"] / 1000)
    b = capture(model, num, name="numeric", path=tmp_path / "n")
    assert b.flavor == "onnx" and [s.name for s in b.inputs] == ["age", "income"]
    assert [(s.name, s.shape) for s in b.outputs] == [("prediction", (None,))]
    out = b.load_predictor(threads=1).run({"age": num["age"].to_numpy()[:5], "income": num["income"].to_numpy()[:5]})
    np.testing.assert_allclose(out["prediction"], model.predict(num[:5]), rtol=1e-4)


def test_dict_of_columns_and_records_samples(forest, frame, forest_bundle: Bundle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    by_columns = capture(forest, {c: frame[c].tolist() for c in frame.columns}, name="cols", path=tmp_path / "c")
    by_records = capture(forest, frame.head(40).to_dict("records"), name="recs", path=tmp_path / "r")
    for b in (by_columns, by_records):
        assert b.flavor == "onnx" and b.parity["passed"]
        assert [(s.name, s.dtype) for s in b.inputs] == [(s.name, s.dtype) for s in forest_bundle.inputs]
    assert by_records.parity["rows"] == 40


@pytest.mark.parametrize("lib", ["xgboost", "lightgbm"])
def test_boosters_on_a_dataframe_answer_like_predict(lib: str, frame, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    mod = pytest.importorskip(lib)
    num = frame[["age", "income", "member"]]
    y_reg = frame["income"] / 1000 + frame["age"]
    y_clf = (frame["income"] > 50_000).astype(int)
    if lib == "xgboost":
        reg, clf = mod.XGBRegressor(n_estimators=8), mod.XGBClassifier(n_estimators=8)
    else:
        reg, clf = mod.LGBMRegressor(n_estimators=8, verbose=-1), mod.LGBMClassifier(n_estimators=8, verbose=-1)
    reg.fit(num, y_reg)
    clf.fit(num, y_clf)
    rb = capture(reg, num, name=f"{lib}-reg", path=tmp_path / "reg")
    cb = capture(clf, num, name=f"{lib}-clf", path=tmp_path / "clf")
    assert rb.flavor == cb.flavor == "onnx" and [s.name for s in rb.inputs] == ["age", "income", "member"]
    assert [(s.name, s.shape) for s in rb.outputs] == [("prediction", (None,))]
    feeds = {c: num[c].to_numpy()[:9] for c in num.columns}
    r = rb.load_predictor(threads=1).run(feeds)["prediction"]
    assert r.shape == reg.predict(num[:9]).shape == (9,)
    np.testing.assert_allclose(r, reg.predict(num[:9]), rtol=1e-4)
    c = cb.load_predictor(threads=1).run(feeds)
    np.testing.assert_array_equal(c["label"], clf.predict(num[:9]))


def test_lightgbm_on_a_category_column_falls_back_and_rebuilds_the_dataframe(frame, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lightgbm = pytest.importorskip("lightgbm")
    city = frame["city"].where(np.arange(N) % 9 != 4)  # some missing cities: a nullable category column
    data = frame[["age", "income"]].assign(city=pd.Categorical(city, categories=["kyiv", "lima", "oslo", "rome"]))
    y = frame["income"] / 1000 + np.where(frame["city"] == "oslo", 40, 0)
    model = lightgbm.LGBMRegressor(n_estimators=20, min_child_samples=5, verbose=-1).fit(data, y)
    b = capture(model, data, name="lgbm-cat", path=tmp_path / "l")
    assert b.flavor == "python"
    assert "category column(s) ['city']" in b.manifest["model"]["conversion_error"]
    assert "ONNX conversion failed" in b.summary() and "city: category ['kyiv', 'lima', 'oslo', 'rome']" in b.summary()
    assert any(line.startswith("pandas==") for line in b.requirements)
    assert b.table.column("city").nullable and b.sample()["city"][4] is None
    cities = np.array([None if pd.isna(c) else c for c in data["city"][:6]], dtype=object)
    out = b.load_predictor(threads=1).run({"age": data["age"].to_numpy()[:6], "income": data["income"].to_numpy()[:6],
                                           "city": cities})
    np.testing.assert_array_equal(out["prediction"], model.predict(data[:6]))  # exactly: the same model on the same frame
    for client in _app(b):  # the server rebuilds the DataFrame from records, categories and missing values included
        rows = [{"age": int(a), "income": float(i), "city": c} for a, i, c in zip(data["age"][:6], data["income"][:6], cities)]
        assert rows[4]["city"] is None
        r = client.post("/predict", json={"inputs": rows})
        assert r.status_code == 200 and r.json()["outputs"]["prediction"] == model.predict(data[:6]).tolist()
        r = client.post("/predict", json={"inputs": [{**rows[0], "city": "paris"}]})
        assert r.status_code == 422 and "'paris' is not one of its categories" in r.json()["error"]
        doc = client.get("/openapi.json").json()
        inputs = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]["inputs"]
        assert inputs["anyOf"][0]["items"]["properties"]["city"]["enum"] == ["kyiv", "lima", "oslo", "rome", None]


def test_catboost_with_cat_features_falls_back(frame, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    catboost = pytest.importorskip("catboost")
    data = frame[["age", "income", "city"]]
    model = catboost.CatBoostClassifier(iterations=15, verbose=False, cat_features=["city"], thread_count=1,
                                         allow_writing_files=False)
    model.fit(data, _labels(frame))
    b = capture(model, data, name="catboost", path=tmp_path / "cb")
    assert b.flavor == "python" and "CatBoostClassifier" in b.manifest["model"]["conversion_error"]
    out = b.load_predictor(threads=1).run({c: data[c].to_numpy()[:5] for c in data.columns})
    assert out["label"].tolist() == model.predict(data[:5]).tolist()


def test_request_forms_answer_the_same(forest_client, forest, frame) -> None:  # type: ignore[no-untyped-def]
    rows = frame[:3]
    want = forest.predict(rows).tolist()
    forms = [
        {"inputs": rows.to_dict("records")},
        {"inputs": rows.to_dict("list")},
        {"inputs": rows.values.tolist()},
        to_payload(rows),  # what Service.predict sends for a DataFrame
    ]
    for body in forms:
        r = forest_client.post("/predict", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["outputs"]["label"] == want
    one = forest_client.post("/predict", json={"inputs": rows.to_dict("records")[0]})
    assert one.json()["outputs"]["label"] == want[:1]
    # an unseen city: OneHotEncoder(handle_unknown="ignore") answers, as the notebook does
    unseen = rows.assign(city="paris")
    r = forest_client.post("/predict", json={"inputs": unseen.to_dict("records")})
    assert r.status_code == 200 and r.json()["outputs"]["label"] == forest.predict(unseen).tolist()


def test_v2_per_column_and_metadata(forest_client, forest, frame) -> None:  # type: ignore[no-untyped-def]
    rows = frame[:4]
    types = {"age": "INT64", "income": "FP64", "city": "BYTES", "member": "BOOL"}
    body = {"inputs": [{"name": c, "datatype": t, "shape": [4], "data": rows[c].tolist()} for c, t in types.items()]}
    r = forest_client.post("/v2/models/mixed-forest/infer", json=body)
    assert r.status_code == 200, r.text
    label = next(o for o in r.json()["outputs"] if o["name"] == "label")
    assert label["datatype"] == "BYTES" and label["data"] == forest.predict(rows).tolist()
    meta = forest_client.get("/v2/models/mixed-forest").json()
    assert meta["parameters"]["content_type"] == "pd"
    assert [c["name"] for c in meta["parameters"]["columns"]] == list(frame.columns)
    assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]][2] == ("city", "BYTES", [-1])


def test_bad_requests_name_the_column(forest_client, frame) -> None:  # type: ignore[no-untyped-def]
    record = frame[:1].to_dict("records")[0]
    cases = [
        ({k: v for k, v in record.items() if k != "income"}, "lacks column 'income'"),
        ({**record, "zip": "0150"}, "unknown column 'zip'"),
        ({**record, "age": "old"}, "column 'age'"),
        ({**record, "member": 3}, "column 'member'"),
        ({**record, "city": None}, "column 'city'"),
    ]
    for rec, words in cases:
        r = forest_client.post("/predict", json={"inputs": [rec]})
        assert r.status_code == 422, r.text
        assert words in r.json()["error"] and r.json().get("hint"), r.json()


def test_capture_failure_writes_nothing(tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    when = pd.DataFrame({"t": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]), "x": [1.0, 2.0, 3.0]})
    model = LinearRegression().fit(when[["x"]], [1.0, 2.0, 3.0])
    with pytest.raises(CaptureError, match="column 't' has dtype datetime64"):
        capture(model, when, name="dates", path=tmp_path / "dates")
    assert not (tmp_path / "dates").exists() and list(tmp_path.iterdir()) == []


def test_openapi_describes_the_columns(forest_client, frame) -> None:  # type: ignore[no-untyped-def]
    doc = forest_client.get("/openapi.json").json()
    body = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    records, columns = body["schema"]["properties"]["inputs"]["anyOf"]
    assert list(records["items"]["properties"]) == list(frame.columns)
    assert records["items"]["properties"]["city"]["type"] == "string"
    assert columns["properties"]["member"]["items"]["type"] == "boolean"
    assert "pandas object" in columns["properties"]["city"]["description"]
    # the stored example is a request the server answers
    assert forest_client.post("/predict", json=body["example"]).status_code == 200


def test_a_column_named_like_the_graphs_own_values_falls_back(frame, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    xgboost = pytest.importorskip("xgboost")
    hostile = frame[["age", "income"]].rename(columns={"income": "mlpack_table_shape"})
    model = xgboost.XGBRegressor(n_estimators=4).fit(hostile, frame["income"])
    b = capture(model, hostile, name="hostile", path=tmp_path / "h")
    assert b.flavor == "python" and "'mlpack_table_shape'" in b.manifest["model"]["conversion_error"]
    out = b.load_predictor(threads=1).run({c: hostile[c].to_numpy()[:3] for c in hostile.columns})
    np.testing.assert_array_equal(out["prediction"], model.predict(hostile[:3]))


def test_cli_captures_a_table_from_csv(forest, frame, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    import pickle

    from mlpack.cli import main

    frame[:30].to_csv(tmp_path / "sample.csv", index=False)
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(forest))
    assert main(["capture", str(tmp_path / "model.pkl"), "--sample", str(tmp_path / "sample.csv"), "-o", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "table      age: int64" in out and "converted to ONNX" in out
    assert Bundle.load(tmp_path / "b").parity["rows"] == 30
