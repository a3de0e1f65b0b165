"""A small PyTorch network served from a plain script (the notebook's flow, no IPython).

    python examples/pytorch_example.py

Capture exports it to ONNX; the image serves it with onnxruntime (no torch in
the image); ``postprocess`` adds softmax probabilities in the container.
"""

from __future__ import annotations

import sys

HOOKS = '''
import numpy as np

def postprocess(outputs):
    logits = next(iter(outputs.values()))
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    outputs["probabilities"] = e / e.sum(axis=1, keepdims=True)
    return outputs
'''


def main() -> int:
    import numpy as np
    import torch
    from torch import nn

    import mlpack
    from mlpack.progress import TextSink, failure_lines

    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = (x[:, 0] + x[:, 1] > 0).long()
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    net.eval()

    try:
        service = mlpack.serve(net, x[:32], name="torch-mlp", cpus=1, memory="1g",
                               hooks_source=HOOKS, progress=TextSink())
    except mlpack.MlpackError as exc:
        print("\n".join(failure_lines(exc)), file=sys.stderr)
        return 1
    with service:
        probs = service.predict_all(x[:4])["probabilities"]
        with torch.no_grad():
            expected = torch.softmax(net(x[:4]), dim=1).numpy()
        print(f"probabilities from the container:\n{np.round(probs, 4)}")
        print(f"container parity: {service.parity.summary()}")
        return 0 if np.allclose(probs, expected, atol=1e-4) else 1


if __name__ == "__main__":
    sys.exit(main())
