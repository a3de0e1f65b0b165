"""The same ONNX model behind BentoML (runs in its own venv; see bench_server.py)."""

from __future__ import annotations

import os

import bentoml
import numpy as np
import onnxruntime as ort


@bentoml.service(workers=1)
class Model:
    def __init__(self) -> None:
        self.session = ort.InferenceSession(os.environ["BASELINE_MODEL"], providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    @bentoml.api
    def predict(self, inputs: list[list[float]]) -> dict:
        values = self.session.run(self.output_names, {self.input_name: np.asarray(inputs, dtype=np.float32)})
        return {"outputs": {name: v.tolist() for name, v in zip(self.output_names, values)}}
