"""Schema-driven fuzzing of the live server from its own /openapi.json: no 5xx, no schema lies."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.server.serving import serving

# Every check schemathesis has, except "a schema-valid request must be accepted":
# JSON Schema cannot say that a V2 tensor's data must hold prod(shape) values,
# so valid-looking V2 requests are rightly refused with 422.
EXCLUDED = "positive_data_acceptance"


@pytest.fixture(scope="module")
def table_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DataFrame model (int, nullable float, str, category, bool columns) converted to ONNX."""
    pd = pytest.importorskip("pandas")
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    from mlpack.bundle import capture

    rng = np.random.default_rng(0)
    n = 60
    frame = pd.DataFrame({
        "age": rng.integers(18, 80, n),
        "fee": np.where(rng.random(n) < 0.1, np.nan, rng.normal(60, 20, n)),
        "city": pd.Series(rng.choice(["oslo", "rome"], n), dtype=object),
        "plan": pd.Categorical(rng.choice(["basic", "pro"], n)),
        "member": rng.random(n) > 0.5,
    })
    model = Pipeline([
        ("ct", ColumnTransformer([("oh", OneHotEncoder(handle_unknown="ignore"), ["city", "plan"]),
                                  ("fee", SimpleImputer(), ["fee"])], remainder="passthrough")),
        ("lr", LogisticRegression(max_iter=500)),
    ]).fit(frame, rng.integers(0, 2, n))
    path = tmp_path_factory.mktemp("table") / "table"
    capture(model, frame, name="table", path=path)
    return path


@pytest.mark.parametrize("bundle_fixture", ["iris_bundle", "two_inputs_bundle", "table_bundle"])
def test_schemathesis_finds_no_server_error(bundle_fixture: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    cli = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
    if not Path(cli).exists():
        pytest.skip("schemathesis is not installed (pip install 'mlpack[test]')")
    bundle = request.getfixturevalue(bundle_fixture)
    with serving(bundle, tmp_path / "server.log", "--no-access-log") as served:
        result = subprocess.run(
            [
                cli,
                "run",
                served.url + "/openapi.json",
                "--checks",
                "all",
                "--exclude-checks",
                EXCLUDED,
                "--max-examples",
                "12",
                "--phases",
                "examples,coverage,fuzzing",
                "--generation-database",
                "none",
                "--workers",
                "1",
                "--suppress-health-check",
                "all",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert served.proc.poll() is None, "the server died under fuzzing"
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "generated" in result.stdout
