"""PyTorch nn.Module → ONNX (torch.onnx, dynamic batch, several inputs) and the python flavour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install torch==2.13.0")
pytest.importorskip("onnx", reason="onnx is not installed (mlpack[notebook])")

from mlpack.bundle import capture  # noqa: E402
from mlpack.errors import CaptureError  # noqa: E402
from tests.integration.bundle.helpers import check_round_trip  # noqa: E402
from tests.integration.bundle.torch_models import Tokens, tokens  # noqa: E402

pytestmark = pytest.mark.torch


class TwoTower(torch.nn.Module):
    """Two inputs of different widths, two outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(4, 8)
        self.b = torch.nn.Linear(2, 8)
        self.head = torch.nn.Linear(8, 3)
        self.drop = torch.nn.Dropout(0.5)  # must be off during export and parity

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.head(self.drop(torch.relu(self.a(x) + self.b(z))))
        return logits, torch.softmax(logits, dim=-1)


class Noisy(torch.nn.Module):
    """Random in forward: eager and ONNX never agree, so parity must fail."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.rand_like(x)


def _rows(n: int, d: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def test_several_inputs_and_outputs_with_dynamic_batch(out: Path) -> None:
    torch.manual_seed(0)
    model = TwoTower()
    model.train()
    x, z = _rows(16, 4), _rows(16, 2, 1)
    bundle = capture(model, (x, z), name="two-tower", path=out / "tt", output_names=["logits", "probs"])
    assert model.training, "capture must restore the module's training mode"
    assert bundle.flavor == "onnx" and bundle.framework == "torch"
    assert [(s.name, s.dtype, s.shape) for s in bundle.inputs] == [("input_0", "float32", (None, 4)), ("input_1", "float32", (None, 2))]
    assert [(s.name, s.shape) for s in bundle.outputs] == [("logits", (None, 3)), ("probs", (None, 3))]
    assert bundle.parity["outputs"]["probs"]["kind"] == "probability"
    assert bundle.manifest["model"]["opset"]["ai.onnx"] >= 17
    outputs = check_round_trip(bundle, {"input_0": _rows(33, 4, 2), "input_1": _rows(33, 2, 3)})
    model.eval()
    with torch.no_grad():
        logits, _ = model(torch.tensor(_rows(33, 4, 2), dtype=torch.float32), torch.tensor(_rows(33, 2, 3), dtype=torch.float32))
    np.testing.assert_allclose(outputs["logits"], logits.numpy(), rtol=1e-4, atol=1e-5)


def test_named_inputs_from_a_dict_and_a_tensor_sample(out: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    bundle = capture(model, {"features": torch.randn(8, 4)}, name="seq", path=out / "seq")
    assert [s.name for s in bundle.inputs] == ["features"] and [s.name for s in bundle.outputs] == ["output"]
    check_round_trip(bundle, {"features": _rows(3, 4)})


def test_python_flavour_of_a_torch_module(out: Path) -> None:
    from importlib import metadata

    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh())
    bundle = capture(model, _rows(10, 4), name="seq-py", path=out / "py", flavor="python")
    assert bundle.flavor == "python" and bundle.manifest["model"]["entry"] == {"kind": "torch"}
    assert f"torch=={metadata.version('torch')}" in bundle.requirements  # local label such as +cpu kept
    check_round_trip(bundle, {"input": _rows(21, 4)})


def test_notebook_classes_cannot_be_pickled_for_serving(out: Path) -> None:
    # TwoTower lives in this test module, which no installed distribution provides.
    with pytest.raises(CaptureError, match="no installed distribution provides"):
        capture(TwoTower(), (_rows(4, 4), _rows(4, 2)), name="tt-py", path=out / "ttpy", flavor="python")
    assert not (out / "ttpy").exists()


def test_parity_failure_refuses_then_override_is_recorded(out: Path) -> None:
    with pytest.raises(CaptureError, match="parity check failed") as info:
        capture(Noisy(), _rows(6, 3), name="noisy", path=out / "noisy")
    assert "max abs error" in str(info.value) and "allow_parity_failure" in info.value.hint
    assert info.value.parity["passed"] is False
    assert not (out / "noisy").exists() and not any(out.iterdir())
    bundle = capture(Noisy(), _rows(6, 3), name="noisy", path=out / "noisy", allow_parity_failure=True)
    assert bundle.parity["passed"] is False and bundle.parity["override"] is True
    assert "allowed by override" in bundle.summary()


def test_module_failing_on_the_sample(out: Path) -> None:
    with pytest.raises(CaptureError, match="fails on the sample") as info:
        capture(torch.nn.Linear(4, 2), _rows(5, 7), name="lin", path=out / "lin")
    assert "shape" in info.value.hint


def test_inputs_with_different_batch_sizes(out: Path) -> None:
    with pytest.raises(CaptureError, match="different batch sizes"):
        capture(TwoTower(), (_rows(4, 4), _rows(5, 2)), name="tt", path=out / "tt2")


class Bag(torch.nn.Module):
    """Integer token ids in, one score out."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.EmbeddingBag(50, 6, mode="mean")
        self.out = torch.nn.Linear(6, 1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.emb(ids))


