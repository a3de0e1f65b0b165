"""kserve's InferenceRESTClient (v2) and InferenceGRPCClient against a running mlpack-serve.

Run by test_clients.py with the Python of a venv that has kserve (MLPACK_KSERVE_PYTHON):
kserve pins pandas<3 and psutil<6, so it cannot share the test venv.
Arguments: HTTP port, gRPC port, a JSON file with "model", "input", "x" and the expected outputs.
"""

from __future__ import annotations

import asyncio
import json
import sys

import numpy as np
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig


def _check(response, want: dict) -> None:  # type: ignore[no-untyped-def]
    got = {o.name: o.as_numpy() for o in response.outputs}
    for name, value in want.items():
        np.testing.assert_array_equal(got[name], np.asarray(value, dtype=got[name].dtype))


def _request(model: str, name: str, x: np.ndarray, binary: bool) -> InferRequest:
    tensor = InferInput(name, list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    return InferRequest(model_name=model, infer_inputs=[tensor])


async def main(http_port: int, grpc_port: int, doc: dict) -> None:
    model, x, want = doc["model"], np.asarray(doc["x"], dtype=np.float32), doc["outputs"]
    rest = InferenceRESTClient(RESTConfig(protocol="v2"))
    try:
        for name, binary in (("input-0", False), (doc["input"], True)):  # KServe's sample name, then binary
            _check(await rest.infer(f"http://127.0.0.1:{http_port}", _request(model, name, x, binary), model_name=model), want)
            print(f"kserve InferenceRESTClient v2 ({name}, binary={binary}): OK")
    finally:
        await rest.close()
    grpc = InferenceGRPCClient(f"127.0.0.1:{grpc_port}")
    try:
        assert await grpc.is_server_ready()
        for binary in (True, False):  # raw_input_contents, then typed contents
            _check(await grpc.infer(_request(model, doc["input"], x, binary)), want)
            print(f"kserve InferenceGRPCClient (binary={binary}): OK")
    finally:
        await grpc.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), json.loads(open(sys.argv[3]).read())))
