"""MLServer's codecs build V2 requests and read the answers of a running mlpack-serve.

Run by test_clients.py with the Python of a venv that has mlserver (MLPACK_MLSERVER_PYTHON):
MLServer pins its own FastAPI, uvicorn and pydantic stack. Argument: a JSON file
with a list of cases {"url", "model", "codec": "numpy" | "string", "x", "outputs"}.
"""

from __future__ import annotations

import json
import sys
import urllib.request

import numpy as np
from mlserver.codecs import NumpyCodec, NumpyRequestCodec, StringCodec, StringRequestCodec
from mlserver.types import InferenceResponse


def run(case: dict) -> None:
    if case["codec"] == "numpy":
        request = NumpyRequestCodec.encode_request(np.asarray(case["x"], dtype=np.float32))
    else:
        request = StringRequestCodec.encode_request(case["x"])
    body = request.model_dump_json(exclude_none=True).encode()
    url = f"{case['url']}/v2/models/{case['model']}/infer"
    with urllib.request.urlopen(urllib.request.Request(url, data=body, headers={"content-type": "application/json"}), timeout=10) as r:
        response = InferenceResponse.model_validate_json(r.read())
    for output in response.outputs:
        want = case["outputs"][output.name]
        if output.datatype == "BYTES":
            assert StringCodec.decode_output(output) == want, (output.name, StringCodec.decode_output(output), want)
        else:
            got = NumpyCodec.decode_output(output)
            np.testing.assert_array_equal(got, np.asarray(want, dtype=got.dtype))
    names = [i.name for i in request.inputs]
    print(f"mlserver {case['codec']} codec, inputs {names}, model {case['model']}: OK")


if __name__ == "__main__":
    for case in json.loads(open(sys.argv[1]).read()):
        run(case)
