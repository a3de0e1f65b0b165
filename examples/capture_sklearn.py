"""Train a small scikit-learn classifier, capture it, print the bundle summary.

    python examples/capture_sklearn.py [BUNDLE_DIR]

The bundle (model.onnx, mlpack.yaml, requirements.lock, sample.npz, ...)
goes to BUNDLE_DIR, by default ./bundles/iris. `mlpack inspect BUNDLE_DIR`
prints the same summary later.
"""

from __future__ import annotations

import sys
import time

from sklearn.datasets import load_iris
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.model_selection import train_test_split

import mlpack


def main(argv: list[str]) -> int:
    X, y = load_iris(return_X_y=True)
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.25, random_state=0)
    model = GradientBoostingClassifier(n_estimators=50, random_state=0).fit(X_train, y_train)

    started = time.perf_counter()
    bundle = mlpack.capture(model, X_test[:20], name="iris", path=argv[0] if argv else None)
    print(bundle.summary())
    print(f"captured in {time.perf_counter() - started:.2f} s -> {bundle.path}")

    # The bundle answers through the same code path the server uses.
    outputs = bundle.load_predictor().run(bundle.sample())
    print("labels for the stored sample rows:", outputs["label"].tolist())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
