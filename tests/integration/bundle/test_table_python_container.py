"""Python-flavour table models in real containers: models ONNX cannot carry (LightGBM on a
pandas category column with missing values, CatBoost with ``cat_features``) are captured,
rendered, built by mlpack's builder FROM the offline base, run by crun/runc, and asked with
records, columns and V2 per-column requests; the server rebuilds the exact DataFrame, so every
answer is the kernel's ``model.predict`` on the same rows. Build time and image size are
printed for the record (``-s``)."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from typing import Any

import numpy as np
import pytest

from mlpack.settings import Settings
from tests.conftest import require_root

pytestmark = [pytest.mark.runtime, pytest.mark.build, pytest.mark.slow]
pd = pytest.importorskip("pandas")

N = 150
CITIES = ["kyiv", "lima", "oslo", "rome"]


def _post(url: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body, allow_nan=False).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _records(frame: "pd.DataFrame") -> list[dict[str, Any]]:
    """JSON records, a missing value as null (what a client sends)."""
    return [{k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in frame.to_dict("records")]


def _report(service: Any) -> None:
    size = sum(int(layer["size"]) for layer in service.image.manifest["layers"])
    print(f"\n[python-flavour table] {service.name}: build {service.timings.get('build', 0.0):.1f} s, "
          f"image {size / 1e6:.1f} MB compressed")


@pytest.fixture(scope="module")
def table_settings(run_settings: Settings, base_image: object) -> Settings:
    require_root()
    if not (shutil.which("crun") or shutil.which("runc")):
        pytest.skip("neither crun nor runc is installed; tests/run.sh installs them")
    return run_settings


@pytest.fixture(scope="module")
def frame() -> "pd.DataFrame":
    """Mixed dtypes and a nullable category column (every ninth city missing)."""
    rng = np.random.default_rng(11)
    city = pd.Series(rng.choice(CITIES, N)).where(np.arange(N) % 9 != 4)
    return pd.DataFrame({
        "age": rng.integers(18, 80, N),
        "income": rng.normal(50_000, 12_000, N).round(2),
        "city": pd.Categorical(city, categories=CITIES),
    })


def _labels(frame: "pd.DataFrame") -> np.ndarray:
    bonus = np.where(frame["city"].astype(object) == "oslo", 15_000, 0)
    return np.where(frame["income"] + 300 * frame["age"] + bonus > 65_000, "high", "low")


@pytest.fixture(scope="module")
def lightgbm_service(table_settings: Settings, frame):  # type: ignore[no-untyped-def]
    lightgbm = pytest.importorskip("lightgbm")
    import mlpack

    model = lightgbm.LGBMClassifier(n_estimators=25, min_child_samples=5, verbose=-1, n_jobs=1)
    model.fit(frame, _labels(frame))
    service = mlpack.serve(model, frame, name="pyf-lgbm-table", settings=table_settings, cpus=1.0, memory="1g")
    _report(service)
    yield service, model
    service.stop()


def test_lightgbm_category_column_in_a_python_container(lightgbm_service, frame) -> None:  # type: ignore[no-untyped-def]
    from importlib.metadata import version

    service, model = lightgbm_service
    assert service.bundle.flavor == "python"
    assert "category column(s) ['city']" in service.bundle.manifest["model"]["conversion_error"]
    lock = service.bundle.requirements
    for dist in ("lightgbm", "scikit-learn", "pandas", "numpy"):  # what the unpickled model imports in the image
        assert f"{dist}=={version(dist)}" in lock, (dist, lock)
    # container parity on the stored sample, labels exactly
    assert service.parity is not None and service.parity.passed, service.parity
    assert service.predict(frame[:12]).tolist() == model.predict(frame[:12]).tolist()

    rows = frame[1:19]  # rows 4 and 13 have no city
    assert rows["city"].isna().sum() == 2
    want = model.predict(rows).tolist()
    status, answer = _post(f"{service.url}/predict", {"inputs": _records(rows)})
    assert status == 200 and answer["outputs"]["label"] == want, answer
    columns = {c: [r[c] for r in _records(rows)] for c in rows.columns}
    status, answer = _post(f"{service.url}/predict", {"inputs": columns})
    assert status == 200 and answer["outputs"]["label"] == want, answer
    types = {"age": "INT64", "income": "FP64", "city": "BYTES"}
    v2 = {"inputs": [{"name": c, "datatype": t, "shape": [len(rows)], "data": columns[c]} for c, t in types.items()]}
    status, answer = _post(f"{service.url}/v2/models/pyf-lgbm-table/infer", v2)
    assert status == 200, answer
    assert next(o for o in answer["outputs"] if o["name"] == "label")["data"] == want

    one = _records(frame[:1])[0]
    status, answer = _post(f"{service.url}/predict", {"inputs": [{**one, "city": "paris"}]})
    assert status == 422 and "city" in answer["error"] and "paris" in answer["error"], answer
    status, answer = _post(f"{service.url}/predict", {"inputs": [{k: v for k, v in one.items() if k != "income"}]})
    assert status == 422 and "income" in answer["error"], answer


@pytest.fixture(scope="module")
def catboost_service(table_settings: Settings, frame):  # type: ignore[no-untyped-def]
    catboost = pytest.importorskip("catboost")
    import mlpack

    data = frame.assign(city=frame["city"].astype(object).fillna("none"))  # CatBoost takes no missing category
    model = catboost.CatBoostClassifier(iterations=20, depth=4, verbose=False, cat_features=["city"], random_seed=0,
                                        thread_count=1, allow_writing_files=False).fit(data, _labels(frame))
    service = mlpack.serve(model, data, name="pyf-catboost-table", settings=table_settings, cpus=1.0, memory="1g")
    _report(service)
    yield service, model, data
    service.stop()


def test_catboost_cat_features_in_a_python_container(catboost_service) -> None:  # type: ignore[no-untyped-def]
    from importlib.metadata import version

    service, model, data = catboost_service
    assert service.bundle.flavor == "python"
    assert "CatBoostClassifier" in service.bundle.manifest["model"]["conversion_error"]
    assert f"catboost=={version('catboost')}" in service.bundle.requirements
    assert service.parity is not None and service.parity.passed, service.parity

    rows = data[20:37]
    want = model.predict(rows).tolist()
    status, answer = _post(f"{service.url}/predict", {"inputs": _records(rows)})
    assert status == 200 and answer["outputs"]["label"] == want, answer
    status, answer = _post(f"{service.url}/predict", {"inputs": {c: rows[c].tolist() for c in rows.columns}})
    assert status == 200 and answer["outputs"]["label"] == want, answer
    types = {"age": "INT64", "income": "FP64", "city": "BYTES"}
    v2 = {"inputs": [{"name": c, "datatype": t, "shape": [len(rows)], "data": rows[c].tolist()} for c, t in types.items()]}
    status, answer = _post(f"{service.url}/v2/models/pyf-catboost-table/infer", v2)
    assert status == 200, answer
    assert next(o for o in answer["outputs"] if o["name"] == "label")["data"] == want

    # a string column has no fixed categories: a city CatBoost never saw answers as the model does
    unseen = rows[:3].assign(city="paris")
    status, answer = _post(f"{service.url}/predict", {"inputs": _records(unseen)})
    assert status == 200 and answer["outputs"]["label"] == model.predict(unseen).tolist(), answer
    one = _records(rows[:1])[0]
    status, answer = _post(f"{service.url}/predict", {"inputs": [{k: v for k, v in one.items() if k != "city"}]})
    assert status == 422 and "city" in answer["error"], answer
    status, answer = _post(f"{service.url}/predict", {"inputs": [{**one, "age": "forty"}]})
    assert status == 422 and "column 'age'" in answer["error"], answer
