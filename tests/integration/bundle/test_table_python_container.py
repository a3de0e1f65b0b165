"""Python-flavour table models in real containers: models ONNX cannot carry (LightGBM on a
pandas category column with missing values, CatBoost with ``cat_features``) are captured,
rendered, built by mlpack's builder FROM the offline base (and once FROM the same base pulled
from a registry, which mlpack does not know has libgomp), run by crun/runc, and asked with
records, columns and V2 per-column requests; the server rebuilds the exact DataFrame, so every
answer is the kernel's ``model.predict`` on the same rows. Build time and image size are
printed for the record (``-s``)."""

from __future__ import annotations

import numpy as np
import pytest

from mlpack.settings import Settings
from tests.integration.bundle.helpers import json_records, post_json, serve_and_report, v2_output

pytestmark = [pytest.mark.runtime, pytest.mark.build, pytest.mark.slow]
pd = pytest.importorskip("pandas")

N = 150
CITIES = ["kyiv", "lima", "oslo", "rome"]


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
def lightgbm_service(container_settings: Settings, frame):  # type: ignore[no-untyped-def]
    lightgbm = pytest.importorskip("lightgbm")
    model = lightgbm.LGBMClassifier(n_estimators=25, min_child_samples=5, verbose=-1, n_jobs=1)
    model.fit(frame, _labels(frame))
    service = serve_and_report("python-flavour table", model, frame, "pyf-lgbm-table", container_settings, memory="1g")
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
    status, answer = post_json(f"{service.url}/predict", {"inputs": json_records(rows)})
    assert status == 200 and answer["outputs"]["label"] == want, answer
    columns = {c: [r[c] for r in json_records(rows)] for c in rows.columns}
    status, answer = post_json(f"{service.url}/predict", {"inputs": columns})
    assert status == 200 and answer["outputs"]["label"] == want, answer
    types = {"age": "INT64", "income": "FP64", "city": "BYTES"}
    v2 = {"inputs": [{"name": c, "datatype": t, "shape": [len(rows)], "data": columns[c]} for c, t in types.items()]}
    status, answer = post_json(f"{service.url}/v2/models/pyf-lgbm-table/infer", v2)
    assert status == 200, answer
    assert v2_output(answer, "label")["data"] == want

    one = json_records(frame[:1])[0]
    status, answer = post_json(f"{service.url}/predict", {"inputs": [{**one, "city": "paris"}]})
    assert status == 422 and "city" in answer["error"] and "paris" in answer["error"], answer
    status, answer = post_json(f"{service.url}/predict", {"inputs": [{k: v for k, v in one.items() if k != "income"}]})
    assert status == 422 and "income" in answer["error"], answer


@pytest.fixture(scope="module")
def catboost_service(container_settings: Settings, frame):  # type: ignore[no-untyped-def]
    catboost = pytest.importorskip("catboost")
    data = frame.assign(city=frame["city"].astype(object).fillna("none"))  # CatBoost takes no missing category
    model = catboost.CatBoostClassifier(iterations=20, depth=4, verbose=False, cat_features=["city"], random_seed=0,
                                        thread_count=1, allow_writing_files=False).fit(data, _labels(frame))
    service = serve_and_report("python-flavour table", model, data, "pyf-catboost-table", container_settings, memory="1g")
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
    status, answer = post_json(f"{service.url}/predict", {"inputs": json_records(rows)})
    assert status == 200 and answer["outputs"]["label"] == want, answer
    status, answer = post_json(f"{service.url}/predict", {"inputs": {c: rows[c].tolist() for c in rows.columns}})
    assert status == 200 and answer["outputs"]["label"] == want, answer
    types = {"age": "INT64", "income": "FP64", "city": "BYTES"}
    v2 = {"inputs": [{"name": c, "datatype": t, "shape": [len(rows)], "data": rows[c].tolist()} for c, t in types.items()]}
    status, answer = post_json(f"{service.url}/v2/models/pyf-catboost-table/infer", v2)
    assert status == 200, answer
    assert v2_output(answer, "label")["data"] == want

    # a string column has no fixed categories: a city CatBoost never saw answers as the model does
    unseen = rows[:3].assign(city="paris")
    status, answer = post_json(f"{service.url}/predict", {"inputs": json_records(unseen)})
    assert status == 200 and answer["outputs"]["label"] == model.predict(unseen).tolist(), answer
    one = json_records(rows[:1])[0]
    status, answer = post_json(f"{service.url}/predict", {"inputs": [{k: v for k, v in one.items() if k != "city"}]})
    assert status == 422 and "city" in answer["error"], answer
    status, answer = post_json(f"{service.url}/predict", {"inputs": [{**one, "age": "forty"}]})
    assert status == 422 and "column 'age'" in answer["error"], answer


@pytest.mark.registry
def test_lightgbm_on_a_base_from_a_registry_looks_for_libgomp(lightgbm_service, frame, local_registry,  # type: ignore[no-untyped-def]
                                                              container_settings: Settings) -> None:
    """The offline base, pushed to a registry and pulled back under another name, is a base
    mlpack knows nothing about: the Dockerfile looks for libgomp.so.1 before the import check
    and in the runtime stage, finds it (that base has no apt-get, so installing would fail the
    build), and the image serves LightGBM like the one built FROM the offline base."""
    import tarfile

    from mlpack.oci.base import BASE_REF
    from mlpack.oci.layout import Store
    from mlpack.oci.registry import push

    store = Store(container_settings.store_dir)
    files: set[str] = set()
    for layer in store.resolve(BASE_REF).manifest["layers"]:
        with tarfile.open(store.blob_path(layer["digest"])) as tar:
            files.update(tar.getnames())
    assert any(f.endswith("/libgomp.so.1") for f in files) and "etc/ld.so.cache" in files
    assert not any(f.endswith("bin/apt-get") for f in files)  # so an install step could not run there
    base = local_registry.ref("mirror/python:3.11")
    push(BASE_REF, base, settings=container_settings)
    _, model = lightgbm_service
    service = serve_and_report("python-flavour table", model, frame, "pyf-lgbm-registry-base", container_settings,
                               memory="1g", base=base)
    try:
        dockerfile = (container_settings.home / "serve" / service.name / "context" / "Dockerfile").read_text()
        assert f'ARG MLPACK_BASE="{base}"' in dockerfile
        assert dockerfile.count("grep -qF 'libgomp.so.1 (' || set -- \"$@\" libgomp1") == 2, dockerfile
        assert service.parity is not None and service.parity.passed, service.parity
        rows = frame[40:52]
        status, answer = post_json(f"{service.url}/predict", {"inputs": json_records(rows)})
        assert status == 200 and answer["outputs"]["label"] == model.predict(rows).tolist(), answer
    finally:
        service.stop()
