"""A DataFrame model in a real container: built by mlpack's builder, run by crun/runc,
asked with a DataFrame, records and V2 per column, checked on every sample row."""

from __future__ import annotations

import numpy as np
import pytest

from mlpack.settings import Settings
from tests.integration.bundle.helpers import post_json, v2_output

pytestmark = [pytest.mark.runtime, pytest.mark.build, pytest.mark.slow]
pd = pytest.importorskip("pandas")
pytest.importorskip("skl2onnx")


def test_dataframe_model_in_a_container(container_settings: Settings) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    import mlpack

    rng = np.random.default_rng(3)
    n = 120
    frame = pd.DataFrame({
        "age": rng.integers(18, 80, n),
        "income": rng.normal(50_000, 12_000, n).round(2),
        "city": rng.choice(["oslo", "rome", "lima"], n),
        "member": rng.random(n) > 0.5,
    })
    labels = np.where(frame["income"] > 50_000, "high", "low")
    model = Pipeline([
        ("ct", ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
                                  ("num", StandardScaler(), ["income"]),
                                  ("pass", "passthrough", ["age", "member"])])),
        ("rf", RandomForestClassifier(n_estimators=10, random_state=0)),
    ]).fit(frame, labels)
    with mlpack.serve(model, frame, name="table-e2e", cpus=1, memory="512Mi", settings=container_settings) as svc:
        # the container answered every sample row like the notebook (labels exactly)
        assert svc.parity.passed, svc.parity
        assert svc.bundle.flavor == "onnx" and svc.bundle.table.names == list(frame.columns)
        got = svc.predict(frame[:9])
        assert got.tolist() == model.predict(frame[:9]).tolist()
        status, answer = post_json(f"{svc.url}/predict", {"inputs": frame[:3].to_dict("records")})
        assert status == 200 and answer["outputs"]["label"] == model.predict(frame[:3]).tolist()
        types = {"age": "INT64", "income": "FP64", "city": "BYTES", "member": "BOOL"}
        v2 = {"inputs": [{"name": c, "datatype": t, "shape": [4], "data": frame[c][:4].tolist()} for c, t in types.items()]}
        status, answer = post_json(f"{svc.url}/v2/models/table-e2e/infer", v2)
        assert status == 200, answer
        assert v2_output(answer, "label")["data"] == model.predict(frame[:4]).tolist()
        record = {**frame[:1].to_dict("records")[0], "age": "forty"}
        status, answer = post_json(f"{svc.url}/predict", {"inputs": [record]})
        assert status == 422 and "column 'age'" in answer["error"], answer
