"""The main job: from a freshly trained model to a limited, verified container and back.

Run it with ``bash examples/main.sh`` (which installs what it needs first).
Each stage prints one line as it finishes; the build prints its steps with
layer sizes and cache hits. The second run reuses every layer but the model's.
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="iris")
    parser.add_argument("--cpus", type=float, default=0.5)
    parser.add_argument("--memory", default="512Mi")
    parser.add_argument("--pids-limit", "--pids", dest="pids", type=int, default=128)  # --pids: the old spelling
    parser.add_argument("--keep", action="store_true", help="leave the container running")
    args = parser.parse_args(argv)

    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import mlpack
    from mlpack.progress import TextSink, failure_lines

    started = time.monotonic()
    X, y = load_iris(return_X_y=True)
    clf = LogisticRegression(max_iter=500).fit(X, y)
    print(f"trained {type(clf).__name__} on iris ({len(X)} rows) in {time.monotonic() - started:.2f} s")

    try:
        service = mlpack.serve(clf, X[::4],  # every 4th row: all three classes
                               name=args.name, cpus=args.cpus, memory=args.memory,
                               pids=args.pids, progress=TextSink())
    except mlpack.MlpackError as exc:
        print("\n".join(failure_lines(exc)), file=sys.stderr)
        return 1

    from mlpack.ipython.display import status_lines

    rows = X[[0, 50, 100]]
    try:
        predicted = service.predict(rows)
        print(f"\nendpoint          {service.url}/predict (limits: {args.cpus:g} CPU, {args.memory}, "
              f"{args.pids} pids)")
        print(f"prediction        {predicted.tolist()} for 3 iris flowers (kernel: {clf.predict(rows).tolist()})")
        print(f"container parity  {service.parity.summary()}")
        print(f"first prediction  {service.first_prediction_s:.2f} s after the start of serve()")
        print("\n".join(status_lines(service)))
        ok = service.parity.passed and predicted.tolist() == clf.predict(rows).tolist()
    finally:
        if not args.keep:
            service.stop()
            print(f"container {args.name} stopped and removed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