def test_integer_inputs_keep_their_dtype(out: Path) -> None:
    torch.manual_seed(0)
    ids = np.random.default_rng(0).integers(0, 50, size=(9, 7))
    bundle = capture(Bag(), ids, name="bag", path=out / "bag", input_names=["ids"], output_names=["score"])
    assert [(s.name, s.dtype, s.shape) for s in bundle.inputs] == [("ids", "int64", (None, 7))]
    check_round_trip(bundle, {"ids": np.random.default_rng(1).integers(0, 50, size=(4, 7))})


def test_cli_captures_a_saved_module(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mlpack.cli import main

    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    torch.save(model, tmp_path / "net.pt")
    np.save(tmp_path / "x.npy", _rows(4, 3))
    assert main(["capture", str(tmp_path / "net.pt"), "--sample", str(tmp_path / "x.npy"), "-o", str(tmp_path / "b")]) == 0
    assert "[torch] -> onnx" in capsys.readouterr().out


# -- variable axes: a sequence model captured with dynamic_axes answers at other lengths --


class Flat(torch.nn.Module):
    """Flattens [N, T, 2] into a Linear of width 2 * 12: T is not free."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(24, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x.flatten(1))


@pytest.fixture(scope="module")
def tokens_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return Tokens().eval()


def _serve(path: Path):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from mlpack.server import ServerConfig, create_app

    app = create_app(path, ServerConfig(bundle=str(path), access_log=False))
    client = TestClient(app, raise_server_exceptions=False)
    client.__enter__()
    assert app.state.loaded.wait(60)
    return client


def test_sequence_model_answers_at_another_length(tokens_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    b = capture(tokens_model, tokens(6, 12, 0), name="tokens", path=tmp_path / "t", dynamic_axes={"input": [1]})
    assert b.flavor == "onnx" and b.inputs[0].shape == (None, None)
    longer = tokens(2, 20, 1)
    want = tokens_model(torch.from_numpy(longer)).detach().numpy()
    np.testing.assert_allclose(b.load_predictor(threads=1).run({"input": longer})["output"], want, atol=1e-5)
    client = _serve(b.path)
    try:
        r = client.post("/predict", json={"inputs": longer.tolist()})
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(np.asarray(r.json()["outputs"]["output"]), want, atol=1e-5)
    finally:
        client.__exit__(None, None, None)


def test_without_the_option_the_error_names_the_fixed_axis(tokens_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    b = capture(tokens_model, tokens(6, 12, 0), name="fixed", path=tmp_path / "f")
    assert b.inputs[0].shape == (None, 12)
    client = _serve(b.path)
    try:
        r = client.post("/predict", json={"inputs": tokens(2, 20, 1).tolist()})
    finally:
        client.__exit__(None, None, None)
    assert r.status_code == 422
    assert "axis 1 of 'input' is fixed at 12" in r.json()["hint"] and "dynamic_axes={'input': [1]}" in r.json()["hint"]


def test_an_axis_the_model_does_not_free_is_refused(tmp_path: Path) -> None:
    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(4, 12, 2)).astype(np.float32)
    with pytest.raises(CaptureError, match=r"fails on inputs of shape \{'input': \[4, 11, 2\]\}"):
        capture(Flat().eval(), x, name="flat", path=tmp_path / "x", dynamic_axes={"input": [1]})
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(("axes", "words"), [
    ({"input": [2]}, "axis 2 of 'input' does not exist"),
    ({"mask": [1]}, "'mask', which is not an input"),
    ("input", "not NAME:AXIS"),
])
def test_bad_dynamic_axes(tokens_model, tmp_path: Path, axes, words: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CaptureError, match=words):
        capture(tokens_model, tokens(3, 12, 0), name="bad", path=tmp_path / "b", dynamic_axes=axes)


def test_dynamic_axes_are_for_torch(tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    x = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(CaptureError, match="dynamic_axes applies to torch models"):
        capture(LinearRegression().fit(x, x[:, 0]), x, name="lr", path=tmp_path / "lr", dynamic_axes={"input": [1]})


def test_cli_dynamic_axes(tokens_model, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    from mlpack.bundle import Bundle
    from mlpack.cli import main

    torch.save(tokens_model, tmp_path / "tokens.pt")
    np.save(tmp_path / "x.npy", tokens(4, 12, 0))
    argv = ["capture", str(tmp_path / "tokens.pt"), "--sample", str(tmp_path / "x.npy"), "-o", str(tmp_path / "b")]
    assert main([*argv, "--dynamic-axes", "input:1"]) == 0
    assert Bundle.load(tmp_path / "b").inputs[0].shape == (None, None)
    assert "input: int64 [batch, *]" in capsys.readouterr().out  # the sequence axis is not shown as a batch
