"""The minimal FastAPI + orjson app the benchmark compares mlpack's server with.

It does the least a JSON model endpoint can: parse with orjson, one
onnxruntime call, dump with orjson. No validation beyond what numpy and
onnxruntime do, no metrics, no logs. Run: ``BASELINE_MODEL=model.onnx
uvicorn bench.server.baseline_app:app``.
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
import orjson
from fastapi import FastAPI, Request, Response

session = ort.InferenceSession(os.environ["BASELINE_MODEL"], providers=["CPUExecutionProvider"])
input_name = session.get_inputs()[0].name
output_names = [o.name for o in session.get_outputs()]
app = FastAPI()


@app.post("/predict")
async def predict(request: Request) -> Response:
    body = orjson.loads(await request.body())
    x = np.asarray(body["inputs"], dtype=np.float32)
    values = session.run(output_names, {input_name: x})
    return Response(
        orjson.dumps({"outputs": dict(zip(output_names, values))}, option=orjson.OPT_SERIALIZE_NUMPY),
        media_type="application/json",
    )
