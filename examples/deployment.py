"""Build, verify, push and export Kubernetes manifests from a plain script.

    python examples/deployment.py REGISTRY/REPO:TAG [K8S_DIR]

Only an image whose container answered like the kernel is pushed; the
manifests pin the pushed digest and carry the same limits as the local run.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    ref, k8s_dir = argv[0], (argv[1] if len(argv) > 1 else "k8s")
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    import mlpack
    from mlpack.progress import TextSink, failure_lines

    x, y = load_iris(return_X_y=True)
    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, y)
    try:
        with mlpack.serve(tree, x, name="iris-tree", cpus=0.5, memory="256Mi",
                          push=ref, k8s=k8s_dir, progress=TextSink()) as service:
            print(f"pushed {ref} as {service.pushed}; manifests in {service.k8s_dir}")
            print(f"container parity: {service.parity.summary()}")
    except mlpack.MlpackError as exc:
        print("\n".join(failure_lines(exc)), file=sys.stderr)
        return 1
    print(f"apply with: kubectl apply -k {k8s_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
